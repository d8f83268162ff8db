"""The output sheet and the atomic writer, checked by writing real files and reading them back."""
from __future__ import annotations

import csv
import json
import os
import stat
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from bulkmeet import report
from bulkmeet.atomic import atomic_file, atomic_write, atomic_write_bytes, current_umask
from bulkmeet.errors import InputError
from bulkmeet.models import (
    CREATED,
    DUPLICATE,
    EXISTING,
    FAILED,
    INVALID,
    PENDING,
    PLANNED,
    REQUEST_COLUMN,
    RESULT_COLUMNS,
    MeetingInfo,
    RowOutcome,
    Sheet,
    SheetRow,
)
from bulkmeet.report import RunSummary, default_output_path, neutralise, write_output

COLUMNS = ("CRN", "Course", "Title", "Date", "Start", "Starts at", "Notes")
URL = "https://teams.example/l/meetup-join/19%3ameeting_abc%40thread.v2/0?context=%7b%7d"


def meeting(n: int) -> MeetingInfo:
    return MeetingInfo(
        meeting_id=f"MSo{n:06d}", join_url=f"{URL}&n={n}", join_meeting_id=f"{3000000000 + n}",
        passcode="aB3cD4", dialin_url="https://dialin.teams.example/abc",
        conference_id=f"{100000 + n}", toll_number="+1 425-555-0100",
        start_utc="2027-03-01T14:00:00Z", end_utc="2027-03-01T15:15:00Z",
    )


def make_sheet(tmp_path: Path, name: str | None = "Fall") -> Sheet:
    rows = (
        SheetRow(2, {"CRN": "00123", "Course": "CS101", "Title": "Intro",
                     "Date": datetime(2027, 3, 1), "Start": time(9, 30),
                     "Starts at": datetime(2027, 3, 1, 9, 30), "Notes": None}),
        SheetRow(3, {"CRN": "00124", "Course": "CS102", "Title": "=HYPERLINK(\"http://evil\")",
                     "Date": datetime(2027, 3, 2), "Start": time(10, 0, 15),
                     "Starts at": datetime(2027, 3, 2, 0, 0), "Notes": "-2+3"}),
        SheetRow(5, {"CRN": "00125", "Course": "CS103", "Title": "@SUM(A1)",
                     "Date": None, "Start": None, "Starts at": None, "Notes": "-5"}),
        SheetRow(6, {"CRN": "00126", "Course": "CS104", "Title": "+cmd|' /C calc'!A0",
                     "Date": datetime(2027, 3, 3), "Start": time(8, 0),
                     "Starts at": datetime(2027, 3, 3, 8, 0), "Notes": "\tx"}),
        SheetRow(7, {"CRN": "00127", "Course": "CS105", "Title": "Dup",
                     "Date": datetime(2027, 3, 4), "Start": time(8, 0),
                     "Starts at": datetime(2027, 3, 4, 8, 0), "Notes": "ok"}),
        SheetRow(8, {"CRN": "00128", "Course": "CS106", "Title": "Later",
                     "Date": datetime(2027, 3, 5), "Start": time(8, 0),
                     "Starts at": datetime(2027, 3, 5, 8, 0), "Notes": "\rx"}),
    )
    return Sheet(tmp_path / "fall.xlsx", name, COLUMNS, rows)


def make_outcomes() -> dict[int, RowOutcome]:
    return {
        2: RowOutcome(2, CREATED, "ext-2", meeting(2), 201, None, "rid-2", 1),
        3: RowOutcome(3, EXISTING, "ext-3", meeting(3), 200, None, "rid-3", 2,
                      warning="The row changed since its meeting was made."),
        5: RowOutcome(5, FAILED, "ext-5", None, 403,
                      "=Forbidden: No application access policy found for this app.", "rid-5", 6),
        6: RowOutcome(6, INVALID, None, error="Column 'Start': \"25:00\" is not a time."),
        7: RowOutcome(7, DUPLICATE, "ext-2", error="Same externalId as row 2."),
        # row 8: no outcome -> pending
    }


def summary(**kw) -> RunSummary:
    values = dict(schedule="fall.xlsx", output="fall.results.xlsx",
                  started="2027-03-01T02:00:03", finished="2027-03-01T02:01:10", total_rows=6,
                  created=1, existing=1, failed=1, invalid=1, duplicate=1, pending=1,
                  requests_sent=9, throttled=2, api="https://graph.microsoft.com/v1.0",
                  notes=("Organizer t@x.example: 1 row(s) failed. No access policy.",))
    values.update(kw)
    return RunSummary(**values)


@pytest.fixture
def written(tmp_path: Path) -> tuple[Path, Path]:
    sheet = make_sheet(tmp_path)
    xlsx, csv_path = tmp_path / "out.xlsx", tmp_path / "out.csv"
    write_output(xlsx, sheet, make_outcomes(), summary())
    write_output(csv_path, sheet, make_outcomes(), summary())
    return xlsx, csv_path


def test_default_output_path() -> None:
    assert default_output_path(Path("/s/fall.xlsx")) == Path("/s/fall.results.xlsx")
    assert default_output_path(Path("/s/fall.XLSM")) == Path("/s/fall.results.xlsx")
    # a CSV schedule gets an .xlsx too: links, colours and the Summary sheet are the point
    assert default_output_path(Path("term 2.CSV")) == Path("term 2.results.xlsx")


def test_summary_line_and_dict() -> None:
    s = RunSummary("s.xlsx", "o.xlsx", "a", "b", 48, 40, 2, 3, 3, 0)
    assert s.line() == "48 rows: 40 created, 2 existing, 3 failed, 3 invalid"
    s2 = summary()
    assert s2.line() == "6 rows: 1 created, 1 existing, 1 failed, 1 invalid, 1 duplicate, 1 pending"
    planned = RunSummary("s", "o", "a", "b", 1, 0, 0, 0, 0, 0, planned=1, dry_run=True)
    assert planned.line() == "1 row: 0 created, 0 existing, 0 failed, 0 invalid, 1 planned"
    data = json.loads(json.dumps(s2.as_dict()))
    assert data["notes"] == list(s2.notes) and data["throttled"] == 2
    assert data["line"] == s2.line() and data["api"] == "https://graph.microsoft.com/v1.0"


def test_xlsx_layout(written: tuple[Path, Path]) -> None:
    wb = openpyxl.load_workbook(written[0])
    assert wb.sheetnames == ["Fall", "Summary"]
    ws = wb["Fall"]
    header = [c.value for c in ws[1]]
    assert header == list(COLUMNS) + list(RESULT_COLUMNS)
    assert all(c.font.b for c in ws[1])
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == f"A1:{openpyxl.utils.get_column_letter(len(header))}7"
    widths = {letter: dim.width for letter, dim in ws.column_dimensions.items()}
    col = {name: openpyxl.utils.get_column_letter(i + 1) for i, name in enumerate(header)}
    assert widths[col["joinWebUrl"]] > widths[col["CRN"]] >= 8
    assert widths[col["joinWebUrl"]] <= 60
    assert ws.max_row == 7  # header + every sheet row, in order
    assert [ws.cell(r, 1).value for r in range(2, 8)] == [
        "00123", "00124", "00125", "00126", "00127", "00128"]


def test_xlsx_results_links_and_colours(written: tuple[Path, Path]) -> None:
    ws = openpyxl.load_workbook(written[0])["Fall"]
    header = [c.value for c in ws[1]]
    rows = [{h: c for h, c in zip(header, row, strict=True)} for row in ws.iter_rows(min_row=2)]
    assert [r["status"].value for r in rows] == [
        CREATED, EXISTING, FAILED, INVALID, DUPLICATE, PENDING]
    fills = [r["status"].fill.fgColor.rgb[-6:] for r in rows]
    assert fills == [report.STATUS_COLOURS[s] for s in
                     (CREATED, EXISTING, FAILED, INVALID, DUPLICATE, PENDING)]
    assert len(set(fills)) == 6
    first = rows[0]
    assert first["joinWebUrl"].hyperlink.target == f"{URL}&n=2"
    assert first["joinWebUrl"].value == f"{URL}&n=2"
    assert rows[1]["joinWebUrl"].hyperlink.target == f"{URL}&n=3"  # each row its own link
    assert rows[2]["joinWebUrl"].hyperlink is None and rows[2]["joinWebUrl"].value is None
    assert first["meetingId"].value == "MSo000002"
    assert first["joinMeetingId"].value == "3000000002" and first["joinMeetingId"].data_type == "s"
    assert first["httpStatus"].value == 201 and first["attempts"].value == 1
    assert first["requestId"].value == "rid-2"
    assert rows[1]["warning"].value.startswith("The row changed")
    assert rows[3]["error"].value == "Column 'Start': \"25:00\" is not a time."
    assert rows[5]["error"].value.startswith("Not sent in this run")
    assert rows[5]["externalId"].value is None


def test_xlsx_original_values_are_faithful(written: tuple[Path, Path]) -> None:
    ws = openpyxl.load_workbook(written[0])["Fall"]
    a2 = {c.column_letter: c for c in ws[2]}
    assert a2["A"].value == "00123" and a2["A"].data_type == "s"  # leading zeros: text
    assert a2["D"].value == datetime(2027, 3, 1) and a2["D"].number_format == "yyyy-mm-dd"
    assert a2["E"].value == time(9, 30) and a2["E"].number_format == "hh:mm"
    assert a2["F"].value == datetime(2027, 3, 1, 9, 30)
    assert a2["F"].number_format == "yyyy-mm-dd hh:mm"
    a3 = {c.column_letter: c for c in ws[3]}
    assert a3["E"].value == time(10, 0, 15) and a3["E"].number_format == "hh:mm:ss"
    # A date-time column keeps showing the time even at midnight.
    assert a3["F"].value == datetime(2027, 3, 2) and a3["F"].number_format == "yyyy-mm-dd hh:mm"
    assert ws["G2"].value is None


def test_xlsx_summary_sheet(written: tuple[Path, Path]) -> None:
    ws = openpyxl.load_workbook(written[0])["Summary"]
    items = {row[0]: row[1] for row in ws.iter_rows(values_only=True)}
    assert items["Result"] == summary().line()
    assert items["Rows"] == 6 and items["Created"] == 1 and items["Pending"] == 1
    assert items["Throttled (429) responses"] == 2 and items["Requests sent"] == 9
    assert items["Graph API"] == "https://graph.microsoft.com/v1.0"
    assert items["Started"] == "2027-03-01T02:00:03" and items["Dry run"] == "no"
    assert items["Note"].startswith("Organizer t@x.example")
    assert ws["A1"].font.b


FORMULA_CELLS = {
    "Title": ["Intro", "'=HYPERLINK(\"http://evil\")", "'@SUM(A1)", "'+cmd|' /C calc'!A0",
              "Dup", "Later"],
    "Notes": [None, "'-2+3", "-5", "'\tx", "ok", "'\rx"],
}


def test_formulas_are_neutralised_in_xlsx(written: tuple[Path, Path]) -> None:
    ws = openpyxl.load_workbook(written[0])["Fall"]
    header = [c.value for c in ws[1]]
    for name, expected in FORMULA_CELLS.items():
        col = header.index(name) + 1
        # The CR stays a CR (written &#13;: XML would read a bare CR back as LF).
        assert [ws.cell(r, col).value for r in range(2, 8)] == expected
    error = ws.cell(4, header.index("error") + 1).value
    assert error.startswith("'=Forbidden")  # result columns too
    assert ws.cell(2, header.index("tollNumber") + 1).value == "+1 425-555-0100"  # dialable
    assert not [c.coordinate for row in ws.iter_rows() for c in row if c.data_type == "f"]


def test_formulas_are_neutralised_in_csv(written: tuple[Path, Path]) -> None:
    raw = written[1].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads UTF-8
    with written[1].open(encoding="utf-8-sig", newline="") as handle:
        records = list(csv.DictReader(handle))
    assert list(records[0]) == list(COLUMNS) + list(RESULT_COLUMNS)
    for name, expected in FORMULA_CELLS.items():
        assert [r[name] for r in records] == [v or "" for v in expected]
    assert records[2]["error"].startswith("'=Forbidden")
    assert records[0]["tollNumber"] == "+1 425-555-0100"  # a phone number, not a formula
    for record in records:  # nothing a spreadsheet would run, anywhere
        for value in record.values():
            if value == "+1 425-555-0100":
                continue
            assert not value or value[0] not in "=+@\t\r" and (value[0] != "-" or value == "-5")


def test_csv_values(written: tuple[Path, Path]) -> None:
    frame = pd.read_csv(written[1], dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert frame["CRN"].tolist() == ["00123", "00124", "00125", "00126", "00127", "00128"]
    assert frame["Date"].tolist()[:3] == ["2027-03-01", "2027-03-02", ""]
    assert frame["Start"].tolist()[:2] == ["09:30", "10:00:15"]
    assert frame["Starts at"].tolist()[:2] == ["2027-03-01 09:30", "2027-03-02 00:00"]
    assert frame["status"].tolist() == [CREATED, EXISTING, FAILED, INVALID, DUPLICATE, PENDING]
    assert frame["joinWebUrl"][0] == f"{URL}&n=2" and frame["httpStatus"][0] == "201"
    assert frame["attempts"].tolist() == ["1", "2", "6", "", "", ""]


def test_neutralise_rule() -> None:
    for text in ("=1+1", "+ 1", "-A1", "@x", "\t=1", "\rfoo", "-", "=", "'=x"):
        assert neutralise(text) == "'" + text
    for text in ("-5", "+3.25", "-1e5", "-0,5", "plain", "", "+1 425-555-0100", " =1", "a=b"):
        assert neutralise(text) == text


def test_real_numbers_are_not_touched(tmp_path: Path) -> None:
    sheet = Sheet(tmp_path / "s.xlsx", None, ("n", "f", "d", "b"),
                  (SheetRow(2, {"n": -5, "f": -2.5, "d": timedelta(hours=1, minutes=30),
                                "b": True}),))
    write_output(tmp_path / "o.xlsx", sheet, {}, summary(total_rows=1))
    write_output(tmp_path / "o.csv", sheet, {}, summary(total_rows=1))
    row = [c.value for c in openpyxl.load_workbook(tmp_path / "o.xlsx").worksheets[0][2]][:4]
    assert row[:2] == [-5, -2.5] and row[3] is True
    assert row[2] in (timedelta(hours=1, minutes=30), time(1, 30))
    with (tmp_path / "o.csv").open(encoding="utf-8-sig") as handle:
        assert next(csv.reader(handle)) and next(csv.reader(handle))[:4] == ["-5", "-2.5",
                                                                            "1:30:00", "TRUE"]


def test_odd_values(tmp_path: Path) -> None:
    aware = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
    long_text = "x" * 40_000
    sheet = Sheet(tmp_path / "s.xlsx", None, ("aware", "ctrl", "long", "nan", "list"),
                  (SheetRow(2, {"aware": aware, "ctrl": "bell\x07here", "long": long_text,
                                "nan": float("nan"), "list": ["=a", "b"]}),))
    write_output(tmp_path / "o.xlsx", sheet, {}, summary(total_rows=1))
    values = [c.value for c in openpyxl.load_workbook(tmp_path / "o.xlsx").worksheets[0][2]]
    assert values[0] == "2027-03-01T09:00:00+00:00"  # Excel has no zones: exact text
    assert values[1] == "bellhere"  # a control character would make the file unreadable
    assert len(values[2]) == report.EXCEL_MAX_CHARS and "truncated" in values[2]
    assert values[3] is None
    assert values[4] == "['=a', 'b']"
    write_output(tmp_path / "o.csv", sheet, {}, summary(total_rows=1))
    frame = pd.read_csv(tmp_path / "o.csv", dtype=str, keep_default_na=False,
                        encoding="utf-8-sig")
    assert frame["long"][0] == long_text and frame["ctrl"][0] == "bell\x07here"


def test_dry_run_adds_the_request_column(tmp_path: Path) -> None:
    sheet = make_sheet(tmp_path, name=None)
    request = 'POST /v1.0/users/{id of t@x}/onlineMeetings/createOrGet {"externalId": "e"}'
    outcomes = {row.number: RowOutcome(row.number, PLANNED, f"e{row.number}", request=request)
                for row in sheet.rows}
    write_output(tmp_path / "dry.xlsx", sheet, outcomes, summary(dry_run=True), dry_run=True)
    wb = openpyxl.load_workbook(tmp_path / "dry.xlsx")
    assert wb.sheetnames == ["Results", "Summary"]
    ws = wb["Results"]
    header = [c.value for c in ws[1]]
    assert header[-1] == REQUEST_COLUMN and header[:-1] == list(COLUMNS) + list(RESULT_COLUMNS)
    assert ws.cell(2, len(header)).value == request
    status = ws.cell(2, header.index("status") + 1)
    assert status.value == PLANNED
    assert status.fill.fgColor.rgb[-6:] == report.STATUS_COLOURS[PLANNED]


def test_rows_keep_input_order_whatever_the_outcome_order(tmp_path: Path) -> None:
    rows = tuple(SheetRow(n, {"CRN": f"{n:05d}"}) for n in range(2, 302))
    sheet = Sheet(tmp_path / "s.csv", None, ("CRN",), rows)
    outcomes = {n: RowOutcome(n, CREATED, f"e{n}", meeting(n), 201, attempts=1)
                for n in reversed(range(2, 302, 2))}
    write_output(tmp_path / "o.csv", sheet, outcomes, summary(total_rows=300))
    frame = pd.read_csv(tmp_path / "o.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert frame["CRN"].tolist() == [f"{n:05d}" for n in range(2, 302)]
    assert frame["externalId"].tolist() == [f"e{n}" if n % 2 == 0 else "" for n in range(2, 302)]
    assert set(frame["status"][1::2]) == {PENDING}


def test_hyperlinks_stop_at_excels_limit(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(report, "EXCEL_MAX_HYPERLINKS", 3)
    rows = tuple(SheetRow(n, {"CRN": str(n)}) for n in range(2, 7))
    sheet = Sheet(tmp_path / "s.xlsx", None, ("CRN",), rows)
    outcomes = {n: RowOutcome(n, CREATED, f"e{n}", meeting(n), 201, attempts=1)
                for n in range(2, 7)}
    write_output(tmp_path / "o.xlsx", sheet, outcomes, summary(total_rows=5, notes=()))
    wb = openpyxl.load_workbook(tmp_path / "o.xlsx")
    ws = wb.worksheets[0]
    col = [c.value for c in ws[1]].index("joinWebUrl") + 1
    links = [ws.cell(r, col).hyperlink for r in range(2, 7)]
    assert [bool(link) for link in links] == [True, True, True, False, False]
    assert ws.cell(6, col).value == f"{URL}&n=6"  # still there, as text
    notes = [r[1] for r in wb["Summary"].iter_rows(values_only=True) if r[0] == "Note"]
    assert notes and "the last 2 join URLs are plain text" in notes[0]


def test_a_summary_sheet_name_in_the_input_does_not_clash(tmp_path: Path) -> None:
    sheet = make_sheet(tmp_path, name="Summary")
    write_output(tmp_path / "o.xlsx", sheet, make_outcomes(), summary())
    assert openpyxl.load_workbook(tmp_path / "o.xlsx").sheetnames == ["Results", "Summary"]


def test_unsupported_output_name(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"\.xlsx or \.csv"):
        write_output(tmp_path / "o.ods", make_sheet(tmp_path), {}, summary())


def test_unwritable_output_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a folder should be")
    with pytest.raises(report.OutputError) as caught:
        write_output(tmp_path / "blocker" / "o.xlsx", make_sheet(tmp_path), {}, summary())
    assert "journal" in str(caught.value) and "run bulkmeet again" in str(caught.value)


class Exploding:
    """A cell value whose text cannot be made: the writer fails half-way through the file."""

    def __str__(self) -> str:
        raise RuntimeError("boom")


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_a_failed_write_keeps_the_previous_file(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"out{suffix}"
    sheet = make_sheet(tmp_path)
    write_output(out, sheet, make_outcomes(), summary())
    before = out.read_bytes()
    rows = sheet.rows + tuple(SheetRow(100 + i, {"CRN": "x"}) for i in range(600)) + (
        SheetRow(999, {"CRN": Exploding()}),)
    broken = Sheet(sheet.path, sheet.sheet_name, sheet.columns, rows)
    with pytest.raises(RuntimeError, match="boom"):
        write_output(out, broken, make_outcomes(), summary())
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temp files left


def test_output_fed_back_as_input(tmp_path: Path) -> None:
    from bulkmeet.sheets import read_sheet

    rows = (
        SheetRow(2, {"CRN": "00123", "Title": "Intro", "Date": datetime(2027, 3, 1),
                     "Start": time(9, 30), "Teacher": "t@x.example"}),
        SheetRow(3, {"CRN": "00124", "Title": "Lab", "Date": datetime(2027, 3, 2),
                     "Start": time(10, 0), "Teacher": None}),
    )
    columns = ("CRN", "Title", "Date", "Start", "Teacher")
    sheet = Sheet(tmp_path / "fall.xlsx", "Fall", columns, rows)
    outcomes = {2: RowOutcome(2, CREATED, "e2", meeting(2), 201, attempts=1),
                3: RowOutcome(3, FAILED, "e3", None, 403, "Forbidden", "rid", 6)}
    for suffix in (".xlsx", ".csv"):
        out = tmp_path / f"fall.results{suffix}"
        write_output(out, sheet, outcomes, summary(total_rows=2))
        again = read_sheet(out)
        assert again.columns == sheet.columns
        assert [r.number for r in again.rows] == [2, 3]
        if suffix == ".xlsx":
            assert [dict(r.values) for r in again.rows] == [dict(r.values) for r in rows]
            assert read_sheet(out, "Fall").columns == sheet.columns  # --sheet still works
        else:  # CSV has no types: the same text a person would type
            assert dict(again.rows[0].values) == {"CRN": "00123", "Title": "Intro",
                                                  "Date": "2027-03-01", "Start": "09:30",
                                                  "Teacher": "t@x.example"}


def test_neutralised_text_comes_back_unchanged(tmp_path: Path) -> None:
    from bulkmeet.sheets import read_sheet

    rows = (SheetRow(2, {"CRN": "1", "Title": "-Intro-", "Section": "+A"}),)
    sheet = Sheet(tmp_path / "s.xlsx", None, ("CRN", "Title", "Section"), rows)
    write_output(tmp_path / "o.xlsx", sheet, {}, summary(total_rows=1))
    assert dict(read_sheet(tmp_path / "o.xlsx").rows[0].values) == dict(rows[0].values)


# -- atomic writes -----------------------------------------------------------------------------

def test_atomic_write_replaces_and_sets_the_usual_mode(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old")
    os.chmod(target, 0o600)
    old_mask = os.umask(0o027)
    try:
        assert current_umask() == 0o027
        atomic_write(target, lambda f: f.write(b"new"))
    finally:
        os.umask(old_mask)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # 0644 minus the umask, not mkstemp's 0600
    atomic_write_bytes(tmp_path / "secret.json", b"token", mode=0o600)
    assert stat.S_IMODE((tmp_path / "secret.json").stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret.json", "state.json"]


def test_atomic_file_failure_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"previous")
    with pytest.raises(ValueError):
        with atomic_file(target) as handle:
            handle.write(b"half of the new")
            raise ValueError("crash mid-write")
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C mid-write too
        atomic_write(target, lambda f: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_atomic_write_creates_a_new_file(tmp_path: Path) -> None:
    with atomic_file(tmp_path / "new.txt") as handle:
        handle.write(b"hello")
        assert not (tmp_path / "new.txt").exists()  # nothing visible until the block ends
    assert (tmp_path / "new.txt").read_bytes() == b"hello"


def people_outcomes() -> dict[tuple[int, int], RowOutcome]:
    """Row 2 before the 2027-03-14 DST change, row 3 after it, row 5 a duplicate of row 2."""
    def info(n: int, start: str, end: str) -> MeetingInfo:
        return replace(meeting(n), start_utc=start, end_utc=end, subject=f"CS10{n}: Intro",
                       options_url=f"https://teams.example/meetingOptions/?n={n}",
                       toll_free_number="+1 800-555-0199")

    return {
        (2, 0): RowOutcome(2, CREATED, "ext-2", info(2, "2027-03-08T15:00:00.0000000Z",
                                                     "2027-03-08T16:15:00.0000000Z"), 201),
        (3, 0): RowOutcome(3, CREATED, "ext-3", info(3, "2027-03-15T14:00:00.0000000Z",
                                                     "2027-03-15T15:15:00.0000000Z"), 201),
        (5, 0): RowOutcome(5, DUPLICATE, "ext-2", error="Same externalId as row 2."),
    }


def test_local_times_subject_and_options_link_in_xlsx(tmp_path: Path) -> None:
    out = tmp_path / "out.xlsx"
    write_output(out, make_sheet(tmp_path), people_outcomes(), summary(),
                 time_zone="America/Chicago")
    ws = openpyxl.load_workbook(out).worksheets[0]
    header = [c.value for c in ws[1]]
    col = {name: header.index(name) + 1 for name in header}
    assert col["startLocal"] == col["startDateTimeUtc"] - 2  # beside the UTC columns
    # 9:00 wall time on both sides of the DST change; real date-time cells
    for r in (2, 3):
        start = ws.cell(r, col["startLocal"])
        assert start.is_date and start.number_format == "yyyy-mm-dd hh:mm"
        assert (start.value.hour, start.value.minute) == (9, 0)
        assert ws.cell(r, col["endLocal"]).value.time() == time(10, 15)
    assert ws.cell(2, col["startLocal"]).value == datetime(2027, 3, 8, 9, 0)
    assert ws.cell(2, col["meetingSubject"]).value == "CS102: Intro"
    options = ws.cell(2, col["meetingOptionsWebUrl"])
    assert options.hyperlink.target == "https://teams.example/meetingOptions/?n=2"
    assert ws.cell(2, col["tollFreeNumber"]).value == "+1 800-555-0199"
    summary_rows = dict(openpyxl.load_workbook(out)["Summary"].iter_rows(values_only=True))
    assert summary_rows["Local times (startLocal, endLocal)"] == "America/Chicago"


def test_rows_that_share_a_meeting_carry_its_link(tmp_path: Path) -> None:
    for name in ("out.xlsx", "out.csv"):
        write_output(tmp_path / name, make_sheet(tmp_path), people_outcomes(), summary(),
                     time_zone="America/Chicago")
    xlsx = openpyxl.load_workbook(tmp_path / "out.xlsx").worksheets[0]
    header = [c.value for c in xlsx[1]]
    link = xlsx.cell(4, header.index("joinWebUrl") + 1)  # sheet row 5 is the third line
    assert xlsx.cell(4, header.index("status") + 1).value == DUPLICATE
    assert link.hyperlink.target == f"{URL}&n=2"
    with (tmp_path / "out.csv").open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[2]["joinWebUrl"] == f"{URL}&n=2" and rows[2]["error"].startswith("Same externalId")
    assert rows[0]["startLocal"] == "2027-03-08 09:00" and rows[1]["startLocal"] == "2027-03-15 09:00"
