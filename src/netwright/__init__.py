"""netwright: neural networks end to end on PyTorch.

Declare a network in a spec, train it, evaluate it, predict with it::

    import netwright
    run = netwright.train("examples/digits_cnn.yaml", overrides=["train.epochs=5"])
    netwright.evaluate(run)["metrics"]["accuracy"]
    netwright.predict(run, "digit.png")
"""

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

# Public names and the module that defines each. They are imported on first use (PEP 562), so
# that ``import netwright`` and every CLI command load only what they need: the compression,
# ONNX, fairness and serving stacks cost seconds to import.
_EXPORTS = {
    # the verbs (netwright/stages/: one module each)
    "audit": ".stages.audit", "calibrate": ".stages.calibrate", "compare": ".stages.compare",
    "compress": ".stages.compress", "evaluate": ".stages.evaluate", "explain": ".stages.explain",
    "export": ".stages.export", "generate": ".stages.generate", "mitigate": ".stages.mitigate",
    "monitor": ".stages.monitor", "predict": ".stages.predict", "predict_file": ".stages.predict",
    "report": ".stages.report", "sample": ".stages.sample", "serve": ".stages.serve", "train": ".stages.train",
    "train_folds": ".stages.folds", "tune": ".stages.tune",
    # the nouns and the registries
    "DATASETS": ".data", "Dataset": ".data", "DataInfo": ".data", "load_dataset": ".data",
    "register_dataset": ".data",
    "CheckpointError": ".errors", "DataError": ".errors", "NetwrightError": ".errors",
    "SpecError": ".errors", "TrainingError": ".errors",
    "MODELS": ".models", "build_model": ".models", "count_parameters": ".models", "register_model": ".models",
    "TASKS": ".tasks", "register_task": ".tasks",
    "Run": ".run", "list_runs": ".run",
    "Spec": ".spec", "load_spec": ".spec",
    "Callback": ".training.callbacks", "register_callback": ".training.callbacks",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'netwright' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


class _Package(types.ModuleType):
    """The package module: a public function keeps its name when its namesake submodule loads.

    ``netwright.compress`` is the function even after the package ``netwright/compress/`` is
    imported (the import system binds a loaded submodule to its parent's attribute); the package
    stays reachable through ``sys.modules`` and ``from netwright.compress import ...``.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


if TYPE_CHECKING:
    from .data import DATASETS, Dataset, DataInfo, load_dataset, register_dataset
    from .errors import CheckpointError, DataError, NetwrightError, SpecError, TrainingError
    from .models import MODELS, build_model, count_parameters, register_model
    from .run import Run, list_runs
    from .spec import Spec, load_spec
    from .stages.audit import audit
    from .stages.calibrate import calibrate
    from .stages.compare import compare
    from .stages.compress import compress
    from .stages.evaluate import evaluate
    from .stages.explain import explain
    from .stages.export import export
    from .stages.folds import train_folds
    from .stages.generate import generate
    from .stages.mitigate import mitigate
    from .stages.monitor import monitor
    from .stages.predict import predict, predict_file
    from .stages.report import report
    from .stages.sample import sample
    from .stages.serve import serve
    from .stages.train import train
    from .stages.tune import tune
    from .tasks import TASKS, register_task
    from .training.callbacks import Callback, register_callback

__version__ = "0.1.0"

__all__ = sorted(_EXPORTS)
