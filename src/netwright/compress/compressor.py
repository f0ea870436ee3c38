"""Building variants of one run's model (int8, structured and unstructured pruning with fine-tuning)
and measuring them against the original (size, MACs, latency, score); the budget search."""

from __future__ import annotations

import shutil
from typing import Any

import numpy as np
import torch

from ..atomic import make_dirs, remove_tree, write_json
from ..errors import NetwrightError
from ..run import WEIGHTS, Run
from ..training.checkpoint import save_weights
from . import measure
from .prune import STRUCTURED, prune_structured, prune_unstructured
from .quantize import quantize_int8
from .variants import Variant, load_variant, variant_dir

SEARCH_RATIOS = (0.25, 0.5, 0.75)
LATENCY_BUDGET_S = 0.4  # seconds of timing per variant and batch size


class Compressor:
    """Builds variants of one run's model and measures them against the original."""

    def __init__(self, run: Run, task: Any, threads: int, finetune_epochs: int | None, progress: str):
        self.run, self.task, self.threads, self.progress = run, task, threads, progress
        self.spec = run.spec
        self.data = run.load_data()
        self.info = self.data.info
        self.original = load_variant(run, "original")
        # as many epochs as the original run: on the digits CNN (3 seeds), 50% pruning then changed
        # test accuracy by 0.0 / 0.0 / +1.1 points; half as many: 0.0 / -0.7 / +0.7; a fifth: -1.1 (one seed)
        self.finetune_epochs = finetune_epochs if finetune_epochs is not None else self.spec.train.epochs
        self.rows: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------ building variants

    def _folder(self, name: str):
        folder = variant_dir(self.run, name)
        if folder.exists():
            remove_tree(folder)  # into the stage's journal: back if the stage fails
        return make_dirs(folder)  # recorded in the journal: gone if the stage fails

    def quantized(self, base: Variant) -> Variant:
        """int8 ONNX of ``base`` (the original or a pruned model); also keeps its fp32 ONNX."""
        from ..deploy.onnx_io import export_onnx

        name = "int8" if base.name == "original" else f"{base.name}-int8"
        fp32_name = "fp32-onnx" if base.name == "original" else f"{base.name}-onnx"
        fp32_folder = self._folder(fp32_name)
        export_onnx(base.module, self.info, fp32_folder / "model.onnx", optimize=True)
        fp32_meta = {"kind": "onnx", "format": "onnx", "base": base.name, "quantized": False}
        write_json(fp32_folder / "variant.json", fp32_meta)
        folder = self._folder(name)
        calibration = self.data.train.x[:256].numpy()
        how = quantize_int8(fp32_folder / "model.onnx", folder / "model.onnx", base.module, calibration)
        meta = {"kind": "int8", "format": "onnx", "base": base.name, "quantized": True, **how}
        write_json(folder / "variant.json", meta)
        self._inherit(fp32_name, base)
        self._inherit(name, base)
        return Variant(name, meta, onnx_path=folder / "model.onnx")

    def _inherit(self, name: str, base: Variant) -> None:
        """ONNX variants have their source's parameters and MACs."""
        self.rows.setdefault(name, {})["parameters"] = measure.parameters(base.module)
        self.rows[name]["macs"] = measure.macs(base.module, self.info)

    def pruned(self, ratio: float) -> Variant:
        """Structured pruning of ``ratio`` of the channels, then a short fine-tune."""
        name = f"pruned-{round(ratio * 100)}"
        module, params = prune_structured(self.spec.model.name, self.original.module, self.info,
                                          self.spec.model.params, ratio)
        folder = self._folder(name)
        module = self._finetune(module, params, folder)
        meta = {"kind": "pruned", "format": "safetensors", "base": "original", "ratio": ratio,
                "model": params, "finetune_epochs": self.finetune_epochs}
        write_json(folder / "variant.json", meta)
        return Variant(name, {**meta, "weights": folder / WEIGHTS}, module=module.eval())

    def sparse(self, sparsity: float) -> Variant:
        """Unstructured magnitude pruning (no fine-tune): the same dense shapes, with zeros."""
        name = f"sparse-{round(sparsity * 100)}"
        module = prune_unstructured(self.original.module, sparsity).eval()
        folder = self._folder(name)
        save_weights(folder / WEIGHTS, module.state_dict())
        meta = {"kind": "sparse", "format": "safetensors", "base": "original", "sparsity": sparsity,
                "note": "dense kernels: zeros take the same space and time unless a sparse runtime is used"}
        write_json(folder / "variant.json", meta)
        return Variant(name, {**meta, "weights": folder / WEIGHTS}, module=module)

    def _finetune(self, module: torch.nn.Module, params: dict[str, Any], folder) -> torch.nn.Module:
        """A short cosine-decayed fine-tune with the run's own recipe, written into ``folder``."""
        from ..training.progress import TrainingProgress
        from ..training.trainer import Trainer

        ts = self.spec.train
        spec = self.spec.model_copy(update={
            "train": ts.model_copy(update={
                "epochs": self.finetune_epochs,
                "optimizer": ts.optimizer.model_copy(update={"lr": ts.optimizer.lr * 0.5}),
                "schedule": ts.schedule.model_copy(update={"name": "cosine", "warmup_epochs": 0.0}),
                "early_stopping": ts.early_stopping.model_copy(update={"patience": None}),
                "checkpoint_interval": 1e9,
            }),
        })
        task = type(self.task)(self.info, spec.train)  # the run's kind, with the fine-tune's recipe
        with TrainingProgress(self.progress) as prog:
            prog.message(f"fine-tuning {folder.name} for {self.finetune_epochs} epochs")
            trainer = Trainer(module, task, self.data, spec, Run(folder), torch.device("cpu"), prog)
            trainer.fit()
        shutil.rmtree(folder / "checkpoints", ignore_errors=True)  # the variant keeps its weights only
        return module

    # ------------------------------------------------------------------ measuring

    def measure(self, v: Variant) -> dict[str, Any]:
        row = self.rows.setdefault(v.name, {})
        row.update({"name": v.name, "kind": v.meta.get("kind", "original"), "format": v.meta.get("format", "safetensors")})
        if v.module is not None:
            row["parameters"] = measure.parameters(v.module)
            row["macs"] = measure.macs(v.module, self.info)
            row["nonzero_weights"] = round(measure.nonzero_fraction(v.module), 4)
        row["size_bytes"] = measure.file_size(v.file())
        x_test = self.data.split("test").x.numpy() if self.data.test is not None else None
        for n in (1, 64):
            source = self.data.test if self.data.test is not None else self.data.train
            x = np.ascontiguousarray(np.resize(source.x.numpy(), (n, *source.x.shape[1:])))
            fastest, median, slowest = measure.latency_spread_ms(lambda a: v.predict(a, self.threads), x,
                                                                 budget_s=LATENCY_BUDGET_S)
            row.setdefault("latency_ms", {})[str(n)] = round(median, 4)  # the median of 7 timed blocks
            row.setdefault("latency_range_ms", {})[str(n)] = [round(fastest, 4), round(slowest, 4)]
        if x_test is not None:
            row["test_score"] = measure.score(v.predict(x_test, self.threads), self.data.test, self.task.picks_class)
        if self.data.val is not None:
            row["val_score"] = measure.score(v.predict(self.data.val.x.numpy(), self.threads), self.data.val, self.task.picks_class)
        return row

    def compare(self) -> None:
        base = self.rows["original"]
        for row in self.rows.values():
            vs: dict[str, Any] = {}
            if row.get("size_bytes") and base.get("size_bytes"):
                vs["size_ratio"] = round(base["size_bytes"] / row["size_bytes"], 3)
            if row.get("macs") and base.get("macs"):
                vs["macs_ratio"] = round(base["macs"] / row["macs"], 3)
            notes = []
            if vs.get("size_ratio", 1) < 1:
                notes.append(f"larger than the original ({row['size_bytes']:,} vs {base['size_bytes']:,} bytes: "
                             "the format's overhead outweighs what it saves on a model this small)")
            for n in ("1", "64"):
                vs[f"speedup_batch_{n}"] = round(base["latency_ms"][n] / row["latency_ms"][n], 3)
                # slower only when every timed block of the variant is slower than every one of the original
                if row is not base and row["latency_range_ms"][n][0] > base["latency_range_ms"][n][1]:
                    notes.append(f"slower at batch {n} ({row['latency_ms'][n]:.3g} vs {base['latency_ms'][n]:.3g} ms)")
            vs["notes"] = notes
            for key in ("test_score", "val_score"):
                if key in row:
                    vs[f"{key}_points"] = round(100 * (row[key] - base[key]), 3)
            row["vs_original"] = vs


def budget_search(c: Compressor, budget: float) -> dict[str, Any]:
    """Every variant's validation accuracy against the budget; the smallest one within it."""
    rows = []
    for name, row in c.rows.items():
        if name == "original" or row["kind"] == "onnx":
            continue
        points = row["vs_original"]["val_score_points"]
        rows.append({"name": name, "size_bytes": row["size_bytes"], "val_points": points,
                     "test_points": row["vs_original"].get("test_score_points"), "within_budget": points >= -budget})
    rows.sort(key=lambda r: r["size_bytes"])
    chosen = next((r["name"] for r in rows if r["within_budget"]), None)
    return {"budget_points": budget, "rows": rows, "chosen": chosen}
