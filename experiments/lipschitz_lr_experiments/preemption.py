"""Preemption: what a run does when a cluster scheduler tells it to stop (SIGTERM, SIGUSR1).

A run writes its checkpoint atomically at the end of every epoch, and a resume from it is exact
(:mod:`lipschitz_lr_experiments.run_dir`). So the right answer to a preemption signal is to stop at
once, wherever the epoch is: the partial epoch is given up, the last epoch's checkpoint is on disk,
and ``--resume`` (or the requeued job, or a rerun of ``lipschitz-lr reproduce``) continues from it
with the history an uninterrupted run would have had. Waiting for the epoch to end could outlast the
scheduler's grace period (SLURM's ``KillWait``, 30 s by default), after which it sends SIGKILL.

Inside :func:`preemption_signals`, SIGTERM and SIGUSR1 raise :class:`Preempted` in the main thread
(a ``BaseException``, like ``KeyboardInterrupt``, so no ``except Exception`` swallows it); the run's
cleanup (its lock, TensorBoard, the process group) runs as for Ctrl-C. A second signal during that
cleanup is recorded, not raised, so the cleanup finishes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterator

__all__ = ["PREEMPTION_SIGNALS", "Preempted", "preemption_signals", "requeue_slurm_job"]

#: The signals a scheduler sends before it stops a job: SIGTERM (SLURM's preemption and ``scancel``;
#: Kubernetes), SIGUSR1 (a common choice for ``sbatch --signal=USR1@120`` before the time limit).
PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Preempted(BaseException):
    """The process received a preemption signal; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"preempted by {signal.Signals(signum).name}")


@contextlib.contextmanager
def preemption_signals(signals: tuple[signal.Signals, ...] = PREEMPTION_SIGNALS) -> Iterator[None]:
    """While inside, the first of ``signals`` raises :class:`Preempted`; the previous handlers come back after.

    Outside the main thread (where Python cannot set handlers) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        received.append(signum)
        if len(received) == 1:
            raise Preempted(signum)

    previous = {sig: signal.getsignal(sig) for sig in signals}
    for sig in signals:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def requeue_slurm_job() -> bool:
    """Ask SLURM to requeue this job (``scontrol requeue $SLURM_JOB_ID``), as submitit does on a timeout;
    returns whether it was asked (False outside a SLURM job or where ``scontrol`` fails)."""
    job_id = os.environ.get("SLURM_JOB_ID")  # an array task's own id too
    if not job_id:
        return False
    try:
        subprocess.run(["scontrol", "requeue", job_id], check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return True
