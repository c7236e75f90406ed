"""Argument checks shared by the bounds and the scheduler: each returns the plain Python value or
raises a ``ValueError`` that names the argument and the value it got."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any


def real(name: str, value: Any) -> float:
    """A plain float from a Python or numpy real (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"requires a real number for {name}, got {name}={value!r}")
    return float(value)


def finite_nonnegative(name: str, value: Any) -> float:
    """A finite float >= 0."""
    value = real(name, value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"requires a finite, non-negative {name}, got {name}={value!r}")
    return value


def integer(name: str, value: Any, minimum: int) -> int:
    """A plain int from a Python or numpy integer (or an integral float), at least ``minimum``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not float(value).is_integer()
        or int(value) < minimum
    ):
        raise ValueError(f"requires an integer {name} >= {minimum}, got {name}={value!r}")
    return int(value)


def beta(name: str, value: Any) -> float:
    """An EMA factor in [0, 1)."""
    value = real(name, value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"requires 0 <= {name} < 1, got {name}={value!r}")
    return value


def choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """One of ``choices``."""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(choices)}")
    return str(value)
