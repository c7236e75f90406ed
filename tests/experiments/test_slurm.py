"""``lipschitz-lr reproduce --executor slurm`` against a real SLURM (``.ci/slurm up`` starts a one-node cluster:
Debian's slurm-wlm and munge, no accounting). Skipped, saying why, where no SLURM answers.

A tiny matrix runs to its end; a preempted cell (``scancel --signal=USR1`` mid-run) requeues itself and is
followed by the waiting command to an identical history; a rerun while jobs are queued submits nothing; a job
cancelled while queued is reported as vanished, not waited on; requests a node cannot hold are refused before
anything is submitted. ``.ci/run`` sets ``LIPSCHITZ_LR_REQUIRE_SLURM=1`` once its SLURM is up: these tests then
fail, not skip, where no SLURM answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lipschitz_lr_experiments.slurm import JOB_FILE, slurm_available
from tests.conftest import REPO

REQUIRED = os.environ.get("LIPSCHITZ_LR_REQUIRE_SLURM") == "1"
pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(
        not REQUIRED and not slurm_available(), reason="no SLURM answers here (sinfo); CI starts one with .ci/slurm up"
    ),
]


@pytest.fixture(autouse=True)
def slurm_answers():
    if not slurm_available():
        pytest.fail("LIPSCHITZ_LR_REQUIRE_SLURM=1 but sinfo does not answer: see the logs .ci/slurm up wrote")


TINY = ["--set", "train_subset=256", "--set", "test_subset=200", "--set", "batch_size=64"]


def start(root: Path, data_dir: Path, *arguments: str) -> subprocess.Popen:
    """``lipschitz-lr reproduce --executor slurm`` on the CPU, one CPU per job, one thread (its jobs inherit it)."""
    command = [sys.executable, "-m", "lipschitz_lr_experiments", "reproduce", "--executor", "slurm", "--device", "cpu"]
    command += ["--slurm-cpus", "1", "--out", str(root), "--data-dir", str(data_dir), *TINY, *arguments]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def reproduce(root: Path, data_dir: Path, *arguments: str) -> tuple[int, str]:
    """:func:`start`, to its end: (exit code, output)."""
    process = start(root, data_dir, *arguments)
    output, _ = process.communicate(timeout=600)
    return process.returncode, output


def job_id(cell: Path) -> str:
    return json.loads((cell / JOB_FILE).read_text())["job_id"]


def queued(ids: list[str]) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i", "-j", ",".join(ids)], capture_output=True, text=True).stdout
    return out.split()


def without_seconds(history: list[dict]) -> list[dict]:
    return [{key: value for key, value in row.items() if key != "seconds"} for row in history]


def test_a_tiny_matrix_runs_to_its_end(tmp_path, data_dir):
    root = tmp_path / "matrix"
    code, output = reproduce(
        root, data_dir, "--rows", "mnist_sgd", "mnist_sgd_baseline", "--seeds", "0", "1", "--epochs", "1"
    )
    assert code == 0, output
    assert output.count("submitted ") == 4 and "Table 1 over seeds [0, 1]" in output
    for name in ("mnist_sgd", "mnist_sgd_baseline"):
        for seed in (0, 1):
            summary = json.loads((root / name / f"seed{seed}" / "summary.json").read_text())
            assert summary["epochs"] == 1
            assert summary["command"].startswith(f"lipschitz-lr run {name} --seed {seed} --out ")  # a rerunnable one
    assert (root / "figures" / "table1.md").exists()


def test_a_preempted_cell_is_followed_to_an_identical_history(tmp_path, data_dir):
    """USR1 mid-run: the job stops at once, requeues itself and resumes; the waiting command follows it by its id
    and ends 0. SLURM holds a requeued job about two minutes (its begin time): the test moves that to now."""
    arguments = ("--rows", "mnist_sgd", "--seeds", "0", "--epochs", "4")
    code, output = reproduce(tmp_path / "reference", data_dir, *arguments, "--no-figures")
    assert code == 0, output
    root = tmp_path / "preempted"
    process = start(root, data_dir, *arguments, "--no-figures")
    cell = root / "mnist_sgd" / "seed0"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        history = cell / "history.json"
        if history.exists() and len(json.loads(history.read_text())) >= 1:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the job trained no epoch in 300 s")
    job = job_id(cell)
    subprocess.run(["scancel", "--signal=USR1", job], check=True)
    while time.monotonic() < deadline:  # requeued: pending for its begin time
        state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T %r"], capture_output=True, text=True).stdout
        if state.startswith("PENDING BeginTime"):
            time.sleep(15)  # the first run's clean-up (started at once, the job's credential is still revoked)
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)
            break
        time.sleep(0.2)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    shown = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
    assert "Restarts=1" in shown and f"(job {job}): done" in output  # the same job, requeued once, followed
    resumed = json.loads((cell / "history.json").read_text())
    uninterrupted = json.loads((tmp_path / "reference" / "mnist_sgd" / "seed0" / "history.json").read_text())
    assert len(resumed) == 4 and without_seconds(resumed) == without_seconds(uninterrupted)


def test_a_rerun_while_jobs_are_queued_submits_nothing_and_a_cancelled_job_is_reported(tmp_path, data_dir):
    root = tmp_path / "queued"
    later = ("--rows", "mnist_sgd", "--seeds", "0", "1", "--epochs", "1", "--slurm-extra", "begin=now+600")
    code, output = reproduce(root, data_dir, *later, "--no-wait")
    assert code == 0, output
    ids = [job_id(root / "mnist_sgd" / f"seed{seed}") for seed in (0, 1)]
    try:
        code, output = reproduce(root, data_dir, *later, "--no-wait")
        assert code == 0 and "\nsubmitted " not in output, output
        assert output.count("queued (job") == 2 and output.count("not submitted again") == 2
        assert sorted(queued(ids)) == sorted(ids)  # the same two jobs, no new one
        watching = start(root, data_dir, *later, "--no-figures")
        lines = []
        while not any("seed 1: queued" in line for line in lines):  # it follows both jobs now
            lines.append(watching.stdout.readline())
            assert lines[-1], "".join(lines)
        subprocess.run(["scancel", *ids], check=True)  # cancelled while queued: no result will ever come
        output, _ = watching.communicate(timeout=120)  # ends within the bounded grace, not forever
        output = "".join(lines) + output
    finally:
        subprocess.run(["scancel", *ids], check=False)
    assert watching.returncode == 1, output
    assert "mnist_sgd seed 0: vanished" in output and "mnist_sgd seed 1: vanished" in output


def test_requests_a_node_cannot_hold_are_refused_before_submission(tmp_path, data_dir):
    cpus = max(int(value) for value in subprocess.run(["sinfo", "-h", "-N", "-o", "%c"], capture_output=True,
                                                      text=True).stdout.split())  # fmt: skip
    code, output = reproduce(tmp_path, data_dir, "--rows", "mnist_sgd", "--seeds", "0", "--slurm-cpus", str(cpus + 1))
    assert code == 2 and f"--slurm-cpus {cpus + 1} is more than the {cpus} CPUs" in output, output
    code, output = reproduce(tmp_path, data_dir, "--rows", "mnist_sgd", "--seeds", "0", "--slurm-gpus", "1")
    assert code == 2 and "no node in the default partition has GPUs" in output, output
    assert not list(tmp_path.rglob(JOB_FILE))
    code, output = reproduce(tmp_path, data_dir, "--rows", "mnist_sgd", "--seeds", "0", "--slurm-extra", "nonsense=1")
    assert code == 2 and "sbatch refused the job" in output and "Traceback" not in output, output
