"""Reading run folders written by ``experiments.train`` (``history.json`` + ``summary.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "history.json"
    if not path.exists():
        raise FileNotFoundError(f"no history at {path}")
    return json.loads(path.read_text())


def read_summary(run_dir: str | Path) -> dict[str, Any] | None:
    path = Path(run_dir) / "summary.json"
    return json.loads(path.read_text()) if path.exists() else None


def find_runs(root: str | Path) -> dict[str, Path]:
    """Every folder under ``root`` (at any depth) that holds a ``history.json``, by folder name."""
    return {p.parent.name: p.parent for p in sorted(Path(root).rglob("history.json"))}
