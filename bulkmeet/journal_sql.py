"""The journal's SQL: its tables, format by format, and the statements ``bulkmeet.journal`` runs.

Kept apart so the journal module reads as behaviour; every statement here is used there only.
"""
from __future__ import annotations

from bulkmeet.models import CREATED, EXISTING, UPDATED

# Format 1: results only. Format 2 adds ``meetings`` (the state Graph last confirmed for each
# meeting, which sync compares the sheet with) and ``operations`` (every PATCH and DELETE, sent
# and answered). A format-1 journal is upgraded in place when opened; see ``bulkmeet.journal_format``.
SCHEMA_VERSION = 2
JOURNAL_SUFFIX = ".journal.sqlite"
OK_STATUSES = (CREATED, EXISTING, UPDATED)

SCHEMA = """
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
#
# ``meetings`` is an ordinary (rowid) table. It was first made WITHOUT ROWID, but a meeting's row
# (join URL, meeting id, state JSON: ~1.1 KB) is over what a WITHOUT ROWID page keeps inline
# (~1,000 bytes of a 4 KB page), so every row spilled into an overflow page of its own: 4.7 KB a
# meeting, 23 MB of a 5,000-row journal's 30 MB, and more pages written per record.
# ``journal_format`` rebuilds such a table in place (same columns, same key: readers and older
# bulkmeet versions see no difference, so the format number stays 2).
MEETINGS_TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
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
    section      TEXT,
    PRIMARY KEY (organizer, external_id)
)"""
MEETINGS_COLUMNS = ("organizer, external_id, meeting_id, status, state, join_url, fingerprint, "
                    "row, version, updated_at, section")
SCHEMA_2 = MEETINGS_TABLE.format(name="meetings") + """;
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
RESULTS_ADDED_IN_2 = ("options_url", "toll_free_number", "changes")
# Added to ``meetings`` after format 2 first shipped (ALTER TABLE when missing; readers that do
# not know it ignore it). ``section``: plan.section_key of the row the meeting was made for.
MEETINGS_ADDED_IN_2 = ("section",)

RESULT_FIELDS = (
    "organizer", "external_id", "status", "fingerprint", "http_status", "has_meeting",
    "meeting_id", "join_url", "join_meeting_id", "passcode", "dialin_url", "conference_id",
    "toll_number", "start_utc", "end_utc", "subject", "error", "error_code", "request_id",
    "attempts", "warning", "recorded_at", "options_url", "toll_free_number", "changes",
)
INSERT = (
    f"INSERT INTO results (run_id, {', '.join(RESULT_FIELDS)}) "
    f"VALUES ({', '.join('?' * (len(RESULT_FIELDS) + 1))})"
)
SELECT = f"SELECT {', '.join('r.' + f for f in RESULT_FIELDS)} FROM results r"

# The row latest() reports for each (organizer, externalId): the newest result, unless that one is
# not a success and an earlier success exists with the same fingerprint; then that success (the
# newest such). Written as SQL so 100,000 keys come back in one pass over the index.
OK = "('" + "', '".join(OK_STATUSES) + "')"
EFFECTIVE_ID = f"""
    CASE WHEN n.status IN {OK} THEN n.id ELSE COALESCE(
        (SELECT MAX(s.id) FROM results s
          WHERE s.organizer = n.organizer AND s.external_id = n.external_id
            AND s.fingerprint = n.fingerprint AND s.status IN {OK}),
        n.id) END
"""

# A createOrGet answer is what the meeting is now: the row of ``meetings`` takes it whole. The
# version (confirmed changes of subject or time) carries on only while it is the same meeting.
UPSERT_MEETING = """
INSERT INTO meetings (organizer, external_id, meeting_id, status, state, join_url, fingerprint,
                      row, version, updated_at, section)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)
ON CONFLICT (organizer, external_id) DO UPDATE SET
    meeting_id = excluded.meeting_id, status = excluded.status, state = excluded.state,
    join_url = excluded.join_url, fingerprint = excluded.fingerprint,
    row = COALESCE(excluded.row, meetings.row),
    section = COALESCE(excluded.section, meetings.section),
    version = CASE WHEN meetings.meeting_id = excluded.meeting_id THEN meetings.version ELSE 0 END,
    updated_at = excluded.updated_at
"""
OPERATION = (
    "INSERT INTO operations (run_id, organizer, external_id, meeting_id, kind, outcome, detail, "
    "http_status, request_id, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
