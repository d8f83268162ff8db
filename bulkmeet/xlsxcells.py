"""Cells for the write-only .xlsx writers: values, number formats, status colours and links.

Split from ``bulkmeet.report`` (which decides what goes in the output sheet) so that module stays
about the sheet's content; this one is about how openpyxl's write-only mode stores a value. The
formula rule is ``bulkmeet.cells``'; Excel's limits (32,767 characters a cell, 65,530 links a
sheet) are kept here.
"""
from __future__ import annotations

import math
import re
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from bulkmeet.cells import neutralise
from bulkmeet.models import (
    CANCELLED,
    CREATED,
    DUPLICATE,
    EXISTING,
    FAILED,
    INVALID,
    ORPHANED,
    PENDING,
    PLANNED,
    REQUEST_COLUMN,
    SKIPPED,
    UPDATED,
)

__all__ = ["EXCEL_MAX_CHARS", "EXCEL_MAX_HYPERLINKS", "STATUS_COLOURS", "URL_COLUMNS",
           "XlsxRowWriter", "XlsxStyles", "column_widths", "missing", "time_format", "width",
           "xlsx_text"]

# Excel's documented limits: a cell holds at most 32,767 characters, a worksheet at most 65,530
# hyperlinks (beyond that Excel "repairs" the file and drops them all).
EXCEL_MAX_CHARS = 32_767
EXCEL_MAX_HYPERLINKS = 65_530
_TRUNCATED = "… (truncated, see the CSV output or the log)"

# Control characters that are not allowed in XML 1.0 (openpyxl refuses them).
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
URL_COLUMNS = ("joinWebUrl", "meetingOptionsWebUrl")
STATUS_COLOURS = {
    CREATED: "C6EFCE",  # green
    EXISTING: "DDEBF7",  # blue-grey
    FAILED: "FFC7CE",  # red
    INVALID: "F8CBAD",  # orange
    DUPLICATE: "FFEB9C",  # yellow
    PENDING: "D9D9D9",  # grey
    PLANNED: "E4DFEC",  # lavender: validated, not sent (dry run)
    SKIPPED: "F2F2F2",  # light grey: a [[skip]] rule matched, not a meeting
    UPDATED: "C6E0B4",  # darker green: changed in Teams to match the sheet
    ORPHANED: "FCE4D6",  # peach (Removed sheet): row gone, meeting still in Teams
    CANCELLED: "BFBFBF",  # dark grey (Removed sheet): deleted with --cancel-removed
}


def missing(value: Any) -> bool:
    """None, NaN and pandas' NA/NaT (checked by name: pandas is not imported for this)."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return type(value).__name__ in ("NAType", "NaTType")


def time_format(value: datetime | time) -> str:
    return "hh:mm:ss" if value.second or value.microsecond else "hh:mm"


class XlsxStyles:
    """Style objects built once; openpyxl de-duplicates them into one style table entry each."""

    def __init__(self) -> None:
        from openpyxl.styles import Alignment, Font, PatternFill

        self.header_font = Font(bold=True)
        self.header_fill = PatternFill("solid", fgColor="F2F2F2")
        self.header_align = Alignment(vertical="center")
        self.status_fills = {
            status: PatternFill("solid", fgColor=colour)
            for status, colour in STATUS_COLOURS.items()
        }
        self.label_font = Font(bold=True)


def xlsx_text(value: str) -> str:
    value = _ILLEGAL_XML.sub("", value)
    if len(value) > EXCEL_MAX_CHARS:
        value = value[: EXCEL_MAX_CHARS - len(_TRUNCATED)] + _TRUNCATED
    return neutralise(value)


class XlsxRowWriter:
    """Turns plain values into what write-only openpyxl should store, styling only where needed.

    Styled cells are made once per (column, style) and reused row after row: write-only
    ``append()`` serialises a row before it returns, and building a styled cell costs more than
    writing it. (A test reads every row's colour and link back, so a change in openpyxl that
    broke this would show.)
    """

    def __init__(self, ws: Any, styles: XlsxStyles, columns: list[str],
                 datetime_columns: frozenset[int] = frozenset(),
                 max_hyperlinks: int = EXCEL_MAX_HYPERLINKS) -> None:
        from openpyxl.cell import WriteOnlyCell

        self._new_cell = WriteOnlyCell
        self.ws = ws
        self.styles = styles
        self.status_index = columns.index("status")
        self.url_indexes = [columns.index(c) for c in URL_COLUMNS if c in columns]
        self.hyperlinks = 0
        self.hyperlinks_dropped = 0
        self._cells: dict[tuple[int, str], Any] = {}
        self.datetime_columns = datetime_columns
        self.max_hyperlinks = max_hyperlinks

    def _styled(self, index: int, key: str, value: Any) -> Any:
        cell = self._cells.get((index, key))
        if cell is None:
            cell = self._cells[(index, key)] = self._new_cell(self.ws)
            if key in self.styles.status_fills:
                cell.fill = self.styles.status_fills[key]
            elif key == "link":
                cell.style = "Hyperlink"
            else:
                cell.number_format = key
        cell.value = value
        return cell

    def value(self, value: Any, index: int = -1) -> Any:
        """The value or styled cell for column ``index`` (-1: a one-off cell, not reused)."""
        kind = type(value)
        if kind is str:
            return xlsx_text(value)
        if value is None:
            return None
        if kind is int or kind is bool:
            return value
        if kind is float:
            return value if math.isfinite(value) else (None if math.isnan(value) else str(value))
        if missing(value):
            return None
        if isinstance(value, datetime):
            if value.tzinfo is not None:  # Excel has no time zones: keep the exact text instead
                return value.isoformat()
            if index not in self.datetime_columns and value.time() == time(0):
                fmt = "yyyy-mm-dd"
            else:
                fmt = f"yyyy-mm-dd {time_format(value)}"
        elif isinstance(value, date):
            fmt = "yyyy-mm-dd"
        elif isinstance(value, time):
            if value.tzinfo is not None:
                return value.isoformat()
            fmt = time_format(value)
        elif isinstance(value, (int, float, Decimal, timedelta)):
            return value
        else:
            return xlsx_text(str(value))
        if index < 0:
            cell = self._new_cell(self.ws, value=value)
            cell.number_format = fmt
            return cell
        return self._styled(index, fmt, value)

    def row(self, values: list[Any], status: str) -> list[Any]:
        out = [self.value(v, i) for i, v in enumerate(values)]
        if status in self.styles.status_fills:
            i = self.status_index
            out[i] = self._styled(i, status, out[i])
        for i in self.url_indexes:
            url = out[i]
            if isinstance(url, str) and url.startswith(("https://", "http://")) and len(url) < 2000:
                if self.hyperlinks >= self.max_hyperlinks:
                    self.hyperlinks_dropped += 1
                    continue
                cell = self._styled(i, "link", url)
                cell.hyperlink = url
                out[i] = cell
                self.hyperlinks += 1
        return out


def width(value: Any) -> int:
    if missing(value):
        return 0
    if isinstance(value, datetime):
        return 17
    if isinstance(value, (date, time)):
        return 10
    return max((len(line) for line in str(value).splitlines()), default=0)


def column_widths(columns: list[str], sample: list[list[Any]]) -> list[float]:
    widths: list[float] = []
    for index, name in enumerate(columns):
        longest = max([len(name) + 3] + [width(values[index]) for values in sample])
        cap = 60 if name in (REQUEST_COLUMN, "error", "warning") else 45
        widths.append(min(max(longest + 2, 8), cap))
    return widths
