"""Write the first two epochs of the faithful MNIST configs on a subset, as ``test_faithful.py`` compares them.

    OMP_NUM_THREADS=1 python tests/experiments/make_faithful_reference.py DATA_DIR OUT.json

Run once with the code to compare against (the reference committed beside this file was written by the code
of before the house redesign, commit 369340a, on this project's 2-core Intel Xeon, torch 2.14.1).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch

from lipschitz_lr_experiments.config import load_config
from lipschitz_lr_experiments.train import RunOptions, run_experiment

CONFIGS = ("mnist_sgd", "mnist_momentum", "mnist_adam", "mnist_sgd_hook")
SUBSET = {"epochs": 2, "train_subset": 2048, "test_subset": 1000}
KEYS = ("lr", "k_z", "k", "train_loss", "test_acc")


def first_two_epochs(data_dir: str) -> dict[str, list[dict[str, float]]]:
    torch.set_num_threads(1)
    out = {}
    for name in CONFIGS:
        with tempfile.TemporaryDirectory() as run:
            options = RunOptions(out_dir=Path(run), data_dir=data_dir, device="cpu", progress=False, tensorboard=False)
            history = run_experiment(load_config(name).replace(**SUBSET), options)
        out[name] = [{key: row[key] for key in KEYS} for row in history]
    return out


if __name__ == "__main__":
    Path(sys.argv[2]).write_text(json.dumps(first_two_epochs(sys.argv[1]), indent=1) + "\n")
