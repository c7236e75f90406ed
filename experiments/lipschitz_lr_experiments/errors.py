"""The harness's error for a configuration that cannot run (bad key, value or name)."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration that cannot run; the message names the offending key or value."""
