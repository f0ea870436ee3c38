"""The ``compress`` stage: int8 quantization, pruning and a search under an accuracy budget.

Writes ``compress/<variant>/`` (model file + ``variant.json``) and ``compress/compress.json``:
size on disk, parameters, multiply-accumulates, latency at batch 1 and 64 (thread count
stated), test accuracy, each against the original.
"""

from __future__ import annotations

import os
from typing import Any

from ..compress.compressor import SEARCH_RATIOS, Compressor, budget_search
from ..compress.prune import STRUCTURED
from ..compress.variants import load_variant
from ..errors import NetwrightError, ResultUnmet
from ..run import COMPRESS, Run, writes_run
from ..tasks import run_task


@writes_run("netwright compress")
def compress(run: Run | str | os.PathLike, quantize: str | None = None, prune: float | None = None,
             sparsity: float | None = None, budget: float | None = None, finetune_epochs: int | None = None,
             threads: int | None = None, progress: str = "auto") -> dict[str, Any]:
    """Compress a trained run's model and measure every variant against the original.

    Args:
        quantize: ``int8`` (ONNX Runtime: static QDQ per-channel for convolutional models,
            dynamic otherwise). The default when nothing else is asked for.
        prune: structured pruning ratio (0..1) of channels/units, followed by fine-tuning.
        sparsity: unstructured magnitude pruning ratio (0..1); reported honestly, no fine-tune.
        budget: accuracy points on the validation split: try prune ratios and int8 and keep the
            smallest variant within ``budget`` of the original.
        finetune_epochs: epochs of fine-tuning after pruning (default: as many as the run had).
        threads: CPU threads for latency (default: every core, at most 8).

    Returns:
        The contents of ``compress/compress.json``.
    """
    run = run if isinstance(run, Run) else Run.open(run)
    task = run_task(run)
    task.require("compress", run)
    if quantize not in (None, "int8"):
        raise NetwrightError(f"--quantize {quantize}: only int8 is supported")
    if budget is not None and budget < 0:
        raise NetwrightError(f"--budget {budget}: give accuracy points >= 0, e.g. 1.0")
    if quantize is None and prune is None and sparsity is None and budget is None:
        quantize = "int8"
    if threads is None:
        threads = max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1, 8))
    c = Compressor(run, task, threads, finetune_epochs, progress)
    family = run.spec.model.name
    if budget is not None and c.data.val is None:
        raise NetwrightError("--budget compares validation accuracy; this run has no validation split (data.val: 0)")
    if prune is not None and family not in STRUCTURED:
        raise NetwrightError(f"structured pruning supports {', '.join(STRUCTURED)} models, not {family}; "
                             "use --sparsity for unstructured magnitude pruning")

    variants = [c.original]
    pruned = []
    if budget is not None:
        ratios = SEARCH_RATIOS if family in STRUCTURED else ()
        pruned = [c.pruned(r) for r in ratios]
        variants += pruned + [c.quantized(v) for v in [c.original, *pruned]]
    else:
        if prune is not None:
            pruned = [c.pruned(prune)]
            variants += pruned
        if sparsity is not None:
            variants.append(c.sparse(sparsity))
        if quantize:
            variants += [c.quantized(v) for v in [c.original, *pruned]]
    for name in list(c.rows):  # fp32 ONNX companions made along the way
        if name not in {v.name for v in variants}:
            variants.append(load_variant(run, name))
    for v in variants:
        c.measure(v)
    c.compare()

    result: dict[str, Any] = {
        "threads": threads,
        "metric": task.headline,
        "original": c.rows["original"],
        "variants": {k: r for k, r in c.rows.items() if k != "original"},
        "search": None,
    }
    if budget is not None:
        result["search"] = budget_search(c, budget)
    run.write_json(COMPRESS, result)
    search = result["search"]
    if search is not None and search["chosen"] is None:
        best = max(search["rows"], key=lambda r: r["val_points"]) if search["rows"] else None
        closest = f" (closest: {best['name']} at {best['val_points']:+.2f} points)" if best else ""
        raise ResultUnmet(f"no variant is within {budget:g} points of the original validation accuracy"
                             f"{closest}; the original is kept; see {run.file('compress/compress.json')}")
    return result


