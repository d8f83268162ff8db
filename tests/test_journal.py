"""The journal against a real SQLite file, real flocks and a really killed process."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bulkmeet.errors import BulkmeetError, ExitStatus, InputError, LockedError
from bulkmeet.journal import (
    Journal,
    JournalWriteError,
    RunLock,
    default_journal_path,
    lock_path_for,
)
from bulkmeet.models import CREATED, EXISTING, FAILED, MeetingInfo, MeetingResult
from tests import helpers

ORG = "6f1c1b9e-3d4c-4f57-9a43-2d0f3b2a9c11"
MEETING = MeetingInfo(
    meeting_id="MSo1N2Y5ZGFjYy03MWJm",
    join_url="https://teams.example/l/meetup-join/19%3ameeting_x%40thread.v2/0",
    join_meeting_id="1234567890",
    passcode="aB3cD4",
    dialin_url="https://dialin.teams.example/abc",
    conference_id="99887766",
    toll_number="+1 425-555-0100",
    start_utc="2027-03-01T14:00:00Z",
    end_utc="2027-03-01T15:15:00Z",
    subject="CS101: Lecture 1",
)


def result(status: str = CREATED, *, ext: str = "ext-1", org: str = ORG, fp: str = "fp-A",
           attempts: int = 1, **kw) -> MeetingResult:
    meeting = kw.pop("meeting", MEETING if status in (CREATED, EXISTING) else None)
    return MeetingResult(external_id=ext, organizer=org, status=status, fingerprint=fp,
                         http_status=kw.pop("http_status", 201 if status == CREATED else 200
                                            if status == EXISTING else 403),
                         meeting=meeting, attempts=attempts, **kw)


@pytest.fixture
def jpath(tmp_path: Path) -> Path:
    return tmp_path / "term.journal.sqlite"


def test_paths_sit_beside_the_schedule(tmp_path: Path) -> None:
    assert (default_journal_path(tmp_path / "fall 2027.xlsx")
            == tmp_path / "fall 2027.journal.sqlite")
    assert default_journal_path(Path("term.csv")) == Path("term.journal.sqlite")
    assert lock_path_for(tmp_path / "term.journal.sqlite") == tmp_path / "term.journal.lock"
    assert lock_path_for(tmp_path / "journal") == tmp_path / "journal.lock"
    assert lock_path_for(tmp_path / "odd.lock") == tmp_path / "odd.lock.lock"


def test_a_result_comes_back_exactly(jpath: Path) -> None:
    full = MeetingResult(
        external_id="ext-1", organizer=ORG, status=CREATED, fingerprint="f" * 64,
        http_status=201, meeting=MEETING, error=None, error_code=None,
        request_id="0b1c2d3e-1111-2222-3333-444455556666", attempts=3,
        warning="The meeting differs from the sheet.", recorded_at="2027-03-01T02:00:03.123Z",
    )
    failed = MeetingResult(
        external_id="ext-2", organizer="teacher@school.example", status=FAILED,
        fingerprint="e" * 64, http_status=403, meeting=None,
        error="Forbidden: No application access policy found for this app.",
        error_code="Forbidden", request_id="rid-2", attempts=1, recorded_at="2027-03-01T02:00:04Z",
    )
    empty_meeting = result(ext="ext-3", meeting=MeetingInfo(meeting_id=""), recorded_at="x")
    with Journal.open(jpath) as journal:
        for r in (full, failed, empty_meeting):
            journal.record(r)
    with Journal.open(jpath) as journal:  # a fresh connection: read from the file
        assert journal.get(ORG, "ext-1") == full
        assert journal.get("teacher@school.example", "ext-2") == failed
        assert journal.get(ORG, "ext-3") == empty_meeting
        assert journal.get(ORG, "nope") is None
        assert journal.latest() == {
            (ORG, "ext-1"): full, ("teacher@school.example", "ext-2"): failed,
            (ORG, "ext-3"): empty_meeting,
        }


def test_recorded_at_is_filled_in_utc(jpath: Path) -> None:
    before = datetime.now(UTC)
    with Journal.open(jpath) as journal:
        journal.record(result())
        stamp = journal.get(ORG, "ext-1").recorded_at
    assert stamp.endswith("Z")
    when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert before.replace(microsecond=0) <= when <= datetime.now(UTC)


# Each case: results recorded in order for one key -> (index of the one latest() returns).
LATEST_RULE = [
    pytest.param([(CREATED, "A"), (FAILED, "A")], 0, id="failure-after-success-same-fp"),
    pytest.param([(CREATED, "A"), (FAILED, "A"), (FAILED, "A")], 0, id="two-failures-after"),
    pytest.param([(CREATED, "A"), (EXISTING, "A"), (FAILED, "A")], 1, id="newest-success-kept"),
    pytest.param([(CREATED, "A"), (FAILED, "B")], 1, id="failure-with-changed-row-wins"),
    pytest.param([(CREATED, "A"), (FAILED, "B"), (FAILED, "A")], 0, id="back-to-old-row"),
    pytest.param([(FAILED, "A"), (CREATED, "A")], 1, id="success-after-failure"),
    pytest.param([(CREATED, "A"), (EXISTING, "A")], 1, id="newest-success-wins"),
    pytest.param([(CREATED, "A"), (CREATED, "B")], 1, id="changed-row-success"),
    pytest.param([(FAILED, "A"), (FAILED, "A")], 1, id="newest-failure"),
]


@pytest.mark.parametrize(("sequence", "expected"), LATEST_RULE)
def test_latest_rule(jpath: Path, sequence: list[tuple[str, str]], expected: int) -> None:
    recorded = [result(status, fp=fp, attempts=i + 1, recorded_at=f"t{i}")
                for i, (status, fp) in enumerate(sequence)]
    with Journal.open(jpath) as journal:
        for r in recorded:
            journal.record(r)
        journal.record(result(FAILED, ext="other"))  # another key never interferes
        assert journal.get(ORG, "ext-1") == recorded[expected]
        assert journal.latest()[(ORG, "ext-1")] == recorded[expected]
        assert journal.history(ORG, "ext-1") == recorded


def test_keys_are_organizer_and_external_id(jpath: Path) -> None:
    with Journal.open(jpath) as journal:
        journal.record(result(CREATED, org="a@x.example", ext="same"))
        journal.record(result(FAILED, org="b@x.example", ext="same"))
        latest = journal.latest()
    assert latest[("a@x.example", "same")].status == CREATED
    assert latest[("b@x.example", "same")].status == FAILED
    assert len(latest) == 2


def test_attempts_add_up_over_runs_and_runs_are_recorded(jpath: Path) -> None:
    with Journal.open(jpath) as journal:
        argv = ["bulkmeet", "run", "--client-secret", "hunter2", "term.xlsx"]
        run1 = journal.start_run(schedule="term.xlsx", argv=argv)
        journal.record(result(FAILED, attempts=6))
        journal.finish_run(run1, {"created": 0, "failed": 1, "when": datetime(2027, 3, 1)})
    with Journal.open(jpath) as journal:
        run2 = journal.start_run(schedule="term.xlsx", argv=["bulkmeet", "--password=hunter2"])
        journal.record(result(CREATED, attempts=2))
        assert journal.attempts(ORG, "ext-1") == 8
        assert journal.attempts(ORG, "never") == 0
        runs = journal.runs()
    assert [r["id"] for r in runs] == [run1, run2]
    assert runs[0]["summary"] == {"created": 0, "failed": 1, "when": "2027-03-01 00:00:00"}
    assert runs[0]["finished_at"] and runs[1]["finished_at"] is None
    assert runs[0]["pid"] == os.getpid()
    assert "hunter2" not in jpath.read_bytes().decode("latin-1")
    assert runs[0]["argv"] == ["bulkmeet", "run", "--client-secret", "***", "term.xlsx"]
    with sqlite3.connect(jpath) as db:  # each result is tied to the run that made it
        assert [r[0] for r in db.execute("SELECT run_id FROM results ORDER BY id")] == [run1, run2]


def test_organizer_cache(jpath: Path) -> None:
    with Journal.open(jpath) as journal:
        assert journal.resolved_organizers() == {}
        journal.remember_organizer("Teacher@School.example", "oid-1")
        journal.remember_organizer("other@school.example", "oid-2")
        journal.remember_organizer("teacher@school.example", "oid-3")  # re-resolved: replaced
    with Journal.open(jpath) as journal:
        assert journal.resolved_organizers() == {"teacher@school.example": "oid-3",
                                                 "other@school.example": "oid-2"}


def test_many_threads_record_at_once(jpath: Path) -> None:
    threads, per_thread = 8, 250
    with Journal.open(jpath) as journal:
        errors: list[BaseException] = []

        def work(t: int) -> None:
            try:
                for i in range(per_thread):
                    journal.record(result(ext=f"ext-{t}-{i}", org=f"org-{t}", attempts=i))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for th in pool:
            th.start()
        while any(th.is_alive() for th in pool):  # reads while the writers write
            journal.latest()
            time.sleep(0.01)
        for th in pool:
            th.join()
        assert not errors
    with Journal.open(jpath) as journal:
        latest = journal.latest()
    assert len(latest) == threads * per_thread
    assert latest[("org-7", "ext-7-249")].attempts == 249


def test_the_file_is_in_wal_mode(jpath: Path) -> None:
    with Journal.open(jpath) as journal:
        journal.record(result())
        with sqlite3.connect(jpath) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert db.execute("SELECT version FROM schema_version").fetchall() == [(2,)]


# -- the run lock ------------------------------------------------------------------------------

def test_a_second_run_is_turned_away_at_once(jpath: Path) -> None:
    first = Journal.open(jpath, schedule="term.xlsx")
    first.start_run(schedule="term.xlsx", argv=[])
    try:
        started = time.monotonic()
        with pytest.raises(LockedError) as caught:
            Journal.open(jpath)
        assert time.monotonic() - started < 5  # "at once", not after a lock timeout
        message = str(caught.value)
        assert "Another bulkmeet run is already working on term.xlsx" in message
        assert f"pid {os.getpid()}" in message and "started " in message
        assert caught.value.exit_status == ExitStatus.LOCKED
        # Reading without the lock (e.g. a status command) still works meanwhile.
        with Journal.open(jpath, lock=False) as reader:
            assert reader.latest() == {}
    finally:
        first.close()
    with Journal.open(jpath) as again:  # released on close
        assert again.locked


def _child(tmp_path: Path, body: str) -> subprocess.Popen:
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stdin=subprocess.PIPE, text=True, bufsize=1)


def test_a_killed_run_does_not_block_the_next(tmp_path: Path, jpath: Path) -> None:
    child = _child(tmp_path, f"""
        import sys
        from pathlib import Path
        from bulkmeet.journal import Journal
        journal = Journal.open(Path({str(jpath)!r}), schedule="fall.xlsx")
        journal.start_run(schedule="fall.xlsx", argv=[])
        print("locked", flush=True)
        sys.stdin.readline()
    """)
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(LockedError, match=rf"fall\.xlsx \(pid {child.pid}, started"):
            Journal.open(jpath)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    with Journal.open(jpath) as journal:  # no stale lock: the kernel dropped it
        assert journal.locked
        assert journal.runs()[0]["schedule"] == "fall.xlsx"


def test_every_reported_result_survives_kill_9(tmp_path: Path, jpath: Path) -> None:
    child = _child(tmp_path, f"""
        import threading
        from pathlib import Path
        from bulkmeet.journal import Journal
        from bulkmeet.models import MeetingInfo, MeetingResult
        journal = Journal.open(Path({str(jpath)!r}))
        journal.start_run(schedule="s.xlsx", argv=[])
        say = threading.Lock()
        def work(t):
            i = 0
            while True:
                ext = f"ext-{{t}}-{{i}}"
                info = MeetingInfo("m-" + ext, "https://j/" + ext)
                journal.record(MeetingResult(ext, "org", "created", "fp", 201, info, attempts=1))
                with say:
                    print(ext, flush=True)
                i += 1
        for t in range(4):
            threading.Thread(target=work, args=(t,), daemon=True).start()
        threading.Event().wait()
    """)
    reported: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while len(reported) < 400 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            reported.append(line.strip())
        child.send_signal(signal.SIGKILL)  # mid-stream: records are being written right now
        child.wait(timeout=10)
        tail = child.stdout.read()  # lines printed before the kill but not read yet
        reported += [line for line in tail.splitlines()[:-1]]  # the last may be cut short
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    assert len(reported) >= 400
    with Journal.open(jpath) as journal:
        latest = journal.latest()
    missing = [ext for ext in reported if ("org", ext) not in latest]
    assert not missing, f"{len(missing)} reported results lost, e.g. {missing[:3]}"
    assert latest[("org", reported[-1])].meeting.join_url == "https://j/" + reported[-1]


# -- unusable journals -------------------------------------------------------------------------

def test_a_non_sqlite_file_is_named_with_what_to_do(jpath: Path) -> None:
    jpath.write_bytes(b"this is a spreadsheet, honest\n" * 200)
    with pytest.raises(InputError) as caught:
        Journal.open(jpath)
    message = str(caught.value)
    assert str(jpath) in message and "Move it aside" in message and "safe" in message
    assert caught.value.exit_status == ExitStatus.UNUSABLE_INPUT
    jpath.rename(jpath.with_name("moved.broken"))
    with Journal.open(jpath) as journal:  # the failed open released its lock
        journal.record(result())


def test_a_damaged_journal_is_refused(jpath: Path) -> None:
    with Journal.open(jpath) as journal:
        for i in range(300):
            journal.record(result(ext=f"ext-{i}", warning="x" * 200))
    data = bytearray(jpath.read_bytes())
    page = 4096
    assert len(data) > 10 * page
    data[5 * page: 7 * page] = os.urandom(2 * page)
    jpath.write_bytes(bytes(data))
    with pytest.raises(InputError, match="damaged or is not a bulkmeet journal"):
        Journal.open(jpath)


def test_another_programs_database_is_left_alone(jpath: Path) -> None:
    with sqlite3.connect(jpath) as db:
        db.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(InputError, match="not a bulkmeet journal"):
        Journal.open(jpath)
    with sqlite3.connect(jpath) as db:
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["invoices"]


def test_a_journal_from_a_newer_bulkmeet_is_refused(jpath: Path) -> None:
    Journal.open(jpath).close()
    with sqlite3.connect(jpath) as db:
        db.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(InputError, match="newer bulkmeet"):
        Journal.open(jpath)


def test_a_folder_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "j.sqlite").mkdir()
    with pytest.raises(InputError, match="is a folder"):
        Journal.open(tmp_path / "j.sqlite")


def test_the_folder_is_created(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "state" / "deep" / "j.sqlite") as journal:
        journal.record(result())
    assert (tmp_path / "state" / "deep" / "j.lock").exists()


def test_writing_after_close_is_a_clear_error(jpath: Path) -> None:
    journal = Journal.open(jpath)
    journal.close()
    journal.close()  # twice is fine
    with pytest.raises(JournalWriteError, match="closed"):
        journal.record(result())


# -- exit statuses of a journal that cannot be written (issue 12, item 16) -----------------------

@pytest.fixture
def read_only(jpath: Path):
    """A journal file nobody may write: chmod for a normal user, the immutable flag for root
    (root ignores file modes). Skipped where neither works."""
    with Journal.open(jpath, lock=False) as journal:
        journal.record(result())
    for side in (jpath.with_name(jpath.name + "-wal"), jpath.with_name(jpath.name + "-shm")):
        side.unlink(missing_ok=True)
    with helpers.read_only(jpath):
        yield jpath


def test_a_read_only_journal_is_a_write_failure_exit_6(read_only: Path) -> None:
    with pytest.raises(JournalWriteError) as err:
        with Journal.open(read_only) as journal:
            journal.start_run(schedule="term.csv", argv=[])
    assert err.value.exit_status == ExitStatus.WRITE_FAILED
    assert "readonly database" in str(err.value)


def test_a_lock_that_cannot_be_created_is_a_write_failure_exit_6(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("x")
    with pytest.raises(BulkmeetError) as err:
        RunLock.acquire(blocked / "term.journal.lock", "term.csv")
    assert err.value.exit_status == ExitStatus.WRITE_FAILED
    assert str(err.value).startswith(f"Cannot create the lock file {blocked}/term.journal.lock")


def test_a_journal_that_cannot_be_created_on_a_full_disk_is_exit_6(tmp_path: Path) -> None:
    # RLIMIT_FSIZE makes the kernel refuse to grow files past 1 KiB (EFBIG), as a full disk
    # refuses with ENOSPC; SQLite cannot write its first pages. Python ignores SIGXFSZ.
    script = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))
        from bulkmeet.journal import Journal
        from bulkmeet.errors import BulkmeetError
        try:
            Journal.open({str(tmp_path / 'new.journal.sqlite')!r}).close()
        except BulkmeetError as exc:
            print(int(exc.exit_status), exc)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.startswith("6 Cannot use the journal"), out.stdout + out.stderr


# -- size ------------------------------------------------------------------------------------

def test_a_meeting_costs_about_a_page_of_journal_not_two(jpath: Path) -> None:
    """Rows as big as real Graph answers (long join and options URLs, meeting options in the
    state): the journal stays near the data itself. It was 6 KB a row when ``meetings`` was
    WITHOUT ROWID and each row took an overflow page of its own (bulkmeet.journal_sql)."""
    from bulkmeet.models import MeetingState

    settings = tuple((f"lobbyBypassSettings.option{i}", i % 2 == 0) for i in range(11))
    with Journal.open(jpath) as journal:
        for i in range(1000):
            thread = f"19:meeting_{i:08d}{'Z' * 40}@thread.v2"
            info = MeetingInfo(
                meeting_id=f"MSp{i:08d}" + "x" * 160,
                join_url=f"https://teams.microsoft.com/l/meetup-join/{thread}/0?context=" + "c" * 150,
                join_meeting_id="495501513693", passcode="yspTkk",
                dialin_url="https://dialin.teams.microsoft.com/" + "d" * 50,
                conference_id="160721575", toll_number="+1 425-555-0100",
                start_utc="2026-01-12T14:00:00.0000000Z", end_utc="2026-01-12T15:15:00.0000000Z",
                subject="CS100-001: Data Structures",
                options_url="https://teams.microsoft.com/meetingOptions/?" + "o" * 200,
                toll_free_number="+1 800-555-0199")
            state = MeetingState(subject=info.subject, start="2026-01-12T14:00:00Z",
                                 end="2026-01-12T15:15:00Z", attendees=(), settings=settings)
            journal.record(result(ext=f"{i:064x}", fp="f" * 64, meeting=info,
                                  request_id="6aebc4ef-0788-47aa-b6c1-b9bcf145a206"),
                           state=state, row=i + 2)
    size = sum(p.stat().st_size for p in jpath.parent.glob(jpath.name + "*"))
    assert size / 1000 < 4000, f"{size / 1000:.0f} bytes a row"
