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

import contextlib
import itertools
import math
import os
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.optimizer import register_optimizer_step_post_hook

__all__ = [
    "INPUT_KEYS",
    "TARGET_KEYS",
    "BatchUnpacker",
    "HeadHook",
    "LipschitzStatistics",
    "StatisticsAccumulator",
    "BATCHNORM_MODES",
    "all_reduce_max",
    "call_model",
    "collect_statistics",
    "default_unpack_batch",
    "find_head",
    "head_from_forward",
    "is_compiled",
    "max_weight_norm",
    "model_device",
    "model_dtype",
    "statistics_loader",
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


def _wrappers(model: nn.Module) -> Iterator[nn.Module]:
    """``model``, then each module it wraps (``DistributedDataParallel``, ``torch.compile``, in any order)."""
    while True:
        yield model
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):  # torch.compile's OptimizedModule
            model = model._orig_mod
        else:
            return


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside ``torch.compile`` and ``DistributedDataParallel`` wrappers (in any
    order); any other model as it is. The reference pass runs this module eagerly: its statistics
    are then those of eager mode, and the compiled training forward never sees the pass."""
    *_, plain = _wrappers(model)
    return plain


def is_compiled(model: nn.Module) -> bool:
    """Whether ``model`` is, or wraps, a ``torch.compile`` module (inside DDP wrappers too)."""
    return any(isinstance(getattr(wrapper, "_orig_mod", None), nn.Module) for wrapper in _wrappers(model))


def find_head(model: nn.Module, head: nn.Module | str | None = None) -> nn.Module:
    """Return the module whose inputs are the penultimate activations.

    Args:
        model: the network.
        head: ``None`` for the last ``nn.Linear`` in ``model.modules()`` order (registration
            order), a module of ``model``, or the dotted name of one (``"classifier.fc"``). Any module
            will do: for a functional head (``F.linear``, a cosine classifier), put an ``nn.Identity()``
            before it in ``forward`` and name that (its inputs are the penultimate activations).

    Raises:
        ValueError: the model has no ``nn.Linear``, or ``head`` is not part of the model.
    """
    if head is None:  # AdaptiveLR first asks the forward pass (head_from_forward); this is the fallback
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


def _output_tensor(output: Any) -> Tensor | None:
    """The tensor a model's output stands for: itself, its ``logits`` (Hugging Face), else its first tensor."""
    if isinstance(output, Tensor):
        return output
    logits = output.get("logits") if isinstance(output, Mapping) else getattr(output, "logits", None)
    if isinstance(logits, Tensor):
        return logits
    return _first_tensor(list(output.values()) if isinstance(output, Mapping) else output)


@torch.no_grad()
def head_from_forward(
    model: nn.Module,
    batch: Any,
    *,
    unpack_batch: BatchUnpacker | None = None,
    call: Callable[[nn.Module, Any], Any] | None = None,
    device: torch.device | str | None = None,
) -> nn.Module | None:
    """The ``nn.Linear`` that produces the model's output, found by one forward pass of ``batch`` (eval mode,
    no grad, every module's mode restored): the one whose output is the model's output (or its ``logits``),
    else the last one called. None when no ``nn.Linear`` ran. Unlike registration order, this finds a head
    declared first in ``__init__``."""
    model = unwrap_model(model)
    calls: list[tuple[nn.Module, Any]] = []
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    handles = [m.register_forward_hook(lambda module, inputs, output: calls.append((module, output))) for m in linears]
    try:
        inputs, _ = (unpack_batch or default_unpack_batch)(batch)
        inputs = _to_device(inputs, device or model_device(model), model_dtype(model))
        with _eval_mode(model):
            output = _output_tensor((call or call_model)(model, inputs))
    finally:
        for handle in handles:
            handle.remove()
    for module, produced in reversed(calls):
        if produced is output:
            return module
    return calls[-1][0] if calls else None


@torch.no_grad()
def max_weight_norm(model: nn.Module) -> float:
    """Largest Frobenius norm of any single floating-point tensor in ``model.state_dict()``.

    Weights, biases, BatchNorm gamma/beta and BatchNorm running mean/var all count; integer
    buffers (``num_batches_tracked``) are skipped. This is the authors' ``max_wt``, not the global
    norm. Computed in float64. Returns 0.0 for a model with no floating tensors.
    """
    groups: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}
    for t in model.state_dict(keep_vars=True).values():
        if isinstance(t, Tensor) and t.is_floating_point() and t.numel() > 0:
            groups.setdefault((t.device, t.dtype), []).append(t.detach())
    if not groups:
        return 0.0
    # One fused norm kernel per device and dtype (not one per tensor), one sync per group.
    return max(float(torch.stack(_norms(tensors)).max()) for tensors in groups.values())


def _norms(tensors: list[Tensor]) -> list[Tensor]:
    """The float64 Frobenius norm of each tensor (``torch._foreach_norm``, else one by one)."""
    try:
        return list(torch._foreach_norm(tensors, 2, dtype=torch.float64))
    except (AttributeError, TypeError, RuntimeError):  # a torch without the fused kernel's dtype argument
        return [torch.linalg.vector_norm(t, dtype=torch.float64) for t in tensors]


#: The keys a dict batch's targets are read from, first found first (``"labels"``: Hugging Face).
TARGET_KEYS: tuple[str, ...] = ("target", "targets", "label", "labels", "y")
#: The keys a dict batch's inputs are read from; a dict with none of them is keyword inputs as a whole.
INPUT_KEYS: tuple[str, ...] = ("input", "inputs", "x")


def default_unpack_batch(batch: Any) -> tuple[Any, Any | None]:
    """Split a batch into ``(inputs, targets)``.

    A tensor is all inputs; a tuple or list is ``(inputs, targets, ...)``. A dict's targets are under
    the first of :data:`TARGET_KEYS` it has (``target``, ``targets``, ``label``, ``labels``, ``y``); its
    inputs under the first of :data:`INPUT_KEYS` (``input``, ``inputs``, ``x``), else every other key
    is a keyword input (a Hugging Face batch: ``input_ids``, ``attention_mask``, ...), and
    :func:`call_model` calls ``model(**inputs)``. Pass ``unpack_batch=`` for anything else.
    """
    if isinstance(batch, Tensor):
        return batch, None
    if isinstance(batch, (tuple, list)):
        if len(batch) == 0:
            raise ValueError("got an empty batch (a tuple or list with no elements)")
        return batch[0], (batch[1] if len(batch) > 1 else None)
    if isinstance(batch, Mapping):
        target_key = next((key for key in TARGET_KEYS if key in batch), None)
        targets = batch[target_key] if target_key is not None else None
        input_key = next((key for key in INPUT_KEYS if key in batch), None)
        if input_key is not None:
            return batch[input_key], targets
        inputs = {key: value for key, value in batch.items() if key not in TARGET_KEYS}
        if not inputs:
            raise ValueError(
                f"a dict batch with keys {sorted(batch)} holds no inputs: name them {' or '.join(INPUT_KEYS)}, give "
                "keyword inputs, or pass unpack_batch=<callable returning (inputs, targets)>"
            )
        return inputs, targets
    raise ValueError(
        f"cannot split a batch of type {type(batch).__name__} into (inputs, targets); pass "
        "unpack_batch=<callable returning (inputs, targets)>"
    )


def call_model(model: nn.Module, inputs: Any) -> Any:
    """How the reference pass calls the model: ``model(**inputs)`` for a dict of keyword inputs, else
    ``model(inputs)``. Pass ``call_model=`` for another way (``lambda model, inputs: model(*inputs)``
    for a model of several positional inputs, ``model(x, lengths)``)."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    return model(inputs)


def model_dtype(model: nn.Module) -> torch.dtype | None:
    """The floating dtype of the model's first floating parameter (else buffer); None if it has none."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return None


def _to_device(value: Any, device: torch.device | None, dtype: torch.dtype | None = None) -> Any:
    """``value``'s tensors on ``device`` (None: where they are), floating ones cast to ``dtype`` (the model's:
    a float64 or bf16 model gets inputs of its own dtype; integer inputs such as token ids stay integers)."""
    if isinstance(value, Tensor):
        cast = dtype if dtype is not None and value.is_floating_point() else value.dtype
        return (
            value
            if device is None and cast == value.dtype
            else value.to(device or value.device, cast, non_blocking=True)
        )
    if isinstance(value, (tuple, list)):
        return type(value)(_to_device(v, device, dtype) for v in value)
    if isinstance(value, Mapping):
        return {k: _to_device(v, device, dtype) for k, v in value.items()}
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
    """Running maxima of the per-batch norms and the batch count, one float64 tensor on the data's device.

    The tensor is allocated at the first batch and then updated and reset in place, so a forward
    hook that feeds it can be traced by ``torch.compile`` without a recompilation per batch (no
    Python state changes from one batch to the next). Reading :attr:`num_batches` synchronises.
    """

    def __init__(self) -> None:
        self._values: Tensor | None = None  # [k_z, s, output_norm, target_norm, rows, batches]

    def reset(self) -> None:
        if self._values is not None:
            self._values.zero_()

    @property
    def num_batches(self) -> int:
        return 0 if self._values is None else int(self._values[5])

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
        if target_tensor is not None:  # integer targets too: counts regressed with MSE (class labels: unused)
            y = torch.linalg.vector_norm(target_tensor.detach().to(a.device, torch.float64, non_blocking=True))
        else:
            y = zero
        # m's rows: every leading position, so a head applied per token (batch x tokens x features) counts
        # batch * tokens, whichever of the two comes first
        rows = a.new_full((), float(math.prod(a.shape[:-1])) if a.dim() > 1 else float(a.shape[0]) if a.dim() else 1.0)
        self._fold(torch.stack([k_z, s, out, y, rows, torch.ones_like(zero)]))

    def merge(self, other: StatisticsAccumulator) -> None:
        """Fold in everything ``other`` has seen (its maxima and its batch count)."""
        if other._values is not None:
            self._fold(other._values)

    def _fold(self, values: Tensor) -> None:
        if self._values is None or self._values.device != values.device:
            previous = self._values
            self._values = torch.zeros(6, dtype=torch.float64, device=values.device)
            if previous is not None:
                self._values.copy_(previous)
        # NaN must win the maximum (torch.maximum propagates NaN), so a NaN batch is not hidden.
        self._values.copy_(torch.cat([torch.maximum(self._values[:5], values[:5]), self._values[5:] + values[5:]]))

    def state_dict(self) -> dict[str, Any]:
        """The running maxima as plain values (a checkpoint written mid-epoch in hook mode keeps them)."""
        maxima = None if self._values is None else [float(v) for v in self._values[:5].cpu()]
        return {"maxima": maxima, "num_batches": self.num_batches}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        maxima = state.get("maxima")
        if maxima is not None and (not isinstance(maxima, (list, tuple)) or len(maxima) != 5):
            raise ValueError(f"hook statistics need 5 maxima (k_z, s, output, target, rows), got {maxima!r}")
        if maxima is None:
            self._values = None
            return
        values = [*(float(v) for v in maxima), float(state.get("num_batches", 0))]
        device = self._values.device if self._values is not None else None
        self._values = torch.tensor(values, dtype=torch.float64, device=device)

    def maxima(self) -> Tensor:
        """The five maxima as a float64 CPU tensor (zeros when nothing was seen)."""
        if self._values is None:
            return torch.zeros(5, dtype=torch.float64)
        return self._values[:5].cpu()

    def result(self, weight_norm: float) -> LipschitzStatistics:
        values = self._values.cpu() if self._values is not None else torch.zeros(6, dtype=torch.float64)
        return LipschitzStatistics.from_maxima(values[:5], weight_norm, int(values[5]))


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

    def __init__(self, head: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
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
        head_input = _first_tensor(inputs)
        if head_input is None:
            return
        self.pending.update(head_input, output if isinstance(output, Tensor) else None)

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


def statistics_loader(
    dataset: torch.utils.data.Dataset[Any],
    batch_size: int,
    device: torch.device | str | None = None,
    **kwargs: Any,
) -> Iterable[Any]:
    """The loader the reference pass needs, from a map-style dataset: in order, at the training batch
    size ``m``, partial last batch kept. ``kwargs`` go to ``DataLoader`` (``num_workers``, ...).

    For a model on a CUDA ``device`` the defaults are those of a training loader on a GPU: pinned
    memory (the copies to the GPU do not block) and 4 persistent worker processes (at most the CPU
    count); on the CPU, no workers. Give it the clean training set (the training transform without
    augmentation).
    """
    if kwargs.get("shuffle") or kwargs.get("drop_last"):
        raise ValueError(f"the statistics loader is in order and keeps every example, got {kwargs}")
    if device is not None and torch.device(device).type == "cuda":
        workers = kwargs.setdefault("num_workers", min(4, os.cpu_count() or 1))
        kwargs.setdefault("pin_memory", True)
        kwargs.setdefault("persistent_workers", workers > 0)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, **{**kwargs, "shuffle": False, "drop_last": False}
    )


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Inside, ``model`` is in eval mode; afterwards every module has its own ``training`` flag back, also
    on error (a module's flag may differ from its parent's: a frozen head in a training model)."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


#: How BatchNorm layers normalise during the reference pass (``collect_statistics(batchnorm=)``).
BATCHNORM_MODES: tuple[str, ...] = ("batch", "running")


def _normalise_by_batch(module: nn.Module, inputs: tuple[Any, ...]) -> None:
    """Forward pre-hook: train-mode BatchNorm (the batch's own statistics) unless the batch has a single value
    per channel, which train mode cannot normalise (such a batch uses the running statistics)."""
    x = inputs[0]
    module.training = isinstance(x, Tensor) and x.dim() >= 2 and x.shape[0] * math.prod(x.shape[2:]) > 1


@contextlib.contextmanager
def _batch_statistics(model: nn.Module) -> Iterator[None]:
    """Inside, every BatchNorm layer of ``model`` normalises each batch by its own statistics (as in training)
    while its running statistics are left as they were (saved and restored)."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [{name: buffer.clone() for name, buffer in m.named_buffers(recurse=False)} for m in layers]
    handles = [m.register_forward_pre_hook(_normalise_by_batch) for m in layers]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        with torch.no_grad():
            for layer, buffers in zip(layers, saved, strict=True):
                for name, value in buffers.items():
                    getattr(layer, name).copy_(value)


@torch.no_grad()
def collect_statistics(
    model: nn.Module,
    loader: Iterable[Any],
    *,
    head: nn.Module | str | None = None,
    device: torch.device | str | None = None,
    unpack_batch: BatchUnpacker = default_unpack_batch,
    call: Callable[[nn.Module, Any], Any] = call_model,
    allow_empty: bool = False,
    max_batches: int | None = None,
    batchnorm: str = "running",
) -> LipschitzStatistics:
    """The reference pass: statistics of the head's inputs over every batch of ``loader``.

    The model is put in eval mode (Dropout is off), gradients are off, and every module's previous
    ``training`` flag is restored afterwards, also on error. BatchNorm layers use their running
    statistics (``batchnorm="running"``, the paper's eval pass) or each batch's own statistics, as
    in training, with their running statistics left untouched (``"batch"``; AdaptiveLR's default:
    at initialisation the running statistics are 0 and 1, and in many modern networks the eval
    pass then makes the head's inputs nearly vanish, K_z ~ 1e-8, and the rate absurd). Batches are
    taken as the loader yields them (give it the clean training set, in order, at the training batch
    size, partial last batch kept).

    Args:
        model: the network (a ``DistributedDataParallel`` wrapper is unwrapped, so that ranks with
            different numbers of batches do not deadlock on its buffer broadcast).
        loader: any iterable of batches.
        head: see :func:`find_head`.
        device: where to move inputs; default the device of the model's first parameter or buffer.
        unpack_batch: splits a batch into (inputs, targets) (:func:`default_unpack_batch`).
        call: calls the model on the inputs (:func:`call_model`: a dict as keyword arguments).
        allow_empty: return zeros for an empty loader instead of raising (a distributed rank
            with an empty shard must still reach the all-reduce).
        max_batches: read only the loader's first ``max_batches`` batches (a fixed subset: the
            cheaper pass for large datasets; not the paper's, whose ``K_z`` is over every batch).
        batchnorm: ``"running"`` (default here, the paper's) or ``"batch"`` (see above). A
            ``SyncBatchNorm`` in ``"batch"`` mode synchronises every batch across ranks, so every
            rank must then see the same number of batches.

    Raises:
        ValueError: the loader is empty, or the head never ran during the pass.
    """
    model = unwrap_model(model)
    head_module = find_head(model, head)
    if device is None:
        device = model_device(model)
    device = torch.device(device) if device is not None else None
    dtype = model_dtype(model)
    accumulator = StatisticsAccumulator()
    current: dict[str, Any] = {}

    def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        head_input = _first_tensor(inputs)
        if head_input is not None and head_input.dim() > 2 and isinstance(module, nn.modules.conv._ConvNd):
            raise ValueError(
                f"the head ({type(module).__name__}) is a convolution, whose inputs are feature maps "
                f"{tuple(head_input.shape)}: the bound is for a linear layer on (batch, features), and K_z over a "
                "whole feature map is not its K_z. Name the layer after the pooling as head, or an nn.Identity() "
                "placed on the pooled features"
            )
        if head_input is not None:
            current["called"] = True
            accumulator.update(head_input, output if isinstance(output, Tensor) else None, current.get("targets"))

    if batchnorm not in BATCHNORM_MODES:
        raise ValueError(f"unknown batchnorm {batchnorm!r}; expected one of {', '.join(BATCHNORM_MODES)}")
    handle = head_module.register_forward_hook(hook)
    seen_batches = 0
    normalisation = _batch_statistics(model) if batchnorm == "batch" else contextlib.nullcontext()
    try:
        with _eval_mode(model), normalisation:
            for batch in loader if max_batches is None else itertools.islice(loader, max_batches):
                inputs, targets = unpack_batch(batch)
                inputs = _to_device(inputs, device, dtype)
                current.update(targets=targets, called=False)
                call(model, inputs)
                seen_batches += 1
                if not current["called"]:
                    raise ValueError(
                        f"the head ({type(head_module).__name__}) was never called during the forward "
                        "pass; name the module whose inputs are the penultimate activations with head="
                    )
    finally:
        handle.remove()
    if seen_batches == 0 and not allow_empty:
        raise ValueError("the loader yielded no batches; AdaptiveLR needs at least one batch")
    return accumulator.result(max_weight_norm(model))


def model_device(model: nn.Module) -> torch.device | None:
    """The device of the model's first parameter (else buffer); None for a model with neither."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return None


def all_reduce_max(stats: LipschitzStatistics, device: torch.device | str | None = None) -> LipschitzStatistics:
    """MAX all-reduce of the statistics across the default process group.

    Every rank must call this, also a rank that saw no batch (its zeros do not change the max).
    One collective per call: on the CPU for gloo; for NCCL on ``device``, the rank's GPU (AdaptiveLR
    passes its model's device), else on the current CUDA device. Reducing on the current device of a
    process that never called ``torch.cuda.set_device`` put every rank on ``cuda:0``: NCCL's
    duplicate-GPU error, or a hang.
    """
    import torch.distributed as dist

    if dist.get_backend() != "nccl":
        device = torch.device("cpu")
    elif device is None:
        device = torch.device("cuda", torch.cuda.current_device())
    elif torch.device(device).type != "cuda":
        raise ValueError(
            f"the NCCL backend reduces on a GPU, but the model is on {device}; put each rank's model on its GPU "
            "(model.to(f'cuda:{local_rank}')) or use the gloo backend"
        )
    values = torch.tensor(
        [stats.k_z, stats.s, stats.output_norm, stats.target_norm, stats.batch_rows, stats.max_weight_norm],
        dtype=torch.float64,
        device=device,
    )
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return LipschitzStatistics.from_maxima(values[:5].cpu(), float(values[5]), stats.num_batches)
