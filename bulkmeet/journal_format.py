"""Opening a journal file: is it a bulkmeet journal, is it whole, is it from a newer bulkmeet;
then its tables are created, or brought up to date in place.

Kept apart from ``bulkmeet.journal`` (which reads and writes results) because this runs once per
open and is where a journal's history lives: format 1 -> 2, columns added within format 2, and
the rebuilt ``meetings`` table (``journal_sql``). An upgrade happens inside one transaction, so two
processes opening the same old journal agree on one version row, and a kill mid-way changes
nothing.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path

from bulkmeet import journal_sql as sql
from bulkmeet.errors import InputError
from bulkmeet.models import MeetingResult, MeetingState
from bulkmeet.sync import ACTIVE

Latest = Callable[[sqlite3.Connection], Mapping[tuple[str, str], MeetingResult]]


def check(db: sqlite3.Connection, path: Path) -> None:
    """Refuse what is not a bulkmeet journal, is damaged, or is newer than this bulkmeet reads
    (a new, empty file passes)."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        return
    if "schema_version" not in tables:
        raise InputError(
            f"{path} is an SQLite file but not a bulkmeet journal (it has tables "
            f"{', '.join(sorted(tables)[:5])}). Point [run] journal at another file, or move "
            "this one aside if it is yours to move."
        )
    (result,) = db.execute("PRAGMA quick_check(1)").fetchone()
    if result != "ok":
        detail = " ".join(str(result).replace("*** in database main ***", "").split())
        damaged = sqlite3.DatabaseError(f"integrity check: {detail}")
        damaged.sqlite_errorname = "SQLITE_CORRUPT"
        raise damaged
    row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
    version = row[0] if row else None
    if version is not None and version > sql.SCHEMA_VERSION:
        raise InputError(
            f"The journal {path} was written by a newer bulkmeet (format "
            f"{version}, this one reads {sql.SCHEMA_VERSION}). Upgrade bulkmeet, or move the "
            "journal aside to start a fresh one (every row is then sent again, which is "
            "safe: createOrGet returns the meetings that already exist)."
        )


def create_or_upgrade(db: sqlite3.Connection, *, who: str, now: str, latest: Latest) -> None:
    """Create the tables of a new journal, or bring an older one up to date (one transaction)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        for statement in (sql.SCHEMA + sql.SCHEMA_2).split(";"):
            if statement.strip():
                db.execute(statement)
        _migrate(db, who=who, now=now, latest=latest)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _migrate(db: sqlite3.Connection, *, who: str, now: str, latest: Latest) -> None:
    """Bring a format-1 journal to format 2 (inside the opening transaction).

    Format 1 kept each createOrGet result but not the state of the meeting, so each meeting
    it knows becomes a ``meetings`` row with the subject and times Graph answered and the
    attendees and options marked unknown. Sync then re-sends the attendee list only for
    rows that changed since (an unchanged row's list is what created the meeting).
    """
    columns = {r[1] for r in db.execute("PRAGMA table_info(results)")}
    for column in sql.RESULTS_ADDED_IN_2:
        if column not in columns:
            db.execute(f"ALTER TABLE results ADD COLUMN {column} TEXT")
    columns = {r[1] for r in db.execute("PRAGMA table_info(meetings)")}
    for column in sql.MEETINGS_ADDED_IN_2:
        if column not in columns:
            db.execute(f"ALTER TABLE meetings ADD COLUMN {column} TEXT")
    _rebuild_meetings(db)
    (version,) = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
    if version is not None and version >= sql.SCHEMA_VERSION:
        return
    if version is not None:
        for result in latest(db).values():
            m = result.meeting
            if not result.ok or m is None or not m.meeting_id:
                continue
            db.execute(sql.UPSERT_MEETING, (
                result.organizer, result.external_id, m.meeting_id, ACTIVE,
                MeetingState.from_info(m).to_json(), m.join_url, result.fingerprint, None,
                now, None))
    db.execute("INSERT INTO schema_version VALUES (?, ?, ?)", (sql.SCHEMA_VERSION, now, who))


def _rebuild_meetings(db: sqlite3.Connection) -> None:
    """A ``meetings`` table made WITHOUT ROWID (bulkmeet 0.2.0) becomes a rowid table with the
    same columns and key: its rows were too big for that layout (``journal_sql``)."""
    (ddl,) = db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'meetings'").fetchone()
    if "WITHOUT ROWID" not in " ".join(str(ddl).upper().split()):
        return
    db.execute(sql.MEETINGS_TABLE.format(name="meetings_rebuilt"))
    db.execute(f"INSERT INTO meetings_rebuilt ({sql.MEETINGS_COLUMNS}) "
               f"SELECT {sql.MEETINGS_COLUMNS} FROM meetings")
    db.execute("DROP TABLE meetings")
    db.execute("ALTER TABLE meetings_rebuilt RENAME TO meetings")
