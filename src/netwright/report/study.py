"""The card of a tuning study (``runs/STUDY/card.html``): the best trial, every trial as a row,
and Optuna's pictures (optimisation history, parameter importances, parallel coordinates)."""

from __future__ import annotations

import datetime
import warnings
from pathlib import Path
from typing import Any

from ..atomic import write_text
from .html import CSS, dl, e, img, num, table


def pictures(study_dir: Path, study: Any) -> dict[str, Path]:
    """Optuna's matplotlib visualisations of the study, as PNGs under ``pictures/``."""
    import matplotlib

    matplotlib.use("Agg")
    import optuna
    from optuna.visualization import matplotlib as ov

    from ..plots import save_figure

    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    out: dict[str, Path] = {}
    plots = [("history", ov.plot_optimization_history, 1), ("importances", ov.plot_param_importances, 2),
             ("parallel", ov.plot_parallel_coordinate, 2), ("intermediate", ov.plot_intermediate_values, 1)]
    folder = study_dir / "pictures"
    folder.mkdir(exist_ok=True)
    for key, plot, needs in plots:
        if len(complete) < needs:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            try:
                ax = plot(study)
            except (ValueError, RuntimeError, optuna.exceptions.OptunaError):
                continue  # e.g. importances of a parameter that never varied
        ax = ax.flat[0] if hasattr(ax, "flat") else ax
        fig = ax.figure
        fig.set_size_inches(8, 4.5)
        out[key] = save_figure(fig, folder / f"{key}.png")
    return out


def write_card(study_dir: Path, study: Any, summary: dict[str, Any]) -> Path:
    """Render ``card.html`` for the study."""
    pics = pictures(study_dir, study)
    metric, best = summary["metric"], summary.get("best")
    counts = summary["counts"]
    lines = [f"{summary['name']}: {sum(counts.get(s, 0) for s in ('COMPLETE', 'PRUNED'))} of "
             f"{summary['trials_requested']} trials finished ({counts.get('COMPLETE', 0)} complete, "
             f"{counts.get('PRUNED', 0)} pruned, {counts.get('FAIL', 0)} failed), "
             f"{summary['epochs_trained']:,} epochs trained."]
    if best:
        lines.append(f"Best: trial {best['number']}, {metric} {num(best['value'], 4)}"
                     + (f", test {', '.join(f'{k} {num(v, 4)}' for k, v in best['test'].items())}"
                        if best.get("test") else "") + ".")
    parts = [f"<h1>Tuning study {e(summary['name'])}</h1>",
             f"<p class=muted>Generated {e(datetime.datetime.now().strftime('%Y-%m-%d %H:%M'))} by netwright tune; "
             f"{e(metric)} ({e(summary['direction'])}), sampler {e(summary['sampler'])}, pruner "
             f"{e(summary['pruner'])}, storage {e(summary['storage'])}.</p>",
             "<p class=summary>" + "<br>".join(e(x) for x in lines) + "</p>"]
    if best:
        parts.append("<h2>Best trial</h2>" + dl({k: _value(v) for k, v in best["params"].items()})
                     + f"<p>Its spec: <code>best.yaml</code>; its run: <code>{e(best['run'])}/</code>.</p>")
    for key, title in (("history", "Optimisation history"), ("importances", "Parameter importances"),
                       ("parallel", "Parallel coordinates"), ("intermediate", "Learning curves of the trials")):
        if key in pics:
            parts.append(f"<h2>{e(title)}</h2>{img(pics[key], title)}")
    params = summary.get("params") or sorted({p for r in summary["trials"] for p in r["params"]})
    rows = [[r["number"], r["state"].lower(), r["value"], r["epochs"], r["seconds"]]
            + [_value(r["params"].get(p)) for p in params] for r in summary["trials"]]
    parts.append("<h2>Trials</h2>" + table(["trial", "state", metric, "epochs", "seconds"] + list(params), rows))
    html = (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>Tuning study {e(summary['name'])}"
            f"</title><style>{CSS}</style></head><body>{''.join(parts)}</body></html>\n")
    return write_text(study_dir / "card.html", html)


def _value(v: Any) -> Any:
    return v if isinstance(v, (int, float)) or v is None else str(v)
