"""Cells of the output workbook: values as ``<c>`` XML, number formats, status colours, links.

Split from ``bulkmeet.report`` (which decides what goes in the output sheet) so that module stays
about the sheet's content; this one is about how one value is stored in an .xlsx cell, for the
streaming writer ``bulkmeet.xlsx_writer`` (which owns the package: zip, styles, sheet layout).
The formula rule is ``bulkmeet.cells``'; Excel's limits (32,767 characters a cell, 65,530 links
a sheet) are kept here.

The cells are what openpyxl's write-only mode stored for the same values, so the files read back
as before: text is an inline string, ``int``/``float``/``Decimal`` a number, ``bool`` a boolean,
a naive date-time, date, time or duration an Excel serial with a date format (a zoned one is its
exact ISO text: Excel has no time zones), anything else its text. Empty values are left out.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from bulkmeet.cells import FORMULA_STARTS, column_letter, neutralise
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
from bulkmeet.xlsx_writer import Style, escape_text

__all__ = ["EXCEL_MAX_CHARS", "EXCEL_MAX_HYPERLINKS", "STATUS_COLOURS", "URL_COLUMNS",
           "XlsxRowWriter", "column_widths", "missing", "time_format", "width", "xlsx_text"]

# Excel's documented limits: a cell holds at most 32,767 characters, a worksheet at most 65,530
# hyperlinks (beyond that Excel "repairs" the file and drops them all).
EXCEL_MAX_CHARS = 32_767
EXCEL_MAX_HYPERLINKS = 65_530
_TRUNCATED = "… (truncated, see the CSV output or the log)"

# Characters XML 1.0 does not allow (C0 controls but tab, LF, CR; lone surrogates; U+FFFE/FFFF):
# a file holding one is unreadable, so they are dropped.
_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
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
FILL_COLOURS = tuple(STATUS_COLOURS.values())  # styles.xml's fills, in this order
_STATUS_STYLES = {status: Style.fills(FILL_COLOURS)[colour]
                  for status, colour in STATUS_COLOURS.items()}
_MAYBE_QUOTED = frozenset(FORMULA_STARTS) | {"'"}  # what neutralise looks at
_DATE = Style.number_format("yyyy-mm-dd")
_DURATION = Style.number_format("[hh]:mm:ss")
_SERIALS_KEPT = 20_000  # date serials remembered per sheet (a term repeats its dates and times)


def missing(value: Any) -> bool:
    """None, NaN and pandas' NA/NaT (checked by name: pandas is not imported for this)."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return type(value).__name__ in ("NAType", "NaTType")


def time_format(value: datetime | time) -> str:
    return "hh:mm:ss" if value.second or value.microsecond else "hh:mm"


def xlsx_text(value: str) -> str:
    """Text as a cell holds it: no XML-illegal characters, at most Excel's length, neutralised."""
    value = _ILLEGAL_XML.sub("", value)
    if len(value) > EXCEL_MAX_CHARS:
        value = value[: EXCEL_MAX_CHARS - len(_TRUNCATED)] + _TRUNCATED
    # ``neutralise`` only ever changes text that starts like a formula or with a quote; asking
    # only then is the same rule, minus two function calls on nearly every cell.
    return neutralise(value) if value[:1] in _MAYBE_QUOTED else value


def _text_cell(ref: str, text: str, style: str = "") -> str:
    """An inline-string cell; white space at either end kept (``xml:space``), as openpyxl did."""
    space = ' xml:space="preserve"' if text != text.strip() else ""
    return (f'<c r="{ref}"{style} t="inlineStr"><is><t{space}>{escape_text(text)}</t></is></c>')


_EPOCH = datetime(1899, 12, 30)  # Excel's (Windows, 1900 date system) day 0
_DAY = 86400


def excel_serial(value: datetime | date | time | timedelta) -> float:
    """The Excel serial of a date, time or duration: openpyxl's ``to_excel``, step for step, so
    the floats are the very ones openpyxl writes and reads back (a test compares them). Not
    imported from openpyxl: that costs ~0.2 s (it pulls in numpy) on a run that reads a CSV."""
    if isinstance(value, time):
        return _day_fraction(value)
    if isinstance(value, timedelta):
        return value.total_seconds() / _DAY
    moment = value if isinstance(value, datetime) else datetime.combine(value, time())
    days = (moment - _EPOCH).days
    if 0 < days <= 60:  # Excel's phantom 1900-02-29: serials before March 1900 are one less
        days -= 1
    return days + _day_fraction(moment)


def _day_fraction(value: datetime | time) -> float:
    return (value.hour * 3600 + value.minute * 60 + value.second
            + value.microsecond / 10**6) / _DAY


class XlsxRowWriter:
    """Turns one output line's values into a ``<row>`` of cells, styling only where needed.

    The status cell gets its colour, a join or options URL its link (``hyperlinks``: the
    sheet's (cell, url) list, at most ``max_hyperlinks``, Excel's limit; later URLs stay plain
    text and are counted in ``hyperlinks_dropped``), dates their formats.
    """

    def __init__(self, columns: Sequence[str], datetime_columns: frozenset[int] = frozenset(),
                 max_hyperlinks: int = EXCEL_MAX_HYPERLINKS) -> None:
        self.letters = [column_letter(i) for i in range(len(columns))]
        self.status_index = list(columns).index("status")
        self.url_indexes = frozenset(i for i, c in enumerate(columns) if c in URL_COLUMNS)
        self.special = self.url_indexes | {self.status_index}
        self.hyperlinks: list[tuple[str, str]] = []
        self.hyperlinks_dropped = 0
        self.datetime_columns = datetime_columns
        self.max_hyperlinks = max_hyperlinks
        self._serials: dict[Any, str] = {}

    def _serial(self, value: datetime | date | time | timedelta) -> str:
        text = self._serials.get(value)
        if text is None:
            if len(self._serials) >= _SERIALS_KEPT:
                self._serials.clear()
            text = self._serials[value] = repr(excel_serial(value))
        return text

    def cell(self, ref: str, value: Any, index: int = -1, style: int = 0) -> str:
        """The ``<c>`` for ``value`` at ``ref`` ("" when empty); ``index`` is its column (-1: a
        one-off cell) and ``style`` a ``Style`` index for text and numbers (dates have theirs)."""
        s = f' s="{style}"' if style else ""
        kind = type(value)
        if kind is str:
            text = xlsx_text(value)
            return _text_cell(ref, text, s) if text else ""
        if value is None:
            return ""
        if kind is bool:
            return f'<c r="{ref}"{s} t="b"><v>{1 if value else 0}</v></c>'
        if kind is int:
            return f'<c r="{ref}"{s} t="n"><v>{value}</v></c>'
        if kind is float:
            if math.isfinite(value):
                return f'<c r="{ref}"{s} t="n"><v>{value!r}</v></c>'
            return "" if math.isnan(value) else _text_cell(ref, str(value), s)
        if missing(value):
            return ""
        if isinstance(value, datetime):
            if value.tzinfo is not None:  # Excel has no time zones: keep the exact text instead
                return _text_cell(ref, value.isoformat(), s)
            if index not in self.datetime_columns and value.time() == time(0):
                fmt = _DATE
            else:
                fmt = Style.number_format(f"yyyy-mm-dd {time_format(value)}")
        elif isinstance(value, date):
            fmt = _DATE
        elif isinstance(value, time):
            if value.tzinfo is not None:
                return _text_cell(ref, value.isoformat(), s)
            fmt = Style.number_format(time_format(value))
        elif isinstance(value, timedelta):
            fmt = _DURATION
        elif isinstance(value, (int, float, Decimal)):  # subclasses: numbers all the same
            if isinstance(value, (float, Decimal)) and not math.isfinite(value):
                return _text_cell(ref, str(value), s)
            number = repr(float(value)) if isinstance(value, float) else str(value)
            return f'<c r="{ref}"{s} t="n"><v>{number}</v></c>'
        else:
            text = xlsx_text(str(value))
            return _text_cell(ref, text, s) if text else ""
        return f'<c r="{ref}" s="{fmt}" t="n"><v>{self._serial(value)}</v></c>'

    def header(self, names: Sequence[str], style: int) -> str:
        cells = "".join(_text_cell(f"{self.letters[i]}1", text, f' s="{style}"') if text
                        else f'<c r="{self.letters[i]}1" s="{style}"/>'  # styled, even empty
                        for i, text in enumerate(map(xlsx_text, names)))
        return f'<row r="1">{cells}</row>'

    def row(self, values: Sequence[Any], status: str, number: int) -> str:
        n = str(number)
        letters, special, cell = self.letters, self.special, self.cell
        parts = [f'<row r="{n}">']
        append = parts.append
        for i, value in enumerate(values):
            if value is None:
                continue
            if i in special:
                append(self._special(i, value, letters[i] + n, status))
            elif type(value) is str:
                text = xlsx_text(value)
                if text:
                    append(_text_cell(letters[i] + n, text))
            else:
                append(cell(letters[i] + n, value, i))
        append("</row>")
        return "".join(parts)

    def _special(self, index: int, value: Any, ref: str, status: str) -> str:
        if index == self.status_index:
            return self.cell(ref, value, index, _STATUS_STYLES.get(status, 0))
        url = xlsx_text(value) if type(value) is str else None
        if url and url.startswith(("https://", "http://")) and len(url) < 2000:
            if len(self.hyperlinks) < self.max_hyperlinks:
                self.hyperlinks.append((ref, url))
                return _text_cell(ref, url, f' s="{Style.LINK}"')
            self.hyperlinks_dropped += 1
        return self.cell(ref, value, index)


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
