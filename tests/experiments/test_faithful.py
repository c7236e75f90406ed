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


def test_the_faithful_configs_give_the_first_two_epochs_of_before_the_redesign(data_dir, tmp_path):
    """The first two epochs of the four faithful MNIST configs (a 2,048-image subset, one thread) against those the
    code of before the house redesign wrote (``data/faithful_two_epochs.json``, by ``make_faithful_reference.py``).
    On the machine that wrote them they agree to the last bit; the tolerance leaves room for another CPU's kernels.
    The runs are made in a process of their own, so that its one thread is no other test's."""
    import os
    import subprocess
    import sys

    here = Path(__file__).parent
    out = tmp_path / "ours.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(here.parents[1])}
    script = here / "make_faithful_reference.py"
    subprocess.run([sys.executable, str(script), str(data_dir), str(out)], check=True, env=env, cwd=here.parents[1])
    reference = json.loads((here / "data" / "faithful_two_epochs.json").read_text())
    ours = json.loads(out.read_text())
    for name, rows in reference.items():
        for epoch, (theirs, mine) in enumerate(zip(rows, ours[name], strict=True), start=1):
            for key, value in theirs.items():
                assert mine[key] == pytest.approx(value, rel=1e-4, abs=1e-3 if key == "test_acc" else 0), (name, epoch)
