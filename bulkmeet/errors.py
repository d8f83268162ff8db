"""Exit statuses and the exception hierarchy.

Every failure an ops user can meet is one of these exceptions, each with a message written for a
person at 7 a.m., and each mapped to one exit status in one place (``ExitStatus`` on the class).
The CLI catches ``BulkmeetError`` and prints ``str(exc)``; nothing else reaches the user.
"""
from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """What a cron wrapper or monitoring script should branch on (documented in the README)."""

    OK = 0  # every row has a meeting
    ROWS_FAILED = 1  # some rows failed or were invalid; the output sheet says which
    UNUSABLE_INPUT = 2  # nothing was sent: input file or config unusable
    AUTH_FAILED = 3  # could not authenticate before any row was sent
    INTERRUPTED = 4  # stopped by SIGINT/SIGTERM; journal and output were written, rerun to finish
    LOCKED = 5  # another bulkmeet run holds this schedule's journal
    WRITE_FAILED = 6  # the journal or output could not be written (disk full, permissions)
    INTERNAL_ERROR = 70  # a bug: report it


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


class UnsafeURLError(ConfigError):
    """A Graph or authority URL that would send a token in clear text or off this machine."""
