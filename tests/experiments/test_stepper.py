"""lipschitz_lr_experiments.stepper: the one interface every schedule is stepped through, call by call."""

from contextlib import nullcontext

import pytest
import torch
from torch import nn
from torch.optim import lr_scheduler

from lipschitz_lr import AdaptiveLR
from lipschitz_lr_experiments.stepper import LipschitzStepper, Stepper, TorchStepper


def _sgd(lr=1.0):
    return torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)


def test_a_fixed_rate_records_the_groups_rate_and_saves_nothing():
    stepper = Stepper(_sgd(0.25))
    stepper.step_update(1)
    stepper.step(1, 0.5)
    assert stepper.epoch_start() == {"lr": 0.25} and stepper.shown() == {}
    assert stepper.checkpoint() == {"adaptive": None, "schedule": None}


@pytest.mark.parametrize("interval", ["epoch", "step"])
def test_a_torch_scheduler_steps_at_its_interval_and_round_trips(interval):
    optimizer = _sgd()
    stepper = TorchStepper(optimizer, lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5), interval)
    for update in (1, 2, 3):
        stepper.step_update(update)
    stepper.step(1, 0.0)
    assert stepper.epoch_start()["lr"] == (0.5**3 if interval == "step" else 0.5)
    copy = _sgd()
    restored = TorchStepper(copy, lr_scheduler.StepLR(copy, step_size=1, gamma=0.5), interval)
    restored.restore(stepper.checkpoint(), lambda entry: nullcontext())
    assert restored.scheduler.state_dict() == stepper.scheduler.state_dict()


def test_plateau_gets_the_epochs_training_loss():
    optimizer = _sgd()
    stepper = TorchStepper(optimizer, lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=0), "epoch")
    for epoch, loss in enumerate([1.0, 1.0, 1.0], start=1):
        stepper.step(epoch, loss)
    assert optimizer.param_groups[0]["lr"] == 0.25  # two epochs without improvement, patience 0


@pytest.mark.parametrize("update_every", [None, 2])
def test_lipschitz_steps_once_per_epoch_or_every_n_updates_and_shows_k(update_every):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    data = [(torch.randn(8, 4), torch.randint(0, 3, (8,))) for _ in range(2)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    statistics = "hook" if update_every else "reference"
    adaptive = AdaptiveLR(optimizer, model, data, num_classes=3, statistics=statistics)
    stepper = LipschitzStepper(optimizer, adaptive, update_every)
    for update in (1, 2, 3, 4):
        model(data[update % 2][0]).sum().backward()
        optimizer.step()
        stepper.step_update(update)
    stepper.step(1, 0.0)
    assert len(adaptive.history) == (3 if update_every else 2)  # epoch 0, then every 2 updates or once
    record = adaptive.history[-1]
    assert stepper.epoch_start() == {"lr": record.lr, "k_z": record.k_z, "max_weight_norm": record.max_weight_norm,
                                     "k": record.k}  # fmt: skip
    assert stepper.shown() == {"K": f"{record.k:.4g}"} and stepper.checkpoint()["adaptive"]["history"]
