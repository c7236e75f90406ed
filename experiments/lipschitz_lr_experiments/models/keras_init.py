"""Keras defaults, mirrored for reference mode: initialisers and BatchNorm settings.

The initialisers draw with torch's oldest sampling calls (``normal_``, ``uniform_``) and nothing that
changed between torch releases: ``nn.init.trunc_normal_`` drew by inverse CDF until torch 2.13 and by
resampled normals from 2.14, so the same seed gave other initial weights (and another epoch-0 ``K_z``) on
each side. :func:`truncated_normal_` draws as 2.14's does, on every torch the project supports.
"""

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
def truncated_normal_(tensor: torch.Tensor, std: float, bound: float) -> torch.Tensor:
    """Fill ``tensor`` with normal draws of mean 0 and ``std``, each one outside ``[-bound, bound]`` redrawn.

    Each round draws a whole tensor of normals and takes the entries still out of bounds from it: the
    values torch 2.14's ``nn.init.trunc_normal_`` gives for ``a, b = -bound, bound`` (at least 30% of the
    mass inside), from the same random stream, here on every torch version.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> weights = truncated_normal_(torch.empty(1000), std=1.0, bound=2.0)
        >>> bool(weights.abs().max() <= 2.0)
        True
    """
    low = tensor.new_tensor(-bound, device="cpu").item()  # the bounds in the tensor's dtype, as torch's mask
    high = tensor.new_tensor(bound, device="cpu").item()
    result = tensor.normal_(0.0, std)
    while True:
        outside = (result < low) | (result > high)
        if not outside.any():
            return tensor
        result = torch.where(outside, torch.empty_like(result).normal_(0.0, std), result)
        tensor.copy_(result)


def he_normal_(tensor: torch.Tensor) -> torch.Tensor:
    """Keras ``he_normal``: truncated normal, std ``sqrt(2 / fan_in)``."""
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(tensor)
    std = math.sqrt(2.0 / fan_in) / _TRUNCATED_STD
    return truncated_normal_(tensor, std, 2 * std)


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
