"""The ``netwright`` command: parses arguments and calls the stage functions.

Problems a user can fix print one line and exit with code 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from .errors import NetwrightError, TrainingInterrupted, environment_problem, one_line
from .run import TRAIN

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Neural networks end to end: declare, train, evaluate, predict.")
# tables get room when the output is not a terminal (rich would squeeze them to 80 columns)
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, soft_wrap=True)
_state: dict[str, list[str]] = {}  # the command line, for commands that relaunch themselves

SetOpt = Annotated[Optional[list[str]], typer.Option("--set", "-s", help="override a spec value: a.b=c (repeatable)")]
RunsDir = Annotated[Optional[Path], typer.Option(help="folder holding runs [default: ./runs or $NETWRIGHT_RUNS]")]


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
    trust_changed_plugins: Annotated[bool, typer.Option(
        "--trust-changed-plugins", help="import a run's plugin files even if they changed since training (a "
        "warning names each); or set NETWRIGHT_TRUST_CHANGED_PLUGINS=1")] = False,
) -> None:
    """--debug and --trust-changed-plugins are read by main() itself, before any command runs."""


@app.command()
def train(
    source: Annotated[str, typer.Argument(metavar="SPEC|RUN", help="spec YAML, or a run directory with --resume")],
    set_: SetOpt = None,
    name: Annotated[Optional[str], typer.Option(help="run name [default: spec name or file stem]")] = None,
    runs_dir: RunsDir = None,
    resume: Annotated[bool, typer.Option(help="continue RUN from its last checkpoint")] = False,
    overwrite: Annotated[bool, typer.Option(help="replace an existing run of the same name")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress output")] = False,
    nproc: Annotated[Optional[int], typer.Option(help="data-parallel processes on this machine (torchrun)")] = None,
    folds: Annotated[Optional[int], typer.Option(help="cross-validation: train on K stratified folds into runs/NAME/fold-i")] = None,
) -> None:
    """Train a network as a spec declares; writes runs/NAME/."""
    import os

    from .stages.train import train as train_stage
    from .training.time_to import to_best

    if folds is not None:
        if resume or nproc is not None:
            raise NetwrightError("--folds trains every fold from the start in one process; drop --resume / --nproc")
        from .stages.folds import train_folds

        _print_study(train_folds(source, folds, overrides=set_, name=name, runs_dir=runs_dir, overwrite=overwrite,
                                 progress="quiet" if quiet else "auto"))
        return

    if nproc is not None and "WORLD_SIZE" not in os.environ:
        from .training.distributed import launch

        argv = _state["argv"]
        keep, skip = [], False
        for a in argv:
            if skip:
                skip = False
            elif a == "--nproc":
                skip = True
            elif not a.startswith("--nproc="):
                keep.append(a)
        launch(keep, nproc)
        return
    run = train_stage(source, overrides=set_, name=name, runs_dir=runs_dir, resume=resume, overwrite=overwrite,
                      progress="quiet" if quiet else "auto")
    if int(os.environ.get("RANK", "0")) != 0:
        return  # the other ranks of a distributed job stay silent
    summary = run.read_json(TRAIN)
    best = summary["best"]
    shown = "  ".join(f"{k} {v:.4f}" for k, v in best.items() if k.startswith("val_"))
    out.print(f"{run.path}: {summary['epochs']} epochs in {summary['seconds']:.1f}s; "
              f"kept epoch {summary['best_epoch'] if summary['kept'] == 'best' else summary['epochs']}"
              f"{'  ' + shown if shown else ''}")
    if summary.get("time_to"):
        out.print(f"99% of the best {summary['time_to']['metric']} after {to_best(summary['time_to'])}", markup=False)
    out.print(f"next: netwright evaluate {run.path}")


def _print_study(result: dict) -> None:
    """Every fold's metrics, their mean +- sd, and the ensemble's."""
    test = result["summary"]["test"]
    table = Table(title=f"{result['folds']}-fold cross-validation (test split)")
    table.add_column("fold")
    for k in test:
        table.add_column(k, justify="right")
    for row in result["rows"]:
        table.add_row(row["run"], *[f"{row['test'][k]:.4f}" for k in test])
    table.add_row("mean +- sd", *[f"{v['mean']:.4f} +- {v['sd']:.4f}" for v in test.values()])
    ens = result["ensemble"]["metrics"]
    table.add_row(f"ensemble of {result['ensemble']['models']}", *[f"{ens[k]:.4f}" if k in ens else "-" for k in test])
    out.print(table)
    val = result["summary"]["val"]
    if val:
        out.print("validation (best epoch): " + "  ".join(f"{k} {v['mean']:.4f} +- {v['sd']:.4f}" for k, v in val.items()),
                  markup=False)


@app.command()
def tune(
    source: Annotated[str, typer.Argument(metavar="SPEC|STUDY", help="spec YAML with a tune: section, or a study "
                                                                   "folder with --resume")],
    set_: SetOpt = None,
    name: Annotated[Optional[str], typer.Option(help="study name [default: spec name or file stem]")] = None,
    runs_dir: RunsDir = None,
    trials: Annotated[Optional[int], typer.Option(min=1, help="finished trials to reach [default: tune.trials]")] = None,
    workers: Annotated[int, typer.Option(min=1, help="worker processes on this machine (they share its cores)")] = 1,
    storage: Annotated[Optional[str], typer.Option(help="Optuna storage URL shared by workers on several machines, "
                                                        "e.g. postgresql://user@host/db [default: SQLite in the "
                                                        "study folder]")] = None,
    timeout: Annotated[Optional[float], typer.Option(help="seconds after which no new trial starts")] = None,
    resume: Annotated[bool, typer.Option(help="continue the study (trials lost in a crash are tried again)")] = False,
    overwrite: Annotated[bool, typer.Option(help="replace an existing study folder")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress output")] = False,
) -> None:
    """Search the spec values its tune: section declares (Optuna); each trial an ordinary run in runs/STUDY/."""
    from .stages.tune import tune as tune_stage

    summary = tune_stage(source, overrides=set_, name=name, runs_dir=runs_dir, trials=trials, workers=workers,
                         storage=storage, timeout=timeout, resume=resume, overwrite=overwrite, quiet=quiet)
    ranked = sorted((r for r in summary["trials"] if r["state"] == "COMPLETE"),
                    key=lambda r: r["value"], reverse=summary["direction"] == "maximize")
    table = Table(title=f"study {summary['name']}: best of {len(ranked)} complete trials "
                        f"({summary['counts'].get('PRUNED', 0)} pruned, {summary['counts'].get('FAIL', 0)} failed)")
    for col in ["trial", summary["metric"], "epochs", *summary["params"]]:
        table.add_column(col, justify="left" if col == "trial" else "right")
    for r in ranked[:10]:
        table.add_row(str(r["number"]), f"{r['value']:.4f}", str(r["epochs"]),
                      *[f"{v:.3g}" if isinstance(v, float) else str(v) for v in
                        (r["params"].get(p) for p in summary["params"])])
    if not quiet:
        out.print(table)
        if summary.get("best"):
            out.print(f"next: netwright train {Path(summary['folder']) / 'best.yaml'}; "
                      f"netwright compare {summary['folder']}")


@app.command()
def evaluate(
    run: Annotated[str, typer.Argument(help="run directory")],
    split: Annotated[str, typer.Option(help="train, val or test")] = "test",
    plots: Annotated[bool, typer.Option(help="write eval/*.png")] = True,
    coverage: Annotated[Optional[float], typer.Option(help="conformal sets/intervals fitted on the validation split's "
                                                           "conformal rows to cover this share (e.g. 0.9)")] = None,
) -> None:
    """Score a trained run on a split (a cross-validation study: its ensemble); writes eval.json and pictures."""
    from .stages.evaluate import evaluate as evaluate_stage
    from .run import Run
    from .stages.folds import evaluate_study, is_study

    if is_study(run):
        _print_study(evaluate_study(run))
        return

    r = Run.open(run)
    result = evaluate_stage(r, split=split, plots=plots, coverage=coverage)
    out.print(f"{r.path}: {split} split, {result['n']} examples")
    trivial = next((b for b in (result.get("baseline"), result.get("trivial_baseline")) if b and "metrics" in b), None)
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    if trivial is not None:  # the trivial predictor fitted on the train split, metric by metric
        table.add_column(f"baseline ({trivial['name']})", justify="right")
    for k, v in result["metrics"].items():
        base = [] if trivial is None else [f"{trivial['metrics'][k]:.4f}" if k in trivial["metrics"] else ""]
        table.add_row(k, f"{v:.4f}", *base)
    for key, value in result.get("baseline", {}).items():  # text, graph and ratings data: the baseline's scores
        if isinstance(value, float):
            table.add_row(f"baseline {key}", f"{value:.4f}")
    out.print(table)
    if "baseline" in result and "model" in result["baseline"]:
        b = result["baseline"]
        fitted = ", fitted on the same training split" if b.get("fitted_on") == "train" else ""
        out.print(f"baseline: {b['model']}{fitted}", markup=False)
    if "sample" in result:
        out.print(f"sample: {result['sample']}", markup=False)
    if "calibration" in result:  # netwright calibrate: the temperature's effect on this split
        c = result["calibration"]
        out.print(f"temperature {c['temperature']:.4f}: " + ", ".join(
            f"{k} {c['before'][k]:.4f} -> {c['after'][k]:.4f}" for k in ("ece", "brier", "nll")), markup=False)
    if "conformal" in result:
        c = result["conformal"]
        size = f"mean set size {c['mean_set_size']:.3f}" if "mean_set_size" in c else f"mean width {c['mean_width']:.4g}"
        out.print(f"conformal (fitted on {c['n']} {c['rows']} rows of {c['calibrated_on']}): coverage {c['coverage']:.4f} "
                  f"for a target of {c['coverage_target']:g}, {size}", markup=False)
    out.print(f"wrote {r.file('eval.json')}")


@app.command()
def predict(
    run: Annotated[str, typer.Argument(help="run directory")],
    inputs: Annotated[str, typer.Argument(metavar="INPUT", help=".csv, .parquet, .jsonl, .npy, .npz, an image, a "
                                                                "folder of images, or .txt")],
    output: Annotated[Optional[str], typer.Option("--out", "-o", help="write to FILE (.json, .csv, .parquet or "
                                                                      ".jsonl; a table file is streamed in chunks, "
                                                                      "and may be a URL such as s3://bucket/key; "
                                                                      ".png: the picture a prediction carries, "
                                                                      "e.g. a mask)")] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", help="json or csv [default: by --out suffix, else json]")] = None,
    coverage: Annotated[Optional[float], typer.Option(help="add a conformal set (classes) or interval per row, "
                                                           "covering this share (e.g. 0.9)")] = None,
    id_column: Annotated[Optional[str], typer.Option("--id", help="copy this input column into the output "
                                                                  "beside each prediction")] = None,
    chunk_rows: Annotated[int, typer.Option(help="rows per chunk when a table file is streamed")] = 65536,
    on_error: Annotated[str, typer.Option("--on-error", help="a row (or image) that cannot be read: null: predict "
                                                             "the others and write it with an error column (exit 2 "
                                                             "with a count); skip: leave it out (exit 2 with a "
                                                             "count); stop: refuse the input")] = "null",
) -> None:
    """Predict for raw inputs with the run's preprocessing applied.

    A table file (.csv, .parquet, .jsonl), or a folder of images for an image model, predicted into
    a .csv, .parquet or .jsonl file is streamed in chunks with bounded memory (a folder's rows carry
    each image's path); a stopped job resumes from its last whole chunk.
    """
    from .atomic import write_text
    from .data.chunks import INPUTS, OUTPUTS, csv_text, flatten
    from .data.location import is_url

    suffix = Path(output).suffix.lower() if output is not None else ""
    fmt = fmt or (suffix.lstrip(".") if suffix else "json")
    folder = not is_url(inputs) and Path(inputs).is_dir()
    if suffix in OUTPUTS and (Path(inputs).suffix.lower() in INPUTS or folder):
        from .run import Run

        opened = Run.open(run)
        if opened.info.preprocess.get("kind") == ("image" if folder else "table"):
            return _predict_file(opened, inputs if is_url(inputs) else Path(inputs),
                                 output if is_url(output) else Path(output), id_column, chunk_rows, coverage, on_error)
    if is_url(inputs) or is_url(output):
        raise NetwrightError("a URL (s3://...) is read or written by bulk prediction: a table file of a tabular run "
                             "into --out FILE.csv/.parquet/.jsonl")
    output = Path(output) if output is not None else None
    if fmt not in ("json", "csv", "png"):
        raise NetwrightError(f"--format {fmt}: choose json or csv (.parquet and .jsonl take a table file of a tabular run)")
    if id_column is not None:
        raise NetwrightError("--id copies a column of a table file; give a .csv, .parquet or .jsonl INPUT and "
                             "--out FILE.csv/.parquet/.jsonl")
    from .stages.predict import Predictor

    predictor = Predictor(run, coverage, on_error=on_error)
    rows = predictor(inputs)
    if fmt == "png":
        return _write_pictures(rows, output)
    text = json.dumps(rows, indent=2) + "\n" if fmt == "json" else csv_text(flatten(rows))
    if output is None:
        sys.stdout.write(text)
    else:
        write_text(output, text)
        err.print(f"wrote {len(rows)} predictions to {output}")
    _rows_failed(predictor.failed, predictor.first_error, on_error)


def _rows_failed(failed: int, first: str | None, on_error: str) -> None:
    """Exit 2 with one line when ``--on-error`` let rows through unpredicted."""
    if failed:
        what = "written with an error column" if on_error == "null" else "left out"
        raise NetwrightError(f"{failed} {'row' if failed == 1 else 'rows'} could not be predicted ({what}); the "
                             f"first: {first}; the other rows were predicted")


def _write_pictures(rows: list[dict[str, Any]], output: Path | None) -> None:
    """The pictures predictions carry (``*_png``, e.g. a segmentation mask) as PNG files: FILE.png
    for one input, FILE-0.png, FILE-1.png ... for several."""
    import base64

    from .atomic import write_bytes

    pictures = [v for r in rows for k, v in r.items() if k.endswith("_png")]
    if output is None or not pictures:
        raise NetwrightError("--out FILE.png: this run's predictions carry no picture; write .json or .csv instead")
    paths = [output] if len(pictures) == 1 else [output.with_name(f"{output.stem}-{i}{output.suffix}")
                                                 for i in range(len(pictures))]
    for path, data in zip(paths, pictures):
        write_bytes(path, base64.b64decode(data))
    err.print(f"wrote {len(paths)} picture{'s' * (len(paths) > 1)}: {paths[0]}{' ...' if len(paths) > 1 else ''}")


def _predict_file(run, inputs: Path | str, output: Path | str, id_column: str | None, chunk_rows: int,
                  coverage: float | None, on_error: str) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .stages.predict import predict_file

    with contextlib.ExitStack() as stack:
        report = None
        if err.is_terminal:
            bar = stack.enter_context(Progress(TextColumn("[bold]predict"), BarColumn(), MofNCompleteColumn(),
                                               TextColumn("rows"), TimeElapsedColumn(), console=err, transient=True))
            task = bar.add_task("rows", total=None)

            def report(done: int, total: int | None) -> None:
                bar.update(task, completed=done, total=total)
        summary = predict_file(run, inputs, output, id_column=id_column, chunk_rows=chunk_rows, coverage=coverage,
                               progress=report, on_error=on_error)
    resumed = f" (resumed after {summary['resumed']} chunks)" if summary["resumed"] else ""
    err.print(f"wrote {summary['rows']} predictions to {output} in {summary['chunks']} chunks{resumed}")
    _rows_failed(summary["failed"], summary["first_error"], on_error)


@app.command()
def generate(
    run: Annotated[str, typer.Argument(help="a language-model or translation run")],
    prompt: Annotated[str, typer.Option(help="text to continue (or to translate)")],
    tokens: Annotated[int, typer.Option(help="tokens to generate")] = 200,
    temperature: Annotated[float, typer.Option(help="0: greedy; higher: more varied")] = 0.8,
    top_k: Annotated[Optional[int], typer.Option("--top-k", help="sample among the k likeliest tokens")] = None,
    top_p: Annotated[Optional[float], typer.Option("--top-p", help="sample within this probability mass")] = None,
    beam: Annotated[int, typer.Option(help="beam width for translation (1: greedy)")] = 1,
    seed: Annotated[int, typer.Option(help="sampling seed")] = 0,
    cache: Annotated[bool, typer.Option(help="key/value cache: one token's work per step")] = True,
) -> None:
    """Write text with a language model, or translate with an encoder-decoder."""
    from .stages.generate import generate as generate_stage

    result = generate_stage(run, prompt, tokens=tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                            seed=seed, beam=beam, cache=cache)
    out.print(result.get("translation") or result["prompt"] + result["text"], markup=False)


@app.command()
def sample(
    run: Annotated[str, typer.Argument(help="a GAN run directory")],
    n: Annotated[int, typer.Option("--n", help="how many samples")] = 64,
    label: Annotated[Optional[int], typer.Option("--class", help="generate this class (conditional GANs)")] = None,
    output: Annotated[Optional[Path], typer.Option("--out", "-o", help="picture (.png) or table (.csv) to write")] = None,
    seed: Annotated[int, typer.Option(help="noise seed")] = 0,
) -> None:
    """Generate from a GAN: a picture grid for images, a CSV for tabular data."""
    from .stages.sample import sample as sample_stage

    path = sample_stage(run, n=n, label=label, out=output, seed=seed)
    out.print(f"wrote {n} samples to {path}")


@app.command()
def explain(
    run: Annotated[str, typer.Argument(help="run directory")],
    method: Annotated[Optional[list[str]], typer.Option("--method", "-m", help="attribution method (repeatable) [default: all that apply]")] = None,
    samples: Annotated[int, typer.Option(help="explain the first N test examples")] = 8,
    index: Annotated[Optional[list[int]], typer.Option("--index", "-i", help="explain this test example (repeatable)")] = None,
    input_file: Annotated[Optional[Path], typer.Option("--input", help="explain raw inputs from a file instead")] = None,
    target: Annotated[Optional[int], typer.Option(help="class to explain [default: the predicted one]")] = None,
    sanity: Annotated[bool, typer.Option(help="run the randomisation and deletion/insertion checks")] = True,
) -> None:
    """Attribute predictions to inputs (Captum), draw them, and check that they can be trusted."""
    from .stages.explain import explain as explain_stage
    from .run import Run

    r = Run.open(run)
    result = explain_stage(r, methods=method, samples=samples, indices=index, inputs=input_file, target=target,
                           sanity=sanity)
    out.print(f"{r.path}: {len(result['samples'])} examples, methods: {', '.join(result['methods'])}")
    if "completeness" in result:
        out.print(f"integrated gradients completeness gap: {100 * result['completeness']['mean_relative_gap']:.2f}% "
                  f"mean, {100 * result['completeness']['max_relative_gap']:.2f}% max")
    if result["sanity"]:
        table = Table()
        for col in ("method", "randomised |rho|", "deletion AUC (random)", "insertion AUC (random)", "checks"):
            table.add_column(col, justify="left" if col == "method" else "right")
        for m, checks in result["sanity"].items():
            rnd = checks["randomisation"]
            di = checks.get("deletion_insertion")
            ok = all(c["passed"] for c in checks.values())
            table.add_row(m, f"{rnd['final']:.2f}",
                          f"{di['deletion_auc']:.3f} ({di['random_deletion_auc']:.3f})" if di else "-",
                          f"{di['insertion_auc']:.3f} ({di['random_insertion_auc']:.3f})" if di else "-",
                          "passed" if ok else "[bold red]FLAGGED[/]")
        out.print(table)
    for f in result["flagged"]:
        err.print(f"warning: {f['method']} failed the {f['check']} check: {f['detail']}", markup=False)
    out.print(f"wrote {r.file('explain/explain.json')} and {', '.join(result['pictures'])}")


@app.command()
def compress(
    run: Annotated[str, typer.Argument(help="run directory")],
    quantize: Annotated[Optional[str], typer.Option(help="int8 (the default when nothing else is asked)")] = None,
    prune: Annotated[Optional[float], typer.Option(help="structured pruning ratio, e.g. 0.5, then fine-tuning")] = None,
    sparsity: Annotated[Optional[float], typer.Option(help="unstructured magnitude pruning ratio, e.g. 0.5")] = None,
    budget: Annotated[Optional[float], typer.Option(help="search: smallest variant within POINTS of the original")] = None,
    finetune_epochs: Annotated[Optional[int], typer.Option(help="fine-tuning after pruning [default: the run's epochs]")] = None,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads for latency [default: all cores]")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Quantize and prune a trained run; compare size, latency and accuracy with the original."""
    from .stages.compress import compress as compress_stage
    from .run import Run

    r = Run.open(run)
    result = compress_stage(r, quantize=quantize, prune=prune, sparsity=sparsity, budget=budget,
                            finetune_epochs=finetune_epochs, threads=threads, progress="quiet" if quiet else "auto")
    metric = result["metric"]
    table = Table(title=f"{r.name}: compression ({result['threads']} threads; test {metric})")
    for col in ("variant", "size KB", "x smaller", "MACs", "ms @1", "ms @64", "x faster @64", metric, "points"):
        table.add_column(col, justify="left" if col == "variant" else "right")
    for name, row in [("original", result["original"]), *result["variants"].items()]:
        vs = row["vs_original"]
        table.add_row(name, f"{row['size_bytes'] / 1024:.1f}", f"{vs.get('size_ratio', 1):.2f}", f"{row['macs']:,}",
                      f"{row['latency_ms']['1']:.3f}", f"{row['latency_ms']['64']:.3f}",
                      f"{vs['speedup_batch_64']:.2f}", f"{row.get('test_score', float('nan')):.4f}",
                      f"{vs.get('test_score_points', 0):+.2f}")
    out.print(table)
    out.print("ms: medians of 7 timed blocks")
    for name, row in result["variants"].items():
        for note in row["vs_original"]["notes"]:
            out.print(f"{name}: {note}", markup=False)
    if result["search"]:
        out.print(f"budget {result['search']['budget_points']:g} points: chose {result['search']['chosen']}")
    out.print(f"wrote {r.file('compress/compress.json')}")


@app.command()
def calibrate(run: Annotated[str, typer.Argument(help="run directory (a classifier)")]) -> None:
    """Fit a temperature on the validation split's temperature rows (calibrated probabilities); writes calibration.json."""
    from .stages.calibrate import calibrate as calibrate_stage
    from .run import Run

    r = Run.open(run)
    result = calibrate_stage(r)
    out.print(f"{r.path}: temperature {result['temperature']:.4f} on {result['n']} validation examples; NLL "
              f"{result['val_nll_before']:.4f} -> {result['val_nll_after']:.4f}, ECE {result['val_ece_before']:.4f} "
              f"-> {result['val_ece_after']:.4f}")
    if r.has("export/model.onnx"):
        out.print(f"note: export/model.onnx predates this temperature; 'netwright export {r.path}' carries it in")
    out.print(f"wrote {r.file('calibration.json')}; next: netwright evaluate {r.path}")


@app.command()
def export(
    run: Annotated[str, typer.Argument(help="run directory")],
    variant: Annotated[Optional[str], typer.Option(help="a compressed variant (see compress/) [default: the model]")] = None,
    fmt: Annotated[str, typer.Option("--format", help="onnx")] = "onnx",
    verify_file: Annotated[Optional[Path], typer.Option("--verify", help="only verify this existing .onnx file")] = None,
    register: Annotated[Optional[str], typer.Option(
        "--register", metavar="NAME", help="register the verified ONNX file as a version of MLflow model NAME")] = None,
) -> None:
    """Export to one ONNX file and verify it with ONNX Runtime against PyTorch."""
    from .stages.export import export as export_stage
    from .deploy.verify import verify
    from .run import Run
    from .tasks import run_task

    r = Run.open(run)
    if verify_file is not None:
        if register is not None:
            raise NetwrightError("--register registers what export writes; drop --verify")
        result = verify(r, verify_file, run_task(r))
        if not result["passed"]:
            raise NetwrightError(f"{verify_file}: verification failed ({result['criterion']} not met, "
                                 f"max |diff| {result['max_abs_diff']:.3g})")
    else:
        result = export_stage(r, variant=variant, format=fmt, register=register)
    agree = f", argmax agreement {result['argmax_agreement']:.4f}" if "argmax_agreement" in result else ""
    out.print(f"{result['onnx']}: verified on {result['samples']} inputs, max |diff| "
              f"{result['max_abs_diff']:.2e}{agree} ({result['criterion']})")
    if result.get("tracking", {}).get("registered"):
        reg, where = result["tracking"]["registered"], result["tracking"]
        out.print(f"registered MLflow model {reg['name']} version {reg['version']} (run {where['run_id']}, "
                  f"{where['tracking_uri']})")


@app.command()
def audit(
    run: Annotated[str, typer.Argument(help="run directory")],
    data: Annotated[Optional[Path], typer.Option(help="a CSV with the training columns, target and sensitive columns")] = None,
) -> None:
    """Audit a classifier by group: rates, gaps with confidence intervals; writes audit.json."""
    from .fairness.groups import gap_pair
    from .stages.audit import audit as audit_stage
    from .run import Run

    r = Run.open(run)
    result = audit_stage(r, data=data)
    out.print(f"{r.path}: {result['n']} examples ({result['source']}), positive outcome '{result['positive_label']}'")
    for key, grouping in result["groupings"].items():
        table = Table(title=key)
        for col in ("group", "n", "label rate", "selection rate", "accuracy", "TPR", "FPR", "calibration gap"):
            table.add_column(col, justify="left" if col == "group" else "right")
        for g in grouping["groups"]:
            table.add_row(g["group"], str(g["count"]), f"{g['base_rate']:.3f}", f"{g['selection_rate']:.3f}",
                          f"{g['accuracy']:.3f}", f"{g['true_positive_rate']:.3f}", f"{g['false_positive_rate']:.3f}",
                          f"{g['calibration_gap']:+.3f}")
        out.print(table)
        if grouping["gaps"]:
            out.print(f"  gaps (signed: {result['sign']}):", markup=False)
        for name, gap in grouping["gaps"].items():
            ci = f" [{gap['ci'][0]:.3f}, {gap['ci'][1]:.3f}]" if gap["ci"] else ""
            verdict = " (includes no gap)" if gap["includes_no_gap"] else ""
            out.print(f"  {name.replace('_', ' ')}, {gap_pair(name, gap['between'])}: {gap['value']:.3f}{ci}{verdict}", markup=False)
    for line in result["summary"]:
        out.print(line, markup=False)
    for w in result["warnings"]:
        err.print(f"warning: {w}", markup=False)
    out.print("wrote " + " and ".join(str(r.file(f)) for f in result["written"]))


@app.command()
def mitigate(
    run: Annotated[str, typer.Argument(help="run directory")],
    method: Annotated[Optional[list[str]], typer.Option("--method", "-m", help="reweighing, penalty, thresholds (repeatable) [default: all]")] = None,
    sweep: Annotated[bool, typer.Option(help="train the penalty at several weights: the trade-off curve")] = False,
    budget: Annotated[float, typer.Option(help="accuracy points the recommended variant may lose")] = 1.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Reduce the gaps an audit found; compare accuracy and gaps of every mitigation, judge them."""
    from .stages.mitigate import mitigate as mitigate_stage
    from .run import Run

    r = Run.open(run)
    if budget < 0:
        raise NetwrightError(f"--budget {budget:g}: give the accuracy points a variant may lose, 0 or more")
    result = mitigate_stage(r, methods=method, sweep=sweep, progress="quiet" if quiet else "lines", budget=budget)
    table = Table(title=f"{r.name}: mitigation ({', '.join(result['sensitive'])}; test split, Pareto-optimal and "
                        "recommended as judged on the validation split)")
    for col in ("variant", "accuracy", "points", "parity gap size [95%]", "reduction", "equalized odds gap size",
                "judgement"):
        table.add_column(col, justify="left" if col in ("variant", "judgement") else "right")
    for row in result["rows"]:
        ci = row["intervals"]["demographic_parity_difference"]["ci"]
        verdict = "; ".join(row["flags"]) or ("Pareto-optimal" if row["pareto"] else "")
        table.add_row(row["label"], f"{row['accuracy']:.3f}", f"{row['accuracy_points']:+.1f}",
                      f"{row['demographic_parity_difference']:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""),
                      f"{100 * row['parity_gap_reduction']:.0f}%", f"{row['equalized_odds_difference']:.3f}", verdict)
    out.print(table)
    j = result["judgement"]
    out.print(f"recommended: {j['recommended']} ({j['reason']}; always predicting the majority outcome scores "
              f"{j['majority_accuracy']:.3f})", markup=False)
    if j.get("needs"):
        out.print(f"note: {j['needs']}", markup=False)
    out.print(f"wrote {r.file('fairness/mitigate.json')} and {r.file('fairness/tradeoff.png')}")


@app.command()
def monitor(
    run: Annotated[str, typer.Argument(help="run directory")],
    new_data: Annotated[Path, typer.Argument(metavar="NEW_DATA", help="a CSV with the training columns")],
) -> None:
    """Test new data for drift against the training data. Exit code 1 when drift is found."""
    from .stages.monitor import monitor as monitor_stage
    from .run import Run

    r = Run.open(run)
    report = monitor_stage(r, new_data)
    table = Table(title=f"{new_data}: {report['rows']} rows against {report['reference_rows']} training rows")
    for col in ("feature", "test", "statistic", "p-value", "drift"):
        table.add_column(col, justify="left" if col == "feature" else "right")
    for f in report["features"]:
        table.add_row(f["feature"], f["test"], f"{f['statistic']:.3f}", f"{f['p_value']:.2g}",
                      "[bold red]yes[/]" if f["drift"] else "no")
    out.print(table)
    if "accuracy" in report:
        out.print(f"accuracy on the new data: {report['accuracy']:.3f}")
    name = Path(new_data).stem
    out.print(f"wrote {r.file(f'monitor/{name}.json')}")
    if report["drift"]:
        err.print(f"drift: {', '.join(report['drifted'])} (Holm-corrected, family-wise alpha {report['alpha']:g})",
                  markup=False)
        raise typer.Exit(1)


@app.command()
def serve(
    run: Annotated[str, typer.Argument(help="run directory")],
    variant: Annotated[Optional[str], typer.Option(help="a compressed variant (see compress/)")] = None,
    host: Annotated[str, typer.Option(help="address to bind (loopback by default)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port", min=1, max=65535)] = 8000,
    engine: Annotated[str, typer.Option(help="auto (ONNX Runtime, PyTorch as fallback), onnx or torch")] = "auto",
    threads: Annotated[int, typer.Option(help="inference threads")] = 1,
    max_batch: Annotated[int, typer.Option(help="most rows of concurrent requests in one model call (1: no batching)")] = 64,
    max_wait_ms: Annotated[Optional[float], typer.Option(help="longest a request waits for others [default: about one single-row call]")] = None,
    api_key: Annotated[Optional[str], typer.Option(envvar="NETWRIGHT_API_KEY", show_envvar=True, help="require 'Authorization: Bearer KEY' or 'X-API-Key: KEY' on every route but health, /metrics included (other users of the machine see a key given here in 'ps': prefer the variable or --api-key-file)")] = None,
    api_key_file: Annotated[Optional[Path], typer.Option(help="read the API key from this file's first line")] = None,
    allowed_host: Annotated[Optional[list[str]], typer.Option(help="a Host name to answer (repeatable) [default: on a loopback address the loopback names, elsewhere any]")] = None,
    queue: Annotated[int, typer.Option(min=0, help="requests in progress beyond one per core before new ones get 503 and Retry-After")] = 64,
    workers: Annotated[int, typer.Option(min=1, help="server processes on the one port, each with its own model, batching and queue (/metrics counts per process)")] = 1,
) -> None:
    """Serve the model: Open Inference Protocol v2, /predict, /explain, /metrics and a web page at /."""
    from .stages.serve import serve as serve_stage

    if api_key_file is not None:
        try:
            api_key = api_key_file.read_text(encoding="utf-8").splitlines()[0].strip()
        except (OSError, UnicodeDecodeError, IndexError) as e:
            raise NetwrightError(f"--api-key-file {api_key_file}: cannot read a key from it "
                                 f"({getattr(e, 'strerror', None) or 'empty or not text'})") from None
        if not api_key:
            raise NetwrightError(f"--api-key-file {api_key_file}: its first line is empty; write the key there")
    serve_stage(run, variant=variant, host=host, port=port, engine=engine, threads=threads, max_batch=max_batch,
                max_wait_ms=max_wait_ms, api_key=api_key, queue=queue, allowed_hosts=allowed_host, processes=workers)


@app.command()
def report(run: Annotated[str, typer.Argument(help="run directory")]) -> None:
    """Write the model card: report.html (self-contained) and report.json."""
    from .stages.report import report as report_stage
    from .run import Run

    r = Run.open(run)
    card = report_stage(r)
    missing = f" (stages not run: {', '.join(card['missing_stages'])})" if card["missing_stages"] else ""
    out.print(f"wrote {r.file('report.html')} and {r.file('report.json')}{missing}")
    for c in card["caveats"]:
        err.print(f"caveat: {c}", markup=False)


@app.command()
def compare(
    runs: Annotated[list[str], typer.Argument(metavar="RUN", help="runs, or folders holding runs (a tuning "
                                                                      "study, cross-validation folds)")],
    output: Annotated[Optional[str], typer.Option("--out", "-o", help="page (or folder) to write [default: "
                                                                     "./compare.html]")] = None,
) -> None:
    """Compare runs on one self-contained page: spec differences, learning curves, test metrics, trade-offs."""
    from .stages.compare import compare as compare_stage

    result = compare_stage(runs, out=output)
    for note in result["notes"]:
        err.print(f"note: {note}", markup=False)
    if result["not_evaluated"]:
        err.print(f"note: not evaluated: {', '.join(result['not_evaluated'])} ('netwright evaluate RUN' writes "
                  "their test metrics)", markup=False)
    out.print(f"wrote {result['path']} ({len(result['runs'])} runs)", markup=False)


@app.command()
def demo(runs_dir: RunsDir = None) -> None:
    """The whole life of two networks on bundled data, ending in two model cards."""
    from .demo import demo as run_demo

    run_demo(runs_dir, say=lambda text: out.print(text))


@app.command()
def init(
    table: Annotated[Path, typer.Argument(metavar="DATA.csv", help="your table: a CSV with a header row")],
    target: Annotated[str, typer.Option(help="the column to predict")],
    sensitive: Annotated[Optional[list[str]], typer.Option(help="a column to audit for fairness (repeatable)")] = None,
    output: Annotated[Optional[Path], typer.Option("--out", "-o", help="spec to write [default: DATA.yaml]")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing spec file")] = False,
) -> None:
    """Write a commented starting spec for your own CSV: column kinds, a model that fits its size."""
    from .init import init_spec

    path, used, left = init_spec(table, target, sensitive=sensitive, out=output, overwrite=overwrite)
    out.print(f"wrote {path}: {len(used)} input columns" + (f"; left out (see its comments): {', '.join(left)}" if left else ""),
              markup=False)
    out.print(f"next: netwright train {path}", markup=False)


@app.command()
def validate(spec: Annotated[str, typer.Argument(help="spec YAML")], set_: SetOpt = None) -> None:
    """Check a spec and print it resolved, every default filled in."""
    from pathlib import Path

    from .spec import load_spec

    resolved = load_spec(spec, set_)
    path = resolved.data.params.get("path")
    if isinstance(path, str) and "://" not in path and not Path(path).exists():
        beside = Path(spec).parent / path if Path(spec).is_file() else Path(path)
        raise NetwrightError(f"data.path: no such file or folder '{path}' (looked for {beside.resolve()}: a spec "
                             "file's data paths are read from its folder); fix the path, relative to the spec")
    out.print(resolved.to_yaml(), end="")


@app.command()
def datasets(name: Annotated[Optional[str], typer.Argument(help="show one dataset's or loader's keys")] = None) -> None:
    """List the registered datasets and loaders, or every key of one (type, default, help)."""
    from .data import DATASETS

    if name is None:
        _registry_table("datasets", DATASETS, ("modality", "task"))
        out.print("keys of one: netwright datasets NAME")
        return
    from .spec import DataSpec

    common = {k: f for k, f in DataSpec.model_fields.items() if k != "name"}
    _entry_table(DATASETS.get(name, path="netwright datasets"), "data", common)


@app.command()
def models(name: Annotated[Optional[str], typer.Argument(help="show one model's hyper-parameters")] = None,
           plugin: Annotated[Optional[list[str]], typer.Option(
               help="a plugin file or module whose models to include (as a spec's plugins: names it)")] = None) -> None:
    """List the registered models, or every hyper-parameter of one (type, default, help)."""
    from pathlib import Path

    from .models import MODELS
    from .plugins import load_plugins

    load_plugins(plugin or [], Path.cwd())  # the installed plugins' entry points too
    if name is None:
        _registry_table("models", MODELS, ("family",))
        out.print("keys of one: netwright models NAME")
        return
    try:
        entry = MODELS.get(name, path="netwright models")
    except NetwrightError as e:
        raise NetwrightError(f"{e}; a plugin's model: netwright models NAME --plugin FILE.py") from None
    _entry_table(entry, "model", {})


def _entry_table(entry, section: str, common: dict) -> None:
    """Every key of one registered loader or model: its own first, then the section's common keys."""
    from rich.markup import escape

    table = Table(title=escape(f"{section}: {{name: {entry.name}, ...}}  {entry.summary}"))
    for col in ("key", "type", "default", "help"):
        table.add_column(col, overflow="fold")
    helps = entry.help()
    rows = [(k, f, helps.get(k, "")) for k, f in entry.params.model_fields.items()]
    rows += [(k, f, f.description or "") for k, f in common.items()]
    for key, field, text in rows:
        default = "required" if field.is_required() else repr(field.get_default(call_default_factory=True))
        table.add_row(*(escape(c) for c in (f"{section}.{key}", _type_name(field.annotation), default, text)))
    out.print(table)


@app.command()
def spec(
    schema: Annotated[bool, typer.Option("--schema", help="the JSON Schema of a spec (for YAML editors)")] = False,
    output: Annotated[Optional[Path], typer.Option("--out", "-o", help="write to FILE instead of printing")] = None,
) -> None:
    """Describe the spec: its sections and keys, or (--schema) its JSON Schema over every dataset and model."""
    from .atomic import write_text

    if schema:
        from .schema import spec_schema

        text = json.dumps(spec_schema(), indent=1) + "\n"
    else:
        text = _spec_outline()
    if output is None:
        sys.stdout.write(text)
    else:
        write_text(output, text)
        err.print(f"wrote {output}" + (" (point a spec at it: # yaml-language-server: $schema=PATH)" if schema else ""))


def _spec_outline() -> str:
    """Each section with its keys, types and defaults, as YAML comments a user can copy from."""
    from pydantic import BaseModel

    from .spec import Spec

    lines = ["# the sections of a spec; data: and model: also take their dataset's or model's keys",
             "# (netwright datasets NAME, netwright models NAME)"]

    def walk(model: type[BaseModel], depth: int) -> None:
        for key, field in model.model_fields.items():
            ann = field.annotation
            sub = next((a for a in (ann, *getattr(ann, "__args__", ())) if isinstance(a, type) and issubclass(a, BaseModel)), None)
            pad = "  " * depth
            if sub is not None:
                lines.append(f"{pad}{key}:" + (f"  # {sub.__doc__.strip().splitlines()[0]}" if sub.__doc__ else ""))
                walk(sub, depth + 1)
                continue
            default = "required" if field.is_required() else json.dumps(field.get_default(call_default_factory=True), default=str)
            note = f"  # {field.description}" if field.description else ""
            lines.append(f"{pad}{key}: {default}  # {_type_name(ann)}{note.replace('  # ', '; ', 1)}")

    walk(Spec, 0)
    return "\n".join(lines) + "\n"


def _type_name(annotation: object) -> str:
    """A type as a user reads it: ``list[int]``, ``str | None``, ``'a' | 'b'``."""
    import types
    import typing

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(_type_name(a) for a in args)}]"
    return "None" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


def _registry_table(title: str, registry, columns: tuple[str, ...]) -> None:
    table = Table(title=title)
    table.add_column("name")
    for c in columns:
        table.add_column(c)
    table.add_column("description")
    for e in registry.entries():
        table.add_row(e.name, *[str(e.meta.get(c, "any")) for c in columns], e.summary)
    out.print(table)


@app.command()
def doctor() -> None:
    """What a bug report needs: versions, threads, CPU flags, GPUs, measured peaks, optional parts."""
    from .doctor import report as doctor_report

    for section, rows in doctor_report().items():
        table = Table(title=section, show_header=False)
        table.add_column("what")
        table.add_column("value", overflow="fold")
        for key, value in rows.items():
            table.add_row(key, str(value))
        out.print(table)


@app.command()
def runs(runs_dir: RunsDir = None) -> None:
    """List the runs and how far each got."""
    from .run import default_runs_dir, list_runs

    rows = list_runs(runs_dir)
    if not rows:
        out.print(f"no runs under {runs_dir or default_runs_dir()}")
        return
    table = Table(title=f"runs in {runs_dir or default_runs_dir()}")
    cols = ["name", "dataset", "model", "epochs", "status", "best", "test"]
    for c in cols:
        table.add_column(c)
    for r in rows:
        table.add_row(*[str(r.get(c, "")) for c in cols])
    out.print(table)


@contextlib.contextmanager
def _trusting_plugins(argv: list[str]) -> Iterator[None]:
    """``netwright --trust-changed-plugins VERB``: NETWRIGHT_TRUST_CHANGED_PLUGINS=1 while the command
    runs (seen by the processes it starts too), restored after it (main may run in a test's process)."""
    options = argv[:next((i for i, a in enumerate(argv) if not a.startswith("-")), len(argv))]
    if "--trust-changed-plugins" not in options:
        yield
        return
    from .plugins import TRUST_ENV

    before = os.environ.get(TRUST_ENV)
    os.environ[TRUST_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(TRUST_ENV, None)
        else:
            os.environ[TRUST_ENV] = before


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``netwright`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _state["argv"] = argv
    debug = "--debug" in argv
    try:
        with _trusting_plugins(argv):
            app(args=argv, prog_name="netwright")  # standalone: usage errors exit 2 on their own
    except TrainingInterrupted as e:  # the checkpoint is written; the line says how to resume
        err.print(one_line(str(e)), soft_wrap=True, markup=False)
        sys.exit(128 + e.signum)
    except KeyboardInterrupt:
        err.print("interrupted", soft_wrap=True, markup=False)
        sys.exit(130)
    except SystemExit as e:  # typer turns a Ctrl-C inside a command into a silent exit 130: say it
        if e.code == 130 and isinstance(getattr(e.__context__, "__cause__", None), KeyboardInterrupt):
            err.print("interrupted", soft_wrap=True, markup=False)
        raise
    except NetwrightError as e:
        if debug:
            raise
        err.print(f"error: {one_line(str(e))}", soft_wrap=True, markup=False)
        sys.exit(2)
    except Exception as e:  # a bug, not bad input: say so, keep the traceback behind --debug
        if debug:
            raise
        problem = environment_problem(e)
        if problem is not None:  # the machine, not netwright: a full disk, a read-only folder, a port
            err.print(f"error: {one_line(problem)}", soft_wrap=True, markup=False)
            sys.exit(2)
        err.print(one_line(f"internal error: {e.__class__.__name__}: {e} (run with --debug for the traceback)"),
                  soft_wrap=True, markup=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
