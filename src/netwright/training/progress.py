"""Training progress: a rich bar on a terminal, one line per epoch elsewhere, or nothing."""

from __future__ import annotations

import sys
import time
from typing import Any, Literal

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

Mode = Literal["auto", "bar", "lines", "quiet"]


def format_record(record: dict[str, Any], seconds: float | None = None) -> str:
    """``epoch 3  train_loss 0.1234  val_accuracy 0.9812  0.4s``."""
    parts = [f"epoch {record['epoch']}"]
    for k, v in record.items():
        if k in ("epoch", "step"):
            continue
        parts.append(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}")
    if seconds is not None:
        parts.append(f"{seconds:.2f}s")
    return "  ".join(parts)


class TrainingProgress:
    """Reports steps and epochs; a bar redraw at most every ``interval`` seconds keeps it cheap."""

    def __init__(self, mode: Mode = "auto", console: Console | None = None, interval: float = 0.1):
        self.console = console or Console(stderr=True)
        if mode == "auto":
            mode = "bar" if self.console.is_terminal else "lines"
        self.mode = mode
        self.interval = interval
        self._bar: Progress | None = None
        self._task = None
        self._next = 0.0
        self._last = ""

    def __enter__(self) -> "TrainingProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def message(self, text: str) -> None:
        if self.mode != "quiet":
            self.console.print(text, highlight=False, soft_wrap=True)

    def start(self, epochs: int, steps_per_epoch: int, done_epochs: int = 0) -> None:
        self.epochs = epochs
        if self.mode != "bar":
            return
        self._bar = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task("train", total=epochs * steps_per_epoch,
                                        completed=done_epochs * steps_per_epoch,
                                        epoch=done_epochs + 1, epochs=epochs, stats="")

    def step(self, epoch: int, completed: int, loss: float) -> None:
        if self._bar is None:
            return
        now = time.perf_counter()
        if now >= self._next:
            self._next = now + self.interval
            self._bar.update(self._task, completed=completed, epoch=epoch,
                             stats=f"loss {loss:.4f}{self._last}")

    def epoch_end(self, record: dict[str, Any], seconds: float, completed: int, monitor: str | None) -> None:
        if monitor and record.get(monitor) is not None:
            self._last = f"  {monitor} {record[monitor]:.4f}"
        if self.mode == "quiet":
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=completed, epoch=record["epoch"],
                             stats=f"loss {record['train_loss']:.4f}{self._last}")
        self.console.print(format_record(record, seconds), highlight=False, soft_wrap=True)
        if self._bar is None and not self.console.is_terminal:
            sys.stderr.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
