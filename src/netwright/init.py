"""``netwright init``: a commented starting spec for a user's own CSV file.

Reads the table, decides what each column holds (:mod:`netwright.data.columns`), picks a
feed-forward network sized to the number of rows, fills in the fairness section when a
sensitive column is named, and writes YAML whose comments say what was decided and why.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from .atomic import write_text
from .data.columns import Column, infer_columns
from .data.tabular import read_csv
from .errors import NetwrightError

SCHEMA_FILE = Path(__file__).resolve().parent / "spec.schema.json"  # shipped in the package


def _model_for(rows: int) -> tuple[list[int], int, str]:
    """(hidden widths, epochs, why) for a table of ``rows`` rows."""
    if rows < 1_000:
        return [32], 60, f"{rows:,} rows: one small hidden layer (a larger network would memorise them)"
    if rows < 20_000:
        return [64, 32], 30, f"{rows:,} rows: two hidden layers"
    return [128, 64], 15, f"{rows:,} rows: two wider hidden layers, fewer passes"


def _target_facts(values: list[str]) -> tuple[str, list[str]]:
    """(task, class names) as the csv loader's ``task: auto`` will decide them."""
    filled = [v.strip() for v in values if v.strip()]
    try:
        numbers = [float(v) for v in filled]
    except ValueError:
        return "classification", sorted(set(filled))
    if all(x.is_integer() for x in numbers) and len(set(filled)) <= 20:
        return "classification", sorted(set(filled), key=lambda v: (float(v), v))
    return "regression", []


def init_spec(csv_path: str | os.PathLike, target: str, sensitive: list[str] | None = None,
              out: str | os.PathLike | None = None, overwrite: bool = False) -> tuple[Path, list[str], list[str]]:
    """Write a starting spec for ``csv_path`` predicting ``target``.

    Returns:
        The spec's path, the columns used as inputs, and the columns left out (each spec comment says why).

    Raises:
        NetwrightError: an unreadable table, an unknown column, or an existing spec file (without
            ``overwrite``).
    """
    csv_path = Path(csv_path)
    if csv_path.is_dir():
        raise NetwrightError(f"{csv_path}: a folder; init reads a table (.csv). For a folder of images with a "
                             f"sub-folder per class, a spec is: data: {{name: images, path: {csv_path}, image_size: "
                             "[64, 64]}, model: {name: cnn}, train: {epochs: 10}")
    table = read_csv(csv_path)
    sensitive = list(sensitive or [])
    for col in [target, *sensitive]:
        if col not in table:
            raise NetwrightError(f"{csv_path}: no column '{col}'; columns are {', '.join(table)}")
    if target in sensitive:
        raise NetwrightError(f"--sensitive {target}: that is the target; name the column the audit groups by")
    out = Path(out) if out is not None else csv_path.with_suffix(".yaml")
    if out.exists() and not overwrite:
        raise NetwrightError(f"{out} exists; pass --out FILE for another name or --overwrite to replace it")

    rows = len(table[target])
    columns = infer_columns(table)
    task, classes = _target_facts(table[target])
    if task == "classification" and len(classes) < 2:
        raise NetwrightError(f"{csv_path}: target '{target}' holds one value only; a classifier needs two classes")
    if any(not v.strip() for v in table[target]):
        raise NetwrightError(f"{csv_path}: target '{target}' has empty cells; fill or drop those rows first")

    features, notes = [], []
    for c in columns:
        role = _role(c, target, sensitive)
        notes.append(f"#   {c.name:<{max(len(x.name) for x in columns)}}  {c.kind:<11}  {role}")
        if role.startswith("feature"):
            features.append(c)
    if not features:
        kinds = ", ".join(f"{c.name} ({c.kind})" for c in columns if c.name != target)
        raise NetwrightError(f"{csv_path}: no column besides '{target}' can be a model input (numbers, "
                             f"categories, dates or text); the columns are {kinds}")

    hidden, epochs, why = _model_for(rows)
    # a spec's data path is read from the spec's folder: written so, it works from anywhere
    data: dict[str, Any] = {"name": "csv", "path": os.path.relpath(csv_path.resolve(), out.resolve().parent),
                            "target": target, "task": task,
                            "features": [c.name for c in features],
                            "categorical": [c.name for c in features if c.kind == "categorical"]}
    markers = sorted({m for c in features for m in c.markers})
    if markers:  # the loader reads them as missing anyway; the spec says so
        data["na_values"] = markers
    tails = {c.name: c.transform for c in features if c.transform}
    if tails:
        data["transform"] = tails
    if sensitive:
        data["sensitive"] = sensitive
    minority = _minority(table[target]) if task == "classification" else None
    spec: dict[str, Any] = {
        "name": csv_path.stem,
        "data": data,
        "model": {"name": "mlp", "hidden": hidden, "dropout": 0.1},
        "train": {"epochs": epochs, "batch_size": 64 if rows >= 2_000 else 32,
                  "optimizer": {"name": "adamw", "lr": 0.001, "weight_decay": 0.0001},
                  "early_stopping": {"patience": 10}},
    }
    if minority is not None:  # every row the majority class would look right to accuracy and val_loss
        spec["train"] = {**spec["train"], "class_weight": "balanced", "monitor": "val_f1"}
    if sensitive and task == "classification":
        label = classes[-1]
        spec["fairness"] = {"sensitive": list(sensitive), "positive_label": int(label) if label.isdigit() else label}

    header = [
        f"# yaml-language-server: $schema={_schema_ref(out)}",
        f"# Written by: netwright init {csv_path} --target {target}"
        + "".join(f" --sensitive {s}" for s in sensitive),
        "# A starting point: read it, change what you know better, then",
        f"#   netwright train {out}",
        "# Every key: netwright spec; a loader's or model's keys: netwright datasets csv, netwright models mlp.",
        "#",
        f"# {csv_path.name}: {rows:,} rows, {len(columns)} columns",
        *notes,
        "#",
        f"# target '{target}': {task}"
        + (f", {len(classes)} classes: {', '.join(classes[:12])}{' ...' if len(classes) > 12 else ''}" if classes else ""),
        f"# model: {why}; early stopping keeps the best epoch",
    ]
    if minority is not None:
        name, share = minority
        header.append(f"# imbalanced: '{name}' is {share:.1%} of the rows, so each class's loss is weighed by how rare "
                      "it is (class_weight: balanced) and the kept epoch (and tune) go by macro F1 (val_f1), which "
                      "sees the rare class")
    if markers:
        header.append(f"# na_values: cells without a number in a column of numbers ({', '.join(markers)}) are missing")
    if tails:
        header.append(f"# transform: {', '.join(tails)} {'has' if len(tails) == 1 else 'have'} a long tail of large "
                      "values: log(1 + x) before standardising keeps a few rows from setting the scale (quantile "
                      "is the other choice)")
    if "fairness" in spec:
        header.append(f"# fairness: groups by {', '.join(sensitive)}; positive_label is the favourable outcome "
                      f"(here the last class, '{classes[-1]}': change it if another class is the good one)")
    text = "\n".join(header) + "\n" + yaml.dump(spec, Dumper=_Dumper, sort_keys=False, width=100)
    write_text(out, text)
    left = [c.name for c in columns if c not in features and c.name != target and c.name not in sensitive]
    return out, [c.name for c in features], left


IMBALANCED = 0.2  # a class rarer than this share of the rows: init weighs the classes and selects by macro F1


def _minority(values: list[str]) -> tuple[str, float] | None:
    """The rarest class and its share of the rows when it is under ``IMBALANCED``, else ``None``."""
    from collections import Counter

    counts = Counter(v.strip() for v in values if v.strip())
    name, n = min(counts.items(), key=lambda kv: (kv[1], kv[0]))
    share = n / sum(counts.values())
    return (name, share) if share < IMBALANCED else None


class _Dumper(yaml.SafeDumper):
    """Short lists of plain values on one line (``features: [age, job]``); no anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


_Dumper.add_representer(list, lambda d, v: d.represent_sequence(
    "tag:yaml.org,2002:seq", v, flow_style=all(isinstance(x, (str, int, float)) for x in v)))


def _role(c: Column, target: str, sensitive: list[str]) -> str:
    """What the spec does with a column, and why, as one comment."""
    if c.name == target:
        return "target"
    if c.name in sensitive:
        return "sensitive: audited by group, not a model input"
    if c.kind == "numeric":
        filled = f"; {c.missing} missing cells filled with the train median, flagged in a 0/1 column" if c.missing else ""
        return f"feature ({c.reason}{filled})"
    if c.kind == "categorical":
        empty = f"; {c.missing} missing cells are a category of their own" if c.missing else ""
        return f"feature, one-hot ({c.reason}{empty})"
    if c.kind == "date":
        return "feature, read as dates: year, month, day, weekday, days since 1970 (and hour, with times)"
    if c.kind == "text":
        return (f"left out: {c.reason}; on a small table its words are mostly noise: add it to data.features "
                "to use them (word and word-pair counts hashed into 256 columns)")
    return f"left out: {c.reason}"


def _schema_ref(spec_path: Path) -> str:
    """The schema as the spec's editor will find it: a relative path inside this project's
    checkout, else the installed file's absolute path."""
    project = SCHEMA_FILE.parents[2]
    where = spec_path.resolve().parent
    if where == project or project in where.parents:
        return os.path.relpath(SCHEMA_FILE, where)
    return str(SCHEMA_FILE)
