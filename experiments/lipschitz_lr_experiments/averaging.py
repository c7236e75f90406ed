"""An exponential moving average of the weights, evaluated in their place (``weight_average`` in a config).

Beyond the paper: at LipschitzLR's rates (steps 100-300 times a tuned baseline's) the test accuracy swings by
points between epochs; averaging the iterates is the standard cure (Schedule-Free and DoG average too). The
average is torch's ``AveragedModel`` with ``get_ema_multi_avg_fn(decay)``, updated after every optimizer step
taken; its BatchNorm statistics are those of the average, recomputed before each evaluation
(:func:`~lipschitz_lr_experiments.loop.recalibrate_batchnorm`). Training never reads it.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

__all__ = ["WeightAverage"]


class WeightAverage:
    """The EMA ``w_avg <- decay w_avg + (1 - decay) w`` of ``model``'s parameters, one update per optimizer step
    (the first update copies the weights).

    Example:
        >>> import torch
        >>> model = nn.Linear(2, 1)
        >>> average = WeightAverage(model, decay=0.5)
        >>> average.update()
        >>> with torch.no_grad():
        ...     _ = model.weight.add_(2.0)
        >>> average.update()
        >>> bool(torch.allclose(average.module.weight, model.weight - 1.0))
        True
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"requires 0 < decay < 1, got {decay=}")
        self.model = model
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)

    @property
    def module(self) -> nn.Module:
        """The averaged network (its own BatchNorm buffers: recalibrate them before evaluating it)."""
        return self.averaged.module

    def update(self) -> None:
        self.averaged.update_parameters(self.model)

    def state_dict(self) -> dict[str, Any]:
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.averaged.load_state_dict(state)
