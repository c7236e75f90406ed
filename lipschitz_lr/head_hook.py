"""The fast statistics source: :class:`HeadHook`, a forward hook on the head that records the statistics of
the training forward passes (no extra pass), counting a pass only once its optimizer steps.

One process-wide optimizer-step hook (registered by the first HeadHook that has an optimizer) tells
every live HeadHook when another optimizer steps, so that the passes of a throwaway optimizer on the
same model (a learning-rate finder's) are dropped.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from .batches import first_tensor
from .statistics import StatisticsAccumulator, head_rows

__all__ = ["HeadHook"]

#: The HeadHooks with an optimizer, told when any optimizer steps (one global hook serves them all).
_LIVE_HOOKS: weakref.WeakSet[HeadHook] = weakref.WeakSet()


_GLOBAL_STEP_HOOK: list[Any] = []


def _watch_optimizer_steps(hook: HeadHook) -> None:
    _LIVE_HOOKS.add(hook)
    if not _GLOBAL_STEP_HOOK:
        _GLOBAL_STEP_HOOK.append(register_optimizer_step_post_hook(_discard_for_other_optimizers))


def _discard_for_other_optimizers(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    for hook in list(_LIVE_HOOKS):
        if hook._optimizer() is not optimizer:
            hook.discard()


def _no_optimizer() -> None:
    """The optimizer of a detached :class:`HeadHook` copy: none."""
    return None


class HeadHook:
    """Forward hook on the head that feeds a :class:`StatisticsAccumulator`.

    Records only while the head is in training mode (so evaluation passes on a test set are not
    counted) and only when ``enabled``. Targets are not visible to a forward hook; MSE in hook mode
    therefore needs the target norm from elsewhere (see ``AdaptiveLR``).

    With an ``optimizer``, a forward pass counts only once that optimizer steps: its statistics wait
    in :attr:`pending` and join :attr:`accumulator` when the optimizer's ``step()`` ends (so a forward
    pass inside a ``step(closure)``, as Lightning runs them, counts for that step), and they are
    dropped when any other optimizer's step ends first (a learning-rate finder's throwaway optimizer
    on the same model, say). Forward passes with no optimizer step after them never count. Without
    an optimizer every training forward pass counts at once.

    Works under ``torch.compile``: the hook is traced into the compiled forward, and its state is
    tensors updated in place, so it causes no recompilation per batch.

    Use as a context manager or call :meth:`remove`.
    """

    def __init__(self, head: nn.Module, optimizer: torch.optim.Optimizer | None = None, rows: str = "all") -> None:
        self.rows = rows
        self.accumulator = StatisticsAccumulator()
        self.pending = StatisticsAccumulator() if optimizer is not None else self.accumulator
        self.enabled = True
        self._handles = [head.register_forward_hook(self._hook)]
        if optimizer is not None:
            self._handles.append(optimizer.register_step_post_hook(lambda *_: self.commit()))
            self._optimizer = weakref.ref(optimizer)
            _watch_optimizer_steps(self)

    def _hook(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if not self.enabled or not module.training:
            return
        head_input = first_tensor(inputs)
        if head_input is None:
            return
        self.pending.update(head_rows(module, head_input, self.rows), output if isinstance(output, Tensor) else None)

    def commit(self) -> None:
        """Count the pending forward passes (called when the optimizer steps)."""
        if self.pending is not self.accumulator:
            self.accumulator.merge(self.pending)
            self.pending.reset()

    def discard(self) -> None:
        """Drop the pending forward passes (another optimizer stepped after them)."""
        if self.pending is not self.accumulator:
            self.pending.reset()

    def reset(self) -> None:
        """Forget everything recorded so far (counted and pending)."""
        self.accumulator.reset()
        self.discard()

    def state_dict(self) -> dict[str, Any]:
        """What was counted and what is pending, as plain values (a mid-epoch checkpoint keeps both)."""
        pending = self.pending.state_dict() if self.pending is not self.accumulator else None
        return {"counted": self.accumulator.state_dict(), "pending": pending}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "maxima" in state:  # lipschitz-lr before 2026-11-30 saved the counted statistics alone
            state = {"counted": state, "pending": None}
        self.accumulator.load_state_dict(state["counted"])
        if state.get("pending") is not None and self.pending is not self.accumulator:
            self.pending.load_state_dict(state["pending"])

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        _LIVE_HOOKS.discard(self)

    def __getstate__(self) -> dict[str, Any]:
        """A pickled or deep-copied model (``torch.save(model)``, an EMA copy) carries this hook as a detached,
        disabled copy: no handles, no optimizer, so it never feeds anyone's statistics."""
        state = self.__dict__.copy()
        state.update(_handles=[], enabled=False, _optimizer=_no_optimizer)
        return state

    def __enter__(self) -> HeadHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
