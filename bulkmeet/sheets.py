"""Read a schedule sheet (.xlsx/.xlsm or .csv) into rows of plain values, as the user sees them.

What a value is after reading:

* text stays text exactly as typed, stripped of surrounding spaces: "00123" stays "00123", and
  "NA", "N/A", "null" are text, not missing values;
* an empty cell (or one holding only spaces) is ``None``;
* Excel date cells are ``datetime`` (a date-only cell is a ``datetime`` at midnight), time cells are
  ``time``, duration cells ``timedelta``;
* numbers typed into Excel cells become the text Excel shows for them in General format: a CRN
  12345 is "12345" (not "12345.0"); booleans are "TRUE"/"FALSE";
* the ``'`` bulkmeet's output sheet adds before formula-like text (``'=...``, ``'-Intro-``) is
  removed again, so an output sheet reads back as its input.

Row numbers are Excel's (header = row 1, first data row = 2), also for CSV; fully empty rows are
skipped but still counted, so "row 17" in a message is row 17 on screen. The header is the first
row that names most of the columns (``_find_header``): a title row or a "generated on" line above
it is skipped, and the numbering still follows the file.

The format-specific work is in ``csv_reader`` (encodings, quotes) and ``xlsx_reader`` (workbooks,
formulas without a saved value, merged cells); cells the Excel reader cannot trust come back as
``SheetRow.problems``, which the planner turns into an invalid row when it uses that column.

Why not ``pandas.read_excel``/``read_csv``: for .xlsx pandas drives the same openpyxl read-only
reader and then copies every cell into a DataFrame that we would turn back into Python values
(measured on 100,000 x 12: 20 % slower, 40 % more memory), and both readers hide blank rows, which
breaks the row numbering users rely on. The stdlib ``csv`` module keeps every field a ``str``
and never guesses missing values. Columns bulkmeet writes into its own output sheet
(``models.RESULT_COLUMNS``, ``models.REQUEST_COLUMN``) are dropped, so an output sheet can be fed
back in as the next input.
"""
from __future__ import annotations

import gc
import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from bulkmeet.cells import column_letter, printable, unneutralise
from bulkmeet.csv_reader import csv_records
from bulkmeet.errors import InputError
from bulkmeet.models import REQUEST_COLUMN, RESULT_COLUMNS, Sheet, SheetRow
from bulkmeet.paths import check_readable_file
from bulkmeet.xlsx_reader import Issues, open_worksheet

EXCEL_SUFFIXES = (".xlsx", ".xlsm")
CSV_SUFFIXES = (".csv",)
SUPPORTED = ".xlsx, .xlsm or .csv"
_IGNORED = frozenset(RESULT_COLUMNS) | {REQUEST_COLUMN}


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small acyclic objects.

    With a million cell values alive, every full collection walks all of them again: pausing it
    made reading 100,000 rows 28 % faster and planning them 40 % faster. Reference counting
    still frees memory meanwhile; any cycles are collected once the collector is back on.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_sheet(path: Path, sheet_name: str | None = None) -> Sheet:
    """Read the whole sheet; raises ``InputError`` (one sentence starting with the path)."""
    with paused_gc():
        return _read_sheet(Path(path), sheet_name)


def _read_sheet(path: Path, sheet_name: str | None) -> Sheet:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in EXCEL_SUFFIXES + CSV_SUFFIXES:
        extra = (" Open it in Excel and save it as .xlsx (Excel Workbook)."
                 if suffix in (".xls", ".ods", ".numbers", ".xlsb") else "")
        raise InputError(f"{path}: bulkmeet reads {SUPPORTED} files, not '{suffix or 'no extension'}'.{extra}")
    check_readable_file(path, "schedule file")  # a FIFO would hang, a device mislead
    if suffix in CSV_SUFFIXES:
        if sheet_name:
            raise InputError(f"{path}: a CSV file has no worksheets, so --sheet '{sheet_name}' "
                             "cannot be used with it.")
        return _build_sheet(path, None, _csv_rows(path))
    return _read_excel(path, sheet_name)


# --- CSV -----------------------------------------------------------------------------------------

def _csv_rows(path: Path) -> Iterator[tuple[int, Sequence[Any]]]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the file ({exc.strerror}).") from None
    if data.startswith(b"PK\x03\x04"):
        raise InputError(f"{path}: this is an Excel workbook with a .csv name; rename it to .xlsx.")
    return csv_records(path, data)


# --- Excel ---------------------------------------------------------------------------------------

def _read_excel(path: Path, sheet_name: str | None) -> Sheet:
    with open_worksheet(path, sheet_name) as ws:
        # Streamed: each row tuple is turned into bulkmeet values and dropped at once.
        return _build_sheet(path, ws.title, ws.rows, ws.issues)


# --- values --------------------------------------------------------------------------------------

def _number_text(value: float) -> str:
    """What Excel shows for a number in General format, near enough for ids and counts."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def _unneutralise(value: str) -> str | None:
    """Undo the ``'`` that bulkmeet's output sheet puts before formula-like text (``'=x``,
    ``'-Intro-``), so an output sheet fed back in reads as the original input. The rule is
    ``cells.unneutralise``, the exact inverse of what the writer does."""
    return unneutralise(value).strip() or None


def cell_value(value: Any) -> Any:
    """A raw cell (openpyxl or csv) as a bulkmeet value: str | datetime | time | timedelta | None."""
    if value is None:
        return None
    cls = type(value)
    if cls is str:
        value = value.strip()
        if value[:1] == "'":
            return _unneutralise(value)
        return value or None
    if cls is int:
        return str(value)
    if cls is float:
        return _number_text(value)
    if cls is bool:
        return "TRUE" if value else "FALSE"
    if isinstance(value, (datetime, time, timedelta)):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time(0))
    text = str(value).strip()  # Decimal, error cells (#N/A arrive as text) ...
    return text or None


def _header_name(value: Any) -> str | None:
    v = cell_value(value)
    if v is None:
        return None
    if isinstance(v, str):
        return " ".join(v.split())
    if isinstance(v, datetime) and v.time() == time(0):
        return v.date().isoformat()
    return str(v)


_HEADER_LOOKAHEAD = 10  # non-empty rows looked at to tell title rows from the header


def _filled(raw: Sequence[Any]) -> int:
    return sum(1 for v in raw if cell_value(v) is not None)


def _find_header(raw_rows: Iterator[tuple[int, Sequence[Any]]]
                 ) -> tuple[int, Sequence[Any], Iterator[tuple[int, Sequence[Any]]]]:
    """(header row number, header cells, the rows after it); (0, (), ...) for an empty sheet.

    The header is the first row naming at least half as many columns as the widest of the
    first few rows: a title ("Spring 2027 schedule") or a "generated on" line above it names
    one or two, and data cells never outnumber the names above them.
    """
    peeked: list[tuple[int, Sequence[Any], int]] = []
    for number, raw in raw_rows:
        filled = _filled(raw)
        peeked.append((number, raw, filled))
        if filled and sum(1 for p in peeked if p[2]) >= _HEADER_LOOKAHEAD:
            break
    non_empty = [p for p in peeked if p[2]]
    if not non_empty:
        return 0, (), iter(())
    widest = max(p[2] for p in non_empty)
    need = (widest + 1) // 2 if widest >= 4 else 1  # narrow sheets: the first row, as typed
    at = next(i for i, p in enumerate(peeked) if p[2] >= need)
    number, header, _ = peeked[at]
    rest = ((n, r) for n, r, _ in peeked[at + 1:])
    return number, header, itertools.chain(rest, raw_rows)


def _column_names(where: str, header: Sequence[Any], header_number: int) -> list[str | None]:
    names = [_header_name(v) for v in header]
    while names and names[-1] is None:
        names.pop()
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name is None:
            continue
        key = name.casefold()
        if key in seen:
            first = seen[key]
            raise InputError(
                f"{where}: two columns are named '{printable(name)}' (columns "
                f"{column_letter(first)} and {column_letter(i)} of row {header_number}); "
                "rename one so every column name is unique.")
        seen[key] = i
    return names


def _row_problems(keep: Sequence[tuple[int, str]], values: dict[str, Any],
                  ranges: Sequence[tuple[int, int, str]]) -> tuple[tuple[str, str], ...]:
    """(column, message) for the cells of one row the Excel reader flagged (see xlsx_reader)."""
    out = []
    for i, name in keep:
        for first, last, message in ranges:
            if first <= i <= last and values.get(name) is None:
                out.append((name, message))
                break
    return tuple(out)


def _build_sheet(path: Path, sheet_name: str | None, raw_rows: Iterator[tuple[int, Sequence[Any]]],
                 issues: Issues | None = None) -> Sheet:
    where = f"{path}" + (f" (sheet '{sheet_name}')" if sheet_name else "")
    header_number, header, raw_rows = _find_header(raw_rows)
    if not header_number:
        raise InputError(f"{where}: the sheet is empty; the first row should hold column names "
                         "(CRN, Course, Date, ...) and the rows below it the classes.")
    names = _column_names(where, header, header_number)
    # (index, name) of the columns we keep; results of an earlier bulkmeet run are dropped.
    keep = [(i, n) for i, n in enumerate(names) if n is not None and n not in _IGNORED]
    blank = [i for i, n in enumerate(names) if n is None]
    width = len(names)
    issues = issues or {}

    rows: list[SheetRow] = []
    append = rows.append
    conv = cell_value
    for number, raw in raw_rows:
        values = {}
        empty = True
        n_raw = len(raw)
        for i, name in keep:
            v = conv(raw[i]) if i < n_raw else None
            if v is not None:
                empty = False
            values[name] = v
        if n_raw > width or blank:
            _check_stray(where, raw, blank, width, number, header_number)
        if empty:
            continue
        ranges = issues.get(number)
        if ranges:
            append(SheetRow(number, values, _row_problems(keep, values, ranges)))
        else:
            append(SheetRow(number, values))
    if not rows:
        raise InputError(f"{where}: the sheet has column names (row {header_number}) but no "
                         "rows with classes below them.")
    return Sheet(path=path, sheet_name=sheet_name, columns=tuple(n for _, n in keep), rows=tuple(rows))


def _check_stray(where: str, raw: Sequence[Any], blank: Sequence[int], width: int, number: int,
                 header_number: int) -> None:
    n_raw = len(raw)
    stray = [i for i in blank if i < n_raw and cell_value(raw[i]) is not None]
    stray += [i for i in range(width, n_raw) if cell_value(raw[i]) is not None]
    if stray:
        col = column_letter(stray[0])
        raise InputError(
            f"{where}: column {col} has a value in row {number} but no name in the header "
            f"row ({header_number}); type a column name into cell {col}{header_number} "
            "or delete that column.")
