"""``reproduce --executor slurm``: what each job asks of the cluster, which job serves which cell, and watching
those jobs to their end.

* :class:`JobRequest`: GPUs, CPUs, memory, partition, account, QOS, time limit, the warning signal's delay and
  extra ``sbatch`` parameters, as submitit's parameters (each maps to one ``#SBATCH`` line; docs/reproducing.md).
  :func:`check_request` refuses, before anything is submitted, more CPUs per task than the partition's nodes have
  (SLURM accepts such a job and lets it pend forever) or GPUs on a partition without any.
* A cell's job is recorded in its directory (``job.json``: the job id and submitit's folder), so a rerun (waiting
  or ``--no-wait``) submits only the cells with no live job and shows the others' states.
* :func:`watch` follows the jobs by id through ``squeue`` (one call per poll for all of them), not through
  ``sacct`` (a cluster without accounting answers every call with an error): a requeued job (preemption, a time
  limit) is still its cell's job; a job that left the queue is done when its cell's run is complete, failed with
  its error line when submitit recorded one, and otherwise vanished (cancelled, killed, node lost), reported once it
  has been gone for ``grace`` seconds, never waited on forever.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["JOB_FILE", "JobRequest", "LiveJob", "check_request", "live_jobs", "queue_states", "record_job", "watch"]

#: The file in a cell's directory naming the job that serves it.
JOB_FILE = "job.json"
#: squeue's states of a job that is still the cell's (pending, running, requeued, being signalled ...).
LIVE_STATES = {
    "PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "COMPLETING", "SUSPENDED",
    "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD",
}  # fmt: skip


@dataclass(frozen=True)
class JobRequest:
    """What one job asks of SLURM. ``gpus=None``: one if the partition's nodes have GPUs, else none;
    ``cpus=None``: 8, or fewer where the partition's nodes have fewer."""

    gpus: int | None = None
    cpus: int | None = None
    memory: str | None = None
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time_minutes: int = 24 * 60
    signal_delay_s: int = 120
    extra: dict[str, str] = field(default_factory=dict)

    def parameters(self, gpus: int, cpus: int) -> dict[str, Any]:
        """submitit's ``update_parameters`` keywords (``slurm_*`` for the ones it has no generic name for)."""
        parameters: dict[str, Any] = {
            "timeout_min": self.time_minutes,
            "cpus_per_task": cpus,
            "slurm_signal_delay_s": self.signal_delay_s,
        }
        if gpus:
            parameters["gpus_per_node"] = gpus
        for key, value in (("slurm_partition", self.partition), ("slurm_mem", self.memory),
                           ("slurm_account", self.account), ("slurm_qos", self.qos)):  # fmt: skip
            if value is not None:
                parameters[key] = value
        if self.extra:
            parameters["slurm_additional_parameters"] = dict(self.extra)
        return parameters


def _sinfo(partition: str | None) -> list[tuple[str, str]]:
    """``(CPUs, GRES)`` of each of the partition's nodes (the default partition when None), from one ``sinfo``."""
    command = ["sinfo", "-h", "-N", "-o", "%c %G"]
    if partition:
        command += ["-p", partition]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as error:
        raise ConfigError(f"--executor slurm needs SLURM's commands (sinfo): {error}") from None
    if result.returncode != 0:
        message = " ".join(result.stderr.split()) or f"exit {result.returncode}"
        raise ConfigError(f"sinfo failed ({message}): is this a SLURM login node (SLURM_CONF)?")
    return [(fields[0], fields[1]) for line in result.stdout.splitlines() if len(fields := line.split()) == 2]


def check_request(request: JobRequest) -> tuple[int, int]:
    """The (GPUs, CPUs per task) to ask for: the request's, else the defaults for the partition; refused (one line,
    naming both numbers) where the partition's nodes cannot hold them."""
    where = f"partition {request.partition!r}" if request.partition else "the default partition"
    nodes = _sinfo(request.partition)
    cpus_per_node = [int(cpus) for cpus, _ in nodes if cpus.isdigit()]
    if not cpus_per_node:
        raise ConfigError(f"sinfo shows no node in {where}")
    largest = max(cpus_per_node)
    cpus = request.cpus if request.cpus is not None else min(8, largest)
    if cpus > largest:
        raise ConfigError(
            f"--slurm-cpus {cpus} is more than the {largest} CPUs of the largest node in {where}: SLURM would accept "
            "the job and let it pend forever; ask for at most that many"
        )
    has_gpus = any("gpu" in gres for _, gres in nodes)
    gpus = request.gpus if request.gpus is not None else int(has_gpus)
    if gpus and not has_gpus:
        raise ConfigError(
            f"--slurm-gpus {gpus}, but no node in {where} has GPUs (sinfo's GRES): use --slurm-gpus 0 and --device cpu"
        )
    return gpus, cpus


# --------------------------------------------------------------------------------------------- job records
def record_job(cell_dir: Path, job_id: str, folder: Path) -> None:
    cell_dir.mkdir(parents=True, exist_ok=True)
    (cell_dir / JOB_FILE).write_text(json.dumps({"job_id": job_id, "folder": str(folder), "submitted": time.time()}))


@dataclass
class LiveJob:
    """A cell's recorded job, as the queue shows it."""

    job_id: str
    folder: Path
    state: str  # squeue's state, e.g. PENDING
    reason: str  # squeue's reason, e.g. BeginTime (a requeued job waits there)
    restarts: int = 0  # how often it was requeued


def _recorded(cell_dir: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((cell_dir / JOB_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "job_id" in record else None


def queue_states(job_ids: Sequence[str]) -> dict[str, tuple[str, str, int]]:
    """``{job id: (state, reason, restarts)}`` of the jobs ``squeue`` still lists (one call)."""
    if not job_ids:
        return {}
    command = ["squeue", "-h", "-j", ",".join(job_ids), "-O", "JobID:30,State:30,Reason:60,RestartCnt:10"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    states = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3].isdigit():
            states[parts[0]] = (parts[1], parts[2], int(parts[3]))
    return states


def live_jobs(cell_dirs: Sequence[Path]) -> dict[Path, LiveJob]:
    """The cells whose recorded job is still in the queue."""
    records = {cell_dir: record for cell_dir in cell_dirs if (record := _recorded(cell_dir)) is not None}
    job_ids = {cell_dir: str(record["job_id"]) for cell_dir, record in records.items()}
    states = queue_states(list(job_ids.values()))
    return {
        cell_dir: LiveJob(job_id, Path(records[cell_dir]["folder"]), *states[job_id])
        for cell_dir, job_id in job_ids.items()
        if job_id in states and states[job_id][0] in LIVE_STATES
    }


def describe(job: LiveJob) -> str:
    """A live job in words: queued, running, or requeued (pending again after a preemption or a time limit)."""
    if job.state in ("PENDING", "REQUEUED") and job.restarts:
        return f"requeued (job {job.job_id}, restart {job.restarts}, {job.reason})"
    words = {"PENDING": "queued", "RUNNING": "running", "COMPLETING": "finishing"}
    return f"{words.get(job.state, job.state.lower())} (job {job.job_id}, {job.reason})"


def job_error(folder: Path, job_id: str) -> str | None:
    """The error a job's submitit result holds (its last line), or None (no result, or a successful one)."""
    path = folder / f"{job_id}_0_result.pkl"
    try:
        with open(path, "rb") as file:
            outcome, value = pickle.load(file)
    except (OSError, pickle.UnpicklingError, ValueError, EOFError):
        return None
    if outcome == "success":
        return None
    lines = [line for line in str(value).strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "failed"


def accounting_note() -> str | None:
    """One line when the cluster has no job accounting (``sacct`` fails): where the states come from instead."""
    if shutil.which("sacct") is None:
        return "no sacct on this machine: job states come from squeue and the runs' files"
    result = subprocess.run(["sacct", "-n", "-X", "-j", "1"], capture_output=True, text=True, timeout=60)
    if result.returncode != 0 or "disabled" in result.stderr:
        return "no SLURM accounting here: job states come from squeue and the runs' files"
    return None


def watch(
    cells: Sequence[Any],
    jobs: dict[Any, LiveJob],
    is_done: Callable[[Any], bool],
    report: Callable[[Any, str, str], None],
    poll_s: float = 2.0,
    grace_s: float = 10.0,
) -> dict[Any, str]:
    """Follow ``jobs`` (cell -> its job) until each cell is done, failed or vanished; ``report(cell, status, where)``
    as each ends. A job that left the queue is given ``grace_s`` for its cell's files to say it finished."""
    results: dict[Any, str] = {}
    gone_since: dict[Any, float] = {}
    seen: dict[Any, str] = {}
    while len(results) < len(jobs):
        states = queue_states([job.job_id for cell, job in jobs.items() if cell not in results])
        for cell, job in jobs.items():
            if cell in results:
                continue
            where = f" (job {job.job_id})"
            if job.job_id in states and states[job.job_id][0] in LIVE_STATES:
                gone_since.pop(cell, None)
                state = describe(LiveJob(job.job_id, job.folder, *states[job.job_id]))
                if seen.get(cell) != state and state.startswith("requeued"):
                    print(f"{cell.label}: {state}", flush=True)
                seen[cell] = state
                continue
            if is_done(cell):
                results[cell] = "done"
            elif (error := job_error(job.folder, job.job_id)) is not None:
                results[cell] = f"failed ({error})"
            elif time.monotonic() - gone_since.setdefault(cell, time.monotonic()) > grace_s:
                results[cell] = "vanished (left the queue without finishing: cancelled, killed or its node lost)"
            else:
                continue
            report(cell, results[cell], where)
        if len(results) < len(jobs):
            time.sleep(poll_s)
    return results


def slurm_available() -> bool:
    """Whether SLURM's commands answer here (``sinfo``)."""
    if shutil.which("sinfo") is None:
        return False
    result = subprocess.run(["sinfo", "-h"], capture_output=True, text=True, timeout=30, env=os.environ)
    return result.returncode == 0
