"""The schedule registry: LipschitzLR, a fixed rate (with the authors' Keras decay or without), and the
classic schedules a user compares it against, all from ``torch.optim.lr_scheduler``.

Each entry says whether it steps per epoch or per optimizer step, which arguments (``schedule_args``)
it takes and their defaults, and how to build it; :func:`build_schedule` returns every one as a
:class:`~lipschitz_lr_experiments.stepper.Stepper`, the one interface the trainer steps.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import nn
from torch.optim import Optimizer
from torch.optim import lr_scheduler as sched

from lipschitz_lr import AdaptiveLR
from lipschitz_lr.options import Options, check_values
from lipschitz_lr.per_step import InverseTimeDecay

from .errors import ConfigError
from .registry import Registry
from .stepper import LipschitzStepper, Stepper, TorchStepper


@dataclass(frozen=True)
class ScheduleContext:
    """What a schedule may be built from: the run's optimizer and length, its initial rate, and for
    LipschitzLR the model, the statistics loader (the clean training set, in order), the loss's bound,
    the number of classes and the optimiser's variant."""

    optimizer: Optimizer
    steps_per_epoch: int
    epochs: int
    lr: float
    model: nn.Module | None = None
    statistics_loader: Iterable[Any] | None = None
    loss_bound: str = "cross_entropy"
    num_classes: int | None = None
    variant: str | None = None
    batch_size: int | None = None


@dataclass(frozen=True)
class ScheduleSpec:
    """One schedule of the registry.

    Attributes:
        interval: ``"epoch"`` or ``"step"`` (optimizer steps), when the trainer steps it.
        defaults: its ``schedule_args`` and their defaults.
        build: a torch scheduler ``build(optimizer, args, steps_per_epoch, epochs, lr)``, stepped at ``interval``.
        fitted_to_run: its shape depends on the run's length (``epochs``), so a resume must keep ``epochs``.
        make: instead of ``build``, ``make(context, args) -> Stepper`` (LipschitzLR, the fixed rate).
        check: further checks of the resolved ``args`` (a :class:`ConfigError` naming the value).
        ema_momentum: ``optimizer = "momentum"`` takes the authors' EMA form (AdaMo) under this schedule.
        fp16_note: what ``--amp fp16`` warns about under this schedule ("" for nothing).
    """

    interval: Literal["epoch", "step"]
    defaults: dict[str, Any] = field(default_factory=dict)
    build: Callable[[Optimizer, dict[str, Any], int, int, float], Any] | None = None
    fitted_to_run: bool = False
    make: Callable[[ScheduleContext, dict[str, Any]], Stepper] | None = None
    check: Callable[[dict[str, Any]], None] | None = None
    ema_momentum: bool = False
    fp16_note: str = ""

    def check_args(self, args: dict[str, Any]) -> None:
        unknown = sorted(set(args) - set(self.defaults))
        if unknown:
            allowed = ", ".join(self.defaults) or "none"
            raise ConfigError(f"unknown schedule_args key(s) {', '.join(unknown)}; this schedule takes: {allowed}")
        if self.check is not None:
            self.check({**self.defaults, **args})

    def stepper(self, context: ScheduleContext, args: dict[str, Any]) -> Stepper:
        """This schedule, built for a run and wrapped in the trainer's interface."""
        args = self.resolve(args)
        if self.make is not None:
            return self.make(context, args)
        assert self.build is not None
        scheduler = self.build(context.optimizer, args, context.steps_per_epoch, context.epochs, context.lr)
        return TorchStepper(context.optimizer, scheduler, self.interval)

    def resolve(self, args: dict[str, Any]) -> dict[str, Any]:
        self.check_args(args)
        return {**self.defaults, **args}


def _has_momentum(optimizer: Optimizer) -> bool:
    return "momentum" in optimizer.defaults and optimizer.defaults["momentum"] > 0


#: What the harness gives AdaptiveLR itself, from the config and the run (the loss and its classes, the optimiser's
#: variant, the batch size): never a ``schedule_args`` key.
WIRED: tuple[str, ...] = ("loss", "num_classes", "variant", "batch_size")
#: The paper's settings where they differ from the library's defaults: the harness's LipschitzLR is the paper's unless
#: a config says otherwise (the library's safeguards and batch statistics are beyond the paper).
PAPER_OVERRIDES: dict[str, Any] = {"rule": "paper", "max_growth": None, "backoff": None, "batchnorm": "running"}
#: LipschitzLR's ``schedule_args``: every option of :class:`lipschitz_lr.Options` but the wired ones (the paper's
#: lambda is ``weight_decay``, its Keras decay ``keras_decay``), with their library defaults and
#: :data:`PAPER_OVERRIDES`, and ``update_every`` (an update every N optimizer steps instead of
#: every epoch, hook statistics; the harness's, since it steps the scheduler).
LIPSCHITZ_ARGS: dict[str, Any] = {
    **{f.name: f.default for f in dataclasses.fields(Options) if f.name not in WIRED},
    **PAPER_OVERRIDES,
    "update_every": None,
}


def _check_lipschitz(a: dict[str, Any]) -> None:
    """Each option by its own check (:func:`lipschitz_lr.options.check_values`); what depends on the run (the
    variant's ``bias_correction``, ...) when AdaptiveLR is built. Then ``update_every``, the harness's."""
    try:
        check_values({key: value for key, value in a.items() if key != "update_every"})
    except (TypeError, ValueError) as error:
        raise ConfigError(f"schedule_args: {error}") from None
    if a["update_every"] is not None and not (isinstance(a["update_every"], int) and a["update_every"] >= 1):
        raise ConfigError(
            f"update_every must be an integer >= 1 (leave it out for every epoch), got {a['update_every']!r}"
        )
    if a["update_every"] is not None and a["statistics"] != "hook":
        raise ConfigError(
            "update_every updates LipschitzLR from the statistics of the steps just taken: it needs "
            f"statistics='hook', got statistics={a['statistics']!r}, update_every={a['update_every']!r}"
        )


_FP16_NOTE = (
    "--amp fp16 with LipschitzLR: prefer --amp bf16. fp16's range ends at 65504, so at the first epochs' rates "
    "(about 3 on MNIST) the GradScaler can skip many steps as inf; bf16 has fp32's range and needs no scaler. A "
    "skipped step does not advance the Keras decay or a per-step schedule."
)


def _lipschitz(context: ScheduleContext, a: dict[str, Any]) -> Stepper:
    """AdaptiveLR over the statistics loader, with this run's loss bound and variant."""
    adaptive = AdaptiveLR(
        context.optimizer,
        context.model,
        context.statistics_loader,
        loss=context.loss_bound,
        num_classes=context.num_classes,
        variant=context.variant,
        batch_size=context.batch_size,
        **{key: value for key, value in a.items() if key != "update_every"},
    )
    return LipschitzStepper(context.optimizer, adaptive, a["update_every"])


def _constant(context: ScheduleContext, a: dict[str, Any]) -> Stepper:
    """A fixed rate; with ``decay``, the authors' Keras optimizers' hidden ``lr / (1 + decay t)`` (the paper's
    baselines, their lambda), ``t`` the optimizer steps taken."""
    if a["decay"] > 0:
        decay = sched.LambdaLR(context.optimizer, InverseTimeDecay(a["decay"]))
        return TorchStepper(context.optimizer, decay, "step")
    return Stepper(context.optimizer)


def _check_constant(a: dict[str, Any]) -> None:
    decay = a["decay"]
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not math.isfinite(decay) or decay < 0:
        raise ConfigError(f"decay must be a finite number >= 0 (0: a fixed rate), got decay={decay!r}")


#: The schedule registry: a config's ``schedule`` names one (test: ``tests/experiments/test_schedules.py``).
SCHEDULES: Registry[ScheduleSpec] = Registry(
    "schedule",
    {
        # LipschitzLR: lr = 1/K every epoch (AdaptiveLR)
        "lipschitz": ScheduleSpec(
            "epoch", LIPSCHITZ_ARGS, make=_lipschitz, check=_check_lipschitz, ema_momentum=True, fp16_note=_FP16_NOTE
        ),
        # fixed learning rate (optionally with the authors' hidden Keras decay, per optimizer step)
        "constant": ScheduleSpec("epoch", {"decay": 0.0}, make=_constant, check=_check_constant),
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
            lambda opt, a, spe, ep, lr: sched.LambdaLR(opt, InverseTimeDecay(a["decay"])),
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


def build_schedule(name: str, context: ScheduleContext, args: dict[str, Any]) -> Stepper:
    """Schedule ``name`` with ``args`` for a run, as the trainer steps it (:class:`Stepper`)."""
    return SCHEDULES.lookup(name).stepper(context, args)


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
    stepper = build_schedule(name, ScheduleContext(optimizer, steps_per_epoch, epochs, lr), args)
    values, updates = [], 0
    for epoch in range(1, epochs + 1):
        values.append(optimizer.param_groups[0]["lr"])
        for _ in range(steps_per_epoch):
            optimizer.step()
            updates += 1
            stepper.step_update(updates)
        stepper.step(epoch, 1.0)
    return values
