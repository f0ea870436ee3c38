"""Training: the loop, optimizers and schedules, checkpoints, the ``train`` stage."""

from .stage import train
from .trainer import Trainer

__all__ = ["Trainer", "train"]
