"""Writing the emulator's files safely.

A restarted emulator must remember the meetings it made, as a real tenant would; a state file
cut short by a kill would make it forget them (or refuse to start). Every file is written to a
temporary sibling, flushed, fsynced and renamed over the old one.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

STATE_VERSION = 1


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o600) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable; not every filesystem allows a directory fsync
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def write_json(path: Path, data: Any, mode: int = 0o600) -> None:
    atomic_write_bytes(path, json.dumps(data, indent=1, sort_keys=True).encode(), mode)


def load_state(path: Path) -> dict[str, Any]:
    """The saved state, or an empty one when the file does not exist yet."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the emulator state file ({exc.strerror}).") from None
    try:
        data = json.loads(raw)
    except ValueError:
        raise ValueError(
            f"{path}: the emulator state file is not valid JSON; delete it to start with an "
            "empty tenant, or pass another --state file."
        ) from None
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        raise ValueError(
            f"{path}: not a bulkmeet emulator state file (version {STATE_VERSION}); delete it "
            "or pass another --state file."
        )
    return data
