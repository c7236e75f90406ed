"""The one interface the trainer steps every schedule through, LipschitzLR and the Keras decay included.

timm's two-call contract: :meth:`Stepper.step_update` after every optimizer step taken (``num_updates``
counts the run's steps; see :mod:`lipschitz_lr_experiments.loop` for where in the step) and
:meth:`Stepper.step` after each epoch's evaluation (with the epoch's training loss, for
``ReduceLROnPlateau``). :meth:`Stepper.epoch_start` says what the history records for the epoch about to
train (its learning rate and any column of :data:`~lipschitz_lr_experiments.history.HISTORY_FIELDS` the
schedule fills: LipschitzLR's statistics), :meth:`Stepper.shown` what the progress bar adds, and
:meth:`Stepper.checkpoint`/:meth:`Stepper.restore` carry the state through a checkpoint's ``adaptive``
and ``schedule`` entries. The schedule registry (:mod:`lipschitz_lr_experiments.schedules`) builds one
for every schedule; the trainer never asks which.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from torch.optim import Optimizer
from torch.optim import lr_scheduler as sched

from lipschitz_lr import AdaptiveLR

__all__ = ["LipschitzStepper", "Stepper", "TorchStepper", "group_lr"]


def group_lr(optimizer: Optimizer) -> float:
    """The first group's learning rate (NaN for an optimiser without one: COCOB)."""
    return float(optimizer.param_groups[0].get("lr", math.nan))


class Stepper:
    """A fixed learning rate: every call a no-op. The base of the others."""

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer

    def step_update(self, num_updates: int) -> None:
        """After optimizer step number ``num_updates`` of the run (1-based), one the GradScaler did not skip."""

    def step(self, epoch: int, metric: float) -> None:
        """After epoch ``epoch`` (1-based) is trained and evaluated; ``metric`` is its training loss."""

    def epoch_start(self) -> dict[str, float | None]:
        """The history's ``lr`` for the epoch about to train, and any other column the schedule fills."""
        return {"lr": group_lr(self.optimizer)}

    def shown(self) -> dict[str, str]:
        """What the progress bar shows of the schedule besides the rate (nothing here)."""
        return {}

    def checkpoint(self) -> dict[str, Any]:
        """The checkpoint's ``adaptive`` and ``schedule`` entries."""
        return {"adaptive": None, "schedule": None}

    def restore(self, entries: dict[str, Any], restoring: Callable[[str], AbstractContextManager[Any]]) -> None:
        """Load what :meth:`checkpoint` saved (``restoring(entry)`` names the entry in an error)."""


class TorchStepper(Stepper):
    """A ``torch.optim.lr_scheduler`` scheduler stepped per epoch or per optimizer step (``interval``)."""

    def __init__(self, optimizer: Optimizer, scheduler: Any, interval: str) -> None:
        super().__init__(optimizer)
        self.scheduler, self.interval = scheduler, interval

    def step_update(self, num_updates: int) -> None:
        if self.interval == "step":
            self.scheduler.step()

    def step(self, epoch: int, metric: float) -> None:
        if self.interval == "epoch":
            plateau = isinstance(self.scheduler, sched.ReduceLROnPlateau)
            self.scheduler.step(metric) if plateau else self.scheduler.step()

    def checkpoint(self) -> dict[str, Any]:
        return {"adaptive": None, "schedule": self.scheduler.state_dict()}

    def restore(self, entries: dict[str, Any], restoring: Callable[[str], AbstractContextManager[Any]]) -> None:
        if entries["schedule"] is not None:
            with restoring("schedule"):
                self.scheduler.load_state_dict(entries["schedule"])


class LipschitzStepper(Stepper):
    """LipschitzLR: ``adaptive.step()`` once per epoch, or every ``update_every`` optimizer steps of the run.

    ``adaptive`` is the :class:`~lipschitz_lr.AdaptiveLR` (its history, its options): ``trainer.schedule.adaptive``.
    """

    def __init__(self, optimizer: Optimizer, adaptive: AdaptiveLR, update_every: int | None) -> None:
        super().__init__(optimizer)
        self.adaptive, self.update_every = adaptive, update_every

    def step_update(self, num_updates: int) -> None:
        if self.update_every and num_updates % self.update_every == 0:
            self.adaptive.step()

    def step(self, epoch: int, metric: float) -> None:
        if not self.update_every:
            self.adaptive.step()

    def epoch_start(self) -> dict[str, float | None]:
        record = self.adaptive.history[-1]
        return {"lr": record.lr, "k_z": record.k_z, "max_weight_norm": record.max_weight_norm, "k": record.k}

    def shown(self) -> dict[str, str]:
        return {"K": f"{self.adaptive.history[-1].k:.4g}"}

    def checkpoint(self) -> dict[str, Any]:
        return {"adaptive": self.adaptive.state_dict(), "schedule": None}

    def restore(self, entries: dict[str, Any], restoring: Callable[[str], AbstractContextManager[Any]]) -> None:
        with restoring("adaptive"):
            self.adaptive.load_state_dict(entries["adaptive"])
