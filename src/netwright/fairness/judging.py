"""Judging fairness mitigations side by side: each variant's accuracy and the size of its gaps
(Fairlearn's largest difference between groups, with the interval of that size from the audit's
signed one); degenerate variants (near-constant decisions, or less accurate than the majority
outcome) excluded, a variant that widens its targeted gap flagged, the Pareto-optimal ones named
and one recommended within an accuracy budget."""

from __future__ import annotations

from typing import Any

import numpy as np

from .audit import _gaps, _rates, signed_gaps

# a variant that decides otherwise for fewer examples than this share of the labels' minority
# outcome decides (almost) the same for all: on labels 50/50, under 5% of the examples
NEAR_CONSTANT = 0.1
BUDGET_POINTS = 1.0  # accuracy points a recommended variant may lose, unless told otherwise


def variant_row(method: str, label: str, pred: np.ndarray, y: np.ndarray, codes: np.ndarray, names: list[str],
         weight: float | None = None, target: str = "demographic_parity", resamples: int = 1000,
         seed: int = 0) -> dict[str, Any]:
    gaps = _gaps(_rates(codes, len(names), y, pred))
    intervals = signed_gaps(codes, names, y, pred, resamples, seed)
    return {"method": method, "label": label, "weight": weight, "target": target,
            "accuracy": float((pred == y).mean()), "selection_rate": float(pred.mean()), **gaps,
            "intervals": {k: {**intervals[k], "ci": size_interval(intervals[k]["ci"])}
                          for k in ("demographic_parity_difference", "equalized_odds_difference")}}


def size_interval(ci: list[float] | None) -> list[float] | None:
    """The interval of a gap's size from the interval of the signed gap: from 0 when it
    includes 0, otherwise between the sizes of its ends."""
    if ci is None:
        return None
    lo, hi = sorted((abs(ci[0]), abs(ci[1])))
    return [0.0, hi] if ci[0] <= 0.0 <= ci[1] else [lo, hi]


def _interval(row: dict[str, Any], gap: str) -> list[float] | None:
    """The 95% interval of one of a variant's gaps (``None`` without resamples)."""
    return ((row.get("intervals") or {}).get(gap) or {}).get("ci")


def judge(rows: list[dict[str, Any]], majority_accuracy: float, budget: float = BUDGET_POINTS) -> dict[str, Any]:
    """Flag degenerate variants and those that widen a gap (in place, ``flags``), name the
    Pareto-optimal ones and recommend one: the smallest targeted gap among the sound variants
    that lose at most ``budget`` accuracy points, or the original when none helps.

    With the original's intervals (``variant_row`` with resamples) the noise decides: a gap is
    "widened" only beyond the original's interval; a variant is recommended only when its targeted
    gap falls below the original's interval and no other gap rises above its interval; and when
    the original's targeted gap interval includes no gap, the original is kept (no mitigation is
    needed at that confidence)."""
    base = rows[0]
    for r in rows:
        gap = f"{r['target']}_difference"
        r["accuracy_points"] = round(100 * (r["accuracy"] - base["accuracy"]), 3)
        dp0 = base["demographic_parity_difference"]
        r["parity_gap_reduction"] = 1 - r["demographic_parity_difference"] / dp0 if dp0 > 0 else 0.0
        flags = []
        if min(r["selection_rate"], 1 - r["selection_rate"]) < NEAR_CONSTANT * (1 - majority_accuracy):
            flags.append(f"degenerate: decides the same for {max(r['selection_rate'], 1 - r['selection_rate']):.0%} "
                         "of the examples")
        elif r["accuracy"] < majority_accuracy:
            flags.append(f"degenerate: accuracy {r['accuracy']:.3f} is below always predicting the majority outcome "
                         f"({majority_accuracy:.3f})")
        if r is not base:
            for other in (gap, *(g for g in ("demographic_parity_difference", "equalized_odds_difference")
                                 if g != gap and g in r and g in base)):
                ci = _interval(base, other)
                beyond = r[other] > (ci[1] if ci else base[other])
                if beyond:
                    what = "it targets" if other == gap else "it does not target"
                    flags.append(f"worse: widens the {other.removesuffix('_difference').replace('_', ' ')} gap {what} "
                                 f"({base[other]:.3f} -> {r[other]:.3f}"
                                 + (f", beyond the original's interval [{ci[0]:.3f}, {ci[1]:.3f}])" if ci else ")"))
        r["flags"] = flags
    sound = [r for r in rows if not any(f.startswith("degenerate") for f in r["flags"])]
    for r in rows:  # Pareto-optimal: no sound variant is at least as accurate with a smaller targeted gap
        gap = f"{r['target']}_difference"
        r["pareto"] = r in sound and not any(
            o is not r and o["accuracy"] >= r["accuracy"] and o[gap] <= r[gap]
            and (o["accuracy"] > r["accuracy"] or o[gap] < r[gap]) for o in sound)
    def narrower(r: dict[str, Any]) -> bool:  # below the original's interval, or its value without one
        gap = f"{r['target']}_difference"
        ci = _interval(base, gap)
        return r[gap] < (ci[0] if ci else base[gap])

    within = [r for r in sound[1:] if not r["flags"] and r["accuracy_points"] >= -budget and narrower(r)]
    target = f"{base['target']}_difference"
    ci = _interval(base, target)
    no_gap = bool(ci and ci[0] <= 0.0 <= ci[1])
    best = min(within, key=lambda r: (r[f"{r['target']}_difference"], -r["accuracy"])) if within and not no_gap else base
    if no_gap:
        named = target.removesuffix("_difference").replace("_", " ")
        reason = (f"no mitigation needed at this confidence: the original's {named} gap {base[target]:.3f} has a "
                  f"95% interval [{ci[0]:.3f}, {ci[1]:.3f}] that includes no gap; keep the original")
    elif within:
        reason = (f"the smallest targeted gap within {budget:g} accuracy points of the original"
                  + (", below the original's interval" if ci else ""))
    else:
        reason = (f"no sound variant narrows its gap {'beyond the noise ' if ci else ''}within {budget:g} accuracy "
                  "points; keep the original")
    needs = ("group thresholds decide with the sensitive column: it must be given with every row at prediction "
             "time") if best["method"] == "thresholds" else None
    return {"recommended": best["label"], "reason": reason, "budget_points": budget, **({"needs": needs} if needs else {}),
            "majority_accuracy": majority_accuracy, "pareto": [r["label"] for r in rows if r["pareto"]]}
