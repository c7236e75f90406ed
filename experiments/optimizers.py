"""The paper's optimisers, with Keras' constants, and Keras-style L2 on conv kernels.

Learning-rate-free baselines come from their own packages when installed (the ``baselines``
extra): D-Adaptation, Prodigy and Schedule-Free.
"""

from __future__ import annotations

import importlib
import importlib.util

from torch import nn
from torch.optim import SGD, Adam, Optimizer, RMSprop

#: The optimisers LipschitzLR has variants for.
CORE_OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")
#: Optional baselines: name -> (package, class).
EXTERNAL_OPTIMIZERS = {
    "dadapt_sgd": ("dadaptation", "DAdaptSGD"),
    "dadapt_adam": ("dadaptation", "DAdaptAdam"),
    "prodigy": ("prodigyopt", "Prodigy"),
    "schedulefree_sgd": ("schedulefree", "SGDScheduleFree"),
    "schedulefree_adamw": ("schedulefree", "AdamWScheduleFree"),
}
OPTIMIZERS = (*CORE_OPTIMIZERS, *EXTERNAL_OPTIMIZERS)


def missing_package(name: str) -> str | None:
    """The package an optional optimiser needs, if it is not installed."""
    if name not in EXTERNAL_OPTIMIZERS:
        return None
    package = EXTERNAL_OPTIMIZERS[name][0]
    return None if importlib.util.find_spec(package) else package


def is_schedule_free(optimizer: Optimizer) -> bool:
    """Schedule-Free optimisers must be switched with ``.train()``/``.eval()`` around evaluation."""
    return type(optimizer).__module__.startswith("schedulefree")


def param_groups(model: nn.Module, l2: float) -> list[dict]:
    """One group, or two when ``l2 > 0``: conv kernels get ``weight_decay = 2 * l2``.

    Keras ``kernel_regularizer=l2(c)`` adds ``c * ||w||^2`` to the loss, whose gradient is
    ``2 c w``; torch's ``weight_decay`` adds ``weight_decay * w`` to the gradient (for SGD, RMSprop
    and Adam alike), so the two are the same update. A model may name its regularised modules with
    ``l2_regularized_modules()`` (DenseNet-40: the first conv and the transition convs); by default
    every ``nn.Conv2d`` (the Keras ResNets).
    """
    if l2 <= 0:
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]
    regularized = getattr(model, "l2_regularized_modules", None)
    modules = regularized() if callable(regularized) else [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    conv_kernels = [m.weight for m in modules]
    conv_ids = {id(p) for p in conv_kernels}
    rest = [p for p in model.parameters() if id(p) not in conv_ids]
    return [{"params": conv_kernels, "weight_decay": 2.0 * l2}, {"params": rest, "weight_decay": 0.0}]


def build_optimizer(
    name: str, model: nn.Module, lr: float, *, l2: float = 0.0, ema_momentum: bool = False
) -> Optimizer:
    """``ema_momentum`` selects the authors' AdaMo form ``v = 0.9 v + 0.1 g``
    (``SGD(momentum=0.9, dampening=0.9)``); otherwise Keras' heavy-ball ``SGD(momentum=0.9)``."""
    groups = param_groups(model, l2)
    if name == "sgd":
        return SGD(groups, lr=lr)
    if name == "momentum":
        return SGD(groups, lr=lr, momentum=0.9, dampening=0.9 if ema_momentum else 0.0)
    if name == "rmsprop":
        return RMSprop(groups, lr=lr, alpha=0.9, eps=1e-7)
    if name == "adam":
        return Adam(groups, lr=lr, betas=(0.9, 0.999), eps=1e-7)
    if name in EXTERNAL_OPTIMIZERS:
        package, class_name = EXTERNAL_OPTIMIZERS[name]
        if missing_package(name):
            raise ValueError(f"optimizer {name!r} needs the package {package!r} (pip install {package})")
        return getattr(importlib.import_module(package), class_name)(groups, lr=lr)
    raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
