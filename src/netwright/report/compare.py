"""Compare runs on one self-contained HTML page (``netwright compare RUN...``).

The spec keys that differ, the learning curves overlaid, the test metrics side by side, and the
Pareto fronts where two measures trade off: accuracy against size or latency (compressed
variants), against the parity gap (mitigations), and across the compared runs themselves. A
folder that holds runs (a tuning study's ``trial-*``, cross-validation's ``fold-*``) stands for
the runs in it. Numbers are copied from the run files, never recomputed.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import NetwrightError
from ..run import AUDIT, COMPRESS, DATA, EVAL, MITIGATE, SPEC, TRAIN, WEIGHTS, Run, default_runs_dir
from ..spec import flatten
from ..training.time_to import to_best
from .html import CSS, e, img, num

STUDY_FILE = "study.json"  # a tuning study: metric, direction, trials [{number, state, value, params, run}]
DEFAULT_OUT = "compare.html"
SIDE_BY_SIDE = 6  # up to this many runs are a table's columns; more are its rows
HEADLINE = ("accuracy", "r2")  # eval.json written before kinds named their headline metric
SKIP_KEYS = {"name"}  # the run's name heads its column already
SECTIONS = [("runs", "Runs"), ("spec", "Spec differences"), ("curves", "Learning curves"),
            ("test", "Test metrics"), ("tradeoffs", "Trade-offs")]
MISSING = object()


@dataclass
class Entry:
    """One compared run and what its stages wrote."""

    run: Run
    label: str
    group: str | None = None  # the folder of runs it came from
    trial: dict[str, Any] | None = None
    best: bool = False
    spec: dict[str, Any] = field(default_factory=dict)  # flattened to dotted keys
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, Any] | None = None
    compress: dict[str, Any] | None = None
    mitigate: dict[str, Any] | None = None
    audit: dict[str, Any] | None = None
    size: int | None = None  # bytes of model.safetensors


# ---------------------------------------------------------------------- which runs


def resolve(sources: list[str | os.PathLike | Run]) -> tuple[list[Entry], list[dict[str, Any]], list[str]]:
    """The runs named by ``sources`` (a folder of runs expands to them), each once, in order."""
    entries: list[Entry] = []
    studies: list[dict[str, Any]] = []
    notes: list[str] = []
    for source in sources:
        if isinstance(source, Run):
            entries.append(Entry(source, source.name))
            continue
        p = Path(source)
        if not p.exists() and not p.is_absolute() and (default_runs_dir() / p).exists():
            p = default_runs_dir() / p  # a bare name under the runs folder
        if not p.is_dir():
            raise NetwrightError(f"{source}: no such run directory or folder of runs; 'netwright runs' lists the runs")
        if (p / SPEC).is_file():
            entries.append(Entry(Run.open(p), p.name))
            continue
        found, study = _expand(p, notes)
        entries += found
        if study is not None:
            studies.append(study)
    seen: set[Path] = set()
    unique = []
    for x in entries:
        key = x.run.path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(x)
    if len(unique) < 2:
        named = ", ".join(str(s) for s in sources)
        raise NetwrightError(f"compare needs at least 2 runs; {named} gave {len(unique)}"
                             f"{': ' + unique[0].label if unique else ''}; name more runs or a folder that holds them")
    labels = Counter(x.label for x in unique)
    for x in unique:
        if labels[x.label] > 1:
            x.label = str(x.run.path)
    return unique, studies, notes


def _natural(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _expand(folder: Path, notes: list[str]) -> tuple[list[Entry], dict[str, Any] | None]:
    """The runs in ``folder``'s subfolders; a tuning study's in trial order, its best marked."""
    subs = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
            and ((p / SPEC).is_file() or (p / "folds.json").is_file())]  # a tuning trial on folds: its folds
    if not subs:
        raise NetwrightError(f"{folder}: not a run (no spec.yaml) and holds no runs (no subfolder has a spec.yaml); "
                             "give run directories, a tuning study or a cross-validation folder")
    study = _read_study(folder, notes)
    by_run = {str(t.get("run")): t for t in (study or {}).get("trials", []) if t.get("run") is not None}
    subs.sort(key=lambda p: (0, by_run[p.name]["number"]) if p.name in by_run and by_run[p.name].get("number")
              is not None else (1, _natural(p.name)))
    entries = []
    for p in subs:
        trial = by_run.get(p.name)
        best = study is not None and trial is not None and study["best"] is not None \
            and trial.get("number") == study["best"]
        runs = [p] if (p / SPEC).is_file() else sorted((f for f in p.iterdir() if (f / SPEC).is_file()),
                                                       key=lambda f: _natural(f.name))
        for run in runs:
            if not (run / DATA).is_file():
                notes.append(f"skipped {run}: not a complete run (no data.json)")
                continue
            entries.append(Entry(Run(run), f"{folder.name}/{run.relative_to(folder)}", group=str(folder), trial=trial,
                                 best=best))
    if study is None and (folder / "folds.json").is_file():
        try:
            folds = json.loads((folder / "folds.json").read_text(encoding="utf-8"))
            study = {"folder": str(folder), "kind": "folds", "folds": folds.get("folds"),
                     "test": (folds.get("summary") or {}).get("test") or {}}
        except (OSError, ValueError, AttributeError):
            notes.append(f"{folder / 'folds.json'}: unreadable; its summary is left out")
    return entries, study


def _read_study(folder: Path, notes: list[str]) -> dict[str, Any] | None:
    """``study.json`` with its trials ordered by number and the best one found; None without one."""
    p = folder / STUDY_FILE
    if not p.is_file():
        return None
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("not an object")
    except (OSError, ValueError) as exc:
        notes.append(f"{p}: unreadable ({exc.__class__.__name__}); the trials are compared without it")
        return None
    listed = raw.get("trials") if isinstance(raw.get("trials"), list) else []
    trials = [dict(t) for t in listed if isinstance(t, dict)]
    for t in trials:
        try:
            t["number"] = int(t["number"])
        except (KeyError, TypeError, ValueError):
            t["number"] = None
    trials.sort(key=lambda t: (t["number"] is None, t["number"] or 0))
    metric = raw.get("metric")
    direction = str(raw.get("direction") or "").lower()
    assumed = direction not in ("maximize", "minimize", "max", "min")
    if assumed:  # not recorded: a loss or an error is minimised
        direction = "minimize" if re.search(r"loss|error|perplexity|ece|mae|rmse", str(metric or "")) else "maximize"
    done = [t for t in trials if _finite(t.get("value")) and t["number"] is not None
            and str(t.get("state") or "COMPLETE").upper() == "COMPLETE"]
    pick = min if direction.startswith("min") else max
    best = pick(done, key=lambda t: t["value"])["number"] if done else None
    recorded = raw.get("best")  # the study's own pick (netwright tune writes it) stands
    if isinstance(recorded, dict) and isinstance(recorded.get("number"), int):
        best = recorded["number"]
    return {"folder": str(folder), "kind": "tuning", "metric": metric, "direction": direction,
            "direction_assumed": assumed, "trials": trials, "best": best}


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# ---------------------------------------------------------------------- what each run holds


def load(x: Entry) -> None:
    r = x.run
    try:
        raw = yaml.safe_load(r.file(SPEC).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise NetwrightError(f"{r.file('spec.yaml')}: unreadable ({exc.__class__.__name__})") from None
    x.spec = flatten(raw if isinstance(raw, dict) else {})
    try:
        x.history = r.metrics()
    except ValueError as exc:
        raise NetwrightError(f"{r.file('metrics.jsonl')}: damaged ({exc}); train the run again") from None
    opt = {rel: r.read_json(rel) if r.has(rel) else None
           for rel in (TRAIN, EVAL, COMPRESS, MITIGATE, AUDIT)}
    x.summary = opt[TRAIN] or {}
    x.eval, x.compress, x.mitigate, x.audit = (opt[EVAL], opt[COMPRESS],
                                               opt[MITIGATE], opt[AUDIT])
    x.size = r.file(WEIGHTS).stat().st_size if r.has(WEIGHTS) else None


def spec_diff(entries: list[Entry]) -> list[tuple[str, list[Any]]]:
    """The dotted keys whose values are not the same in every run (a key a run lacks differs)."""
    keys = list(dict.fromkeys(k for x in entries for k in x.spec))
    rows = []
    for k in keys:
        values = [x.spec.get(k, MISSING) for x in entries]
        if k not in SKIP_KEYS and len({"\0absent" if v is MISSING else json.dumps(v, sort_keys=True, default=str)
                                       for v in values}) > 1:
            rows.append((k, values))
    return rows


def headline(x: Entry) -> tuple[str, float] | None:
    """The test metric the trade-offs use: the one the run's kind leads with."""
    ev = x.eval or {}
    metrics = ev.get("metrics") or {}
    keys = [ev["headline"]] if ev.get("headline") else HEADLINE
    return next(((k, metrics[k]) for k in keys if _finite(metrics.get(k))), None)


def parity_gap(x: Entry) -> float | None:
    """The audit's demographic parity gap (its first grouping), else the mitigation's original's."""
    for g in ((x.audit or {}).get("groupings") or {}).values():
        v = ((g.get("gaps") or {}).get("demographic_parity_difference") or {}).get("value")
        if _finite(v):
            return v
    rows = (x.mitigate or {}).get("rows") or []
    return rows[0].get("demographic_parity_difference") if rows else None


def pareto(points: list[tuple[float, float]]) -> list[bool]:
    """Whether each ``(cost, score)`` is Pareto-optimal: no other point costs no more and scores no
    less, and is better in one of the two."""
    return [not any(c2 <= c and s2 >= s and (c2 < c or s2 > s) for c2, s2 in points) for c, s in points]


# ---------------------------------------------------------------------- the page


def render(entries: list[Entry], studies: list[dict[str, Any]], notes: list[str],
           diff: list[tuple[str, list[Any]]], tmp: Path) -> str:
    labels = [x.label for x in entries]
    title = f"Comparing {len(entries)} runs"
    parts = [f"<h1>{e(title)}</h1>",
             f"<p class=muted>{e(', '.join(labels))}; generated "
             f"{dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by netwright.</p>"]
    sections = SECTIONS + ([("studies", "Studies")] if studies else [])
    parts.append("<nav>" + "".join(f'<a href="#{k}">{e(t)}</a>' for k, t in sections) + "</nav>")
    bodies = {"runs": _runs(entries, notes), "spec": _spec(entries, diff), "curves": _curves(entries, tmp),
              "test": _test(entries), "tradeoffs": _tradeoffs(entries, tmp), "studies": _studies(studies)}
    for key, heading in sections:
        parts.append(f'<section id="{key}"><h2>{e(heading)}</h2>{bodies[key]}</section>')
    css = CSS + ".scroll{overflow-x:auto;max-width:100%}.best{font-weight:600;color:#116329}"
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{e(title)} - netwright</title>"
            f"<style>{css}</style></head><body>{''.join(parts)}</body></html>\n")


def _grid(headers: list[str], rows: list[list[str]], ident: str = "") -> str:
    """A table of cells that are HTML already (headers are text)."""
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<div class=scroll><table{f" id={ident}" if ident else ""}><tr>{head}</tr>{body}</table></div>'


def _side_by_side(corner: str, entries: list[Entry], keys: list[str], cell: Any, ident: str) -> str:
    """Runs as columns (keys as rows); many runs as rows instead."""
    if len(entries) <= SIDE_BY_SIDE:
        return _grid([corner, *[_name(x) for x in entries]],
                     [[e(k), *[cell(x, k) for x in entries]] for k in keys], ident)
    return _grid(["run", *keys], [[e(_name(x)), *[cell(x, k) for k in keys]] for x in entries], ident)


def _name(x: Entry) -> str:
    return x.label + (" (best trial)" if x.best else "")


def _value(v: Any) -> str:
    if v is MISSING:
        return "<span class=muted>absent</span>"
    if isinstance(v, str):
        return e(v)
    return e(json.dumps(v, default=str))


def _runs(entries: list[Entry], notes: list[str]) -> str:
    rows = []
    for x in entries:
        s = x.summary
        best = (f"{s['monitor']} {num(s['best_value'], 4)} (epoch {s.get('best_epoch')})"
                if s.get("monitor") and _finite(s.get("best_value")) else "-")
        stages = [n for n, v in (("evaluate", x.eval), ("compress", x.compress), ("audit", x.audit),
                                 ("mitigate", x.mitigate)) if v]
        rows.append([f'<span class="{"best" if x.best else ""}">{e(_name(x))}</span>', e(x.run.path),
                     e(x.spec.get("data.name", "-")), e(x.spec.get("model.name", "-")), num(len(x.history)), e(best),
                     e(to_best(s.get("time_to"))), num(s.get("seconds"), 1), e(", ".join(stages) or "-")])
    out = _grid(["run", "folder", "dataset", "model", "epochs", "best validation", "to 99% of best",
                 "training (s)", "stages"], rows, "runs-table")
    return out + "".join(f"<p class=muted>{e(n)}</p>" for n in notes)


def _spec(entries: list[Entry], diff: list[tuple[str, list[Any]]]) -> str:
    if not diff:
        return "<p>The resolved specs are the same in every key (apart from the run names).</p>"
    values = {k: dict(zip((id(x) for x in entries), vs)) for k, vs in diff}
    same = len({k for x in entries for k in x.spec} - SKIP_KEYS) - len(diff)
    return (f"<p>{len(diff)} keys of the resolved specs (<code>spec.yaml</code>) differ; the other {same} are the "
            "same in every run.</p>"
            + _side_by_side("key", entries, [k for k, _ in diff], lambda x, k: _value(values[k][id(x)]), "spec-diff"))


def _curve_metric(entries: list[Entry]) -> str | None:
    """The monitored validation metric most runs share (a loss is drawn already), else the headline one."""
    keys = {k for x in entries for r in x.history for k in r}
    monitors = Counter(x.summary.get("monitor") for x in entries)
    for m, _ in monitors.most_common():
        if m and m in keys and not m.endswith("loss"):
            return m
    return next((k for k in ("val_accuracy", "val_r2") if k in keys),
                next((k for x in entries for r in x.history[:1] for k in r
                      if k.startswith("val_") and not k.endswith("loss")), None))


def _curves(entries: list[Entry], tmp: Path) -> str:
    drawn = [x for x in entries if x.history]
    if not drawn:
        return "<p class=muted>No run has a <code>metrics.jsonl</code> yet: <code>netwright train SPEC</code>.</p>"
    import matplotlib.pyplot as plt

    from ..plots import save_figure

    metric = _curve_metric(drawn)
    fig, axes = plt.subplots(1, 2 if metric else 1, figsize=(9 if metric else 5, 3.6), squeeze=False)
    cmap = plt.get_cmap("tab10" if len(drawn) <= 10 else "tab20")
    for i, x in enumerate(drawn):
        color = cmap(i % cmap.N)
        series = [("train_loss", "-", axes[0, 0]), ("val_loss", "--", axes[0, 0])]
        series += [(metric, "-", axes[0, 1])] if metric else []
        labelled = False
        for key, style, ax in series:
            pts = [(r.get("epoch", j + 1), r[key]) for j, r in enumerate(x.history) if _finite(r.get(key))]
            if pts:
                ax.plot(*zip(*pts), style, color=color, marker="o", markersize=3,
                        label=None if labelled else _name(x))
                labelled = True
    axes[0, 0].set_title("loss (solid: train, dashed: validation)")
    if metric:
        axes[0, 1].set_title(f"{metric} (validation)")
    for ax in axes[0]:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.tight_layout()
    fig.legend(handles, names, loc="upper center", bbox_to_anchor=(0.5, 0), ncol=min(3, len(names)), fontsize=9)
    path = save_figure(fig, tmp / "curves.png")
    note = "" if len(drawn) == len(entries) else "<p class=muted>Without metrics.jsonl: " + e(
        ", ".join(x.label for x in entries if not x.history)) + ".</p>"
    return img(path, "learning curves, one colour per run") + note


def _test(entries: list[Entry]) -> str:
    done = [x for x in entries if x.eval]
    if not done:
        return ("<p>No run has been evaluated: <code>netwright evaluate RUN</code> writes its test metrics "
                "(<code>eval.json</code>).</p>")
    keys = list(dict.fromkeys(k for x in done for k, v in (x.eval.get("metrics") or {}).items() if _finite(v)))

    def cell(x: Entry, k: str) -> str:
        if x.eval is None:
            return "<span class=muted>not evaluated</span>"
        if k == "split":
            return e(x.eval.get("split", "-"))
        if k == "examples":
            return num(x.eval.get("n"))
        return num((x.eval.get("metrics") or {}).get(k), 4)

    out = _side_by_side("metric", entries, ["split", "examples", *keys], cell, "test-metrics")
    missing = [x for x in entries if x.eval is None]
    if missing:
        out += ("<p class=muted>Not evaluated: " + ", ".join(f"<code>netwright evaluate {e(x.run.path)}</code>"
                                                           for x in missing)
                + " (<code>netwright evaluate RUN</code> writes a run's test metrics).</p>")
    return out


def _front(ident: str, caption: str, kind: str, points: list[dict[str, Any]], score: str,
           costs: list[tuple[str, str]], tmp: Path) -> str:
    """A table and a picture of ``points`` (label, score, each cost): the Pareto-optimal marked for
    every cost that two or more eligible points have."""
    import matplotlib.pyplot as plt

    from ..plots import save_figure

    panels = []
    flags: dict[str, dict[int, bool]] = {}
    for key, axis in costs:
        have = [i for i, p in enumerate(points) if _finite(p.get(key)) and _finite(p.get("score"))]
        eligible = [i for i in have if not points[i].get("excluded")]
        if len(have) < 2:
            continue
        optimal = pareto([(points[i][key], points[i]["score"]) for i in eligible])
        flags[key] = {i: o for i, o in zip(eligible, optimal)}
        panels.append((key, axis, have))
    if not panels:
        return ""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False)
    for ax, (key, axis, have) in zip(axes[0], panels):
        front = sorted((points[i][key], points[i]["score"]) for i in have if flags[key].get(i))
        if front:
            ax.plot(*zip(*front), "--", color="#c44e52", alpha=0.6, zorder=1, drawstyle="steps-post")
        for i in have:
            p, opt = points[i], flags[key].get(i)
            style = (dict(color="#c44e52", edgecolor="black", s=70, zorder=3) if opt else
                     dict(color="#8c959f", s=40, zorder=2, marker="o" if i in flags[key] else "x"))
            ax.scatter(p[key], p["score"], **style)
            ax.annotate(p["label"], (p[key], p["score"]), fontsize=9, xytext=(4, 4), textcoords="offset points")
        ax.set_xlabel(f"{axis} (lower is better)")
        ax.set_ylabel(f"test {score}")
        ax.set_title(f"{score} against {axis.split(' (')[0]}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.margins(0.2)
    fig.tight_layout()
    picture = img(save_figure(fig, tmp / f"{ident}.png"), f"{caption}: red points are Pareto-optimal")

    def mark(key: str, i: int) -> str:
        if not _finite(points[i].get(key)) or key not in flags:
            return "-"
        if i not in flags[key]:
            return "<span class=muted>excluded (degenerate)</span>"
        return '<span class="ok">Pareto-optimal</span>' if flags[key][i] else ""

    shown = [k for k, _ in costs if k in flags]
    headers = [kind, f"test {score}", *[a for k, a in costs if k in flags], *[f"Pareto: {k}" for k in shown]]
    rows = [[e(p["label"]), num(p.get("score"), 4), *[num(p.get(k), 4) for k in shown], *[mark(k, i) for k in shown]]
            for i, p in enumerate(points)]
    return f'<div id="{e(ident)}"><h3>{e(caption)}</h3>{_grid(headers, rows)}{picture}</div>'


def _tradeoffs(entries: list[Entry], tmp: Path) -> str:
    out = ("<p>A point is Pareto-optimal when no other point has a higher test score at no greater cost "
           "(size, latency or parity gap).</p>")
    scored = [(x, headline(x)) for x in entries]
    metric = next((h[0] for _, h in scored if h), None)
    points = [{"label": x.label, "score": h[1], "size": x.size / 1024 if x.size else None,
               "latency": ((x.compress or {}).get("original") or {}).get("latency_ms", {}).get("1"),
               "gap": parity_gap(x)} for x, h in scored if h and h[0] == metric]
    across = _front("front-runs", "Across the compared runs", "run", points, metric or "",
                    [("size", "model size (KB)"), ("latency", "latency at batch 1 (ms)"),
                     ("gap", "demographic parity gap")], tmp) if len(points) >= 2 else ""
    out += across or ("<p class=muted>Across the runs: needs test metrics in at least two runs "
                      "(<code>netwright evaluate RUN</code>).</p>")
    for n, x in enumerate(entries):
        c = x.compress
        if c:
            pts = [{"label": name, "score": row.get("test_score"),
                    "size": row["size_bytes"] / 1024 if _finite(row.get("size_bytes")) else None,
                    "latency": (row.get("latency_ms") or {}).get("1")}
                   for name, row in [("original", c.get("original") or {}), *(c.get("variants") or {}).items()]]
            out += _front(f"front-compress-{n}", f"{x.label}: compressed variants (netwright compress)", "variant",
                          pts, c.get("metric", "score"),
                          [("size", "size on disk (KB)"), ("latency", "latency at batch 1 (ms)")], tmp)
        m = x.mitigate
        if m and m.get("rows"):
            pts = [{"label": r.get("label"), "score": r.get("accuracy"), "gap": r.get("demographic_parity_difference"),
                    "excluded": any(str(f).startswith("degenerate") for f in r.get("flags") or [])} for r in m["rows"]]
            out += _front(f"front-mitigate-{n}", f"{x.label}: mitigations (netwright mitigate)", "variant", pts,
                          "accuracy", [("gap", "demographic parity gap")], tmp)
    if not any(x.compress or x.mitigate for x in entries):
        out += ("<p class=muted>No run has compressed variants (<code>netwright compress RUN</code>) or mitigations "
                "(<code>netwright mitigate RUN</code>) to weigh.</p>")
    return out


def _studies(studies: list[dict[str, Any]]) -> str:
    out = ""
    for s in studies:
        if s["kind"] == "folds":
            out += f"<h3>{e(s['folder'])}: cross-validation, {e(s.get('folds'))} folds</h3>"
            out += _grid(["test metric", "mean", "sd", "min", "max"],
                         [[e(k), num(v.get("mean"), 4), num(v.get("sd"), 4), num(v.get("min"), 4), num(v.get("max"), 4)]
                          for k, v in s["test"].items() if isinstance(v, dict)])
            continue
        metric = s.get("metric") or "value"
        assumed = " (direction not recorded: assumed)" if s["direction_assumed"] else ""
        best = f"best trial: {s['best']}" if s["best"] is not None else "no finished trial"
        out += f"<h3>{e(s['folder'])}: tuning study, {len(s['trials'])} trials</h3>"
        out += f"<p>{e(metric)}, {e(s['direction'])}{e(assumed)}; {e(best)}.</p>"
        rows = []
        for t in s["trials"]:
            best_row = t["number"] is not None and t["number"] == s["best"]
            params = t.get("params")
            rows.append([f'<span class="best">{e(t["number"])} (best)</span>' if best_row
                         else e("-" if t["number"] is None else t["number"]),
                         e(t.get("state", "-")), num(t.get("value"), 4), e(t.get("run", "-")),
                         e(", ".join(f"{k}={v}" for k, v in params.items())) if isinstance(params, dict) else "-"])
        out += _grid(["trial", "state", metric, "run", "parameters"], rows, "study-trials")
    return out
