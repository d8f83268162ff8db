"""The run lock: one bulkmeet run per schedule (and per output sheet) at a time.

A ``fcntl.flock`` on a sidecar file (``NAME.journal.lock``, ``NAME.results.xlsx.lock``). The kernel
drops the lock when the holding process dies however it dies, so a kill -9'd run never blocks the
next one, and there is no stale-lock cleanup to get wrong. Who holds it (pid, host, start time) is
written inside, only for the message a second run shows.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bulkmeet.errors import InputError, LockedError, WriteError

__all__ = ["RunLock", "lock_path_for"]


def lock_path_for(journal: Path) -> Path:
    """``term.journal.sqlite`` -> ``term.journal.lock``; never the journal file itself."""
    journal = Path(journal)
    if journal.suffix in ("", ".lock"):
        return journal.with_name(journal.name + ".lock")
    return journal.with_suffix(".lock")


@dataclass(frozen=True)
class _LockInfo:
    pid: int | None
    host: str | None
    started: str | None  # local ISO time
    schedule: str | None

    @classmethod
    def parse(cls, raw: bytes) -> _LockInfo:
        try:
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict):
                raise ValueError
        except ValueError:
            return cls(None, None, None, None)
        pid = data.get("pid")
        return cls(
            pid if isinstance(pid, int) else None,
            str(data["host"]) if data.get("host") else None,
            str(data["started"]) if data.get("started") else None,
            str(data["schedule"]) if data.get("schedule") else None,
        )


def _when(started: str | None) -> str | None:
    """'02:00:03' for today, '2024-05-01 02:00:03' for an older run (a hung one, probably)."""
    if not started:
        return None
    try:
        moment = datetime.fromisoformat(started)
    except ValueError:
        return started
    if moment.date() == datetime.now().date():
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%Y-%m-%d %H:%M:%S")


class RunLock:
    """An exclusive flock on the sidecar file, with who-holds-it written inside for the message."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, path: Path, schedule: str | None) -> RunLock:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise WriteError(
                f"Cannot create the lock file {path} ({exc.strerror}). bulkmeet keeps its locks "
                "beside the journal and the output sheet: make that folder writable, or point "
                "--journal ([run] journal) or --output at a writable folder."
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            try:
                holder = _LockInfo.parse(os.pread(fd, 4096, 0))
            finally:
                os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LockedError(cls._locked_message(path, holder, schedule)) from None
            raise InputError(f"Cannot lock {path} ({exc.strerror}).") from None
        lock = cls(path, fd)
        lock.describe(schedule)
        return lock

    @staticmethod
    def _locked_message(path: Path, holder: _LockInfo, schedule: str | None) -> str:
        what = holder.schedule or schedule or path.name.removesuffix(".lock")
        details = []
        if holder.pid is not None:
            details.append(f"pid {holder.pid}")
        if holder.host and holder.host != socket.gethostname():
            details.append(f"on {holder.host}")
        when = _when(holder.started)
        if when:
            details.append(f"started {when}")
        who = f" ({', '.join(details)})" if details else ""
        check = f"`ps -p {holder.pid}`" if holder.pid is not None else "`ps aux | grep bulkmeet`"
        return (
            f"Another bulkmeet run is already working on {what}{who}, so this run stopped "
            f"without sending anything. If no other run is going, look for a hung bulkmeet "
            f"process ({check}) and stop it: its lock on {path} is released the moment it ends, "
            "and the next run carries on where it left off."
        )

    def describe(self, schedule: str | None) -> None:
        """Write who holds the lock; best effort, the lock itself is the flock, not the text."""
        if self._fd is None:
            return
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.now().astimezone().isoformat(timespec="seconds"),
            "schedule": schedule,
        }
        data = json.dumps(info).encode()
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, data, 0)
        except OSError:
            pass

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        # The lock file is left in place: deleting it would let a third run lock a new inode
        # while a second one still waits on the old one.
        os.close(fd)  # closing the last descriptor releases the flock
