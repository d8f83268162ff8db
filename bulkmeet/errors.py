"""Exit statuses and the exception hierarchy.

Every failure an ops user can meet is one of these exceptions, each with a message written for a
person at 7 a.m., and each mapped to one exit status in one place (``ExitStatus`` on the class).
The CLI catches ``BulkmeetError`` and prints ``str(exc)``; nothing else reaches the user.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable
from enum import IntEnum


class ExitStatus(IntEnum):
    """What a cron wrapper or monitoring script should branch on.

    This is the one home of the exit-status text: each member carries the sentence shown in
    ``--help`` (``meaning``) and the README's "what to do" column (``action``); the CLI epilog is
    generated from it and ``tests/test_docs.py`` checks that the README table matches it.
    """

    meaning: str
    action: str

    def __new__(cls, value: int, meaning: str, action: str) -> ExitStatus:
        member = int.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        member.action = action
        return member

    OK = (0, "every row has a meeting",
          "nothing")
    ROWS_FAILED = (1, "some rows failed, were invalid or duplicates",
                   "read the `error` column of the output sheet; failed rows are retried by the "
                   "next run")
    UNUSABLE_INPUT = (2, "nothing was sent: the schedule or config is unusable",
                      "the message names the file, sheet or column")
    AUTH_FAILED = (3, "authentication failed before any row was sent",
                   "the message says which secret/consent/tenant to fix")
    INTERRUPTED = (4, "stopped by Ctrl-C or SIGTERM",
                   "the journal and output were written; run again to finish")
    LOCKED = (5, "another bulkmeet run is working on the same schedule",
              "wait for it (cron overlap); a killed run never leaves a lock behind")
    WRITE_FAILED = (6, "the journal or the output sheet could not be written (disk full, "
                       "permissions)",
                    "free space or fix permissions, run again: nothing is lost")
    CHANGES_PENDING = (7, "every row is done, but changes are pending that this run did not "
                          "apply: meetings of removed rows are still in Teams (orphaned)",
                       "read the Removed sheet; cancel them with --cancel-removed (or [sync] "
                       "cancel_removed = true), or put the rows back")
    CANCEL_REFUSED = (8, "nothing was cancelled: more meetings would have been cancelled than "
                         "the safety limit allows",
                      "check that the export is complete; if the cancels are right, run again "
                      "with --max-cancel N (the message gives N)")
    INTERNAL_ERROR = (70, "internal error (a bug)",
                      "report it with the log file")


def exit_status_help() -> str:
    """The ``Exit status`` epilog of every command, generated from ``ExitStatus``.

    The leading ``\\b`` tells click not to rewrap the lines.
    """
    lines = ["\b", "Exit status:"]
    lines += [f"  {status.value:<2} {status.meaning}" for status in ExitStatus]
    return "\n".join(lines) + "\n"


class BulkmeetError(Exception):
    """Base of every error that is shown to the user as one clear sentence."""

    exit_status: ExitStatus = ExitStatus.INTERNAL_ERROR


class InputError(BulkmeetError):
    """The schedule file cannot be used (missing, unreadable, unknown sheet, missing column)."""

    exit_status = ExitStatus.UNUSABLE_INPUT


class ConfigError(InputError):
    """The mapping config is missing, malformed, or contradicts itself."""


class AuthError(BulkmeetError):
    """No usable token: wrong secret, unknown tenant/app, missing consent, expired login."""

    exit_status = ExitStatus.AUTH_FAILED


class LockedError(BulkmeetError):
    """Another run is working on the same schedule (cron overlap)."""

    exit_status = ExitStatus.LOCKED


class WriteError(BulkmeetError):
    """A file bulkmeet must write (journal, output, lock) cannot be: disk full, permissions."""

    exit_status = ExitStatus.WRITE_FAILED


class UnsafeURLError(ConfigError):
    """A Graph or authority URL that would send a token in clear text or off this machine."""


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """The " Did you mean 'x'?" tail of an unknown-key message, or "" when nothing is close.

    One home for the hint, so every config section (and its own parser module) words it alike.
    """
    close = difflib.get_close_matches(value, sorted(choices), n=1)
    return f" Did you mean '{close[0]}'?" if close else ""
