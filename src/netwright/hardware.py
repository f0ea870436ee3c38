"""What this machine can do: CPU flags, native bf16, and the measured matrix-multiply peak.

The peak is the best FLOP/s of a square ``torch.matmul`` (2048x2048, or smaller where one product
already takes 0.02 s) in the given precision and thread count, timed in rounds until the bests of
two consecutive rounds agree within 3% (at most 6 rounds), cached per machine (CPU model,
threads, torch version) beside the data sets with when and how it was measured, so every run can
report how close to it training ran. A run that goes faster than the cached peak has it measured
again (a peak measured on a busy machine is too low), so the fraction it reports never exceeds 1.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .atomic import write_json

FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni", "avx_vnni")
PEAK_SIZE = 2048
CPUINFO = Path("/proc/cpuinfo")  # where the CPU's model and flags are read (Linux)
PEAK_TIMINGS_PER_ROUND = 3  # a round's best is the best of this many timings
PEAK_AGREE = 0.03  # the peak is stable once two consecutive rounds' bests agree within 3%
PEAK_MAX_ROUNDS = 6  # ... or after this many rounds, whichever comes first (about as long as the 15
# products the peak once took)
PEAK_GROW_S = 0.02  # the matrices double in size (up to PEAK_SIZE) while a product takes less than this
PEAK_TIMING_S = 0.05  # each timing runs enough products to last this long (the timer's noise stays small)


def _cpuinfo() -> str | None:
    try:
        return CPUINFO.read_text()
    except OSError:
        return None


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what the platform says."""
    for line in (_cpuinfo() or "").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _x86_flags() -> set[str] | None:
    """The flags of an x86 ``/proc/cpuinfo`` (its ``flags`` line), or None where there is none
    (not Linux, or another architecture: ARM lists ``Features``)."""
    line = next((ln for ln in (_cpuinfo() or "").splitlines() if ln.startswith("flags")), None)
    return None if line is None else set(line.split(":", 1)[-1].split())


def cpu_flags() -> dict[str, bool]:
    """Which of the vector and matrix extensions that matter for training the CPU has."""
    have = _x86_flags() or set()
    return {f: f in have for f in FLAGS}


def int8_saturates() -> bool:
    """Whether int8 products on this x86 CPU go through 16-bit sums that saturate (AVX2 and
    AVX-512 without VNNI: VPMADDUBSW), so that int8 weights should use 7 bits."""
    import platform

    flags = cpu_flags()
    return platform.machine() in ("x86_64", "AMD64") and not (flags["avx512_vnni"] or flags["avx_vnni"])


def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX-BF16) and oneDNN is there to
    use it. On x86 the CPU's flags decide: oneDNN's own answer (``_is_mkldnn_bf16_supported``) is
    also yes on AVX-512 CPUs without BF16, where it converts to fp32 and bf16 runs slower. On other
    architectures PyTorch's answer stands."""
    import torch

    flags = _x86_flags()
    if flags is not None:
        return bool(flags & {"avx512_bf16", "amx_bf16"}) and torch.backends.mkldnn.is_available()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cores() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _cache_file() -> Path:
    from .data.cache import cache_dir

    return cache_dir() / "peak.json"


def _until_stable(timing: Callable[[], float]) -> tuple[float, int, bool]:
    """Call ``timing`` (one timing's FLOP/s) in rounds of :data:`PEAK_TIMINGS_PER_ROUND` until the
    bests of two consecutive rounds agree within :data:`PEAK_AGREE`, at most
    :data:`PEAK_MAX_ROUNDS` rounds: (the best of all timings, rounds, whether two agreed)."""
    bests: list[float] = []
    while len(bests) < PEAK_MAX_ROUNDS:
        bests.append(max(timing() for _ in range(PEAK_TIMINGS_PER_ROUND)))
        if len(bests) >= 2 and abs(bests[-1] - bests[-2]) <= PEAK_AGREE * max(bests[-2:]):
            return max(bests), len(bests), True
    return max(bests), len(bests), False


def _measure(device: str, precision: str, threads: int) -> dict[str, Any]:
    """Time ``torch.matmul`` of two square matrices in rounds of :data:`PEAK_TIMINGS_PER_ROUND`
    timings until two consecutive rounds' bests agree within :data:`PEAK_AGREE` (at most
    :data:`PEAK_MAX_ROUNDS` rounds); the peak is the best timing of all."""
    import torch

    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    started = time.perf_counter()
    try:
        sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        size = 256
        while True:  # double the size up to PEAK_SIZE while a product takes under 0.02 s (bf16
            a = torch.randn(size, size, device=device).to(dtype)  # without native units: 100x slower)
            b = torch.randn(size, size, device=device).to(dtype)
            torch.matmul(a, b)  # warm: the first product of a size (or of the process) sets kernels up
            sync()
            one = float("inf")
            for _ in range(3):  # the best of 3: one slow product on a busy machine does not set the size
                t = time.perf_counter()
                torch.matmul(a, b)
                sync()
                one = min(one, time.perf_counter() - t)
            if size >= PEAK_SIZE or one > PEAK_GROW_S:
                break
            size *= 2
        products = max(1, min(1000, math.ceil(PEAK_TIMING_S / max(one, 1e-6))))  # per timing
        flop = 2 * size**3 * products

        def timing() -> float:
            t = time.perf_counter()
            for _ in range(products):
                torch.matmul(a, b)
            sync()
            return flop / max(time.perf_counter() - t, 1e-12)

        best, rounds, stable = _until_stable(timing)
        timings = rounds * PEAK_TIMINGS_PER_ROUND
        until = (f"until two consecutive rounds' bests agreed within {PEAK_AGREE:.0%}" if stable else
                 f"for {PEAK_MAX_ROUNDS} rounds without two consecutive bests agreeing within {PEAK_AGREE:.0%}")
        return {"flop_per_s": best, "size": size, "rounds": rounds, "repeats": timings,
                "products_per_repeat": products, "stable": stable,
                "seconds": round(time.perf_counter() - started, 3),
                "method": f"best of {timings} timings of {products} x torch.matmul of {size}x{size} {precision} "
                          f"matrices, {PEAK_TIMINGS_PER_ROUND} a round, {until}"}
    finally:
        torch.set_num_threads(before)


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return table if isinstance(table, dict) else {}


def _usable(entry: Any) -> bool:
    """A cache entry of this version: a positive rate and the time it was measured (entries
    written before the peak was measured until stable have no ``measured_at``: measured again)."""
    return (isinstance(entry, dict) and isinstance(entry.get("flop_per_s"), (int, float))
            and math.isfinite(entry["flop_per_s"]) and entry["flop_per_s"] > 0 and bool(entry.get("measured_at")))


def peak_flops(device: str, precision: str, threads: int, achieved: float | None = None) -> dict[str, Any]:
    """The measured matmul peak for ``device`` (``cpu``, ``cuda``), ``precision`` (``fp32``,
    ``bf16``) and ``threads``: ``{"flop_per_s", "measured_at", "method", ...}`` from the cache, else
    measured (a second or a few) and cached.

    ``achieved``: the FLOP/s a run reached with the same settings. When it exceeds the cached peak,
    that peak was measured on a busy machine: it is measured again and the cache replaced; should
    the run still be faster, its rate is recorded as the peak (and the method says so), so that
    ``achieved / peak`` never exceeds 1."""
    import torch

    where = torch.cuda.get_device_name(0) if device.startswith("cuda") else f"{cpu_name()} x {threads} threads"
    key = f"{device}|{where}|{precision}|torch {torch.__version__}"
    path = _cache_file()
    cached = _read_cache(path).get(key)
    if _usable(cached) and (achieved is None or achieved <= cached["flop_per_s"]):
        return cached
    entry = {"device": where, "precision": precision, "threads": threads, "torch": torch.__version__,
             "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             **_measure(device, precision, threads)}
    if _usable(cached):
        entry["replaces"] = {k: cached.get(k) for k in ("flop_per_s", "measured_at", "method")}
        entry["why"] = (f"measured again: a run reached {achieved / 1e9:,.3g} GFLOP/s, above the cached peak "
                        f"of {cached['flop_per_s'] / 1e9:,.3g} GFLOP/s measured {cached['measured_at']}")
    else:
        entry["why"] = ("first measurement" if cached is None else
                        "measured again: the cached entry had no measurement time")
    if achieved is not None and achieved > entry["flop_per_s"]:
        entry["measured_flop_per_s"] = entry["flop_per_s"]
        entry["flop_per_s"] = float(achieved)
        entry["method"] += (f"; a run then reached {achieved / 1e9:,.3g} GFLOP/s, above this measurement "
                            f"({entry['measured_flop_per_s'] / 1e9:,.3g} GFLOP/s), so the run's achieved rate "
                            "is recorded as the peak")
    table = _read_cache(path)  # read again: another process may have cached other settings meanwhile
    table[key] = entry
    try:
        write_json(path, table)
    except OSError:
        pass  # a read-only cache: measured again next time
    return entry


def cached_peaks() -> dict[str, dict[str, Any]]:
    """Every peak in the cache, by its key (device, where, precision, torch version)."""
    return {k: v for k, v in _read_cache(_cache_file()).items() if isinstance(v, dict)}
