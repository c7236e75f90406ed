"""What LipschitzLR reads off a model: the plain module inside its wrappers (``torch.compile``, DDP), its
head (the layer whose inputs are the penultimate activations), its largest weight norm, its device and
dtype, and eval mode with every module's own flag restored."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from .batches import BatchUnpacker, call_model, default_unpack_batch, first_tensor, to_device

__all__ = [
    "batchnorm_layers",
    "eval_mode",
    "find_head",
    "head_from_forward",
    "is_compiled",
    "max_weight_norm",
    "model_device",
    "model_dtype",
    "unwrap_model",
]


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


def output_tensor(output: Any) -> Tensor | None:
    """The tensor a model's output stands for: itself, its ``logits`` (Hugging Face), else its first tensor."""
    if isinstance(output, Tensor):
        return output
    logits = output.get("logits") if isinstance(output, Mapping) else getattr(output, "logits", None)
    if isinstance(logits, Tensor):
        return logits
    return first_tensor(list(output.values()) if isinstance(output, Mapping) else output)


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
        inputs = to_device(inputs, device or model_device(model), model_dtype(model))
        with eval_mode(model):
            output = output_tensor((call or call_model)(model, inputs))
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


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The model's BatchNorm layers (``BatchNorm1d/2d/3d``, ``SyncBatchNorm``, lazy ones), in module order."""
    return [module for module in model.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)]


def model_dtype(model: nn.Module) -> torch.dtype | None:
    """The floating dtype of the model's first floating parameter (else buffer); None if it has none."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return None


def model_device(model: nn.Module) -> torch.device | None:
    """The device of the model's first parameter (else buffer); None for a model with neither."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return None


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Inside, ``model`` is in eval mode; afterwards every module has its own ``training`` flag back, also
    on error (a module's flag may differ from its parent's: a frozen head in a training model)."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
