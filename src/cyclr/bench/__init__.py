"""``cyclr bench``: tasks, strategies, run drivers, runners and reports for measuring schedules
on real data.

- a **task** is the problem only (data, model, loss, metric, target, budget);
- a **strategy** turns a task's budget into a **run driver** (:mod:`.driver`), the one object a
  training loop talks to about hyperparameters;
- a **runner** (supervised torch, Keras, RL episodes) trains a task under a driver, with one
  **recorder** for every loop;
- the **harness** plans runs as typed records, an **engine** runs them and a **store** keeps
  them; the **report** answers "which schedule should I use?".
"""

from .driver import Driver, FeedbackDriver, ScheduleDriver, TorchSchedulerDriver
from .strategies import STRATEGIES, Context, Plan, Strategy, strategy
from .tasks import TASKS, BaseTask, EpochBatches, Task, TaskData, batches, get_task, register

__all__ = [
    "STRATEGIES",
    "TASKS",
    "BaseTask",
    "Context",
    "Driver",
    "EpochBatches",
    "FeedbackDriver",
    "Plan",
    "ScheduleDriver",
    "Strategy",
    "Task",
    "TaskData",
    "TorchSchedulerDriver",
    "batches",
    "get_task",
    "register",
    "strategy",
]

# the task plugins register themselves (each imports its framework or simulator lazily)
from . import keras_task, rl, sequences, text, transfer  # noqa: F401


def __dir__() -> list[str]:
    """The public names only: `dir()` lists what `__all__` promises, not the helpers imported here."""
    return sorted(__all__)
