import json
import multiprocessing
import os
import socket
import subprocess
import sys

import pytest

from lipschitz_lr_experiments.run_dir import RunDirectory, RunDirError
from lipschitz_lr_experiments.run_lock import LockError, break_lock, hold_lock, read_lock

PROCESSES = 8
ROUNDS = 8
BARRIER_TIMEOUT_S = 120  # a bound on a hung round, not a speed requirement


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _contend(directory, barrier, results, index, stale_pid):
    """One contender: in each round, all try to take the lock at once; the holders keep it until every
    contender has tried, so two holders in a round would be two runs writing at once."""
    run = RunDirectory(directory)
    for round_ in range(ROUNDS):
        if index == 0 and stale_pid:
            run.lock_path.write_text(str(stale_pid))  # a lock left by a killed run (the earlier format)
        barrier.wait(BARRIER_TIMEOUT_S)
        outcome, lock = "refused", run.lock()
        try:
            lock.__enter__()
            outcome = "held"
        except RunDirError:
            lock = None
        except Exception as error:  # anything else (e.g. FileExistsError) is a failure of the lock
            outcome, lock = f"{type(error).__name__}: {error}", None
        barrier.wait(BARRIER_TIMEOUT_S)
        if lock is not None:
            lock.__exit__(None, None, None)
        results.put((round_, index, outcome))
        barrier.wait(BARRIER_TIMEOUT_S)


@pytest.mark.parametrize("stale", [False, True], ids=["free", "stale"])
def test_exactly_one_of_many_simultaneous_runs_holds_the_lock(tmp_path, stale):
    """Eight processes released together into one run directory, free or over a stale lock, for several
    rounds: every round has exactly one holder, and the others are refused with RunDirError."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    stale_pid = _dead_pid() if stale else 0
    workers = [
        context.Process(target=_contend, args=(tmp_path, barrier, results, i, stale_pid)) for i in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=BARRIER_TIMEOUT_S * 3) for _ in range(PROCESSES * ROUNDS)]
    for worker in workers:
        worker.join(BARRIER_TIMEOUT_S)
    errors = [o for o in outcomes if o[2] not in ("held", "refused")]
    assert not errors, errors
    holders = [sum(o[2] == "held" for o in outcomes if o[0] == r) for r in range(ROUNDS)]
    assert holders == [1] * ROUNDS
    assert not (tmp_path / ".lock").exists()


def _write_holder(path, **changes):
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "start": None, "token": "t", **changes}
    path.write_text(json.dumps(holder))


def test_a_lock_of_another_host_is_never_taken_over_and_can_be_broken_by_hand(tmp_path, caplog):
    lock = tmp_path / ".lock"
    _write_holder(lock, host="node-17", pid=_dead_pid())  # its pid means nothing here
    refused = r"process \d+ on host node-17\) holds .*lipschitz-lr unlock"
    with pytest.raises(RunDirError, match=refused), RunDirectory(tmp_path).lock():
        pass
    assert read_lock(lock).host == "node-17"
    with pytest.raises(LockError, match="on another host.*--force"):
        break_lock(tmp_path)
    assert "removed" in break_lock(tmp_path, force=True) and not lock.exists()
    assert break_lock(tmp_path) == f"{tmp_path} is not locked"


def test_a_recycled_pid_is_stale_and_a_live_holder_is_not(tmp_path, caplog):
    lock = tmp_path / ".lock"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _write_holder(lock, pid=sleeper.pid, start="1")  # the pid is alive, but a process started at tick 1 is not
        with RunDirectory(tmp_path).lock():
            assert read_lock(lock).pid == os.getpid()
        assert "is gone" in caplog.text
        with hold_lock(tmp_path):  # a live holder (this process, with its real start time)
            with pytest.raises(LockError, match="alive on this host"):
                break_lock(tmp_path)
            with pytest.raises(RunDirError, match=f"process {os.getpid()} on host"), RunDirectory(tmp_path).lock():
                pass
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.parametrize("content", [b"", b"{not json", b"\xff\xfe"])
def test_an_unreadable_lock_is_named_and_not_taken_over(tmp_path, content):
    (tmp_path / ".lock").write_bytes(content)
    with pytest.raises(RunDirError, match=r"\.lock .*lipschitz-lr unlock"), RunDirectory(tmp_path).lock():
        pass
    with pytest.raises(LockError):
        break_lock(tmp_path)
    break_lock(tmp_path, force=True)
    with RunDirectory(tmp_path).lock():
        pass


def test_a_lock_broken_and_retaken_by_another_run_is_not_released_by_the_first(tmp_path, caplog):
    with hold_lock(tmp_path):
        _write_holder(tmp_path / ".lock", token="someone else")
    assert read_lock(tmp_path / ".lock").token == "someone else"
    assert "no longer holds this run's lock" in caplog.text


def test_unlock_command(tmp_path, capsys):
    from lipschitz_lr_experiments.cli import main

    _write_holder(tmp_path / ".lock", host="node-3")
    assert main(["unlock", str(tmp_path)]) == 2
    assert "node-3" in capsys.readouterr().err
    assert main(["unlock", str(tmp_path), "--force"]) == 0
    assert "removed" in capsys.readouterr().out and not (tmp_path / ".lock").exists()
