"""Reading run folders written by ``lipschitz_lr_experiments.train`` (``history.json`` + ``summary.json``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from lipschitz_lr_experiments.history import best_epoch

__all__ = [
    "REQUIRED_COLUMNS",
    "HistoryError",
    "best_epoch",
    "find_runs",
    "read_histories",
    "read_history",
    "read_summary",
]

#: The columns every figure and Table 1 read from a history row.
REQUIRED_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc")


class HistoryError(ValueError):
    """A ``history.json`` that cannot be drawn; the message names the file and what is wrong."""


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of ``run_dir/history.json``, checked: a non-empty list of rows with :data:`REQUIRED_COLUMNS`."""
    path = Path(run_dir) / "history.json"
    if not path.exists():
        raise FileNotFoundError(f"no history at {path}")
    try:
        rows = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise HistoryError(f"{path} is not valid JSON ({error})") from error
    if not isinstance(rows, list):
        raise HistoryError(f"{path} holds a {type(rows).__name__}, expected a list of epoch rows")
    if not rows:
        raise HistoryError(f"{path} is empty: no epoch of that run finished")
    for index, row in enumerate(rows):
        missing = [key for key in REQUIRED_COLUMNS if not isinstance(row, dict) or key not in row]
        if missing:
            raise HistoryError(f"{path}: row {index} lacks {', '.join(missing)}")
    return rows


def read_histories(runs: dict[str, Path]) -> dict[str, list[dict[str, Any]]]:
    """Every readable history of ``runs``; each one that is not is named on stderr and skipped."""
    histories = {}
    for name, run_dir in runs.items():
        try:
            histories[name] = read_history(run_dir)
        except HistoryError as error:
            print(f"skip {name}: {error}", file=sys.stderr)
    return histories


def read_summary(run_dir: str | Path) -> dict[str, Any] | None:
    path = Path(run_dir) / "summary.json"
    return json.loads(path.read_text()) if path.exists() else None


def find_runs(root: str | Path) -> dict[str, Path]:
    """Every folder under ``root`` (at any depth) that holds a ``history.json``, by folder name."""
    return {p.parent.name: p.parent for p in sorted(Path(root).rglob("history.json"))}
