"""The faithful MNIST configs still compute the committed epoch-0 statistics and rates
(results/mnist/<config>/history.json, 20-epoch CPU runs): a change of AdaptiveLR's defaults, such as
its BatchNorm mode, must not reach the paper's conventions."""

import json
from pathlib import Path

import pytest

from lipschitz_lr_experiments.config import load_config
from lipschitz_lr_experiments.train import RunOptions, Trainer

RESULTS = Path(__file__).resolve().parents[2] / "results" / "mnist"


@pytest.mark.parametrize("name", ["mnist_sgd"])  # one full pass (~20 s on 2 cores); every config shares it
def test_the_faithful_mnist_configs_give_their_committed_epoch_zero_rates(tmp_path, data_dir, name):
    committed = json.loads((RESULTS / name / "history.json").read_text())[0]
    trainer = Trainer(load_config(name), RunOptions(out_dir=tmp_path, data_dir=data_dir, tensorboard=False))
    record = trainer.adaptive.history[0]  # epoch 0: the pass over all 60,000 training images
    assert record.k_z == pytest.approx(committed["k_z"], rel=1e-5)  # thread counts reorder float sums
    assert record.lr == pytest.approx(committed["lr"], rel=1e-5)
    assert trainer.adaptive.batchnorm == "running"
