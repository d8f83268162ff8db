"""The journal: every createOrGet result, kept the moment it arrives, beside the schedule.

Why it exists: a run over thousands of rows will sooner or later be killed (cron timeout, reboot,
Ctrl-C). Graph has already made the meetings it answered for; the journal is how the next run knows
that without asking again, and how the output sheet can still show the join links of a run that
died. So a result Graph sent back must never be lost once ``record()`` has returned.

Storage is SQLite in WAL mode, one file per schedule (``NAME.journal.sqlite`` by default).

Durability choice, measured on the build machine (2 cores, virtual disk) with 8 threads calling
``record()`` at once:

* ``synchronous=NORMAL``: 24,000-40,000 records/s. Each commit is appended to the WAL with
  ``write()`` before ``record()`` returns, so it is in the kernel and survives the process being
  killed at any instant (kill -9, OOM killer). Only a power cut or kernel crash can lose the last
  commits.
* ``synchronous=FULL``: 4,600-5,700 records/s here (about 8,600/s with a group-commit writer
  thread), but on a virtual disk whose fsync takes 0.3 ms; where an fsync takes 1-10 ms (plain
  SSDs, network storage) FULL falls to a few hundred commits/s, below the ~2,000 requests/s the
  client can send.

NORMAL is the default: what it can lose (the last results before a power cut) costs nothing but a
re-send, because createOrGet is keyed by externalId and simply returns the meeting it already
made (the row then shows ``existing`` instead of ``created``). A group-commit writer thread was
measured too and gave no gain at NORMAL, so each ``record()`` is one autocommitted INSERT under a
lock: simple, and committed before it returns.

Concurrency between runs: a ``fcntl.flock`` on the sidecar ``NAME.journal.lock``. The kernel drops
the lock when the holding process dies however it dies, so a kill -9'd run never blocks the next
one, and there is no stale-lock cleanup to get wrong.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bulkmeet.errors import BulkmeetError, ExitStatus, InputError, LockedError, WriteError
from bulkmeet.models import CREATED, EXISTING, UPDATED, MeetingInfo, MeetingResult, MeetingState
from bulkmeet.sync import ACTIVE, CANCELLED, DELETING, JournalledMeeting

__all__ = ["Journal", "JournalWriteError", "default_journal_path", "lock_path_for"]

# Format 1: results only. Format 2 adds ``meetings`` (the state Graph last confirmed for each
# meeting, which sync compares the sheet with) and ``operations`` (every PATCH and DELETE, sent
# and answered). A format-1 journal is upgraded in place when opened; see ``_migrate``.
SCHEMA_VERSION = 2
JOURNAL_SUFFIX = ".journal.sqlite"
OK_STATUSES = (CREATED, EXISTING, UPDATED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY,
    schedule    TEXT NOT NULL,
    argv        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    host        TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    summary     TEXT
);
-- One row per finished createOrGet (with its retries), never updated or deleted.
CREATE TABLE IF NOT EXISTS results (
    id              INTEGER PRIMARY KEY,
    run_id          INTEGER,
    organizer       TEXT NOT NULL,
    external_id     TEXT NOT NULL,
    status          TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    http_status     INTEGER,
    has_meeting     INTEGER NOT NULL,
    meeting_id      TEXT,
    join_url        TEXT,
    join_meeting_id TEXT,
    passcode        TEXT,
    dialin_url      TEXT,
    conference_id   TEXT,
    toll_number     TEXT,
    start_utc       TEXT,
    end_utc         TEXT,
    subject         TEXT,
    error           TEXT,
    error_code      TEXT,
    request_id      TEXT,
    attempts        INTEGER NOT NULL,
    warning         TEXT,
    recorded_at     TEXT NOT NULL,
    options_url     TEXT,
    toll_free_number TEXT,
    changes         TEXT
);
CREATE INDEX IF NOT EXISTS results_key ON results (organizer, external_id, id);
CREATE TABLE IF NOT EXISTS organizers (
    upn         TEXT PRIMARY KEY,
    object_id   TEXT NOT NULL,
    resolved_at TEXT NOT NULL
) WITHOUT ROWID;
"""

# Format 2. ``meetings`` is updated in place (it is the current state, not a log); it changes only
# when Graph confirmed something: a createOrGet answer, a PATCH answer showing the new values, a
# DELETE's 204. ``operations`` is the log of PATCH/DELETE, so support can see what was sent.
_SCHEMA_2 = """
CREATE TABLE IF NOT EXISTS meetings (
    organizer    TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    meeting_id   TEXT NOT NULL,
    status       TEXT NOT NULL,
    state        TEXT NOT NULL,
    join_url     TEXT,
    fingerprint  TEXT,
    row          INTEGER,
    version      INTEGER NOT NULL DEFAULT 0,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (organizer, external_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS operations (
    id           INTEGER PRIMARY KEY,
    run_id       INTEGER,
    organizer    TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    meeting_id   TEXT NOT NULL,
    kind         TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    detail       TEXT,
    http_status  INTEGER,
    request_id   TEXT,
    recorded_at  TEXT NOT NULL
);
"""
_RESULTS_ADDED_IN_2 = ("options_url", "toll_free_number", "changes")

_RESULT_FIELDS = (
    "organizer", "external_id", "status", "fingerprint", "http_status", "has_meeting",
    "meeting_id", "join_url", "join_meeting_id", "passcode", "dialin_url", "conference_id",
    "toll_number", "start_utc", "end_utc", "subject", "error", "error_code", "request_id",
    "attempts", "warning", "recorded_at", "options_url", "toll_free_number", "changes",
)
_INSERT = (
    f"INSERT INTO results (run_id, {', '.join(_RESULT_FIELDS)}) "
    f"VALUES ({', '.join('?' * (len(_RESULT_FIELDS) + 1))})"
)
_SELECT = f"SELECT {', '.join('r.' + f for f in _RESULT_FIELDS)} FROM results r"

# The row latest() reports for each (organizer, externalId): the newest result, unless that one is
# not a success and an earlier success exists with the same fingerprint; then that success (the
# newest such). Written as SQL so 100,000 keys come back in one pass over the index.
_OK = "('" + "', '".join(OK_STATUSES) + "')"
_EFFECTIVE_ID = f"""
    CASE WHEN n.status IN {_OK} THEN n.id ELSE COALESCE(
        (SELECT MAX(s.id) FROM results s
          WHERE s.organizer = n.organizer AND s.external_id = n.external_id
            AND s.fingerprint = n.fingerprint AND s.status IN {_OK}),
        n.id) END
"""

# A createOrGet answer is what the meeting is now: the row of ``meetings`` takes it whole. The
# version (confirmed changes of subject or time) carries on only while it is the same meeting.
_UPSERT_MEETING = """
INSERT INTO meetings (organizer, external_id, meeting_id, status, state, join_url, fingerprint,
                      row, version, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)
ON CONFLICT (organizer, external_id) DO UPDATE SET
    meeting_id = excluded.meeting_id, status = excluded.status, state = excluded.state,
    join_url = excluded.join_url, fingerprint = excluded.fingerprint,
    row = COALESCE(excluded.row, meetings.row),
    version = CASE WHEN meetings.meeting_id = excluded.meeting_id THEN meetings.version ELSE 0 END,
    updated_at = excluded.updated_at
"""
_OPERATION = (
    "INSERT INTO operations (run_id, organizer, external_id, meeting_id, kind, outcome, detail, "
    "http_status, request_id, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class JournalWriteError(BulkmeetError):
    """The journal cannot be written any more (disk full, file removed, I/O error).

    Results recorded before this are safe; the run must stop, because results it cannot record
    would be sent again next time (harmless, but wasteful). Exit status WRITE_FAILED.
    """

    exit_status = ExitStatus.WRITE_FAILED


def default_journal_path(schedule: Path) -> Path:
    """``term.xlsx`` -> ``term.journal.sqlite`` in the same folder (one journal per schedule)."""
    schedule = Path(schedule)
    return schedule.with_name(schedule.stem + JOURNAL_SUFFIX)


def lock_path_for(journal: Path) -> Path:
    """``term.journal.sqlite`` -> ``term.journal.lock``; never the journal file itself."""
    journal = Path(journal)
    if journal.suffix in ("", ".lock"):
        return journal.with_name(journal.name + ".lock")
    return journal.with_suffix(".lock")


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _redact_argv(argv: list[str]) -> list[str]:
    """Keep the command line for the record, but never a value given to a secret-looking option."""
    secretish = ("secret", "password", "passphrase", "passwd")
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append("***")
            hide_next = False
        elif arg.startswith("-") and any(word in arg.lower() for word in secretish):
            if "=" in arg:
                out.append(arg.split("=", 1)[0] + "=***")
            else:
                out.append(arg)
                hide_next = True
        else:
            out.append(arg)
    return out


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


class _RunLock:
    """An exclusive flock on the sidecar file, with who-holds-it written inside for the message."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, path: Path, schedule: str | None) -> _RunLock:
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


RunLock = _RunLock  # also locks the output sheet (bulkmeet.paths), so one rule for both locks


def _prepare_folder(path: Path) -> None:
    if path.is_dir():
        raise InputError(
            f"The journal path {path} is a folder; set [run] journal to a file name such as "
            f"{path / 'schedule.journal.sqlite'}."
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"Cannot create the folder {path.parent} for the journal ({exc.strerror})."
        ) from None


class Journal:
    """SQLite (WAL). Thread-safe: ``record()`` is called from many worker threads at once.

    One connection behind one lock: SQLite serialises writers anyway, and each ``record()`` is a
    single autocommitted INSERT, committed (in the WAL) before it returns.

    ``latest()`` rule, per (organizer, externalId): the newest result wins, except that a result
    that is not a success (``failed``) never hides an earlier success (``created``/``existing``)
    with the same fingerprint — that meeting still exists and the next run need not resend it.
    With a different fingerprint (the sheet row changed) the newest result wins.
    """

    def __init__(self, path: Path, *, synchronous: str = "NORMAL") -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._run_lock: _RunLock | None = None
        self._run_id: int | None = None
        if synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be NORMAL, FULL or EXTRA, not {synchronous!r}")
        _prepare_folder(self.path)
        try:
            self._db = sqlite3.connect(
                self.path, timeout=10.0, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None
        try:
            self._setup(synchronous.upper())
        except BaseException as exc:
            self._db.close()
            if isinstance(exc, sqlite3.Error):
                raise self._unusable(exc) from None
            raise

    def _setup(self, synchronous: str) -> None:
        db = self._db
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":  # pragma: no cover - e.g. a file system without mmap
            raise sqlite3.OperationalError(f"cannot switch to WAL mode (got {mode})")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute("PRAGMA foreign_keys=ON")
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and "schema_version" not in tables:
            raise InputError(
                f"{self.path} is an SQLite file but not a bulkmeet journal (it has tables "
                f"{', '.join(sorted(tables)[:5])}). Point [run] journal at another file, or move "
                "this one aside if it is yours to move."
            )
        if tables:
            (check,) = db.execute("PRAGMA quick_check(1)").fetchone()
            if check != "ok":
                detail = " ".join(str(check).replace("*** in database main ***", "").split())
                damaged = sqlite3.DatabaseError(f"integrity check: {detail}")
                damaged.sqlite_errorname = "SQLITE_CORRUPT"  # type: ignore[attr-defined]
                raise damaged
            row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
            version = row[0] if row else None
            if version is not None and version > SCHEMA_VERSION:
                raise InputError(
                    f"The journal {self.path} was written by a newer bulkmeet (format "
                    f"{version}, this one reads {SCHEMA_VERSION}). Upgrade bulkmeet, or move the "
                    "journal aside to start a fresh one (every row is then sent again, which is "
                    "safe: createOrGet returns the meetings that already exist)."
                )
        from bulkmeet import __version__

        # One transaction, so two processes creating (or upgrading) the same journal agree on
        # one version row.
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in (_SCHEMA + _SCHEMA_2).split(";"):
                if statement.strip():
                    db.execute(statement)
            self._migrate(f"bulkmeet {__version__}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _migrate(self, who: str) -> None:
        """Bring a format-1 journal to format 2 (inside the opening transaction).

        Format 1 kept each createOrGet result but not the state of the meeting, so each meeting
        it knows becomes a ``meetings`` row with the subject and times Graph answered and the
        attendees and options marked unknown. Sync then re-sends the attendee list only for
        rows that changed since (an unchanged row's list is what created the meeting).
        """
        db = self._db
        columns = {r[1] for r in db.execute("PRAGMA table_info(results)")}
        for column in _RESULTS_ADDED_IN_2:
            if column not in columns:
                db.execute(f"ALTER TABLE results ADD COLUMN {column} TEXT")
        (version,) = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        if version is not None and version >= SCHEMA_VERSION:
            return
        if version is not None:
            now = _utc_now()
            for result in self._latest(db).values():
                m = result.meeting
                if not result.ok or m is None or not m.meeting_id:
                    continue
                db.execute(_UPSERT_MEETING, (
                    result.organizer, result.external_id, m.meeting_id, ACTIVE,
                    MeetingState.from_info(m).to_json(), m.join_url, result.fingerprint, None,
                    now))
        db.execute("INSERT INTO schema_version VALUES (?, ?, ?)",
                   (SCHEMA_VERSION, _utc_now(), who))

    def _unusable(self, exc: sqlite3.Error) -> BulkmeetError:
        reason = str(exc) or type(exc).__name__
        damaged = getattr(exc, "sqlite_errorname", "") in (
            "SQLITE_CORRUPT", "SQLITE_NOTADB"
        )
        if not damaged:  # read-only, disk full, I/O error: WRITE_FAILED, as the README says
            return JournalWriteError(
                f"Cannot use the journal {self.path} ({reason}). Check that its folder exists and "
                "is writable and that no other program holds the file, or set [run] journal to "
                "another path."
            )
        return InputError(
            f"The journal {self.path} is damaged or is not a bulkmeet journal ({reason}). Move "
            f"it aside (for example rename it to {self.path.name}.broken) and run again: the "
            "new run re-sends every row, which is safe, because createOrGet returns the meetings "
            "that already exist instead of making new ones."
        )

    # -- opening and closing -------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        lock: bool = True,
        schedule: str | None = None,
        synchronous: str = "NORMAL",
    ) -> Journal:
        """Open (creating if needed); with ``lock`` take the run lock first, failing at once.

        ``schedule`` is only for the messages: the holder writes it into the lock file, and a
        second run names it when it is turned away.
        """
        path = Path(path)
        _prepare_folder(path)
        run_lock = _RunLock.acquire(lock_path_for(path), schedule) if lock else None
        try:
            journal = cls(path, synchronous=synchronous)
        except BaseException:
            if run_lock is not None:
                run_lock.release()
            raise
        journal._run_lock = run_lock
        return journal

    def close(self) -> None:
        with self._lock:
            db, self._db = self._db, None  # type: ignore[assignment]
            if db is not None:
                try:
                    db.close()
                except sqlite3.Error:
                    pass
        if self._run_lock is not None:
            self._run_lock.release()
            self._run_lock = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def locked(self) -> bool:
        return self._run_lock is not None

    # -- writing ---------------------------------------------------------------------------------

    def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        return self._write_all([(sql, params)])

    def _write_all(self, statements: list[tuple[str, tuple[Any, ...]]]) -> int:
        """Run the statements in one transaction (all or none); the last one's row id."""
        with self._lock:
            if self._db is None:
                raise JournalWriteError(f"The journal {self.path} is already closed.")
            db = self._db
            try:
                if len(statements) == 1:
                    return db.execute(*statements[0]).lastrowid or 0
                db.execute("BEGIN IMMEDIATE")
                last = 0
                for sql, params in statements:
                    last = db.execute(sql, params).lastrowid or 0
                db.execute("COMMIT")
                return last
            except sqlite3.Error as exc:
                if db.in_transaction:
                    try:
                        db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                raise JournalWriteError(
                    f"Cannot write to the journal {self.path} ({exc}). Results recorded so far "
                    "are safe; fix the cause (free disk space, check the file is still there) "
                    "and run again to finish the remaining rows."
                ) from None

    def record(self, result: MeetingResult, *, state: MeetingState | None = None,
               row: int | None = None) -> None:
        """Store one createOrGet result; committed when this returns. Fills ``recorded_at``.

        A successful one also becomes the meeting's confirmed state in ``meetings`` (``state``:
        the meeting as Graph answered; without it, what ``MeetingInfo`` holds), in the same
        transaction, so the two tables never disagree after a kill.
        """
        statements = [(_INSERT, self._result_params(result))]
        m = result.meeting
        if result.ok and m is not None and m.meeting_id:
            statements.append((_UPSERT_MEETING, (
                result.organizer, result.external_id, m.meeting_id, ACTIVE,
                (state or MeetingState.from_info(m)).to_json(), m.join_url, result.fingerprint,
                row, result.recorded_at or _utc_now())))
        self._write_all(statements)

    def _result_params(self, result: MeetingResult) -> tuple[Any, ...]:
        m = result.meeting
        return (
            self._run_id,
            result.organizer,
            result.external_id,
            result.status,
            result.fingerprint,
            result.http_status,
            1 if m is not None else 0,
            m.meeting_id if m else None,
            m.join_url if m else None,
            m.join_meeting_id if m else None,
            m.passcode if m else None,
            m.dialin_url if m else None,
            m.conference_id if m else None,
            m.toll_number if m else None,
            m.start_utc if m else None,
            m.end_utc if m else None,
            m.subject if m else None,
            result.error,
            result.error_code,
            result.request_id,
            int(result.attempts),
            result.warning,
            result.recorded_at or _utc_now(),
            m.options_url if m else None,
            m.toll_free_number if m else None,
            result.changes,
        )

    # -- updates and cancels (format 2) ------------------------------------------------------------

    def _operation(self, m: JournalledMeeting, kind: str, outcome: str, detail: str | None,
                   http_status: int | None = None, request_id: str | None = None
                   ) -> tuple[str, tuple[Any, ...]]:
        return (_OPERATION, (self._run_id, m.organizer, m.external_id, m.meeting_id, kind,
                             outcome, detail, http_status, request_id, _utc_now()))

    def update_sent(self, meeting: JournalledMeeting, body: str) -> None:
        """Log a PATCH before it goes out (support can see what was sent if the run dies)."""
        self._write_all([self._operation(meeting, "update", "sent", body)])

    def update_confirmed(self, meeting: JournalledMeeting, state: MeetingState,
                         result: MeetingResult, *, row: int | None = None) -> None:
        """Graph answered the PATCH with the new values: that is the meeting's state now.

        Call only after checking the answer (``sync.unconfirmed``); ``result`` (status
        ``updated``) is what the output sheet shows for the row from now on.
        """
        old = meeting.state
        moved = (old.subject, old.start, old.end) != (state.subject, state.start, state.end)
        self._write_all([
            (_INSERT, self._result_params(result)),
            ("UPDATE meetings SET state = ?, fingerprint = ?, row = COALESCE(?, row), "
             "version = version + ?, updated_at = ? WHERE organizer = ? AND external_id = ? "
             "AND meeting_id = ?",
             (state.to_json(), result.fingerprint, row, 1 if moved else 0, _utc_now(),
              meeting.organizer, meeting.external_id, meeting.meeting_id)),
            self._operation(meeting, "update", "confirmed", result.changes,
                            result.http_status, result.request_id),
        ])

    def operation_failed(self, meeting: JournalledMeeting, kind: str, detail: str,
                         result: MeetingResult | None = None) -> None:
        """A PATCH or DELETE that Graph refused or never answered: the state stays as it was."""
        statements = []
        if result is not None:
            statements.append((_INSERT, self._result_params(result)))
        statements.append(self._operation(
            meeting, kind, "failed", detail, result.http_status if result else None,
            result.request_id if result else None))
        self._write_all(statements)

    def delete_sent(self, meeting: JournalledMeeting) -> None:
        """Mark the meeting DELETING before the DELETE goes out: a run killed now finishes the
        cancel next time (a repeated DELETE answers 404, which counts as done), and never
        mistakes the meeting for one still active."""
        self._write_all([
            ("UPDATE meetings SET status = ?, updated_at = ? WHERE organizer = ? AND "
             "external_id = ? AND meeting_id = ?",
             (DELETING, _utc_now(), meeting.organizer, meeting.external_id, meeting.meeting_id)),
            self._operation(meeting, "delete", "sent", None),
        ])

    def delete_confirmed(self, meeting: JournalledMeeting, *, http_status: int | None,
                         request_id: str | None = None) -> None:
        self._write_all([
            ("UPDATE meetings SET status = ?, updated_at = ? WHERE organizer = ? AND "
             "external_id = ? AND meeting_id = ?",
             (CANCELLED, _utc_now(), meeting.organizer, meeting.external_id,
              meeting.meeting_id)),
            self._operation(meeting, "delete", "confirmed", None, http_status, request_id),
        ])

    def forget(self, meeting: JournalledMeeting, detail: str) -> None:
        """Graph says the meeting is gone (404 to a PATCH or GET): the next run re-creates it."""
        self._write_all([
            ("UPDATE meetings SET status = ?, updated_at = ? WHERE organizer = ? AND "
             "external_id = ? AND meeting_id = ?",
             (CANCELLED, _utc_now(), meeting.organizer, meeting.external_id,
              meeting.meeting_id)),
            self._operation(meeting, "gone", "confirmed", detail, 404),
        ])

    def delete_abandoned(self, meeting: JournalledMeeting, detail: str) -> None:
        """Graph refused the DELETE for good (403...): the meeting is active again, an orphan."""
        self._write_all([
            ("UPDATE meetings SET status = ?, updated_at = ? WHERE organizer = ? AND "
             "external_id = ? AND meeting_id = ? AND status = ?",
             (ACTIVE, _utc_now(), meeting.organizer, meeting.external_id, meeting.meeting_id,
              DELETING)),
            self._operation(meeting, "delete", "failed", detail),
        ])

    def start_run(self, *, schedule: str, argv: list[str]) -> int:
        """Record that a run began; later ``record()`` calls are tied to it. Returns its id."""
        run_id = self._write(
            "INSERT INTO runs (schedule, argv, pid, host, started_at) VALUES (?, ?, ?, ?, ?)",
            (schedule, json.dumps(_redact_argv(list(argv))), os.getpid(), socket.gethostname(),
             _utc_now()),
        )
        self._run_id = run_id
        if self._run_lock is not None:
            self._run_lock.describe(schedule)
        return run_id

    def finish_run(self, run_id: int, summary: dict) -> None:
        self._write(
            "UPDATE runs SET finished_at = ?, summary = ? WHERE id = ?",
            (_utc_now(), json.dumps(summary, default=str, sort_keys=True), run_id),
        )

    def remember_organizer(self, upn: str, object_id: str) -> None:
        """Cache a UPN -> object id lookup; UPNs are case-insensitive, so keys are lower-cased."""
        self._write(
            "INSERT INTO organizers (upn, object_id, resolved_at) VALUES (?, ?, ?) "
            "ON CONFLICT (upn) DO UPDATE SET object_id = excluded.object_id, "
            "resolved_at = excluded.resolved_at",
            (upn.strip().lower(), object_id, _utc_now()),
        )

    # -- reading ---------------------------------------------------------------------------------

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            if self._db is None:
                raise InputError(f"The journal {self.path} is already closed.")
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                raise self._unusable(exc) from None

    @staticmethod
    def _result(row: tuple[Any, ...]) -> MeetingResult:
        (organizer, external_id, status, fingerprint, http_status, has_meeting, meeting_id,
         join_url, join_meeting_id, passcode, dialin_url, conference_id, toll_number, start_utc,
         end_utc, subject, error, error_code, request_id, attempts, warning, recorded_at,
         options_url, toll_free_number, changes) = row
        meeting = None
        if has_meeting:
            meeting = MeetingInfo(
                meeting_id=meeting_id, join_url=join_url, join_meeting_id=join_meeting_id,
                passcode=passcode, dialin_url=dialin_url, conference_id=conference_id,
                toll_number=toll_number, start_utc=start_utc, end_utc=end_utc, subject=subject,
                options_url=options_url, toll_free_number=toll_free_number,
            )
        return MeetingResult(
            external_id=external_id,
            organizer=organizer,
            status=status,
            fingerprint=fingerprint,
            http_status=http_status,
            meeting=meeting,
            error=error,
            error_code=error_code,
            request_id=request_id,
            attempts=attempts,
            warning=warning,
            recorded_at=recorded_at,
            changes=changes,
        )

    def latest(self) -> dict[tuple[str, str], MeetingResult]:
        """(organizer, externalId) -> the result that counts (see the class docstring)."""
        with self._lock:
            if self._db is None:
                raise InputError(f"The journal {self.path} is already closed.")
            try:
                return self._latest(self._db)
            except sqlite3.DatabaseError as exc:
                raise self._unusable(exc) from None

    @classmethod
    def _latest(cls, db: sqlite3.Connection) -> dict[tuple[str, str], MeetingResult]:
        rows = db.execute(
            f"""WITH newest AS (SELECT MAX(id) AS id FROM results GROUP BY organizer, external_id),
                     chosen AS (SELECT {_EFFECTIVE_ID} AS id
                                  FROM newest JOIN results n ON n.id = newest.id)
                {_SELECT} JOIN chosen ON r.id = chosen.id ORDER BY r.id"""
        ).fetchall()
        out: dict[tuple[str, str], MeetingResult] = {}
        for row in rows:
            result = cls._result(row)
            out[(result.organizer, result.external_id)] = result
        return out

    def meetings(self) -> dict[tuple[str, str], JournalledMeeting]:
        """(organizer, externalId) -> the meeting as Graph last confirmed it (cancelled too)."""
        rows = self._read(
            "SELECT organizer, external_id, meeting_id, status, state, join_url, fingerprint, "
            "row, version FROM meetings ORDER BY row, organizer, external_id")
        out: dict[tuple[str, str], JournalledMeeting] = {}
        for org, ext, mid, status, state, join_url, fingerprint, row, version in rows:
            out[(org, ext)] = JournalledMeeting(
                organizer=org, external_id=ext, meeting_id=mid,
                state=MeetingState.from_json(state), status=status, join_url=join_url,
                fingerprint=fingerprint, row=row, version=version)
        return out

    def meeting_versions(self) -> dict[tuple[str, str], int]:
        """(organizer, externalId) -> how often Graph confirmed a new subject or time for the
        meeting (0: never); an .ics SEQUENCE. A re-created meeting starts again at 0."""
        return {(org, ext): int(v) for org, ext, v in
                self._read("SELECT organizer, external_id, version FROM meetings")}

    def operations(self, organizer: str, external_id: str) -> list[dict[str, Any]]:
        """Every PATCH/DELETE logged for one key, oldest first (support, tests)."""
        keys = ("meeting_id", "kind", "outcome", "detail", "http_status", "run_id")
        rows = self._read(
            f"SELECT {', '.join(keys)} FROM operations WHERE organizer = ? AND external_id = ? "
            "ORDER BY id", (organizer, external_id))
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def get(self, organizer: str, external_id: str) -> MeetingResult | None:
        rows = self._read(
            f"""WITH n AS (SELECT * FROM results WHERE organizer = ? AND external_id = ?
                           ORDER BY id DESC LIMIT 1)
                {_SELECT} WHERE r.id = (SELECT {_EFFECTIVE_ID} FROM n)""",
            (organizer, external_id),
        )
        return self._result(rows[0]) if rows else None

    def history(self, organizer: str, external_id: str) -> list[MeetingResult]:
        """Every result recorded for one key, oldest first (for support and for tests)."""
        rows = self._read(
            f"{_SELECT} WHERE r.organizer = ? AND r.external_id = ? ORDER BY r.id",
            (organizer, external_id),
        )
        return [self._result(row) for row in rows]

    def attempts(self, organizer: str, external_id: str) -> int:
        """HTTP attempts made for one key over every run (each result carries its run's count)."""
        rows = self._read(
            "SELECT COALESCE(SUM(attempts), 0) FROM results "
            "WHERE organizer = ? AND external_id = ?",
            (organizer, external_id),
        )
        return int(rows[0][0])

    def resolved_organizers(self) -> dict[str, str]:
        """Lower-cased UPN -> object id, as remembered by earlier runs."""
        return dict(self._read("SELECT upn, object_id FROM organizers"))

    def runs(self) -> list[dict[str, Any]]:
        """Every run recorded, oldest first: id, schedule, argv, started/finished, summary."""
        rows = self._read(
            "SELECT id, schedule, argv, pid, host, started_at, finished_at, summary FROM runs "
            "ORDER BY id"
        )
        keys = ("id", "schedule", "argv", "pid", "host", "started_at", "finished_at", "summary")
        out = []
        for row in rows:
            item = dict(zip(keys, row, strict=True))
            item["argv"] = json.loads(item["argv"])
            item["summary"] = json.loads(item["summary"]) if item["summary"] else None
            out.append(item)
        return out
