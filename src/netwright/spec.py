"""The spec: one validated description of a run.

Typed defaults -> YAML -> ``--set a.b=c`` overrides -> validation of everything at
once (every problem with its path and what is allowed) -> the resolved spec, with
every default filled in, saved into the run.
"""

from __future__ import annotations

import copy
import os
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import NetwrightError, SpecError
from .registry import format_errors


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class _OpenSection(BaseModel):
    """A section whose extra keys are the parameters of a registered function."""

    model_config = ConfigDict(extra="allow")

    @property
    def params(self) -> dict[str, Any]:
        """The registered function's parameters (everything but the common keys)."""
        return dict(self.model_extra or {})


class DataSpec(_OpenSection):
    """``data:`` - which dataset, how to split it; other keys go to its loader."""

    name: str
    val: float = Field(0.15, ge=0.0, lt=1.0, description="fraction held out for validation")
    test: float = Field(0.15, ge=0.0, lt=1.0, description="fraction held out for testing")
    split_seed: int = Field(0, description="seed of the train/val/test split (independent of `seed`)")
    normalize: bool = Field(True, description="scale inputs by statistics of the train split (saved with the run)")
    folds: int | None = Field(None, ge=2, description="cross-validation: the data outside the test split in this "
                                 "many stratified folds (netwright train --folds K sets it)")
    fold: int | None = Field(None, ge=1, description="with folds: which fold (1..folds) is the validation split; "
                                "data.val is then not used")

    @model_validator(mode="after")
    def _fractions(self) -> "DataSpec":
        if self.val + self.test >= 0.9:
            raise ValueError(f"val + test = {self.val + self.test:g} leaves too little to train on; keep it below 0.9")
        if (self.folds is None) != (self.fold is None):
            raise ValueError("data.folds and data.fold go together (netwright train --folds K sets both)")
        if self.folds is not None and self.fold > self.folds:
            raise ValueError(f"data.fold {self.fold} is beyond data.folds {self.folds}; choose 1..{self.folds}")
        return self


class ModelSpec(_OpenSection):
    """``model:`` - a registered model name; other keys are its hyper-parameters."""

    name: str


class OptimizerSpec(_Section):
    name: Literal["sgd", "adam", "adamw", "rmsprop"] = "adam"
    lr: float = Field(1e-3, gt=0, description="learning rate")
    momentum: float = Field(0.0, ge=0, lt=1, description="sgd and rmsprop")
    nesterov: bool = Field(False, description="sgd with momentum > 0")
    weight_decay: float = Field(0.0, ge=0, description="decoupled for adamw; an L2 term for the others")
    betas: tuple[float, float] = Field((0.9, 0.999), description="adam and adamw")
    eps: float = Field(1e-8, gt=0)
    alpha: float = Field(0.99, gt=0, lt=1, description="rmsprop smoothing")
    fused: bool | None = Field(None, description="fused update kernels (sgd, adam, adamw); default: on")

    @model_validator(mode="after")
    def _consistent(self) -> "OptimizerSpec":
        if self.nesterov and (self.name != "sgd" or self.momentum <= 0):
            raise ValueError("nesterov needs name: sgd and momentum > 0")
        if self.fused and self.name == "rmsprop":
            raise ValueError("fused kernels exist for sgd, adam and adamw, not rmsprop")
        if self.momentum and self.name not in ("sgd", "rmsprop"):
            raise ValueError(f"momentum applies to sgd and rmsprop, not {self.name}; for adam use betas")
        return self


class ScheduleSpec(_Section):
    name: Literal["constant", "step", "cosine", "onecycle"] = "constant"
    warmup_epochs: float = Field(0.0, ge=0, description="linear warm-up (not with onecycle)")
    step_size: int = Field(10, ge=1, description="step: epochs between decays")
    gamma: float = Field(0.1, gt=0, le=1, description="step: decay factor")
    min_lr: float = Field(0.0, ge=0, description="cosine: final learning rate")
    pct_start: float = Field(0.25, gt=0, lt=1, description="onecycle: fraction of steps rising")

    @model_validator(mode="after")
    def _consistent(self) -> "ScheduleSpec":
        if self.name == "onecycle" and self.warmup_epochs:
            raise ValueError("onecycle has its own warm-up (pct_start); remove warmup_epochs")
        return self


class AugmentSpec(_Section):
    """Data augmentation; each option applies to the modalities named in its description."""

    shift: float = Field(0.0, ge=0, description="image, sequence: random shift, pixels or steps")
    rotate: float = Field(0.0, ge=0, le=180, description="image: random rotation, degrees")
    flip: bool = Field(False, description="image: random horizontal flip")
    noise: float = Field(0.0, ge=0, description="image, sequence, tabular: gaussian noise std (normalised units)")
    mask: float = Field(0.0, ge=0, lt=1, description="sequence: fraction of steps zeroed")
    mixup: float = Field(0.0, ge=0, description="tabular: mixup alpha")

    def active(self) -> dict[str, Any]:
        """The options that are switched on."""
        return {k: v for k, v in self.model_dump().items() if v}


AUGMENT_MODALITIES = {
    "shift": ("image", "sequence"),
    "rotate": ("image",),
    "flip": ("image",),
    "noise": ("image", "sequence", "tabular"),
    "mask": ("sequence",),
    "mixup": ("tabular",),
}


def check_augment(augment: AugmentSpec, modality: str, dataset: str, tta: list[str] = ()) -> list[str]:
    """Problems with augmentation options (and test-time ones, ``train.tta``) that do not fit the
    data's modality."""
    return [
        f"train.augment.{k}: applies to {' and '.join(AUGMENT_MODALITIES[k])} data, "
        f"but '{dataset}' is {modality}; remove it"
        for k in augment.active()
        if modality not in AUGMENT_MODALITIES[k]
    ] + [f"train.tta: {k} applies to {' and '.join(AUGMENT_MODALITIES[k])} data, but '{dataset}' is {modality}; "
         "remove it" for k in tta if modality not in AUGMENT_MODALITIES[k]]


class EarlyStoppingSpec(_Section):
    patience: int | None = Field(None, ge=1, description="epochs without improvement before stopping; null = off")
    min_delta: float = Field(0.0, ge=0, description="smallest change of the monitored metric that counts")


class AdversarialSpec(_Section):
    """``train.adversarial:`` - how a GAN's two networks are trained against each other."""

    # two time-scale updates with spectral normalisation (Heusel et al. 2017, Miyato et al. 2018):
    # on digits, Adam at 2e-4/2e-4 with betas (0.5, 0.999) collapsed to one mode within 40 epochs;
    # this reached a Frechet distance of 22 with all ten classes
    generator: OptimizerSpec = OptimizerSpec(name="adam", lr=1e-4, betas=(0.0, 0.9))
    discriminator: OptimizerSpec = OptimizerSpec(name="adam", lr=4e-4, betas=(0.0, 0.9))
    d_steps: int = Field(1, ge=1, description="discriminator steps per generator step")
    label_smoothing: float = Field(0.1, ge=0, lt=0.5, description="one-sided: real targets are 1 - this")
    instance_noise: float = Field(0.0, ge=0, description="std of noise on the discriminator's inputs, decaying to 0")
    judge_epochs: int = Field(10, ge=1, description="epochs of the classifier that judges the samples")
    quality_samples: int = Field(500, ge=20, description="samples behind each epoch's Frechet distance")


SUPERVISED_ONLY = ("optimizer", "schedule", "l1", "l2", "label_smoothing", "augment", "grad_clip")


class StopAtSpec(_Section):
    """``train.stop_at:`` - stop at the first epoch whose validation metric reaches a value."""

    metric: str = Field(description="a validation metric: accuracy (or val_accuracy), f1, loss, ...")
    value: float = Field(description="the value to reach: at least it for a score, at most it for a loss or error")


class TrainSpec(_Section):
    epochs: int = Field(20, ge=1, description="passes over the training split")
    batch_size: int = Field(64, ge=1, description="examples per optimizer step")
    optimizer: OptimizerSpec = OptimizerSpec()
    schedule: ScheduleSpec = ScheduleSpec()
    l1: float = Field(0.0, ge=0, description="L1 penalty on weights, added to the loss")
    l2: float = Field(0.0, ge=0, description="L2 penalty on weights, added to the loss")
    grad_clip: float | None = Field(None, gt=0, description="clip the gradient norm to this value")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="classification: share of each target spread over all classes")
    class_weight: Literal["none", "balanced"] = Field(
        "none", description="classification: balanced weighs each class's loss by n / (classes x its count in the "
                            "train split), as scikit-learn's class_weight='balanced'")
    sampler: Literal["shuffle", "balanced"] = Field(
        "shuffle", description="shuffle: every training example once an epoch; balanced (classification): an epoch "
                               "of draws with replacement, every class equally likely")
    augment: AugmentSpec = AugmentSpec()
    monitor: str = Field("auto", description="metric that picks the best epoch (val_loss, val_accuracy...); auto: "
                         "val_loss; a tie on another metric goes to the epoch with the lower val_loss")
    early_stopping: EarlyStoppingSpec = EarlyStoppingSpec()
    keep: Literal["best", "last"] = Field("best", description="weights saved as model.safetensors")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: cuda when a GPU is present")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="bf16 autocast; auto: bf16 on CUDA, fp32 on CPU (faster there for small models)")
    channels_last: Union[bool, Literal["auto"]] = Field(
        "auto", description="channels-last memory format for 2-D convolutions; auto: on")
    compile: bool = Field(False, description="torch.compile the model (pays off on long runs)")
    init_from: str | None = Field(None, description="a run directory whose weights start this model where names "
                                                    "and shapes match (transfer, fine-tuning, probing)")
    freeze: list[str] = Field([], description="parameter name prefixes kept fixed (e.g. features: a linear probe)")
    threads: Union[int, Literal["auto"]] = Field("auto", description="CPU threads; auto picks by model size")
    eval_batch_size: int = Field(1024, ge=1, description="examples per forward pass when scoring")
    adversarial: AdversarialSpec = AdversarialSpec()
    dist_timeout: float = Field(60.0, gt=0, description="seconds before a dead or missing rank ends a distributed job")
    checkpoint_interval: float = Field(
        30.0, ge=0, description="seconds between resumable checkpoints, taken after the step that passes it, "
        "inside an epoch too (0: at every epoch end only); always one at the end. A job of several processes "
        "checkpoints at epoch ends only (each rank's loss sum so far is its own share's)")
    callbacks: list[dict[str, Any]] = Field(default_factory=list, description="code run at points of the loop, "
                                            "by name: [{name: stop_at, metric: val_accuracy, value: 0.95}]")
    stop_at: StopAtSpec | None = Field(None, description="stop at the first epoch whose validation metric reaches "
                                       "a value: {metric: accuracy, value: 0.92}")
    budget_s: float | None = Field(None, gt=0, description="seconds of training: the schedule is as long as the "
                                   "epochs that fit, from a measured step time, and training stops before an epoch "
                                   "that would end past it (epochs stays the most)")
    tta: list[Literal["flip", "shift"]] = Field(
        default_factory=list, description="test-time augmentation: evaluate, predict, serve and export average "
        "the outputs for the input and its views (flip: mirrored left to right, images; shift: one step or pixel "
        "either way along the last axis, images and sequences)")
    ema: float | None = Field(None, gt=0, lt=1, description="decay of an exponential moving average of the weights, "
                              "updated after every step (e.g. 0.99): validation, the kept weights and checkpoints "
                              "use the average")
    calibrate: bool = Field(False, description="classification: fit a temperature on the validation split after "
                                               "training (calibration.json; netwright calibrate RUN does it later)")
    log: list[Literal["tensorboard", "mlflow"]] = Field(
        default_factory=list, description="tracking: TensorBoard event files in the run, an MLflow run "
        "(extras netwright[tensorboard], netwright[mlflow])")
    mlflow_uri: str | None = Field(None, description="MLflow tracking URI; default: sqlite:///RUNS/mlflow.db "
                                   "beside the runs, or $MLFLOW_TRACKING_URI")

    @model_validator(mode="after")
    def _threads(self) -> "TrainSpec":
        if isinstance(self.threads, int) and self.threads < 1:
            raise ValueError("threads must be >= 1 or auto")
        return self


GAPS = ("demographic_parity", "equalized_odds", "equal_opportunity")


class PenaltySpec(_Section):
    """In-processing: a differentiable gap added to the loss."""

    constraint: Literal["demographic_parity", "equalized_odds"] = "demographic_parity"
    weight: float = Field(1.0, ge=0, description="lambda: how much the gap costs against the task loss")


class FairnessSpec(_Section):
    """``fairness:`` - which groups to audit, which outcome counts as positive, how to mitigate."""

    sensitive: list[str] = Field([], description="sensitive columns; default: all the data's sensitive columns")
    positive_label: Union[str, int, bool, None] = Field(
        None, description="class name of the favourable outcome (1 for a 0/1 column); default: the last class")
    mitigation: Literal["none", "reweighing", "penalty", "thresholds"] = "none"
    penalty: PenaltySpec = PenaltySpec()
    thresholds: Literal["demographic_parity", "equalized_odds", "true_positive_rate_parity"] = Field(
        "demographic_parity", description="the constraint of the post-processing thresholds")
    min_group_size: int = Field(30, ge=1, description="smaller groups get a warning: too few to judge")
    bootstrap: int = Field(1000, ge=0, description="resamples behind the confidence intervals")
    drift_alpha: float = Field(0.05, gt=0, lt=1, description="family-wise false-alarm rate of drift tests")

    @field_validator("positive_label", mode="before")
    @classmethod
    def _label_text(cls, value: Any) -> Any:
        """Class names are text; YAML reads ``1``, ``1.0`` and ``yes`` as numbers and booleans."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value) if isinstance(value, (int, float)) else value


class ContinualSpec(_Section):
    """``continual:`` - learn the classes in a sequence of tasks, one after the other (lifelong
    learning), each for ``train.epochs``, and measure what earlier tasks lose."""

    tasks: list[list[str]] = Field([], description="class names per task, in order; default: consecutive pairs")
    method: Literal["naive", "ewc", "replay"] = Field(
        "naive", description="naive fine-tuning, elastic weight consolidation, or replay of stored examples")
    ewc_lambda: float = Field(1000.0, ge=0, description="EWC: weight of the Fisher-weighted pull to earlier weights")
    fisher_samples: int = Field(1000, ge=1, description="EWC: training examples the Fisher information is estimated on")
    replay_per_task: int = Field(200, ge=1, description="replay: examples of each finished task kept and mixed in")


class CardSpec(_Section):
    """``card:`` - what the model card says about purpose and use (free text)."""

    title: str | None = None
    description: str | None = None
    intended_use: str | None = None
    users: str | None = None
    out_of_scope: str | None = None
    limitations: str | None = None
    ethical_considerations: str | None = None
    owners: str | None = None
    license: str | None = None


class TuneParamSpec(_Section):
    """One searched spec value: a range (float, int, log) or a list of choices (categorical)."""

    type: Literal["float", "int", "log", "categorical"] = Field(
        description="float or int: uniform in [low, high]; log: a float on a log scale; categorical: one of choices")
    low: float | None = None
    high: float | None = None
    step: float | None = Field(None, gt=0, description="float, int: spacing of the values (the grid sampler "
                               "needs it for floats)")
    log: bool = Field(False, description="int: on a log scale (type: log is the float on a log scale)")
    choices: list[Any] | None = Field(None, description="categorical: the values, e.g. [[64], [128, 128]]")

    @model_validator(mode="after")
    def _range(self) -> "TuneParamSpec":
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("categorical needs choices: [a, b, ...]")
            if self.low is not None or self.high is not None or self.step is not None:
                raise ValueError("categorical takes choices, not low/high/step")
            return self
        if self.choices is not None:
            raise ValueError(f"{self.type} takes low and high, not choices (for a list use type: categorical)")
        if self.low is None or self.high is None:
            raise ValueError(f"{self.type} needs low and high, e.g. {{type: {self.type}, low: 1, high: 10}}")
        if self.low >= self.high:
            raise ValueError(f"low {self.low:g} must be below high {self.high:g}")
        if (self.type == "log" or self.log) and self.low <= 0:
            raise ValueError(f"a log scale needs low > 0 (got {self.low:g})")
        if self.type == "int" and not (float(self.low).is_integer() and float(self.high).is_integer()):
            raise ValueError("int needs whole numbers for low and high")
        if self.log and self.type != "int":
            raise ValueError("log: true is for type: int; a float on a log scale is type: log")
        if self.step is not None and (self.type == "log" or self.log):
            raise ValueError("step and a log scale do not go together")
        return self


class TuneSpec(_Section):
    """``tune:`` - the search ``netwright tune`` runs: which spec values, scored by what, how long."""

    params: dict[str, TuneParamSpec] = Field(
        min_length=1, description="spec path -> range, e.g. train.optimizer.lr: {type: log, low: 1.0e-4, high: 0.01}")
    metric: str = Field("auto", description="a trial's score: this metrics.jsonl column at the epoch the run "
                        "keeps; auto: train.monitor (val_loss when that is auto)")
    direction: Literal["auto", "maximize", "minimize"] = Field(
        "auto", description="auto: minimize losses and errors, maximize the rest")
    trials: int = Field(20, ge=1, description="trials to finish (complete or pruned)")
    timeout: float | None = Field(None, gt=0, description="seconds after which no new trial starts")
    sampler: Literal["tpe", "random", "grid", "cmaes"] = Field("tpe", description="how the next trial's values are "
                                                               "chosen (Optuna's samplers)")
    pruner: Literal["median", "hyperband", "none"] = Field(
        "median", description="stops a trial whose metric lags the others' at the same epoch")
    folds: int | Literal["auto", "off"] = Field(
        "auto", description="each trial as K-fold cross-validation, scored by the mean of the K folds' validation "
        "metric (each at the epoch its run keeps), for a table whose validation split is a few dozen rows; auto: 5 "
        "folds when the validation split holds fewer than 100 rows, else off; trials on folds are not pruned")
    warmup_epochs: int = Field(5, ge=0, description="median pruner: epochs a trial trains before it can be stopped")
    startup_trials: int = Field(5, ge=0, description="median pruner: trials that finish before any is stopped")

    @field_validator("folds")
    @classmethod
    def _two_folds(cls, folds: int | str) -> int | str:
        if isinstance(folds, int) and folds < 2:
            raise ValueError(f"{folds}: cross-validation needs at least 2 folds (off: one validation split)")
        return folds


class Spec(_Section):
    """A whole run: data, model and training, plus a name and a seed."""

    name: str | None = Field(None, description="run name (folder under runs/)")
    seed: int = Field(0, description="seed of initialisation, shuffling, dropout and augmentation")
    plugins: list[str] = Field(default_factory=list, description="your own code, imported first: .py files "
                               "(relative to the spec) or module names that register models, data sets, callbacks")
    data: DataSpec
    model: ModelSpec
    train: TrainSpec = TrainSpec()
    fairness: FairnessSpec = FairnessSpec()
    continual: ContinualSpec | None = None
    card: CardSpec = CardSpec()
    tune: TuneSpec | None = Field(None, description="netwright tune: the search over this spec's values "
                                  "(netwright train ignores it)")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON/YAML-safe), every default filled in."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


SpecSource = Union[Spec, dict, str, os.PathLike]


def load_spec(source: SpecSource, overrides: list[str] | None = None) -> Spec:
    """Build a validated :class:`Spec` from a YAML path, a dict or a Spec.

    Args:
        source: path to a YAML file, a nested dict, or an existing Spec.
        overrides: ``a.b=c`` strings; values are parsed as YAML (``[16, 32]``, ``true``).

    Raises:
        SpecError: every problem found, each with its path and what is allowed.
    """
    raw = raw_spec(source)
    for item in overrides or []:
        apply_override(raw, item)
    base = Path(source).parent if isinstance(source, (str, os.PathLike)) else Path.cwd()
    if raw.get("plugins"):  # imported before validation: they register the names the spec uses
        from .plugins import load_plugins

        if not isinstance(raw["plugins"], list):
            raise SpecError([f"plugins: give a list of .py files or module names, not {type(raw['plugins']).__name__}"])
        raw["plugins"] = [r["plugin"] for r in load_plugins(raw["plugins"], base)]
    if isinstance(source, (str, os.PathLike)):
        resolve_data_paths(raw, base)
    return validate(raw)


def resolve_data_paths(raw: dict[str, Any], base: Path) -> None:
    """A spec file's relative data paths (every path key of its loader: ``data.path`` and the
    like) as seen from the spec's folder, as its ``plugins:`` are; a path found only from the
    current folder (a spec written before this rule) is kept as it is."""
    data = raw.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return
    from .data.registry import DATASETS

    if data["name"] not in DATASETS:
        return  # validation names it
    fields = DATASETS.get(data["name"]).params.model_fields
    for key, f in fields.items():
        value = data.get(key)
        if not isinstance(value, str) or not value or Path(value).is_absolute():
            continue
        if Path not in (f.annotation, *typing.get_args(f.annotation)):
            continue
        beside = base / value
        if beside.exists() or not Path(value).exists():
            data[key] = str(beside.resolve()) if beside.exists() else value


def raw_spec(source: SpecSource) -> dict[str, Any]:
    """A spec as a fresh nested dict: a Spec's resolved values, a copy of a dict, or a YAML file."""
    if isinstance(source, Spec):
        return source.to_dict()
    if isinstance(source, dict):
        return copy.deepcopy(source)
    return read_yaml(source)


def set_path(raw: dict[str, Any], key: str, value: Any, where: str) -> None:
    """Set the dotted ``key`` (``train.optimizer.lr``) of a nested dict, making sections on the way."""
    parts = key.split(".")
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise NetwrightError(f"{where}: '{'.'.join(parts[: i + 1])}' is a value, not a section")
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists and empty mappings are values."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


MAX_NODES = 100_000  # values in a spec once aliases are expanded; a spec has hundreds


class _SpecLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a document whose aliases expand to more than
    ``MAX_NODES`` values: a "billion laughs" file of nested aliases is a few hundred bytes that
    expand to gigabytes once anything walks them."""

    def compose_document(self) -> Any:
        node = super().compose_document()
        sizes: dict[int, int] = {}

        def size(n: Any) -> int:  # expanded count, each shared (aliased) node counted once per use
            if id(n) not in sizes:
                sizes[id(n)] = 1  # a recursive alias stops here
                kids = [c for pair in n.value for c in pair] if isinstance(n, yaml.MappingNode) else \
                    n.value if isinstance(n, yaml.SequenceNode) else []
                sizes[id(n)] = 1 + sum(size(c) for c in kids)
            return sizes[id(n)]

        if node is not None and size(node) > MAX_NODES:
            raise yaml.YAMLError(f"its aliases (*name) expand to {size(node):,} values, more than a spec "
                                 f"needs ({MAX_NODES:,}); write the values out")
        return node


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` with the alias limit."""
    return yaml.load(text, Loader=_SpecLoader)  # noqa: S506 (a SafeLoader)


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML mapping; malformed files fail with the line and column."""
    path = Path(path)
    if path.is_dir():
        raise NetwrightError(f"{path}: a folder; give a spec's YAML file (a run folder is continued with --resume)")
    if not path.is_file():
        raise NetwrightError(f"{path}: no such spec file")
    try:
        if path.stat().st_size > 1 << 20:
            raise NetwrightError(f"{path}: {path.stat().st_size:,} bytes; a spec is a short YAML file (at most 1 MiB)")
        raw = safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise NetwrightError(f"{path}: malformed YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise NetwrightError(f"{path}: not a text file; a spec is YAML") from None
    if not isinstance(raw, dict):
        raise NetwrightError(f"{path}: a spec is a YAML mapping with sections data, model, train")
    return raw


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one ``a.b=c`` override to a nested dict, in place."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise NetwrightError(f"--set {item!r}: expected KEY=VALUE, e.g. train.optimizer.lr=0.05")
    try:
        value = safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    set_path(raw, key.strip(), value, f"--set {key}")


def _family_options(raw: dict[str, Any], spec: Spec, adversarial: bool) -> list[str]:
    """Options that belong to supervised training only, or to GANs only (set to anything but
    their defaults: a resolved spec carries every default and stays valid)."""
    defaults = TrainSpec()
    if adversarial:
        problems = [f"train.{k}: applies to supervised models; a GAN is tuned under train.adversarial "
                    "(generator, discriminator, label_smoothing, instance_noise)"
                    for k in SUPERVISED_ONLY if getattr(spec.train, k) != getattr(defaults, k)]
        if spec.fairness.mitigation != "none":
            problems.append("fairness.mitigation: applies to classifiers, not to a GAN")
        return problems
    if spec.train.adversarial != defaults.adversarial:
        return ["train.adversarial: applies to GANs (model.name: gan); remove it"]
    return []


def validate(raw: dict[str, Any]) -> Spec:
    """Validate a raw spec dict, collecting every problem before raising."""
    from .data import DATASETS
    from .models import MODELS

    problems: list[str] = []
    try:
        spec = Spec.model_validate(raw)
    except ValidationError as e:
        problems += format_errors(e, model=Spec)
        spec = None

    resolved: dict[str, dict[str, Any]] = {}
    for section, registry in (("data", DATASETS), ("model", MODELS)):
        body = raw.get(section)
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            continue
        fixed = (DataSpec if section == "data" else ModelSpec).model_fields
        params = {k: v for k, v in body.items() if k not in fixed}
        try:
            resolved[section], errs = registry.validate(body["name"], params, section)
        except NetwrightError as e:
            errs = [str(e)]
        problems += errs

    if spec is not None and "model" in resolved:
        problems += _family_options(raw, spec, MODELS.get(spec.model.name).meta.get("task") == "adversarial")
    if spec is not None and "data" in resolved:
        modality = DATASETS.get(spec.data.name).meta.get("modality")
        if modality:
            problems += check_augment(spec.train.augment, modality, spec.data.name, spec.train.tta)

    if problems:
        raise SpecError(problems)
    assert spec is not None
    data = {k: v for k, v in spec.data.model_dump().items() if k in DataSpec.model_fields}
    model = {"name": spec.model.name}
    return spec.model_copy(
        update={
            "data": DataSpec.model_validate({**data, **resolved["data"]}),
            "model": ModelSpec.model_validate({**model, **resolved["model"]}),
        }
    )
