"""What this machine can do: CPU flags, native bf16, and the measured matrix-multiply peak.

The peak is the best FLOP/s of a 2048x2048 ``torch.matmul`` in the given precision and thread
count, measured once per machine (CPU model, threads, torch version) and cached beside the
data sets, so every run can report how close to it training ran.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from .atomic import write_json

FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni", "avx_vnni")
PEAK_SIZE = 2048


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> dict[str, bool]:
    """Which of the vector and matrix extensions that matter for training the CPU has."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {f: False for f in FLAGS}
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    have = set(line.split(":", 1)[-1].split())
    return {f: f in have for f in FLAGS}


def int8_saturates() -> bool:
    """Whether int8 products on this x86 CPU go through 16-bit sums that saturate (AVX2 and
    AVX-512 without VNNI: VPMADDUBSW), so that int8 weights should use 7 bits."""
    import platform

    flags = cpu_flags()
    return platform.machine() in ("x86_64", "AMD64") and not (flags["avx512_vnni"] or flags["avx_vnni"])


def native_bf16() -> bool:
    """Whether oneDNN runs bf16 natively here (AVX512-BF16 or AMX), as PyTorch itself decides."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cores() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _cache_file() -> Path:
    from .data.builtin import cache_dir

    return cache_dir() / "peak.json"


def _measure(device: str, precision: str, threads: int) -> tuple[float, int]:
    import torch

    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        size = 256
        while True:  # double the size up to PEAK_SIZE while a product takes under 0.05 s (bf16
            a = torch.randn(size, size, device=device).to(dtype)  # without native units: 100x slower)
            b = torch.randn(size, size, device=device).to(dtype)
            torch.matmul(a, b)  # warm: the first product of a size (or of the process) sets kernels up
            sync()
            t = time.perf_counter()
            torch.matmul(a, b)
            sync()
            if size >= PEAK_SIZE or time.perf_counter() - t > 0.05:
                break
            size *= 2
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(3):
                torch.matmul(a, b)
            sync()
            best = min(best, (time.perf_counter() - t) / 3)
        return 2 * size**3 / best, size
    finally:
        torch.set_num_threads(before)


def peak_flops(device: str, precision: str, threads: int) -> dict[str, Any]:
    """The measured matmul peak (FLOP/s) for ``device`` (``cpu``, ``cuda``), ``precision``
    (``fp32``, ``bf16``) and ``threads``: from the cache, else measured (about a second) and cached."""
    import torch

    where = torch.cuda.get_device_name(0) if device.startswith("cuda") else f"{cpu_name()} x {threads} threads"
    key = f"{device}|{where}|{precision}|torch {torch.__version__}"
    path = _cache_file()
    try:
        table = json.loads(path.read_text())
        if not isinstance(table, dict):
            table = {}
    except (OSError, ValueError):
        table = {}
    if key not in table:
        flops, size = _measure(device, precision, threads)
        table[key] = {"flop_per_s": flops, "device": where, "precision": precision,
                      "method": f"best of 5 x 3 torch.matmul of {size}x{size} {precision} matrices"}
        try:
            write_json(path, table)
        except OSError:
            pass  # a read-only cache: measured again next time
    return table[key]
