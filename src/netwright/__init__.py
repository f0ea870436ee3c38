"""netwright: neural networks end to end on PyTorch.

Declare a network in a spec, train it, evaluate it, predict with it::

    import netwright
    run = netwright.train("examples/digits_cnn.yaml", overrides=["train.epochs=5"])
    run.evaluate()["metrics"]["accuracy"]
    run.predict("digit.png")
"""

from .compress import compress
from .data import DATASETS, Dataset, DataInfo, load_dataset, register_dataset
from .errors import CheckpointError, DataError, NetwrightError, SpecError, TrainingError
from .deploy import export
from .evaluate import evaluate
from .explain import explain
from .fairness.audit import audit
from .generative import sample
from .fairness.mitigate import mitigate
from .fairness.monitor import monitor
from .models import MODELS, build_model, count_parameters, register_model
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
    "register_dataset",
    "register_model",
    "report",
    "sample",
    "train",
]
