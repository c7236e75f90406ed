"""``lipschitz-lr reproduce``: the plan, idempotence, and a matrix that survives SIGTERM (``reproduce.py``)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lipschitz_lr_experiments.cli import main
from lipschitz_lr_experiments.config import ConfigError, load_config
from lipschitz_lr_experiments.paper import PAPER_TABLE1
from lipschitz_lr_experiments.reproduce import cell_state, estimate_hours, expand, select_rows
from lipschitz_lr_experiments.run_lock import read_lock
from tests.conftest import write_tiny_config

REPO = Path(__file__).resolve().parents[2]
BOUND_S = 600  # a bound on a hang, not a speed requirement


def test_the_dry_run_prints_the_whole_matrix_with_an_estimate(tmp_path, capsys):
    assert main(["reproduce", "--dry-run", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for row in PAPER_TABLE1:
        for seed in (0, 1, 2):
            assert f"| {row.config} | {seed} | todo | 0/{load_config(row.config).epochs} |" in out
    assert f"{3 * len(PAPER_TABLE1)} runs: 0 done, 0 to resume, {3 * len(PAPER_TABLE1)} to start; about " in out
    assert "GPU-hours left at 5 TFLOP/s" in out
    assert not any(tmp_path.iterdir())  # nothing run, nothing written


def test_rows_are_selected_by_dataset_model_and_optimizer():
    rows = select_rows(datasets=["cifar100"], models=["densenet40"], optimizers=["adam"])
    assert rows == ["c100_densenet40_adam_baseline", "c100_densenet40_adam"]
    assert select_rows(rows=["mnist_sgd"]) == ["mnist_sgd"]
    with pytest.raises(ConfigError, match=r"no row of Table 1 has dataset in \['svhn'\]"):
        select_rows(datasets=["svhn"])
    with pytest.raises(ConfigError, match="no bundled config named 'nope'"):
        select_rows(rows=["nope"])
    with pytest.raises(ConfigError, match="lists a seed twice"):
        expand(["mnist_sgd"], [0, 0], Path("runs"), lambda c: c)


def test_the_estimate_counts_the_statistics_pass_and_scales_with_epochs():
    lipschitz, baseline = load_config("c10_resnet20_sgd"), load_config("c10_resnet20_sgd_baseline")
    one = estimate_hours(lipschitz, 1)
    assert estimate_hours(lipschitz, 300) == pytest.approx(300 * one)
    # a training step is 3 forwards: the baseline reads 3 * 50k + 10k images, LipschitzLR 50k more
    assert one / estimate_hours(baseline, 1) == pytest.approx(210_000 / 160_000)
    assert estimate_hours(lipschitz, 1, tflops=10.0) == pytest.approx(one / 2)


def _rows(tmp_path, epochs):
    common = {"epochs": epochs, "train_subset": 256, "test_subset": 100}
    return [
        str(write_tiny_config(tmp_path / "tiny_a.toml", **common)),
        str(write_tiny_config(tmp_path / "tiny_b.toml", optimizer="sgd", schedule="constant", **common)),
    ]


def _histories(root):
    """Every run's history under ``root`` without its wall times, by relative path."""
    return {
        str(path.parent.relative_to(root)): [{k: v for k, v in row.items() if k != "seconds"} for row in rows]
        for path in sorted(root.rglob("history.json"))
        if "figures" not in path.parts
        for rows in [json.loads(path.read_text())]
    }


def test_the_local_executor_runs_the_matrix_once(tmp_path, data_dir, capsys):
    rows = _rows(tmp_path, epochs=1)
    args = ["reproduce", "--rows", *rows, "--seeds", "0", "1", "--out", str(tmp_path / "m"), "--devices", "cpu"]
    args += ["--data-dir", str(data_dir), "--no-figures"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "4 runs: 0 done, 0 to resume, 4 to start" in out and "[4/4] " in out
    first = _histories(tmp_path / "m")
    assert sorted(first) == ["tiny_a/seed0", "tiny_a/seed1", "tiny_b/seed0", "tiny_b/seed1"]
    assert first["tiny_a/seed0"] != first["tiny_a/seed1"]  # the seeds differ
    assert main(args) == 0  # idempotent: nothing left to run
    assert "4 runs: 4 done, 0 to resume, 0 to start" in capsys.readouterr().out
    assert _histories(tmp_path / "m") == first


def _reproduce(rows, root, data_dir, *extra, seeds=("0", "1")):
    command = [sys.executable, "-m", "lipschitz_lr_experiments", "reproduce", "--rows", *rows, "--seeds", *seeds]
    command += ["--executor", "submitit-local", "--out", str(root), "--data-dir", str(data_dir), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same threads in every process: bitwise-equal histories
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_matrix_through_submitit_survives_sigterm_mid_epoch_and_the_rerun_matches_uninterrupted_runs(
    tmp_path, data_dir
):
    rows = _rows(tmp_path, epochs=3)
    # the uninterrupted run of the cell that will be cut (the same row and seed, in a matrix of its own)
    reference = _reproduce(rows[:1], tmp_path / "reference", data_dir, "--no-figures", seeds=("1",))
    assert reference.wait(BOUND_S) == 0, reference.stdout.read()

    cut = tmp_path / "cut"
    first = _reproduce(rows, cut, data_dir)
    victim = cut / "tiny_a" / "seed1"
    deadline = time.time() + BOUND_S
    while time.time() < deadline and not (victim / "history.json").exists():
        time.sleep(0.02)
    holder = read_lock(victim / ".lock")  # the job's own process trains the run and holds its lock
    os.kill(holder.pid, signal.SIGTERM)
    output = first.communicate(timeout=BOUND_S)[0]
    assert first.returncode == 1, output
    assert "tiny_a seed 1 (job" in output and "): preempted" in output and "rerun the same command" in output
    cells = expand(rows, [0, 1], cut, lambda c: c)
    states = {cell.label: cell_state(cell)[0] for cell in cells}
    assert states == {
        "tiny_a seed 0": "done",
        "tiny_a seed 1": "partial",
        "tiny_b seed 0": "done",
        "tiny_b seed 1": "done",
    }

    again = _reproduce(rows, cut, data_dir)
    output = again.communicate(timeout=BOUND_S)[0]
    assert again.returncode == 0, output
    assert "4 runs: 3 done, 1 to resume, 0 to start" in output and "[4/4] tiny_a seed 1" in output
    assert _histories(cut)["tiny_a/seed1"] == _histories(tmp_path / "reference")["tiny_a/seed1"]
    assert "| `mnist_sgd` |" in (cut / "figures" / "table1.md").read_text()  # the table at the end
