"""``netwright doctor``: what a bug report needs, in one place.

Versions (read from package metadata, without importing the packages), the Python and the
platform, threads, CPU model and flags, GPUs, the measured matmul peaks (cached after the
first call; shown with when and how they were measured), and which optional Debian packages
and Python extras are present.
"""

from __future__ import annotations

import platform
import shutil
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("netwright", "torch", "numpy", "scikit-learn", "pydantic", "onnx", "onnxruntime", "captum",
            "fairlearn", "fastapi", "uvicorn", "safetensors", "tokenizers")
EXTRAS = ("lightning", "keras", "mlflow-skinny", "tensorboard", "psycopg", "mutmut", "playwright", "jsonschema")
# what each Debian package of tools/system-deps provides, as the data loaders look for it
SYSTEM = {
    "chromium": lambda: shutil.which("chromium") is not None,
    "sword-text-kjv": lambda: Path("/usr/share/sword/modules/texts/ztext/engKJV2006eb").is_dir(),
    "sword-text-sparv": lambda: Path("/usr/share/sword/modules/texts/ztext/spaRV1909eb").is_dir(),
    "dataset-fashion-mnist": lambda: Path("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz").is_file(),
    "espeak-ng": lambda: shutil.which("espeak-ng") is not None,
    "flite": lambda: shutil.which("flite") is not None,
    "postgresql": lambda: postgres_bin("initdb") is not None,
}


def postgres_bin(name: str) -> str | None:
    """A PostgreSQL server program (Debian keeps them off PATH, under /usr/lib/postgresql/N/bin)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _how(peak: dict[str, Any]) -> str:
    """When and how a cached peak was measured."""
    return f"measured {peak.get('measured_at') or 'at an unknown time'}: {peak.get('method', 'method not recorded')}"


def report() -> dict[str, dict[str, Any]]:
    """The doctor's sections, each ``{what: value}``."""
    import torch

    from .hardware import cached_peaks, cores, cpu_flags, cpu_name, native_bf16, peak_flops

    threads = min(cores(), 8)
    flags = cpu_flags()
    machine = {"python": f"{sys.version.split()[0]} ({sys.executable})", "platform": platform.platform(),
               "cpu": cpu_name(), "cores for this process": cores(), "torch threads (auto uses)": threads,
               "cpu flags": ", ".join(f for f, have in flags.items() if have) or "none of " + ", ".join(flags),
               "native bf16 (AVX512-BF16 or AMX)": native_bf16(),
               "torch cpu capability": torch.backends.cpu.get_cpu_capability()}
    gpus = {f"cuda:{i}": torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())}
    peaks, shown = {}, []
    for precision in ("fp32", "bf16"):
        p = peak_flops("cpu", precision, threads)
        peaks[f"cpu {precision}, {threads} threads"] = f"{p['flop_per_s'] / 1e9:,.0f} GFLOP/s, {_how(p)}"
        shown.append(p)
    for i in range(torch.cuda.device_count()):
        for precision in ("fp32", "bf16"):
            p = peak_flops("cuda", precision, threads)
            peaks[f"cuda:{i} {precision}"] = f"{p['flop_per_s'] / 1e12:,.1f} TFLOP/s, {_how(p)}"
            shown.append(p)
    for key, p in cached_peaks().items():  # the rest of the cache: other thread counts, other torch versions
        if p not in shown and isinstance(p.get("flop_per_s"), (int, float)):
            peaks[key.replace("|", ", ")] = f"{p['flop_per_s'] / 1e9:,.0f} GFLOP/s, {_how(p)}"
    return {
        "versions": {name: _version(name) for name in PACKAGES},
        "machine": machine,
        "gpus": gpus or {"cuda": f"no CUDA device visible (torch built with CUDA {torch.version.cuda})"
                         if torch.version.cuda else "no CUDA device; this torch is a CPU build"},
        "measured matmul peak (cached)": peaks,
        "Debian packages for the suite and examples": {
            name: "present" if found() else f"missing: apt-get install {name}" for name, found in SYSTEM.items()},
        "optional Python packages": {name: _version(name) for name in EXTRAS},
    }
