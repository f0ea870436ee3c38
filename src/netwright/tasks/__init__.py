"""The kinds of run: what a step, an evaluation and a prediction mean for each (see ``base.Task``).

Every kind module is imported here, so the registry knows them all."""

from .adversarial import AdversarialTask, Judge
from .base import VERBS, Kind, Task
from .classification import ClassificationTask
from .contrastive import ContrastiveTask
from .control import ControlTask
from .detection import DetectionTask
from .language import LanguageModelTask, Seq2SeqTask
from .node_classification import NodeClassificationTask
from .recommendation import RecommendationTask
from .registry import TASKS, register_task, run_task, task_class, task_for
from .regression import RegressionTask
from .segmentation import SegmentationTask
from .supervised import SupervisedTask, collect_outputs
from .text_classification import TextClassificationTask

__all__ = ["AdversarialTask", "ClassificationTask", "ContrastiveTask", "ControlTask", "DetectionTask", "Judge", "Kind",
           "LanguageModelTask", "NodeClassificationTask", "RecommendationTask", "RegressionTask", "Seq2SeqTask",
           "SegmentationTask", "SupervisedTask", "TASKS", "Task", "TextClassificationTask", "VERBS", "collect_outputs", "register_task",
           "run_task", "task_class", "task_for"]
