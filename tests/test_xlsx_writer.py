"""bulkmeet's own .xlsx writer: the files it makes are well-formed, open in openpyxl and pandas,
and every value reads back exactly (text, numbers, dates, links, colours)."""
from __future__ import annotations

import zipfile
from datetime import datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from xml.etree import ElementTree

import openpyxl
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkmeet.cells import neutralise
from bulkmeet.models import CANCELLED, CREATED, ORPHANED, MeetingInfo, RowOutcome, Sheet, SheetRow
from bulkmeet.report import STATUS_COLOURS, RunSummary, write_output
from bulkmeet.sheets import read_sheet
from bulkmeet.sync import RemovedMeeting
from bulkmeet.xlsxcells import excel_serial, xlsx_text

SUMMARY = RunSummary("s", "o", "", "", 1, 0, 0, 0, 0, 0)


def _write(folder: Path, columns: tuple[str, ...], rows: list[dict], name: str | None = None,
           **kw) -> Path:
    sheet = Sheet(folder / "s.xlsx", name, columns,
                  tuple(SheetRow(n, values) for n, values in enumerate(rows, start=2)))
    out = folder / "o.xlsx"
    write_output(out, sheet, kw.pop("outcomes", {}), SUMMARY, **kw)
    return out


# Text a sheet may hold: XML's specials, white space at the ends, CR/LF/tab, Excel's own
# _xHHHH_ escapes, quotes, non-BMP characters, and characters XML cannot carry at all.
_PIECES = [*"&<>\"' \t\r\n=+-@ab_x0D", "_x000D_", "\u00e9", "\U0001f600", "\x07", "\x00",
           "\ufffe", "]]>", "\u2028"]
_NASTY = st.lists(st.sampled_from(_PIECES), max_size=12).map("".join)


@settings(max_examples=30, deadline=None)
@given(st.lists(_NASTY, min_size=1, max_size=5))
def test_any_text_reads_back_exactly_as_the_cell_holds_it(tmp_path_factory, cells: list[str]
                                                           ) -> None:
    folder = tmp_path_factory.mktemp("text")
    columns = tuple(f"C{i}" for i in range(len(cells)))
    out = _write(folder, ("Key", *columns), [{"Key": "k", **dict(zip(columns, cells, strict=True))}])
    ws = openpyxl.load_workbook(out, read_only=True).worksheets[0]
    row = next(ws.iter_rows(min_row=2, max_row=2, values_only=True))
    expected = [xlsx_text(c) or None for c in cells]  # illegal characters dropped, neutralised
    assert list(row[1:len(cells) + 1]) == expected
    again = read_sheet(out).rows[0].values  # and bulkmeet reads its input back
    for column, text in zip(columns, cells, strict=True):
        if text == text.strip() and xlsx_text(text) == neutralise(text):  # nothing dropped
            assert again.get(column) == (text or None), (column, text)


@given(st.one_of(st.text(st.sampled_from("'=+-@\t\r 0123456789.,eE()|!ACmd"), max_size=12),
                 st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF), max_size=12),
                 _NASTY.map(lambda t: t.replace("\x07", "").replace("\x00", "")
                            .replace("\ufffe", ""))))
def test_the_fast_path_of_xlsx_text_is_the_neutralise_rule(text: str) -> None:
    assert xlsx_text(text) == neutralise(text)  # for text XML can carry as it is


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.datetimes(), st.dates(), st.times(), st.timedeltas()))
def test_excel_serials_are_openpyxls_to_the_last_bit(value) -> None:
    """Our serial (openpyxl is not imported for it) is the float openpyxl writes and reads."""
    from openpyxl.utils.datetime import to_excel

    assert excel_serial(value).hex() == float(to_excel(value)).hex()


def test_the_theme_part_is_openpyxls_default_theme_byte_for_byte(tmp_path: Path) -> None:
    from openpyxl.writer.theme import theme_xml

    with zipfile.ZipFile(_write(tmp_path, ("a",), [{"a": "x"}])) as z:
        assert z.read("xl/theme/theme1.xml") == theme_xml.encode("utf-8")


def test_numbers_dates_and_durations_keep_their_types_and_values(tmp_path: Path) -> None:
    values = {"f": 0.1 + 0.2, "tiny": 1e-300, "big": 2**53 + 1, "neg": -7, "b": False,
              "dec": Decimal("2.5"), "early": datetime(1900, 1, 15, 6, 0),
              "when": datetime(2027, 3, 1, 9, 30, 15, 500000), "t": time(23, 59, 59),
              "d": timedelta(hours=26, minutes=5), "inf": float("inf")}
    out = _write(tmp_path, tuple(values), [values])
    ws = openpyxl.load_workbook(out).worksheets[0]
    got = {ws.cell(1, c).value: ws.cell(2, c) for c in range(1, len(values) + 1)}
    assert got["f"].value == 0.1 + 0.2  # every digit: repr, not %.16g
    assert got["tiny"].value == 1e-300 and got["big"].value == 2**53 + 1
    assert got["neg"].value == -7 and got["b"].value is False and got["b"].data_type == "b"
    assert got["dec"].value == 2.5
    assert got["early"].value == datetime(1900, 1, 15, 6, 0)  # Excel's 1900 leap-year quirk
    assert got["when"].value == datetime(2027, 3, 1, 9, 30, 15, 500000)
    assert got["when"].number_format == "yyyy-mm-dd hh:mm:ss"
    assert got["t"].value == time(23, 59, 59) and got["t"].number_format == "hh:mm:ss"
    assert got["d"].value == timedelta(hours=26, minutes=5)
    assert got["d"].number_format == "[hh]:mm:ss"
    assert got["inf"].value == "inf" and got["inf"].data_type == "s"


def test_every_part_is_well_formed_and_listed(tmp_path: Path) -> None:
    removed = [RemovedMeeting("t@x.example", "e1", "m1", "Gone & <done>", None, None,
                              "https://teams.example/l/1?a=1&b=2")]
    out = _write(tmp_path, ("A",), [{"A": "x"}], name="O'Brien & Co", removed=removed)
    with zipfile.ZipFile(out) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        for name in names:
            if name.endswith((".xml", ".rels")):
                ElementTree.fromstring(archive.read(name))  # strict: raises on a bad part
        types = archive.read("[Content_Types].xml").decode()
        assert all(f'PartName="/{n}"' in types for n in names
                   if n.startswith("xl/") and n.endswith(".xml"))
        assert not any(i.extra for i in archive.infolist())  # no Zip64 records needed
    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames == ["O'Brien & Co", "Summary", "Removed"]
    ws = wb.worksheets[0]
    last = openpyxl.utils.get_column_letter(ws.max_column)
    assert ws.auto_filter.ref == f"A1:{last}2" and ws.freeze_panes == "A2"
    workbook = zipfile.ZipFile(out).read("xl/workbook.xml").decode()
    assert f"'O''Brien &amp; Co'!$A$1:${last}$2</definedName>" in workbook


def test_removed_sheet_has_its_colours_links_and_bold_header(tmp_path: Path) -> None:
    removed = [RemovedMeeting("t@x.example", f"e{i}", f"m{i}", "Old", "2027-03-01T14:00:00Z",
                              "2027-03-01T15:00:00Z", f"https://teams.example/l/{i}", status,
                              "row removed") for i, status in enumerate((ORPHANED, CANCELLED))]
    out = _write(tmp_path, ("A",), [{"A": "x"}], removed=removed)
    ws = openpyxl.load_workbook(out)["Removed"]
    assert [c.value for c in ws[1]][:2] == ["status", "organizer"] and ws["A1"].font.b
    assert ws.freeze_panes == "A2"
    assert [ws.cell(r, 1).fill.fgColor.rgb[-6:] for r in (2, 3)] == [
        STATUS_COLOURS[ORPHANED], STATUS_COLOURS[CANCELLED]]
    assert [ws.cell(r, 5).hyperlink.target for r in (2, 3)] == [
        "https://teams.example/l/0", "https://teams.example/l/1"]


def test_links_look_like_links_and_the_header_like_a_header(tmp_path: Path) -> None:
    meeting = MeetingInfo("m", join_url="https://teams.example/l/x?a=1&b=<2>")
    out = _write(tmp_path, ("A",), [{"A": "x"}],
                 outcomes={2: RowOutcome(2, CREATED, "e", meeting, 201)})
    ws = openpyxl.load_workbook(out).worksheets[0]
    header = [c.value for c in ws[1]]
    link = ws.cell(2, header.index("joinWebUrl") + 1)
    assert link.hyperlink.target == link.value == "https://teams.example/l/x?a=1&b=<2>"
    assert link.font.u == "single" and link.style == "Hyperlink"
    assert ws["A1"].font.b and ws["A1"].fill.fgColor.rgb[-6:] == "F2F2F2"
    assert ws["A1"].alignment.vertical == "center"
    status = ws.cell(2, header.index("status") + 1)
    assert status.value == CREATED and status.fill.fgColor.rgb[-6:] == STATUS_COLOURS[CREATED]


def test_pandas_reads_the_results_sheet(tmp_path: Path) -> None:
    rows = [{"CRN": f"{n:05d}", "Date": datetime(2027, 3, 1 + n), "Note": None if n else "&"}
            for n in range(3)]
    out = _write(tmp_path, ("CRN", "Date", "Note"), rows)
    frame = pd.read_excel(out, dtype=object)
    assert frame["CRN"].tolist() == ["00000", "00001", "00002"]
    assert frame["Date"].tolist() == [datetime(2027, 3, 1 + n) for n in range(3)]
    assert frame["Note"].tolist()[0] == "&" and pd.isna(frame["Note"].tolist()[1])
    assert frame["status"].tolist() == ["pending"] * 3
    assert pd.read_excel(out, sheet_name="Summary", header=None)[0].tolist()[0] == "Result"


@pytest.mark.skipif(not any(Path(d, "soffice").exists() for d in ("/usr/bin", "/usr/local/bin")),
                    reason="LibreOffice is not installed")
def test_libreoffice_opens_it(tmp_path: Path) -> None:
    import subprocess

    out = _write(tmp_path, ("CRN", "Date"), [{"CRN": "00123", "Date": datetime(2027, 3, 1)}])
    done = subprocess.run(["soffice", "--headless", "--convert-to", "csv", "--outdir",
                           str(tmp_path / "lo"), str(out)], capture_output=True, text=True,
                          timeout=120, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "lo" / "o.csv").read_text()
    assert text.startswith("CRN,Date,") and "\n00123,2027-03-01," in text
