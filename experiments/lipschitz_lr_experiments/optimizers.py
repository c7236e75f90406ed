"""The optimiser registry: the paper's optimisers with Keras' constants, Keras-style L2 on conv
kernels, and learning-rate-free peers from their own packages when installed (the ``baselines``
extra: D-Adaptation, Prodigy, Schedule-Free, DoG, MoMo and COCOB), each at its package's defaults
but for ``lr`` (the config's; the peer configs ``configs/mnist_<name>.toml`` give the
package's default).

Each entry names the LipschitzLR variant (:data:`lipschitz_lr.variants.VARIANTS`) whose learning
rate assumes it, or none: ``schedule = "lipschitz"`` needs an optimiser that has one.

The trainer drives every optimiser through one :class:`OptimizerAdapter` (``spec.adapt(optimizer)``):
``train()`` before a training epoch and ``eval()`` before evaluation where the optimiser has them
(Schedule-Free, and DoG with its averager: the model then holds the averaged weights), the loss passed to
``step`` where the spec says ``takes_loss`` (MoMo), the history's ``lr`` read by the spec's ``rate``, and what
the progress bar shows. The trainer never asks which optimiser it has.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.optim import SGD, Adam, Optimizer, RMSprop

from lipschitz_lr.models import unwrap_model

from .errors import ConfigError
from .registry import Registry

#: ``build(param_groups, lr, ema_momentum, model)``; see :func:`build_optimizer`.
Builder = Callable[[list[dict[str, Any]], float, bool, nn.Module], Optimizer]
#: ``rate(optimizer, steps)``: the step size a peer chose in the epoch just trained (its last ``steps`` steps).
Rate = Callable[[Optimizer, int], float]


def adapted_lr(optimizer: Optimizer, steps: int) -> float:
    """D-Adaptation's and Prodigy's step size ``d * lr`` after the epoch."""
    group = optimizer.param_groups[0]
    return float(group["d"]) * float(group["lr"])


def dog_eta(optimizer: Optimizer, steps: int) -> float:
    """DoG's step size ``eta`` (one per group; the first) after the epoch."""
    return float(optimizer.param_groups[0]["eta"][0])


def momo_mean_step(optimizer: Optimizer, steps: int) -> float:
    """MoMo's mean step size ``tau`` over the epoch's steps (recorded by :func:`_momo`)."""
    taus = optimizer.step_sizes[-steps:]
    return sum(taus) / len(taus) if taus else math.nan


def no_rate(optimizer: Optimizer, steps: int) -> float:
    """COCOB bets per coordinate: it has no single learning rate (NaN in the history)."""
    return math.nan


@dataclass(frozen=True)
class OptimizerSpec:
    """One optimiser of the registry.

    Attributes:
        build: ``build(param_groups, lr, ema_momentum, model) -> Optimizer``.
        variant: the LipschitzLR variant for it, or None (then only classic schedules apply).
        package: the package it comes from when that is not torch (checked before training).
        takes_loss: ``step(loss=...)`` needs the batch's loss (MoMo's Polyak-type step).
        rate: for a peer that adapts its own step size, that step size (:data:`Rate`), the history's
            ``lr`` for the epoch; None: the first group's ``lr`` at the start of the epoch.
        label: a learning-rate-free peer's name in the head-to-head (``benchmarks/time_to_accuracy.py`` runs every
            entry with one, from its config ``configs/mnist_<name>.toml``); None: not a peer.
    """

    build: Builder
    variant: str | None = None
    package: str | None = None
    takes_loss: bool = False
    rate: Rate | None = None
    label: str | None = None

    def adapt(self, optimizer: Optimizer) -> OptimizerAdapter:
        """The trainer's handle on ``optimizer``, built by this spec."""
        return OptimizerAdapter(optimizer, self)


@dataclass(frozen=True)
class OptimizerAdapter:
    """What the trainer asks of an optimiser, whichever it is: its mode, its rate, what the progress bar shows."""

    optimizer: Optimizer
    spec: OptimizerSpec

    @property
    def takes_loss(self) -> bool:
        """``step(loss=...)`` needs the batch's loss (MoMo)."""
        return self.spec.takes_loss

    @property
    def has_modes(self) -> bool:
        """The optimiser has ``train()``/``eval()``: it evaluates other weights than it trains."""
        return callable(getattr(self.optimizer, "eval", None))

    def mode(self, mode: str) -> bool:
        """``train``/``eval`` mode (:func:`switch`); returns whether the optimiser has modes (it then swaps
        the model's weights for evaluation)."""
        return switch(self.optimizer, mode)

    def rate(self, scheduled: float, steps: int) -> float:
        """The history's ``lr`` for the epoch just trained over ``steps`` steps: the peer's own step size where
        it adapts one (``spec.rate``), else ``scheduled``, the rate the schedule set for the epoch."""
        return scheduled if self.spec.rate is None else self.spec.rate(self.optimizer, steps)

    def shown(self) -> dict[str, str]:
        """The progress bar's ``lr`` now: the first group's (COCOB bets per coordinate: none shown)."""
        rate = self.optimizer.param_groups[0].get("lr")
        return {} if rate is None else {"lr": f"{float(rate):.4g}"}


def _external(package: str, class_name: str, rate: Rate | None = None, **spec: Any) -> OptimizerSpec:
    """``package.class_name(param_groups, lr=lr)``; COCOB, which has no ``lr`` (:func:`no_rate`), without one."""

    def build(groups: list[dict[str, Any]], lr: float, ema_momentum: bool, model: nn.Module) -> Optimizer:
        cls = getattr(importlib.import_module(package), class_name)
        return cls(groups) if rate is no_rate else cls(groups, lr=lr)

    return OptimizerSpec(build, package=package, rate=rate, **spec)


def _averaged_dog(groups: list[dict[str, Any]], lr: float, ema_momentum: bool, model: nn.Module) -> Optimizer:
    from .averaged_dog import AveragedDoG  # imports the dog package

    return AveragedDoG(groups, model, lr=lr)


def _momo(groups: list[dict[str, Any]], lr: float, ema_momentum: bool, model: nn.Module) -> Optimizer:
    """``momo.Momo`` recording each step's size in ``optimizer.step_sizes`` (the last 100,000).

    Momo moves every weight by ``-tau * d`` (``d`` its gradient average, ``state[p]["grad_avg"]``) and
    keeps no ``tau`` (its ``step_size_list`` line is commented out), so ``tau`` is read back from one
    parameter's move: ``<w_before - w_after, d> / <d, d>`` (exact without weight decay, MoMo's default).
    """
    from momo import Momo

    optimizer = Momo(groups, lr=lr)
    watched = max((p for g in optimizer.param_groups for p in g["params"]), key=lambda p: p.numel())
    optimizer.step_sizes = []
    before: list[torch.Tensor] = []

    def pre(opt: Optimizer, args: Any, kwargs: Any) -> None:
        before[:] = [watched.detach().clone()]

    def post(opt: Optimizer, args: Any, kwargs: Any) -> None:
        d = opt.state[watched]["grad_avg"].flatten().double()
        moved = (before[0] - watched.detach()).flatten().double()
        norm = float(d @ d)
        opt.step_sizes.append(float(moved @ d) / norm if norm > 0 else 0.0)
        del opt.step_sizes[:-100_000]

    optimizer.register_step_pre_hook(pre)
    optimizer.register_step_post_hook(post)
    return optimizer


#: The optimiser registry: a config's ``optimizer`` names one (test: ``tests/experiments/test_optimizers.py``).
OPTIMIZERS: Registry[OptimizerSpec] = Registry(
    "optimizer",
    {
        "sgd": OptimizerSpec(lambda groups, lr, ema, model: SGD(groups, lr=lr), variant="sgd"),
        # ema_momentum: the authors' AdaMo form v = 0.9 v + 0.1 g (SGD with dampening 0.9); otherwise
        # Keras' heavy-ball SGD(momentum=0.9).
        "momentum": OptimizerSpec(
            lambda groups, lr, ema, model: SGD(groups, lr=lr, momentum=0.9, dampening=0.9 if ema else 0.0),
            variant="momentum",
        ),
        "rmsprop": OptimizerSpec(
            lambda groups, lr, ema, model: RMSprop(groups, lr=lr, alpha=0.9, eps=1e-7), variant="rmsprop"
        ),
        "adam": OptimizerSpec(
            lambda groups, lr, ema, model: Adam(groups, lr=lr, betas=(0.9, 0.999), eps=1e-7), variant="adam"
        ),
        "dadapt_sgd": _external("dadaptation", "DAdaptSGD", adapted_lr, label="d-adapt sgd"),
        "dadapt_adam": _external("dadaptation", "DAdaptAdam", adapted_lr, label="d-adapt adam"),
        "prodigy": _external("prodigyopt", "Prodigy", adapted_lr, label="prodigy"),
        # variant "sgd": LipschitzLR may set its lr (1/K each epoch; the issue-31 candidate, beyond the paper)
        "schedulefree_sgd": _external("schedulefree", "SGDScheduleFree", variant="sgd", label="schedule-free sgd"),
        "schedulefree_adamw": _external("schedulefree", "AdamWScheduleFree", label="schedule-free adamw"),
        # DoG with the polynomial-decay averager its README calls mandatory (see averaged_dog.py)
        "dog": OptimizerSpec(_averaged_dog, package="dog", rate=dog_eta, label="dog"),
        "momo": OptimizerSpec(_momo, package="momo", rate=momo_mean_step, takes_loss=True, label="momo"),
        "cocob": _external("parameterfree", "COCOB", no_rate, label="cocob"),
    },
)


def missing_package(name: str) -> str | None:
    """The package an optional optimiser needs, if it is not installed."""
    package = OPTIMIZERS.lookup(name).package
    return package if package is not None and importlib.util.find_spec(package) is None else None


def check_installed(name: str) -> None:
    """A :class:`ConfigError` naming the package when optimiser ``name`` needs one that is not installed."""
    package = missing_package(name)
    if package is not None:
        raise ConfigError(
            f"optimizer={name!r} needs the package {package!r}; install it (pip install 'lipschitz-lr[baselines]')"
        )


def switch(optimizer: Optimizer, mode: str) -> bool:
    """``optimizer.train()`` or ``optimizer.eval()`` where the optimiser has them (Schedule-Free; DoG with
    its averager): in eval mode the model holds the weights to evaluate. Returns whether it had them."""
    method = getattr(optimizer, mode, None)
    if not callable(method):
        return False
    method()
    return True


def param_groups(model: nn.Module, kernel_l2: float) -> list[dict]:
    """One group, or two when ``kernel_l2 > 0``: conv kernels get ``weight_decay = 2 * kernel_l2``.

    Keras ``kernel_regularizer=l2(c)`` adds ``c * ||w||^2`` to the loss, whose gradient is
    ``2 c w``; torch's ``weight_decay`` adds ``weight_decay * w`` to the gradient (for SGD, RMSprop
    and Adam alike), so the two are the same update. A model may name its regularised modules with
    ``l2_regularized_modules()`` (DenseNet-40: the first conv and the transition convs); by default
    every ``nn.Conv2d`` (the Keras ResNets). A ``DistributedDataParallel`` or ``torch.compile`` wrapper
    is looked through, so the groups are the same on one device and on several.
    """
    model = unwrap_model(model)
    if kernel_l2 <= 0:
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]
    regularized = getattr(model, "l2_regularized_modules", None)
    modules = regularized() if callable(regularized) else [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    conv_kernels = [m.weight for m in modules]
    conv_ids = {id(p) for p in conv_kernels}
    rest = [p for p in model.parameters() if id(p) not in conv_ids]
    return [{"params": conv_kernels, "weight_decay": 2.0 * kernel_l2}, {"params": rest, "weight_decay": 0.0}]


def build_optimizer(
    name: str, model: nn.Module, lr: float, *, kernel_l2: float = 0.0, ema_momentum: bool = False
) -> Optimizer:
    """The optimiser ``name`` over ``model``'s parameters (:func:`param_groups`).

    ``ema_momentum`` selects the authors' AdaMo form for ``"momentum"`` (LipschitzLR runs).
    """
    spec = OPTIMIZERS.lookup(name)
    check_installed(name)
    return spec.build(param_groups(model, kernel_l2), lr, ema_momentum, unwrap_model(model))
