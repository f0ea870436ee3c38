"""Data-parallel training on ``torch.distributed`` (DistributedDataParallel).

``netwright train SPEC --nproc N`` starts ``torchrun`` on this machine; on several machines,
start ``torchrun -m netwright train SPEC`` on each with the usual rendezvous arguments. Every
rank holds the data in memory, draws the same per-epoch permutation, and takes its share of
each global batch, so N processes with batch B compute the same steps as one process with
batch B. Gradients are averaged by DDP (gloo on CPU, NCCL on CUDA); only rank 0 writes the run.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist

from ..errors import NetwrightError, TrainingError


@dataclass(frozen=True)
class Dist:
    """Where this process stands in the job (a single process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def from_env() -> Dist:
    """The job this process belongs to, from torchrun's environment variables."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    return Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")),
                int(os.environ.get("LOCAL_WORLD_SIZE", str(world))))


def init(d: Dist, device: torch.device, timeout_s: float) -> None:
    """Join the process group (gloo on CPU, NCCL on CUDA); a missing peer fails after ``timeout_s``."""
    if not d.active or torch_dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        torch_dist.init_process_group(backend, timeout=dt.timedelta(seconds=timeout_s))
    except Exception as e:  # rendezvous problems: unreachable master, wrong world size
        raise TrainingError(f"rank {d.rank}: could not join the {backend} process group within {timeout_s:g} s "
                            f"({str(e).splitlines()[0][:160]})") from None


def all_sum(values: list[float], d: Dist) -> list[float]:
    """Sum a few numbers over all ranks."""
    if not d.active:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    torch_dist.all_reduce(t)
    return t.tolist()


def barrier(d: Dist) -> None:
    if d.active:
        torch_dist.barrier()


def shutdown(d: Dist) -> None:
    if d.active and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def launch(argv: list[str], nproc: int) -> int:
    """Run ``netwright <argv>`` in ``nproc`` processes on this machine with torchrun.

    Returns 0, or raises a one-line error naming the rank that failed.
    """
    if nproc < 1:
        raise NetwrightError(f"--nproc {nproc}: give at least 1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "--monitor-interval=0.5", "-m", "netwright", *argv]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate()
    if proc.returncode == 0:
        return 0
    own = [line[len("error: "):] for line in err.splitlines() if line.startswith("error: ")]
    if own:  # a worker raised a netwright error (bad input, non-finite loss...): pass it on
        raise NetwrightError(own[0])
    root = err[err.find("Root Cause"):] if "Root Cause" in err else err
    failed = re.search(r"rank\s*:\s*(\d+).*?exitcode\s*:\s*(-?\d+)", root, re.S)
    if failed is None:
        what = "a rank failed"
    elif int(failed.group(2)) < 0:
        what = f"rank {failed.group(1)} was killed (signal {-int(failed.group(2))})"
    else:
        what = f"rank {failed.group(1)} exited with code {failed.group(2)}"
    raise TrainingError(f"distributed training stopped: {what}; torchrun ended the other ranks. The last "
                        "checkpoint is kept: continue with 'netwright train RUN --resume --nproc N'")
