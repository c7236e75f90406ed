"""The weights' moving average (``weight_average``, lipschitz_lr_experiments/averaging.py): evaluated in place of
the weights with its own BatchNorm statistics, training untouched, carried through a resume; and Schedule-Free SGD
driven by LipschitzLR (the issue-31 candidates)."""

import json
import math

import pytest

from lipschitz_lr_experiments.config import ConfigError, load_config
from lipschitz_lr_experiments.train import RunOptions, Trainer, run_experiment

TINY = {"epochs": 2, "train_subset": 256, "test_subset": 200, "batch_size": 64}


def options(out, data_dir, resume=False):
    return RunOptions(out_dir=out, data_dir=data_dir, progress=False, tensorboard=False, resume=resume)


def test_the_average_is_evaluated_and_training_is_untouched(tmp_path, data_dir):
    config = load_config("mnist_sgd").replace(**TINY)
    plain = run_experiment(config, options(tmp_path / "plain", data_dir))
    averaged = run_experiment(config.replace(weight_average=0.9), options(tmp_path / "avg", data_dir))
    for key in ("lr", "k_z", "train_loss", "test_acc_as_trained"):
        assert [row[key] for row in averaged] == [row[key] for row in plain], key
    assert [row["test_acc"] for row in averaged] != [row["test_acc"] for row in plain]
    summary = json.loads((tmp_path / "avg" / "summary.json").read_text())
    assert summary["weight_average"] == 0.9 and summary["bn_recalibration"] == 50


def test_the_average_resumes_exactly(tmp_path, data_dir):
    config = load_config("mnist_sgd").replace(**TINY, weight_average=0.9)
    whole = run_experiment(config, options(tmp_path / "whole", data_dir))
    run_experiment(config.replace(epochs=1), options(tmp_path / "split", data_dir))
    split = run_experiment(config, options(tmp_path / "split", data_dir, resume=True))
    for key in ("lr", "train_loss", "test_acc", "test_loss"):
        assert [row[key] for row in split] == [row[key] for row in whole], key


def test_weight_average_is_a_decay_in_0_1():
    with pytest.raises(ConfigError, match="weight_average is the decay .* got weight_average=1.5"):
        load_config("mnist_sgd").replace(weight_average=1.5)


def test_schedule_free_sgd_takes_lipschitzlr_rates(tmp_path, data_dir):
    config = load_config("mnist_schedulefree_sgd").replace(**TINY, schedule="lipschitz", schedule_args={})
    trainer = Trainer(config, options(tmp_path, data_dir))
    history = trainer.run()
    rates = [record.lr for record in trainer.schedule.adaptive.history]
    assert [row["lr"] for row in history] == rates[:2] and all(math.isfinite(r) and r > 0 for r in rates)
    assert trainer.optimizer.param_groups[0]["lr"] == rates[-1]  # the rate LipschitzLR wrote
