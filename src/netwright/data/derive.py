"""What a table's columns hold beyond numbers and categories, read the way a person would: a
column of dates or times becomes its parts (year, month, day, weekday, hour, and the days since
1970 for trends); a column of free text becomes counts of its words and word pairs hashed into a
fixed number of buckets (scikit-learn's ``HashingVectorizer``); a column of numbers written with a
currency sign, thousands separators, a percent sign or accounting parentheses ('$1,234.50',
'(1,200)', '12%') is read as those numbers; a code with structure (a postcode) can be cut to its
first characters (the ``prefix`` key); a column that names rows (a different whole number in
every row, counting up, or a column named like an identifier) is left out of the inputs, with a
note.

Derivations are fitted on the training table, recorded in ``DataInfo.preprocess["derived"]``
and applied to every raw table that later reaches the model (``predict``, ``serve``,
``monitor``, ``audit``), so a user always gives the columns as the file had them.
"""

from __future__ import annotations

import datetime as dt
import re
from itertools import compress
from typing import Any, Callable

import numpy as np

from ..errors import DataError
from .cells import Cells
from .missing import absent_of, cell_text, is_missing

DATE_SHARE = 0.9  # a column is dates when this share of its filled cells read as ISO dates (and not as numbers)
DATE_PARTS = ("year", "month", "day", "weekday", "days")  # days: since 1970-01-01, fractional with a time
TIME_PARTS = ("hour",)
TEXT_BUCKETS = 256  # hashed word and word-pair counts of a free-text column (l2-normalised per cell)
TEXT_WORDS, TEXT_DISTINCT = 3.0, 0.5  # free text: this many words a cell on average, this share of cells distinct


def _when(cell: Any) -> dt.datetime | None:
    text = cell_text(cell)
    if _float(text) is not None:
        return None  # a number is not a date, however it parses
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        return None


def _named_like_id(name: str) -> bool:
    """``id``, ``user_id``, ``id_user``, ``userId``, ``userID`` (not ``humid`` or ``paid``)."""
    import re

    lowered = name.lower().replace("-", "_").replace(" ", "_")
    return (lowered == "id" or lowered.endswith("_id") or lowered.startswith("id_")
            or re.search(r"[a-z0-9](Id|ID)$", name) is not None)


def _looks_like_id(name: str, cells: list[Any], extra: frozenset[str]) -> bool:
    """A different value in every row that is a whole number or a code (not a measurement), and
    either counts up by one in file order or sits in a column named like an identifier."""
    if len(cells) < 20 or len(set(cells)) != len(cells):
        return False  # the same cell twice (or few rows): the same text twice
    filled = [cell_text(c) for c in cells if not is_missing(c, extra)]
    if len(filled) < 20 or len(set(filled)) != len(filled) or len(filled) < len(cells):
        return False
    numbers = [_float(v) for v in filled]
    if all(x is not None for x in numbers):
        if not all(x.is_integer() for x in numbers):
            return False  # a measurement that happens to differ in every row
        if all(b - a == 1 for a, b in zip(numbers, numbers[1:])):
            return True  # a row counter
    return _named_like_id(name)


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


CURRENCY = "$€£¥₹"
_DIGITS = re.compile(r"(\d{1,3}(?:,\d{3})+|\d+)(\.\d*)?|\.\d+")  # thousands separated by ',' or none


def formatted_number(cell: Any) -> tuple[float, frozenset[str]] | None:
    """A number as people write it, with the signs it was written with: a currency sign before or
    after ('$1,234.50', '12 €'), thousands separators (','), a percent sign ('12%': 12) and
    accounting parentheses for a negative ('(1,200)'); ``None`` for anything else."""
    t = cell_text(cell).replace("\u00a0", " ").strip()
    signs: set[str] = set()
    negative = False
    if len(t) > 2 and t[0] == "(" and t[-1] == ")":
        negative, t = True, t[1:-1].strip()
        signs.add("()")
    signed = False
    for _ in range(2):  # a sign and a currency in either order: '-$5', '$-5'
        if t[:1] in ("+", "-") and not signed:
            negative ^= t[0] == "-"
            signed, t = True, t[1:].strip()
        elif t[:1] and t[0] in CURRENCY:
            signs.add(t[0])
            t = t[1:].strip()
    if t[-1:] and t[-1] in CURRENCY:
        signs.add(t[-1])
        t = t[:-1].strip()
    if t.endswith("%"):
        signs.add("%")
        t = t[:-1].strip()
    if not _DIGITS.fullmatch(t):
        return None
    if "," in t:
        signs.add(",")
    value = float(t.replace(",", ""))
    return (-value if negative else value), frozenset(signs)


def read_formatted(cells: list[Any], marks: frozenset[str] = frozenset()) -> list[Any]:
    """Each formatted cell as its number (text); any other cell as it was (a missing marker, or text
    the encoder refuses)."""
    return [c if is_missing(c, marks) or (v := formatted_number(c)) is None else str(v[0]) for c in cells]


def formatted_column(cells: list[Any], extra: frozenset[str] = frozenset()) -> list[str]:
    """The signs a column of numbers is written with ('$', ',', '%', '()'), when this share
    (``DATE_SHARE``) of its filled cells reads as :func:`formatted_number` and some carry a sign
    (a column of plain numbers needs nothing); empty otherwise."""
    filled = list(compress(cells, ~absent_of(cells, extra)))
    if not filled or not _has_sign(cells, filled):
        return []  # plain numbers or text: no sign to read
    read = _mostly(formatted_number, filled)
    signs = frozenset().union(*(v[1] for v in (read or ((), 0))[0]))
    return sorted(signs) if read is not None and signs else []


_SIGNS = CURRENCY + ",%("


def _has_sign(cells: Any, filled: list[Any]) -> bool:
    """Whether a filled cell holds a sign of :func:`formatted_number` (one pass in Arrow when the
    column is read there)."""
    text = cells.text() if isinstance(cells, Cells) else None
    if text is not None:  # ASCII: no currency sign but '$'
        import pyarrow.compute as pc

        return bool(pc.any(pc.match_substring_regex(text, r"[$,%(]")).as_py())
    joined = "\n".join(map(cell_text, filled))
    return any(ch in joined for ch in _SIGNS)


def _mostly(read: Callable[[Any], Any], filled: list[Any]) -> tuple[list[Any], int] | None:
    """(what ``read`` makes of each distinct cell that reads (is not None), how many cells read)
    when at least ``DATE_SHARE`` of the cells read, else None. Each distinct cell is read once,
    and the reading stops as soon as too many cells have failed."""
    from collections import Counter

    allowed, failed, out, count = len(filled) - DATE_SHARE * len(filled), 0, [], 0
    for cell, times in Counter(filled).items():
        v = read(cell)
        if v is None:
            failed += times
            if failed > allowed:
                return None
        else:
            out.append(v)
            count += times
    return out, count


def fit(table: dict[str, list[Any]], features: list[str], chosen: bool, categorical: list[str] | None,
        extra: frozenset[str] = frozenset(), prefix: dict[str, int] | None = None
        ) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    """(features kept, derivations, notes) for the training table. ``chosen``: the user listed the
    features, so none is left out; a column the user calls ``categorical`` is never dates;
    ``extra``: the data's own missing markers (``na_values``); ``prefix``: columns to cut to
    their first characters (then categories)."""
    kept, derived, notes = [], [], []
    for name in features:
        cells = table[name]
        filled = list(compress(cells, ~absent_of(cells, extra)))
        if name in (prefix or {}):
            length = prefix[name]
            codes = {cell_text(c) for c in filled}
            derived.append({"column": name, "kind": "prefix", "parts": [], "length": length})
            notes.append(f"{name} cut to its first {length} characters: {len({c[:length] for c in codes})} "
                         f"categories ({len(codes)} before)")
            kept.append(name)
            continue
        if not chosen and _looks_like_id(name, cells, extra):
            notes.append(f"{name} left out: it names rows (a different value in every row); list it in "
                         "data.features to use it")
            continue
        if filled and name not in (categorical or []) and (signs := formatted_column(cells, extra)):
            derived.append({"column": name, "kind": "number", "parts": [], "signs": signs})
            notes.append(f"{name} read as numbers written with {' '.join(repr(s) for s in signs)}")
            kept.append(name)
            continue
        if filled and name not in (categorical or []):
            read = _mostly(_when, filled)
            if read is not None:
                times, dates = read
                timed = any(t.hour or t.minute or t.second for t in times)
                parts = list(DATE_PARTS + (TIME_PARTS if timed else ()))
                derived.append({"column": name, "kind": "datetime", "parts": parts,
                                **({"na_values": sorted(extra)} if extra else {})})
                odd = len(filled) - dates
                notes.append(f"{name} read as dates: {', '.join(parts)}"
                             + (f" ({odd} {'cells that are' if odd > 1 else 'cell that is'} no date read as missing)"
                                if odd else ""))
                kept += [f"{name}.{p}" for p in parts]
                continue
            if _is_text(filled):
                parts = [f"#{i}" for i in range(TEXT_BUCKETS)]
                derived.append({"column": name, "kind": "text", "parts": parts})
                notes.append(f"{name} read as free text: word and word-pair counts hashed into {TEXT_BUCKETS} "
                             "columns")
                kept += [f"{name}.{p}" for p in parts]
                continue
        kept.append(name)
    return kept, derived, notes


def _is_text(filled: list[Any]) -> bool:
    if any(_float(cell_text(c)) is not None for c in filled[:1000]):
        return False
    if len(set(filled)) < TEXT_DISTINCT * len(filled):
        return False  # few distinct cells (categories): fewer distinct texts still
    texts = [cell_text(c) for c in filled]
    words = sum(len(t.split()) for t in texts) / len(texts)
    return words >= TEXT_WORDS and len(set(texts)) >= TEXT_DISTINCT * len(texts)


def _hashed(texts: list[str], buckets: int) -> Any:
    from sklearn.feature_extraction.text import HashingVectorizer

    vec = HashingVectorizer(n_features=buckets, ngram_range=(1, 2), alternate_sign=False, norm="l2")
    return vec.transform(texts).astype(np.float32).toarray(order="F")  # float32: what the model reads; by column


def _text_parts(d: dict[str, Any], cells: list[Any], marks: frozenset[str]) -> dict[str, Any]:
    counts = _hashed([cell_text(c) for c in cells], len(d["parts"]))  # an empty cell: a text without words
    return {f"{d['column']}.{p}": counts[:, i] for i, p in enumerate(d["parts"])}


def _date_parts(d: dict[str, Any], cells: list[Any], marks: frozenset[str]) -> dict[str, Any]:
    """Each part as a column of numbers, NaN where the cell is missing or no date."""
    parts = np.full((len(d["parts"]), len(cells)), np.nan)
    read: dict[Any, list[float] | None] = {}  # each distinct cell read once (dates repeat)
    for row, cell in enumerate(cells):
        if cell not in read:
            t = None if is_missing(cell, marks) else _when(cell)
            read[cell] = None if t is None else [_part(t, p) for p in d["parts"]]
        if (values := read[cell]) is not None:
            parts[:, row] = values
    return {f"{d['column']}.{p}": parts[i] for i, p in enumerate(d["parts"])}


def _numbers(d: dict[str, Any], cells: list[Any], marks: frozenset[str]) -> dict[str, list[Any]]:
    return {d["column"]: read_formatted(cells, marks)}


def _prefix(d: dict[str, Any], cells: list[Any], marks: frozenset[str]) -> dict[str, list[Any]]:
    return {d["column"]: [c if is_missing(c, marks) else cell_text(c)[:d["length"]] for c in cells]}


# each kind of derivation: (derivation, the column's raw cells, missing markers) -> its output columns
# (a list of cells, or an array of numbers with NaN where missing)
APPLY: dict[str, Callable[[dict[str, Any], list[Any], frozenset[str]], dict[str, Any]]] = {
    "datetime": _date_parts, "text": _text_parts, "number": _numbers, "prefix": _prefix}


def apply(table: dict[str, list[Any]], derived: list[dict[str, Any]] | None, source: str,
          extra: frozenset[str] = frozenset()) -> dict[str, Any]:
    """``table`` with each derived column replaced by its parts (a missing cell, or one that is
    no date in a column of dates: missing parts), or by its cells read anew (a formatted number,
    a prefix)."""
    if not derived:
        return table
    out = dict(table)
    for d in derived:
        name = d["column"]
        if name not in out:
            if d["parts"] and all(f"{name}.{p}" in out for p in d["parts"]):
                continue  # given as its parts already
            raise DataError(f"{source}: missing column '{name}'; give it as the training file had it "
                            f"({d['kind']})")
        out.update(APPLY[d["kind"]](d, out.pop(name), extra | frozenset(d.get("na_values", ()))))
    return out


def _part(t: dt.datetime, part: str) -> float:
    """One part of the time as its clock read it (with a time zone: the wall clock there)."""
    if part == "weekday":
        return float(t.weekday())
    if part == "days":
        return (t.replace(tzinfo=None) - dt.datetime(1970, 1, 1)).total_seconds() / 86400.0
    return float(getattr(t, part))


def input_columns(pre: dict[str, Any]) -> list[str]:
    """The columns a raw table must have for the model: derived columns by their source."""
    return input_columns_of([c["name"] for c in pre["columns"]], pre.get("derived"))


def input_columns_of(names: Any, derived: list[dict[str, Any]] | None) -> list[str]:
    sources = column_sources(derived)
    return list(dict.fromkeys(sources.get(n, n) for n in names))


def column_sources(derived: list[dict[str, Any]] | None) -> dict[str, str]:
    """A derived column's name (``signup.month``) -> the raw column it comes from (``signup``)."""
    return {f"{d['column']}.{p}": d["column"] for d in derived or [] for p in d["parts"]}
