"""Collecting the activation statistics that the Lipschitz bounds need.

Two sources, one accumulator:

* :func:`collect_statistics` is the **reference pass**: one extra pass over a loader in
  inference mode, exactly as the authors' code did it (eval mode, no grad, BatchNorm running
  statistics untouched, every module's previous mode restored, partial last batch kept).
* :class:`HeadHook` is the **fast mode**: a forward hook on the head that records the same
  statistics from the training forward passes, so no extra pass is needed. It sees train-mode
  BatchNorm/Dropout, augmented data and weights that move during the epoch, so it is not
  reference-equivalent; for a model without BatchNorm/Dropout whose weights do not change, the two
  agree (tested).

Norms are accumulated in float64 on the activations' device, whatever the training precision,
and maxima stay on the device until the end of the pass (one host synchronisation per pass).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "BatchUnpacker",
    "HeadHook",
    "LipschitzStatistics",
    "StatisticsAccumulator",
    "all_reduce_max",
    "collect_statistics",
    "default_unpack_batch",
    "find_head",
    "max_weight_norm",
    "unwrap_model",
]

#: Splits a loader's batch into (inputs, targets-or-None).
BatchUnpacker = Callable[[Any], "tuple[Any, Any | None]"]


@dataclass(frozen=True)
class LipschitzStatistics:
    """Statistics of one epoch, each a maximum over batches.

    Attributes:
        k_z: largest Frobenius norm of a batch of head inputs (batch x features).
        s: largest Frobenius norm of the elementwise square of a batch of head inputs.
        output_norm: largest Frobenius norm of a batch of head outputs (``K_a`` for MSE).
        target_norm: largest Frobenius norm of a batch of targets (0 when none were seen).
        max_weight_norm: largest Frobenius norm of a single floating tensor of the model's state.
        batch_rows: largest number of rows in a batch of head inputs.
        num_batches: how many batches this process saw (:func:`all_reduce_max` leaves it per rank).
    """

    k_z: float
    s: float
    output_norm: float
    target_norm: float
    max_weight_norm: float
    batch_rows: int
    num_batches: int

    @classmethod
    def from_maxima(cls, maxima: Iterable[float], max_weight_norm: float, num_batches: int) -> LipschitzStatistics:
        """From the per-batch maxima ``(k_z, s, output_norm, target_norm, rows)``."""
        k_z, s, out, y, rows = (float(v) for v in maxima)
        return cls(
            k_z=k_z,
            s=s,
            output_norm=out,
            target_norm=y,
            max_weight_norm=float(max_weight_norm),
            batch_rows=int(rows) if math.isfinite(rows) else 0,
            num_batches=num_batches,
        )


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module a ``DistributedDataParallel`` wrapper holds (any other model as it is)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def find_head(model: nn.Module, head: nn.Module | str | None = None) -> nn.Module:
    """Return the module whose inputs are the penultimate activations.

    Args:
        model: the network.
        head: ``None`` for the last ``nn.Linear`` in ``model.modules()`` order (registration
            order), a module of ``model``, or the dotted name of one (``"classifier.fc"``).

    Raises:
        ValueError: the model has no ``nn.Linear``, or ``head`` is not part of the model.
    """
    if head is None:
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError(
                f"{type(model).__name__} has no nn.Linear to take as the head; pass "
                "head=<module or dotted name> naming the module whose inputs are the penultimate "
                "activations"
            )
        return linears[-1]
    if isinstance(head, str):
        try:
            return model.get_submodule(head)
        except AttributeError as error:
            raise ValueError(f"head={head!r} is not a submodule of {type(model).__name__}") from error
    if isinstance(head, nn.Module):
        if not any(module is head for module in model.modules()):
            raise ValueError(f"head={type(head).__name__} is not a module of {type(model).__name__}")
        return head
    raise ValueError(f"head must be None, an nn.Module or a dotted name, got {head!r}")


@torch.no_grad()
def max_weight_norm(model: nn.Module) -> float:
    """Largest Frobenius norm of any single floating-point tensor in ``model.state_dict()``.

    Weights, biases, BatchNorm gamma/beta and BatchNorm running mean/var all count; integer
    buffers (``num_batches_tracked``) are skipped. This is the authors' ``max_wt``, not the global
    norm. Computed in float64. Returns 0.0 for a model with no floating tensors.
    """
    norms = [
        torch.linalg.vector_norm(t.detach(), dtype=torch.float64)
        for t in model.state_dict(keep_vars=True).values()
        if isinstance(t, Tensor) and t.is_floating_point() and t.numel() > 0
    ]
    if not norms:
        return 0.0
    # One device sync: stack on each device, then reduce on the host.
    by_device: dict[torch.device, list[Tensor]] = {}
    for norm in norms:
        by_device.setdefault(norm.device, []).append(norm)
    return max(float(torch.stack(group).max()) for group in by_device.values())


def default_unpack_batch(batch: Any) -> tuple[Any, Any | None]:
    """Split a batch into ``(inputs, targets)``.

    A tensor is all inputs; a tuple or list is ``(inputs, targets, ...)``; a dict needs the key
    ``"input"`` (and optionally ``"target"``). Pass ``unpack_batch=`` for anything else.
    """
    if isinstance(batch, Tensor):
        return batch, None
    if isinstance(batch, (tuple, list)):
        if len(batch) == 0:
            raise ValueError("got an empty batch (a tuple or list with no elements)")
        return batch[0], (batch[1] if len(batch) > 1 else None)
    if isinstance(batch, dict):
        if "input" not in batch:
            raise ValueError(
                f"a dict batch needs the key 'input' (got keys {sorted(batch)}); pass "
                "unpack_batch=<callable returning (inputs, targets)>"
            )
        return batch["input"], batch.get("target")
    raise ValueError(
        f"cannot split a batch of type {type(batch).__name__} into (inputs, targets); pass "
        "unpack_batch=<callable returning (inputs, targets)>"
    )


def _to_device(value: Any, device: torch.device | None) -> Any:
    if device is None:
        return value
    if isinstance(value, Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, (tuple, list)):
        return type(value)(_to_device(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    return value


def _first_tensor(value: Any) -> Tensor | None:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


class StatisticsAccumulator:
    """Running maxima of the per-batch norms, kept as float64 tensors on the data's device."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._maxima: Tensor | None = None  # [k_z, s, output_norm, target_norm, rows]
        self.num_batches = 0

    def update(self, head_input: Tensor, head_output: Tensor | None = None, targets: Any = None) -> None:
        """Fold one batch in: ``head_input`` is (batch x ...) and flattened per row."""
        a = head_input.detach().to(torch.float64)
        k_z = torch.linalg.vector_norm(a)
        s = torch.linalg.vector_norm(a.square())
        zero = torch.zeros((), dtype=torch.float64, device=a.device)
        out = (
            torch.linalg.vector_norm(head_output.detach(), dtype=torch.float64)
            if isinstance(head_output, Tensor)
            else zero
        )
        target_tensor = _first_tensor(targets)
        if target_tensor is not None and target_tensor.is_floating_point():
            y = torch.linalg.vector_norm(target_tensor.detach().to(a.device), dtype=torch.float64)
        else:
            y = zero
        rows = a.new_full((), float(a.shape[0]) if a.dim() > 0 else 1.0)
        values = torch.stack([k_z, s, out, y, rows])
        # NaN must win the maximum (torch.maximum propagates NaN), so a NaN batch is not hidden.
        if self._maxima is None:
            self._maxima = values
        else:
            self._maxima = torch.maximum(self._maxima.to(values.device), values)
        self.num_batches += 1

    def state_dict(self) -> dict[str, Any]:
        """The running maxima as plain values (a checkpoint written mid-epoch in hook mode keeps them)."""
        maxima = None if self._maxima is None else [float(v) for v in self._maxima.cpu()]
        return {"maxima": maxima, "num_batches": self.num_batches}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        maxima = state.get("maxima")
        if maxima is not None and (not isinstance(maxima, (list, tuple)) or len(maxima) != 5):
            raise ValueError(f"hook statistics need 5 maxima (k_z, s, output, target, rows), got {maxima!r}")
        self._maxima = None if maxima is None else torch.tensor([float(v) for v in maxima], dtype=torch.float64)
        self.num_batches = int(state.get("num_batches", 0))

    def maxima(self) -> Tensor:
        """The five maxima as a float64 CPU tensor (zeros when nothing was seen)."""
        if self._maxima is None:
            return torch.zeros(5, dtype=torch.float64)
        return self._maxima.cpu()

    def result(self, weight_norm: float) -> LipschitzStatistics:
        return LipschitzStatistics.from_maxima(self.maxima(), weight_norm, self.num_batches)


class HeadHook:
    """Forward hook on the head that feeds a :class:`StatisticsAccumulator`.

    Records only while the head is in training mode (so evaluation passes on a test set are not
    counted) and only when ``enabled``. Targets are not visible to a forward hook; MSE in hook mode
    therefore needs the target norm from elsewhere (see ``AdaptiveLR``).

    Use as a context manager or call :meth:`remove`.
    """

    def __init__(self, head: nn.Module) -> None:
        self.accumulator = StatisticsAccumulator()
        self.enabled = True
        self._handle = head.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if not self.enabled or not module.training:
            return
        head_input = _first_tensor(inputs)
        if head_input is None:
            return
        self.accumulator.update(head_input, output if isinstance(output, Tensor) else None)

    def remove(self) -> None:
        self._handle.remove()

    def __enter__(self) -> HeadHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _module_modes(model: nn.Module) -> list[tuple[nn.Module, bool]]:
    return [(module, module.training) for module in model.modules()]


@torch.no_grad()
def collect_statistics(
    model: nn.Module,
    loader: Iterable[Any],
    *,
    head: nn.Module | str | None = None,
    device: torch.device | str | None = None,
    unpack_batch: BatchUnpacker = default_unpack_batch,
    allow_empty: bool = False,
) -> LipschitzStatistics:
    """The reference pass: statistics of the head's inputs over every batch of ``loader``.

    The model is put in eval mode (BatchNorm uses and keeps its running statistics, Dropout is
    off), gradients are off, and every module's previous ``training`` flag is restored afterwards,
    also on error. Batches are taken as the loader yields them (give it the clean training set,
    in order, at the training batch size, partial last batch kept).

    Args:
        model: the network (a ``DistributedDataParallel`` wrapper is unwrapped, so that ranks with
            different numbers of batches do not deadlock on its buffer broadcast).
        loader: any iterable of batches.
        head: see :func:`find_head`.
        device: where to move inputs; default the device of the model's first parameter or buffer.
        unpack_batch: splits a batch into (inputs, targets).
        allow_empty: return zeros for an empty loader instead of raising (a distributed rank
            with an empty shard must still reach the all-reduce).

    Raises:
        ValueError: the loader is empty, or the head never ran during the pass.
    """
    model = unwrap_model(model)
    head_module = find_head(model, head)
    if device is None:
        device = _model_device(model)
    device = torch.device(device) if device is not None else None
    modes = _module_modes(model)
    accumulator = StatisticsAccumulator()
    current: dict[str, Any] = {}

    def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        head_input = _first_tensor(inputs)
        if head_input is not None:
            accumulator.update(head_input, output if isinstance(output, Tensor) else None, current.get("targets"))

    handle = head_module.register_forward_hook(hook)
    model.eval()
    seen_batches = 0
    try:
        for batch in loader:
            inputs, targets = unpack_batch(batch)
            inputs = _to_device(inputs, device)
            current["targets"] = targets
            before = accumulator.num_batches
            model(inputs)
            seen_batches += 1
            if accumulator.num_batches == before:
                raise ValueError(
                    f"the head ({type(head_module).__name__}) was never called during the forward "
                    "pass; name the module whose inputs are the penultimate activations with head="
                )
    finally:
        handle.remove()
        for module, training in modes:
            module.training = training
    if seen_batches == 0 and not allow_empty:
        raise ValueError("the loader yielded no batches; AdaptiveLR needs at least one batch")
    return accumulator.result(max_weight_norm(model))


def _model_device(model: nn.Module) -> torch.device | None:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return None


def all_reduce_max(stats: LipschitzStatistics) -> LipschitzStatistics:
    """MAX all-reduce of the statistics across the default process group.

    Every rank must call this, also a rank that saw no batch (its zeros do not change the max).
    One collective per call, on CUDA for the NCCL backend and on the CPU otherwise.
    """
    import torch.distributed as dist

    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    values = torch.tensor(
        [stats.k_z, stats.s, stats.output_norm, stats.target_norm, stats.batch_rows, stats.max_weight_norm],
        dtype=torch.float64,
        device=device,
    )
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return LipschitzStatistics.from_maxima(values[:5].cpu(), float(values[5]), stats.num_batches)
