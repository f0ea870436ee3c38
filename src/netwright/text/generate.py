"""Generating text: continuing a prompt with a language model, translating with an
encoder-decoder, and the evaluation of both (perplexity against a unigram model; BLEU and
chrF against a copy-the-source baseline); a bag-of-words baseline for text classifiers."""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

import numpy as np
import torch

from ..atomic import write_json
from ..data.info import Dataset
from ..errors import NetwrightError
from ..run import Run
from .tokenizer import digest, from_dict

TOKENIZER_FILE = "tokenizer.json"


def save_tokenizer(run: Run) -> None:
    """Write the run's tokenizer as ``tokenizer.json`` (the same JSON ``data.json`` records by digest)."""
    pre = run.info.preprocess
    if "tokenizer" in pre:
        write_json(run.file(TOKENIZER_FILE), pre["tokenizer"])


def load_tokenizer(run: Run):
    """The run's tokenizer, checked against the model it was trained with."""
    pre = run.info.preprocess
    path = run.file(TOKENIZER_FILE)
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


def generate(run: Run | str | os.PathLike, prompt: str, tokens: int = 200, temperature: float = 0.8,
             top_k: int | None = None, top_p: float | None = None, seed: int = 0, beam: int = 1,
             cache: bool = True) -> dict[str, Any]:
    """Continue ``prompt`` (language model) or translate it (encoder-decoder)."""
    run = run if isinstance(run, Run) else Run.open(run)
    task = run.info.task
    if task not in ("language_model", "translation"):
        raise NetwrightError(f"generate works with language and translation models; {run.path} is {task}: "
                             "use 'netwright predict'")
    tok = load_tokenizer(run)
    model = run.load_model()
    ids = tok.encode(prompt)
    if not ids:
        raise NetwrightError("the prompt is empty; give some text to start from")
    t0 = time.perf_counter()
    if task == "translation":
        from .data import pad

        src = torch.tensor([pad(ids, model.max_len)])
        out = model.translate(src, beam=beam)[0]
        return {"prompt": prompt, "translation": tok.decode(out), "beam": beam,
                "seconds": time.perf_counter() - t0}
    if tokens < 1:
        raise NetwrightError(f"--tokens {tokens}: ask for at least one")
    g = torch.Generator().manual_seed(seed)
    prompt_ids = torch.tensor([ids[-model.max_len:]])
    out = model.generate(prompt_ids, tokens, temperature=temperature, top_k=top_k, top_p=top_p, generator=g,
                         use_cache=cache)
    new = out[0, prompt_ids.shape[1]:].tolist()
    return {"prompt": prompt, "text": tok.decode(new), "tokens": len(new), "cache": cache,
            "seconds": time.perf_counter() - t0}


def evaluate_language(run: Run, batch_size: int = 256) -> dict[str, Any]:
    """Test loss, perplexity and next-token accuracy, against a unigram model of the training text."""
    from ..tasks import LanguageModelTask
    from ..training.trainer import collect_outputs

    data = run.load_data()
    test = data.split("test")
    model = run.load_model()
    task = LanguageModelTask(data.info, run.spec.train)
    metrics = task.metrics(collect_outputs(model, task, test, batch_size, torch.device("cpu")))
    counts = np.bincount(data.train.y.numpy().ravel(), minlength=len(data.info.vocab)).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())  # add-one smoothed unigram frequencies of the training text
    unigram = float(-logp[test.y.numpy().ravel()].mean())
    metrics.update(unigram_loss=unigram, unigram_perplexity=math.exp(unigram))
    tok = load_tokenizer(run)
    # a sample continuing the start of a test window (text the vocabulary covers)
    sample = model.generate(test.x[:1, :16], 300, temperature=0.8, top_k=40, generator=torch.Generator().manual_seed(0))
    return {"split": "test", "n": len(test), "task": "language_model", "metrics": metrics,
            "tokenizer": tok.kind, "sample": tok.decode(sample[0].tolist())}


def evaluate_translation(run: Run, samples: int = 300, beam: int = 4, batch_size: int = 128) -> dict[str, Any]:
    """Loss and perplexity on the test split; BLEU and chrF (sacrebleu) of greedy and beam decoding
    on ``samples`` test sentences, beside copying the source as the 'translation'."""
    import sacrebleu

    from ..tasks import Seq2SeqTask
    from ..training.trainer import collect_outputs

    data = run.load_data()
    test = data.split("test")
    model = run.load_model()
    task = Seq2SeqTask(data.info, run.spec.train)
    metrics = task.metrics(collect_outputs(model, task, test, batch_size, torch.device("cpu")))
    tok = load_tokenizer(run)
    src = test.x[:samples]
    sources = [tok.decode(row) for row in src.tolist()]
    refs = [tok.decode(row) for row in test.y[:samples].tolist()]
    greedy = [tok.decode(ids) for i in range(0, len(src), batch_size) for ids in model.translate(src[i:i + batch_size])]
    beamed = [tok.decode(ids) for ids in model.translate(src, beam=beam)]
    for name, hyp in (("greedy", greedy), (f"beam{beam}", beamed), ("copy_source", sources)):
        metrics[f"bleu_{name}"] = sacrebleu.corpus_bleu(hyp, [refs]).score
        metrics[f"chrf_{name}"] = sacrebleu.corpus_chrf(hyp, [refs]).score
    examples = [{"source": s, "reference": r, "greedy": g, f"beam{beam}": b}
                for s, r, g, b in list(zip(sources, refs, greedy, beamed))[:5]]
    return {"split": "test", "n": len(test), "task": "translation", "decoded": len(src), "metrics": metrics,
            "examples": examples}


def bag_of_words_baseline(run: Run, data: Dataset, split: str = "test") -> dict[str, Any]:
    """Logistic regression on word counts (scikit-learn), fitted on the run's training split of
    the same tokenised text (``data``, the run's data): the baseline a text classifier has to beat."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    tok = load_tokenizer(run)

    def texts(part) -> list[str]:
        return [tok.decode(row) for row in part.x.tolist()]

    words = CountVectorizer()
    fitted = LogisticRegression(max_iter=2000).fit(words.fit_transform(texts(data.train)), data.train.y.numpy())
    part = data.split(split)
    return {"model": "bag-of-words logistic regression (scikit-learn CountVectorizer + LogisticRegression)",
            "fitted_on": "train", "accuracy": float(fitted.score(words.transform(texts(part)), part.y.numpy()))}
