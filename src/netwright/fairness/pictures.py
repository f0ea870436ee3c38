"""Pictures of fairness: rates by group with confidence intervals, the accuracy/gap trade-off,
and feature drift."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from ..plots import save_figure

RATES = ("selection_rate", "true_positive_rate", "false_positive_rate", "accuracy")


def audit_plot(result: dict[str, Any], path: Path) -> Path:
    """One panel per grouping: each rate per group, with its bootstrap interval."""
    keys = list(result["groupings"])
    fig, axes = plt.subplots(1, len(keys), figsize=(max(5.5, 1.2 * 5) * len(keys), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys):
        rows = result["groupings"][key]["groups"]
        width = 0.8 / len(RATES)
        for j, m in enumerate(RATES):
            xs = np.arange(len(rows)) + (j - (len(RATES) - 1) / 2) * width
            vals = [r[m] for r in rows]
            err = None
            if all(r.get(f"{m}_ci") for r in rows):
                err = np.array([[v - r[f"{m}_ci"][0], r[f"{m}_ci"][1] - v] for v, r in zip(vals, rows)]).T
            ax.bar(xs, vals, width, yerr=err, capsize=2, label=m.replace("_", " "))
        ax.set_xticks(range(len(rows)), [f"{r['group']}\n(n={r['count']})" for r in rows], fontsize=9)
        ax.set_ylim(0, 1.05)
        dp = result["groupings"][key]["gaps"]["demographic_parity_difference"]
        ci = dp["ci"]
        ax.set_title(f"{key}: parity gap {dp['value']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""),
                     fontsize=9)
    axes[0, 0].legend(fontsize=9, loc="upper right")
    fig.tight_layout()
    return save_figure(fig, path)


def tradeoff_plot(rows: list[dict[str, Any]], path: Path, gap: str = "demographic_parity_difference") -> Path:
    """Accuracy against the gap for every mitigation; the penalty sweep as a curve."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    sweep = sorted((r for r in rows if r["method"] == "penalty"), key=lambda r: r["weight"])
    if len(sweep) > 1:
        ax.plot([r[gap] for r in sweep], [r["accuracy"] for r in sweep], "-o", color="#8172b2",
                label="penalty sweep (lambda)")
        for r in sweep:
            ax.annotate(f"{r['weight']:g}", (r[gap], r["accuracy"]), fontsize=9, xytext=(3, 3),
                        textcoords="offset points")
    markers = {"none": ("black", "s"), "reweighing": ("#55a868", "^"), "thresholds": ("#c44e52", "D"),
               "penalty": ("#8172b2", "o")}
    for r in rows:
        if r["method"] == "penalty" and len(sweep) > 1:
            continue
        color, marker = markers[r["method"]]
        ax.scatter(r[gap], r["accuracy"], color=color, marker=marker, s=50, label=r["label"], zorder=3)
    ax.set_xlabel(gap.replace("_", " "))
    ax.set_ylabel("test accuracy")
    ax.set_title("accuracy / fairness trade-off")
    ax.legend(fontsize=9)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def drift_plot(features: list[dict[str, Any]], alpha: float, path: Path) -> Path:
    """Per-feature drift statistic, drifted features highlighted."""
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(features) + 1.2))
    names = [f["feature"] for f in features]
    stats = [f["statistic"] for f in features]
    colors = ["#c44e52" if f["drift"] else "#4c72b0" for f in features]
    ax.barh(names, stats, color=colors)
    ax.set_xlabel("test statistic (KS distance, or chi-square / n for categories)")
    ax.set_title(f"drift (red: significant at family-wise alpha {alpha:g})", fontsize=9)
    ax.tick_params(labelsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
