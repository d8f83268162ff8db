"""The one formula-neutralising rule (``bulkmeet.cells``): writer and reader are exact inverses."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkmeet.cells import column_letter, is_phone_number, neutralise, printable, unneutralise
from bulkmeet.models import Sheet, SheetRow
from bulkmeet.report import RunSummary, write_output
from bulkmeet.sheets import read_sheet

# Text biased towards the characters the rule looks at, plus anything else.
_EDGY = st.text(alphabet=st.sampled_from("'=+-@\t\r 0123456789.,eE()|!ACmd"), max_size=12)
_TEXT = st.one_of(_EDGY, st.text(max_size=30))


@given(_TEXT)
def test_unneutralise_undoes_neutralise_exactly(text: str) -> None:
    assert unneutralise(neutralise(text)) == text


@given(_TEXT)
def test_neutralised_text_never_starts_like_a_formula(text: str) -> None:
    out = neutralise(text)
    if out[:1] in ("=", "+", "-", "@", "\t", "\r"):
        # only numbers and phone numbers may keep a formula start
        assert out == text
        assert is_phone_number(text) or text.lstrip("+-").replace(".", "").replace(",", "") \
            .replace("e", "").replace("E", "").replace("+", "").replace("-", "").isdigit()


@pytest.mark.parametrize("text", [
    "=HYPERLINK(\"http://x.example\",\"click\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A2)",
    "=1+1", "+1+2", "+1 425-555-0100+cmd|x", "+(425) 555-0100", "+1 425 555 0100 ext 12",
    "+1 23", "+1 234 567 890 123 456", "\t=1", "\rx", "-", "'=x", "''+cmd|x",
])
def test_formula_like_text_is_protected(text: str) -> None:
    assert neutralise(text) == "'" + text


@pytest.mark.parametrize("text", [
    "+1 425-555-0100", "+44 20 7946 0958", "+44 (20) 7946 0958", "+1-425-555-0100",
    "+33.1.23.45.67.89", "+14255550100", "-5", "+3.25", "1e5", "plain", "", "'quoted", "a=b",
])
def test_numbers_phone_numbers_and_plain_text_stay_as_typed(text: str) -> None:
    assert neutralise(text) == text
    assert unneutralise(text) == text


def test_a_phone_number_is_written_as_plain_text_in_both_formats(tmp_path: Path) -> None:
    rows = (SheetRow(2, {"Phone": "+1 425-555-0100", "Evil": "=HYPERLINK(\"x\")"}),)
    sheet = Sheet(tmp_path / "s.xlsx", None, ("Phone", "Evil"), rows)
    summary = RunSummary("s", "o", "", "", 1, 0, 0, 0, 0, 0)
    write_output(tmp_path / "o.csv", sheet, {}, summary)
    text = (tmp_path / "o.csv").read_text(encoding="utf-8-sig")
    assert "\n+1 425-555-0100,\"'=HYPERLINK" in text
    write_output(tmp_path / "o.xlsx", sheet, {}, summary)
    from openpyxl import load_workbook

    ws = load_workbook(tmp_path / "o.xlsx", read_only=True).worksheets[0]
    first = next(ws.iter_rows(min_row=2, max_row=2, values_only=True))
    assert first[:2] == ("+1 425-555-0100", "'=HYPERLINK(\"x\")")


_CELL = st.text(alphabet=st.sampled_from("'=+-@ 0123456789.abc()|"), min_size=1, max_size=10) \
    .map(str.strip).filter(bool)


def _reads_back(folder: Path, cells: list[str], ext: str) -> None:
    """Cells written to an output sheet of type ``ext`` read back as the input that had them."""
    columns = tuple(f"C{i}" for i in range(len(cells)))
    rows = (SheetRow(2, dict(zip(columns, cells, strict=True))),)
    sheet = Sheet(folder / f"s.{ext}", None, columns, rows)
    write_output(folder / f"o.{ext}", sheet, {}, RunSummary("s", "o", "", "", 1, 0, 0, 0, 0, 0))
    again = read_sheet(folder / f"o.{ext}")
    assert dict(again.rows[0].values) == dict(rows[0].values)


@settings(max_examples=25, deadline=None)
@given(st.lists(_CELL, min_size=1, max_size=6))
def test_an_output_csv_reads_back_as_its_input(tmp_path_factory, cells: list[str]) -> None:
    _reads_back(tmp_path_factory.mktemp("rt"), cells, "csv")


@settings(max_examples=8, deadline=None)
@given(st.lists(_CELL, min_size=1, max_size=4))
def test_an_output_xlsx_reads_back_as_its_input(tmp_path_factory, cells: list[str]) -> None:
    _reads_back(tmp_path_factory.mktemp("rtx"), cells, "xlsx")


def test_column_letter_names_columns_as_excel_and_openpyxl_do() -> None:
    from openpyxl.utils import get_column_letter

    assert [column_letter(i) for i in (0, 25, 26, 51, 701, 702)] == [
        "A", "Z", "AA", "AZ", "ZZ", "AAA"]
    assert all(column_letter(i) == get_column_letter(i + 1) for i in range(0, 18278, 7))  # to ZZZ


def test_printable_escapes_terminal_control_sequences() -> None:
    osc = "\x1b]0;pwned\x07Intro"
    assert printable(osc) == "\\x1b]0;pwned\\x07Intro"
    assert printable("a\x00b\x9bc\u202ed") == "a\\x00b\\x9bc\\u202ed"
    assert printable("Café – ok") == "Café – ok"
