"""Calendar files: written by bulkmeet, read back by icalendar AND by vobject (an independent parser).

The end-to-end checks (UID stability across runs and CSV vs XLSX input, through the CLI against
the emulator) are at the bottom.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
import vobject

from bulkmeet.calendars import event_uid, file_stem, meeting_id_text, write_calendars
from bulkmeet.models import PublishedMeeting

TZ = "America/Chicago"
CHICAGO = ZoneInfo(TZ)
JOIN = "https://teams.example/l/meetup-join/19%3ameeting_x%40thread.v2/0?context=%7b%7d&n="


def published(n: int, start: datetime, *, organizer: str = "teacher0@test.example",
              section: str = "10001", status: str = "created", sequence: int = 0,
              minutes: int = 50) -> PublishedMeeting:
    return PublishedMeeting(
        organizer=organizer, external_id=f"ext-{n}", subject=f"CS101: Lecture {n}",
        start=start, end=start + timedelta(minutes=minutes), time_zone=TZ, status=status,
        organizer_name="Ada Lovelace", section=section, join_url=f"{JOIN}{n}",
        join_meeting_id="123456789012", passcode="aB3cD4", toll_number="+1 425-555-0100",
        toll_free_number="+1 800-555-0199", conference_id="987654321",
        dialin_url="https://dialin.teams.example/abc", options_url=f"https://teams.example/options/{n}",
        sequence=sequence, stamp=datetime(2027, 1, 5, 12, 0, tzinfo=UTC), rows=(n + 1,))


def term() -> list[PublishedMeeting]:
    """A Monday class at 9:00 on both sides of the 2027-03-14 DST change, one cancelled, one
    moved (sequence 2), and a second organizer in another section."""
    return [
        published(1, datetime(2027, 3, 8, 9, 0, tzinfo=CHICAGO)),
        published(2, datetime(2027, 3, 15, 9, 0, tzinfo=CHICAGO), sequence=2),
        published(3, datetime(2027, 3, 22, 9, 0, tzinfo=CHICAGO), status="cancelled", sequence=1),
        published(4, datetime(2027, 3, 9, 13, 0, tzinfo=CHICAGO), organizer="bob@test.example",
                  section="10002"),
    ]


def events_icalendar(path: Path) -> dict[str, icalendar.Event]:
    cal = icalendar.Calendar.from_ical(path.read_bytes())
    return {str(e["UID"]): e for e in cal.walk("VEVENT")}


def events_vobject(path: Path) -> dict[str, object]:
    cal = vobject.readOne(path.read_text(encoding="utf-8"))
    return {e.uid.value: e for e in cal.vevent_list}


def test_one_calendar_per_organizer_and_per_section(tmp_path: Path) -> None:
    files = write_calendars(tmp_path, term(), time_zone=TZ)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in files.organizers.values()) == [
        "organizers/bob@test.example.ics", "organizers/teacher0@test.example.ics"]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in files.sections.values()) == [
        "sections/10001.ics", "sections/10002.ics"]
    assert files.events == 8 and files.skipped == 0
    teacher = events_icalendar(files.organizers["teacher0@test.example"])
    assert len(teacher) == 3
    assert len(events_vobject(files.sections["10002"])) == 1


def test_event_fields_read_back_by_both_parsers(tmp_path: Path) -> None:
    files = write_calendars(tmp_path, term(), time_zone=TZ)
    path = files.organizers["teacher0@test.example"]
    uid = event_uid("teacher0@test.example", "ext-1")
    ev = events_icalendar(path)[uid]
    assert str(ev["SUMMARY"]) == "CS101: Lecture 1"
    assert str(ev["LOCATION"]) == f"{JOIN}1" and str(ev["URL"]) == f"{JOIN}1"
    assert ev["STATUS"] == "CONFIRMED" and int(ev["SEQUENCE"]) == 0
    assert str(ev["ORGANIZER"]) == "mailto:teacher0@test.example"
    assert ev["ORGANIZER"].params["CN"] == "Ada Lovelace"
    description = str(ev["DESCRIPTION"])
    for text in (f"Join the Teams meeting: {JOIN}1", "Meeting ID: 123 456 789 012",
                 "Passcode: aB3cD4", "+1 425-555-0100 (toll)", "+1 800-555-0199 (toll-free)",
                 "conference ID 987654321#", "Local numbers: https://dialin.teams.example/abc",
                 "https://teams.example/options/1"):
        assert text in description
    v = events_vobject(path)[uid]
    assert v.summary.value == "CS101: Lecture 1"
    assert v.location.value == f"{JOIN}1"
    assert "Passcode: aB3cD4" in v.description.value
    assert v.dtstart.value == datetime(2027, 3, 8, 9, 0, tzinfo=CHICAGO)
    assert v.dtend.value == datetime(2027, 3, 8, 9, 50, tzinfo=CHICAGO)


def test_students_calendar_has_no_meeting_options_link(tmp_path: Path) -> None:
    files = write_calendars(tmp_path, term(), time_zone=TZ)
    text = files.sections["10001"].read_text(encoding="utf-8")
    assert "teams.example/options" not in text
    assert "Passcode: aB3cD4" in str(events_icalendar(files.sections["10001"])[
        event_uid("teacher0@test.example", "ext-1")]["DESCRIPTION"])


def test_dst_inside_the_term_keeps_wall_time_and_shifts_utc(tmp_path: Path) -> None:
    files = write_calendars(tmp_path, term(), time_zone=TZ)
    path = files.sections["10001"]
    raw = path.read_text(encoding="utf-8")
    assert "BEGIN:VTIMEZONE" in raw and "TZID:America/Chicago" in raw
    assert "DTSTART;TZID=America/Chicago:20270308T090000" in raw
    assert "DTSTART;TZID=America/Chicago:20270315T090000" in raw
    for events in (events_icalendar(path), events_vobject(path)):
        before = events[event_uid("teacher0@test.example", "ext-1")]
        after = events[event_uid("teacher0@test.example", "ext-2")]
        b = before["DTSTART"].dt if isinstance(before, icalendar.Event) else before.dtstart.value
        a = after["DTSTART"].dt if isinstance(after, icalendar.Event) else after.dtstart.value
        assert (b.hour, b.minute) == (a.hour, a.minute) == (9, 0)
        assert b.astimezone(UTC).hour == 15 and a.astimezone(UTC).hour == 14


def test_vtimezone_alone_gives_the_right_offsets(tmp_path: Path) -> None:
    """Read the file's own VTIMEZONE (not the machine's tz database) with vobject."""
    files = write_calendars(tmp_path, term(), time_zone=TZ)
    cal = vobject.readOne(files.sections["10001"].read_text(encoding="utf-8"))
    tz = cal.vtimezone.gettzinfo()
    assert datetime(2027, 3, 8, 9, 0, tzinfo=tz).utcoffset() == timedelta(hours=-6)
    assert datetime(2027, 3, 15, 9, 0, tzinfo=tz).utcoffset() == timedelta(hours=-5)


def test_cancelled_and_changed_meetings(tmp_path: Path) -> None:
    files = write_calendars(tmp_path, term(), time_zone=TZ)
    events = events_icalendar(files.organizers["teacher0@test.example"])
    cancelled = events[event_uid("teacher0@test.example", "ext-3")]
    assert cancelled["STATUS"] == "CANCELLED" and int(cancelled["SEQUENCE"]) == 1
    assert "This meeting was cancelled." in str(cancelled["DESCRIPTION"])
    moved = events_vobject(files.organizers["teacher0@test.example"])[
        event_uid("teacher0@test.example", "ext-2")]
    assert moved.sequence.value == "2" and moved.status.value == "CONFIRMED"


def test_unchanged_meetings_write_identical_files(tmp_path: Path) -> None:
    first = write_calendars(tmp_path / "a", term(), time_zone=TZ)
    second = write_calendars(tmp_path / "b", list(reversed(term())), time_zone=TZ)
    for key, path in first.organizers.items():
        assert path.read_bytes() == second.organizers[key].read_bytes()


def test_uid_depends_on_organizer_and_external_id_only() -> None:
    uid = event_uid("teacher0@test.example", "ext-1")
    assert uid == event_uid(" Teacher0@Test.example ", "ext-1")
    assert uid != event_uid("bob@test.example", "ext-1")
    assert uid != event_uid("teacher0@test.example", "ext-2")
    assert uid.endswith("@bulkmeet.invalid")


def test_meetings_without_a_start_are_left_out(tmp_path: Path) -> None:
    m = published(1, datetime(2027, 3, 8, 9, 0, tzinfo=CHICAGO))
    timeless = PublishedMeeting(organizer=m.organizer, external_id="t", subject="x", start=None,
                                end=None, time_zone=TZ, status="created", section="10001")
    files = write_calendars(tmp_path, [m, timeless], time_zone=TZ)
    assert files.skipped == 1
    assert len(events_icalendar(files.sections["10001"])) == 1


def test_file_names_are_portable_and_never_collide(tmp_path: Path) -> None:
    assert file_stem("CS 101/A:B") == "CS_101_A_B"
    assert file_stem("../..") == "unnamed"
    start = datetime(2027, 3, 8, 9, 0, tzinfo=CHICAGO)
    files = write_calendars(tmp_path, [published(1, start, section="A/B"),
                                       published(2, start, section="A:B")], time_zone=TZ)
    names = sorted(p.name for p in files.sections.values())
    assert len(set(names)) == 2 and all(n.startswith("A_B-") for n in names)
    assert all(p.parent == tmp_path / "sections" for p in files.sections.values())


def test_meeting_id_is_grouped_as_teams_prints_it() -> None:
    assert meeting_id_text("123456789012") == "123 456 789 012"
    assert meeting_id_text("12345678901234") == "123 456 789 012 34"
    assert meeting_id_text(None) == ""


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "Australia/Sydney"])
def test_other_zones_round_trip(tmp_path: Path, zone: str) -> None:
    tz = ZoneInfo(zone)
    m = [published(i, datetime(2027, 3, 20, 9, 0, tzinfo=tz) + timedelta(days=i)) for i in range(14)]
    files = write_calendars(tmp_path, m, time_zone=zone)
    for e in events_vobject(files.sections["10001"]).values():
        assert (e.dtstart.value.hour, e.dtstart.value.minute) == (9, 0)
    starts = sorted(e["DTSTART"].dt for e in events_icalendar(files.sections["10001"]).values())
    assert starts == [x.start for x in m]


# -- end to end: the CLI against the emulator --------------------------------------------------

def _uids(folder: Path) -> dict[str, set[str]]:
    return {p.name: set(events_icalendar(p)) for p in sorted((folder / "organizers").glob("*.ics"))}


def test_uids_are_stable_across_runs_and_csv_vs_xlsx_input(tmp_path, tenant, emulator, secret_env,
                                                          run_cli) -> None:
    from tests import helpers

    rows = helpers.schedule_rows(tenant, 12)
    config = helpers.write_config(tmp_path / "bulkmeet.toml", tenant, emulator.base_url,
                                  emulator.ca_path)
    (tmp_path / "x").mkdir()
    csv_in = helpers.write_csv(tmp_path / "term.csv", rows)
    xlsx_in = helpers.write_xlsx(tmp_path / "x" / "term.xlsx", rows)
    first = run_cli("run", csv_in, "--config", config)
    assert first.code == 0, first.err
    assert f"Calendars: {tmp_path / 'term.calendars'}" in first.out
    cal = tmp_path / "term.calendars"
    before = {p: p.read_bytes() for p in cal.rglob("*.ics")}
    assert run_cli("run", csv_in, "--config", config).code == 0  # rerun: nothing changed
    assert {p: p.read_bytes() for p in cal.rglob("*.ics")} == before  # byte for byte
    assert run_cli("run", xlsx_in, "--config", config, "--calendar", tmp_path / "xcal").code == 0
    assert _uids(cal) == _uids(tmp_path / "xcal")
    assert sum(len(u) for u in _uids(cal).values()) == 12
    # every meeting in the tenant is an event, at its own time
    meetings = {m["externalId"]: m for m in emulator.meetings()}
    assert len(meetings) == 12
    seen = {}
    for path in (cal / "organizers").glob("*.ics"):
        for e in icalendar.Calendar.from_ical(path.read_bytes()).walk("VEVENT"):
            seen[str(e["URL"])] = e["DTSTART"].dt.astimezone(UTC)
    for m in meetings.values():
        assert seen[m["joinWebUrl"]] == datetime.fromisoformat(m["startDateTime"])
    # sections: keys = ["CRN", "Date"], so each CRN is a section; students' files parse in vobject
    sections = sorted((cal / "sections").glob("*.ics"))
    assert [p.stem for p in sections] == sorted(r[0] for r in rows)
    for p in sections:
        assert len(events_vobject(p)) == 1


def test_a_run_across_the_dst_change_keeps_local_times(tmp_path, tenant, emulator, secret_env,
                                                        run_cli) -> None:
    from tests import helpers

    rows = [["20001", "CS1", "Week 1", tenant.teachers[0][0], "2027-03-08", "09:00", "09:50", ""],
            ["20001", "CS1", "Week 2", tenant.teachers[0][0], "2027-03-15", "09:00", "09:50", ""]]
    schedule = helpers.write_csv(tmp_path / "dst.csv", rows)
    config = helpers.write_config(tmp_path / "bulkmeet.toml", tenant, emulator.base_url,
                                  emulator.ca_path)
    assert run_cli("run", schedule, "--config", config).code == 0
    path = tmp_path / "dst.calendars" / "sections" / "20001.ics"
    for events in (events_icalendar(path), events_vobject(path)):
        starts = sorted(e["DTSTART"].dt if isinstance(e, icalendar.Event) else e.dtstart.value
                        for e in events.values())
        assert [(s.hour, s.minute) for s in starts] == [(9, 0), (9, 0)]
        assert [s.astimezone(UTC).hour for s in starts] == [15, 14]


def test_a_cancelled_meeting_is_written_cancelled_for_organizer_and_students(
        tmp_path, tenant, emulator, secret_env, run_cli) -> None:
    from tests import helpers

    rows = helpers.schedule_rows(tenant, 12)
    config = helpers.write_config(tmp_path / "bulkmeet.toml", tenant, emulator.base_url,
                                  emulator.ca_path)
    schedule = helpers.write_csv(tmp_path / "term.csv", rows)
    assert run_cli("run", schedule, "--config", config).code == 0
    gone = rows[3]
    helpers.write_csv(schedule, rows[:3] + rows[4:])
    result = run_cli("run", schedule, "--config", config, "--cancel-removed")
    assert result.code == 0, result.err + result.out
    cal = tmp_path / "term.calendars"
    organizer = cal / "organizers" / f"{gone[3]}.ics"
    section = cal / "sections" / f"{gone[0]}.ics"
    for path in (organizer, section):
        statuses = {str(e["SUMMARY"]): (str(e["STATUS"]), int(e["SEQUENCE"]))
                    for e in icalendar.Calendar.from_ical(path.read_bytes()).walk("VEVENT")}
        assert statuses[f"{gone[1]}: {gone[2]}"] == ("CANCELLED", 1)
        v = [e for e in events_vobject(path).values() if e.summary.value == f"{gone[1]}: {gone[2]}"]
        assert v[0].status.value == "CANCELLED"
    report = (tmp_path / "term.results.html").read_text(encoding="utf-8")
    assert '<b data-count="cancelled">1</b>' in report


def test_a_moved_meeting_bumps_sequence_and_keeps_its_uid(tmp_path, tenant, emulator, secret_env,
                                                         run_cli) -> None:
    from tests import helpers

    rows = helpers.schedule_rows(tenant, 4)
    config = helpers.write_config(tmp_path / "bulkmeet.toml", tenant, emulator.base_url,
                                  emulator.ca_path)
    schedule = helpers.write_csv(tmp_path / "term.csv", rows)
    assert run_cli("run", schedule, "--config", config).code == 0
    path = tmp_path / "term.calendars" / "sections" / f"{rows[0][0]}.ics"
    (uid, before), = events_icalendar(path).items()
    assert int(before["SEQUENCE"]) == 0
    files = sorted((tmp_path / "term.calendars").rglob("*.ics"))
    inodes = {p: p.stat().st_ino for p in files}
    rows[0][5], rows[0][6] = "14:00", "14:50"
    helpers.write_csv(schedule, rows)
    assert run_cli("run", schedule, "--config", config).code == 0
    (uid_after, after), = events_icalendar(path).items()
    assert uid_after == uid and int(after["SEQUENCE"]) == 1
    assert (after["DTSTART"].dt.hour, after["DTSTART"].dt.minute) == (14, 0)
    # only the moved meeting's two files were written again (atomic writes make new inodes)
    rewritten = sorted(p.name for p in files if p.stat().st_ino != inodes[p])
    assert rewritten == sorted([path.name, f"{rows[0][3]}.ics"])
