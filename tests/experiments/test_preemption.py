import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lipschitz_lr_experiments.preemption import Preempted, preemption_signals, requeue_slurm_job
from tests.conftest import write_tiny_config

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_a_preemption_signal_raises_preempted_once_and_the_old_handler_comes_back(sig):
    before = signal.getsignal(sig)
    with pytest.raises(Preempted, match=f"preempted by {sig.name}") as caught, preemption_signals():
        os.kill(os.getpid(), sig)
        for _ in range(1000):  # the handler runs between bytecodes
            pass
    assert caught.value.signum == sig
    assert signal.getsignal(sig) is before


def test_a_second_signal_during_cleanup_is_not_raised():
    with pytest.raises(Preempted), preemption_signals():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):
                pass
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # e.g. the scheduler's repeat, while the lock is released
            for _ in range(1000):
                pass


def test_outside_the_main_thread_nothing_is_installed():
    seen = []

    def worker():
        with preemption_signals():
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [signal.getsignal(signal.SIGTERM)]


def test_requeue_outside_slurm_does_nothing(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert requeue_slurm_job() is False
    monkeypatch.setenv("SLURM_JOB_ID", "17")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(FileNotFoundError("scontrol")))
    assert requeue_slurm_job() is False


def test_a_run_stopped_by_sigterm_says_how_to_resume_and_releases_its_lock(tmp_path, data_dir):
    """``lipschitz-lr run`` under SIGTERM: exit 143, one line naming the resume command, the lock released, the
    last epoch's checkpoint on disk (the exact resume is tested in tests/experiments/test_reproduce.py)."""
    config = write_tiny_config(tmp_path / "tiny.toml", epochs=6, train_subset=1024)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "lipschitz_lr_experiments", "run", str(config), "--out", str(out)]
    command += ["--data-dir", str(data_dir), "--no-progress"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    history = out / "history.json"
    deadline = time.time() + 300  # a bound on a hang, not a speed requirement
    while time.time() < deadline and process.poll() is None and not history.exists():
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "preempted by SIGTERM" in stderr and "--resume`" in stderr
    assert (out / "checkpoint.pt").exists() and not (out / ".lock").exists() and not (out / "summary.json").exists()
