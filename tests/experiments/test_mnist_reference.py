"""The faithful MNIST reference on the real data (slow: full passes over the 60,000 training images)."""

import math

import pytest
import torch

from lipschitz_lr import AdaptiveLR
from lipschitz_lr_experiments.config import load_config
from lipschitz_lr_experiments.data import TensorBatches, load_dataset
from lipschitz_lr_experiments.models import build_model
from lipschitz_lr_experiments.train import RunOptions, run_experiment

pytestmark = pytest.mark.slow


def test_epoch_zero_reference_sgd_lr_is_in_the_papers_scale(data_dir):
    """MNIST.ipynb logs 2.62 for epoch 0; the paper's MNIST figure shows ~2-3. With glorot convolutions
    (our old port) K_z was 2.4-3.7 and the learning rate 77-117."""
    data = load_dataset("mnist", data_dir)
    loader = TensorBatches(data.train_images, data.train_labels, 256)
    lrs = []
    for seed in range(5):
        torch.manual_seed(seed)  # as the Trainer does before building the model
        model = build_model("mnist_cnn", 10)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
        sched = AdaptiveLR(optimizer, model, loader, num_classes=10, batchnorm="running")  # the paper's pass
        lrs.append(sched.history[0].lr)
    print("epoch-0 reference SGD learning rates, seeds 0-4:", [f"{lr:.6g}" for lr in lrs])
    assert all(1.0 < lr < 5.0 for lr in lrs), lrs


def test_one_reference_sgd_epoch_on_full_mnist_ends_finite(tmp_path, data_dir):
    """With torch's unclipped loss this epoch is NaN. Its accuracy is not asserted: the first epoch at lr ~3
    is chaotic (seed 0 ended it at 87.4% test accuracy with one thread and at 12.8% with two; the authors'
    log shows 23.9%), so it depends on the machine's arithmetic, not only on the code."""
    config = load_config("mnist_sgd").replace(epochs=1)
    options = RunOptions(out_dir=tmp_path / "run", data_dir=data_dir, progress=False, tensorboard=False)
    (row,) = run_experiment(config, options)
    print("one reference SGD epoch:", row)
    assert 1.0 < row["lr"] < 5.0
    assert math.isfinite(row["train_loss"]) and math.isfinite(row["test_loss"])
