"""Language modelling (next token at every position) and sequence-to-sequence translation
(teacher forcing). Both report loss, perplexity and token accuracy (padding is ignored); a
language model is evaluated against a unigram model of its training text and continues a
prompt, a translator is scored by BLEU and chrF against copying the source and translates."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import NetwrightError
from ..data.tokenizer import PAD, digest, from_dict
from ..run import TOKENIZER, Run
from .base import OneNetworkTask
from .registry import register_task
from .supervised import collect_outputs


# ------------------------------------------------------------------ a run's tokenizer file


def save_tokenizer(run: Run) -> None:
    """Write the run's tokenizer as ``tokenizer.json`` (the same JSON ``data.json`` records by digest)."""
    from ..atomic import write_json

    pre = run.info.preprocess
    if "tokenizer" in pre:
        write_json(run.file(TOKENIZER), pre["tokenizer"])


def load_tokenizer(run: Run) -> Any:
    """The run's tokenizer, checked against the model it was trained with."""
    pre = run.info.preprocess
    path = run.file(TOKENIZER)
    if not path.is_file():
        raise NetwrightError(f"{path}: missing; this run has no tokenizer file (was it trained on text?)")
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        tok = from_dict(d)
    except Exception as e:
        raise NetwrightError(f"{path}: not a tokenizer this model can use ({str(e).splitlines()[0][:120]})") from None
    if digest(d) != pre.get("tokenizer_sha") or tok.vocab_size != len(run.info.vocab):
        raise NetwrightError(f"{path} does not match the model (vocabulary of {tok.vocab_size}, the model has "
                             f"{len(run.info.vocab)}; or another training text); restore the run's own tokenizer")
    return tok


class _TokenTask(OneNetworkTask):
    metric_names = ["loss", "perplexity", "accuracy"]
    stages = frozenset({"evaluate", "generate", "report", "export"})
    mixed_precision = True
    instead = "use 'netwright generate {run} --prompt ...'"

    def logits(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def objective(self, model: nn.Module, batch: tuple[Any, ...]) -> torch.Tensor:
        if self.autocast is None:
            logits, target = self.logits(model, batch[0], batch[1])
        else:
            with self.autocast():
                logits, target = self.logits(model, batch[0], batch[1])
        return F.cross_entropy(logits.float().flatten(0, 1), target.flatten(), ignore_index=PAD,
                               label_smoothing=self.train_spec.label_smoothing)

    @torch.no_grad()
    def eval_step(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        logits, target = self.logits(model, batch[0], batch[1])
        logits = logits.float().flatten(0, 1)
        target = target.flatten()
        keep = target != PAD
        loss = F.cross_entropy(logits, target, ignore_index=PAD, reduction="sum")
        correct = ((logits.argmax(-1) == target) & keep).sum()
        # sums only: full logits (examples x steps x vocabulary) would not fit in memory
        return {"loss_sum": loss[None].double(), "tokens": keep.sum()[None].double(), "correct": correct[None].double()}

    def metrics(self, outputs: dict[str, torch.Tensor]) -> dict[str, Any]:
        tokens = float(outputs["tokens"].sum())
        loss = float(outputs["loss_sum"].sum()) / max(tokens, 1.0)
        return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)),
                "accuracy": float(outputs["correct"].sum()) / max(tokens, 1.0)}


    def split_metrics(self, run: Run, split: str, batch_size: int) -> tuple[Any, Any, nn.Module, dict[str, Any]]:
        data = run.load_data()
        part = data.split(split)
        model = run.load_model()
        return data, part, model, self.metrics(collect_outputs(model, self, part, batch_size, torch.device("cpu")))


@register_task("language_model", title="a language model", plural="language models")
class LanguageModelTask(_TokenTask):
    """Predict every next token of a window (a causal model sees only the tokens before)."""

    preset = "transformer_lm"

    def logits(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return model(x), y  # (B, T, V), (B, T)

    def evaluate(self, run: Run, split: str = "test", batch_size: int = 256,
                 coverage: float | None = None) -> dict[str, Any]:
        """Test loss, perplexity and next-token accuracy, against a unigram model of the training text."""
        data, test, model, metrics = self.split_metrics(run, "test", min(batch_size, 256))
        counts = np.bincount(data.train.y.numpy().ravel(), minlength=len(data.info.vocab)).astype(np.float64) + 1.0
        logp = np.log(counts / counts.sum())  # add-one smoothed unigram frequencies of the training text
        unigram = float(-logp[test.y.numpy().ravel()].mean())
        metrics.update(unigram_loss=unigram, unigram_perplexity=math.exp(unigram))
        tok = load_tokenizer(run)
        # a sample continuing the start of a test window (text the vocabulary covers)
        sample = model.generate(test.x[:1, :16], 300, temperature=0.8, top_k=40,
                                generator=torch.Generator().manual_seed(0))
        return {"split": "test", "n": len(test), "task": "language_model", "metrics": metrics,
                "tokenizer": tok.kind, "sample": tok.decode(sample[0].tolist()),
                "baseline": {"name": "unigram model (add-one smoothed train token counts)",
                             "metrics": {"loss": unigram, "perplexity": math.exp(unigram)}}}

    def generate(self, run: Run, prompt: str, tokens: int = 200, temperature: float = 0.8, top_k: int | None = None,
                 top_p: float | None = None, seed: int = 0, beam: int = 1, cache: bool = True) -> dict[str, Any]:
        """Continue ``prompt`` by ``tokens`` sampled tokens."""
        tok, model, ids = _prompt(run, prompt)
        if tokens < 1:
            raise NetwrightError(f"--tokens {tokens}: ask for at least one")
        t0 = time.perf_counter()
        prompt_ids = torch.tensor([ids[-model.max_len:]])
        out = model.generate(prompt_ids, tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                             generator=torch.Generator().manual_seed(seed), use_cache=cache)
        new = out[0, prompt_ids.shape[1]:].tolist()
        return {"prompt": prompt, "text": tok.decode(new), "tokens": len(new), "cache": cache,
                "seconds": time.perf_counter() - t0}

    def export_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What an exported model is checked on (logits for every step and token: few windows),
        and a shorter window for its dynamic length axis."""
        return x[:32], x[:4, : x.shape[-1] // 2]

    @classmethod
    def example(cls) -> dict[str, Any]:
        return {"data": {"name": "pydoc", "tokenizer": "char", "seq_len": 32},
                "model": {"name": "transformer_lm", "d_model": 16, "heads": 2, "layers": 1, "ff_dim": 32},
                "train": {"epochs": 1}}


@register_task("translation", title="a translation model", plural="translation models")
class Seq2SeqTask(_TokenTask):
    """Translate: the decoder reads the target up to step t and predicts step t + 1."""

    preset = "transformer_seq2seq"
    stages = frozenset({"evaluate", "generate", "report"})

    def logits(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return model(x, y[:, :-1]), y[:, 1:]

    def evaluate(self, run: Run, split: str = "test", batch_size: int = 128, coverage: float | None = None,
                 samples: int = 300, beam: int = 4) -> dict[str, Any]:
        """Loss and perplexity on the test split; BLEU and chrF (sacrebleu) of greedy and beam
        decoding on ``samples`` test sentences, beside copying the source as the 'translation'."""
        import sacrebleu

        batch_size = min(batch_size, 128)
        _, test, model, metrics = self.split_metrics(run, "test", batch_size)
        tok = load_tokenizer(run)
        src = test.x[:samples]
        sources = [tok.decode(row) for row in src.tolist()]
        refs = [tok.decode(row) for row in test.y[:samples].tolist()]
        greedy = [tok.decode(ids) for i in range(0, len(src), batch_size)
                  for ids in model.translate(src[i:i + batch_size])]
        beamed = [tok.decode(ids) for ids in model.translate(src, beam=beam)]
        for name, hyp in (("greedy", greedy), (f"beam{beam}", beamed), ("copy_source", sources)):
            metrics[f"bleu_{name}"] = sacrebleu.corpus_bleu(hyp, [refs]).score
            metrics[f"chrf_{name}"] = sacrebleu.corpus_chrf(hyp, [refs]).score
        examples = [{"source": s, "reference": r, "greedy": g, f"beam{beam}": b}
                    for s, r, g, b in list(zip(sources, refs, greedy, beamed))[:5]]
        return {"split": "test", "n": len(test), "task": "translation", "decoded": len(src), "metrics": metrics,
                "examples": examples}

    def generate(self, run: Run, prompt: str, tokens: int = 200, temperature: float = 0.8, top_k: int | None = None,
                 top_p: float | None = None, seed: int = 0, beam: int = 1, cache: bool = True) -> dict[str, Any]:
        """Translate ``prompt`` (greedy, or a beam of ``beam``)."""
        from ..data.tokenizer import pad

        tok, model, ids = _prompt(run, prompt)
        t0 = time.perf_counter()
        out = model.translate(torch.tensor([pad(ids, model.max_len)]), beam=beam)[0]
        return {"prompt": prompt, "translation": tok.decode(out), "beam": beam, "seconds": time.perf_counter() - t0}

    @classmethod
    def example(cls) -> dict[str, Any]:
        return {"data": {"name": "bible_en_es", "tokenizer": "word", "vocab_size": 200, "max_len": 8},
                "model": {"name": "transformer_seq2seq", "d_model": 16, "heads": 2, "enc_layers": 1,
                          "dec_layers": 1, "ff_dim": 32},
                "train": {"epochs": 1}}


def _prompt(run: Run, prompt: str) -> tuple[Any, nn.Module, list[int]]:
    tok = load_tokenizer(run)
    ids = tok.encode(prompt)
    if not ids:
        raise NetwrightError("the prompt is empty; give some text to start from")
    return tok, run.load_model(), ids
