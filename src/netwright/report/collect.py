"""Gather what every stage wrote into one model card (Mitchell et al. 2019, "Model Cards
for Model Reporting"). Numbers are copied from the stage files, never recomputed, so the
card says exactly what the run directory holds; what no stage wrote is listed as missing."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any


from ..data.roles import describe as describe_roles
from ..run import AUDIT, COMPRESS, CONTINUAL, EVAL, EXPLAIN, MITIGATE, TRAIN, VERIFY, WEIGHTS, Run
from ..tasks import run_task

# Energy estimate: wall-clock training time x active CPU threads x this many watts (a typical
# per-core share of a server CPU's rated power), plus the GPU's typical board power on CUDA.
WATTS_PER_CPU_THREAD = 12.0
WATTS_PER_GPU = 300.0
STAGES = ("evaluate", "explain", "audit", "mitigate", "compress", "export", "monitor")


def _json(run: Run, rel: str) -> Any:
    return run.read_json(rel) if run.has(rel) else None


def _stages(run: Run) -> dict[str, bool]:
    return {
        "train": run.has(TRAIN),
        "evaluate": run.has(EVAL),
        "explain": run.has(EXPLAIN),
        "audit": run.has(AUDIT),
        "mitigate": run.has(MITIGATE),
        "compress": run.has(COMPRESS),
        "export": run.has(VERIFY),
        "monitor": bool(list(run.file("monitor").glob("*.json"))) if run.has("monitor") else False,
    }


def _not_applicable(run: Run, task: Any) -> list[str]:
    """The card's stages that do not apply to the run's kind (a GAN is not explained, a policy
    not audited, a translation model only evaluated)."""
    return [s for s in STAGES if s not in task.stages]


def model_details(run: Run) -> dict[str, Any]:
    """Family, layers, parameters and forward FLOPs (``torch.utils.flop_counter``)."""
    from ..models import MODELS

    spec = run.spec
    model = run.load_model() if run.has(WEIGHTS) else None
    details: dict[str, Any] = {"name": spec.model.name, "family": MODELS.get(spec.model.name).meta.get("family"),
                               "hyper_parameters": spec.model.params}
    if model is None:
        return details
    details["flops_per_example"] = run_task(run).forward_flops(model)  # a generator's forward is a sample
    details["parameters"] = sum(p.numel() for p in model.parameters())
    details["layers"] = [{"name": n, "type": type(m).__name__, "parameters": sum(p.numel() for p in m.parameters())}
                         for n, m in model.named_modules()
                         if n and not list(m.children()) and any(True for _ in m.parameters())]
    return details


def overfitting(history: list[dict[str, Any]], summary: dict[str, Any]) -> dict[str, Any]:
    """Flag a growing train/validation gap: validation loss more than 10% above its best at the
    end while the gap to the training loss has widened since the best epoch."""
    if not history or history[0].get("val_loss") is None:
        return {"flag": False, "detail": "no validation loss was recorded: overfitting cannot be judged"}
    losses = [(r["epoch"], r["train_loss"], r["val_loss"]) for r in history if r.get("val_loss") is not None]
    best_epoch, best_train, best_val = min(losses, key=lambda t: t[2])
    last_epoch, last_train, last_val = losses[-1]
    gap_best, gap_last = best_val - best_train, last_val - last_train
    flag = last_val > 1.1 * best_val and gap_last > gap_best
    kept = summary.get("best_epoch") if summary.get("kept") == "best" else summary.get("epochs")
    detail = (f"validation loss was lowest at epoch {best_epoch} ({best_val:.4f}) and ended at {last_val:.4f} "
              f"(epoch {last_epoch}); the validation-minus-training loss gap went from {gap_best:+.4f} to "
              f"{gap_last:+.4f}. ")
    detail += "Overfitting: the gap grew while validation loss rose. " if flag else "No sign of overfitting. "
    if summary.get("stopped_early"):
        detail += f"Early stopping ended training at epoch {summary['epochs']}; "
    detail += f"the weights kept are epoch {kept}'s."
    return {"flag": flag, "best_epoch": best_epoch, "last_epoch": last_epoch, "gap_at_best": gap_best,
            "gap_at_end": gap_last, "kept_epoch": kept, "stopped_early": bool(summary.get("stopped_early")),
            "detail": detail}


def resources(run: Run, summary: dict[str, Any], flops: int | None) -> dict[str, Any]:
    info = run.info
    seconds = summary.get("seconds", 0.0)
    threads = summary.get("threads", 1)
    watts = threads * WATTS_PER_CPU_THREAD + (WATTS_PER_GPU if str(summary.get("device", "")).startswith("cuda") else 0)
    out = {"training_seconds": seconds, "peak_rss_mb": summary.get("peak_rss_mb"), "device": summary.get("device"),
           "threads": threads, "precision": summary.get("precision"), "precision_reason": summary.get("precision_reason"),
           "compute": summary.get("compute"), "energy_kwh": seconds * watts / 3.6e6,
           "energy_method": (f"estimate, not a measurement: {seconds:.1f} s of training x {threads} CPU thread(s) x "
                             f"{WATTS_PER_CPU_THREAD:g} W each"
                             + (f" + one GPU at {WATTS_PER_GPU:g} W" if watts > threads * WATTS_PER_CPU_THREAD else ""))}
    if flops:
        examples = info.splits.get("train", 0) * summary.get("epochs", 0)
        out["flops_per_example"] = flops
        out["training_flops"] = 3 * flops * examples
        out["training_flops_method"] = "3 x forward FLOPs (forward + backward) x training examples x epochs"
    return out


def caveats(card: dict[str, Any]) -> list[str]:
    """Warnings generated from the stage results."""
    out = []
    metrics = card.get("metrics") or {}
    if metrics.get("n") is not None and metrics["n"] < 100:
        out.append(f"The test split has only {metrics['n']} examples: its metrics are uncertain.")
    if card["training"].get("overfitting", {}).get("flag"):
        out.append("Training overfitted: " + card["training"]["overfitting"]["detail"])
    expl = card.get("explanations") or {}
    for f in expl.get("flagged", []):
        out.append(f"Explanation method '{f['method']}' failed its {f['check']} check: {f['detail']}.")
    gap = (expl.get("completeness") or {}).get("mean_relative_gap")
    if gap is not None and gap > 0.05:
        out.append(f"Integrated Gradients misses completeness by {100 * gap:.1f}% on average.")
    audit = (card.get("fairness") or {}).get("audit") or {}
    for w in audit.get("warnings", []):
        out.append("Fairness: " + w + ".")
    for key, grouping in audit.get("groupings", {}).items():
        dp = grouping["gaps"]["demographic_parity_difference"]
        if dp["ci"] and dp["ci"][0] > 0.05:
            a, b = dp.get("between", ["one group", "another"])
            out.append(f"The selection rate of {a} exceeds that of {b} by {dp['value']:.3f} "
                       f"(95% interval {dp['ci'][0]:.3f} to {dp['ci'][1]:.3f}).")
    for m in card.get("monitoring") or []:
        if m.get("drift"):
            out.append(f"Drift found in {m['source']}: {', '.join(m['drifted'])}.")
    comp = card.get("compression") or {}
    for name, row in (comp.get("variants") or {}).items():
        points = row.get("vs_original", {}).get("test_score_points")
        if points is not None and points < -1.0:
            out.append(f"Compressed variant '{name}' loses {-points:.1f} points of test {comp.get('metric')}.")
    return out


def collect(run: Run) -> dict[str, Any]:
    """The model card as data (``report.json``)."""
    spec, info = run.spec, run.info
    summary = _json(run, TRAIN) or {}
    history = run.metrics()
    details = model_details(run)
    stages = _stages(run)
    task = run_task(run)
    skip = _not_applicable(run, task)
    card: dict[str, Any] = {
        "title": spec.card.title or f"{spec.model.name} on {info.name}",
        "run": run.name,
        "generated": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "stages": stages,
        "missing_stages": [s for s, ran in stages.items() if not ran and s not in skip],
        "not_applicable": skip,
        "kind": {"name": task.name, "does": task.describe(info), "headline": task.headline},
        "model_details": {**details, "spec": spec.to_dict()},
        "intended_use": {k: v for k, v in spec.card.model_dump().items() if v},
        "data": {"name": info.name, "source": info.source, "task": info.task, "modality": info.modality,
                 "input_shape": list(info.input_shape), "splits": info.splits, "stratified": info.stratified,
                 "fingerprint": info.fingerprint, "classes": info.class_names, "features": info.feature_names,
                 "sensitive": info.sensitive, "target": info.target_name,
                 "val_roles": describe_roles(info.splits.get("val") or 0, task.val_roles, spec.data.split_seed)},
        "training": {"summary": summary, "history": history, "overfitting": overfitting(history, summary)},
        "continual": _json(run, CONTINUAL),
        "cross_validation": _cross_validation(run),
        "metrics": _json(run, EVAL),
        "explanations": _json(run, EXPLAIN),
        "fairness": ({"audit": _json(run, AUDIT), "mitigation": _json(run, MITIGATE)}
                     if stages["audit"] or stages["mitigate"] else None),
        "compression": _json(run, COMPRESS),
        "deployment": ({"original": _json(run, VERIFY),
                        "variants": {p.parent.name: json.loads(p.read_text())
                                     for p in sorted(run.file("export").glob("*/verify.json"))}}
                       if stages["export"] else None),
        "monitoring": [json.loads(p.read_text()) for p in sorted(run.file("monitor").glob("*.json"))]
        if stages["monitor"] else None,
        "resources": resources(run, summary, details.get("flops_per_example")),
    }
    card["caveats"] = caveats(card)
    card["summary"] = headline(card)
    return card


def headline(card: dict[str, Any]) -> list[str]:
    """Two lines for the top of the card: what the model does; how good it is against the
    baseline, and the main caveat."""
    d, m, kind = card["data"], card["model_details"], card["kind"]
    params = f" ({m['parameters']:,} parameters)" if m.get("parameters") else ""
    first = f"This {m['name']} model{params} {kind['does']}; it was trained on {d['splits']['train']:,} examples."
    ev = card.get("metrics") or {}
    key = kind["headline"]  # the metric the kind leads with
    value = (ev.get("metrics") or {}).get(key) if key else None
    if value is None:
        second = "Not evaluated yet (netwright evaluate RUN)." if not ev else "Scored by its own measure (Metrics)."
    else:
        base = next((b for b in (ev.get("trivial_baseline"), ev.get("baseline"))
                     if isinstance(b, dict) and isinstance(b.get("metrics"), dict) and key in b["metrics"]), None)
        against = f" against {base['metrics'][key]:.3f} for {base.get('name', 'the baseline')}" if base else ""
        second = f"Test {key.replace('r2', 'R²')} {value:.3f}{against}."
    caveat = card["caveats"][0] if card["caveats"] else "none found by the stages that ran."
    return [first, f"{second} Main caveat: {caveat}"]


def _cross_validation(run: Run) -> dict[str, Any] | None:
    """The study this run is a fold of (``../folds.json``), when there is one."""
    fold = run.spec.data.fold
    p = run.path.parent / "folds.json"
    if fold is None or not p.is_file():
        return None
    study = json.loads(p.read_text(encoding="utf-8"))
    return {"fold": fold, "folds": study["folds"], "summary": study["summary"], "ensemble": study["ensemble"]}


def pictures(run: Run) -> dict[str, Path]:
    """The pictures the stages drew, by section."""
    candidates = {
        "curves": "eval/curves.png", "confusion": "eval/confusion.png", "reliability": "eval/reliability.png",
        "predictions": "eval/predictions.png", "samples": "eval/samples.png", "overlay": "explain/overlay.png", "features": "explain/features.png",
        "global": "explain/global.png", "sequences": "explain/sequences.png", "tokens": "explain/tokens.png",
        "audit": "fairness/audit.png", "tradeoff": "fairness/tradeoff.png",
    }
    found = {k: run.file(v) for k, v in candidates.items() if run.has(v)}
    known = {run.file(v) for v in candidates.values()}
    for p in sorted(run.file("eval").glob("*.png")) if run.has("eval") else []:
        if p not in known:  # what a kind's evaluation draws besides (e.g. a segmentation's overlays)
            found[f"eval:{p.stem}"] = p
    for p in sorted(run.file("monitor").glob("*.png")) if run.has("monitor") else []:
        found[f"monitor:{p.stem}"] = p
    return found
