"""Weekly patterns planned into meetings (bulkmeet.expand): ids that survive reruns, blocks of a
day, one meeting per section, and the row errors, each naming its column and the value as typed."""
from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bulkmeet.config import parse_config
from bulkmeet.models import InvalidRow, Sheet, SheetRow
from bulkmeet.plan import plan_rows

NOW = datetime(2027, 1, 15, tzinfo=UTC)
ADA = "ada.lovelace@school.example"
COLUMNS = ("CRN", "Course", "Days", "Begin", "End", "Teacher", "Start", "Finish")


def sheet(*rows: dict[str, Any]) -> Sheet:
    out = []
    for i, r in enumerate(rows, start=2):
        full: dict[str, Any] = {c: None for c in COLUMNS}
        full.update({"Course": "CS 101", "Teacher": ADA, **r})
        out.append(SheetRow(i, full))
    return Sheet(Path("export.csv"), None, COLUMNS, tuple(out))


def config(meetings: str = "session", term: dict[str, Any] | None = None):
    return parse_config({
        "time_zone": "America/Chicago",
        "mapping": {"organizer": "Teacher", "subject": "{Course}", "keys": ["CRN"]},
        "pattern": {"days": "Days", "start_time": "Begin", "end_time": "End", "meetings": meetings},
        "term": term or {"first_day": date(2027, 3, 1), "last_day": date(2027, 3, 14)},
    })


def ids(plan, row: int = 2) -> dict[date, str]:
    return {r.start.date(): r.external_id for r in plan.requests if r.row == row and r.start}


def test_session_ids_depend_on_keys_and_day_not_on_the_time_or_the_term_length():
    base = plan_rows(sheet({"CRN": "1", "Days": "MW", "Begin": "09:00 AM", "End": "09:50 AM"}), config(), now=NOW)
    moved = plan_rows(sheet({"CRN": "1", "Days": "MW", "Begin": "10:00 AM", "End": "10:50 AM"}), config(), now=NOW)
    longer = plan_rows(sheet({"CRN": "1", "Days": "MW", "Begin": "09:00 AM", "End": "09:50 AM"}),
                       config(term={"first_day": date(2027, 3, 1), "last_day": date(2027, 3, 21)}), now=NOW)
    assert len(base.requests) == 4 and [r.session for r in base.requests] == [1, 2, 3, 4]
    assert ids(moved) == ids(base)  # a new time is a change of the same meeting
    assert {d: i for d, i in ids(longer).items() if d in ids(base)} == ids(base)
    assert len(ids(longer)) == 6
    other = plan_rows(sheet({"CRN": "2", "Days": "MW", "Begin": "09:00 AM", "End": "09:50 AM"}), config(), now=NOW)
    assert not set(ids(other).values()) & set(ids(base).values())


def test_adding_an_afternoon_block_keeps_the_morning_ids():
    morning = {"CRN": "1", "Days": "T", "Begin": "08:00", "End": "08:50"}
    one = plan_rows(sheet(morning), config(), now=NOW)
    two = plan_rows(sheet(morning, {"CRN": "1", "Days": "T", "Begin": "13:00", "End": "13:50"}), config(), now=NOW)
    assert ids(two, 2) == ids(one, 2)
    assert len(ids(two, 3)) == 2 and not set(ids(two, 3).values()) & set(ids(one, 2).values())


def test_per_section_one_meeting_starting_at_the_first_session():
    plan = plan_rows(sheet({"CRN": "1", "Days": "R", "Begin": "14:00", "End": "16:50", "Teacher": "grace@school.example"},
                           {"CRN": "1", "Days": "MWF", "Begin": "10:00", "End": "10:50"}),
                     config("section"), now=NOW)
    (req,) = plan.requests
    assert (req.row, req.session, req.organizer) == (2, 0, "grace@school.example")
    assert req.start == datetime(2027, 3, 1, 16, 0, tzinfo=UTC)  # Monday 10:00 CST
    assert [(s.row, s.primary_row, s.external_id) for s in plan.shared] == [(3, 2, req.external_id)]
    assert [(a.upn, a.role) for a in req.attendees] == [(ADA, "coorganizer")]
    assert not plan.duplicates


def test_row_errors_name_the_column_and_the_value():
    plan = plan_rows(sheet(
        {"CRN": "1", "Days": "MXF", "Begin": "09:00", "End": "10:00"},
        {"CRN": "2", "Days": "MW", "Begin": "9", "End": "10:00"},
        {"CRN": "3", "Days": "MW", "Begin": "10:00", "End": "09:00 AM"},
        {"CRN": "4", "Days": "U", "Begin": "02:30 AM", "End": "03:30 AM"},
        {"CRN": "5", "Days": None, "Begin": "10:00", "End": "11:00"},
        {"CRN": None, "Days": "M", "Begin": "10:00", "End": "11:00"},
    ), config(term={"first_day": date(2027, 3, 8), "last_day": date(2027, 3, 14)}), now=NOW)
    got = [(i.row, i.column, i.message) for i in plan.invalid]
    assert got[0] == (2, "Days", '"MXF" is not a days code: "MXF" is not a weekday (use letters like MWF, '
                                 "TR (R = Thursday), or names like Mon/Wed)")
    assert got[1] == (3, "Begin", '"9" is not a time (use 09:00 or 9:00 AM)')
    assert got[2] == (4, "End", '"09:00 AM" is before Begin "10:00"; a class must end after it starts, on the same day')
    assert got[3] == (5, "Begin", "2027-03-14 02:30 does not exist in America/Chicago: that night the "
                                  "clocks jump from 02:00 to 03:00 (daylight saving time); use a time "
                                  "outside that gap (the pattern Sun 02:30-03:30 meets on that day)")
    assert got[4] == (6, "Days", "missing; the days the class meets is needed (add a [[skip]] rule for "
                                 "rows that are not scheduled classes)")
    assert got[5] == (7, "CRN", "missing; it is one of the keys (CRN) that identify the section")
    assert all(isinstance(i, InvalidRow) for i in plan.invalid) and not plan.requests


def test_a_pattern_with_no_open_day_is_invalid():
    plan = plan_rows(sheet({"CRN": "1", "Days": "U", "Begin": "10:00", "End": "11:00"}),
                     config(term={"first_day": date(2027, 3, 1), "last_day": date(2027, 3, 6),
                                  "closures": []}), now=NOW)
    assert [(i.column, i.message) for i in plan.invalid] == [
        ("Days", '"U" meets on no open day from 2027-03-01 to 2027-03-06; check the days code and '
                 "the term's dates and closures")]


def test_a_repeated_block_is_a_duplicate_of_the_session_it_repeats():
    plan = plan_rows(sheet({"CRN": "1", "Days": "T", "Begin": "08:00", "End": "08:50"},
                           {"CRN": "1", "Days": "T", "Begin": "13:00", "End": "13:50"},
                           {"CRN": "1", "Days": "T", "Begin": "13:00", "End": "13:50"}), config(), now=NOW)
    afternoon = {r.session: r.external_id for r in plan.requests if r.row == 3}
    assert [(d.row, d.session, d.first_row) for d in plan.duplicates] == [(4, 1, 3), (4, 2, 3)]
    assert [d.external_id for d in plan.duplicates] == [afternoon[1], afternoon[2]]


def test_term_dates_from_columns_of_the_row():
    cfg = config(term={"first_day_column": "Start", "last_day_column": "Finish"})
    plan = plan_rows(sheet({"CRN": "1", "Days": "F", "Begin": "09:00", "End": "10:00",
                            "Start": "3/1/2027", "Finish": datetime(2027, 3, 19)},
                           {"CRN": "2", "Days": "F", "Begin": "09:00", "End": "10:00",
                            "Start": "3/19/2027", "Finish": "3/1/2027"},
                           {"CRN": "3", "Days": "F", "Begin": "09:00", "End": "10:00",
                            "Start": "soon", "Finish": "3/1/2027"}), cfg, now=NOW)
    assert [r.start.date() for r in plan.requests if r.start] == [date(2027, 3, 5), date(2027, 3, 12),
                                                                 date(2027, 3, 19)]
    assert [(i.row, i.column, i.message) for i in plan.invalid] == [
        (3, "Finish", "2027-03-01 is before the first day 2027-03-19"),
        (4, "Start", '"soon" is not a date (use 2027-02-01 or 2/1/2027)')]


def test_times_in_one_range_column():
    cfg = parse_config({
        "time_zone": "America/Chicago",
        "mapping": {"organizer": "Teacher", "subject": "{Course}", "keys": ["CRN"]},
        "pattern": {"days": "Days", "times": "Begin"},
        "term": {"first_day": date(2027, 3, 1), "last_day": date(2027, 3, 7)},
    })
    plan = plan_rows(sheet({"CRN": "1", "Days": "M", "Begin": "11:00-12:15 PM"},
                           {"CRN": "2", "Days": "M", "Begin": "0930-1045"},
                           {"CRN": "3", "Days": "M", "Begin": "10:45 AM-09:30 AM"},
                           {"CRN": "4", "Days": "M", "Begin": "morning"}), cfg, now=NOW)
    assert [(r.start, r.end) for r in plan.requests] == [
        (datetime(2027, 3, 1, 17, 0, tzinfo=UTC), datetime(2027, 3, 1, 18, 15, tzinfo=UTC)),
        (datetime(2027, 3, 1, 15, 30, tzinfo=UTC), datetime(2027, 3, 1, 16, 45, tzinfo=UTC))]
    assert [(i.row, i.column, i.message) for i in plan.invalid] == [
        (4, "Begin", "09:30 is before the start 10:45; a class must end after it starts, on the same day"),
        (5, "Begin", '"morning" is not a time range (use 09:30 AM-10:45 AM)')]


def test_skip_rules_apply_to_dated_sheets_too():
    cfg = parse_config({
        "time_zone": "America/Chicago",
        "mapping": {"organizer": "Teacher", "subject": "{Course}", "keys": ["CRN", "Start"],
                    "start": "Start", "end": "Finish"},
        "skip": [{"column": "Days", "equals": "X", "reason": "cancelled"}],
    })
    plan = plan_rows(sheet({"CRN": "1", "Start": "2027-03-01 09:00", "Finish": "10:00"},
                           {"CRN": "2", "Start": "2027-03-01 09:00", "Days": "x"}), cfg, now=NOW)
    assert [r.row for r in plan.requests] == [2]
    assert [(s.row, s.rule) for s in plan.skipped] == [(3, 'skip rule 1 (Days is "X"): cancelled')]


def test_a_term_years_away_is_a_typo():
    plan = plan_rows(sheet({"CRN": "1", "Days": "M", "Begin": "10:00", "End": "11:00"}),
                     config(term={"first_day": date(2207, 3, 1), "last_day": date(2207, 3, 6)}), now=NOW)
    assert [(i.column, i.message) for i in plan.invalid] == [
        (None, "the term starts on 2207-03-01, more than 10 years from today; check the year")]
