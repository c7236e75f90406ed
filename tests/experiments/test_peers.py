"""The learning-rate-free peers of the head-to-head (issue 22) through the harness: each shipped config
trains a tiny epoch, DoG evaluates its averaged weights, MoMo receives the loss, Schedule-Free and DoG
resume exactly, BatchNorm is recalibrated at the evaluated weights (averaged ones by default; every
optimiser's with ``bn_recalibration``) without changing training, and LipschitzLR updates every N steps."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from lipschitz_lr_experiments.config import load_config
from lipschitz_lr_experiments.data import TensorBatches
from lipschitz_lr_experiments.errors import ConfigError
from lipschitz_lr_experiments.loop import kept_batchnorm_statistics, recalibrate_batchnorm
from lipschitz_lr_experiments.optimizers import OPTIMIZERS, no_rate, switch
from lipschitz_lr_experiments.train import RunOptions, Trainer, run_experiment

#: Every learning-rate-free peer of the registry (its label names it in the head-to-head): adding one adds its tests.
PEERS = OPTIMIZERS.names(lambda spec: spec.label is not None)
TINY = {"epochs": 1, "train_subset": 256, "test_subset": 200, "batch_size": 64}


@pytest.mark.parametrize("name", PEERS)
def test_each_peer_config_trains_a_tiny_epoch_and_records_its_rate(tmp_path, data_dir, name):
    config = load_config(f"mnist_{name}").replace(**TINY)
    assert config.optimizer == name and config.schedule == "constant"
    history = run_experiment(config, RunOptions(out_dir=tmp_path, data_dir=data_dir, progress=False))
    assert len(history) == 1 and math.isfinite(history[0]["train_loss"]) and 0 <= history[0]["test_acc"] <= 1
    if OPTIMIZERS[name].rate is no_rate:  # COCOB bets per coordinate: no single rate
        assert math.isnan(history[0]["lr"])
    else:
        assert math.isfinite(history[0]["lr"]) and history[0]["lr"] > 0
    if name in ("dadapt_sgd", "prodigy"):  # the rate is d * lr, which D-Adaptation grows from d0 = 1e-6
        assert history[0]["lr"] != config.lr


def test_momo_gets_the_batch_loss(tmp_path, data_dir):
    assert OPTIMIZERS["momo"].takes_loss and not OPTIMIZERS["sgd"].takes_loss
    trainer = Trainer(
        load_config("mnist_momo").replace(**TINY),
        RunOptions(out_dir=tmp_path, data_dir=data_dir, progress=False, tensorboard=False),
    )
    trainer.run()  # Momo.step() asserts that a loss or a closure is given
    assert len(trainer.optimizer.step_sizes) == len(trainer.train_loader) and min(trainer.optimizer.step_sizes) >= 0


@pytest.mark.parametrize("name", ["schedulefree_sgd", "dog"])
def test_an_averaging_peer_resumed_ends_as_the_uninterrupted_run(tmp_path, data_dir, name):
    config = load_config(f"mnist_{name}").replace(**{**TINY, "epochs": 2, "train_subset": 128})

    def options(out, resume=False):
        return RunOptions(out_dir=out, data_dir=data_dir, progress=False, tensorboard=False, resume=resume)

    whole = run_experiment(config, options(tmp_path / "whole"))
    run_experiment(config.replace(epochs=1), options(tmp_path / "split"))
    split = run_experiment(config, options(tmp_path / "split", resume=True))
    for key in ("train_loss", "test_loss", "test_acc", "lr"):
        assert [row[key] for row in split] == [row[key] for row in whole], key


def test_batchnorm_is_recalibrated_to_the_plain_average_of_the_batches_with_dropout_off():
    torch.manual_seed(0)
    images, labels = torch.randn(64, 3) * 5 + 2, torch.zeros(64, dtype=torch.long)
    batches = TensorBatches(images, labels, 16)
    with_bn = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.BatchNorm1d(4, momentum=0.01)).eval()
    with_bn[1].train()  # a module's own mode is given back
    with torch.no_grad():
        seen = with_bn[0](images[:32])  # the first two batches, as the network evaluates them (no dropout)
    state = torch.get_rng_state()
    assert recalibrate_batchnorm(with_bn, batches, limit=2)
    assert torch.equal(torch.get_rng_state(), state)  # no dropout mask drawn
    bn = with_bn[2]
    assert torch.allclose(bn.running_mean, seen.mean(0), atol=1e-5)  # reset, then the plain average of the two
    assert torch.allclose(bn.running_var, (seen[:16].var(0) + seen[16:].var(0)) / 2, atol=1e-4)
    assert int(bn.num_batches_tracked) == 2 and bn.momentum == 0.01
    assert not with_bn.training and with_bn[1].training and not bn.training
    assert not recalibrate_batchnorm(nn.Linear(3, 4), batches)


def test_kept_batchnorm_statistics_puts_the_training_statistics_back():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    before = {name: value.clone() for name, value in model.state_dict().items()}
    with kept_batchnorm_statistics(model):
        recalibrate_batchnorm(model, TensorBatches(torch.randn(32, 3) + 3, torch.zeros(32, dtype=torch.long), 8))
        assert not torch.equal(model[1].running_mean, before["1.running_mean"])
    assert all(torch.equal(value, before[name]) for name, value in model.state_dict().items())


def test_the_trainer_recalibrates_batchnorm_where_the_config_or_the_optimiser_says(monkeypatch, tmp_path, data_dir):
    calls = []
    monkeypatch.setattr("lipschitz_lr_experiments.loop.recalibrate_batchnorm", lambda *a, **k: calls.append(a))
    for name, recalibration, expected in (
        ("mnist_schedulefree_sgd", None, 1),  # evaluates its averaged weights: 50 batches by default
        ("mnist_momentum_baseline", None, 0),
        ("mnist_momentum_baseline", 3, 1),
        ("mnist_schedulefree_sgd", 0, 0),
    ):
        config = load_config(name).replace(**TINY, bn_recalibration=recalibration)
        out = tmp_path / f"{name}-{recalibration}"
        run_experiment(config, RunOptions(out_dir=out, data_dir=data_dir, progress=False))
        assert len(calls) == expected, (name, recalibration)
        assert json.loads((out / "summary.json").read_text())["bn_recalibration"] == (
            recalibration if recalibration is not None else 50 * expected
        )
        calls.clear()
    assert switch(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1), "eval") is False


def test_recalibrated_evaluation_leaves_training_as_it_was(tmp_path, data_dir):
    """LipschitzLR's rate reads BatchNorm's running statistics: evaluating at recalibrated ones must not change
    the next epoch's rate, nor anything else the run trains; the paper's accuracy is recorded beside."""
    config = load_config("mnist_sgd").replace(**{**TINY, "epochs": 2})
    plain = run_experiment(config, RunOptions(out_dir=tmp_path / "plain", data_dir=data_dir, progress=False))
    recalibrated = run_experiment(
        config.replace(bn_recalibration=4), RunOptions(out_dir=tmp_path / "recal", data_dir=data_dir, progress=False)
    )
    for key in ("lr", "k_z", "train_loss", "train_acc", "test_acc_as_trained", "test_loss_as_trained"):
        assert [row[key] for row in recalibrated] == [row[key] for row in plain], key
    assert [row["test_acc"] for row in plain] == [row["test_acc_as_trained"] for row in plain]
    assert [row["test_loss"] for row in recalibrated] != [row["test_loss"] for row in plain]


def test_the_no_tuning_preset_warms_up_over_the_first_epoch_and_trains(tmp_path, data_dir):
    config = load_config("mnist_sgd_preset").replace(**TINY)  # mnist_sgd with warmup_epochs = 1 (test_config)
    trainer = Trainer(config, RunOptions(out_dir=tmp_path, data_dir=data_dir, progress=False, tensorboard=False))
    assert trainer.schedule.adaptive.resolved.warmup_steps == len(trainer.train_loader) == 4
    assert trainer.schedule.adaptive.batchnorm == "running"
    target = trainer.schedule.adaptive.history[-1].lr
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(target / 4)  # the first step's rate
    history = trainer.run()
    assert len(history) == 1 and math.isfinite(history[0]["train_loss"]) and history[0]["lr"] > 0


def test_lipschitz_updates_every_n_steps_from_the_hook(tmp_path, data_dir):
    config = load_config("mnist_sgd_hook_steps").replace(
        **{**TINY, "epochs": 2}, schedule_args={"statistics": "hook", "update_every": 2}
    )
    trainer = Trainer(config, RunOptions(out_dir=tmp_path, data_dir=data_dir, progress=False, tensorboard=False))
    trainer.run()
    assert len(trainer.train_loader) == 4
    assert len(trainer.schedule.adaptive.history) == 1 + 2 * 4 // 2  # epoch 0 from the pass, then every 2 steps
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["schedule_args"]["update_every"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"statistics": "hook", "update_every": 0}, "update_every must be an integer >= 1"),
        ({"update_every": 5}, "needs statistics='hook', got statistics='reference'"),
        ({"warmup_epochs": -1}, "requires an integer warmup_epochs >= 0, got warmup_epochs=-1"),
        ({"mse_sign": "times"}, "schedule_args: unknown mse_sign 'times'"),  # every option of Options is one
        ({"num_classes": 3}, "unknown schedule_args key"),  # the harness sets it from the dataset
    ],
)
def test_lipschitz_schedule_args_are_checked(args, message):
    with pytest.raises(ConfigError, match=message):
        load_config("mnist_sgd").replace(schedule_args=args)
    with pytest.raises(ConfigError, match="unknown schedule_args key"):  # LipschitzLR's, not the fixed rate's
        load_config("mnist_momentum_baseline").replace(schedule_args={"warmup_epochs": 1})
