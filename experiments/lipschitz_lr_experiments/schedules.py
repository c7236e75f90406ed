"""The classic schedules a user compares LipschitzLR against, all from ``torch.optim.lr_scheduler``.

Each entry says whether it steps per epoch or per optimizer step, which arguments it takes, and
how to build it. ``lipschitz`` is built by the training loop (it needs the model and a loader).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from torch.optim import Optimizer
from torch.optim import lr_scheduler as sched

from .errors import ConfigError
from .registry import Registry


@dataclass(frozen=True)
class ScheduleSpec:
    """One schedule of the registry.

    Attributes:
        interval: ``"epoch"`` or ``"step"`` (optimizer steps), when the trainer steps it.
        defaults: its ``schedule_args`` and their defaults.
        build: ``build(optimizer, args, steps_per_epoch, epochs, lr)``; None for those the trainer builds.
        fitted_to_run: its shape depends on the run's length (``epochs``), so a resume must keep ``epochs``.
    """

    interval: Literal["epoch", "step"]
    defaults: dict[str, Any] = field(default_factory=dict)
    build: Callable[[Optimizer, dict[str, Any], int, int, float], Any] | None = None
    fitted_to_run: bool = False

    def check_args(self, args: dict[str, Any]) -> None:
        unknown = sorted(set(args) - set(self.defaults))
        if unknown:
            allowed = ", ".join(self.defaults) or "none"
            raise ConfigError(f"unknown schedule_args key(s) {', '.join(unknown)}; this schedule takes: {allowed}")

    def resolve(self, args: dict[str, Any]) -> dict[str, Any]:
        self.check_args(args)
        return {**self.defaults, **args}


def _has_momentum(optimizer: Optimizer) -> bool:
    return "momentum" in optimizer.defaults and optimizer.defaults["momentum"] > 0


#: The schedule registry: a config's ``schedule`` names one (test: ``tests/experiments/test_schedules.py``).
#: ``lipschitz`` (AdaptiveLR) and ``constant`` are built by the trainer; the rest here from torch.
SCHEDULES: Registry[ScheduleSpec] = Registry(
    "schedule",
    {
        # LipschitzLR: lr = 1/K every epoch (AdaptiveLR)
        "lipschitz": ScheduleSpec("epoch"),
        # fixed learning rate (optionally with Keras decay)
        "constant": ScheduleSpec("epoch"),
        # step decay: multiply by gamma every step_size epochs
        "step": ScheduleSpec(
            "epoch",
            {"step_size": 30, "gamma": 0.1},
            lambda opt, a, spe, ep, lr: sched.StepLR(opt, step_size=a["step_size"], gamma=a["gamma"]),
        ),
        # piecewise constant: multiply by gamma at each milestone epoch
        "piecewise": ScheduleSpec(
            "epoch",
            {"milestones": [150, 225], "gamma": 0.1},
            lambda opt, a, spe, ep, lr: sched.MultiStepLR(opt, milestones=a["milestones"], gamma=a["gamma"]),
        ),
        # exponential decay by decay_rate every decay_steps optimizer steps
        "exponential": ScheduleSpec(
            "step",
            {"decay_steps": 1000, "decay_rate": 0.9, "staircase": True},
            lambda opt, a, spe, ep, lr: (
                sched.StepLR(opt, step_size=a["decay_steps"], gamma=a["decay_rate"])
                if a["staircase"]
                else sched.ExponentialLR(opt, gamma=a["decay_rate"] ** (1.0 / a["decay_steps"]))
            ),
        ),
        # polynomial decay to 0 over the run
        "polynomial": ScheduleSpec(
            "epoch",
            {"power": 1.0},
            lambda opt, a, spe, ep, lr: sched.PolynomialLR(opt, total_iters=ep, power=a["power"]),
            fitted_to_run=True,
        ),
        # Keras' standard decay lr / (1 + decay * iterations)
        "inverse_time": ScheduleSpec(
            "step",
            {"decay": 1e-3},
            lambda opt, a, spe, ep, lr: sched.LambdaLR(opt, _InverseTime(a["decay"])),
        ),
        # cosine decay to alpha * lr over the run
        "cosine": ScheduleSpec(
            "epoch",
            {"alpha": 0.0},
            lambda opt, a, spe, ep, lr: sched.CosineAnnealingLR(opt, T_max=ep, eta_min=a["alpha"] * lr),
            fitted_to_run=True,
        ),
        # cosine decay with warm restarts (torch has no m_mul)
        "cosine_restarts": ScheduleSpec(
            "epoch",
            {"t_0": 10, "t_mul": 2, "alpha": 0.0},
            lambda opt, a, spe, ep, lr: sched.CosineAnnealingWarmRestarts(
                opt, T_0=a["t_0"], T_mult=a["t_mul"], eta_min=a["alpha"] * lr
            ),
        ),
        # cyclic learning rate (triangular, triangular2, exp_range)
        "cyclic": ScheduleSpec(
            "step",
            {"max_lr_factor": 10.0, "step_size_up": 2000, "mode": "triangular", "gamma": 1.0},
            lambda opt, a, spe, ep, lr: sched.CyclicLR(
                opt,
                base_lr=lr,
                max_lr=lr * a["max_lr_factor"],
                step_size_up=a["step_size_up"],
                mode=a["mode"],
                gamma=a["gamma"],
                cycle_momentum=_has_momentum(opt),
            ),
        ),
        # one-cycle policy peaking at lr
        "onecycle": ScheduleSpec(
            "step",
            {"pct_start": 0.3},
            lambda opt, a, spe, ep, lr: sched.OneCycleLR(
                opt, max_lr=lr, total_steps=spe * ep, pct_start=a["pct_start"], cycle_momentum=_has_momentum(opt)
            ),
            fitted_to_run=True,
        ),
        # linear warm-up to lr, then constant
        "warmup": ScheduleSpec(
            "epoch",
            {"start_factor": 0.1, "warmup_epochs": 5},
            lambda opt, a, spe, ep, lr: sched.LinearLR(
                opt, start_factor=a["start_factor"], total_iters=a["warmup_epochs"]
            ),
        ),
        # reduce when the training loss stagnates
        "plateau": ScheduleSpec(
            "epoch",
            {"factor": 0.1, "patience": 10},
            lambda opt, a, spe, ep, lr: sched.ReduceLROnPlateau(opt, factor=a["factor"], patience=a["patience"]),
        ),
    },
)


class _InverseTime:
    """``1 / (1 + decay * t)`` as a picklable callable (LambdaLR saves callable objects' state)."""

    def __init__(self, decay: float) -> None:
        self.decay = decay

    def __call__(self, step: int) -> float:
        return 1.0 / (1.0 + self.decay * step)


def keras_decay_schedule(optimizer: Optimizer, decay: float) -> sched.LambdaLR:
    """The hidden per-iteration decay of the authors' Keras optimizers, for fixed-LR baselines."""
    return sched.LambdaLR(optimizer, _InverseTime(decay))


def build_schedule(
    name: str, optimizer: Optimizer, args: dict[str, Any], steps_per_epoch: int, epochs: int, lr: float
) -> tuple[Any, str]:
    """Build a classic schedule; returns ``(scheduler, interval)``. Not for ``lipschitz``/``constant``."""
    spec = SCHEDULES.lookup(name)
    if spec.build is None:
        raise ValueError(f"schedule {name!r} is built by the training loop, not by build_schedule")
    return spec.build(optimizer, spec.resolve(args), steps_per_epoch, epochs, lr), spec.interval


def run_length_args(name: str, epochs: int, steps_per_epoch: int) -> dict[str, Any]:
    """``schedule_args`` that fit a classic schedule to a run of ``epochs`` epochs (the defaults are
    for the paper's long CIFAR runs): step decay every third of the run, piecewise at 1/2 and 3/4,
    restarts every quarter, warm-up over a fifth, exponential decay once per epoch, a cyclic half-period
    of two epochs. Schedules not listed already span the run (cosine, polynomial, one-cycle) or take
    no length (inverse_time, plateau): ``{}``.
    """
    return {
        "step": {"step_size": max(1, epochs // 3)},
        "piecewise": {"milestones": [epochs // 2, 3 * epochs // 4]},
        "cosine_restarts": {"t_0": max(1, epochs // 4)},
        "warmup": {"warmup_epochs": max(1, epochs // 5)},
        "exponential": {"decay_steps": steps_per_epoch},
        "cyclic": {"step_size_up": 2 * steps_per_epoch},
    }.get(name, {})


def schedule_trajectory(
    name: str, args: dict[str, Any], epochs: int, steps_per_epoch: int, lr: float, momentum: float = 0.0
) -> list[float]:
    """The learning rate at the start of each epoch of a classic schedule, stepped as in training.

    ``ReduceLROnPlateau`` is fed a constant loss (it plateaus from the start).
    """
    import torch

    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=lr, momentum=momentum)
    scheduler, interval = build_schedule(name, optimizer, args, steps_per_epoch, epochs, lr)
    values = []
    for _ in range(epochs):
        values.append(optimizer.param_groups[0]["lr"])
        for _ in range(steps_per_epoch if interval == "step" else 1):
            optimizer.step()
            if isinstance(scheduler, sched.ReduceLROnPlateau):
                scheduler.step(1.0)
            else:
                scheduler.step()
    return values
