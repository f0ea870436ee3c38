"""netwright: neural networks end to end on PyTorch.

Declare a network in a spec, train it, evaluate it, predict with it::

    import netwright
    run = netwright.train("examples/digits_cnn.yaml", overrides=["train.epochs=5"])
    run.evaluate()["metrics"]["accuracy"]
    run.predict("digit.png")
"""

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

# Public names and the module that defines each. They are imported on first use (PEP 562), so
# that ``import netwright`` and every CLI command load only what they need: the compression,
# ONNX, fairness and serving stacks cost seconds to import.
_EXPORTS = {
    "calibrate": ".calibrate",
    "compress": ".compress",
    "DATASETS": ".data", "Dataset": ".data", "DataInfo": ".data", "load_dataset": ".data",
    "register_dataset": ".data",
    "CheckpointError": ".errors", "DataError": ".errors", "NetwrightError": ".errors",
    "SpecError": ".errors", "TrainingError": ".errors",
    "export": ".deploy",
    "evaluate": ".evaluate",
    "explain": ".explain",
    "audit": ".fairness.audit",
    "sample": ".generative",
    "mitigate": ".fairness.mitigate",
    "monitor": ".fairness.monitor",
    "MODELS": ".models", "build_model": ".models", "count_parameters": ".models", "register_model": ".models",
    "predict": ".predict", "predict_file": ".bulk",
    "report": ".report",
    "Run": ".run", "list_runs": ".run",
    "Spec": ".spec", "load_spec": ".spec",
    "train": ".training", "train_folds": ".training.folds",
    "tune": ".tune",
    "Callback": ".training.callbacks", "register_callback": ".training.callbacks",
    "compare": ".report.compare",
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

    ``netwright.evaluate`` is the function even after ``netwright/evaluate.py`` is imported (the
    import system binds a loaded submodule to its parent's attribute); the submodule stays
    reachable through ``sys.modules`` and ``from netwright.evaluate import ...``.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


if TYPE_CHECKING:
    from .calibrate import calibrate
    from .compress import compress
    from .data import DATASETS, Dataset, DataInfo, load_dataset, register_dataset
    from .deploy import export
    from .errors import CheckpointError, DataError, NetwrightError, SpecError, TrainingError
    from .evaluate import evaluate
    from .explain import explain
    from .fairness.audit import audit
    from .fairness.mitigate import mitigate
    from .fairness.monitor import monitor
    from .generative import sample
    from .models import MODELS, build_model, count_parameters, register_model
    from .bulk import predict_file
    from .predict import predict
    from .report import report
    from .run import Run, list_runs
    from .spec import Spec, load_spec
    from .training import train

__version__ = "0.1.0"

__all__ = [
    "DATASETS",
    "MODELS",
    "CheckpointError",
    "DataError",
    "DataInfo",
    "Dataset",
    "NetwrightError",
    "Run",
    "Spec",
    "SpecError",
    "TrainingError",
    "audit",
    "build_model",
    "calibrate",
    "compress",
    "count_parameters",
    "evaluate",
    "explain",
    "export",
    "list_runs",
    "load_dataset",
    "load_spec",
    "mitigate",
    "monitor",
    "predict",
    "predict_file",
    "register_dataset",
    "register_model",
    "report",
    "sample",
    "train",
]
