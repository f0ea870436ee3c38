"""Tasks: what one training step means for a kind of problem."""

from .adversarial import AdversarialTask, Judge
from .base import Task
from .contrastive import ContrastiveTask
from .control import ControlTask
from .detection import DetectionTask
from .language import LanguageModelTask, Seq2SeqTask
from .supervised import SupervisedTask

__all__ = ["AdversarialTask", "ContrastiveTask", "ControlTask", "DetectionTask", "Judge", "LanguageModelTask", "Seq2SeqTask", "SupervisedTask", "Task"]
