"""Training machinery: the loop, optimizers and schedules, checkpoints, callbacks, tracking,
distributed processes, continual learning and transfer (the ``train`` stage composes them)."""

from .trainer import Trainer

__all__ = ["Trainer"]
