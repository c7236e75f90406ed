"""The learning-rate-free peers of the head-to-head (issue 22) through the harness: each shipped config
trains a tiny epoch, DoG evaluates its averaged weights, MoMo receives the loss, Schedule-Free and DoG
resume exactly, BatchNorm is recalibrated at averaged weights, and LipschitzLR updates every N steps."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from lipschitz_lr_experiments.config import load_config
from lipschitz_lr_experiments.data import TensorBatches
from lipschitz_lr_experiments.errors import ConfigError
from lipschitz_lr_experiments.loop import recalibrate_batchnorm
from lipschitz_lr_experiments.optimizers import OPTIMIZERS, build_optimizer, switch
from lipschitz_lr_experiments.train import RunOptions, Trainer, run_experiment

PEERS = ("dadapt_sgd", "dadapt_adam", "prodigy", "schedulefree_sgd", "schedulefree_adamw", "dog", "momo", "cocob")
TINY = {"epochs": 1, "train_subset": 256, "test_subset": 200, "batch_size": 64}


@pytest.mark.parametrize("name", PEERS)
def test_each_peer_config_trains_a_tiny_epoch_and_records_its_rate(tmp_path, data_dir, name):
    config = load_config(f"mnist_{name}").replace(**TINY)
    assert config.optimizer == name and config.schedule == "constant"
    history = run_experiment(config, RunOptions(out_dir=tmp_path, data_dir=data_dir, progress=False))
    assert len(history) == 1 and math.isfinite(history[0]["train_loss"]) and 0 <= history[0]["test_acc"] <= 1
    if name == "cocob":  # bets per coordinate: no single rate
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


def test_averaged_dog_evaluates_the_average_and_trains_the_iterate():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    optimizer = build_optimizer("dog", model, 1.0)
    start = [p.detach().clone() for p in model.parameters()]
    for _ in range(30):  # DoG's first steps are tiny (r_eps = 1e-6 (1 + |x0|)): let it grow
        optimizer.zero_grad()
        model(torch.randn(16, 4)).square().mean().backward()
        optimizer.step()
    trained = [p.detach().clone() for p in model.parameters()]
    assert optimizer.averager.t == 31
    optimizer.eval()
    averaged = [p.detach().clone() for p in model.parameters()]
    assert all(not torch.equal(a, t) for a, t in zip(averaged, trained, strict=True))
    assert all(not torch.equal(a, s) for a, s in zip(averaged, start, strict=True))
    with pytest.raises(RuntimeError, match="call train"):
        optimizer.state_dict()
    with pytest.raises(RuntimeError, match="eval mode"):
        optimizer.step()
    optimizer.eval()  # twice: still the training weights kept aside, not the average
    optimizer.train()
    assert all(torch.equal(p, t) for p, t in zip(model.parameters(), trained, strict=True))
    state = optimizer.state_dict()
    fresh = build_optimizer("dog", model, 1.0)
    fresh.load_state_dict(state)
    assert fresh.averager.t == 31
    with pytest.raises(ValueError, match="no 'averager' entry"):
        fresh.load_state_dict({k: v for k, v in state.items() if k != "averager"})


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


def test_batchnorm_is_recalibrated_only_where_there_is_batchnorm():
    torch.manual_seed(0)
    images, labels = torch.randn(64, 3) * 5 + 2, torch.zeros(64, dtype=torch.long)
    batches = TensorBatches(images, labels, 16)
    with_bn = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).eval()
    before = with_bn[1].running_mean.clone()
    assert recalibrate_batchnorm(with_bn, batches, limit=2)
    assert not torch.equal(with_bn[1].running_mean, before) and not with_bn.training  # mode restored
    assert int(with_bn[1].num_batches_tracked) == 2
    assert not recalibrate_batchnorm(nn.Linear(3, 4), batches)


def test_the_trainer_recalibrates_batchnorm_at_the_averaged_weights(monkeypatch, tmp_path, data_dir):
    calls = []
    monkeypatch.setattr("lipschitz_lr_experiments.train.recalibrate_batchnorm", lambda *a, **k: calls.append(a))
    for name in ("schedulefree_sgd", "momentum"):
        config = load_config(f"mnist_{name}" if name != "momentum" else "mnist_momentum_baseline").replace(**TINY)
        run_experiment(config, RunOptions(out_dir=tmp_path / name, data_dir=data_dir, progress=False))
    assert len(calls) == 1  # Schedule-Free's epoch only
    assert switch(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1), "eval") is False


def test_the_no_tuning_preset_warms_up_over_the_first_epoch_and_trains(tmp_path, data_dir):
    config = load_config("mnist_sgd_preset").replace(**TINY)  # mnist_sgd with warmup_epochs = 1 (test_config)
    trainer = Trainer(config, RunOptions(out_dir=tmp_path, data_dir=data_dir, progress=False, tensorboard=False))
    assert trainer.adaptive.warmup_steps == len(trainer.train_loader) == 4
    assert trainer.adaptive.batchnorm == "running"
    target = trainer.adaptive.history[-1].lr
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
    assert len(trainer.adaptive.history) == 1 + 2 * 4 // 2  # epoch 0 from the pass, then every 2 steps
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["schedule_args"]["update_every"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"statistics": "hook", "update_every": 0}, "update_every must be an integer >= 1"),
        ({"update_every": 5}, "needs statistics='hook', got statistics='reference'"),
        ({"warmup_epochs": -1}, "warmup_epochs must be an integer >= 0"),
    ],
)
def test_lipschitz_schedule_args_are_checked(args, message):
    with pytest.raises(ConfigError, match=message):
        load_config("mnist_sgd").replace(schedule_args=args)
    with pytest.raises(ConfigError, match="unknown schedule_args key"):  # LipschitzLR's, not the fixed rate's
        load_config("mnist_momentum_baseline").replace(schedule_args={"warmup_epochs": 1})
