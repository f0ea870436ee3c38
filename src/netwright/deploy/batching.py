"""Dynamic batching: concurrent requests stacked into one model call, answered one by one.

The model runs on one worker thread. While it computes, arriving requests queue (per input
shape and type); the moment it is free, the queue's oldest requests go to it together, up to
``max_batch`` rows. So under load the batches grow by themselves to what arrived during one
call, and a lone request is never held back by a busy model it could not have joined. When the
model is idle, a request waits at most ``max_wait_s`` for company before it runs. Each request
gets exactly its own rows of the output.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np


class Batcher:
    """Stack concurrent ``run(x)`` calls into calls of ``fn`` on up to ``max_batch`` rows."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], max_batch: int, max_wait_s: float,
                 observe: Callable[[int], Any] | None = None):
        self.fn, self.max_batch, self.max_wait_s = fn, max_batch, max_wait_s
        self.observe = observe or (lambda rows: None)  # told the rows of every model call
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self.pending: dict[tuple, deque[tuple[np.ndarray, asyncio.Future]]] = {}  # oldest key first
        self.rows: dict[tuple, int] = {}
        self.busy = False
        self.timer: asyncio.TimerHandle | None = None

    async def run(self, x: np.ndarray) -> np.ndarray:
        """The model's outputs for the rows of ``x``, computed in a batch with other requests."""
        loop = asyncio.get_running_loop()
        if self.max_batch <= 1:
            self.observe(len(x))
            return await loop.run_in_executor(self.executor, self.fn, x)
        future: asyncio.Future = loop.create_future()
        key = (x.dtype.str, x.shape[1:])
        self.pending.setdefault(key, deque()).append((x, future))
        self.rows[key] = self.rows.get(key, 0) + len(x)
        if not self.busy:
            if self.rows[key] >= self.max_batch or self.max_wait_s <= 0:
                self._next(loop)
            elif self.timer is None:
                self.timer = loop.call_later(self.max_wait_s, self._next, loop)
        return await future

    def _next(self, loop: asyncio.AbstractEventLoop) -> None:
        """Send the oldest requests to the model (a free model, or the idle wait is over)."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.busy or not self.pending:
            return
        key = next(iter(self.pending))
        queue, batch, rows = self.pending[key], [], 0
        while queue and (not batch or rows + len(queue[0][0]) <= self.max_batch):
            x, future = queue.popleft()
            if future.done():  # its client went away
                self.rows[key] -= len(x)
                continue
            batch.append((x, future))
            rows += len(x)
        self.rows[key] -= rows
        if not queue:
            del self.pending[key], self.rows[key]
        if not batch:
            self._next(loop)
            return
        self.busy = True
        self.observe(rows)
        x = batch[0][0] if len(batch) == 1 else np.concatenate([a for a, _ in batch])
        call = loop.run_in_executor(self.executor, self.fn, x)
        call.add_done_callback(lambda done: self._answer(loop, batch, done))

    def _answer(self, loop: asyncio.AbstractEventLoop, batch: list, done: asyncio.Future) -> None:
        self.busy = False
        if done.cancelled():  # the server is shutting down: nobody waits for an answer
            for _, future in batch:
                future.cancel()
            return
        error = done.exception()
        out, start = (None, 0) if error is not None else (done.result(), 0)
        for a, future in batch:
            if not future.done():  # a client that went away cancelled its wait
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(out[start:start + len(a)])
            start += len(a)
        if self.pending:  # what arrived during the call goes at once
            self._next(loop)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
