"""``netwright demo``: the whole life of two networks on bundled data.

A CNN on the digits: train, evaluate, explain, compress, export and verify. A tabular network
on loan decisions with a planted bias: train, evaluate, explain, audit, mitigate, monitor,
score new applicants in bulk.
Then a model card for each.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import yaml
from .run import REPORT_HTML

# The two specs, as in examples/digits_cnn.yaml and examples/loans_fairness.yaml (a test keeps them equal).
DIGITS = yaml.safe_load("""
data: {name: digits, val: 0.15, test: 0.15}
model: {name: cnn, channels: [32, 64], hidden: [128], dropout: 0.2}
train:
  epochs: 30
  batch_size: 64
  optimizer: {name: adamw, lr: 0.003, weight_decay: 0.0001}
  schedule: {name: onecycle}
  augment: {shift: 1, rotate: 8}
  label_smoothing: 0.05
card:
  description: A small convolutional network that reads 8x8 grey-scale images of handwritten digits.
  intended_use: Demonstration and teaching; recognising single, centred, 8x8 digits like those of the UCI set.
  users: People learning or evaluating netwright.
  out_of_scope: Real handwriting at other resolutions, letters, or any decision that affects a person.
  limitations: Trained on 1,258 images written by 43 people in the 1990s.
""")

LOANS = yaml.safe_load("""
data: {name: biased, gap: 0.15}
model: {name: mlp, hidden: [32]}
train: {epochs: 20}
fairness:
  sensitive: [group]
  positive_label: approved
  penalty: {constraint: demographic_parity, weight: 1.0}
card:
  description: A feed-forward network that approves or denies synthetic loan applications.
  intended_use: Showing how a learned bias is measured, reduced and monitored.
  out_of_scope: Any real lending decision; the data is synthetic.
  ethical_considerations: The training labels carry a planted 15-point gap between groups A and B.
""")


def demo(runs_dir: str | os.PathLike | None = None, say: Callable[[str], Any] = print) -> dict[str, Path]:
    """Run both lives; returns the paths of the two model cards."""
    import netwright
    from netwright.data.synthetic import write_csv
    from netwright.training.time_to import to_best

    cards = {}
    run = netwright.train(DIGITS, name="demo", runs_dir=runs_dir, overwrite=True, progress="quiet")
    acc = netwright.evaluate(run)["metrics"]["accuracy"]
    say(f"digits CNN: test accuracy {acc:.4f} ({run.path})")
    reached = run.read_json("train.json").get("time_to")
    if reached:
        say(f"  99% of its best {reached['metric']} after {to_best(reached)} of {reached['seconds']:.1f} s training")
    ex = netwright.explain(run, samples=4)
    gap = ex.get("completeness", {}).get("mean_relative_gap")
    say(f"  explained {len(ex['samples'])} examples with {len(ex['methods'])} methods; "
        f"flagged: {', '.join(sorted({f['method'] for f in ex['flagged']})) or 'none'}"
        + (f"; integrated gradients completeness gap {100 * gap:.2f}% mean" if gap is not None else ""))
    comp = netwright.compress(run, quantize="int8", prune=0.5, progress="quiet")
    int8 = comp["variants"]["int8"]["vs_original"]
    say(f"  int8: {int8['size_ratio']:.2f}x smaller, {int8['speedup_batch_64']:.2f}x faster at batch 64, "
        f"{int8['test_score_points']:+.2f} points")
    ver = netwright.export(run)
    say(f"  ONNX verified: max |diff| {ver['max_abs_diff']:.1e}")
    netwright.report(run)
    cards["digits"] = run.file(REPORT_HTML)

    fair = netwright.train(LOANS, name="demo-fairness", runs_dir=runs_dir, overwrite=True, progress="quiet")
    acc = netwright.evaluate(fair)["metrics"]["accuracy"]
    netwright.explain(fair, samples=4)
    audit = netwright.audit(fair)
    gap = audit["groupings"]["group"]["gaps"]["demographic_parity_difference"]
    say(f"loan decisions: test accuracy {acc:.4f}; approval gap between groups {gap['value']:.3f} "
        f"[{gap['ci'][0]:.3f}, {gap['ci'][1]:.3f}] ({fair.path})")
    say(f"  {audit['summary'][0]}")
    mitigation = netwright.mitigate(fair, sweep=True)
    for row in mitigation["rows"][1:]:
        flags = f" ({'; '.join(row['flags'])})" if row["flags"] else ""
        say(f"  {row['label']}: gap {row['demographic_parity_difference']:.3f}, "
            f"accuracy {row['accuracy_points']:+.1f} points{flags}")
    say(f"  recommended: {mitigation['judgement']['recommended']}")
    new = write_csv(str(fair.file("new_applicants.csv")), n=800, shift=0.5, seed=7)
    drift = netwright.monitor(fair, new)
    say(f"  new applicants: drift in {', '.join(drift['drifted']) or 'nothing'}")
    scored = netwright.predict_file(fair, new, fair.file("new_applicants_scored.parquet"))
    say(f"  scored {scored['rows']} new applicants in bulk -> {scored['out']}")
    netwright.report(fair)
    cards["fairness"] = fair.file(REPORT_HTML)
    for name, path in cards.items():
        say(f"model card ({name}): {path}")
    say(f"try the digits model in a browser: {command()} serve {run.path}")
    return cards


def command() -> str:
    """How to type ``netwright`` here: the bare name when it is on PATH, else the launcher's path
    beside this interpreter (``.venv/bin/netwright`` after ``make demo``), so a printed command
    works as printed."""
    import os
    import shutil
    import sys
    from pathlib import Path

    found = shutil.which("netwright")
    beside = Path(sys.executable).parent / "netwright"
    if found and (not beside.exists() or Path(found).resolve() == beside.resolve()):
        return "netwright"
    return os.path.relpath(beside) if beside.exists() else f"{sys.executable} -m netwright"
