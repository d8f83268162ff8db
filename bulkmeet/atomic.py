"""Write a file so that readers see the old version or the new one, never half of either.

The output sheet, the token cache and the emulator state are all rewritten while a cron job may
be killed, a disk may fill up, or a person may open the file in Excel. Writing in place would leave
a truncated file behind on any of those; so every writer goes through here: a temporary file in
the same folder (``os.replace`` is atomic only within one file system), flushed and fsynced before
the rename, and the folder fsynced after it so the rename itself survives a power cut.

Temporary files are named ``.NAME.XXXXXXXX.tmp`` beside ``NAME`` (``temp_file_for``), helpers'
scratch files too (openpyxl's per-sheet XML for the output sheet). A process killed with -9
cannot remove its own, so the next writer of ``NAME`` calls ``remove_stale_temp_files``: only
files of exactly that pattern, and only ones older than a minute.
"""
from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_file", "atomic_write", "atomic_write_bytes", "current_umask",
           "remove_stale_temp_files", "temp_file_for"]

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
    fd, tmp = temp_file_for(target)
    try:
        with os.fdopen(fd, "w+b") as handle:
            os.fchmod(handle.fileno(), mode & ~current_umask() & 0o7777)
            yield handle
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


def temp_file_for(path: str | os.PathLike[str], suffix: str = ".tmp") -> tuple[int, Path]:
    """A new private file ``.NAME.XXXXXXXX<suffix>`` beside ``path``: (open fd, its path)."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not suffix.endswith(".tmp"):
        raise ValueError("temporary file names end in .tmp, so that the clean-up finds them")
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=folder)
    return fd, Path(name)


def remove_stale_temp_files(path: str | os.PathLike[str], *, older_than: float = 60.0
                            ) -> list[Path]:
    """Delete ``.NAME.XXXXXXXX*.tmp`` files beside ``path`` left by a killed writer.

    Call it while holding the lock that serialises writers of ``path``; the age limit keeps even
    an unlocked writer's file safe. Returns what was removed; errors are ignored (best effort).
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[a-z0-9_]{{8}}(?:\.[a-z]+)?\.tmp")
    removed: list[Path] = []
    cutoff = time.time() - older_than
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not pattern.fullmatch(entry.name):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


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
