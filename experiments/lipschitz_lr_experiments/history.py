"""A run's history: one row per epoch, the columns every run writes, and its best epoch.

The trainer appends a row per epoch (:data:`HISTORY_FIELDS`) and :mod:`lipschitz_lr_experiments.run_dir`
writes them to ``history.json`` and ``history.csv``; the figures and tables read them back.
"""

from __future__ import annotations

import math
from typing import Any

#: The columns of a history row, in the CSV's order. ``lr`` is the rate the epoch started with;
#: ``k_z``, ``max_weight_norm`` and ``k`` are LipschitzLR's statistics (None for other schedules). ``test_*`` is
#: the config's evaluation (``bn_recalibration``), ``test_*_as_trained`` the one with BatchNorm's running
#: statistics as training left them (the paper's; the same values where nothing was recalibrated).
HISTORY_FIELDS = (
    "epoch",
    "lr",
    "k_z",
    "max_weight_norm",
    "k",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "test_loss_as_trained",
    "test_acc_as_trained",
    "seconds",
)


def best_epoch(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The row of the epoch with the best finite test accuracy (None when every epoch's is NaN or inf).

    Example:
        >>> best_epoch([{"epoch": 1, "test_acc": 0.5}, {"epoch": 2, "test_acc": float("nan")}])["epoch"]
        1
    """
    finite = [r for r in history if isinstance(r["test_acc"], (int, float)) and math.isfinite(r["test_acc"])]
    return max(finite, key=lambda r: r["test_acc"]) if finite else None
