"""``cyclr bench``: tasks, training runs and reports for measuring schedules on real data."""

from .tasks import TASKS, EpochBatches, Task, TaskData, batches, get_task, register

__all__ = ["TASKS", "EpochBatches", "Task", "TaskData", "batches", "get_task", "register"]

# the task plugins register themselves (each imports its framework or simulator lazily)
from . import keras_task, rl, sequences, text  # noqa: F401
