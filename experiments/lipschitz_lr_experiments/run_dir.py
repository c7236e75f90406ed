"""A run's directory: what is written there (atomically), what a resume reads, and the lock.

A run directory holds ``config.json``, ``history.json``/``history.csv`` (every epoch),
``checkpoint.pt`` (every epoch; under torchrun also ``rank<N>.pt``), ``summary.json`` (at the end)
and optionally ``tensorboard/``. The rules:

* Every file is written atomically (a temporary file in the same folder, fsync, ``os.replace``): a
  reader, or a run killed at any moment, sees the old file or the new one, never half of one.
* A directory that already holds a run is never written into unless asked: ``resume`` continues it
  from ``checkpoint.pt``, ``overwrite`` deletes the run's files first; otherwise :class:`RunDirError`.
* ``resume`` without ``checkpoint.pt`` starts afresh only in a directory that holds no results; a
  history without its checkpoint is refused (resuming would rewrite it). The trainer writes each
  epoch's checkpoint (which carries the history) before the history files, so a run killed between
  the two resumes from the checkpoint.
* One run at a time: :meth:`RunDirectory.lock` holds ``.lock`` (host, pid and start time; see
  :mod:`lipschitz_lr_experiments.run_lock`); a second run into the same directory is refused while the
  first may be alive, and ``overwrite`` deletes files only under the lock (:meth:`RunDirectory.check`
  refuses early without touching anything). A lock whose process is provably gone is taken over with a
  warning; any other is broken by hand with ``lipschitz-lr unlock DIR``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import pickle
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .errors import RunDirError
from .history import HISTORY_FIELDS
from .run_lock import LOCK_NAME, LockError, check_unlocked, hold_lock

logger = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_KEYS",
    "RANK_KEYS",
    "RUN_FILES",
    "RunDirError",
    "RunDirectory",
    "atomic_torch_save",
    "atomic_write_bytes",
    "check_layout",
    "restoring",
]

#: The files (and folder) a run writes; ``overwrite`` deletes exactly these (and ``rank*.pt``).
RUN_FILES = ("config.json", "history.json", "history.csv", "checkpoint.pt", "summary.json", "tensorboard")
#: The files that hold results: a directory with any of them holds a run that must not be lost. A run
#: killed before its first checkpoint leaves only ``config.json`` (and maybe ``tensorboard/``).
RESULT_FILES = ("history.json", "history.csv", "checkpoint.pt", "summary.json")


#: The layout of ``checkpoint.pt`` (its ``format`` entry). A checkpoint without the entry is of format 0, the
#: same layout written before the entry existed. Raise it when the layout changes, and read the old one.
CHECKPOINT_FORMAT = 1
#: What ``checkpoint.pt`` holds (rank 0), and what each other rank's ``rank<N>.pt`` holds under torchrun,
#: with the type each entry must have (None: the entry may be None).
CHECKPOINT_KEYS: dict[str, tuple[type, ...]] = {
    "epoch": (int,),
    "config": (dict,),
    "model": (dict,),
    "optimizer": (dict,),
    "adaptive": (dict, type(None)),
    "schedule": (dict, type(None)),
    "scaler": (dict,),
    "history": (list,),
    "rng_cpu": (torch.Tensor,),
    "rng_cuda": (torch.Tensor, type(None)),
    "rng_data": (torch.Tensor,),
}
RANK_KEYS = {key: CHECKPOINT_KEYS[key] for key in ("epoch", "adaptive", "rng_cpu", "rng_cuda", "rng_data")}


def check_layout(state: dict[str, Any], keys: dict[str, tuple[type, ...]], path: Path) -> None:
    """Refuse (naming ``path``) a checkpoint of a newer format, or one that lacks an entry or holds one of the
    wrong type."""
    version = state.get("format", 0)
    if not isinstance(version, int) or version > CHECKPOINT_FORMAT:
        raise RunDirError(
            f"cannot resume: {path} has checkpoint format {version!r}; this version reads up to "
            f"{CHECKPOINT_FORMAT}: resume with the version that wrote it, or pass --overwrite to start over"
        )
    missing = [key for key in keys if key not in state]
    wrong = [
        f"{key} is {type(state[key]).__name__}"
        for key, types in keys.items()
        if key in state and not isinstance(state[key], types)
    ]
    if missing or wrong:
        what = "; ".join(([f"it lacks {', '.join(missing)}"] if missing else []) + wrong)
        raise RunDirError(
            f"cannot resume: {path} is damaged or not a checkpoint of this project ({what}); "
            "pass --overwrite to start the run over"
        )
    if "history" in keys and len(state["history"]) != state["epoch"]:
        raise RunDirError(
            f"cannot resume: {path} is damaged: it is from epoch {state['epoch']} but holds "
            f"{len(state['history'])} history rows; pass --overwrite to start the run over"
        )


@contextlib.contextmanager
def restoring(path: Path, part: str) -> Iterator[None]:
    """Turn an error while restoring ``part`` of a checkpoint into a :class:`RunDirError` naming the file."""
    try:
        yield
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError, IndexError) as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RunDirError(
            f"cannot resume: the {part!r} entry of {path} does not fit this run ({type(error).__name__}: {detail}); "
            "was it written by another config or version? Pass --overwrite to start the run over"
        ) from error


#: The temporary file :func:`atomic_write_bytes` writes beside ``path`` (a process killed mid-write leaves it;
#: :meth:`RunDirectory.prepare` removes such leftovers).
TEMPORARY = ".{name}.tmp-{pid}"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(TEMPORARY.format(name=path.name, pid=os.getpid()))
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()  # only left behind when the write failed (a full disk, say)


def atomic_torch_save(obj: Any, path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


class RunDirectory:
    """The output directory of one run (see the module docstring for the rules)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._locked = False

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_NAME

    def rank_file(self, rank: int) -> Path:
        return self.path / f"rank{rank}.pt"

    def existing_run_files(self, names: tuple[str, ...] = RUN_FILES) -> list[str]:
        if not self.path.is_dir():
            return []
        found = [name for name in names if (self.path / name).exists()]
        return found + sorted(p.name for p in self.path.glob("rank*.pt"))

    def check(self, *, resume: bool, overwrite: bool) -> bool:
        """Check the directory against ``resume``/``overwrite`` without changing anything.

        Returns whether there is a checkpoint to resume from. Raises :class:`RunDirError` when the
        directory holds a run and neither flag is given, when a resume finds a history but no
        checkpoint, when the path cannot be a directory, or when a run that may be alive holds its lock
        (so a refused ``--overwrite`` deletes nothing).
        """
        if resume and overwrite:
            raise RunDirError("--resume continues a run and --overwrite replaces it: give one of them")
        self._check_path()
        if self.path.is_dir() and not self._locked:
            try:
                check_unlocked(self.path)
            except LockError as error:
                raise RunDirError(str(error)) from None
        existing = [] if overwrite else self.existing_run_files(RESULT_FILES)
        if resume:
            if self.checkpoint.exists():
                return True
            if existing:
                raise RunDirError(
                    f"cannot resume {self.path}: it holds {', '.join(existing)} but no checkpoint.pt, so resuming "
                    "would start over and rewrite that history; pass --overwrite to start over, or restore "
                    "checkpoint.pt"
                )
        elif existing:
            raise RunDirError(
                f"{self.path} already holds a run ({', '.join(existing)}); pass --resume to continue it, "
                "--overwrite to replace it, or another --out"
            )
        return False

    def _check_path(self) -> None:
        """Refuse an output path that cannot be a directory: a dangling symbolic link, or a file."""
        if self.path.is_symlink() and not self.path.exists():
            raise RunDirError(
                f"the output path {self.path} is a symbolic link to {os.readlink(self.path)}, which does not exist; "
                "create its target or choose another --out"
            )
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"the output path {self.path} is a file, not a directory; choose another --out")

    def prepare(self, *, resume: bool, overwrite: bool) -> bool:
        """:meth:`check`, then (``overwrite``) delete the run's files; call it while holding :meth:`lock`.

        Returns whether there is a checkpoint to resume from.
        """
        if not self._locked:
            raise RuntimeError(f"RunDirectory.prepare({self.path}) must run under RunDirectory.lock()")
        has_checkpoint = self.check(resume=resume, overwrite=overwrite)
        leftovers = sorted(self.path.glob(TEMPORARY.format(name="*", pid="*")))
        if leftovers:  # under the lock no other run writes here: a killed process's half-written files
            logger.warning(
                "removing %s, left half-written in %s by a process killed while writing",
                ", ".join(p.name for p in leftovers),
                self.path,
            )
            for path in leftovers:
                path.unlink()
        stale = self.existing_run_files() if overwrite else []
        if stale:
            logger.warning("overwriting the run in %s (%s)", self.path, ", ".join(stale))
            for name in stale:
                target = self.path / name
                shutil.rmtree(target) if target.is_dir() else target.unlink()
        if resume and not has_checkpoint:
            logger.info("no run in %s yet: --resume starts it from scratch", self.path)
        if not os.access(self.path, os.W_OK):
            raise RunDirError(f"the output directory {self.path} is not writable; choose another --out")
        return has_checkpoint

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Create the directory and hold its lock while the run writes (:mod:`lipschitz_lr_experiments.run_lock`);
        :class:`RunDirError` if another run that may be alive holds it."""
        self._check_path()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RunDirError(f"cannot create the output directory {self.path}: {error.strerror}") from error
        try:
            with hold_lock(self.path):
                self._locked = True
                try:
                    yield
                finally:
                    self._locked = False
        except LockError as error:
            raise RunDirError(str(error)) from None

    # ------------------------------------------------------------ what a run writes (all atomically)
    def write_json(self, name: str, obj: Any) -> None:
        """``config.json`` or ``summary.json``."""
        atomic_write_bytes(self.path / name, json.dumps(obj, indent=1).encode())

    def write_history(self, history: list[dict[str, Any]]) -> None:
        """``history.json`` and ``history.csv`` (columns :data:`lipschitz_lr_experiments.history.HISTORY_FIELDS`)."""
        self.write_json("history.json", history)
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=HISTORY_FIELDS)
        writer.writeheader()
        writer.writerows(history)
        atomic_write_bytes(self.path / "history.csv", text.getvalue().encode())

    def save_checkpoint(self, state: dict[str, Any], rank: int = 0) -> None:
        """Rank 0's ``checkpoint.pt``, or another rank's ``rank<N>.pt`` (its RNG states)."""
        atomic_torch_save(state, self.checkpoint if rank == 0 else self.rank_file(rank))

    def load_checkpoint(self, map_location: Any, rank: int = 0) -> dict[str, Any]:
        """What :meth:`save_checkpoint` wrote for ``rank`` (see :meth:`load` for the errors)."""
        return self.load(self.checkpoint if rank == 0 else self.rank_file(rank), map_location)

    # ------------------------------------------------------------ what a resume reads
    def load(self, path: Path, map_location: Any) -> dict[str, Any]:
        """``torch.load`` a checkpoint or rank file, or a :class:`RunDirError` that names the file."""
        try:
            state = torch.load(path, map_location=map_location, weights_only=False)
        except FileNotFoundError as error:
            raise RunDirError(f"cannot resume: {path} is missing") from error
        except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as error:
            raise RunDirError(
                f"cannot resume: {path} is damaged or not a checkpoint ({type(error).__name__}: {error}); "
                "pass --overwrite to start the run over"
            ) from error
        if not isinstance(state, dict):
            raise RunDirError(
                f"cannot resume: {path} is not a checkpoint of this project (it holds a {type(state).__name__}, "
                "not a dict); pass --overwrite to start the run over"
            )
        return state
