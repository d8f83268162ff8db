"""The files a run reads and writes, checked before anything is sent.

A run writes up to four files besides reading the schedule: the output sheet, the journal (with
its lock and SQLite's ``-wal``/``-shm`` sidecars), a log file and a summary JSON. A typo in one
option can point two of them at the same file, or one of them at the schedule itself
(``--output term.xlsx``, also as ``../dept/term.xlsx`` or through a symlink): the output would
then overwrite the schedule (and, for a workbook, every other sheet in it), or the journal would
be replaced by a spreadsheet. Those mistakes are refused here, up front, after resolving ``..``
and symlinks; and so is a path that is a folder or not a regular file (a FIFO would make the run
hang for ever, a device such as ``/dev/full`` would be replaced by the atomic rename).

The output sheet is locked for the whole run (``lock_output``), like the journal: two runs on
one schedule with different ``--journal`` files would otherwise race on one output.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from bulkmeet.errors import InputError, WriteError

__all__ = ["check_readable_file", "check_run_paths", "lock_output", "output_lock_path"]


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def check_readable_file(path: Path, what: str) -> None:
    """Refuse what would hang or mislead a reader: a folder, a FIFO, a device, a socket.

    Checked with ``stat`` (which never blocks), before anything opens the file.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found.") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what} ({exc.strerror}).") from None
    if stat.S_ISDIR(mode):
        raise InputError(f"{path}: is a folder, not a {what}.")
    if not stat.S_ISREG(mode):
        raise InputError(f"{path}: is {_kind(mode)}, not a {what}; bulkmeet reads regular files "
                         "only (copy the data into a file first).")


def _resolved(path: Path) -> Path:
    return Path(os.path.abspath(os.path.expanduser(path))).resolve(strict=False)


def _same(a: Path, b: Path) -> bool:
    if _resolved(a) == _resolved(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:
        return False


_EXAMPLES = {"the output sheet": "schedule.results.xlsx", "the journal": "schedule.journal.sqlite",
             "the summary JSON": "summary.json", "the log file": "bulkmeet.log"}


def _writable_target(path: Path, label: str, option: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise InputError(f"Cannot use {path} as {label} ({exc.strerror}); choose another file "
                         f"with {option}.") from None
    if mode is not None:
        if stat.S_ISDIR(mode):
            raise InputError(f"{path} is a folder, so it cannot be {label}; give a file name "
                             f"with {option} (for example {Path(path) / _EXAMPLES.get(label, 'file')}).")
        if not stat.S_ISREG(mode):
            raise InputError(f"{path} is {_kind(mode)}, so it cannot be {label}; give a regular "
                             f"file with {option}.")
    folder = _resolved(path).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the folders that do not exist yet are created when written
    if not folder.is_dir():
        raise InputError(f"Cannot write {label} {path}: {folder} is not a folder; choose another "
                         f"file with {option}.")
    if not os.access(folder, os.W_OK | os.X_OK) or (
            mode is not None and not os.access(path, os.W_OK)):
        what = folder if mode is None or os.access(path, os.W_OK) else path
        raise WriteError(f"Cannot write {label} {path}: {what} is not writable (permissions); "
                         f"make it writable or choose another file with {option}.")


def check_run_paths(schedule: Path, targets: Mapping[str, tuple[Path | None, str]]) -> None:
    """Raise ``InputError`` (exit 2) or ``WriteError`` (exit 6) for a target that cannot work.

    Nothing has been sent when this raises. Same-file mistakes, folders and FIFOs are input
    errors; a folder or file without write permission is a write failure, as the README says.

    ``targets`` maps a label ("the output sheet") to (path or None, the option that sets it).
    A target may not be the schedule, another target, or another target's sidecar file; it may
    not be a folder or a non-regular file; its folder must be writable.
    """
    given = [(label, Path(p), option) for label, (p, option) in targets.items() if p is not None]
    owned: list[tuple[int, str, Path, str]] = []  # (owner, label, path, option), sidecars too
    for owner, (label, path, option) in enumerate(given):
        owned.append((owner, label, path, option))
        for side_label, side in _sidecars(label, path):
            owned.append((owner, side_label, side, option))
    for _, label, path, option in owned:
        if _same(path, schedule):
            raise InputError(
                f"{label[0].upper()}{label[1:]} {path} is the schedule itself ({schedule}): "
                f"writing it would overwrite the schedule. Choose another file with {option}.")
    for i, (owner, label, path, option) in enumerate(owned):
        for other_owner, other_label, other, other_option in owned[i + 1:]:
            if owner != other_owner and _same(path, other):
                raise InputError(
                    f"{label[0].upper()}{label[1:]} ({option}) and {other_label} "
                    f"({other_option}) are the same file, {_resolved(path)}: one would "
                    "overwrite the other. Give each its own file.")
    for label, path, option in given:
        _writable_target(path, label, option)


def _sidecars(label: str, path: Path) -> list[tuple[str, Path]]:
    if label == "the journal":
        from bulkmeet.journal import lock_path_for

        return [(f"{label}'s lock file", lock_path_for(path)),
                (f"{label}'s -wal file", path.with_name(path.name + "-wal")),
                (f"{label}'s -shm file", path.with_name(path.name + "-shm"))]
    if label == "the output sheet":
        return [(f"{label}'s lock file", output_lock_path(path))]
    return []


def output_lock_path(output: Path) -> Path:
    """``term.results.xlsx`` -> ``term.results.xlsx.lock``, beside it."""
    output = Path(output)
    return output.with_name(output.name + ".lock")


@contextmanager
def lock_output(output: Path, schedule: str | None) -> Iterator[None]:
    """Hold an exclusive lock on the output sheet for the run (``LockedError`` if taken)."""
    from bulkmeet.journal import RunLock

    lock_file = output_lock_path(output)
    try:
        lock_file.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"Cannot create the folder {lock_file.parent} for the output sheet "
                         f"({exc.strerror}).") from None
    lock = RunLock.acquire(lock_file, schedule)
    try:
        yield
    finally:
        lock.release()
