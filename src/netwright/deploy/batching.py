"""Dynamic batching: concurrent requests stacked into one model call, answered one by one.

A request's rows wait at most ``max_wait_s`` for others of the same shape and type; a batch
goes to the model as soon as it holds ``max_batch`` rows or its wait is over. The model runs on
one worker thread, so the event loop keeps accepting requests (and forming the next batch)
while a batch is computed. Each request gets exactly its own rows of the output.
"""

from __future__ import annotations

import asyncio
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
        self.pending: dict[tuple, list[tuple[np.ndarray, asyncio.Future]]] = {}
        self.timers: dict[tuple, asyncio.TimerHandle] = {}

    async def run(self, x: np.ndarray) -> np.ndarray:
        """The model's outputs for the rows of ``x``, computed in a batch with other requests."""
        loop = asyncio.get_running_loop()
        if self.max_batch <= 1 or len(x) >= self.max_batch:  # nothing to gain by waiting
            return await self._call(loop, x)
        future: asyncio.Future = loop.create_future()
        key = (x.dtype.str, x.shape[1:])
        queue = self.pending.setdefault(key, [])
        queue.append((x, future))
        if sum(len(a) for a, _ in queue) >= self.max_batch:
            self._flush(key)
        elif len(queue) == 1:
            self.timers[key] = loop.call_later(self.max_wait_s, self._flush, key)
        return await future

    async def _call(self, loop: asyncio.AbstractEventLoop, x: np.ndarray) -> np.ndarray:
        self.observe(len(x))
        return await loop.run_in_executor(self.executor, self.fn, x)

    def _flush(self, key: tuple) -> None:
        timer = self.timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        queue = self.pending.pop(key, None)
        if not queue:
            return
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._call(loop, np.concatenate([a for a, _ in queue])))

        def answer(done: asyncio.Future) -> None:
            if done.cancelled():  # the server is shutting down: nobody waits for an answer
                for _, future in queue:
                    future.cancel()
                return
            if done.exception() is not None:
                for _, future in queue:
                    if not future.done():
                        future.set_exception(done.exception())
                return
            out, start = done.result(), 0
            for a, future in queue:
                if not future.done():  # a client that went away cancelled its wait
                    future.set_result(out[start:start + len(a)])
                start += len(a)

        task.add_done_callback(answer)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
