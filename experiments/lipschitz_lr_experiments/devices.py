"""Devices and precision: which device a run uses, how it is named in results, and autocast."""

from __future__ import annotations

import os
import platform
from contextlib import AbstractContextManager, nullcontext

import torch

from .settings import AMP_MODES, DEVICE_ENV

__all__ = ["AMP_MODES", "DEVICE_ENV", "autocast", "check_amp", "describe_device", "resolve_device"]


def resolve_device(device: str) -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``, checked against this machine; ``cuda`` comes back as the
    current device with its index (``cuda:0``), as the tensors on it name their device.

    ``auto`` is ``$LIPSCHITZ_LR_DEVICE`` when that is set (the test suite sets ``cpu``, so no test
    silently runs on a GPU), else CUDA when available, else the CPU.
    """
    given = device
    if device == "auto":
        override = os.environ.get(DEVICE_ENV, "").strip() or "auto"
        if override != "auto":
            given = f"{override!r} (from ${DEVICE_ENV}, which --device auto reads)"
        device = override if override != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    else:
        given = f"{device!r}"
    unknown = f"unknown device {given}; expected 'auto', 'cpu', 'cuda' or 'cuda:N'"
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ValueError(unknown) from error
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(unknown)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {given} asked for, but CUDA is not available on this machine")
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise ValueError(f"device {given}, but this machine has {count} CUDA device(s): cuda:0 to cuda:{count - 1}")
        if resolved.index is None:  # "cuda" is the current device, named: tensors report cuda:N, never "cuda"
            resolved = torch.device("cuda", torch.cuda.current_device())
    return resolved


def describe_device(device: torch.device) -> str:
    """A device in words: the GPU's name, or the CPU's model name and thread count."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    threads = torch.get_num_threads()
    return f"cpu: {name} ({threads} thread{'' if threads == 1 else 's'})"


def check_amp(amp: str) -> str:
    if amp not in AMP_MODES:
        raise ValueError(f"unknown amp {amp!r}; expected one of {', '.join(AMP_MODES)}")
    return amp


def autocast(device: torch.device, amp: str) -> AbstractContextManager[object]:
    """The autocast context for ``amp`` (``off``, ``bf16``, ``fp16``) on ``device``."""
    if check_amp(amp) == "off":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def configure_determinism(*, deterministic: bool = False, cudnn_benchmark: bool = False) -> None:
    """Set the process's determinism and cuDNN flags for a run (they are global to the process).

    ``deterministic``: TF32 off for matmuls and cuDNN convolutions (true fp32: on CUDA, cuDNN uses TF32
    by default, which moves ``K_z`` and the rates by about 1e-3 against a CPU), deterministic cuDNN
    algorithms, ``torch.use_deterministic_algorithms`` (warn-only: an op without a deterministic kernel
    warns rather than stops the run) and ``CUBLAS_WORKSPACE_CONFIG``. Slower. ``cudnn_benchmark``: let
    cuDNN time its algorithms on the first batches and keep the fastest (faster for fixed shapes; not
    bitwise reproducible), the opposite choice.
    """
    if deterministic and cudnn_benchmark:
        raise ValueError("deterministic and cudnn_benchmark exclude each other: give one of them")
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = cudnn_benchmark


def precision_settings(device: torch.device, amp: str, *, channels_last: bool, compiled: bool) -> dict[str, object]:
    """What decides a run's numerics, as written to ``summary.json``: autocast, TF32, memory format,
    compilation and the determinism flags (TF32 and cuDNN apply on CUDA only)."""
    return {
        "device_type": device.type,
        "amp": amp,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "channels_last": channels_last,
        "compile": compiled,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }
