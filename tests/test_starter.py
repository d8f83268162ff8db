"""`bulkmeet init`: the starter config is guessed from real sheets and loads as written."""
from __future__ import annotations

import tomllib
from datetime import datetime, time
from pathlib import Path

import pytest
from openpyxl import Workbook

from bulkmeet.config import AttendeeColumn, load_config
from bulkmeet.errors import ConfigError, InputError
from bulkmeet.plan import check_columns, plan_rows
from bulkmeet.sheets import read_sheet
from bulkmeet.starter import starter_config, write_starter_config

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
TENANT = "ab124da5-db7b-5a4a-908b-9f2538c5d372"
CLIENT = "210ebc0a-c674-5b7a-866f-c2cc1251ec0a"


def fill_ids(path: Path) -> Path:
    text = path.read_text(encoding="utf-8")
    text = text.replace('tenant_id = ""', f'tenant_id = "{TENANT}"').replace('client_id = ""', f'client_id = "{CLIENT}"')
    path.write_text(text, encoding="utf-8")
    return path


def csv_file(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_guesses_the_sample_schedule_like_the_hand_written_config(tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "America/Chicago")
    schedule = tmp_path / "schedule.xlsx"
    schedule.write_bytes((SAMPLES / "schedule.xlsx").read_bytes())
    out = write_starter_config(schedule)
    assert out == tmp_path / "bulkmeet.toml"
    text = out.read_text(encoding="utf-8")
    assert "TODO" in text and "Columns in the sheet: CRN, Course, Section" in text
    guessed = load_config(out)  # loads as written, ids still empty
    assert guessed.auth.tenant_id == ""
    cfg = load_config(fill_ids(out))
    hand = load_config(SAMPLES / "bulkmeet.toml")
    assert cfg.mapping == hand.mapping
    assert cfg.auth.tenant_id == TENANT and cfg.auth.client_id == CLIENT
    sheet = read_sheet(schedule)
    check_columns(sheet, cfg)
    assert plan_rows(sheet, cfg) == plan_rows(sheet, hand)


def test_refuses_to_overwrite_without_force(tmp_path):
    schedule = tmp_path / "s.csv"
    csv_file(schedule, "CRN,Title,Teacher Email,Date,Start,End\n1,Intro,a@x.edu,3/1/2027,9:00,10:00\n")
    target = tmp_path / "bulkmeet.toml"
    target.write_text("# my careful edits\n")
    with pytest.raises(ConfigError) as err:
        write_starter_config(schedule)
    assert str(err.value).startswith(f"{target}: already exists;") and "--force" in str(err.value)
    assert target.read_text() == "# my careful edits\n"
    assert write_starter_config(schedule, force=True) == target
    assert 'organizer = "Teacher Email"' in target.read_text()
    other = write_starter_config(schedule, tmp_path / "sub.toml")
    assert other.exists()
    with pytest.raises(InputError):
        write_starter_config(tmp_path / "missing.xlsx", tmp_path / "x.toml")
    assert not (tmp_path / "x.toml").exists()


def test_other_header_spellings(tmp_path):
    schedule = csv_file(tmp_path / "s.csv",
                        "Section ID,Class,Course Title,Teacher UPN,Class Date,Begins,Ends,Attendees,Co-Teacher,Thread\n"
                        "A-1,BIO 1,Cells,t@x.edu,13/03/2027,09:00,10:00,s1@x.edu;s2@x.edu,c@x.edu,19:a@thread.v2\n")
    text = starter_config(read_sheet(schedule))
    data = tomllib.loads(text)
    m = data["mapping"]
    assert m["organizer"] == "Teacher UPN"
    assert m["subject"] == "{Class}: {Course Title}"
    assert (m["date"], m["start_time"], m["end_time"]) == ("Class Date", "Begins", "Ends")
    assert m["date_order"] == "DMY"  # 13/03 can only be day-first
    assert m["attendees"] == ["Attendees", {"column": "Co-Teacher", "role": "presenter"}]
    assert m["keys"] == ["Section ID", "Class Date"]
    assert '# thread_id = "Thread"' in text
    cfg = load_config(fill_ids(write_starter_config(schedule)))
    assert plan_rows(read_sheet(schedule), cfg).requests[0].start.isoformat().startswith("2027-03-13")


def test_full_datetime_columns_in_excel(tmp_path):
    wb = Workbook()
    ws = wb.active
    ws.append(["Meeting Title", "Organizer", "Start", "End", "Id"])
    ws.append(["Staff meeting", "boss@x.edu", datetime(2027, 3, 1, 9, 0), datetime(2027, 3, 1, 10, 0), "m1"])
    wb.save(tmp_path / "s.xlsx")
    m = tomllib.loads(starter_config(read_sheet(tmp_path / "s.xlsx")))["mapping"]
    assert (m["subject"], m["organizer"], m["start"], m["end"], m["keys"]) == (
        "{Meeting Title}", "Organizer", "Start", "End", ["Id", "Start"])
    assert "date" not in m


def test_without_an_organizer_column_it_falls_back_to_delegated_and_still_loads(tmp_path):
    schedule = csv_file(tmp_path / "s.csv", "Instructor,Course,Date,Start Time\nAda Lovelace,CS 1,2027-03-01,9am\n")
    out = write_starter_config(schedule)
    cfg = load_config(out)
    assert cfg.delegated and cfg.mapping.organizer is None
    assert cfg.mapping.subject == "{Course}" and cfg.mapping.keys == ("Course", "Date")
    assert "# TODO: no organizer column found" in out.read_text()


def test_odd_column_names_are_quoted_for_toml(tmp_path):
    wb = Workbook()
    ws = wb.active
    ws.append(['Course "Code"', "Title\\Name", "Room: Building", "Instructor Email", "Students"])
    ws.append(["CS 1", "Intro", "B1", "a@x.edu", "s@x.edu"])
    wb.save(tmp_path / "s.xlsx")
    out = write_starter_config(tmp_path / "s.xlsx")
    cfg = load_config(out)
    assert cfg.mapping.attendees == (AttendeeColumn("Students"),)
    sheet = read_sheet(tmp_path / "s.xlsx")
    check_columns(sheet, cfg)
    assert plan_rows(sheet, cfg).requests[0].organizer == "a@x.edu"


def test_no_times_mapped_when_none_are_found(tmp_path):
    schedule = csv_file(tmp_path / "s.csv", "CRN,Title,Owner\n1,Office hours,a@x.edu\n")
    cfg = load_config(write_starter_config(schedule))
    assert not cfg.mapping.has_times and cfg.mapping.keys == ("CRN",)
    assert plan_rows(read_sheet(schedule), cfg).requests[0].start is None


def test_time_cells_are_recognised_as_start_times(tmp_path):
    wb = Workbook()
    ws = wb.active
    ws.append(["CRN", "Title", "Teacher", "Date", "From", "To"])
    ws.append(["1", "Intro", "a@x.edu", datetime(2027, 3, 1), time(9, 0), time(10, 0)])
    wb.save(tmp_path / "s.xlsx")
    m = tomllib.loads(starter_config(read_sheet(tmp_path / "s.xlsx")))["mapping"]
    assert (m["date"], m["start_time"], m["end_time"], m["date_order"]) == ("Date", "From", "To", "MDY")


# --- registrar exports (issue 10) ----------------------------------------------------------------

EXPORT = """CRN,Subject,Course Number,Section,Title,Part of Term,Schedule Type,Status,Days,Begin Time,End Time,Instructor
10001,ACCT,2301,001,Principles of Accounting,1,LEC,Active,MWF,09:00 AM,09:50 AM,"Noonan, J"
10002,ACCT,4350,001,Atg Measurement &amp; Disclosure,1,LEC,Active,TR,12:30 PM,01:45 PM,"Noonan, J;Kim, M"
10003,ACCT,4399,001,Independent Study,1,IND,Active,,ARRANGED,,"Kim, M"
10004,BIOL,1406,002,Biology I,S1,LEC,Cancelled,TR,08:00 AM,09:15 AM,
10005,BIOL,1407,001,Biology II,,WEB,Active,,TBA,,"Kim, M"
10006,BIOL,4100,001,Research,1,IND,Active,,ARRANGED,,"Kim, M"
10007,BIOL,4101,001,Research II,1,IND,Active,,ARRANGED,,"Kim, M"
10008,BIOL,4102,001,Research III,1,IND,Active,,ARRANGED,,"Kim, M"
"""


def test_init_recognises_a_registrar_export_and_asks_only_for_term_dates_and_staff(tmp_path):
    schedule = csv_file(tmp_path / "export.csv", EXPORT)
    text = write_starter_config(schedule).read_text()
    data = tomllib.loads(text)
    assert data["mapping"]["subject"] == "{Subject} {Course Number}-{Section}: {Title}"
    assert data["mapping"]["keys"] == ["CRN"]
    assert data["pattern"] == {"days": "Days", "start_time": "Begin Time", "end_time": "End Time",
                               "meetings": "section"}
    assert data["term"]["column"] == "Part of Term"
    assert set(data["term"]["parts"]) == {"1", "S1", ""}
    assert data["staff"]["column"] == "Instructor" and data["staff"]["separator"] == ";"
    skips = {(r["column"], tuple(r.get("one_of", [r.get("equals")]))) for r in data["skip"]}
    assert skips == {("Begin Time", ("ARRANGED", "TBA")), ("Days", ("",)), ("Status", ("Cancelled",)),
                     ("Schedule Type", ("IND", "WEB"))}
    # What it cannot know stops validate with a message that names it...
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "bulkmeet.toml")
    assert '[term.parts."1"] first_day: "TODO" is not a date' in str(err.value)
    # ... and once the dates and the staff list are filled in, the export plans as it is.
    text = text.replace('first_day = "TODO"   # e.g. first_day = 2027-01-19', "first_day = 2027-01-19")
    text = text.replace('last_day = "TODO"', "last_day = 2027-05-07")
    text = text.replace('"TODO-staff-list.csv"', '"staff.csv"')
    (tmp_path / "bulkmeet.toml").write_text(fill_ids_text(text))
    csv_file(tmp_path / "staff.csv", 'Name,Email\n"Noonan, Jane",jane@x.edu\n"Kim, Min",min@x.edu\n')
    cfg = load_config(tmp_path / "bulkmeet.toml")
    plan = plan_rows(read_sheet(schedule), cfg)
    assert [r.subject for r in plan.requests] == ["ACCT 2301-001: Principles of Accounting",
                                                   "ACCT 4350-001: Atg Measurement & Disclosure"]
    assert all(r.start is not None for r in plan.requests)
    assert len(plan.skipped) == 6 and not plan.invalid


def fill_ids_text(text: str) -> str:
    return text.replace('tenant_id = ""', f'tenant_id = "{TENANT}"').replace('client_id = ""', f'client_id = "{CLIENT}"')


def test_init_never_titles_meetings_with_a_department_code_alone(tmp_path):
    schedule = csv_file(tmp_path / "s.csv", "CRN,Subject,Course Number,Title,Instructor Email\n"
                        + "".join(f"{i},ACCT,23{i:02d},Course {i},a@x.edu\n" for i in range(6)))
    cfg = load_config(write_starter_config(schedule))
    assert cfg.mapping.subject != "{Subject}"
    assert "{Title}" in cfg.mapping.subject


def test_init_never_proposes_meetings_that_start_now_when_the_sheet_has_times(tmp_path):
    rows = "".join(f"{i},ACCT,23{i:02d},Course {i},{'ARRANGED' if i % 3 else '09:00 AM'},a@x.edu\n" for i in range(9))
    schedule = csv_file(tmp_path / "s.csv", "CRN,Subject,Course Number,Title,Begin Time,Instructor Email\n" + rows)
    out = write_starter_config(schedule)
    cfg = load_config(out)
    assert cfg.mapping.start_time == "Begin Time" and cfg.mapping.has_times
    with pytest.raises(InputError) as err:
        check_columns(read_sheet(schedule), cfg)
    assert "maps date to column 'TODO: the date column', which the sheet does not have" in str(err.value)


def test_init_recognises_a_time_range_column(tmp_path):
    schedule = csv_file(tmp_path / "e.csv", 'CRN,Subj,Crse,Title,Days,Time,Instructor\n'
                        '1,MATH,101,Algebra,MWF,09:30 AM-10:20 AM,"Turing, A"\n'
                        '2,MATH,102,Trig,TR,1:00-2:15 PM,"Turing, A"\n3,MATH,103,Study,,TBA,"Turing, A"\n')
    data = tomllib.loads(write_starter_config(schedule).read_text())
    assert data["pattern"]["times"] == "Time" and "start_time" not in data["pattern"]
    assert {"column": "Time", "one_of": ["TBA"], "reason": "no scheduled time"} in data["skip"]
