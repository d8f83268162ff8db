"""Planning rows into createOrGet requests: validation messages, externalIds, times, attendees."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import pytest

from bulkmeet.config import parse_config
from bulkmeet.errors import ExitStatus, InputError
from bulkmeet.models import ME, Attendee, DuplicateRow, InvalidRow, MeetingRequest, Sheet, SheetRow
from bulkmeet.plan import EXTERNAL_ID_NAMESPACE, check_columns, derive_external_id, parse_attendees, plan_rows
from bulkmeet.sheets import read_sheet

UTC = UTC
NOW = datetime(2027, 1, 15, tzinfo=UTC)
ADA = "ada.lovelace@school.example"
ADA_ID = "f199edb8-f58c-5e6b-9f48-a3723d49780c"
COLUMNS = ("CRN", "Course", "Title", "Teacher", "Date", "Start Time", "End Time", "Students", "TA")


def sheet(*rows: dict[str, Any], columns: tuple[str, ...] = COLUMNS) -> Sheet:
    out = []
    for i, r in enumerate(rows, start=2):
        full = {c: None for c in columns}
        full.update(r)
        out.append(SheetRow(i, full))
    return Sheet(Path("schedule.xlsx"), "Spring", columns, tuple(out))


def config(**mapping: Any):
    base = {"organizer": "Teacher", "subject": "{Course}: {Title}", "date": "Date",
            "start_time": "Start Time", "end_time": "End Time",
            "attendees": ["Students", {"column": "TA", "role": "presenter"}], "keys": ["CRN", "Date"]}
    base.update(mapping)
    data: dict[str, Any] = {"time_zone": "America/Chicago",
                            "mapping": {k: v for k, v in base.items() if v is not None}}
    return parse_config(data)


def row(**values: Any) -> dict[str, Any]:
    base = {"CRN": "00417", "Course": "CS 101", "Title": "Intro", "Teacher": ADA,
            "Date": datetime(2027, 3, 1), "Start Time": time(9, 0), "End Time": time(10, 15)}
    base.update({k.replace("_", " "): v for k, v in values.items()})
    return base


def plan_one(r: dict[str, Any], cfg=None) -> MeetingRequest | InvalidRow:
    p = plan_rows(sheet(r), cfg or config(), now=NOW)
    return (p.requests + p.invalid)[0]  # type: ignore[operator]


def invalid(r: dict[str, Any], cfg=None) -> InvalidRow:
    result = plan_one(r, cfg)
    assert isinstance(result, InvalidRow), result
    return result


def test_a_valid_row_becomes_a_request():
    req = plan_one(row(Students="Noor.Haddad@students.school.example; li.wei@students.school.example",
                       TA="priya.nair@students.school.example"))
    assert isinstance(req, MeetingRequest)
    assert req.row == 2
    assert req.organizer == ADA
    assert req.subject == "CS 101: Intro"
    assert req.start == datetime(2027, 3, 1, 15, 0, tzinfo=UTC)  # 9:00 CST
    assert req.end == datetime(2027, 3, 1, 16, 15, tzinfo=UTC)
    assert req.attendees == (Attendee("noor.haddad@students.school.example"),
                             Attendee("li.wei@students.school.example"),
                             Attendee("priya.nair@students.school.example", "presenter"))
    assert req.body()["startDateTime"] == "2027-03-01T15:00:00Z"
    assert uuid.UUID(req.external_id).version == 5


def test_the_same_wall_clock_class_moves_in_utc_across_dst():
    p = plan_rows(sheet(row(Date=datetime(2027, 3, 8)), row(Date="3/15/2027")), config(), now=NOW)
    assert [r.start for r in p.requests] == [datetime(2027, 3, 8, 15, tzinfo=UTC),
                                            datetime(2027, 3, 15, 14, tzinfo=UTC)]


def test_bad_time_message_names_column_and_value():
    bad = invalid(row(Start_Time="25:00"))
    assert (bad.row, bad.column, bad.message) == (2, "Start Time", '"25:00" is not a time (use 09:00 or 9:00 AM)')


@pytest.mark.parametrize("values, column, message", [
    ({"End Time": time(8, 0)}, "End Time",
     "08:00 is before Start Time 09:00; the end must be after the start (a class cannot run past "
     "midnight here; map full date-time 'start' and 'end' columns for that)"),
    ({"End Time": "9:00 AM"}, "End Time", "09:00 is the same as Start Time 09:00; the end must be after the start"),
    ({"Teacher": None}, "Teacher",
     "missing; every row needs the organizer's e-mail address (UPN) or Entra object ID"),
    ({"Teacher": "ada.lovelace.school.example"}, "Teacher",
     '"ada.lovelace.school.example" is neither an e-mail address (UPN) nor an Entra object ID'),
    ({"Teacher": "ada@school"}, "Teacher", '"ada@school" is neither an e-mail address (UPN) nor an Entra object ID'),
    ({"Date": None}, "Date", "missing; the day of the class is needed"),
    ({"Date": "13/1/2027"}, "Date", '"13/1/2027" is not a date in month/day/year order (the config\'s '
     'date_order is "MDY"; if the sheet writes dates the other way round, set date_order = "DMY")'),
    ({"Start Time": None}, "Start Time", "missing; the time the class starts is needed"),
    ({"Students": "noor@students.school.example; bob@"}, "Students",
     '"bob@" is not an e-mail address (separate addresses with ; or ,)'),
    ({"TA": "jo@school.example (teacher)"}, "TA",
     '"jo@school.example (teacher)": the role in brackets must be one of attendee, presenter, producer, coorganizer'),
    ({"CRN": None}, "CRN", "missing; it is one of the keys (CRN, Date) that tell the meetings apart"),
    ({"Date": "2/1/2207"}, "Date",
     "2207-02-01 09:00 is more than 10 years from today; check the year (or whether a time cell is "
     "mapped as a date)"),
    ({"Date": "3/14/2027", "Start Time": "2:30 AM"}, "Start Time",
     "2027-03-14 02:30 does not exist in America/Chicago: that night the clocks jump from 02:00 to "
     "03:00 (daylight saving time); use a time outside that gap"),
])
def test_invalid_rows_say_which_column_and_value(values, column, message):
    bad = invalid(row(**{k.replace(" ", "_"): v for k, v in values.items()}))
    assert (bad.column, bad.message) == (column, message)


def test_all_problems_of_a_row_are_listed_the_first_column_leads():
    bad = invalid(row(Teacher="nobody", Start_Time="25:00", Students="x"))
    assert bad.column == "Teacher"
    assert bad.message == ('"nobody" is neither an e-mail address (UPN) nor an Entra object ID; '
                           'Start Time: "25:00" is not a time (use 09:00 or 9:00 AM); '
                           'Students: "x" is not an e-mail address (separate addresses with ; or ,)')
    assert bad.external_id is None  # no organizer, no id


def test_invalid_rows_keep_their_external_id_when_it_can_be_computed():
    bad = invalid(row(Start_Time="25:00"))
    good = plan_one(row())
    assert bad.external_id == good.external_id


def test_subject_empty_after_templating_or_too_long():
    bad = invalid(row(Course=None, Title="  "))
    assert bad.column is None
    assert bad.message == ('the subject "{Course}: {Title}" is empty for this row (Course and Title '
                           'empty); fill in the cells, or change subject in the config')
    long = invalid(row(Title="x" * 300))
    assert "is 308 characters long, more than the 255" in long.message


def test_subject_template_with_spaces_braces_and_date_format():
    cols = COLUMNS + ("Course Code",)
    cfg = config(subject="{{Live}} {Course Code} -  {Title} ({Date:%a %b %d}, {Start Time})")
    p = plan_rows(sheet(row(**{"Course_Code": "CS-101"}), row(Date="3/2/2027", Start_Time="9:00 AM"),
                        columns=cols), cfg, now=NOW)
    assert [r.subject for r in p.requests] == ["{Live} CS-101 - Intro (Mon Mar 01, 09:00)",
                                              "{Live} - Intro (Tue Mar 02, 9:00 AM)"]
    bad = invalid(row(Date="whenever"), config(subject="{Title} {Date:%b %d}"))
    assert bad.column == "Date"


# --- externalId ----------------------------------------------------------------------------------

def test_external_id_is_pinned_forever():
    # If this changes, every existing meeting gets a new externalId and is created again.
    assert EXTERNAL_ID_NAMESPACE == uuid.uuid5(uuid.NAMESPACE_URL, "https://bulkmeet.invalid/externalId")
    assert derive_external_id(["00417", datetime(2027, 3, 1)], ADA) == "2d97d303-5a34-5c4a-9483-0ee8b2868aa5"


def test_external_id_ignores_whitespace_and_case_noise_but_not_leading_zeros():
    base = derive_external_id(["00417", "CS 101"], ADA)
    assert derive_external_id([" 00417 ", "cs   101"], "  ADA.Lovelace@School.example ") == base
    assert derive_external_id(["417", "CS 101"], ADA) != base
    assert derive_external_id(["00417", "CS 101"], "alan.turing@school.example") != base
    assert derive_external_id(["00417", "CS101"], ADA) != base
    # the key boundary matters: ("a b", "c") is not ("a", "b c")
    assert derive_external_id(["a b", "c"], ADA) != derive_external_id(["a", "b c"], ADA)


def test_date_keys_compare_as_dates_whatever_the_cell_type():
    ids = {plan_one(row(Date=d, Start_Time=t, End_Time=None)).external_id
           for d, t in [(datetime(2027, 3, 1), time(9, 0)), ("3/1/2027", "9:00 AM"),
                        ("2027-03-01", "09:00"), ("Mar 1, 2027", "9am")]}
    assert len(ids) == 1
    assert ids == {derive_external_id(["00417", datetime(2027, 3, 1)], ADA)}


def test_time_is_not_part_of_the_key_so_moving_a_class_keeps_its_meeting():
    assert plan_one(row()).external_id == plan_one(row(Start_Time=time(11, 0), End_Time=time(12, 0))).external_id


def test_external_id_from_a_column():
    cols = COLUMNS + ("Meeting ID",)
    cfg = config(keys=None, external_id="Meeting ID")
    p = plan_rows(sheet(row(**{"Meeting_ID": "  term-1/cs101/0301 "}), row(**{"Meeting_ID": None}),
                        row(**{"Meeting_ID": "x" * 256}), row(**{"Meeting_ID": "a\tb"}), columns=cols),
                  cfg, now=NOW)
    assert [r.external_id for r in p.requests] == ["term-1/cs101/0301"]
    assert [(i.row, i.column, i.message) for i in p.invalid] == [
        (3, "Meeting ID", "missing; every row needs its externalId"),
        (4, "Meeting ID", "256 characters long; an externalId may have at most 255"),
        (5, "Meeting ID", '"a\tb" contains a control character (a line break or tab?); remove it'),
    ]


def test_duplicates_name_the_first_row_and_invalid_rows_claim_nothing():
    p = plan_rows(sheet(
        row(Start_Time="25:00"),                              # 2: invalid, same key as 3
        row(),                                                # 3: runs
        row(CRN=" 00417", Teacher="ADA.LOVELACE@school.example", Title="Intro (again)"),  # 4: duplicate
        row(Teacher="alan.turing@school.example"),            # 5: another organizer: its own meeting
        row(),                                                # 6: duplicate
    ), config(), now=NOW)
    assert [r.row for r in p.requests] == [3, 5]
    assert [i.row for i in p.invalid] == [2]
    first = p.requests[0].external_id
    assert p.duplicates == (DuplicateRow(4, first, 3), DuplicateRow(6, first, 3))
    assert list(p.by_row()) == [2, 3, 4, 5, 6] and p.total == 5
    assert isinstance(p.by_row()[4], DuplicateRow)


# --- organizers ----------------------------------------------------------------------------------

def test_organizer_forms():
    assert plan_one(row(Teacher="{" + ADA_ID.upper() + "}")).organizer == ADA_ID
    assert plan_one(row(Teacher=" Ada.Lovelace@School.Example ")).organizer == ADA
    fixed = config(organizer=None, organizer_fixed="Grace.Hopper@school.example")
    assert plan_one(row(Teacher=None), fixed).organizer == "grace.hopper@school.example"
    delegated = parse_config({"auth": {"mode": "delegated"},
                              "mapping": {"subject": "{Title}", "keys": ["CRN"]}})
    req = plan_one(row(Teacher=None), delegated)
    assert req.organizer == ME and req.start is None and req.end is None


# --- times ---------------------------------------------------------------------------------------

def test_no_time_columns_send_no_times_and_missing_end_uses_the_default_or_graph():
    no_times = parse_config({"mapping": {"organizer": "Teacher", "subject": "{Title}", "keys": ["CRN"]}})
    req = plan_one(row(), no_times)
    assert (req.start, req.end) == (None, None)
    assert "startDateTime" not in req.body() and "endDateTime" not in req.body()
    open_end = plan_one(row(End_Time=None))
    assert open_end.end is None and "endDateTime" not in open_end.body()
    with_default = plan_one(row(End_Time=None), config(default_duration_minutes=50))
    assert with_default.end == datetime(2027, 3, 1, 15, 50, tzinfo=UTC)


def test_full_datetime_columns():
    cols = ("CRN", "Teacher", "Title", "Starts", "Ends")
    cfg = parse_config({"time_zone": "America/Chicago", "mapping": {
        "organizer": "Teacher", "subject": "{Title}", "start": "Starts", "end": "Ends",
        "keys": ["CRN", "Starts"]}})
    p = plan_rows(sheet(
        {"CRN": "1", "Teacher": ADA, "Title": "a", "Starts": "3/1/2027 9:00 AM", "Ends": "10:15 AM"},
        {"CRN": "2", "Teacher": ADA, "Title": "b", "Starts": datetime(2027, 3, 1, 22, 0),
         "Ends": datetime(2027, 3, 2, 1, 0)},
        {"CRN": "3", "Teacher": ADA, "Title": "c", "Starts": "2027-03-01T09:00:00+01:00", "Ends": None},
        {"CRN": "4", "Teacher": ADA, "Title": "d", "Starts": "2027-03-01", "Ends": None},
        {"CRN": "5", "Teacher": ADA, "Title": "e", "Starts": None, "Ends": "3/1/2027 10:00"},
        {"CRN": "6", "Teacher": ADA, "Title": "f", "Starts": "3/1/2027 9:00", "Ends": "3/1/2027 8:00"},
        columns=cols), cfg, now=NOW)
    assert [(r.row, r.start, r.end) for r in p.requests] == [
        (2, datetime(2027, 3, 1, 15, 0, tzinfo=UTC), datetime(2027, 3, 1, 16, 15, tzinfo=UTC)),
        (3, datetime(2027, 3, 2, 4, 0, tzinfo=UTC), datetime(2027, 3, 2, 7, 0, tzinfo=UTC)),  # past midnight
        (4, datetime(2027, 3, 1, 8, 0, tzinfo=UTC), None),
    ]
    assert [(i.row, i.column, i.message) for i in p.invalid] == [
        (5, "Starts", '"2027-03-01" has a date but no time of day (use 2027-02-01 09:00 or 2/1/2027 9:00 AM)'),
        (6, "Starts", "missing; the meeting's start date and time is needed"),
        (7, "Ends", "2027-03-01 08:00 is before Starts 2027-03-01 09:00; the end must be after the start"),
    ]


# --- attendees -----------------------------------------------------------------------------------

def test_attendee_cell_syntax():
    assert parse_attendees("a@x.edu, B@X.edu (Presenter);; Jo Smith <jo@x.edu> ; a@x.edu") == (
        ("a@x.edu", "attendee"), ("b@x.edu", "presenter"), ("jo@x.edu", "attendee"), ("a@x.edu", "attendee"))
    assert parse_attendees("a@x.edu", "presenter") == (("a@x.edu", "presenter"),)


def test_attendees_are_deduplicated_keeping_the_stronger_role():
    req = plan_one(row(Students="amara@s.example; LI@s.example; li@s.example (coorganizer)",
                       TA="amara@s.example; ta@s.example (attendee)"))
    assert req.attendees == (Attendee("amara@s.example", "presenter"), Attendee("li@s.example", "coorganizer"),
                             Attendee("ta@s.example", "attendee"))


# --- thread id -----------------------------------------------------------------------------------

def test_thread_id_on_beta():
    cols = COLUMNS + ("Chat",)
    cfg = parse_config({"graph": {"api_version": "beta"}, "mapping": {
        "organizer": "Teacher", "subject": "{Title}", "thread_id": "Chat", "keys": ["CRN"]}})
    p = plan_rows(sheet(row(Chat="19:abc@thread.v2"), row(CRN="2", Chat=None),
                        row(CRN="3", Chat="general chat"), columns=cols), cfg, now=NOW)
    assert [r.thread_id for r in p.requests] == ["19:abc@thread.v2", None]
    assert p.requests[0].body()["chatInfo"] == {"threadId": "19:abc@thread.v2"}
    assert p.invalid[0].column == "Chat"


# --- columns -------------------------------------------------------------------------------------

def test_missing_column_names_the_columns_that_exist_and_the_closest():
    cfg = parse_config({"mapping": {"organizer": "Teacher", "subject": "{Course}: {Titel}", "keys": ["CRN"]}},
                       Path("/etc/bulkmeet.toml"))
    with pytest.raises(InputError) as err:
        check_columns(sheet(row()), cfg)
    assert str(err.value) == (
        "schedule.xlsx (sheet 'Spring'): bulkmeet.toml maps subject to column 'Titel', which the sheet "
        "does not have. Did you mean 'Title'? Columns in the sheet: CRN, Course, Title, Teacher, Date, "
        "Start Time, End Time, Students, TA.")
    assert err.value.exit_status == ExitStatus.UNUSABLE_INPUT
    with pytest.raises(InputError):
        plan_rows(sheet(row()), cfg, now=NOW)


def test_columns_match_ignoring_case_and_spacing_when_unambiguous():
    cfg = config(organizer="teacher", start_time="start  time", subject="{course}: {TITLE}")
    req = plan_one(row(), cfg)
    assert req.subject == "CS 101: Intro" and req.organizer == ADA
    ambiguous = Sheet(Path("s.csv"), None, ("Teacher", "TEACHER", "Title", "CRN"),
                      (SheetRow(2, {"Teacher": ADA, "TEACHER": ADA, "Title": "t", "CRN": "1"}),))
    with pytest.raises(InputError, match="column 'teacher', which is not in the sheet exactly as written "
                                         "and matches 'Teacher' and 'TEACHER' when case and spacing"):
        check_columns(ambiguous, parse_config({"mapping": {"organizer": "teacher", "subject": "{Title}",
                                                           "keys": ["CRN"]}}))


def test_mapping_a_result_column_explains_why_it_is_missing():
    cfg = parse_config({"mapping": {"organizer": "Teacher", "subject": "{Title}", "external_id": "externalId"}})
    with pytest.raises(InputError, match="one of the columns bulkmeet writes into its output sheet"):
        check_columns(sheet(row()), cfg)


def test_plans_from_a_real_csv_file(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("CRN,Course,Title,Teacher,Date,Start Time,End Time,Students,TA\n"
                    f"00417,CS 101,Intro,{ADA},3/1/2027,9:00 AM,10:15 AM,,\n"
                    f"00418,CS 102,,{ADA},3/1/2027,25:00,10:15 AM,,\n")
    p = plan_rows(read_sheet(path), config(), now=NOW)
    assert [r.row for r in p.requests] == [2]
    assert [(i.row, i.column) for i in p.invalid] == [(3, "Start Time")]
