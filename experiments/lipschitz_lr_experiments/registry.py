"""One registry per extension point: names -> entries, with errors that list the known names.

The harness has five: :data:`lipschitz_lr_experiments.models.MODELS`, :data:`lipschitz_lr_experiments.data.DATASETS`,
:data:`lipschitz_lr_experiments.losses.LOSSES`, :data:`lipschitz_lr_experiments.optimizers.OPTIMIZERS` and
:data:`lipschitz_lr_experiments.schedules.SCHEDULES` (the library has its own two: loss bounds and variants).
A config names an entry of each; CONTRIBUTING.md, "Extending", says where each lives and which test to touch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(dict[str, T], Generic[T]):
    """A ``dict`` of named entries of one kind (``"model"``, ``"dataset"``, ...).

    Example:
        >>> colours = Registry("colour", {"red": 1})
        >>> @colours.register("blue")
        ... def blue():
        ...     return 2
        >>> colours.lookup("blue")()
        2
        >>> colours.lookup("green")
        Traceback (most recent call last):
        ...
        lipschitz_lr_experiments.errors.ConfigError: unknown colour 'green'; expected one of red, blue
    """

    def __init__(self, kind: str, entries: dict[str, T] | None = None) -> None:
        super().__init__(entries or {})
        self.kind = kind

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: add an entry under ``name`` (a name already taken is an error)."""

        def add(entry: T) -> T:
            if name in self:
                raise ValueError(f"{self.kind} {name!r} is registered already")
            self[name] = entry
            return entry

        return add

    def lookup(self, name: str) -> T:
        """The entry named ``name``, or a :class:`ConfigError` that lists the known names."""
        if name not in self:
            raise ConfigError(f"unknown {self.kind} {name!r}; expected one of {', '.join(self)}")
        return self[name]

    def names(self, where: Callable[[T], bool] | None = None) -> tuple[str, ...]:
        """The registered names (those whose entry satisfies ``where``, if given)."""
        return tuple(name for name, entry in self.items() if where is None or where(entry))
