import math

from lipschitz_lr_experiments.history import HISTORY_FIELDS, best_epoch


def test_best_epoch_skips_non_finite_accuracies_and_keeps_the_first_best():
    history = [
        {"epoch": 1, "test_acc": 0.5},
        {"epoch": 2, "test_acc": math.nan},
        {"epoch": 3, "test_acc": 0.9},
        {"epoch": 4, "test_acc": 0.9},
        {"epoch": 5, "test_acc": math.inf},
    ]
    assert best_epoch(history)["epoch"] == 3
    assert best_epoch([{"epoch": 1, "test_acc": math.nan}]) is None and best_epoch([]) is None


def test_history_columns():
    assert HISTORY_FIELDS[:2] == ("epoch", "lr") and HISTORY_FIELDS[-1] == "seconds" and "k_z" in HISTORY_FIELDS
