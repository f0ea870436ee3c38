"""What a loaded dataset is: :class:`DataInfo` (JSON-able facts) and the tensors per split."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import torch

Task = str  # what the targets are: classification, regression, ... (the kinds of run: netwright.tasks)
Modality = Literal["image", "sequence", "tabular", "tokens"]


@dataclass
class DataInfo:
    """Facts about a dataset that a model, a task and ``predict`` need.

    ``input_shape`` is the shape of one model input: ``(C, H, W)`` for images,
    ``(C, L)`` for sequences, ``(F,)`` for tabular rows, ``(L,)`` for token ids.
    ``preprocess`` holds everything needed to turn raw input into that, including
    normalisation statistics computed on the train split only.
    """

    name: str
    task: Task
    modality: Modality
    input_shape: tuple[int, ...]
    num_classes: int | None = None
    class_names: list[str] | None = None
    feature_names: list[str] | None = None
    target_name: str | None = None
    sensitive: list[str] = field(default_factory=list)
    vocab: list[str] | None = None
    preprocess: dict[str, Any] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)
    stratified: bool = False
    fingerprint: str = ""
    source: str = ""
    #: the kind of run this data makes with a model of the registry (``netwright.tasks``):
    #: ``task`` unless the data brings its own evaluation (text, graph or ratings data)
    kind: str = ""

    def __post_init__(self) -> None:
        self.kind = self.kind or self.task

    @property
    def num_outputs(self) -> int:
        """Width of the model's output layer (the vocabulary, for language models)."""
        if self.task in ("language_model", "translation"):
            return len(self.vocab)
        return self.num_classes if self.picks_class else 1

    def unscale(self, y: Any) -> Any:
        """Standardised regression values (a tensor, an array or a float) -> the target's units."""
        t = self.preprocess.get("target", {"mean": 0.0, "std": 1.0})
        return y * t["std"] + t["mean"]

    def raw(self, x: Any) -> np.ndarray:
        """Normalised model inputs (a tensor or an array) back in the data's own units (float64):
        the one place the input normalisation is undone."""
        pre = self.preprocess
        a = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, np.float64)
        if "mean" not in pre:
            return a
        mean, std = np.asarray(pre["mean"]), np.asarray(pre["std"])
        if pre["kind"] != "table":  # per channel
            shape = (1, -1) + (1,) * (a.ndim - 2)
            mean, std = mean.reshape(shape), std.reshape(shape)
        return a * std + mean

    @property
    def picks_class(self) -> bool:
        """Whether the model's outputs are logits over ``class_names``: a classifier, or a policy
        over discrete actions."""
        return self.task in ("classification", "control")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DataInfo":
        d = dict(d)
        d["input_shape"] = tuple(d["input_shape"])
        if "kind" not in d:  # a run written before data named its kind: its preprocessing tells
            own = [k for k in ("tokenizer", "graph", "ratings") if k in d.get("preprocess", {})]
            if own and d["task"] in ("classification", "regression"):
                d["kind"] = {"tokenizer": "text_classification", "graph": "node_classification",
                             "ratings": "recommendation"}[own[0]]
        return cls(**d)


@dataclass
class Split:
    """Model-ready tensors of one split, plus the raw sensitive attributes."""

    x: torch.Tensor
    y: torch.Tensor
    groups: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Dataset:
    """A loaded, split and normalised dataset."""

    info: DataInfo
    train: Split
    val: Split | None
    test: Split | None

    def split(self, name: str) -> Split:
        """The split called ``name`` (``train``, ``val`` or ``test``)."""
        s = getattr(self, name, None)
        if s is None:
            from ..errors import NetwrightError

            raise NetwrightError(f"dataset '{self.info.name}' has no {name} split; set data.{name} above 0")
        return s

    def close(self) -> None:
        """Stop the decoding processes of streamed splits (in-memory ones have none)."""
        for s in (self.train, self.val, self.test):
            if hasattr(s, "close"):
                s.close()


@dataclass
class RawData:
    """What a loader returns: whole arrays before splitting and normalisation.

    ``x`` is already numeric (``float32``; ``int64`` token ids); ``preprocess`` says
    how raw input of this kind becomes ``x`` so ``predict`` can repeat it.
    ``test``, when given, is a fixed test split ``(x, y, groups)`` published with the data.
    """

    x: np.ndarray
    y: np.ndarray
    task: Task
    modality: Modality
    preprocess: dict[str, Any]
    class_names: list[str] | None = None
    feature_names: list[str] | None = None
    target_name: str | None = None
    groups: dict[str, np.ndarray] = field(default_factory=dict)
    test: tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]] | None = None
    vocab: list[str] | None = None
    source: str = ""
    kind: str = ""  # DataInfo.kind


@dataclass
class StreamRequest:
    """What a loader returns for data to stream; ``load_dataset`` builds the data set with the
    spec's split options. ``target``: the column of a table (Parquet) to predict; None for
    labelled examples (image files, an array), which ``options`` lists."""

    path: Any
    target: str | None
    options: dict[str, Any]
    fit_rows: int
    sample_rows: int
    workers: int
