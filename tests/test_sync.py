"""The sync rules without a network: what changed, the PATCH that says it, orphans, and when
cancelling is refused. (Through the CLI against the emulator: tests/test_sync_cli.py.)"""
from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bulkmeet.models import Attendee, InvalidRow, MeetingRequest
from bulkmeet.sync import (
    ACTIVE,
    CANCELLED,
    DELETING,
    JournalledMeeting,
    MeetingState,
    SyncLimits,
    build_plan,
    decide_cancel,
    diff,
    find_orphans,
    patch_body,
    unconfirmed,
)

TZ = ZoneInfo("America/Chicago")
ORG = "teacher0@test.example"


def req(ext: str = "e1", *, start=(2027, 3, 1, 18, 30), end=(2027, 3, 1, 19, 20), subject="CS101",
        attendees=(("a@x.example", "attendee"),), settings=(), org: str = ORG, row: int = 2
        ) -> MeetingRequest:
    return MeetingRequest(
        row=row, external_id=ext, organizer=org, subject=subject,
        start=datetime(*start, tzinfo=UTC) if start else None,
        end=datetime(*end, tzinfo=UTC) if end else None,
        attendees=tuple(Attendee(u, r) for u, r in attendees), settings=tuple(settings))


def journalled(request: MeetingRequest, mid: str = "m1", status: str = ACTIVE,
               **state_changes) -> JournalledMeeting:
    state = MeetingState.desired(request)
    if state_changes:
        from dataclasses import replace

        state = replace(state, **state_changes)
    return JournalledMeeting(request.organizer, request.external_id, mid, state, status,
                             join_url=f"https://join/{mid}")


def test_desired_state_defaults_the_end_and_sorts_attendees() -> None:
    r = req(end=None, attendees=(("B@x.example", "presenter"), ("a@x.example", "attendee")))
    state = MeetingState.desired(r)
    assert (state.start, state.end) == ("2027-03-01T18:30:00Z", "2027-03-01T19:30:00Z")
    assert state.attendees == (("a@x.example", "attendee"), ("b@x.example", "presenter"))
    assert MeetingState.from_json(state.to_json()) == state


def test_state_from_a_graph_answer() -> None:
    answer = {"subject": "CS101", "startDateTime": "2027-03-01T18:30:00.0000000Z",
              "endDateTime": "2027-03-01T19:20:00.0000000Z",
              "participants": {"attendees": [{"upn": "A@x.example", "role": "attendee",
                                              "identity": {"user": {"id": "1"}}}]},
              "allowMeetingChat": "enabled", "lobbyBypassSettings": {"scope": "organization"}}
    state = MeetingState.from_graph(answer)
    assert state.start == "2027-03-01T18:30:00Z" and state.end == "2027-03-01T19:20:00Z"
    assert state.attendees == (("a@x.example", "attendee"),)
    settings = dict(state.settings or ())
    assert settings["allowMeetingChat"] == "enabled"
    assert settings["lobbyBypassSettings.scope"] == "organization"
    assert settings["allowRecording"] is None  # Graph did not say


def test_a_moved_time_reads_in_local_time_and_sends_both_ends() -> None:
    old, new = req(), req(start=(2027, 3, 1, 20, 0), end=(2027, 3, 1, 20, 50))
    changes = diff(MeetingState.desired(new), MeetingState.desired(old), TZ)
    assert [c.text for c in changes] == ["start 12:30→14:00, end 13:20→14:50"]
    body = patch_body(MeetingState.desired(new), changes)
    assert body == {"startDateTime": "2027-03-01T20:00:00Z", "endDateTime": "2027-03-01T20:50:00Z"}


def test_a_time_moved_to_another_day_shows_the_dates() -> None:
    old, new = req(), req(start=(2027, 3, 2, 18, 30), end=(2027, 3, 2, 19, 20))
    (change,) = diff(MeetingState.desired(new), MeetingState.desired(old), TZ)
    assert change.text == ("start 2027-03-01 12:30→2027-03-02 12:30, "
                           "end 2027-03-01 13:20→2027-03-02 13:20")


def test_subject_and_attendees_and_nothing() -> None:
    old = req(attendees=(("a@x.example", "attendee"), ("b@x.example", "attendee")))
    new = req(subject="CS101 (room change)",
              attendees=(("b@x.example", "presenter"), ("c@x.example", "attendee")))
    changes = diff(MeetingState.desired(new), MeetingState.desired(old), TZ)
    assert [c.text for c in changes] == [
        'subject "CS101"→"CS101 (room change)"',
        "attendees +c@x.example, -a@x.example, b@x.example attendee→presenter"]
    body = patch_body(MeetingState.desired(new), changes)
    assert body == {"subject": "CS101 (room change)", "participants": {"attendees": [
        {"upn": "b@x.example", "role": "presenter"}, {"upn": "c@x.example", "role": "attendee"}]}}
    assert diff(MeetingState.desired(old), MeetingState.desired(old), TZ) == ()


def test_a_row_without_times_leaves_the_time_alone() -> None:
    have = MeetingState.desired(req())
    assert diff(MeetingState.desired(req(start=None, end=None)), have, TZ) == ()


def test_unknown_attendees_are_sent_unless_the_row_is_the_one_that_created_the_meeting() -> None:
    r = req()
    have = MeetingState(subject="CS101", start="2027-03-01T18:30:00Z", end="2027-03-01T19:20:00Z")
    assert [c.field for c in diff(MeetingState.desired(r), have, TZ)] == ["attendees"]
    assert diff(MeetingState.desired(r), have, TZ, attendees_known_equal=True) == ()


def test_options_diff_and_their_patch_shape() -> None:
    have = MeetingState.from_graph({"subject": "CS101", "allowMeetingChat": "enabled",
                                    "lobbyBypassSettings": {"scope": "organization"}})
    wanted = MeetingState(subject="CS101", settings=(("allowMeetingChat", "disabled"),
                                                     ("lobbyBypassSettings.scope", "everyone"),
                                                     ("recordAutomatically", False)))
    changes = diff(wanted, have, TZ)
    assert [c.text for c in changes] == ["allowMeetingChat enabled→disabled",
                                         "lobbyBypassSettings.scope organization→everyone",
                                         "recordAutomatically unset→false"]
    assert patch_body(wanted, changes) == {"allowMeetingChat": "disabled",
                                           "lobbyBypassSettings": {"scope": "everyone"},
                                           "recordAutomatically": False}
    unknown = diff(wanted, MeetingState(subject="CS101"), TZ)
    assert unknown[0].text == "allowMeetingChat unknown→disabled"


def test_an_answer_without_the_new_values_is_not_confirmed() -> None:
    old, new = req(), req(subject="New", start=(2027, 3, 1, 20, 0), end=(2027, 3, 1, 20, 50))
    wanted = MeetingState.desired(new)
    changes = diff(wanted, MeetingState.desired(old), TZ)
    assert unconfirmed(wanted, wanted, changes) == []
    stale = MeetingState.desired(req(subject="New"))
    assert unconfirmed(wanted, stale, changes) == ["time"]


def test_orphans_removed_rows_invalid_rows_and_a_new_organizer() -> None:
    kept, gone, broken = req("e1"), req("e2"), req("e3")
    moved_old = req("e4", org="teacher1@test.example")
    moved_new = req("e4", org="teacher2@test.example")
    book = {(m.organizer, m.external_id): m for m in (
        journalled(kept), journalled(gone, "m2"), journalled(broken, "m3"),
        journalled(moved_old, "m4"), journalled(req("e5"), "m5", CANCELLED))}
    orphans = find_orphans([kept, moved_new], [InvalidRow(9, "Date", "bad", "e3")], book)
    assert [(o.external_id, o.meeting_id) for o in orphans] == [("e2", "m2"), ("e4", "m4")]
    assert orphans[0].reason == "its row is no longer in the sheet"
    assert orphans[1].reason.startswith("the organizer changed to teacher2@test.example")
    assert orphans[0].join_url == "https://join/m2" and orphans[0].subject == "CS101"


def test_an_invalid_row_with_a_readable_key_keeps_its_sections_meetings() -> None:
    """Its organizer is unknown (an instructor gone from the staff list), so its sessions'
    externalIds are too; the section key still names them, and nothing blocks other cancels."""
    from dataclasses import replace

    sessions = [replace(req(f"s{n}"), section="sec-1") for n in (1, 2)]
    gone = replace(req("g1"), section="sec-2")
    book = {(m.organizer, m.external_id): replace(journalled(m), section=m.section)
            for m in (*sessions, gone)}
    broken = InvalidRow(5, "Instructor", '"Lee, Ana" is not in the staff directory', None,
                        section="sec-1")
    assert [o.external_id for o in find_orphans([], [broken], book)] == ["g1"]
    plan = build_plan([], [broken], 20, book, TZ, SyncLimits(cancel_removed=True,
                                                             max_cancel_percent=50))
    assert [o.external_id for o in plan.orphans] == ["g1"] and plan.cancel.allowed
    unreadable = InvalidRow(5, "CRN", "missing", None, None)
    assert not build_plan([], [unreadable], 20, book, TZ, SyncLimits(
        cancel_removed=True, max_cancel_percent=100)).cancel.allowed


@pytest.mark.parametrize(("orphans", "meetings", "allowed", "refused"), [
    (3, 30, True, False),  # 10%: not more than 10%
    (4, 30, False, True),  # 13%
    (25, 1000, True, False),
    (26, 1000, False, True),  # more than 25
    (0, 30, False, False),  # nothing to cancel
])
def test_the_cancel_threshold(orphans, meetings, allowed, refused) -> None:
    decision = decide_cancel(orphans, schedule_meetings=meetings, rows=meetings, invalid=0,
                             limits=SyncLimits(cancel_removed=True))
    assert (decision.allowed, decision.refused) == (allowed, refused)
    if refused:
        assert f"--max-cancel {orphans}" in (decision.reason or "")


def test_max_cancel_once_and_the_sheet_checks() -> None:
    limits = SyncLimits(cancel_removed=True, max_cancel_once=30)
    assert decide_cancel(30, schedule_meetings=30, rows=1, invalid=0, limits=limits).allowed
    over = decide_cancel(31, schedule_meetings=40, rows=9, invalid=0, limits=limits)
    assert over.refused and "--max-cancel allows 30" in (over.reason or "")
    empty = decide_cancel(3, schedule_meetings=30, rows=0, invalid=0, limits=limits)
    assert not empty.allowed and not empty.refused and "no rows" in (empty.reason or "")
    broken = decide_cancel(3, schedule_meetings=30, rows=27, invalid=4, limits=limits)
    assert not broken.allowed and "4 of 27 rows are invalid" in (broken.reason or "")
    off = decide_cancel(3, schedule_meetings=30, rows=27, invalid=0, limits=SyncLimits())
    assert (off.allowed, off.reason) == (False, None)


def test_build_plan_sorts_every_row() -> None:
    same, moved, new = req("e1"), req("e2"), req("e3")
    book = {(m.organizer, m.external_id): m for m in (
        journalled(same), journalled(moved, "m2", subject="Old title"),
        journalled(req("e4"), "m4"), journalled(req("e5"), "m5", DELETING),
        journalled(req("e6"), "m6", DELETING))}
    plan = build_plan([same, moved, new, req("e6")], [], 4, book, TZ, SyncLimits())
    assert [r.external_id for r in plan.creates] == ["e3", "e6"]  # e6: its row is back
    assert [(u.meeting_id, u.description) for u in plan.updates] == [
        ("m2", 'subject "Old title"→"CS101"')]
    assert [r.external_id for r in plan.unchanged] == ["e1"]
    assert [o.external_id for o in plan.orphans] == ["e4"]
    assert [o.external_id for o in plan.deleting] == ["e5"]  # finish the cancel a kill cut short
    assert not plan.cancel.allowed
    full = build_plan([same], [], 1, book, TZ, SyncLimits(), full=True)
    assert [r.external_id for r in full.creates] == ["e1"]


def test_a_new_organizer_is_recognised_by_the_same_class_at_the_same_time() -> None:
    """With keys = [...] the externalId includes the organizer, so a swap changes it too."""
    old = req("old-id", org="teacher1@test.example", subject="CS7: Lecture")
    new = req("new-id", org="teacher2@test.example", subject="CS7: Lecture")
    other = req("e9", subject="CS8")
    book = {(m.organizer, m.external_id): m for m in (journalled(old), journalled(other, "m9"))}
    (orphan,) = find_orphans([new, other], [], book)
    assert orphan.reason.startswith("the organizer changed to teacher2@test.example")
    twins = [new, req("x", org="teacher3@test.example", subject="CS7: Lecture")]
    (unsure,) = find_orphans(twins, [], {("teacher1@test.example", "old-id"): journalled(old)})
    assert unsure.reason == "its row is no longer in the sheet"  # two candidates: say no more


def test_an_invalid_row_without_a_key_blocks_every_cancel() -> None:
    book = {(m.organizer, m.external_id): m for m in (journalled(req("e1")),
                                                      journalled(req("e2"), "m2"))}
    plan = build_plan([req("e1")], [InvalidRow(3, "Date", "not a date", None)], 30, book, TZ,
                      SyncLimits(cancel_removed=True, max_cancel_once=5))
    assert [o.external_id for o in plan.orphans] == ["e2"]
    assert not plan.cancel.allowed and not plan.cancel.refused
    assert "1 invalid row(s) have no readable key" in (plan.cancel.reason or "")
