"""DoG with the weight averager its README calls mandatory, behind Schedule-Free's ``train()``/``eval()``.

DoG ("Distance over Gradients", Ivgi, Hinder and Carmon, 2023) sets its step size to the largest
distance travelled from the initial weights over the root of the summed squared gradient norms; its
authors evaluate the polynomial-decay average of the iterates (Shamir and Zhang, 2013), not the
iterates themselves. :class:`AveragedDoG` is the ``dog`` package's ``DoG`` whose every step also
advances a ``PolynomialDecayAverager`` (``gamma = 8``, the package's default) of the model, and
whose ``eval()`` puts the averaged weights (and buffers) into the model, ``train()`` the training
ones back: the calls the harness already makes for Schedule-Free.

References:
    Ivgi, Hinder, Carmon, "DoG is SGD's Best Friend: A Parameter-Free Dynamic Step Size Schedule",
    ICML 2023 (arXiv 2302.12022); https://github.com/formll/dog
"""

from __future__ import annotations

from typing import Any

import torch
from dog import DoG, PolynomialDecayAverager
from torch import nn


class AveragedDoG(DoG):
    """``DoG(params, lr=lr, **dog_args)`` stepping a polynomial-decay average of ``model``.

    Args:
        params: the parameters or parameter groups of ``model`` to optimise.
        model: the model whose weights are averaged (its parameters and buffers).
        lr: DoG's ``c`` (default 1.0, which its authors advise not to change).
        gamma: the averager's decay (default 8.0).
        **dog_args: further ``DoG`` arguments (``reps_rel``, ``weight_decay``, ``eps``, ``init_eta``).

    Example:
        >>> model = nn.Linear(3, 2)
        >>> optimizer = AveragedDoG(model.parameters(), model)
        >>> model(torch.ones(4, 3)).sum().backward()
        >>> optimizer.step()
        >>> optimizer.eval()  # the model now holds the averaged weights
        >>> optimizer.train()
    """

    def __init__(self, params: Any, model: nn.Module, lr: float = 1.0, gamma: float = 8.0, **dog_args: Any) -> None:
        super().__init__(params, lr=lr, **dog_args)
        self.model = model
        self.averager = PolynomialDecayAverager(model, gamma=gamma)
        self._training_weights: dict[str, torch.Tensor] | None = None

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        if self._training_weights is not None:
            raise RuntimeError("AveragedDoG.step() in eval mode (the model holds the averaged weights); call train()")
        loss = super().step(closure)
        self.averager.step()
        return loss

    @torch.no_grad()
    def eval(self) -> None:
        """Put the averaged weights into the model (the training ones kept aside); a no-op in eval mode."""
        if self._training_weights is None:
            self._training_weights = {k: v.clone() for k, v in self.model.state_dict().items()}
            self.model.load_state_dict(self.averager.averaged_model.state_dict())

    @torch.no_grad()
    def train(self) -> None:
        """Put the training weights back; a no-op in train mode."""
        if self._training_weights is not None:
            self.model.load_state_dict(self._training_weights)
            self._training_weights = None

    def state_dict(self) -> dict:
        if self._training_weights is not None:
            raise RuntimeError(
                "AveragedDoG.state_dict() in eval mode: call train() first (the model's weights are "
                "the averaged ones, which a resume would train from)"
            )
        return {**super().state_dict(), "averager": self.averager.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        if "averager" not in state_dict:
            raise ValueError(
                f"AveragedDoG.load_state_dict: no 'averager' entry (a plain DoG state?), got {sorted(state_dict)}"
            )
        state_dict = dict(state_dict)
        averager = state_dict.pop("averager")
        super().load_state_dict(state_dict)
        self.averager.load_state_dict(averager)
