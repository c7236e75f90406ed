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


def torchrun(config, out, data_dir, *extra, timeout=600):
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
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
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


def test_unequal_shards_take_the_same_steps_on_every_rank(tmp_path, data_dir):
    """1025 examples over two ranks at batch 128: one rank took a ninth step and the job hung (killed after 150 s)."""
    config = write_tiny_config(tmp_path / "odd.toml", epochs=1, batch_size=128, train_subset=1025, test_subset=100)
    torchrun(config, tmp_path / "run", data_dir, timeout=300)  # a bound on a hang, not a speed requirement
    assert len(json.loads((tmp_path / "run" / "history.json").read_text())) == 1


def test_shards_are_equal_contiguous_and_cover_every_example():
    from lipschitz_lr_experiments.distributed import DistContext

    data = torch.arange(1025)
    shards = [DistContext(rank, 2).shard(data) for rank in range(2)]
    assert [len(s) for s in shards] == [513, 513] and all(s.is_contiguous() for s in shards)
    assert torch.equal(shards[0], data[0::2]) and torch.equal(shards[1][:-1], data[1::2]) and shards[1][-1] == 0
    assert torch.equal(DistContext(1, 4).shard(torch.arange(8)), torch.tensor([1, 5]))
