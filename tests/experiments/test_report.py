"""lipschitz_lr_experiments.report: the progress bar, the epoch's log line and scalars, and summary.json."""

import json
import logging

import pytest
import torch

from lipschitz_lr_experiments.config import load_config
from lipschitz_lr_experiments.distributed import DistContext
from lipschitz_lr_experiments.report import log_epoch, progress_bar, summary
from lipschitz_lr_experiments.train import RunOptions, run_experiment
from tests.experiments.test_train import tiny_config


def test_tensorboard_gets_every_epochs_scalars(tmp_path, data_dir):
    pytest.importorskip("tensorboard", reason="tensorboard is in the dev extra only")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = load_config(tiny_config(tmp_path, epochs=2, train_subset=256))
    history = run_experiment(config, RunOptions(out_dir=tmp_path / "run", data_dir=data_dir, progress=False))
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == {"lr", "k", "train_loss", "train_acc", "test_loss", "test_acc"}
    for key in ("lr", "k", "test_acc"):
        scalars = events.Scalars(key)
        assert [s.step for s in scalars] == [1, 2]
        assert [s.value for s in scalars] == pytest.approx([row[key] for row in history], rel=1e-6)


def test_the_log_line_and_scalars_skip_what_a_schedule_does_not_have(caplog):
    written = []

    class Writer:
        def add_scalar(self, key, value, step):
            written.append((key, value, step))

    row = {"epoch": 2, "lr": 0.5, "k": None, "train_loss": 0.25, "train_acc": 0.9, "test_loss": 0.3, "test_acc": 0.875,
           "seconds": 1.5}  # fmt: skip
    with caplog.at_level(logging.INFO, logger="lipschitz_lr_experiments.report"):
        log_epoch("run", 3, row, Writer())
    assert "run epoch 2/3: lr=0.5 loss=0.2500 acc=0.9000 test_loss=0.3000 test_acc=0.8750 (1.5s)" in caplog.text
    assert [key for key, _, _ in written] == ["lr", "train_loss", "train_acc", "test_loss", "test_acc"]
    assert all(step == 2 for _, _, step in written)


def test_a_bar_that_is_off_gives_no_progress_callback_and_the_summary_names_the_protocol(tmp_path):
    with progress_bar(10, "run", False, dict) as progress:
        assert progress is None
    config = load_config(tiny_config(tmp_path, epochs=1))
    history = [{"epoch": 1, "test_acc": 0.5, "seconds": 2.0}, {"epoch": 2, "test_acc": 0.75, "seconds": 3.0}]
    options = RunOptions(out_dir=tmp_path, command="c")
    written = summary(config, options, history, torch.device("cpu"), DistContext(), 50)
    assert (written["best_test_acc"], written["best_epoch"], written["final_test_acc"]) == (0.75, 2, 0.75)
    assert written["bn_recalibration"] == 50 and written["seconds"] == 5.0 and written["command"] == "c"
    assert json.loads(json.dumps(written))["epochs"] == 2
