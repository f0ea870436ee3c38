"""Render the model card as one self-contained HTML file: inline CSS, pictures as data URIs,
no scripts, no external assets (readable offline)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import yaml

from ..fairness.groups import gap_pair
from ..training.time_to import describe as describe_time_to

CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;max-width:1080px;margin:0 auto;
padding:24px;background:#fff}
h1{font-size:28px;margin:0 0 4px}h2{font-size:21px;border-bottom:2px solid #d0d7de;padding-bottom:4px;margin-top:36px}
h3{font-size:16px;margin:20px 0 6px}.muted{color:#59636e}.stages span{display:inline-block;margin:2px 6px 2px 0;
padding:1px 8px;border-radius:10px;font-size:13px}.ran{background:#dafbe1;color:#116329}.skipped{background:#eee;color:#555}
table{border-collapse:collapse;margin:8px 0 14px;font-size:13.5px}th,td{border:1px solid #d0d7de;padding:3px 9px;
text-align:right}th{background:#f6f8fa}td:first-child,th:first-child{text-align:left}.pic{overflow-x:auto;max-width:100%}img{max-width:none;vertical-align:top;
border:1px solid #eee;margin:6px 0}.caveat{background:#fff8c5;border-left:4px solid #d4a72c;padding:6px 10px;margin:6px 0}
.summary{font-size:16px;background:#f6f8fa;border-left:4px solid #0969da;padding:8px 12px}
.flag{color:#cf222e;font-weight:600}.ok{color:#1a7f37}pre{background:#f6f8fa;padding:10px;overflow:auto;font-size:12px}
nav a{margin-right:12px;font-size:13px;color:#0969da;text-decoration:none}dl{display:grid;grid-template-columns:max-content 1fr;
gap:2px 14px}dt{font-weight:600}dd{margin:0}
"""

SECTIONS = [("model", "Model details"), ("use", "Intended use"), ("data", "Data"), ("metrics", "Metrics"),
            ("training", "Training"), ("explanations", "Explanations"), ("fairness", "Fairness"),
            ("compression", "Compression and deployment"), ("monitoring", "Monitoring"),
            ("resources", "Resources"), ("caveats", "Caveats")]

COMMANDS = {"evaluate": "netwright evaluate RUN", "explain": "netwright explain RUN", "audit": "netwright audit RUN",
            "mitigate": "netwright mitigate RUN", "compress": "netwright compress RUN", "export": "netwright export RUN",
            "monitor": "netwright monitor RUN NEW_DATA.csv", "train": "netwright train SPEC"}


def e(value: Any) -> str:
    return html.escape(str(value))


def num(v: Any, digits: int = 3) -> str:
    """A number as a reader wants it: ``digits`` decimals, two significant digits below 0.01,
    thousands separated."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v != v:
            return "-"
        if 0 < abs(v) < 0.01:
            return f"{v:.2g}"
        return f"{v:,.{digits}f}" if abs(v) < 1e5 else f"{v:.3g}"
    return e(v)


def img(path: Path | None, alt: str, folded: bool = False) -> str:
    """A picture at its own pixel size (a wide one scrolls rather than shrinks, so that its text
    stays legible); ``folded``: behind a click (the per-example grids)."""
    if path is None or not Path(path).is_file():
        return ""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    picture = f'<div class="pic"><img alt="{e(alt)}" src="data:image/png;base64,{data}"></div>'
    return f"<details><summary>{e(alt)} (click to show)</summary>{picture}</details>" if folded else picture


def table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c if isinstance(c, str) and c.startswith('<') else num(c)}</td>"
                                    for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def dl(items: dict[str, Any]) -> str:
    return "<dl>" + "".join(f"<dt>{e(k)}</dt><dd>{num(v) if not isinstance(v, str) else e(v)}</dd>"
                            for k, v in items.items() if v is not None) + "</dl>"


def render(card: dict[str, Any], pictures: dict[str, Path]) -> str:
    parts = [f"<h1>{e(card['title'])}</h1>",
             f"<p class=muted>Model card for run <b>{e(card['run'])}</b>, generated {e(card['generated'])} by netwright.</p>",
             "<p class=summary>" + "<br>".join(e(line) for line in card.get("summary", [])) + "</p>"]
    if card["intended_use"].get("description"):
        parts.append(f"<p>{e(card['intended_use']['description'])}</p>")
    parts.append("<p class=stages>" + "".join(
        f'<span class="{"ran" if ran else "skipped"}">{e(s)}{"" if ran else " (not run)"}</span>'
        for s, ran in card["stages"].items()) + "</p>")
    parts.append("<nav>" + "".join(f'<a href="#{k}">{e(t)}</a>' for k, t in SECTIONS) + "</nav>")
    for key, title in SECTIONS:
        body = globals()[f"_{key}"](card, pictures)
        parts.append(f'<section id="{key}"><h2>{e(title)}</h2>{body}</section>')
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{e(card['title'])} - model card</title>"
            f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>\n")


def _not_run(stage: str, card: dict[str, Any]) -> str:
    if stage in card.get("not_applicable", ()):
        return f"<p class=muted>The {e(stage)} stage does not apply to this model ({e(card['data']['task'])}).</p>"
    return f"<p class=muted>The {e(stage)} stage has not run for this model: <code>{e(COMMANDS[stage])}</code>.</p>"


def _model(card: dict[str, Any], pics: dict[str, Path]) -> str:
    m = card["model_details"]
    out = dl({"model": m["name"], "family": m.get("family"), "parameters": m.get("parameters"),
              "FLOPs per example (forward)": m.get("flops_per_example")})
    out += "<h3>Hyper-parameters</h3>" + dl({k: str(v) for k, v in m["hyper_parameters"].items()})
    if m.get("layers"):
        out += "<details><summary>Layers with parameters</summary>" + table(
            ["layer", "type", "parameters"], [[x["name"], x["type"], x["parameters"]] for x in m["layers"]]) + "</details>"
    out += f"<details><summary>Resolved spec</summary><pre>{e(yaml.safe_dump(m['spec'], sort_keys=False))}</pre></details>"
    return out


def _use(card: dict[str, Any], pics: dict[str, Path]) -> str:
    use = {k.replace("_", " "): v for k, v in card["intended_use"].items() if k not in ("title", "description")}
    if not use:
        return "<p class=muted>Not stated: fill in the <code>card</code> section of the spec (intended_use, users, out_of_scope, limitations, ...).</p>"
    return dl(use)


def _data(card: dict[str, Any], pics: dict[str, Path]) -> str:
    d = card["data"]
    s = d["splits"]
    return dl({"dataset": d["name"], "source": d["source"], "task": d["task"], "modality": d["modality"],
               "input shape": str(tuple(d["input_shape"])), "target": d["target"],
               "classes": ", ".join(d["classes"][:20]) if d["classes"] else None,
               "features": f"{len(d['features'])}: {', '.join(d['features'][:12])}{'...' if len(d['features']) > 12 else ''}"
               if d["features"] else None,
               "sensitive attributes": ", ".join(d["sensitive"]) or "none",
               "splits (train / val / test)": f"{s.get('train')} / {s.get('val')} / {s.get('test')}"
                                              + (" (stratified)" if d["stratified"] else ""),
               "validation rows by role": "; ".join(f"{r['rows']} choose {r['chooses']}"
                                                    for r in d.get("val_roles", {}).values()) or None,
               "fingerprint": d["fingerprint"]})


def _metrics(card: dict[str, Any], pics: dict[str, Path]) -> str:
    ev = card["metrics"]
    if not ev:
        return _not_run("evaluate", card)
    out = f"<p>{e(ev['split'])} split, {ev['n']} examples.</p>"
    trivial = next((b for b in (ev.get("baseline"), ev.get("trivial_baseline")) if b and "metrics" in b), None)
    if trivial is None:
        out += table(["metric", "value"], [[k, v] for k, v in ev["metrics"].items()])
    else:  # beside each metric, the trivial predictor's (fitted on the train split)
        out += table(["metric", "value", f"baseline: {trivial['name']}"],
                     [[k, v, trivial["metrics"].get(k, "")] for k, v in ev["metrics"].items()])
        out += f"<p class=muted>Baseline: {e(trivial['name'])}, fitted on the train split" \
               f"{': ' + e(trivial['detail']) if trivial.get('detail') else ''}.</p>"
    if ev.get("calibration"):  # netwright calibrate
        c = ev["calibration"]
        out += (f"<p>Temperature scaling (T = {c['temperature']:.4f}, fitted on the validation split's temperature "
                f"rows) on this split:</p>")
        out += table(["measure", "before", "after"], [[k, c["before"][k], c["after"][k]] for k in ("ece", "brier", "nll")])
    if ev.get("conformal"):  # evaluate --coverage
        c = ev["conformal"]
        size = f"mean set size {c['mean_set_size']:.3f}" if "mean_set_size" in c else f"mean interval width {c['mean_width']:.4g}"
        out += (f"<p>Conformal prediction ({e(c['method'])}, threshold fitted on {c['n']} rows): coverage "
                f"{c['coverage']:.4f} on this split for a target of {c['coverage_target']:g}, {e(size)}.</p>")
    if ev.get("baseline") and "model" in ev["baseline"]:  # text, graph and ratings data
        b = ev["baseline"]
        scores = ", ".join(f"{k} {v:.4f}" for k, v in b.items() if isinstance(v, float))
        out += f"<p>Baseline on the same split: {e(b['model'])}, fitted on {e(b['fitted_on'])}: {e(scores)}.</p>"
    if ev.get("sample"):  # language models
        out += f"<p>Generated text (the prompt is the start of a test window):</p><pre>{e(ev['sample'])}</pre>"
    if ev.get("examples"):  # translation
        keys = list(ev["examples"][0])
        out += "<details><summary>Translated test sentences</summary>" + table(
            keys, [[x[k] for k in keys] for x in ev["examples"]]) + "</details>"
    if ev.get("per_class_ap50"):  # detection
        out += "<details><summary>AP at IoU 0.5 per class</summary>" + table(
            ["class", "AP@0.5"], [[k, "" if v is None else v] for k, v in ev["per_class_ap50"].items()]) + "</details>"
    if ev.get("per_class"):  # the kind's per-class scores, as its evaluation names them
        keys = list(ev["per_class"][0])
        out += "<details><summary>Per class</summary>" + table(
            [k.replace("_", " ") for k in keys], [[r[k] for k in keys] for r in ev["per_class"]]) + "</details>"
    out += img(pics.get("confusion"), "confusion matrix") + img(pics.get("reliability"), "reliability diagram") \
        + img(pics.get("predictions"), "predicted against true") + img(pics.get("samples"), "generated samples")
    for k, p in pics.items():  # the pictures a kind's evaluation draws beyond those
        if k.startswith("eval:"):
            out += img(p, k.removeprefix("eval:").replace("_", " "))
    return out


def _training(card: dict[str, Any], pics: dict[str, Path]) -> str:
    t = card["training"]
    s = t["summary"]
    if not s:
        return _not_run("train", card)
    out = dl({"epochs": s.get("epochs"), "monitored metric": s.get("monitor"), "best epoch": s.get("best_epoch"),
              "best value": s.get("best_value"), "stopped early": s.get("stopped_early"), "weights kept": s.get("kept"),
              "optimizer": card["model_details"]["spec"]["train"]["optimizer"]["name"],
              "schedule": card["model_details"]["spec"]["train"]["schedule"]["name"]})
    if s.get("time_to"):
        out += f"<p>Time to be good: {e(describe_time_to(s['time_to']))}.</p>"
    o = t["overfitting"]
    out += f'<p class="{"flag" if o["flag"] else "ok"}">{e(o["detail"])}</p>'
    c = card.get("continual")
    if c:  # lifelong learning: every task's accuracy after each one
        out += (f"<p>Continual learning ({e(c['method'])}), {len(c['tasks'])} tasks in order: average accuracy "
                f"{c['average_accuracy']:.4f}, average forgetting {c['average_forgetting']:.4f}.</p>")
        out += table(["after task"] + [" / ".join(t) for t in c["tasks"]],
                     [[k + 1] + ["" if v is None else v for v in row] for k, row in enumerate(c["accuracy_matrix"])])
    cv = card.get("cross_validation")
    if cv:  # one fold of a study: how much the folds differ
        test = cv["summary"]["test"]
        out += (f"<h3>Cross-validation</h3><p>This run is fold {cv['fold']} of {cv['folds']}; the test split is "
                f"shared. Over the folds (mean, sd, range) and for the ensemble of the {cv['ensemble']['models']} "
                "models:</p>")
        out += table(["metric", "mean", "sd", "min", "max", "ensemble"],
                     [[k, v["mean"], v["sd"], v["min"], v["max"], cv["ensemble"]["metrics"].get(k, "-")]
                      for k, v in test.items()])
    return out + img(pics.get("curves"), "learning curves")


def _explanations(card: dict[str, Any], pics: dict[str, Path]) -> str:
    x = card["explanations"]
    if not x:
        return _not_run("explain", card)
    out = f"<p>Methods: {e(', '.join(x['methods']))}; {len(x['samples'])} examples.</p>"
    if x.get("completeness"):
        c = x["completeness"]
        out += (f"<p>Integrated Gradients completeness gap: {100 * c['mean_relative_gap']:.2f}% mean, "
                f"{100 * c['max_relative_gap']:.2f}% max ({e(c['definition'])}).</p>")
    rows = []
    for m, checks in x.get("sanity", {}).items():
        r = checks["randomisation"]
        d = checks.get("deletion_insertion") or {}
        ok = all(c["passed"] for c in checks.values())
        rows.append([m, r["final"], d.get("deletion_auc"), d.get("random_deletion_auc"), d.get("insertion_auc"),
                     d.get("random_insertion_auc"), '<span class="ok">passed</span>' if ok else '<span class="flag">flagged</span>'])
    if rows:
        out += "<h3>Sanity checks</h3>" + table(["method", "randomised |rho|", "deletion AUC", "random", "insertion AUC",
                                                  "random", "result"], rows)
    out += img(pics.get("global"), "mean |attribution| per feature")
    for k, alt in (("overlay", "attribution of each example"), ("features", "attribution of each example"),
                   ("sequences", "attribution of each example"), ("tokens", "attribution of each token")):
        out += img(pics.get(k), alt, folded=True)
    return out


def _fairness(card: dict[str, Any], pics: dict[str, Path]) -> str:
    f = card["fairness"]
    if not f:
        return _not_run("audit", card)
    out = ""
    a = f.get("audit")
    if a:
        out += "".join(f"<p>{e(line)}</p>" for line in a.get("summary", []))
        out += f"<p>Positive outcome: <b>{e(a['positive_label'])}</b>; {a['n']} examples ({e(a['source'])}).</p>"
        for key, grouping in a["groupings"].items():
            out += f"<h3>{e(key)}</h3>" + table(
                ["group", "count", "label rate (data)", "selection rate", "accuracy", "TPR", "FPR", "calibration gap"],
                [[g["group"], g["count"], g.get("base_rate"), g["selection_rate"], g["accuracy"],
                  g["true_positive_rate"], g["false_positive_rate"], g["calibration_gap"]] for g in grouping["groups"]])
            if a.get("sign"):
                out += f"<p>Gaps are signed: {e(a['sign'])}.</p>"
            out += table(["gap", "between", "value", "95% interval", "no gap in the interval?"],
                         [[k.replace("_", " "), gap_pair(k, v.get("between", [])), v["value"],
                           f"{v['ci'][0]:.3f} to {v['ci'][1]:.3f}" if v["ci"] else "-",
                           ("yes: not shown to differ" if v.get("includes_no_gap") else "no") if v["ci"] else "-"]
                          for k, v in grouping["gaps"].items()])
        out += img(pics.get("audit"), "rates by group")
    else:
        out += _not_run("audit", card)
    m = f.get("mitigation")
    if m:
        j = m.get("judgement")
        out += "<h3>Mitigation</h3>"
        if j:
            out += (f"<p>Recommended: <b>{e(j['recommended'])}</b> ({e(j['reason'])}). Always predicting the "
                    f"majority outcome scores {j['majority_accuracy']:.3f}.</p>")
        out += table(
            ["variant", "accuracy", "points", "parity gap size", "reduction", "equalized odds gap size", "judgement"],
            [[r["label"], r["accuracy"], r["accuracy_points"], r["demographic_parity_difference"],
              f"{100 * r['parity_gap_reduction']:.0f}%", r["equalized_odds_difference"],
              "; ".join(r.get("flags", [])) or ("Pareto-optimal" if r.get("pareto") else "")] for r in m["rows"]])
        out += img(pics.get("tradeoff"), "accuracy / fairness trade-off")
    else:
        out += _not_run("mitigate", card)
    return out


def _compression(card: dict[str, Any], pics: dict[str, Path]) -> str:
    c, d = card["compression"], card["deployment"]
    out = ""
    if c:
        rows = [[name, row["size_bytes"], row["vs_original"].get("size_ratio"), row.get("macs"),
                 row["latency_ms"]["1"], row["latency_ms"]["64"], row.get("test_score"),
                 row["vs_original"].get("test_score_points")]
                for name, row in [("original", c["original"]), *c["variants"].items()]]
        out += f"<p>Latency with {c['threads']} thread(s).</p>" + table(
            ["variant", "bytes", "x smaller", "MACs", "ms @ 1", "ms @ 64", f"test {c['metric']}", "points"], rows)
        notes = [f"{name}: {n}" for name, row in c["variants"].items() for n in row["vs_original"].get("notes", [])]
        out += "<p>Latencies are medians of 7 timed blocks.</p>" + "".join(f"<p>{e(n)}</p>" for n in notes)
        if c.get("search"):
            out += f"<p>Budget search ({c['search']['budget_points']:g} points): chose {e(c['search']['chosen'])}.</p>"
    else:
        out += _not_run("compress", card)
    if d:
        rows = [[name, v["samples"], v["max_abs_diff"], v.get("argmax_agreement"), v["criterion"],
                 '<span class="ok">passed</span>' if v["passed"] else '<span class="flag">failed</span>']
                for name, v in [("original", d["original"]), *d["variants"].items()] if v]
        out += "<h3>ONNX export, verified by ONNX Runtime</h3>" + table(
            ["model", "samples", "max |diff|", "argmax agreement", "criterion", "result"], rows)
    else:
        out += _not_run("export", card)
    return out


def _monitoring(card: dict[str, Any], pics: dict[str, Path]) -> str:
    ms = card["monitoring"]
    if not ms:
        return _not_run("monitor", card)
    out = ""
    for m in ms:
        out += f"<h3>{e(m['source'])}: {m['rows']} rows</h3>" + table(
            ["feature", "test", "statistic", "p-value", "drift"],
            [[f["feature"], f["test"], f["statistic"], f"{f['p_value']:.2g}",
              '<span class="flag">yes</span>' if f["drift"] else "no"] for f in m["features"]])
    for k, p in pics.items():
        if k.startswith("monitor:"):
            out += img(p, k)
    return out


def _resources(card: dict[str, Any], pics: dict[str, Path]) -> str:
    r = card["resources"]
    c = r.get("compute") or {}
    speed = (f"{c['flop_per_s'] / 1e9:,.1f} GFLOP/s of training = {100 * c['fraction_of_peak']:.1f}% of this "
             f"machine's measured {r.get('precision')} matmul peak ({c['peak_flop_per_s'] / 1e9:,.0f} GFLOP/s"
             + (f", measured {c['peak_measured_at']})" if c.get("peak_measured_at") else ")")
             if c else None)
    return dl({"training time (s)": r.get("training_seconds"), "peak memory (MB, process)": r.get("peak_rss_mb"),
               "device": r.get("device"), "threads": r.get("threads"),
               "precision": f"{r.get('precision')} ({r.get('precision_reason')})" if r.get("precision_reason")
               else r.get("precision"),
               "training speed": speed, "training speed method": c.get("method"),
               "parameters": card["model_details"].get("parameters"),
               "FLOPs per example (forward)": r.get("flops_per_example"), "training FLOPs": r.get("training_flops"),
               "training FLOPs method": r.get("training_flops_method"),
               "energy (kWh)": f"{r['energy_kwh']:.2e}", "energy method": r["energy_method"]})


def _caveats(card: dict[str, Any], pics: dict[str, Path]) -> str:
    items = card["caveats"]
    out = "".join(f"<div class=caveat>{e(c)}</div>" for c in items) or "<p class=ok>No caveats were generated from the stage results.</p>"
    if card["missing_stages"]:
        out += "<p class=muted>Stages that did not run, so the card cannot speak for them: " + e(
            ", ".join(card["missing_stages"])) + ".</p>"
    return out
