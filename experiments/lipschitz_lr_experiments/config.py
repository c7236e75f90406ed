"""Experiment configuration: one TOML file per run, validated before any training starts."""

from __future__ import annotations

import dataclasses
import math
import re
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

from .data import DATASETS
from .errors import ConfigError
from .losses import LOSSES
from .models import MODELS
from .optimizers import OPTIMIZERS, check_installed
from .schedules import LIPSCHITZ_ARGS, SCHEDULES

__all__ = ["CLEAN_SUFFIX", "ConfigError", "ExperimentConfig", "bundled_configs", "from_dict", "load_config"]

CONFIG_DIR = Path(__file__).parent / "configs"
#: A bundled name with this suffix is the clean variant of the faithful config it extends
#: (``c10_resnet20_sgd_clean``: ``c10_resnet20_sgd`` without the hidden Keras decay); see :func:`clean_variant`.
CLEAN_SUFFIX = "_clean"
#: Config keys that were renamed: old -> new (an old key is refused with a message naming the new one).
RENAMED_KEYS = {
    "l2": "kernel_l2",
}
#: The paper's lambda and the authors' Keras decay, top-level keys until 2026-12 (``weight_decay`` before that was
#: ``paper_lambda``): now ``schedule_args`` of the schedules that use them (:func:`relocated_decay`).
DECAY_KEYS = ("paper_lambda", "keras_decay", "weight_decay")
#: LipschitzLR's options, top-level keys until 2026-12: now ``schedule_args`` of ``schedule = "lipschitz"``.
MOVED_TO_SCHEDULE_ARGS = tuple(LIPSCHITZ_ARGS)


def relocated_decay(raw: dict[str, Any]) -> dict[str, Any]:
    """The ``schedule_args`` that the top-level ``paper_lambda`` and ``keras_decay`` (``weight_decay`` before
    ``paper_lambda``) of a config of before 2026-12 come to: for ``lipschitz`` the options ``weight_decay`` (the
    lambda in the bound) and ``keras_decay``; for ``constant`` the decay ``lr / (1 + decay t)`` the lambda gave
    with ``keras_decay``; nothing for another schedule (they applied to none)."""
    lam = raw.get("paper_lambda", raw.get("weight_decay", 0.0))
    keras = bool(raw.get("keras_decay", False))
    if raw.get("schedule") == "lipschitz":
        return {**({"weight_decay": lam} if lam else {}), **({"keras_decay": True} if keras else {})}
    if raw.get("schedule") == "constant" and keras and lam:
        return {"decay": lam}
    return {}


def upgraded(raw: dict[str, Any]) -> dict[str, Any]:
    """A config dict of before 2026-12 (LipschitzLR's options, the paper's lambda and the Keras decay at the top
    level, as a checkpoint of then holds them) in today's layout: under ``schedule_args`` (for the comparison a
    resume makes)."""
    moved = {key: raw[key] for key in MOVED_TO_SCHEDULE_ARGS if key in raw}
    if not moved and not any(key in raw for key in DECAY_KEYS):
        return raw
    rest = {key: value for key, value in raw.items() if key not in moved and key not in DECAY_KEYS}
    kept = moved if raw.get("schedule") == "lipschitz" else {}  # LipschitzLR's options meant nothing elsewhere
    rest["schedule_args"] = {**kept, **relocated_decay(raw), **raw.get("schedule_args", {})}
    return rest


#: What a config's ``name`` may be: one folder name under ``runs/`` (no separator, no ``..``, not empty).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
#: The largest seed (numpy's and most tools' range; torch's generators take it with room for the per-rank offset).
MAX_SEED = 2**32 - 1


@dataclass
class ExperimentConfig:
    """Everything one run needs. Keys of the TOML file are these field names.

    The paper's lambda lives with the schedules that use it: LipschitzLR's ``schedule_args.weight_decay`` (the L2
    term inside its bound) and ``schedule_args.keras_decay`` (the authors' Keras optimizers' per-iteration
    ``lr / (1 + lambda t)``), and the fixed rate's ``schedule_args.decay`` (the same hidden decay of the paper's
    baselines); it does not regularise the model. ``kernel_l2`` is the model's real regularisation (Keras
    ``l2(c)`` on conv kernels: gradient ``2 c w``, torch ``weight_decay = 2c``).

    ``loss`` is ``keras_cross_entropy`` (the authors' Keras loss, probabilities clipped to
    ``[1e-7, 1 - 1e-7]``; the reference) or ``cross_entropy`` (torch's, the clean choice).

    ``schedule_args`` are the schedule's own options, LipschitzLR's included
    (:data:`~lipschitz_lr_experiments.schedules.LIPSCHITZ_ARGS`: every option of ``lipschitz_lr.Options`` but
    those the harness wires, the paper's settings as defaults (``rule = "paper"``, no safeguards,
    ``batchnorm = "running"``), and ``update_every``), each checked by the option's own check. Before 2026-12
    they were top-level keys; such a key is refused, naming its new place.

    ``bn_recalibration`` is how the test set is evaluated: ``N`` recalibrates BatchNorm's running statistics over
    ``N`` training batches at the evaluated weights before every evaluation (the history's ``test_acc``; the
    accuracy with the statistics as training left them is ``test_acc_as_trained`` beside it, and training goes on
    with those); 0 never does (the paper's evaluation); unset (the default) does it over 50 batches only for the
    optimisers that evaluate other weights than they train (Schedule-Free, DoG's average).

    ``weight_average = decay`` evaluates an exponential moving average of the weights (updated every optimizer
    step; :mod:`lipschitz_lr_experiments.averaging`) instead of the weights themselves, its BatchNorm statistics
    recomputed each time over ``bn_recalibration`` batches (50 unless it says). Beyond the paper.
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
    kernel_l2: float = 0.0
    augment: bool = True
    keras_faithful: bool = True
    loss: str = "keras_cross_entropy"
    seed: int = 0
    train_subset: int | None = None
    test_subset: int | None = None
    bn_recalibration: int | None = None
    weight_average: float | None = None
    description: str = ""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        choices = {
            "dataset": DATASETS,
            "model": tuple(MODELS),
            "optimizer": tuple(OPTIMIZERS),
            "schedule": tuple(SCHEDULES),
            "loss": tuple(LOSSES),
        }
        for key, allowed in choices.items():
            value = getattr(self, key)
            if value not in allowed:
                raise ConfigError(f"{key}={value!r} is not one of {', '.join(allowed)}")
        if not _NAME.fullmatch(self.name):
            raise ConfigError(
                "name must be usable as one folder name (letters, digits, '.', '_', '+', '-', starting with a letter "
                f"or digit): a run is written to runs/<name>, got name={self.name!r}"
            )
        if not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(f"seed must be an integer in [0, 2**32 - 1], got seed={self.seed!r}")
        for key in ("epochs", "batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {key}={getattr(self, key)!r}")
        for key in ("lr", "kernel_l2"):
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
        if self.weight_average is not None and not 0.0 < self.weight_average < 1.0:
            raise ConfigError(
                "weight_average is the decay of the weights' moving average per optimizer step, in (0, 1) (0.995: "
                f"about 200 steps), or left out; got weight_average={self.weight_average!r}"
            )
        if self.bn_recalibration is not None and self.bn_recalibration < 0:
            raise ConfigError(
                "bn_recalibration must be a number of batches >= 0 (0: never, the paper's evaluation; leave it out "
                f"for the optimiser's default), got bn_recalibration={self.bn_recalibration!r}"
            )
        if self.schedule == "lipschitz" and OPTIMIZERS[self.optimizer].variant is None:
            with_variants = OPTIMIZERS.names(lambda spec: spec.variant is not None)
            raise ConfigError(
                f"schedule 'lipschitz' has variants for {', '.join(with_variants)}, got optimizer={self.optimizer!r}"
            )
        check_installed(self.optimizer)
        SCHEDULES[self.schedule].check_args(self.schedule_args)

    def schedule_options(self) -> dict[str, Any]:
        """The schedule's arguments with its defaults filled in (LipschitzLR's ``initial_lr``, ...)."""
        return SCHEDULES[self.schedule].resolve(self.schedule_args)

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
    renamed = [f"{old!r} is now {new!r}" for old, new in RENAMED_KEYS.items() if old in raw]
    if renamed:
        raise ConfigError(
            f"renamed config key(s): {'; '.join(renamed)} (kernel_l2: the model's L2 regularisation of its conv "
            "kernels); rename them in the config"
        )
    decay = [key for key in DECAY_KEYS if key in raw]
    if decay:
        table = ", ".join(f"{key} = {value!r}".replace("True", "true") for key, value in relocated_decay(raw).items())
        raise ConfigError(
            f"{', '.join(decay)}: the paper's lambda and the Keras decay are schedule_args of the schedules that use "
            f"them now (lipschitz: weight_decay, keras_decay; constant: decay); for schedule "
            f"{raw.get('schedule')!r} write schedule_args = {{{table}}}"
        )
    moved = [key for key in MOVED_TO_SCHEDULE_ARGS if key in raw]
    if moved:
        table = ", ".join(f"{key} = {raw[key]!r}" for key in moved)
        raise ConfigError(
            f"{', '.join(moved)}: LipschitzLR's options are schedule_args now (like every schedule's); move them "
            f"there: schedule_args = {{{table}}}"
        )
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


def clean_variant(config: ExperimentConfig) -> ExperimentConfig:
    """The clean variant of a faithful LipschitzLR config: the same run without the authors' hidden
    per-iteration Keras decay (docs/fidelity.md, "Reference mode and clean mode"), named ``<name>_clean``."""
    if not _has_clean_variant(config):
        raise ConfigError(
            f"{config.name!r} has no clean variant: only LipschitzLR configs with schedule_args.keras_decay = true "
            "have one"
        )
    return config.replace(
        name=config.name + CLEAN_SUFFIX,
        schedule_args={**config.schedule_args, "keras_decay": False},
        description=f"{config.dataset} {config.model} {config.optimizer} LipschitzLR, clean: no hidden Keras decay",
    )


def load_config(path_or_name: str | Path) -> ExperimentConfig:
    """Load a TOML config by path, or by name from the bundled ``configs/`` (``mnist_sgd``); a bundled name
    ending in ``_clean`` is the :func:`clean_variant` of the config it names without the suffix."""
    path = Path(path_or_name)
    if not path.exists():
        name = str(path_or_name)
        path = CONFIG_DIR / f"{name}.toml"
        faithful = name.removesuffix(CLEAN_SUFFIX)
        if not path.exists() and faithful != name and (CONFIG_DIR / f"{faithful}.toml").exists():
            return clean_variant(load_config(faithful))
        if not path.exists():
            raise ConfigError(f"no config file {name!r} and no bundled config named {name!r}")
    with path.open("rb") as f:
        try:
            raw = tomllib.load(f)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path}: not valid TOML: {error}") from error
        except UnicodeDecodeError as error:
            raise ConfigError(f"{path}: not UTF-8 text (TOML files are UTF-8): {error}") from error
    raw.setdefault("name", path.stem)
    return from_dict(raw)


def bundled_configs() -> list[str]:
    """The names of the bundled configs and of their clean variants."""
    names = [p.stem for p in CONFIG_DIR.glob("*.toml")]
    clean = [name + CLEAN_SUFFIX for name in names if _has_clean_variant(load_config(name))]
    return sorted(names + clean)


def _has_clean_variant(config: ExperimentConfig) -> bool:
    return config.schedule == "lipschitz" and bool(config.schedule_args.get("keras_decay", False))
