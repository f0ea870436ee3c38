"""Ratings for recommendation: (user, item) -> rating, users and items as id columns.

MovieLens-100k (GroupLens; 943 users, 1,682 films, 100,000 ratings) is read straight from the
copy the ``recbole`` wheel ships (``recbole/dataset_example/ml-100k``); its terms allow research
use, so the project does not copy it. ``ratings_csv`` takes any user,item,rating table.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import numpy as np

from ..errors import DataError
from .info import RawData
from .registry import register_dataset


def ratings_data(users: list[str], items: list[str], ratings: np.ndarray, source: str,
                 item_names: dict[str, str] | None = None) -> RawData:
    """RawData with x = (user index, item index) as two id columns and y = the rating."""
    if len(ratings) == 0:
        raise DataError(f"{source}: no ratings")
    if not np.isfinite(ratings).all():
        raise DataError(f"{source}: rating {int(np.argmin(np.isfinite(ratings))) + 1} is not a number")
    user_ids, items_ids = sorted(set(users), key=_natural), sorted(set(items), key=_natural)
    u = {v: i for i, v in enumerate(user_ids)}
    it = {v: i for i, v in enumerate(items_ids)}
    x = np.stack([[u[v] for v in users], [it[v] for v in items]], axis=1).astype(np.float32)
    columns = [{"name": "user_id", "kind": "id", "categories": user_ids},
               {"name": "item_id", "kind": "id", "categories": items_ids}]
    pre = {"kind": "table", "columns": columns, "ratings": {"min": float(ratings.min()), "max": float(ratings.max())}}
    if item_names:
        pre["ratings"]["item_names"] = [item_names.get(v, v) for v in items_ids]
    return RawData(x=x, y=ratings.astype(np.float32), task="regression", modality="tabular", preprocess=pre,
                   feature_names=["user_id", "item_id"], target_name="rating", source=source,
                   kind="recommendation")


def _natural(v: str):
    return (0, int(v), "") if v.isdigit() else (1, 0, v)


@register_dataset("movielens_100k", modality="tabular", task="regression")
def movielens_100k() -> RawData:
    """MovieLens-100k ratings (1-5 stars; 943 users x 1,682 films), read from the recbole wheel."""
    try:
        folder = Path(metadata.distribution("recbole").locate_file("recbole/dataset_example/ml-100k"))
    except metadata.PackageNotFoundError:
        folder = None
    if folder is None or not (folder / "ml-100k.inter").is_file():
        raise DataError("MovieLens-100k is read from the recbole wheel: pip install --no-deps recbole "
                        "(only its dataset_example/ml-100k files are read)")
    lines = (folder / "ml-100k.inter").read_text(encoding="utf-8").splitlines()[1:]
    rows = [line.split("\t") for line in lines if line.strip()]
    titles = {}
    if (folder / "ml-100k.item").is_file():
        for line in (folder / "ml-100k.item").read_text(encoding="utf-8", errors="replace").splitlines()[1:]:
            parts = line.split("\t")
            if len(parts) >= 3:
                titles[parts[0]] = f"{parts[1]} ({parts[2]})"
    return ratings_data([r[0] for r in rows], [r[1] for r in rows], np.array([float(r[2]) for r in rows]),
                        "MovieLens-100k (Harper & Konstan 2015, GroupLens; research use), "
                        "recbole/dataset_example/ml-100k", titles)


@register_dataset("ratings_csv", modality="tabular", task="regression")
def ratings_csv(path: Path, user: str = "user_id", item: str = "item_id", rating: str = "rating") -> RawData:
    """A CSV of ratings: one row per (user, item, rating).

    Args:
        path: the CSV file (a header row).
        user: the column naming the user.
        item: the column naming the item.
        rating: the column holding the numeric rating.
    """
    from .preprocess import parse_numeric
    from .tabular import read_csv

    table = read_csv(Path(path))
    for col in (user, item, rating):
        if col not in table:
            raise DataError(f"{path}: no column '{col}'; columns are {', '.join(table)}")
    return ratings_data([str(v).strip() for v in table[user]], [str(v).strip() for v in table[item]],
                        parse_numeric(table[rating], rating, str(path)).astype(np.float64), str(path))
