"""Date/time parsing and the local -> UTC conversion, daylight saving time included."""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from bulkmeet import times
from bulkmeet.times import (
    NonexistentTimeError,
    TimeValueError,
    parse_date,
    parse_datetime,
    parse_time,
    parse_time_or_datetime,
    to_utc,
)

CHICAGO = ZoneInfo("America/Chicago")
BERLIN = ZoneInfo("Europe/Berlin")
UTC = UTC


@pytest.mark.parametrize("text, expected", [
    ("2027-02-01", date(2027, 2, 1)),
    ("2027/2/1", date(2027, 2, 1)),
    ("2/1/2027", date(2027, 2, 1)),
    ("02/01/2027", date(2027, 2, 1)),
    ("2-1-2027", date(2027, 2, 1)),
    ("2/1/27", date(2027, 2, 1)),
    ("1-Feb-2027", date(2027, 2, 1)),
    ("01 feb 2027", date(2027, 2, 1)),
    ("Feb 1, 2027", date(2027, 2, 1)),
    ("February 1st 2027", date(2027, 2, 1)),
    ("Mon, Feb 1, 2027", date(2027, 2, 1)),
    ("Monday 1 February 2027", date(2027, 2, 1)),
    ("  12/31/2027 ", date(2027, 12, 31)),
])
def test_dates_month_first(text, expected):
    assert parse_date(text, "MDY") == expected


def test_day_first_order_reads_numeric_dates_the_other_way_but_not_iso():
    assert parse_date("2/1/2027", "DMY") == date(2027, 1, 2)
    assert parse_date("31.12.2027", "DMY") == date(2027, 12, 31)
    assert parse_date("2027-02-01", "DMY") == date(2027, 2, 1)


def test_a_date_impossible_in_the_configured_order_names_the_setting():
    with pytest.raises(TimeValueError) as err:
        parse_date("13/1/2027", "MDY")
    assert "month/day/year" in str(err.value) and 'date_order = "DMY"' in str(err.value)
    with pytest.raises(TimeValueError) as err:
        parse_date("1/13/2027", "DMY")
    assert 'date_order = "MDY"' in str(err.value)


@pytest.mark.parametrize("bad", ["2027-02-30", "someday", "2/30/2027", "Febtember 1, 2027", "45334"])
def test_not_dates(bad):
    with pytest.raises(TimeValueError) as err:
        parse_date(bad)
    assert str(err.value).startswith(f'"{bad}"')


def test_excel_date_values():
    assert parse_date(datetime(2027, 2, 1)) == date(2027, 2, 1)
    assert parse_date(datetime(2027, 2, 1, 9, 30)) == date(2027, 2, 1)
    assert parse_date(date(2027, 2, 1)) == date(2027, 2, 1)
    with pytest.raises(TimeValueError, match="is a time, not a date"):
        parse_date(time(9, 0))


@pytest.mark.parametrize("text, expected", [
    ("09:00", time(9, 0)),
    ("9:00", time(9, 0)),
    ("21:30:15", time(21, 30, 15)),
    ("9:00 AM", time(9, 0)),
    ("9:00am", time(9, 0)),
    ("9am", time(9, 0)),
    ("9 PM", time(21, 0)),
    ("12:30 PM", time(12, 30)),
    ("12:30 p.m.", time(12, 30)),
    ("12 AM", time(0, 0)),
    ("12:15 am", time(0, 15)),
    ("00:00", time(0, 0)),
    ("23:59", time(23, 59)),
])
def test_times(text, expected):
    assert parse_time(text) == expected


@pytest.mark.parametrize("bad", ["25:00", "9", "9:60", "13:00 PM", "0:30 AM", "noonish", "24:00", "9.30"])
def test_not_times_say_what_to_type(bad):
    with pytest.raises(TimeValueError) as err:
        parse_time(bad)
    assert str(err.value) == f'"{bad}" is not a time (use 09:00 or 9:00 AM)'


def test_excel_time_values():
    assert parse_time(time(9, 5)) == time(9, 5)
    # Excel stores times as fractions of a day; float noise must not make 9:05 into 9:04:59.
    assert parse_time(time(9, 4, 59, 999_600)) == time(9, 5)
    assert parse_time(datetime(1899, 12, 30, 13, 30)) == time(13, 30)
    assert parse_time(timedelta(hours=15, minutes=45)) == time(15, 45)
    with pytest.raises(TimeValueError, match="more than a day"):
        parse_time(timedelta(hours=26))
    with pytest.raises(TimeValueError, match="is a date, not a time"):
        parse_time(date(2027, 2, 1))


@pytest.mark.parametrize("text, expected", [
    ("2027-02-01T09:00", datetime(2027, 2, 1, 9, 0)),
    ("2027-02-01 09:00:00", datetime(2027, 2, 1, 9, 0)),
    ("2027-02-01 9:00", datetime(2027, 2, 1, 9, 0)),
    ("2/1/2027 9:00 AM", datetime(2027, 2, 1, 9, 0)),
    ("2/1/2027, 1:30 PM", datetime(2027, 2, 1, 13, 30)),
    ("Feb 1, 2027 9:00 AM", datetime(2027, 2, 1, 9, 0)),
    ("1-Feb-2027 14:15", datetime(2027, 2, 1, 14, 15)),
    ("2027-02-01T09:00:00.4", datetime(2027, 2, 1, 9, 0)),
])
def test_naive_datetimes(text, expected):
    assert parse_datetime(text, "MDY") == expected


def test_offsets_in_text_are_honoured():
    assert parse_datetime("2027-02-01T09:00Z") == datetime(2027, 2, 1, 9, tzinfo=UTC)
    plus_one = parse_datetime("2027-02-01T09:00:00+01:00")
    assert to_utc(plus_one, CHICAGO) == datetime(2027, 2, 1, 8, tzinfo=UTC)
    assert to_utc(parse_datetime("2/1/2027 9:00 AM -0600"), BERLIN) == datetime(2027, 2, 1, 15, tzinfo=UTC)
    assert to_utc(parse_datetime("2027-02-01 09:00 UTC"), CHICAGO) == datetime(2027, 2, 1, 9, tzinfo=UTC)


def test_datetime_errors_explain():
    with pytest.raises(TimeValueError, match="has a date but no time of day"):
        parse_datetime("2027-02-01")
    with pytest.raises(TimeValueError, match="is a time without a date"):
        parse_datetime(time(9, 0))
    with pytest.raises(TimeValueError, match="is not a date and time"):
        parse_datetime("tomorrow morning")
    # a date cell from Excel is a datetime at midnight, accepted as it is
    assert parse_datetime(date(2027, 2, 1)) == datetime(2027, 2, 1)


def test_end_column_may_hold_only_a_time():
    assert parse_time_or_datetime("10:15 AM") == time(10, 15)
    assert parse_time_or_datetime("2/1/2027 10:15") == datetime(2027, 2, 1, 10, 15)
    assert parse_time_or_datetime(time(10, 15)) == time(10, 15)
    with pytest.raises(TimeValueError):
        parse_time_or_datetime("later")


# --- time zones ----------------------------------------------------------------------------------

def test_same_wall_time_moves_in_utc_across_the_spring_change():
    before = to_utc(datetime(2027, 3, 12, 9, 0), CHICAGO)  # Friday, CST (UTC-6)
    day_of = to_utc(datetime(2027, 3, 14, 9, 0), CHICAGO)  # Sunday of the change, CDT already
    after = to_utc(datetime(2027, 3, 15, 9, 0), CHICAGO)
    assert before == datetime(2027, 3, 12, 15, 0, tzinfo=UTC)
    assert day_of == datetime(2027, 3, 14, 14, 0, tzinfo=UTC)
    assert after == datetime(2027, 3, 15, 14, 0, tzinfo=UTC)
    assert to_utc(datetime(2027, 11, 8, 9, 0), CHICAGO) == datetime(2027, 11, 8, 15, 0, tzinfo=UTC)


def test_ambiguous_fall_back_time_is_the_first_occurrence():
    # 2027-11-07 01:30 happens at 06:30 UTC (CDT) and again at 07:30 UTC (CST).
    assert to_utc(datetime(2027, 11, 7, 1, 30), CHICAGO) == datetime(2027, 11, 7, 6, 30, tzinfo=UTC)
    assert to_utc(datetime(2027, 10, 31, 2, 30), BERLIN) == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)


def test_nonexistent_spring_forward_time_is_an_error_naming_the_gap():
    with pytest.raises(NonexistentTimeError) as err:
        to_utc(datetime(2027, 3, 14, 2, 30), CHICAGO)
    message = str(err.value)
    assert message.startswith("2027-03-14 02:30 does not exist in America/Chicago")
    assert "from 02:00 to 03:00" in message
    with pytest.raises(NonexistentTimeError, match="from 02:00 to 03:00"):
        to_utc(datetime(2027, 3, 28, 2, 0), BERLIN)
    # the minutes on either side of the gap exist
    assert to_utc(datetime(2027, 3, 14, 1, 59), CHICAGO) == datetime(2027, 3, 14, 7, 59, tzinfo=UTC)
    assert to_utc(datetime(2027, 3, 14, 3, 0), CHICAGO) == datetime(2027, 3, 14, 8, 0, tzinfo=UTC)


def test_aware_values_keep_their_own_offset():
    aware = datetime(2027, 7, 1, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert to_utc(aware, CHICAGO) == datetime(2027, 7, 1, 0, 0, tzinfo=UTC)


def test_format_local_is_canonical():
    assert times.format_local(datetime(2027, 2, 1)) == "2027-02-01"
    assert times.format_local(date(2027, 2, 1)) == "2027-02-01"
    assert times.format_local(time(9, 0)) == "09:00"
    assert times.format_local(datetime(2027, 2, 1, 9, 0)) == "2027-02-01T09:00"
    assert times.format_local(datetime(2027, 2, 1, 9, 0, tzinfo=timezone(timedelta(hours=1)))) \
        == "2027-02-01T08:00:00Z"


# --- the ends of the calendar (issue 12, item 1) ------------------------------------------------

@pytest.mark.parametrize("value, tz", [
    (datetime(9999, 12, 31, 23, 0), CHICAGO),  # year 10000 in UTC
    (datetime(1, 1, 1, 0, 30), BERLIN),  # before year 1 in UTC
    (datetime(9999, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-1))), BERLIN),
])
def test_a_value_beyond_the_calendar_is_a_row_error_not_a_crash(value, tz):
    with pytest.raises(times.OutOfRangeError, match="outside the dates bulkmeet can convert"):
        to_utc(value, tz)


def test_out_of_range_values_still_format_and_round():
    aware = datetime(9999, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-1)))
    assert times.format_local(aware) == "9999-12-31T23:30:00-01:00"
    assert times.parse_datetime(datetime(9999, 12, 31, 23, 59, 59, 900_000)) \
        == datetime(9999, 12, 31, 23, 59, 59)


def test_one_out_of_range_row_leaves_the_others_planned(tmp_path):
    from bulkmeet.config import parse_config
    from bulkmeet.models import Sheet, SheetRow
    from bulkmeet.plan import plan_rows

    cfg = parse_config({"mapping": {
        "organizer": "T", "subject": "{C}", "start": "S", "time_zone": "Europe/Berlin",
        "keys": ["C", "S"]}})
    rows = (SheetRow(2, {"T": "t@x.example", "C": "a", "S": "0001-01-01 00:30"}),
            SheetRow(3, {"T": "t@x.example", "C": "b", "S": "9999-12-31T23:30-01:00"}),
            SheetRow(4, {"T": "t@x.example", "C": "c", "S": "2027-03-01 09:00"}))
    plan = plan_rows(Sheet(tmp_path / "s.csv", None, ("T", "C", "S"), rows), cfg,
                     now=datetime(2027, 1, 1, tzinfo=UTC))
    assert [r.row for r in plan.requests] == [4]
    assert [(i.row, i.column) for i in plan.invalid] == [(2, "S"), (3, "S")]
    assert "0001-01-01 00:30 is outside the dates" in plan.invalid[0].message
