"""What each row of the validation split is used for, so that no two choices are fitted on the same rows.

A run makes up to three choices from validation data: which epoch to keep (``keep: best``,
early stopping, a tuning study's score: the ``select`` rows), the temperature of its
probabilities (``calibrate``: the ``temperature`` rows) and the threshold of its conformal sets or
intervals (``--coverage``: the ``conformal`` rows). A threshold fitted on the rows that chose the
epoch would be fitted on scores that are optimistic for exactly those rows, and its "at least
1 - alpha" would no longer hold; so the kind of run divides its validation split between the
choices it makes (``Kind.val_roles``) and each choice reads its own rows only.

The rows of a role are positions in the split's own order (its examples in file order, as
``collect_outputs`` reads them), drawn by a permutation seeded with the run's ``split_seed``:
the same rows for training, ``calibrate`` and ``evaluate``, in every process.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ROLES = ("select", "temperature", "conformal")
#: what each role's rows choose, as the card and ``eval.json`` say it
CHOOSES = {"select": "the kept epoch (keep: best, early stopping) and a tuning study's score",
           "temperature": "the temperature (calibrate)", "conformal": "the conformal threshold (--coverage)"}
_SALT = 0x5E1EC7  # keeps the role permutation apart from every other use of the split seed


def role_rows(n: int, shares: dict[str, float], seed: int = 0) -> dict[str, np.ndarray]:
    """The positions ``0 .. n-1`` of a split divided between the roles in ``shares`` (which sum
    to 1, in the order of :data:`ROLES`): disjoint, together every position, each sorted."""
    order = np.random.default_rng([_SALT, int(seed), int(n)]).permutation(n)
    names = [r for r in ROLES if shares.get(r)]
    cuts = np.rint(np.cumsum([shares[r] for r in names]) * n).astype(np.int64)
    cuts[-1] = n
    starts = np.concatenate([[0], cuts[:-1]])
    return {r: np.sort(order[a:b]) for r, a, b in zip(names, starts, cuts)}


def rows_for(n: int, shares: dict[str, float], role: str, seed: int = 0) -> np.ndarray | None:
    """The positions of one role (None when the role has the whole split)."""
    if shares.get(role, 0.0) >= 1.0:
        return None
    return role_rows(n, shares, seed)[role]


def smallest_split(shares: dict[str, float], role: str, rows: int) -> int:
    """The fewest rows a split needs for ``role`` to get ``rows`` of them (the roles' sizes do
    not depend on the seed)."""
    n = max(rows, int(np.floor((rows - 1) / shares[role])))
    while len(role_rows(n, shares)[role]) < rows:
        n += 1
    return n


def take(outputs: dict[str, Any], rows: np.ndarray | None) -> dict[str, Any]:
    """The outputs of a split (tensors whose first axis is the example) at ``rows``."""
    if rows is None:
        return outputs
    import torch

    index = torch.as_tensor(rows, dtype=torch.long)
    return {k: v[index] for k, v in outputs.items()}


def describe(n: int, shares: dict[str, float], seed: int = 0) -> dict[str, Any]:
    """How a validation split of ``n`` rows is divided: rows per role and what each chooses."""
    return {role: {"rows": int(len(idx)), "chooses": CHOOSES[role]}
            for role, idx in role_rows(n, shares, seed).items()}
