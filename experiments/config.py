"""Experiment configuration: one TOML file per run, validated before any training starts."""

from __future__ import annotations

import dataclasses
import math
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from lipschitz_lr.adaptive_lr import MOMENTUM_SEEDS, STATISTICS_SOURCES

from .data import DATASETS
from .losses import LOSSES
from .models import MODELS
from .optimizers import CORE_OPTIMIZERS, OPTIMIZERS, missing_package
from .schedules import SCHEDULES

CONFIG_DIR = Path(__file__).parent / "configs"


class ConfigError(ValueError):
    """A configuration that cannot run; the message names the offending key."""


@dataclass
class ExperimentConfig:
    """Everything one run needs. Keys of the TOML file are these field names.

    ``weight_decay`` is the paper's lambda: the L2 term inside LipschitzLR's bound and, with
    ``keras_decay``, the per-iteration decay ``lr / (1 + lambda t)`` of the authors' Keras
    optimizers (for the adaptive schedule and the fixed-LR baselines alike). ``l2`` is the model's
    real regularisation (Keras ``l2(c)`` on conv kernels: gradient ``2 c w``).

    ``loss`` is ``keras_cross_entropy`` (the authors' Keras loss, probabilities clipped to
    ``[1e-7, 1 - 1e-7]``; the reference) or ``cross_entropy`` (torch's, the clean choice).
    ``momentum_seed`` says how AdaMo's ``K1`` is seeded from ``initial_lr`` (``"value"``: ``K1 = x``
    as the authors' code; ``"reciprocal"``: ``K1 = 1/x``); see ``AdaptiveLR``.
    """

    name: str
    dataset: str
    model: str
    optimizer: str = "sgd"
    schedule: str = "lipschitz"
    schedule_args: dict[str, Any] = field(default_factory=dict)
    lr: float = 0.01
    epochs: int = 20
    batch_size: int = 128
    weight_decay: float = 0.0
    keras_decay: bool = False
    l2: float = 0.0
    augment: bool = True
    keras_faithful: bool = True
    loss: str = "keras_cross_entropy"
    statistics: str = "reference"
    initial_lr: float | None = None
    momentum_seed: str = "value"
    bias_correction: bool = False
    seed: int = 0
    train_subset: int | None = None
    test_subset: int | None = None
    description: str = ""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        choices = {
            "dataset": DATASETS,
            "model": tuple(MODELS),
            "optimizer": tuple(OPTIMIZERS),
            "schedule": tuple(SCHEDULES),
            "statistics": STATISTICS_SOURCES,
            "loss": tuple(LOSSES),
            "momentum_seed": MOMENTUM_SEEDS,
        }
        for key, allowed in choices.items():
            value = getattr(self, key)
            if value not in allowed:
                raise ConfigError(f"{key}={value!r} is not one of {', '.join(allowed)}")
        for key in ("epochs", "batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {key}={getattr(self, key)!r}")
        for key in ("lr", "weight_decay", "l2"):
            value = getattr(self, key)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{key} must be a finite number >= 0, got {key}={value!r}")
        if self.lr == 0:
            raise ConfigError(
                "lr must be > 0 (the initial learning rate; LipschitzLR keeps group ratios to it), got lr=0.0"
            )
        for key in ("train_subset", "test_subset"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ConfigError(f"{key} must be >= 1 (leave it out for the whole split), got {key}={value!r}")
        if self.schedule == "lipschitz" and self.optimizer not in CORE_OPTIMIZERS:
            raise ConfigError(
                f"schedule 'lipschitz' has variants for {', '.join(CORE_OPTIMIZERS)}, got optimizer={self.optimizer!r}"
            )
        if missing_package(self.optimizer):
            raise ConfigError(
                f"optimizer={self.optimizer!r} needs the package {missing_package(self.optimizer)!r}; install it "
                "(pip install 'lipschitz-lr[baselines]')"
            )
        if self.keras_decay and self.schedule not in ("lipschitz", "constant"):
            raise ConfigError(
                f"keras_decay applies to schedule 'lipschitz' or 'constant', got schedule={self.schedule!r}"
            )
        if self.initial_lr is not None and not (math.isfinite(self.initial_lr) and self.initial_lr > 0):
            raise ConfigError(f"initial_lr must be finite and > 0, got initial_lr={self.initial_lr!r}")
        SCHEDULES[self.schedule].check_args(self.schedule_args)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> ExperimentConfig:
        return from_dict({**self.to_dict(), **changes})


def _check_type(key: str, value: Any, annotation: Any) -> Any:
    """Check (and lightly coerce: int -> float) a TOML value against a field's annotation."""
    hint = annotation
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        hint = next(option for option in options if option is not type(None))
        origin = typing.get_origin(hint)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a table, got {type(value).__name__} {value!r}")
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and (not isinstance(value, hint) or (hint is int and isinstance(value, bool))):
        raise ConfigError(f"{key} must be {hint.__name__}, got {type(value).__name__} {value!r}")
    return value


def from_dict(raw: dict[str, Any]) -> ExperimentConfig:
    hints = typing.get_type_hints(ExperimentConfig)
    unknown = sorted(set(raw) - set(hints))
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(unknown)}; known keys: {', '.join(hints)}")
    missing = [f.name for f in dataclasses.fields(ExperimentConfig) if f.name not in raw and _required(f)]
    if missing:
        raise ConfigError(f"missing required config key(s): {', '.join(missing)}")
    values = {key: _check_type(key, value, hints[key]) for key, value in raw.items()}
    return ExperimentConfig(**values)


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def load_config(path_or_name: str | Path) -> ExperimentConfig:
    """Load a TOML config by path, or by name from ``experiments/configs`` (``mnist_sgd``)."""
    path = Path(path_or_name)
    if not path.exists():
        candidate = CONFIG_DIR / f"{path_or_name}.toml"
        if not candidate.exists():
            raise ConfigError(f"no config file {str(path)!r} and no bundled config named {str(path_or_name)!r}")
        path = candidate
    with path.open("rb") as f:
        try:
            raw = tomllib.load(f)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path}: not valid TOML: {error}") from error
    raw.setdefault("name", path.stem)
    return from_dict(raw)


def bundled_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))
