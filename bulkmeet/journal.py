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
made (the row then shows ``existing`` instead of ``created``).

Writes go through a group commit (``bulkmeet.journal_commit``): a ``record()`` that finds another
thread committing queues behind it and is committed with the others queued meanwhile, in one
transaction, before it returns. Alone it commits at once. Measured with a real run (bench
scenario 4, 16 workers), a plain lock around each record's transaction made the workers queue
for it ~5 ms per row, waiting less for SQLite than for the GIL each hand-over of the lock needs.

Concurrency between runs: ``bulkmeet.runlock`` (a flock on the sidecar ``NAME.journal.lock``).

Format 2 adds what sync needs (``bulkmeet.sync``): each meeting's state as Graph last confirmed
it (``meetings``), and a log of every PATCH and DELETE sent and answered (``operations``). What
``meetings`` holds changes only on a confirmation from Graph, in the same transaction as the
result row that reports it, so after a kill -9 the two never disagree.
"""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bulkmeet import journal_format
from bulkmeet import journal_sql as sql
from bulkmeet.errors import BulkmeetError, ExitStatus, InputError
from bulkmeet.journal_commit import GroupCommit, JournalClosed, Statements
from bulkmeet.models import CREATED, MeetingInfo, MeetingResult, MeetingState
from bulkmeet.runlock import RunLock, lock_path_for
from bulkmeet.sync import ACTIVE, CANCELLED, DELETING, JournalledMeeting

__all__ = ["Journal", "JournalWriteError", "RunLock", "default_journal_path", "lock_path_for"]

class JournalWriteError(BulkmeetError):
    """The journal cannot be written any more (disk full, file removed, I/O error).

    Results recorded before this are safe; the run must stop, because results it cannot record
    would be sent again next time (harmless, but wasteful). Exit status WRITE_FAILED.
    """

    exit_status = ExitStatus.WRITE_FAILED


def default_journal_path(schedule: Path) -> Path:
    """``term.xlsx`` -> ``term.journal.sqlite`` in the same folder (one journal per schedule)."""
    schedule = Path(schedule)
    return schedule.with_name(schedule.stem + sql.JOURNAL_SUFFIX)


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

    One connection behind one lock (SQLite serialises writers anyway); writes are committed (in
    the WAL) before they return, several threads' at once when they arrive together.

    ``latest()`` rule, per (organizer, externalId): the newest result wins, except that a result
    that is not a success (``failed``) never hides an earlier success (``created``/``existing``)
    with the same fingerprint — that meeting still exists and the next run need not resend it.
    With a different fingerprint (the sheet row changed) the newest result wins.
    """

    def __init__(self, path: Path, *, synchronous: str = "NORMAL") -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._commits = GroupCommit(self._lock, lambda: self._db)
        self._run_lock: RunLock | None = None
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
        journal_format.check(db, self.path)
        from bulkmeet import __version__

        journal_format.create_or_upgrade(db, who=f"bulkmeet {__version__}", now=_utc_now(),
                                         latest=self._latest)

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
        run_lock = RunLock.acquire(lock_path_for(path), schedule) if lock else None
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

    def _write_all(self, statements: Statements) -> int:
        """Run the statements in one transaction (all or none), committed when this returns,
        maybe together with other threads' writes (``journal_commit``); the last one's row id."""
        try:
            return self._commits.write(statements)
        except JournalClosed:
            raise JournalWriteError(f"The journal {self.path} is already closed.") from None
        except sqlite3.Error as exc:
            raise JournalWriteError(
                f"Cannot write to the journal {self.path} ({exc}). Results recorded so far "
                "are safe; fix the cause (free disk space, check the file is still there) "
                "and run again to finish the remaining rows."
            ) from None

    def record(self, result: MeetingResult, *, state: MeetingState | None = None,
               row: int | None = None, section: str | None = None) -> None:
        """Store one createOrGet result; committed when this returns. Fills ``recorded_at``.

        A successful one also becomes the meeting's confirmed state in ``meetings`` (``state``:
        the meeting as Graph answered; without it, what ``MeetingInfo`` holds), in the same
        transaction, so the two tables never disagree after a kill. ``section``: the request's
        section key (``MeetingRequest.section``), so an invalid row can still claim the meeting.
        """
        statements = [(sql.INSERT, self._result_params(result))]
        m = result.meeting
        if result.ok and m is not None and m.meeting_id:
            statements.append((sql.UPSERT_MEETING, (
                result.organizer, result.external_id, m.meeting_id, ACTIVE,
                (state or MeetingState.from_info(m)).to_json(), m.join_url, result.fingerprint,
                row, result.recorded_at or _utc_now(), section)))
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
        return (sql.OPERATION, (self._run_id, m.organizer, m.external_id, m.meeting_id, kind,
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
            (sql.INSERT, self._result_params(result)),
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
            statements.append((sql.INSERT, self._result_params(result)))
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

    def remember_sections(self, sections: Iterable[tuple[str, str, str]]) -> None:
        """(organizer, externalId, section key) for meetings journalled before the section key
        was kept: one transaction, so a later invalid row can still claim them."""
        statements = [("UPDATE meetings SET section = ? WHERE organizer = ? AND external_id = ? "
                       "AND section IS NULL", (section, organizer, external_id))
                      for organizer, external_id, section in sections]
        if statements:
            self._write_all(statements)

    def forget(self, meeting: JournalledMeeting, detail: str) -> None:
        """Graph says the meeting is gone (404 to a PATCH or GET): the next run re-creates it."""
        self._write_all([
            ("UPDATE meetings SET status = ?, updated_at = ? WHERE organizer = ? AND "
             "external_id = ? AND meeting_id = ?",
             (CANCELLED, _utc_now(), meeting.organizer, meeting.external_id,
              meeting.meeting_id)),
            self._operation(meeting, "gone", "confirmed", detail, 404),
        ])

    def gone(self) -> set[tuple[str, str]]:
        """(organizer, externalId) of meetings ``forget`` marked as gone from Teams and nothing
        made again since (``bulkmeet verify`` keeps listing them until a run re-creates them)."""
        rows = self._read(
            "SELECT m.organizer, m.external_id FROM meetings m WHERE m.status = ? AND "
            "(SELECT o.kind FROM operations o WHERE o.organizer = m.organizer AND "
            "o.external_id = m.external_id ORDER BY o.id DESC LIMIT 1) = 'gone'", (CANCELLED,))
        return {(org, ext) for org, ext in rows}

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
                     chosen AS (SELECT {sql.EFFECTIVE_ID} AS id
                                  FROM newest JOIN results n ON n.id = newest.id)
                {sql.SELECT} JOIN chosen ON r.id = chosen.id ORDER BY r.id"""
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
            "row, version, section FROM meetings ORDER BY row, organizer, external_id")
        out: dict[tuple[str, str], JournalledMeeting] = {}
        for org, ext, mid, status, state, join_url, fingerprint, row, version, section in rows:
            out[(org, ext)] = JournalledMeeting(
                organizer=org, external_id=ext, meeting_id=mid,
                state=MeetingState.from_json(state), status=status, join_url=join_url,
                fingerprint=fingerprint, row=row, version=version, section=section)
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
                {sql.SELECT} WHERE r.id = (SELECT {sql.EFFECTIVE_ID} FROM n)""",
            (organizer, external_id),
        )
        return self._result(rows[0]) if rows else None

    def history(self, organizer: str, external_id: str) -> list[MeetingResult]:
        """Every result recorded for one key, oldest first (for support and for tests)."""
        rows = self._read(
            f"{sql.SELECT} WHERE r.organizer = ? AND r.external_id = ? ORDER BY r.id",
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

    def created_in_month(self, month: str) -> dict[str, int]:
        """Organizer -> meetings Graph created (201) in ``month`` ("YYYY-MM", UTC), for the
        2,000-per-month quota (``bulkmeet.quota``)."""
        return {org: int(n) for org, n in self._read(
            "SELECT organizer, COUNT(*) FROM results WHERE status = ? AND recorded_at LIKE ? "
            "GROUP BY organizer", (CREATED, f"{month}-%"))}

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
