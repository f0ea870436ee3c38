"""Tasks: what one training step means for a kind of problem."""

from .base import Task
from .supervised import SupervisedTask

__all__ = ["SupervisedTask", "Task"]
