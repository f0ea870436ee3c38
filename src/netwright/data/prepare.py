"""Raw arrays -> a split, normalised :class:`Dataset` with its :class:`DataInfo`."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from ..errors import DataError
from .info import Dataset, DataInfo, RawData, Split
from .missing import fills_value, fit_imputation, impute
from .preprocess import check_finite, fit_normalization, normalize


def prepare(raw: RawData, name: str, val: float, test: float, split_seed: int, normalize_inputs: bool,
            folds: tuple[int, int] | None = None) -> Dataset:
    """Check the arrays, split them (stratified where possible) and normalise with train statistics.
    ``folds``: (K, i): outside the test split, fold i of K stratified folds is the validation split."""
    check_raw(raw, name)
    digest = fingerprint(raw)
    train_idx, val_idx, test_idx, stratified = split_indices(raw, digest, val, test, split_seed, folds)
    if len(train_idx) == 0:
        raise DataError(f"dataset '{name}': no examples left to train on; lower data.val / data.test")

    pre = fit_imputation(dict(raw.preprocess), raw.x[train_idx])  # missing table cells: train statistics
    if normalize_inputs:
        pre = fit_normalization(pre, impute(pre, raw.x[train_idx]))
    if raw.task == "regression":
        y_train = raw.y[train_idx].astype(np.float64)
        std = float(y_train.std()) or 1.0
        pre["target"] = {"mean": float(y_train.mean()), "std": std}

    def make(x: np.ndarray, y: np.ndarray, groups: dict[str, np.ndarray]) -> Split:
        xt = torch.from_numpy(np.ascontiguousarray(normalize(pre, x)))
        if raw.task != "regression":
            yt = torch.from_numpy(y.astype(np.int64))
        else:
            t = pre["target"]
            yt = torch.from_numpy(((y.astype(np.float64) - t["mean"]) / t["std"]).astype(np.float32))
        return Split(xt, yt, groups)

    def take(ix: np.ndarray | None) -> Split | None:
        if ix is None or len(ix) == 0:
            return None
        return make(raw.x[ix], raw.y[ix], {k: v[ix] for k, v in raw.groups.items()})

    test_split = make(*raw.test) if raw.test is not None else take(test_idx)
    splits = {"train": len(train_idx), "val": len(val_idx), "test": 0 if test_split is None else len(test_split)}
    info = DataInfo(
        name=name,
        task=raw.task,
        modality=raw.modality,
        input_shape=tuple(int(s) for s in raw.x.shape[1:]),
        num_classes=len(raw.class_names) if raw.class_names else None,
        class_names=raw.class_names,
        feature_names=raw.feature_names,
        target_name=raw.target_name,
        sensitive=list(raw.groups),
        vocab=raw.vocab,
        preprocess=pre,
        splits=splits,
        stratified=bool(stratified),
        fingerprint=digest,
        source=raw.source,
        kind=raw.kind,
    )
    return Dataset(info, take(train_idx), take(val_idx), test_split)


def split_indices(raw: RawData, digest: str, val: float, test: float, seed: int,
                  folds: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, bool]:
    """(train, val, test) example indices (test None when the data brings its own) and whether the
    split is stratified. The split is a pure function of the data and the fractions, so it is cached
    by the data's fingerprint: a later stage re-splits the same data without importing scikit-learn.
    """
    from .builtin import cached_arrays

    n = len(raw.y)

    def make() -> dict[str, np.ndarray]:
        train_idx, val_idx, test_idx, stratified = _split_all(raw, val, test, seed, folds)
        parts = {"train": train_idx, "val": val_idx, "stratified": np.array(stratified)}
        return parts | ({"test": test_idx} if test_idx is not None else {})

    key = {"fingerprint": digest, "n": n, "val": val, "test": test, "seed": seed, "task": raw.task,
           "own_test": raw.test is not None, **({"folds": list(folds)} if folds else {})}
    parts = cached_arrays("split", key, make)
    if sum(len(parts[k]) for k in ("train", "val", "test") if k in parts) != n or not all(
            np.issubdtype(parts[k].dtype, np.integer) for k in ("train", "val")):
        parts = make()  # a cache entry that does not fit this data: split again
    return parts["train"], parts["val"], parts.get("test"), bool(parts["stratified"])


def _split_all(raw: RawData, val: float, test: float, seed: int,
               folds: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, bool]:
    idx = np.arange(len(raw.y))
    strat = raw.y if raw.task == "classification" else None  # sequences (language, translation): a random split
    stratified = strat is not None
    if raw.test is not None:
        pool, test_idx = idx, None
        val_frac = val
    else:
        pool, test_idx, ok = _split(idx, test, strat, seed)
        stratified &= ok
        val_frac = val / (1.0 - test)
    if folds is not None:
        train_idx, val_idx, ok = _fold(pool, *folds, None if strat is None else strat[pool], seed + 1)
    else:
        train_idx, val_idx, ok = _split(pool, val_frac, None if strat is None else strat[pool], seed + 1)
    return train_idx, val_idx, test_idx, bool(stratified and ok)


def _fold(idx: np.ndarray, k: int, i: int, strat: np.ndarray | None, seed: int):
    """Split ``idx`` into (rest, fold ``i`` of ``k``); stratified when every class has ``k`` examples."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if len(idx) < k:
        raise DataError(f"{len(idx)} examples outside the test split cannot make {k} folds; use fewer folds")
    ok = strat is not None and np.unique(strat, return_counts=True)[1].min() >= k
    splitter = StratifiedKFold(k, shuffle=True, random_state=seed) if ok else KFold(k, shuffle=True, random_state=seed)
    rest, out = list(splitter.split(idx, strat if ok else None))[i - 1]
    return np.sort(idx[rest]), np.sort(idx[out]), ok or strat is None


def check_raw(raw: RawData, name: str) -> None:
    """Fail on an empty dataset, mismatched lengths, non-finite values or bad labels."""
    fills = raw.preprocess.get("kind") == "table" and any(fills_value(c) for c in raw.preprocess["columns"])
    parts = [("", raw.x, raw.y)] + ([(" test", raw.test[0], raw.test[1])] if raw.test is not None else [])
    for label, x, y in parts:
        where = f"dataset '{name}'{label}"
        if len(x) == 0:
            raise DataError(f"{where} is empty; give it at least one example per class")
        if len(x) != len(y):
            raise DataError(f"{where}: {len(x)} inputs but {len(y)} targets; they must match one to one")
        check_finite(x, f"{where} inputs", allow_nan=fills)
        check_finite(np.asarray(y, dtype=np.float64), f"{where} targets")
        if raw.task in ("language_model", "translation"):
            v = len(raw.vocab or [])
            if int(np.min(y)) < 0 or int(np.max(y)) >= v or int(np.min(x)) < 0 or int(np.max(x)) >= v:
                raise DataError(f"{where}: token ids must lie in 0..{v - 1}")
        if raw.task == "classification":
            k = len(raw.class_names or [])
            if not np.issubdtype(y.dtype, np.integer):
                raise DataError(f"{where}: class labels must be integers 0..{k - 1}, got {y.dtype} values")
            lo, hi = int(y.min()), int(y.max())
            if lo < 0 or hi >= k:
                bad = lo if lo < 0 else hi
                raise DataError(f"{where}: label {bad} is out of range; labels must be 0..{k - 1} "
                                f"for {k} classes")
    if raw.task == "classification" and len(raw.class_names or []) < 2:
        raise DataError(f"dataset '{name}' has fewer than 2 classes; classification needs at least 2")


def fingerprint(raw: RawData) -> str:
    """SHA-256 of the raw arrays (and the fixed test split), first 16 hex digits."""
    h = hashlib.sha256()
    arrays = [raw.x, raw.y] + ([raw.test[0], raw.test[1]] if raw.test is not None else [])
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def _split(idx: np.ndarray, frac: float, strat: np.ndarray | None, seed: int):
    """Split ``idx`` into (rest, held-out); stratified when every class allows it."""
    from sklearn.model_selection import train_test_split  # imported here: it takes most of a second
    if frac <= 0:
        return idx, np.array([], dtype=idx.dtype), True
    n_out = int(round(frac * len(idx)))
    if n_out == 0 or n_out >= len(idx):
        raise DataError(f"a held-out fraction of {frac:g} of {len(idx)} examples leaves an empty split; "
                        "use more data or change data.val / data.test")
    if strat is not None:
        try:
            rest, out = train_test_split(idx, test_size=n_out, random_state=seed, stratify=strat)
            return np.sort(rest), np.sort(out), True
        except ValueError:
            pass  # a class too small to stratify: fall back to a plain random split
    rest, out = train_test_split(idx, test_size=n_out, random_state=seed)
    return np.sort(rest), np.sort(out), strat is None
