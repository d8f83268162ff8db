"""Journal format 2: the confirmed state of each meeting, updates, cancels, and the upgrade of a
format-1 journal written by an earlier bulkmeet (a real SQLite file built with that format)."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from bulkmeet.journal import Journal
from bulkmeet.models import CREATED, EXISTING, FAILED, MeetingInfo, MeetingResult
from bulkmeet.sync import ACTIVE, CANCELLED, DELETING, MeetingState

ORG = "6f1c1b9e-3d4c-4f57-9a43-2d0f3b2a9c11"

# The format-1 schema exactly as bulkmeet 0.x wrote it (frozen history: never edit).
V1_SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL, created_at TEXT NOT NULL,
                             created_by TEXT NOT NULL);
CREATE TABLE runs (id INTEGER PRIMARY KEY, schedule TEXT NOT NULL, argv TEXT NOT NULL,
                   pid INTEGER NOT NULL, host TEXT NOT NULL, started_at TEXT NOT NULL,
                   finished_at TEXT, summary TEXT);
CREATE TABLE results (
    id INTEGER PRIMARY KEY, run_id INTEGER, organizer TEXT NOT NULL, external_id TEXT NOT NULL,
    status TEXT NOT NULL, fingerprint TEXT NOT NULL, http_status INTEGER,
    has_meeting INTEGER NOT NULL, meeting_id TEXT, join_url TEXT, join_meeting_id TEXT,
    passcode TEXT, dialin_url TEXT, conference_id TEXT, toll_number TEXT, start_utc TEXT,
    end_utc TEXT, subject TEXT, error TEXT, error_code TEXT, request_id TEXT,
    attempts INTEGER NOT NULL, warning TEXT, recorded_at TEXT NOT NULL);
CREATE INDEX results_key ON results (organizer, external_id, id);
CREATE TABLE organizers (upn TEXT PRIMARY KEY, object_id TEXT NOT NULL,
                         resolved_at TEXT NOT NULL) WITHOUT ROWID;
INSERT INTO schema_version VALUES (1, '2026-11-01T02:00:00Z', 'bulkmeet 0.9');
"""


def v1_journal(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    rows = [
        ("ext-1", "created", "fp-1", 201, 1, "mid-1", "https://join/1",
         "2027-03-01T14:00:00.0000000Z", "2027-03-01T14:50:00.0000000Z", "CS101: Lecture 0"),
        ("ext-2", "failed", "fp-2", 403, 0, None, None, None, None, None),
        ("ext-3", "existing", "fp-3", 200, 1, "mid-3", "https://join/3",
         "2027-03-02T15:00:00Z", "2027-03-02T15:50:00Z", "CS102: Lecture 1"),
    ]
    for ext, status, fp, http, has, mid, url, start, end, subject in rows:
        db.execute(
            "INSERT INTO results (run_id, organizer, external_id, status, fingerprint, "
            "http_status, has_meeting, meeting_id, join_url, start_utc, end_utc, subject, "
            "attempts, recorded_at) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 'x')",
            (ORG, ext, status, fp, http, has, mid, url, start, end, subject))
    db.commit()
    db.close()
    return path


def meeting(mid: str = "mid-1", **kw) -> MeetingInfo:
    return MeetingInfo(meeting_id=mid, join_url=f"https://join/{mid}",
                       start_utc=kw.pop("start", "2027-03-01T14:00:00Z"),
                       end_utc=kw.pop("end", "2027-03-01T14:50:00Z"),
                       subject=kw.pop("subject", "CS101"), **kw)


def result(status: str = CREATED, ext: str = "ext-1", mid: str = "mid-1", **kw) -> MeetingResult:
    return MeetingResult(external_id=ext, organizer=ORG, status=status, fingerprint="fp",
                         http_status=201, meeting=meeting(mid, **kw) if status != FAILED else None,
                         attempts=1)


def test_a_format_1_journal_is_upgraded_and_keeps_its_results(tmp_path: Path) -> None:
    path = v1_journal(tmp_path / "term.journal.sqlite")
    with Journal.open(path) as journal:
        latest = journal.latest()
        assert {k[1]: r.status for k, r in latest.items()} == {
            "ext-1": CREATED, "ext-2": FAILED, "ext-3": EXISTING}
        assert latest[(ORG, "ext-1")].meeting == MeetingInfo(
            meeting_id="mid-1", join_url="https://join/1", start_utc="2027-03-01T14:00:00.0000000Z",
            end_utc="2027-03-01T14:50:00.0000000Z", subject="CS101: Lecture 0")
        known = journal.meetings()
        assert sorted(k[1] for k in known) == ["ext-1", "ext-3"]  # the failed row made nothing
        one = known[(ORG, "ext-1")]
        assert one.meeting_id == "mid-1" and one.status == ACTIVE and one.fingerprint == "fp-1"
        assert one.state == MeetingState(subject="CS101: Lecture 0", start="2027-03-01T14:00:00Z",
                                         end="2027-03-01T14:50:00Z", attendees=None, settings=None)
    db = sqlite3.connect(path)
    assert [v for (v,) in db.execute("SELECT version FROM schema_version ORDER BY version")] == [1, 2]
    db.close()
    with Journal.open(path) as journal:  # opening again changes nothing
        assert len(journal.meetings()) == 2
    db = sqlite3.connect(path)
    assert db.execute("SELECT COUNT(*) FROM schema_version").fetchone() == (2,)
    db.close()


def test_a_created_meeting_becomes_the_confirmed_state(tmp_path: Path) -> None:
    state = MeetingState(subject="CS101", start="2027-03-01T14:00:00Z",
                         end="2027-03-01T14:50:00Z", attendees=(("a@x.example", "attendee"),),
                         settings=(("allowMeetingChat", "enabled"),))
    with Journal.open(tmp_path / "j.sqlite") as journal:
        journal.record(result(), state=state, row=2)
        journal.record(result(FAILED, ext="ext-9"))
        (m,) = journal.meetings().values()
    assert (m.external_id, m.meeting_id, m.row, m.state, m.version) == ("ext-1", "mid-1", 2,
                                                                       state, 0)


def test_updates_and_versions(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "j.sqlite") as journal:
        journal.record(result())
        m = journal.meetings()[(ORG, "ext-1")]
        journal.update_sent(m, '{"subject": "x"}')
        assert journal.meetings()[(ORG, "ext-1")].state == m.state  # sent is not confirmed
        moved = MeetingState(subject="CS101", start="2027-03-01T19:00:00Z",
                             end="2027-03-01T19:50:00Z", attendees=(), settings=())
        journal.update_confirmed(m, moved, result(EXISTING, start=moved.start, end=moved.end))
        m2 = journal.meetings()[(ORG, "ext-1")]
        assert m2.state == moved and m2.version == 1
        more = MeetingState(subject="CS101", start=moved.start, end=moved.end,
                            attendees=(("b@x.example", "presenter"),), settings=())
        journal.update_confirmed(m2, more, result(EXISTING))
        assert journal.meeting_versions() == {(ORG, "ext-1"): 1}  # attendees are not a version
        assert [(o["kind"], o["outcome"]) for o in journal.operations(ORG, "ext-1")] == [
            ("update", "sent"), ("update", "confirmed"), ("update", "confirmed")]


def test_cancel_is_marked_before_it_is_sent_and_a_new_meeting_starts_again(tmp_path: Path
                                                                           ) -> None:
    with Journal.open(tmp_path / "j.sqlite") as journal:
        journal.record(result())
        m = journal.meetings()[(ORG, "ext-1")]
        journal.update_confirmed(m, MeetingState(subject="new"), result(EXISTING))
        journal.delete_sent(m)
        assert journal.meetings()[(ORG, "ext-1")].status == DELETING
        journal.delete_abandoned(m, "403")
        assert journal.meetings()[(ORG, "ext-1")].status == ACTIVE
        journal.delete_sent(m)
        journal.delete_confirmed(m, http_status=204)
        assert journal.meetings()[(ORG, "ext-1")].status == CANCELLED
        journal.record(result(mid="mid-2"))  # the row came back: createOrGet made a new one
        back = journal.meetings()[(ORG, "ext-1")]
        assert (back.meeting_id, back.status, back.version) == ("mid-2", ACTIVE, 0)


def test_results_keep_the_new_meeting_fields(tmp_path: Path) -> None:
    from dataclasses import replace

    full = replace(result(options_url="https://teams.example/options", toll_free_number="+1 800"),
                   recorded_at="2027-03-01T02:00:00Z")
    with Journal.open(tmp_path / "j.sqlite") as journal:
        journal.record(full)
    with Journal.open(tmp_path / "j.sqlite") as journal:
        assert journal.get(ORG, "ext-1") == full


def test_the_section_key_is_kept_added_to_older_journals_and_filled_in_later(tmp_path: Path
                                                                               ) -> None:
    path = tmp_path / "j.sqlite"
    with Journal.open(path) as journal:
        journal.record(result(), row=2, section="sec-A")
        journal.record(result(ext="ext-2", mid="mid-2"), row=3)
        journal.record(result(EXISTING), row=2)  # a later answer without one keeps it
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE meetings DROP COLUMN section")  # as written before sections existed
    db.commit()
    db.close()
    with Journal.open(path) as journal:
        assert {k[1]: m.section for k, m in journal.meetings().items()} == {
            "ext-1": None, "ext-2": None}
        journal.remember_sections([(ORG, "ext-1", "sec-A"), (ORG, "ext-2", "sec-B")])
        journal.remember_sections([(ORG, "ext-1", "sec-C")])  # only where none is known
        assert {k[1]: m.section for k, m in journal.meetings().items()} == {
            "ext-1": "sec-A", "ext-2": "sec-B"}


# ``meetings`` as bulkmeet 0.2.0 made it (frozen history: never edit): WITHOUT ROWID, which sent
# every row of ~1.1 KB into an overflow page of its own.
MEETINGS_0_2_0 = """
CREATE TABLE meetings (
    organizer TEXT NOT NULL, external_id TEXT NOT NULL, meeting_id TEXT NOT NULL,
    status TEXT NOT NULL, state TEXT NOT NULL, join_url TEXT, fingerprint TEXT, row INTEGER,
    version INTEGER NOT NULL DEFAULT 0, updated_at TEXT NOT NULL, section TEXT,
    PRIMARY KEY (organizer, external_id)
) WITHOUT ROWID
"""


def test_a_0_2_0_meetings_table_is_rebuilt_and_keeps_every_meeting(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    state = MeetingState(subject="CS101", start="2027-03-01T14:00:00Z",
                         end="2027-03-01T14:50:00Z", attendees=(("a@x.example", "attendee"),),
                         settings=(("allowMeetingChat", "enabled"),))
    with Journal.open(path) as journal:
        journal.record(result(), state=state, row=2, section="sec-A")
        journal.record(result(ext="ext-2", mid="mid-2"), row=3)
        journal.record(result(ext="ext-3", mid="mid-3"), row=4)
        journal.delete_sent(journal.meetings()[(ORG, "ext-3")])
        journal.update_confirmed(journal.meetings()[(ORG, "ext-2")],
                                 MeetingState(subject="CS102", start="2027-03-02T14:00:00Z"),
                                 result("updated", ext="ext-2", mid="mid-2"), row=3)
        before = journal.meetings()
    db = sqlite3.connect(path)
    db.executescript(f"""ALTER TABLE meetings RENAME TO old; {MEETINGS_0_2_0};
        INSERT INTO meetings SELECT * FROM old; DROP TABLE old;""")
    db.close()
    with Journal.open(path) as journal:
        assert journal.meetings() == before
        assert journal.meeting_versions() == {(ORG, "ext-1"): 0, (ORG, "ext-2"): 1,
                                              (ORG, "ext-3"): 0}
        journal.record(result(EXISTING, ext="ext-2", mid="mid-2"), row=5)  # the key still holds
        assert len(journal.meetings()) == 3
        assert journal.meetings()[(ORG, "ext-2")].row == 5
    db = sqlite3.connect(path)
    (ddl,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'meetings'").fetchone()
    names = {n for (n,) in db.execute("SELECT name FROM sqlite_master")}
    versions = [v for (v,) in db.execute("SELECT version FROM schema_version")]
    db.close()
    assert "WITHOUT ROWID" not in ddl.upper() and "meetings_rebuilt" not in names
    assert versions == [2]  # same columns and key: still format 2
