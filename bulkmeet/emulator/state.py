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

STATE_VERSION = 1
JOURNAL_SUFFIX = ".journal"


def journal_path(state: Path) -> Path:
    return state.with_name(state.name + JOURNAL_SUFFIX)


def write_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data, mode=mode)


def _damaged(path: Path, what: str) -> ValueError:
    return ValueError(f"{path}: {what}; delete it to start with an empty tenant, or pass another "
                      "--state file.")


def load_state(path: Path) -> dict[str, Any]:
    """The saved state with the journal replayed onto it; empty when neither file exists."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raw = b""
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the emulator state file ({exc.strerror}).") from None
    data: dict[str, Any] = {}
    if raw:
        try:
            data = json.loads(raw)
        except ValueError:
            raise _damaged(path, "the emulator state file is not valid JSON") from None
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise ValueError(f"{path}: not a bulkmeet emulator state file (version "
                             f"{STATE_VERSION}); delete it or pass another --state file.")
    _replay(journal_path(path), data)
    return data


def _replay(path: Path, data: dict[str, Any]) -> None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the emulator journal ({exc.strerror}).") from None
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
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._lock = threading.Lock()  # order of writes
        self._sync_lock = threading.Lock()  # one fsync at a time
        self._written = 0
        self._synced = 0
        self.fsyncs = 0

    def write(self, record: dict[str, Any] | bytes) -> int:
        """Append one record (call it while holding the lock that ordered the change)."""
        line = record if isinstance(record, bytes) else json.dumps(record, separators=(",", ":")).encode()
        with self._lock:
            os.write(self._fd, line + b"\n")
            self._written += 1
            return self._written

    def sync(self, seq: int) -> None:
        """Return once record ``seq`` is on disk; one fsync covers every record written so far."""
        if seq <= self._synced:
            return
        with self._sync_lock:
            if seq <= self._synced:
                return
            target = self._written
            _datasync(self._fd)  # the data and the length; an append needs no more
            self.fsyncs += 1
            self._synced = target

    def truncate(self) -> None:
        with self._lock, self._sync_lock:
            os.ftruncate(self._fd, 0)
            os.fsync(self._fd)

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
