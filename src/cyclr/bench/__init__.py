"""``cyclr bench``: tasks, training runs and reports for measuring schedules on real data."""

from .tasks import TASKS, EpochBatches, Task, TaskData, batches, get_task, register

__all__ = ["TASKS", "EpochBatches", "Task", "TaskData", "batches", "get_task", "register"]
from . import keras_task  # noqa: F401  (registers mnist-keras; imports keras lazily)
