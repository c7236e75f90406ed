"""One writer per run directory: a lock that is safe under contention and on a shared filesystem.

The lock is the file ``.lock`` in the run directory. It names its holder as JSON: the host, the
process id, the process's start time (Linux ``/proc``; it tells a live holder from a recycled pid) and
a random token. The rules:

* **Atomic and complete.** ``.lock`` is written to a temporary file and hard-linked into place
  (``os.link`` fails if the name exists, on local filesystems and NFS alike), so a reader never sees
  an empty or half-written lock.
* **Serialised decisions.** Reading a lock, judging it stale and replacing it happen while holding
  ``.lock.guard`` (:class:`filelock.FileLock`, ``flock``): two processes never both take over the same
  stale lock. ``.lock.guard`` stays in the directory (an empty file; deleting it would reopen the race).
* **Stale only when provably dead.** A lock of this host whose process is gone, or whose pid now
  belongs to a process started at another time (a recycled pid, e.g. after a container restart), is
  taken over with a warning. A lock of another host, or one that cannot be read, is never taken over:
  the error names the holder and the way to break it, ``lipschitz-lr unlock DIR`` (see
  :func:`break_lock`), once the user knows no run is writing there.
* **Released by its owner only**: on exit the lock is removed only if it still holds this token.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from filelock import FileLock, Timeout

logger = logging.getLogger(__name__)

__all__ = ["LOCK_NAME", "LockError", "LockHolder", "break_lock", "hold_lock", "read_lock"]

LOCK_NAME = ".lock"
GUARD_NAME = ".lock.guard"
#: Seconds to wait for ``.lock.guard`` (held only for the few file operations of a decision).
GUARD_TIMEOUT_S = 60.0


class LockError(RuntimeError):
    """The run directory is locked by another run (or its lock cannot be judged); the message says what to do."""


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot, from ``/proc``), or None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return fields[19] if len(fields) > 19 else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lock: ``host``, ``pid``, the process's ``start`` time (None: unknown), a ``token``."""

    host: str
    pid: int
    start: str | None
    token: str

    @classmethod
    def me(cls) -> LockHolder:
        return cls(socket.gethostname(), os.getpid(), _process_start(os.getpid()), uuid.uuid4().hex)

    def describe(self) -> str:
        return f"process {self.pid} on host {self.host}"

    def alive(self) -> bool | None:
        """True or False for a holder on this host; None for another host's (which cannot be checked)."""
        if self.host != socket.gethostname():
            return None
        if not _pid_alive(self.pid):
            return False
        if self.start is not None:
            now = _process_start(self.pid)
            if now is not None and now != self.start:
                return False  # the pid was recycled: another process started since the lock was written
        return True


def read_lock(path: Path) -> LockHolder | None:
    """The holder of the lock file ``path``; None when there is none. Raises :class:`LockError` for a file that
    cannot be read as a lock (it names the file). A lock of the earlier format (a bare pid) reads as a holder
    on this host with an unknown start time."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise LockError(f"cannot read the lock {path} ({error}); {_how_to_break(path)}") from error
    stripped = text.strip()
    if stripped.isdigit():
        return LockHolder(socket.gethostname(), int(stripped), None, "")
    try:
        raw = json.loads(stripped)
        return LockHolder(str(raw["host"]), int(raw["pid"]), raw.get("start"), str(raw["token"]))
    except (ValueError, KeyError, TypeError) as error:
        raise LockError(
            f"the lock {path} does not say who holds it ({stripped[:60]!r}); {_how_to_break(path)}"
        ) from error


def _how_to_break(path: Path) -> str:
    return (
        f"if no run is writing to {path.parent}, break the lock with `lipschitz-lr unlock {path.parent}` "
        f"(or delete {path})"
    )


@contextlib.contextmanager
def _guard(directory: Path) -> Iterator[None]:
    try:
        with FileLock(str(directory / GUARD_NAME), timeout=GUARD_TIMEOUT_S):
            yield
    except Timeout as error:
        raise LockError(
            f"could not take {directory / GUARD_NAME} within {GUARD_TIMEOUT_S:.0f} s (another process holds it); "
            "try again"
        ) from error


def _refusal(path: Path, holder: LockHolder, alive: bool | None) -> LockError:
    if alive is None:
        return LockError(
            f"another run ({holder.describe()}) holds {path}; it cannot be checked from host {socket.gethostname()}, "
            f"so it is not taken over: wait for it to end, use another --out, or {_how_to_break(path)}"
        )
    return LockError(
        f"another run ({holder.describe()}) is writing to {path.parent}; wait for it to end or use another --out "
        f"({_how_to_break(path)})"
    )


def _acquire(path: Path) -> LockHolder:
    me = LockHolder.me()
    with _guard(path.parent):
        holder = read_lock(path)
        if holder is not None:
            alive = holder.alive()
            if alive is not False:
                raise _refusal(path, holder, alive)
            logger.warning("taking over %s: the run that held it (%s) is gone", path, holder.describe())
            path.unlink(missing_ok=True)
        tmp = path.with_name(f"{LOCK_NAME}.{me.token}")
        try:
            tmp.write_text(json.dumps(asdict(me)))
            os.link(tmp, path)  # atomic: fails if a process that does not share the guard was first
        except FileExistsError:
            holder = read_lock(path)
            raise _refusal(path, holder, holder.alive() if holder else None) from None
        finally:
            tmp.unlink(missing_ok=True)
    return me


def _release(path: Path, me: LockHolder) -> None:
    with _guard(path.parent):
        with contextlib.suppress(LockError):
            if read_lock(path) == me:
                path.unlink(missing_ok=True)
                return
        logger.warning("%s no longer holds this run's lock (it was broken or taken over); left as it is", path)


@contextlib.contextmanager
def hold_lock(directory: Path) -> Iterator[LockHolder]:
    """Hold ``directory/.lock`` for the duration; :class:`LockError` if another run holds it."""
    path = directory / LOCK_NAME
    me = _acquire(path)
    try:
        yield me
    finally:
        _release(path, me)


def check_unlocked(directory: Path) -> None:
    """Raise :class:`LockError` if a run that may be alive holds ``directory/.lock`` (a check, not a hold)."""
    path = directory / LOCK_NAME
    holder = read_lock(path)
    if holder is not None:
        alive = holder.alive()
        if alive is not False:
            raise _refusal(path, holder, alive)


def break_lock(directory: Path, *, force: bool = False) -> str:
    """Remove ``directory/.lock`` left by a run that is gone; returns what was done.

    A lock whose holder is provably dead (this host) is removed. One held by a live process of this host,
    one of another host, or one that cannot be read is removed only with ``force`` (the user's word that no
    run is writing there); otherwise :class:`LockError` names the holder.
    """
    path = directory / LOCK_NAME
    with _guard(directory) if directory.is_dir() else contextlib.nullcontext():
        try:
            holder = read_lock(path)
        except LockError:
            if not force:
                raise
            holder = None
        if holder is None and not path.exists():
            return f"{directory} is not locked"
        alive = holder.alive() if holder is not None else None
        if alive is not False and not force:
            where = "alive on this host" if alive else "on another host: it cannot be checked from here"
            raise LockError(
                f"{path} is held by {holder.describe() if holder else 'an unknown run'} ({where}); "
                "pass --force if you are sure no run is writing there"
            )
        path.unlink(missing_ok=True)
    return f"removed {path}" + (f" (held by {holder.describe()})" if holder else "")
