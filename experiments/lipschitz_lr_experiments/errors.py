"""The harness's errors that the command line reports in one line: a configuration that cannot run (bad key,
value or name) and a run directory that cannot be used as asked. No torch here: the command line imports it
before anything heavy."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration that cannot run; the message names the offending key or value."""


class RunDirError(RuntimeError):
    """A run directory that cannot be used as asked; the message names it and says what to do."""
