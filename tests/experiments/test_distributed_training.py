"""``torchrun`` with two gloo ranks on CPU: identical, finite LRs on every rank; the checkpoint resumes."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import torch

from tests.conftest import write_tiny_config

REPO = Path(__file__).resolve().parents[2]


def write_config(path, epochs):
    return write_tiny_config(path, epochs=epochs, batch_size=64, train_subset=512, test_subset=200)


def torchrun(config, out, data_dir, *extra):
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "lipschitz_lr_experiments",
        "run",
        str(config),
        "--out",
        str(out),
        "--data-dir",
        str(data_dir),
        "--device",
        "cpu",
        "--no-progress",
        *extra,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def lrs(path):
    """The learning rates of the AdaptiveLR state a rank saved (checkpoint.pt for rank 0, rank<N>.pt else)."""
    return [record["lr"] for record in torch.load(path, weights_only=False)["adaptive"]["history"]]


def test_two_ranks_identical_lrs_and_resume(tmp_path, data_dir):
    config = write_config(tmp_path / "ddp.toml", epochs=2)
    out = tmp_path / "run"
    torchrun(config, out, data_dir)
    rank0, rank1 = lrs(out / "checkpoint.pt"), lrs(out / "rank1.pt")
    assert len(rank0) == 3 and rank0 == rank1
    assert all(math.isfinite(lr) and lr > 0 for lr in rank0)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["device"].endswith("x 2 ranks")

    first = json.loads((out / "history.json").read_text())
    write_config(config, epochs=3)
    torchrun(config, out, data_dir, "--resume")
    resumed = json.loads((out / "history.json").read_text())
    assert len(resumed) == 3 and resumed[:2] == first
    rank0 = lrs(out / "checkpoint.pt")
    assert rank0 == lrs(out / "rank1.pt") and len(rank0) == 4
