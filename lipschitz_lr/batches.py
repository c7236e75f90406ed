"""The batches LipschitzLR's statistics pass reads: splitting one into inputs and targets, moving it to the
model's device and dtype, calling the model on it, and the in-order loader the pass needs."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "INPUT_KEYS",
    "TARGET_KEYS",
    "BatchUnpacker",
    "call_model",
    "default_unpack_batch",
    "first_tensor",
    "loader_length",
    "statistics_loader",
    "to_device",
]

#: Splits a loader's batch into (inputs, targets-or-None).
BatchUnpacker = Callable[[Any], "tuple[Any, Any | None]"]


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


def loader_length(loader: Any) -> int | None:
    """How many batches ``loader`` yields, where it says (None for an iterable one: a ``DataLoader`` over an
    ``IterableDataset`` has ``__len__`` but raises ``TypeError`` from it).

    >>> loader_length([1, 2, 3]), loader_length(iter([1, 2]))
    (3, None)
    """
    try:
        return len(loader)
    except TypeError:
        return None


def call_model(model: nn.Module, inputs: Any) -> Any:
    """How the reference pass calls the model: ``model(**inputs)`` for a dict of keyword inputs, else
    ``model(inputs)``. Pass ``call_model=`` for another way (``lambda model, inputs: model(*inputs)``
    for a model of several positional inputs, ``model(x, lengths)``)."""
    if isinstance(inputs, Mapping):
        try:
            return model(**inputs)
        except TypeError as error:
            if "argument" not in str(error):  # not a call the model's forward refused
                raise
            raise TypeError(
                f"{error}: AdaptiveLR calls model(**batch) with a dict batch's keys {sorted(inputs)} as keyword "
                "inputs; for a model whose forward takes the dict itself, pass "
                "call_model=lambda model, batch: model(batch)"
            ) from error
    return model(inputs)


def to_device(value: Any, device: torch.device | None, dtype: torch.dtype | None = None) -> Any:
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
        return type(value)(to_device(v, device, dtype) for v in value)
    if isinstance(value, Mapping):
        return {k: to_device(v, device, dtype) for k, v in value.items()}
    return value


def first_tensor(value: Any) -> Tensor | None:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for item in value:
            found = first_tensor(item)
            if found is not None:
                return found
    return None


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
