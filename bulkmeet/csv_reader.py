"""Read a CSV schedule into raw records: the encoding decided strictly, broken quoting found.

A CSV file carries no encoding and no schema, and the ways it goes wrong are silent: a file that
is mostly UTF-8 with a few lines pasted from a Windows-1252 program decodes "fine" as
Windows-1252 and sends ``CafÃ©``; an unbalanced quote swallows every following row into one
value, so rows disappear and the message blames a missing organizer. So:

* the whole file must decode as UTF-8 (BOM or not), or else as Windows-1252 (Excel's plain "CSV"
  on Western Windows); a file with UTF-8 lines *and* lines that are not UTF-8 is refused, naming
  the first line that does not decode, instead of guessed;
* UTF-16 (Excel's "Unicode Text") is recognised with or without its BOM and refused with the
  save-as advice, instead of a column-not-found message full of NUL characters;
* a quoted value that runs over lines which look like rows of their own, or a quote still open
  at the end of the file, is refused naming the line and column where the quote opens;
* a value may be as long as it likes (the csv module's default limit of 131,072 characters
  refused the whole file naming no column); what is too long to use is the planner's call, per
  row.

Record numbers are what Excel shows as row numbers (a quoted line break does not start a row).
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from bulkmeet.cells import column_letter
from bulkmeet.errors import InputError

__all__ = ["csv_records", "decode"]

SAVE_AS = "save it as 'CSV UTF-8 (Comma delimited)'"
_FIELD_LIMIT = 1 << 30  # characters; effectively "no limit" (the file is in memory anyway)
_RUNAWAY_LINES = 50  # a quoted value spanning more line breaks than this is a stray quote
_UTF8_MULTIBYTE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
    rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}"
    rb"|\xf4[\x80-\x8f][\x80-\xbf]{2}")


def _looks_utf16(data: bytes) -> bool:
    """Mostly-ASCII text in UTF-16 has a NUL in every other byte; nothing else does."""
    sample = data[:4096]
    if len(sample) < 4:
        return False
    half = len(sample) // 2
    even = sample[0::2].count(0)
    odd = sample[1::2].count(0)
    return max(even, odd) >= 0.4 * half and min(even, odd) <= 0.05 * half


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _first_bad_line(data: bytes, encoding: str) -> tuple[int, int, int]:
    """(line number, byte value, column in bytes) of the first line ``encoding`` cannot decode."""
    try:
        data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = _line_of(data, exc.start)
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        return line, data[exc.start], exc.start - line_start + 1
    raise AssertionError("decodes")  # pragma: no cover - only called after a failure


def decode(path: Path, data: bytes) -> str:
    """The file's text, or ``InputError`` naming what is wrong and where."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or _looks_utf16(data):
        raise InputError(f"{path}: this looks like UTF-16 text (Excel's 'Unicode Text'), not "
                         f"CSV; open it in Excel and {SAVE_AS} instead.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        utf8_error = exc
    if _UTF8_MULTIBYTE.search(data):
        line = _line_of(data, utf8_error.start)
        raise InputError(
            f"{path}: line {line} is not UTF-8 (byte 0x{data[utf8_error.start]:02X}), but other "
            "lines are: the file mixes two encodings (often rows pasted from another program), "
            f"and reading it either way would garble some names. Retype the odd characters on "
            f"line {line} (and any later such lines) in one program, then {SAVE_AS}.")
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        line, byte, column = _first_bad_line(data, "cp1252")
    raise InputError(f"{path}: line {line} (byte 0x{byte:02X} at position {column}) is neither "
                     f"UTF-8 nor Windows-1252 text; {SAVE_AS}.")


def sniff_delimiter(text: str) -> str:
    """Pick ',', ';' or tab by counting them, outside quotes, in the first non-blank line."""
    counts = {",": 0, ";": 0, "\t": 0}
    quoted = False
    seen_text = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif ch in counts:
            counts[ch] += 1
        elif ch in "\r\n":
            if seen_text:
                break
        elif not ch.isspace():
            seen_text = True
    # On a tie prefer tab, then ';': commas turn up inside header text far more often.
    best = max(("\t", ";", ","), key=lambda c: counts[c])
    return best if counts[best] else ","


class _Lines:
    """The file's physical lines, split as the csv module counts them; built only when needed."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._lines: list[str] | None = None

    def span(self, first: int, last: int) -> str:
        if self._lines is None:
            self._lines = io.StringIO(self._text, newline="").readlines()
        return "".join(self._lines[first - 1:last])


def _runaway(path: Path, record: Sequence[str], first_line: int, last_line: int,
             width: int, delimiter: str, lines: _Lines, at_end: bool) -> None:
    """Refuse a record whose quoted value swallowed what look like rows (see the docstring)."""
    raw = lines.span(first_line, last_line)
    open_quote = at_end and raw.count('"') % 2 == 1
    line = first_line
    for index, value in enumerate(record):
        breaks = value.count("\n")
        if breaks:
            inner = value.split("\n")[1:]
            rowlike = width >= 3 and any(part.count(delimiter) >= width - 1 for part in inner)
            if rowlike or breaks > _RUNAWAY_LINES or (open_quote and index == len(record) - 1):
                where = "the end of the file" if open_quote else f"line {last_line}"
                raise InputError(
                    f"{path}: line {line}: the quote (\") that opens the value in column "
                    f"{column_letter(index)} is not closed where that value should end, so "
                    f"everything up to {where} is read as one value instead of as rows. Remove "
                    "the stray quote or close it (a quote inside a quoted value is written "
                    "twice: \"\").")
        line += breaks


def csv_records(path: Path, data: bytes) -> Iterator[tuple[int, Sequence[str]]]:
    """(record number, fields) for every record of the file; ``InputError`` if unreadable."""
    text = decode(path, data)
    delimiter = sniff_delimiter(text)
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(_FIELD_LIMIT)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    lines = _Lines(text)
    width = 0
    last_line = 0
    number = 0
    total_lines: int | None = None
    try:
        for record in reader:
            number += 1
            first_line, last_line = last_line + 1, reader.line_num
            if last_line > first_line:  # a quoted line break: rare, so checked only then
                if total_lines is None:
                    total_lines = len(io.StringIO(text, newline="").readlines())
                _runaway(path, record, first_line, last_line, width, delimiter, lines,
                         last_line == total_lines)
            width = width or len(record)
            yield number, record
        # A quote opened on the last line swallows only its newline: the value ends with one.
        if number and record and record[-1].endswith(("\n", "\r")) and last_line == first_line:
            _runaway(path, record, first_line, last_line, width, delimiter, lines, True)
    except csv.Error as exc:
        raise InputError(f"{path}: line {reader.line_num}: not readable as CSV ({exc}); "
                         f"{SAVE_AS}.") from None
