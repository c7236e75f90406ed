"""Keras defaults, mirrored for reference mode: initialisers and BatchNorm settings."""

from __future__ import annotations

import math

import torch
from torch import nn

# Keras BatchNormalization(momentum=0.99, epsilon=1e-3); PyTorch's momentum is 1 - Keras's.
KERAS_BN = {"momentum": 0.01, "eps": 1e-3}
TORCH_BN = {"momentum": 0.1, "eps": 1e-5}

# Keras' truncated normal cuts at two standard deviations; this rescales the std to match.
_TRUNCATED_STD = 0.87962566103423978


def batch_norm_kwargs(keras_faithful: bool, keras_eps: float = KERAS_BN["eps"]) -> dict[str, float]:
    """BatchNorm arguments: Keras' defaults (or a model's own Keras ``epsilon``), else torch's."""
    return {**KERAS_BN, "eps": keras_eps} if keras_faithful else dict(TORCH_BN)


@torch.no_grad()
def he_normal_(tensor: torch.Tensor) -> torch.Tensor:
    """Keras ``he_normal``: truncated normal, std ``sqrt(2 / fan_in)``."""
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(tensor)
    std = math.sqrt(2.0 / fan_in) / _TRUNCATED_STD
    return nn.init.trunc_normal_(tensor, std=std, a=-2 * std, b=2 * std)


def keras_initialize(model: nn.Module, conv: str = "he_normal", dense: str = "glorot_uniform") -> nn.Module:
    """Initialise conv and dense kernels as Keras would, with zero biases; BN gamma 1, beta 0."""
    inits = {"he_normal": he_normal_, "glorot_uniform": nn.init.xavier_uniform_}
    for name in (conv, dense):
        if name not in inits:
            raise ValueError(f"unknown initialiser {name!r}; expected one of {', '.join(inits)}")
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            inits[conv if isinstance(module, nn.Conv2d) else dense](module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model
