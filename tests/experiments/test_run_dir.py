import errno
import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from lipschitz_lr_experiments.history import HISTORY_FIELDS
from lipschitz_lr_experiments.run_dir import RunDirectory, RunDirError, atomic_torch_save, atomic_write_bytes
from lipschitz_lr_experiments.run_lock import read_lock


def test_a_directory_holding_a_run_is_refused_without_a_flag(tmp_path):
    (tmp_path / "history.json").write_text("[]")
    run = RunDirectory(tmp_path)
    with pytest.raises(RunDirError, match=r"already holds a run \(history.json\); pass --resume .* --overwrite"):
        run.check(resume=False, overwrite=False)
    assert (tmp_path / "history.json").read_text() == "[]"  # nothing lost


def test_a_run_killed_before_its_first_checkpoint_is_not_a_run(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "tensorboard").mkdir()
    assert RunDirectory(tmp_path).check(resume=False, overwrite=False) is False
    assert RunDirectory(tmp_path).check(resume=True, overwrite=False) is False


def test_overwrite_deletes_the_runs_files_only(tmp_path):
    for name in ("history.json", "checkpoint.pt", "rank1.pt", "notes.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "tensorboard").mkdir()
    run = RunDirectory(tmp_path)
    assert run.check(resume=False, overwrite=True) is False
    assert len(list(tmp_path.iterdir())) == 5  # a check deletes nothing
    with pytest.raises(RuntimeError, match="must run under RunDirectory.lock"):
        run.prepare(resume=False, overwrite=True)
    with run.lock():
        assert run.prepare(resume=False, overwrite=True) is False
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".lock.guard") == ["notes.txt"]


def test_resume_needs_the_checkpoint_of_an_existing_history(tmp_path):
    (tmp_path / "history.json").write_text("[]")
    with pytest.raises(RunDirError, match="holds history.json but no checkpoint.pt"):
        RunDirectory(tmp_path).check(resume=True, overwrite=False)
    assert RunDirectory(tmp_path / "new").check(resume=True, overwrite=False) is False  # nothing yet: starts
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    assert RunDirectory(tmp_path).check(resume=True, overwrite=False) is True
    with pytest.raises(RunDirError, match="give one of them"):
        RunDirectory(tmp_path).check(resume=True, overwrite=True)


def test_an_output_path_that_cannot_be_a_directory(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="is a file, not a directory"):
        RunDirectory(tmp_path / "file").check(resume=False, overwrite=False)
    beneath_a_file = RunDirectory(tmp_path / "file" / "run")
    with pytest.raises(RunDirError, match="cannot create the output directory"), beneath_a_file.lock():
        pass


def test_an_output_path_that_is_a_dangling_symlink_is_named(tmp_path):
    (tmp_path / "out").symlink_to(tmp_path / "gone")
    with pytest.raises(RunDirError, match=r"out is a symbolic link to .*gone, which does not exist"):
        RunDirectory(tmp_path / "out").check(resume=False, overwrite=False)
    with pytest.raises(RunDirError, match="which does not exist"), RunDirectory(tmp_path / "out").lock():
        pass


def test_the_lock_refuses_a_second_live_run_and_takes_over_a_dead_ones(tmp_path, caplog):
    run = RunDirectory(tmp_path)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run.lock_path.write_text(str(sleeper.pid))  # the earlier format: a bare pid
        refused = f"another run \\(process {sleeper.pid} on host .*lipschitz-lr unlock"
        with pytest.raises(RunDirError, match=refused), run.lock():
            pass
    finally:
        sleeper.kill()
        sleeper.wait()
    with run.lock():  # its process is gone now: taken over
        holder = read_lock(run.lock_path)
        assert (holder.pid, holder.host) == (os.getpid(), socket.gethostname())
    assert "is gone" in caplog.text
    assert not run.lock_path.exists()  # released


def test_the_lock_is_released_when_the_run_fails(tmp_path):
    run = RunDirectory(tmp_path)
    with pytest.raises(KeyboardInterrupt), run.lock():
        raise KeyboardInterrupt
    assert not run.lock_path.exists()


@pytest.mark.parametrize("content", [b"", b"garbage", "truncated"])
def test_a_damaged_checkpoint_is_named(tmp_path, content):
    path = tmp_path / "checkpoint.pt"
    if content == "truncated":
        atomic_torch_save({"epoch": 1, "weights": torch.zeros(1000)}, path)
        path.write_bytes(path.read_bytes()[:300])
    else:
        path.write_bytes(content)
    with pytest.raises(RunDirError, match=f"cannot resume: {path} is damaged or not a checkpoint"):
        RunDirectory(tmp_path).load(path, map_location="cpu")
    torch.save([1, 2], path)
    with pytest.raises(RunDirError, match="not a checkpoint of this project"):
        RunDirectory(tmp_path).load(path, map_location="cpu")


def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "history.json"
    atomic_write_bytes(path, b"old")

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["history.json"]


def test_a_killed_writes_half_written_file_is_removed_by_the_next_run_there(tmp_path, caplog):
    """SIGKILL during a checkpoint's write leaves ``.checkpoint.pt.tmp-PID``; the next run in the folder (which
    holds its lock, so nothing else writes there) removes it and says so."""
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "import lipschitz_lr_experiments.run_dir as run_dir\n"
        "def killed(*args, **kwargs):\n    os.kill(os.getpid(), signal.SIGKILL)\n"
        "run_dir.os.replace = killed\n"
        "run_dir.RunDirectory(sys.argv[1]).save_checkpoint({'epoch': 1})\n"
    )
    process = subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=False)
    assert process.returncode == -9
    (leftover,) = tmp_path.glob(".checkpoint.pt.tmp-*")
    run = RunDirectory(tmp_path)
    with run.lock(), caplog.at_level("WARNING"):
        assert run.prepare(resume=True, overwrite=False) is False
    assert not leftover.exists() and leftover.name in caplog.text and "killed while writing" in caplog.text


def test_history_json_and_csv_and_a_checkpoint_per_rank(tmp_path):
    run = RunDirectory(tmp_path)
    rows = [{field: i for field in HISTORY_FIELDS} for i in (1, 2)]
    run.write_history(rows)
    assert json.loads((tmp_path / "history.json").read_text()) == rows
    lines = (tmp_path / "history.csv").read_text().splitlines()
    assert lines[0] == ",".join(HISTORY_FIELDS) and lines[2] == ",".join(["2"] * len(HISTORY_FIELDS))
    run.save_checkpoint({"epoch": 3, "model": torch.ones(2)})
    run.save_checkpoint({"epoch": 3, "rng": torch.zeros(1)}, rank=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "history.csv", "history.json", "rank1.pt"]
    assert torch.equal(run.load_checkpoint("cpu")["model"], torch.ones(2))
    assert torch.equal(run.load_checkpoint("cpu", rank=1)["rng"], torch.zeros(1))
