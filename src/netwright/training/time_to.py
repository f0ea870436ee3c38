"""How long a run took to be good: the training time and examples seen at which the validation
metric first reached each of a few levels of the run's best (90%, 95% and 99% of it), beside the
total. A higher-is-better metric reaches level L at ``L x best``; a lower-is-better one (a loss,
an error) at ``best / L``. Recorded in ``train.json`` (``time_to``), shown on the card and by
``compare``."""

from __future__ import annotations

from typing import Any

LEVELS = (0.9, 0.95, 0.99)


def quality_metric(history: list[dict[str, Any]], monitor: str) -> str:
    """The metric time is measured against: validation accuracy where the run has it (what a user
    means by "good"), else the monitored metric."""
    return "val_accuracy" if any(r.get("val_accuracy") is not None for r in history) else monitor


def time_to_levels(history: list[dict[str, Any]], timing: list[dict[str, Any]], metric: str, minimize: bool,
                   examples_per_epoch: int, levels: tuple[float, ...] = LEVELS) -> dict[str, Any] | None:
    """``{"metric", "best", "seconds", "levels": [{"level", "value", "epoch", "seconds", "examples"}]}``
    from the epoch records and their timing (``seconds``: training time, summed over the epochs up
    to and including the one that reached the level); ``None`` when the metric was never finite
    or its best is not above 0."""
    values = [(r["epoch"], r.get(metric)) for r in history]
    values = [(e, v) for e, v in values if v is not None]
    if not values:
        return None
    best = min(v for _, v in values) if minimize else max(v for _, v in values)
    if best <= 0:  # a share of a best that is not above 0 means nothing (a negative R²)
        return None
    elapsed: dict[int, float] = {}
    total = 0.0
    for t in timing:
        total += t["seconds"]
        elapsed[t["epoch"]] = total
    out = []
    for level in levels:
        goal = best / level if minimize else best * level
        epoch = next(e for e, v in values if (v <= goal if minimize else v >= goal))
        out.append({"level": level, "value": round(goal, 6), "epoch": epoch, "seconds": round(elapsed.get(epoch, total), 3),
                    "examples": epoch * examples_per_epoch})
    return {"metric": metric, "best": best, "seconds": round(total, 3), "levels": out}


def describe(reached: dict[str, Any]) -> str:
    """One sentence: when each level was reached, and the whole run's training time."""
    parts = [f"{lv['level']:.0%} of the best ({lv['value']:.4g}) at epoch {lv['epoch']}, {lv['seconds']:.1f} s, "
             f"{lv['examples']:,} examples" for lv in reached["levels"]]
    return (f"{reached['metric']} reached " + "; ".join(parts)
            + f"; best {reached['best']:.4g}; all epochs: {reached['seconds']:.1f} s of training")


def to_best(reached: dict[str, Any] | None, level: float = 0.99) -> str:
    """``"12.3 s (epoch 4)"``: when ``level`` of the best was reached, or ``"-"``."""
    lv = next((x for x in (reached or {}).get("levels", []) if x["level"] == level), None)
    return "-" if lv is None else f"{lv['seconds']:.1f} s (epoch {lv['epoch']})"
