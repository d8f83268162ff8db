"""The update and cancel phases when Graph misbehaves, with the in-memory ``FakeGraph`` behind the
gateway seam (the emulator answers correctly; these answers are the ones a real tenant may give):
a 200 that does not show the change, a meeting deleted by hand, a refused or unanswered DELETE.
Each must leave the journal holding only what Graph confirmed."""
from __future__ import annotations

import uuid
from pathlib import Path

from bulkmeet.config import load_config
from bulkmeet.graph import GraphResponse
from bulkmeet.journal import Journal
from bulkmeet.pipeline import RunOptions, run_import
from bulkmeet.sync import ACTIVE, CANCELLED, DELETING
from tests import helpers
from tests.fakes import FakeGraph

TEACHER = "teacher0@test.example"
TEACHER_ID = str(uuid.uuid4())


def setup(tmp_path: Path, n: int = 3, extra_run: str = ""):
    tenant = helpers.make_tenant(tmp_path / "directory.json")
    rows = [[*r[:3], TEACHER, *r[4:]] for r in helpers.schedule_rows(tenant, n)]
    schedule = helpers.write_csv(tmp_path / "s.csv", rows)
    ca = tmp_path / "ca.pem"
    ca.write_text("unused: the fake gateway makes no connection\n")
    config = helpers.write_config(tmp_path / "bulkmeet.toml", tenant, "https://127.0.0.1:9", ca,
                                  extra_run=extra_run)
    fake = FakeGraph(users={TEACHER: TEACHER_ID})
    return schedule, load_config(config), rows, fake


def run(schedule: Path, cfg, fake: FakeGraph, **options):
    return run_import(RunOptions(schedule=schedule, config=cfg, **options),
                      gateway_factory=lambda _: fake)


def journal_meetings(tmp_path: Path):
    with Journal.open(tmp_path / "s.journal.sqlite", lock=False) as journal:
        return journal.meetings()


def error(outcome) -> str:
    return outcome.error or ""


def test_a_200_without_the_new_values_is_not_recorded_as_applied(tmp_path) -> None:
    schedule, cfg, rows, fake = setup(tmp_path)
    assert run(schedule, cfg, fake).exit_status == 0
    before = journal_meetings(tmp_path)
    first = next(m for m in before.values() if m.row == 2)
    rows[0][5], rows[0][6] = "11:00", "11:50"
    helpers.write_csv(schedule, rows)
    stale = dict(fake.meetings[(TEACHER_ID, first.external_id)])
    fake.script[first.meeting_id] = [GraphResponse(200, stale)]  # "OK", but nothing changed
    outcome = run(schedule, cfg, fake)
    line = outcome.outcomes[(2, 0)]
    assert outcome.exit_status == 1 and line.status == "failed"
    assert "does not show the new time" in error(line) and "next run" in error(line)
    assert line.meeting is not None and line.meeting.join_url  # the link still works
    assert journal_meetings(tmp_path)[(TEACHER, first.external_id)].state == first.state
    again = run(schedule, cfg, fake)  # Graph behaves now: the same PATCH is sent and confirmed
    assert again.exit_status == 0 and again.outcomes[(2, 0)].status == "updated"
    assert journal_meetings(tmp_path)[(TEACHER, first.external_id)].state.start == \
        "2027-03-01T17:00:00Z"


def test_a_meeting_deleted_by_hand_is_made_again(tmp_path) -> None:
    schedule, cfg, rows, fake = setup(tmp_path)
    run(schedule, cfg, fake)
    key = next(k for k, m in journal_meetings(tmp_path).items() if m.row == 3)
    del fake.meetings[(TEACHER_ID, key[1])]  # someone deleted it in Teams
    rows[1][2] = "Renamed"
    helpers.write_csv(schedule, rows)
    outcome = run(schedule, cfg, fake)
    assert outcome.outcomes[(3, 0)].status == "failed"
    assert "no longer in Teams" in error(outcome.outcomes[(3, 0)])
    assert journal_meetings(tmp_path)[key].status == CANCELLED
    again = run(schedule, cfg, fake)
    assert again.exit_status == 0 and again.outcomes[(3, 0)].status == "created"
    assert fake.meetings[(TEACHER_ID, key[1])]["subject"] == "CS101: Renamed"


def refused_delete(tmp_path: Path, code: str, message: str):
    """Row 2 leaves the sheet and its DELETE is answered 403 ``code``: (outcome, key, rerun)."""
    schedule, cfg, rows, fake = setup(tmp_path, n=12)
    run(schedule, cfg, fake)
    key = next(k for k, m in journal_meetings(tmp_path).items() if m.row == 2)
    mid = journal_meetings(tmp_path)[key].meeting_id
    fake.script[mid] = [GraphResponse(403, {"error": {"code": code, "message": message}})]
    helpers.write_csv(schedule, rows[1:])
    outcome = run(schedule, cfg, fake, cancel_removed=True)
    return outcome, key, lambda: run(schedule, cfg, fake, cancel_removed=True)


def test_a_refused_delete_leaves_the_meeting_active_and_says_why(tmp_path) -> None:
    outcome, key, rerun = refused_delete(tmp_path, "Forbidden", "No.")
    (removed,) = outcome.removed
    assert removed.status == "failed" and "could not be cancelled" in removed.reason
    assert outcome.exit_status == 7  # still pending: the meeting is in Teams
    assert journal_meetings(tmp_path)[key].status == ACTIVE
    done = rerun()
    assert done.exit_status == 0 and done.removed[0].status == "cancelled"


def test_an_unanswered_delete_is_finished_by_the_next_run_even_unasked(tmp_path) -> None:
    schedule, cfg, rows, fake = setup(tmp_path, n=12, extra_run="max_attempts = 2")
    run(schedule, cfg, fake)
    key = next(k for k, m in journal_meetings(tmp_path).items() if m.row == 2)
    mid = journal_meetings(tmp_path)[key].meeting_id
    fake.script[mid] = [GraphResponse(None, failure="timeout")] * cfg.run.max_attempts
    helpers.write_csv(schedule, rows[1:])
    outcome = run(schedule, cfg, fake, cancel_removed=True)
    assert "the next run tries again" in outcome.removed[0].reason
    assert journal_meetings(tmp_path)[key].status == DELETING
    assert (TEACHER_ID, key[1]) in fake.meetings  # never reached Graph
    later = run(schedule, cfg, fake)  # no --cancel-removed: the operator already chose it
    assert later.exit_status == 0 and later.removed[0].status == "cancelled"
    assert (TEACHER_ID, key[1]) not in fake.meetings
    calls = [c for c in fake.calls if c[0] == "delete" and c[2] == mid]
    assert len(calls) == cfg.run.max_attempts + 1


def test_a_refused_update_names_the_update_not_creating(tmp_path) -> None:
    """A 403 or 400 on a PATCH says what was refused: changing a meeting, not creating one."""
    schedule, cfg, rows, fake = setup(tmp_path)
    run(schedule, cfg, fake)
    first = next(m for m in journal_meetings(tmp_path).values() if m.row == 2)
    second = next(m for m in journal_meetings(tmp_path).values() if m.row == 3)
    fake.script[first.meeting_id] = [GraphResponse(403, {"error": {
        "code": "AccessDenied", "message": "An error has occurred."}})]
    fake.script[second.meeting_id] = [GraphResponse(400, {"error": {
        "code": "BadRequest", "message": "An error has occurred."}})]
    rows[0][2] = rows[1][2] = "Renamed"
    helpers.write_csv(schedule, rows)
    outcome = run(schedule, cfg, fake)
    refused = error(outcome.outcomes[(2, 0)])
    assert refused.startswith('The update (subject "CS100: Lecture 0"→"CS100: Renamed"')
    assert refused.endswith(
        ") was not applied: 403 AccessDenied: An error has occurred. The app is not allowed to "
        "change meetings: grant the OnlineMeetings.ReadWrite.All application permission "
        "(delegated: OnlineMeetings.ReadWrite) in the Azure portal and click 'Grant admin "
        "consent'.")
    assert "Graph rejected the update for this row" in error(outcome.outcomes[(3, 0)])
    assert "create" not in error(outcome.outcomes[(3, 0)])


def test_a_refused_delete_names_the_cancellation(tmp_path) -> None:
    (removed,) = refused_delete(tmp_path, "AccessDenied", "")[0].removed
    assert "could not be cancelled: 403 AccessDenied. The app is not allowed to delete " \
           "meetings: grant" in removed.reason


def test_the_monthly_quota_counts_a_teacher_once_by_upn_or_object_id(tmp_path) -> None:
    """1,999 meetings made this month for the teacher written as a UPN; the sheet now names
    them by object id (in capitals): Graph counts one user, so does bulkmeet."""
    from bulkmeet.models import CREATED, MeetingResult

    schedule, cfg, rows, fake = setup(tmp_path, n=3)
    assert run(schedule, cfg, fake).exit_status == 0  # remembers TEACHER -> TEACHER_ID
    with Journal.open(tmp_path / "s.journal.sqlite", lock=False) as journal:
        for i in range(1996):  # 3 + 1,996 = 1,999 created this month under the UPN
            journal.record(MeetingResult(f"earlier-{i}", TEACHER.upper(), CREATED, "f",
                                         http_status=201))
    again = [[f"2{r[0]}", *r[1:3], TEACHER_ID.upper(), *r[4:]] for r in rows[:2]]
    outcome = run(helpers.write_csv(schedule, again), cfg, fake)
    lines = [outcome.outcomes[(2, 0)], outcome.outcomes[(3, 0)]]
    assert [line.status for line in lines] == ["created", "failed"]
    assert error(lines[1]).startswith(f"Organizer {TEACHER_ID} has reached Graph's "
                                      "limit of 2,000 meetings per calendar month: 2,000")
