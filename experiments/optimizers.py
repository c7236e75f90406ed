"""The optimiser registry: the paper's optimisers with Keras' constants, Keras-style L2 on conv
kernels, and learning-rate-free baselines from their own packages when installed (the
``baselines`` extra: D-Adaptation, Prodigy and Schedule-Free).

Each entry names the LipschitzLR variant (:data:`lipschitz_lr.variants.VARIANTS`) whose learning
rate assumes it, or none: ``schedule = "lipschitz"`` needs an optimiser that has one.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn
from torch.optim import SGD, Adam, Optimizer, RMSprop

from lipschitz_lr.statistics import unwrap_model

from .errors import ConfigError
from .registry import Registry

#: ``build(param_groups, lr, ema_momentum)``; see :func:`build_optimizer`.
Builder = Callable[[list[dict[str, Any]], float, bool], Optimizer]


@dataclass(frozen=True)
class OptimizerSpec:
    """One optimiser of the registry.

    Attributes:
        build: ``build(param_groups, lr, ema_momentum) -> Optimizer``.
        variant: the LipschitzLR variant for it, or None (then only classic schedules apply).
        package: the package it comes from when that is not torch (checked before training).
    """

    build: Builder
    variant: str | None = None
    package: str | None = None


def _external(package: str, class_name: str) -> OptimizerSpec:
    def build(groups: list[dict[str, Any]], lr: float, ema_momentum: bool) -> Optimizer:
        return getattr(importlib.import_module(package), class_name)(groups, lr=lr)

    return OptimizerSpec(build, package=package)


#: The optimiser registry: a config's ``optimizer`` names one (test: ``tests/experiments/test_optimizers.py``).
OPTIMIZERS: Registry[OptimizerSpec] = Registry(
    "optimizer",
    {
        "sgd": OptimizerSpec(lambda groups, lr, ema: SGD(groups, lr=lr), variant="sgd"),
        # ema_momentum: the authors' AdaMo form v = 0.9 v + 0.1 g (SGD with dampening 0.9); otherwise
        # Keras' heavy-ball SGD(momentum=0.9).
        "momentum": OptimizerSpec(
            lambda groups, lr, ema: SGD(groups, lr=lr, momentum=0.9, dampening=0.9 if ema else 0.0),
            variant="momentum",
        ),
        "rmsprop": OptimizerSpec(
            lambda groups, lr, ema: RMSprop(groups, lr=lr, alpha=0.9, eps=1e-7), variant="rmsprop"
        ),
        "adam": OptimizerSpec(
            lambda groups, lr, ema: Adam(groups, lr=lr, betas=(0.9, 0.999), eps=1e-7), variant="adam"
        ),
        "dadapt_sgd": _external("dadaptation", "DAdaptSGD"),
        "dadapt_adam": _external("dadaptation", "DAdaptAdam"),
        "prodigy": _external("prodigyopt", "Prodigy"),
        "schedulefree_sgd": _external("schedulefree", "SGDScheduleFree"),
        "schedulefree_adamw": _external("schedulefree", "AdamWScheduleFree"),
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


def is_schedule_free(optimizer: Optimizer) -> bool:
    """Schedule-Free optimisers must be switched with ``.train()``/``.eval()`` around evaluation."""
    return type(optimizer).__module__.startswith("schedulefree")


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
    return spec.build(param_groups(model, kernel_l2), lr, ema_momentum)
