"""The emulator's memory: a snapshot file plus an append-only journal, durable per write.

The emulator stands in for a tenant, and a tenant does not forget: a meeting Graph answered 201
for exists afterwards, whatever happens to the process. So every change (a meeting made, patched
or deleted; a refresh token or device code issued, approved or redeemed) is appended to
``STATE.journal`` and fsynced *before* the answer is sent; a ``kill -9`` then loses nothing a
client was told about. Concurrent writers share one fsync (group commit), so the cost is one
fsync per burst, not per request.

On start the snapshot (``STATE``, written atomically) is read, the journal replayed onto it and
both compacted into a fresh snapshot; a clean stop compacts again and removes the journal. A
journal line cut short by a kill is the one write that was never acknowledged: it is dropped.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from bulkmeet.atomic import atomic_write_bytes
from bulkmeet.errors import InputError, WriteError

STATE_VERSION = 1
JOURNAL_SUFFIX = ".journal"


class StateFileError(InputError, ValueError):
    """The state file or its journal cannot be read back (damaged, not ours, unreadable).

    A ``ValueError`` for the emulator's own command and tests; an ``InputError`` (exit 2) for an
    ``--emulator`` run, where the state file sits beside the schedule.
    """


class StateWriteError(WriteError, OSError):
    """The state file or its journal cannot be written (disk full, permissions).

    An ``OSError`` for code that already handles one; a ``WriteError`` (exit 6) for an
    ``--emulator`` run, so a full disk is one sentence, not an internal error.
    """

    def __init__(self, message: str, path: Path, cause: OSError) -> None:
        super().__init__(message)
        self.errno, self.strerror, self.filename = cause.errno, cause.strerror, str(path)

    def __str__(self) -> str:  # the sentence, not OSError's "[Errno 28] ..."
        return str(self.args[0])


def cannot_write(path: Path, what: str, exc: OSError) -> StateWriteError:
    """The one sentence for a failed state write: which file, why, and that nothing is lost."""
    why = exc.strerror or type(exc).__name__
    return StateWriteError(
        f"Cannot write {what} {path} ({why}). Free disk space or fix the folder's permissions, "
        "then run again: the meetings the emulator confirmed are in its state file and journal.",
        path, exc)


def journal_path(state: Path) -> Path:
    return state.with_name(state.name + JOURNAL_SUFFIX)


def write_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data, mode=mode)


def _damaged(path: Path, what: str) -> StateFileError:
    return StateFileError(f"{path}: {what}; delete it to start with an empty tenant, or pass "
                          "another --state file.")


def load_state(path: Path) -> dict[str, Any]:
    """The saved state with the journal replayed onto it; empty when neither file exists."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raw = b""
    except OSError as exc:
        raise StateFileError(f"{path}: cannot read the emulator state file ({exc.strerror}).") from None
    data: dict[str, Any] = {}
    if raw:
        try:
            data = json.loads(raw)
        except ValueError:
            raise _damaged(path, "the emulator state file is not valid JSON") from None
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise StateFileError(f"{path}: not a bulkmeet emulator state file (version "
                                 f"{STATE_VERSION}); delete it or pass another --state file.")
    _replay(journal_path(path), data)
    return data


def _replay(path: Path, data: dict[str, Any]) -> None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StateFileError(f"{path}: cannot read the emulator journal ({exc.strerror}).") from None
    if not raw:
        return
    meetings = {m["meeting"]["id"]: m for m in data.get("meetings", []) if isinstance(m, dict)
                and isinstance(m.get("meeting"), dict) and "id" in m["meeting"]}
    codes = {d["device_code"]: d for d in data.get("deviceCodes", []) if isinstance(d, dict)
             and "device_code" in d}
    refresh = dict(data.get("refreshTokens") or {})
    lines = raw.split(b"\n")
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            op = entry["op"]
            if op == "m":
                meetings[entry["r"]["meeting"]["id"]] = entry["r"]
            elif op == "d":
                meetings.pop(entry["id"], None)
            elif op == "rt":
                refresh[entry["token"]] = entry["grant"]
            elif op == "dc":
                codes[entry["code"]["device_code"]] = entry["code"]
            elif op == "dcx":
                codes.pop(entry["device_code"], None)
            elif op == "reset":  # POST /_emulator/reset: meetings and device codes forgotten
                meetings.clear()
                codes.clear()
            else:
                raise KeyError(op)
        except (ValueError, KeyError, TypeError):
            if n == len(lines) or (n == len(lines) - 1 and not lines[-1]):
                break  # cut short by a kill before it was acknowledged
            raise _damaged(path, f"the emulator journal is damaged at line {n}") from None
    data["meetings"] = list(meetings.values())
    data["deviceCodes"] = list(codes.values())
    data["refreshTokens"] = refresh


_datasync = getattr(os, "fdatasync", os.fsync)


class Journal:
    """Append-only, fsynced before the answer; concurrent writers share one fsync."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._size = os.fstat(self._fd).st_size
        except OSError as exc:
            raise cannot_write(path, "the emulator journal", exc) from None
        self._lock = threading.Lock()  # order of writes
        self._sync_lock = threading.Lock()  # one fsync at a time
        self._written = 0
        self._synced = 0
        self.fsyncs = 0

    def write(self, record: dict[str, Any] | bytes) -> int:
        """Append one record (call it while holding the lock that ordered the change).

        A write the disk refuses is cut off again, so a later record never follows half a line
        (which the next start would read as a damaged journal rather than a torn last write).
        """
        line = record if isinstance(record, bytes) else json.dumps(record, separators=(",", ":")).encode()
        data = memoryview(line + b"\n")
        with self._lock:
            try:
                done = 0
                while done < len(data):
                    done += os.write(self._fd, data[done:])
            except OSError as exc:
                self._cut_back()
                raise cannot_write(self.path, "the emulator journal", exc) from None
            self._size += len(data)
            self._written += 1
            return self._written

    def _cut_back(self) -> None:
        try:
            os.ftruncate(self._fd, self._size)
        except OSError:
            pass  # the torn line stays last until the next write; replay drops a torn last line

    def sync(self, seq: int) -> None:
        """Return once record ``seq`` is on disk; one fsync covers every record written so far."""
        if seq <= self._synced:
            return
        with self._sync_lock:
            if seq <= self._synced:
                return
            target = self._written
            try:
                _datasync(self._fd)  # the data and the length; an append needs no more
            except OSError as exc:
                raise cannot_write(self.path, "the emulator journal", exc) from None
            self.fsyncs += 1
            self._synced = target

    def truncate(self) -> None:
        with self._lock, self._sync_lock:
            try:
                os.ftruncate(self._fd, 0)
                os.fsync(self._fd)
            except OSError as exc:
                raise cannot_write(self.path, "the emulator journal", exc) from None
            self._size = 0

    def close(self, remove: bool = False) -> None:
        with self._lock:
            if self._fd < 0:
                return
            os.close(self._fd)
            self._fd = -1
        if remove:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
