"""Reading run folders written by ``lipschitz_lr_experiments.train`` (``history.json`` + ``summary.json``)."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lipschitz_lr_experiments.history import best_epoch

__all__ = [
    "REQUIRED_COLUMNS",
    "HistoryError",
    "Run",
    "best_epoch",
    "find_runs",
    "mean_history",
    "read_history",
    "read_runs",
    "read_summary",
]

#: The columns every figure and Table 1 read from a history row.
REQUIRED_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc")


class HistoryError(ValueError):
    """A ``history.json`` that cannot be drawn; the message names the file and what is wrong."""


#: Columns that must hold a number (NaN and inf allowed: a run may diverge) and, for accuracies, one in [0, 1].
NUMBER_COLUMNS = ("lr", "train_loss", "test_loss")
ACCURACY_COLUMNS = ("train_acc", "test_acc")
#: Columns that may be None (LipschitzLR's statistics, absent for other schedules) or a number.
OPTIONAL_NUMBER_COLUMNS = ("k_z", "max_weight_norm", "k", "seconds")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _bad_value(row: dict[str, Any]) -> str | None:
    """What is wrong with one row's values (None: nothing)."""
    if not isinstance(row["epoch"], int) or isinstance(row["epoch"], bool) or row["epoch"] < 1:
        return f"epoch={row['epoch']!r}, expected an integer >= 1"
    for key in NUMBER_COLUMNS + ACCURACY_COLUMNS:
        if not _is_number(row[key]):
            return f"{key}={row[key]!r}, expected a number"
    for key in ACCURACY_COLUMNS:
        if math.isfinite(row[key]) and not 0 <= row[key] <= 1:
            return f"{key}={row[key]!r}, expected an accuracy in [0, 1]"
    for key in OPTIONAL_NUMBER_COLUMNS:
        if row.get(key) is not None and not _is_number(row[key]):
            return f"{key}={row[key]!r}, expected a number or null"
    return None


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of ``run_dir/history.json``, checked: a non-empty list of rows with :data:`REQUIRED_COLUMNS`,
    each holding numbers where numbers belong (:class:`HistoryError` names the file, row and value)."""
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
        bad = _bad_value(row)
        if bad:
            raise HistoryError(f"{path}: row {index} has {bad}")
    return rows


def _read_json_dict(path: Path) -> dict[str, Any] | None:
    """``path`` as a JSON object, or None when it is missing, unreadable or not an object (said on stderr)."""
    if not path.exists():
        return None
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        print(f"ignore {path}: not valid JSON ({error})", file=sys.stderr)
        return None
    if not isinstance(value, dict):
        print(f"ignore {path}: it holds a {type(value).__name__}, expected an object", file=sys.stderr)
        return None
    return value


def read_summary(run_dir: str | Path) -> dict[str, Any] | None:
    """``run_dir/summary.json`` (device, command, ...), or None when there is none or it cannot be read
    (said on stderr: the run is still drawn, its device and command read "unknown")."""
    return _read_json_dict(Path(run_dir) / "summary.json")


@dataclass(frozen=True)
class Run:
    """One run folder: its config ``name`` and ``seed`` (see :func:`read_runs`), its ``history`` and ``summary``."""

    path: Path
    name: str
    seed: int | None
    history: list[dict[str, Any]]
    summary: dict[str, Any] | None


def find_runs(root: str | Path) -> list[Path]:
    """Every folder under ``root`` (at any depth) that holds a ``history.json``."""
    return [p.parent for p in sorted(Path(root).rglob("history.json"))]


def _identity(run_dir: Path, summary: dict[str, Any] | None) -> tuple[str, int | None]:
    """The run's config name and seed: from ``config.json``, else the config in ``summary.json``, else the
    folder's name and no seed."""
    config = _read_json_dict(run_dir / "config.json")
    if config is None and summary is not None and isinstance(summary.get("config"), dict):
        config = summary["config"]
    name, seed = (config or {}).get("name"), (config or {}).get("seed")
    return (
        name if isinstance(name, str) and name else run_dir.name,
        seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
    )


def read_runs(root: str | Path) -> dict[str, list[Run]]:
    """Every readable run under ``root``, by config name, each name's runs sorted by seed.

    A run's name and seed are its config's: ``config.json``, else the config in ``summary.json``, else the
    folder's name and no seed.

    A run that cannot be read is named on stderr and skipped. Two runs of one name and seed (a rerun
    beside the first, say) are one result twice: the one with more epochs is kept (the later folder on
    a tie) and the other is named on stderr, never silently replaced.
    """
    kept: dict[tuple[str, int | None], Run] = {}
    for run_dir in find_runs(root):
        try:
            history = read_history(run_dir)
        except HistoryError as error:
            print(f"skip {run_dir.name}: {error}", file=sys.stderr)
            continue
        summary = read_summary(run_dir)
        name, seed = _identity(run_dir, summary)
        run = Run(run_dir, name, seed, history, summary)
        other = kept.get((name, seed))
        if other is not None:
            use, drop = (run, other) if len(run.history) >= len(other.history) else (other, run)
            print(
                f"skip {drop.path}: another run of {name} (seed {seed}) is used, {use.path} "
                f"({len(use.history)} epochs against {len(drop.history)})",
                file=sys.stderr,
            )
            run = use
        kept[(name, seed)] = run
    runs: dict[str, list[Run]] = {}
    for (name, _), run in sorted(kept.items(), key=lambda item: (item[0][0], item[0][1] is None, item[0][1] or 0)):
        runs.setdefault(name, []).append(run)
    return runs


def mean_history(histories: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One history averaged over seeds: for each epoch, the mean of each number over the runs that reached it
    (a single run is returned as it is).

    Example:
        >>> rows = mean_history([[{"epoch": 1, "lr": 1.0}], [{"epoch": 1, "lr": 3.0}, {"epoch": 2, "lr": 2.0}]])
        >>> [(r["epoch"], r["lr"]) for r in rows]
        [(1, 2.0), (2, 2.0)]
    """
    if len(histories) == 1:
        return histories[0]
    rows = []
    for epoch in range(1, max(len(h) for h in histories) + 1):
        reached = [h[epoch - 1] for h in histories if len(h) >= epoch]
        row: dict[str, Any] = {"epoch": epoch}
        for key in reached[0]:
            values = [r.get(key) for r in reached]
            if key != "epoch":
                row[key] = sum(values) / len(values) if all(_is_number(v) for v in values) else None
        rows.append(row)
    return rows
