"""Per-teacher handouts and the mail-merge CSV, written and read back with openpyxl and csv."""
from __future__ import annotations

import csv
from datetime import date, datetime, time
from pathlib import Path

import openpyxl

from bulkmeet.handouts import HEADER, HEADER_ROW, MAIL_MERGE_COLUMNS, write_handouts
from bulkmeet.models import PublishedMeeting
from tests.test_calendars import CHICAGO, JOIN, TZ, published, term


def rows_of(path: Path) -> tuple[openpyxl.worksheet.worksheet.Worksheet, list[dict[str, object]]]:
    ws = openpyxl.load_workbook(path).worksheets[0]
    header = [c.value for c in ws[HEADER_ROW]]
    assert tuple(header) == HEADER
    rows = []
    for r in range(HEADER_ROW + 1, ws.max_row + 1):
        rows.append({name: ws.cell(row=r, column=i + 1) for i, name in enumerate(header)})
    return ws, rows


def test_one_workbook_per_organizer_sorted_by_date_in_local_time(tmp_path: Path) -> None:
    meetings = term()
    files = write_handouts(tmp_path, list(reversed(meetings)), time_zone=TZ)
    assert sorted(p.name for p in files.workbooks.values()) == [
        "bob@test.example.xlsx", "teacher0@test.example.xlsx"]
    ws, rows = rows_of(files.workbooks["teacher0@test.example"])
    assert ws.title == "Classes"
    assert ws["A1"].value == "Teams classes for Ada Lovelace"
    assert "America/Chicago" in ws["A2"].value
    assert [r["Date"].value for r in rows] == [datetime(2027, 3, 8), datetime(2027, 3, 15),
                                               datetime(2027, 3, 22)]
    assert rows[0]["Date"].is_date and rows[0]["Date"].number_format == "yyyy-mm-dd"
    # 9:00 on both sides of the DST change: local wall time, real time cells
    assert [r["Start"].value for r in rows] == [time(9, 0)] * 3
    assert [r["End"].value for r in rows] == [time(9, 50)] * 3
    assert rows[0]["Day"].value == "Mon"
    assert rows[0]["Subject"].value == "CS101: Lecture 1"


def test_join_links_are_clickable_hyperlinks(tmp_path: Path) -> None:
    files = write_handouts(tmp_path, term(), time_zone=TZ)
    _, rows = rows_of(files.workbooks["teacher0@test.example"])
    first = rows[0]
    assert first["Join"].value == "Join meeting"
    assert first["Join"].hyperlink.target == f"{JOIN}1"
    assert first["Join"].style == "Hyperlink"
    assert first["Local numbers"].hyperlink.target == "https://dialin.teams.example/abc"
    assert first["Meeting options"].hyperlink.target == "https://teams.example/options/1"
    assert first["Meeting ID"].value == "123 456 789 012"
    assert first["Passcode"].value == "aB3cD4"
    # dialable text, no formula-neutralising quote in front of the +
    assert first["Phone"].value == "+1 425-555-0100" and first["Phone"].data_type == "s"
    assert first["Toll-free"].value == "+1 800-555-0199"
    assert first["Conference ID"].value == "987654321#"


def test_cancelled_meetings_stay_struck_through_without_links(tmp_path: Path) -> None:
    files = write_handouts(tmp_path, term(), time_zone=TZ)
    _, rows = rows_of(files.workbooks["teacher0@test.example"])
    cancelled = rows[2]
    assert cancelled["Status"].value == "cancelled"
    assert cancelled["Join"].hyperlink is None and cancelled["Join"].value is None
    assert cancelled["Subject"].font.strike


def test_hostile_subject_is_not_a_formula(tmp_path: Path) -> None:
    m = published(1, datetime(2027, 3, 8, 9, 0, tzinfo=CHICAGO))
    evil = PublishedMeeting(**{**m.__dict__, "subject": "=HYPERLINK(\"http://evil\",\"x\")",
                               "organizer_name": "@SUM(A1)"})
    files = write_handouts(tmp_path, [evil], time_zone=TZ)
    _, rows = rows_of(files.workbooks[m.organizer])
    assert rows[0]["Subject"].data_type == "s"
    assert rows[0]["Subject"].value == "'=HYPERLINK(\"http://evil\",\"x\")"
    with files.mail_merge.open(encoding="utf-8-sig", newline="") as f:
        row = next(csv.DictReader(f))
    assert row["Name"] == "'@SUM(A1)"
    assert row["Links"].startswith("Mon 2027-03-08 09:00-09:50 =HYPERLINK")  # starts with a date


def test_mail_merge_csv(tmp_path: Path) -> None:
    calendars = {"teacher0@test.example": tmp_path / "cal" / "teacher0@test.example.ics"}
    files = write_handouts(tmp_path / "handouts", term(), time_zone=TZ, calendars=calendars)
    assert files.mail_merge.name == "mail-merge.csv"
    raw = files.mail_merge.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads it as UTF-8
    with files.mail_merge.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == MAIL_MERGE_COLUMNS
        rows = {r["Organizer"]: r for r in reader}
    ada = rows["teacher0@test.example"]
    assert ada["Email"] == "teacher0@test.example" and ada["Name"] == "Ada Lovelace"
    assert ada["Meetings"] == "2" and ada["Cancelled"] == "1"
    assert ada["First class"] == "2027-03-08 09:00" and ada["Last class"] == "2027-03-15 09:00"
    assert Path(ada["Handout"]) == files.workbooks["teacher0@test.example"].resolve()
    assert Path(ada["Handout"]).is_file()
    assert ada["Calendar"] == str(calendars["teacher0@test.example"].resolve())
    assert ada["Links"].splitlines() == [
        f"Mon 2027-03-08 09:00-09:50 CS101: Lecture 1: {JOIN}1",
        f"Mon 2027-03-15 09:00-09:50 CS101: Lecture 2: {JOIN}2",
        "Mon 2027-03-22 09:00-09:50 CS101: Lecture 3 (cancelled)",
    ]
    assert rows["bob@test.example"]["Calendar"] == ""


def test_organizer_without_address_gets_no_email(tmp_path: Path) -> None:
    oid = "5a1e0a4b-0000-4000-8000-000000000001"
    m = published(1, datetime(2027, 3, 8, 9, 0, tzinfo=CHICAGO), organizer=oid)
    files = write_handouts(tmp_path, [m], time_zone=TZ)
    with files.mail_merge.open(encoding="utf-8-sig", newline="") as f:
        row = next(csv.DictReader(f))
    assert row["Email"] == "" and row["Organizer"] == oid
    assert files.workbooks[oid].name == f"{oid}.xlsx"


def test_dates_are_real_date_cells(tmp_path: Path) -> None:
    files = write_handouts(tmp_path, term(), time_zone=TZ)
    _, rows = rows_of(files.workbooks["bob@test.example"])
    assert rows[0]["Date"].value.date() == date(2027, 3, 9)
    assert rows[0]["Start"].value == time(13, 0)


def test_handouts_of_a_real_run_link_to_the_tenants_meetings(tmp_path, tenant, emulator,
                                                             secret_env, run_cli) -> None:
    from tests import helpers

    rows = helpers.schedule_rows(tenant, 9)
    schedule = helpers.write_xlsx(tmp_path / "term.xlsx", rows)
    config = helpers.write_config(tmp_path / "bulkmeet.toml", tenant, emulator.base_url,
                                  emulator.ca_path)
    assert run_cli("run", schedule, "--config", config, "--handouts", tmp_path / "out").code == 0
    by_url = {m["joinWebUrl"]: m for m in emulator.meetings()}
    total = 0
    for upn, _ in tenant.teachers[:-1]:
        _, lines = rows_of(tmp_path / "out" / f"{upn}.xlsx")
        starts = [datetime.combine(r["Date"].value.date(), r["Start"].value) for r in lines]
        assert starts == sorted(starts)
        for r in lines:
            m = by_url[r["Join"].hyperlink.target]
            assert m["subject"] == r["Subject"].value
            assert m["joinMeetingIdSettings"]["passcode"] == r["Passcode"].value
            utc = datetime.fromisoformat(m["startDateTime"])
            assert utc.astimezone(CHICAGO).replace(tzinfo=None) == datetime.combine(
                r["Date"].value.date(), r["Start"].value)
        total += len(lines)
    assert total == 9
    with (tmp_path / "out" / "mail-merge.csv").open(encoding="utf-8-sig", newline="") as f:
        merged = list(csv.DictReader(f))
    assert sorted(r["Email"] for r in merged) == sorted(u for u, _ in tenant.teachers[:-1])
