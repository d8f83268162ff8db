"""Reading real .xlsx and .csv files: values as typed, Excel's row numbers, clear refusals."""
from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from datetime import date, datetime, time
from pathlib import Path

import pytest
from openpyxl import Workbook

from bulkmeet.errors import ExitStatus, InputError
from bulkmeet.models import REQUEST_COLUMN, RESULT_COLUMNS
from bulkmeet.sheets import read_sheet


def xlsx(path: Path, rows: list[list[object]], title: str = "Schedule", formats: dict[str, str] | None = None,
         more_sheets: tuple[str, ...] = ()) -> Path:
    wb = Workbook()
    ws = wb.active
    ws.title = title
    for r in rows:
        ws.append(r)
    for coord, fmt in (formats or {}).items():
        ws[coord].number_format = fmt
    for name in more_sheets:
        other = wb.create_sheet(name)
        other.append(["other"])
        other.append([name])
    wb.save(path)
    return path


def values(sheet):
    return [(r.number, dict(r.values)) for r in sheet.rows]


def test_xlsx_values_are_kept_as_the_user_typed_them(tmp_path):
    path = xlsx(tmp_path / "s.xlsx", [
        ["CRN", "Note", "Date", "Start", "Count", "Ratio", "Flag", "Blank"],
        ["00123", "NA", datetime(2027, 3, 1), time(9, 0), 12345, 3.5, True, "   "],
        [12345.0, "N/A", date(2027, 3, 2), time(13, 30), 0, 1e20, False, None],
        ["  padded  ", "null", "3/3/2027", "9:00 AM", -7, 0.1, None, ""],
    ])
    sheet = read_sheet(path)
    assert sheet.columns == ("CRN", "Note", "Date", "Start", "Count", "Ratio", "Flag", "Blank")
    assert sheet.sheet_name == "Schedule"
    assert values(sheet) == [
        (2, {"CRN": "00123", "Note": "NA", "Date": datetime(2027, 3, 1), "Start": time(9, 0),
             "Count": "12345", "Ratio": "3.5", "Flag": "TRUE", "Blank": None}),
        (3, {"CRN": "12345", "Note": "N/A", "Date": datetime(2027, 3, 2), "Start": time(13, 30),
             "Count": "0", "Ratio": "1e+20", "Flag": "FALSE", "Blank": None}),
        (4, {"CRN": "padded", "Note": "null", "Date": "3/3/2027", "Start": "9:00 AM",
             "Count": "-7", "Ratio": "0.1", "Flag": None, "Blank": None}),
    ]


def test_blank_rows_are_skipped_but_counted_like_excel(tmp_path):
    path = xlsx(tmp_path / "s.xlsx", [["A", "B"], ["1", "x"], [], [None, "  "], ["2", "y"]])
    sheet = read_sheet(path)
    assert [r.number for r in sheet.rows] == [2, 5]


def test_title_rows_above_the_header_keep_the_numbering(tmp_path):
    path = xlsx(tmp_path / "s.xlsx", [[], [], ["CRN", "Course"], ["1", "CS 101"]])
    sheet = read_sheet(path)
    assert sheet.columns == ("CRN", "Course")
    assert [r.number for r in sheet.rows] == [4]


def _edit_first_sheet(path: Path, edit: Callable[[bytes], bytes]) -> None:
    """Rewrite the first worksheet's XML inside the .xlsx, as other programs save it."""
    src = zipfile.ZipFile(io.BytesIO(path.read_bytes()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = edit(data)
            dst.writestr(info, data)
    path.write_bytes(out.getvalue())


def test_a_wrong_dimension_tag_does_not_cut_rows_off(tmp_path):
    path = xlsx(tmp_path / "s.xlsx", [["A", "B"]] + [[str(i), "x"] for i in range(10)])

    def wrong_dimension(data: bytes) -> bytes:
        assert b'<dimension ref="A1:B11" />' in data
        return data.replace(b'<dimension ref="A1:B11" />', b'<dimension ref="A1" />')

    _edit_first_sheet(path, wrong_dimension)
    sheet = read_sheet(path)
    assert len(sheet.rows) == 10 and sheet.rows[-1].values == {"A": "9", "B": "x"}


def test_sheet_by_name_and_unknown_sheet_lists_the_others(tmp_path):
    path = xlsx(tmp_path / "s.xlsx", [["A"], ["1"]], title="Spring", more_sheets=("Fall",))
    assert read_sheet(path, "Fall").sheet_name == "Fall"
    assert read_sheet(path, "fall").sheet_name == "Fall"
    with pytest.raises(InputError) as err:
        read_sheet(path, "Summer")
    assert str(err.value) == (f"{path}: there is no worksheet named 'Summer'; the workbook has: "
                              "'Spring', 'Fall'.")
    assert err.value.exit_status == ExitStatus.UNUSABLE_INPUT


def test_output_columns_of_an_earlier_run_are_dropped(tmp_path):
    header = ["CRN", *RESULT_COLUMNS, REQUEST_COLUMN]
    row = ["1"] + ["x"] * (len(RESULT_COLUMNS) + 1)
    sheet = read_sheet(xlsx(tmp_path / "s.xlsx", [header, row]))
    assert sheet.columns == ("CRN",)
    assert sheet.rows[0].values == {"CRN": "1"}


def test_xlsm_is_read_too(tmp_path):
    path = xlsx(tmp_path / "s.xlsx", [["A"], ["1"]])
    macro = path.rename(tmp_path / "s.xlsm")
    assert read_sheet(macro).rows[0].values == {"A": "1"}


def test_duplicate_header_names_are_refused(tmp_path):
    path = xlsx(tmp_path / "s.xlsx", [["Date", "Course", "date"], ["1", "2", "3"]])
    with pytest.raises(InputError) as err:
        read_sheet(path)
    assert str(err.value).startswith(f"{path} (sheet 'Schedule'): two columns are named 'date' "
                                     "(columns A and C of row 1)")


def test_blank_header_over_data_is_refused_but_empty_unnamed_columns_are_ignored(tmp_path):
    ok = xlsx(tmp_path / "ok.xlsx", [["A", None, "C", None], ["1", None, "3", None]])
    assert read_sheet(ok).columns == ("A", "C")
    bad = xlsx(tmp_path / "bad.xlsx", [["A", None, "C"], ["1", None, "3"], ["1", "oops", "3"]])
    with pytest.raises(InputError) as err:
        read_sheet(bad)
    assert "column B has a value in row 3 but no name in the header row (1)" in str(err.value)
    beyond = xlsx(tmp_path / "beyond.xlsx", [["A"], ["1", "stray"]])
    with pytest.raises(InputError, match="column B has a value in row 2"):
        read_sheet(beyond)


def test_empty_and_header_only_sheets(tmp_path):
    with pytest.raises(InputError, match="the sheet is empty"):
        read_sheet(xlsx(tmp_path / "e.xlsx", []))
    with pytest.raises(InputError, match=r"has column names \(row 1\) but no rows"):
        read_sheet(xlsx(tmp_path / "h.xlsx", [["A", "B"], [None, "  "]]))


def test_unusable_files_get_one_sentence_starting_with_the_path(tmp_path):
    missing = tmp_path / "nope.xlsx"
    with pytest.raises(InputError) as err:
        read_sheet(missing)
    assert str(err.value) == f"{missing}: schedule file not found."

    old = tmp_path / "old.xls"
    old.write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(InputError) as err:
        read_sheet(old)
    assert str(err.value).startswith(f"{old}: bulkmeet reads .xlsx, .xlsm or .csv files, not '.xls'.")
    assert "save it as .xlsx" in str(err.value)

    fake = tmp_path / "fake.xlsx"
    fake.write_text("CRN,Course\n1,CS\n")
    with pytest.raises(InputError) as err:
        read_sheet(fake)
    assert str(err.value).startswith(f"{fake}: not a readable Excel workbook")

    renamed = tmp_path / "renamed.csv"
    renamed.write_bytes(xlsx(tmp_path / "r.xlsx", [["A"], ["1"]]).read_bytes())
    with pytest.raises(InputError, match="Excel workbook with a .csv name"):
        read_sheet(renamed)

    folder = tmp_path / "dir.csv"
    folder.mkdir()
    with pytest.raises(InputError, match="is a folder"):
        read_sheet(folder)


# --- CSV -----------------------------------------------------------------------------------------

def test_csv_utf8_bom_text_stays_text(tmp_path):
    path = tmp_path / "s.csv"
    path.write_bytes("\ufeffCRN,Title,Note,Empty\r\n00123,Análisis – I,NA,\r\n".encode("utf-8"))
    sheet = read_sheet(path)
    assert sheet.sheet_name is None
    assert sheet.columns == ("CRN", "Title", "Note", "Empty")
    assert values(sheet) == [(2, {"CRN": "00123", "Title": "Análisis – I", "Note": "NA", "Empty": None})]


def test_csv_from_excel_in_windows_1252(tmp_path):
    path = tmp_path / "s.csv"
    path.write_bytes("CRN;Title\r\n1;Análisis – Señal\r\n".encode("cp1252"))
    sheet = read_sheet(path)
    assert sheet.rows[0].values == {"CRN": "1", "Title": "Análisis – Señal"}


def test_csv_delimiters_are_sniffed_from_the_header_line(tmp_path):
    tab = tmp_path / "t.csv"
    tab.write_text("CRN\tTitle, with comma\n1\tA; B\n")
    assert read_sheet(tab).rows[0].values == {"CRN": "1", "Title, with comma": "A; B"}
    semi = tmp_path / "s.csv"
    semi.write_text('"a,b";c;d\n1;2;3\n')
    assert read_sheet(semi).columns == ("a,b", "c", "d")


def test_csv_row_numbers_count_records_and_blank_lines(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text('A,B\n1,"two\nlines"\n\n,\n2,x\n', newline="")
    sheet = read_sheet(path)
    assert [(r.number, r.values["A"]) for r in sheet.rows] == [(2, "1"), (5, "2")]
    assert sheet.rows[0].values["B"] == "two\nlines"


def test_csv_refusals(tmp_path):
    utf16 = tmp_path / "u.csv"
    utf16.write_bytes("A,B\n1,2\n".encode("utf-16"))
    with pytest.raises(InputError, match="UTF-16"):
        read_sheet(utf16)
    undefined = tmp_path / "x.csv"
    undefined.write_bytes(b"A,B\n1,\x81\x8d\n")
    with pytest.raises(InputError, match="neither UTF-8 nor Windows-1252"):
        read_sheet(undefined)
    with pytest.raises(InputError, match="no worksheets"):
        read_sheet(tmp_path / "x.csv", "Sheet1")


def test_the_quote_the_output_sheet_puts_before_formulas_is_removed_on_reading(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("A,B,C,D,E\n'=SUM(A1),'-Intro-,'-5,'quoted,'@x\n", encoding="utf-8")
    assert read_sheet(path).rows[0].values == {"A": "=SUM(A1)", "B": "-Intro-", "C": "'-5",
                                               "D": "'quoted", "E": "@x"}


# --- hostile files (issue 12): cells that cannot be trusted, odd workbooks, broken CSV ----------

def test_a_formula_without_a_saved_value_is_a_problem_of_that_cell_only(tmp_path):
    path = xlsx(tmp_path / "f.xlsx", [["CRN", "Title"], ["1", "=CONCAT(\"a\",\"b\")"], ["2", "ok"]])
    sheet = read_sheet(path)
    first, second = sheet.rows
    assert first.values == {"CRN": "1", "Title": None}
    assert first.problems == (("Title", "holds a formula (cell B2) with no saved result: the "
                               "file was written by a program and never saved in Excel, so the "
                               "value is unknown; open the file in Excel and save it (or export "
                               "values only), then run again"),)
    assert second.problems == ()


def test_merged_cells_are_reported_as_merged_not_missing(tmp_path):
    path = tmp_path / "m.xlsx"
    wb = Workbook()
    ws = wb.active
    for r in (["CRN", "Teacher", "Title"], ["1", "t@x.example", "A"], ["2", None, "B"],
              ["3", None, "C"]):
        ws.append(r)
    ws.merge_cells("B2:B4")
    wb.save(path)
    rows = read_sheet(path).rows
    assert rows[0].problems == ()
    assert [r.problems[0][0] for r in rows[1:]] == ["Teacher", "Teacher"]
    assert rows[1].problems[0][1].startswith("is part of the merged cells B2:B4, so only B2 "
                                             "holds the value")


def test_a_chart_sheet_in_front_is_skipped(tmp_path):
    from openpyxl.chart import BarChart, Reference

    path = tmp_path / "c.xlsx"
    wb = Workbook()
    ws = wb.active
    ws.title = "Data"
    ws.append(["CRN", "Title"])
    ws.append(["1", "x"])
    chart = BarChart()
    chart.add_data(Reference(ws, min_col=1, min_row=1, max_row=2))
    wb.create_chartsheet("Chart", 0).add_chart(chart)
    wb.save(path)
    sheet = read_sheet(path)
    assert sheet.sheet_name == "Data" and sheet.columns == ("CRN", "Title")
    with pytest.raises(InputError, match="'Chart' is a chart sheet"):
        read_sheet(path, "Chart")


def test_a_date_serial_beyond_the_calendar_reads_as_an_error_value_quietly(tmp_path, capfd):
    path = xlsx(tmp_path / "d.xlsx", [["CRN", "Date"], ["1", 99_999_999]], formats={"B2": "yyyy-mm-dd"})
    assert read_sheet(path).rows[0].values["Date"] == "#VALUE!"
    assert capfd.readouterr().err == ""  # openpyxl's warning never reaches the terminal


def test_title_rows_above_the_header_are_found(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("Spring 2027 schedule,,,,\nexported 2027-01-05,by registrar,,,\n"
                    "CRN,Course,Title,Teacher,Date\n1,CS,Intro,t@x.example,3/1/2027\n")
    sheet = read_sheet(path)
    assert sheet.columns == ("CRN", "Course", "Title", "Teacher", "Date")
    assert [r.number for r in sheet.rows] == [4]


@pytest.mark.parametrize("data, message", [
    (b"A,B,C\n1,\"x,3\n2,y,3\n3,z,3\n", "line 2: the quote (\") that opens the value in column B "
                                        "is not closed where that value should end"),
    (b"A,B,C\n1,x,3\n2,\"y\n", "line 3: the quote (\") that opens the value in column B"),
    ("A,B\n1,Café\n".encode() + "2,Résumé\n".encode("cp1252"), "line 3 is not UTF-8 (byte 0xE9)"),
    (b"A,B\n1,\x81\n", "line 2 (byte 0x81 at position 3) is neither UTF-8 nor Windows-1252"),
    ("A,B\n1,x\n".encode("utf-16-le"), "this looks like UTF-16 text"),
    ("A,B\n1,x\n".encode("utf-16"), "this looks like UTF-16 text"),
])
def test_broken_csv_is_refused_naming_the_line(tmp_path, data, message):
    path = tmp_path / "b.csv"
    path.write_bytes(data)
    with pytest.raises(InputError) as err:
        read_sheet(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_a_cell_longer_than_the_csv_modules_limit_is_read(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("A,B\n1," + "x" * 300_000 + "\n2,y\n")
    rows = read_sheet(path).rows
    assert len(rows[0].values["B"]) == 300_000 and rows[1].values["B"] == "y"


def test_a_fifo_is_refused_without_opening_it(tmp_path):
    import os

    path = tmp_path / "p.csv"
    os.mkfifo(path)
    with pytest.raises(InputError, match="is a FIFO"):
        read_sheet(path)  # would block for ever if it were opened


def test_a_formula_whose_saved_result_is_empty_is_an_empty_cell_not_a_problem(tmp_path):
    # What Excel saves for =IF(A2="","",A2): the formula and an empty cached string value.
    path = xlsx(tmp_path / "e.xlsx", [["CRN", "Section", "Title"], ["1", "x", "T"]])

    def empty_formula_result(data: bytes) -> bytes:
        start = data.index(b'<c r="B2"')
        end = data.index(b"</c>", start) + 4
        return data[:start] + b'<c r="B2" t="str"><f>IF(A2="","",A2)</f><v></v></c>' + data[end:]

    _edit_first_sheet(path, empty_formula_result)
    (row,) = read_sheet(path).rows
    assert row.values["Section"] is None and row.problems == ()
