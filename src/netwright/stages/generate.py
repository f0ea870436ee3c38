"""The ``generate`` stage: a language model continues a prompt, a translation model translates it."""

from __future__ import annotations

import os
from typing import Any

from ..run import Run
from ..tasks import run_task


def generate(run: Run | str | os.PathLike, prompt: str, tokens: int = 200, temperature: float = 0.8,
             top_k: int | None = None, top_p: float | None = None, seed: int = 0, beam: int = 1,
             cache: bool = True) -> dict[str, Any]:
    """Continue ``prompt`` (language model: ``tokens`` sampled at ``temperature``, from the
    ``top_k`` or nucleus ``top_p``) or translate it (encoder-decoder: greedy or a ``beam``)."""
    run = run if isinstance(run, Run) else Run.open(run)
    task = run_task(run)
    task.require("generate", run)
    return task.generate(run, prompt, tokens=tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                         beam=beam, cache=cache)
