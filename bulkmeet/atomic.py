"""Write a file so that readers see the old version or the new one, never half of either.

The output sheet, the token cache and the emulator state are all rewritten while a cron job may
be killed, a disk may fill up, or a person may open the file in Excel. Writing in place would leave
a truncated file behind on any of those; so every writer goes through here: a temporary file in
the same folder (``os.replace`` is atomic only within one file system), flushed and fsynced before
the rename, and the folder fsynced after it so the rename itself survives a power cut.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_file", "atomic_write", "atomic_write_bytes", "current_umask"]

DEFAULT_MODE = 0o644


def current_umask() -> int:
    """The process umask, read without changing it where the kernel allows.

    ``os.umask`` can only be read by setting it, which races with other threads creating files;
    Linux (4.7+) shows it in /proc/self/status, so that is tried first.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable; some file systems refuse to open or fsync a directory."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: str | os.PathLike[str], *, mode: int = DEFAULT_MODE) -> Iterator[BinaryIO]:
    """``with atomic_file(p) as f: f.write(...)`` replaces ``p`` only if the block finishes.

    ``mode`` is applied minus the umask, as ``open()`` would do (mkstemp alone gives 0600); pass
    ``0o600`` for files holding secrets such as a token cache. If the block raises, the temporary
    file is removed and ``p`` is untouched.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w+b") as handle:
            os.fchmod(handle.fileno(), mode & ~current_umask() & 0o7777)
            yield handle  # type: ignore[misc]
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(folder)


def atomic_write(
    path: str | os.PathLike[str], writer: Callable[[BinaryIO], None], *, mode: int = DEFAULT_MODE
) -> None:
    """Call ``writer(fileobj)`` and put the result at ``path`` atomically (see ``atomic_file``)."""
    with atomic_file(path, mode=mode) as handle:
        writer(handle)


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, mode: int = DEFAULT_MODE
) -> None:
    with atomic_file(path, mode=mode) as handle:
        handle.write(data)
