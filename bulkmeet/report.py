"""The output sheet: every input row, in input order, with what bulkmeet did about it.

This file is what the ops user opens at 7 a.m. and what they forward to the teachers, so it is
written for people first: the original columns exactly as they were (dates stay dates, "00123"
stays text), then the result columns (``models.RESULT_COLUMNS``), coloured statuses, clickable
join links, and a ``Summary`` sheet. It is also fed back to bulkmeet as the next input, which drops
the result columns again.

Two safety rules hold for both formats:

* Text that a spreadsheet would run as a formula (starting ``=``, ``+``, ``-``, ``@``, tab or CR —
  OWASP's CSV-injection list) gets a leading ``'``. The values come from a sheet someone else
  edited and from Graph; the file is opened by people with Excel. Real numbers are never
  touched, and neither is text that is just a number such as ``-5`` or a phone number such as
  ``+1 425-555-0100`` (nothing to run). The rule and its inverse live in ``bulkmeet.cells``.
* The file is replaced atomically (``bulkmeet.atomic``): a crash mid-write leaves the previous
  output, never a truncated workbook.

For people, the result columns include the subject as Teams has it, the start and end in the
config's ``time_zone`` as real date-time cells beside the UTC text, the meeting-options link, and
on a ``duplicate`` row the link of the meeting its key already has. How each value becomes an
.xlsx cell (formats, colours, links, Excel's limits) is ``bulkmeet.xlsxcells``.

The .xlsx is written by bulkmeet's own streaming writer (``bulkmeet.xlsx_writer``, cells by
``bulkmeet.xlsxcells``): the sheet is rewritten on every run, a no-op rerun included, and
openpyxl's write-only mode spent most of that time building and serialising a cell object per
value. Measured on the 2-core build machine (``write_output``, 33 columns, CPU s): 5,000 lines
2.09 -> 0.44 s, 50,000 lines 17.8 -> 2.4 s (the CSV of the same lines: 0.18 and 1.9 s). The
files read back exactly as openpyxl's did (openpyxl, pandas and LibreOffice open them); widths,
the frozen header and the autofilter are set from the first 500 lines, everything else streams.
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, time, tzinfo
from decimal import Decimal
from itertools import chain, islice
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

from bulkmeet import __version__
from bulkmeet.atomic import atomic_write
from bulkmeet.cells import column_letter, neutralise
from bulkmeet.errors import BulkmeetError, ExitStatus, InputError
from bulkmeet.models import (
    CANCELLED,
    DUPLICATE,
    ORPHANED,
    PENDING,
    PLANNED,
    REQUEST_COLUMN,
    RESULT_COLUMNS,
    SKIPPED,
    RowOutcome,
    Sheet,
    SheetRow,
)
from bulkmeet.sync import REMOVED_COLUMNS, RemovedMeeting, removed_row
from bulkmeet.xlsx_writer import SheetPart, Style, WorkbookWriter
from bulkmeet.xlsxcells import (
    EXCEL_MAX_CHARS,
    EXCEL_MAX_HYPERLINKS,
    FILL_COLOURS,
    STATUS_COLOURS,
    XlsxRowWriter,
    column_widths,
    missing,
)

__all__ = [
    "EXCEL_MAX_CHARS", "EXCEL_MAX_HYPERLINKS", "STATUS_COLOURS", "OutputError", "RunSummary",
    "default_output_path", "neutralise", "output_columns", "write_output",
]

SUMMARY_SHEET = "Summary"
RESULTS_SHEET = "Results"
_LOCAL_COLUMNS = ("startLocal", "endLocal")  # date-time cells even at midnight

REMOVED_SHEET = "Removed"


class OutputError(BulkmeetError):
    """The output sheet could not be written. The journal still holds every result, so a rerun
    sends nothing again and rewrites the sheet once the disk or permissions are fixed."""

    exit_status = ExitStatus.WRITE_FAILED


@dataclass(frozen=True)
class RunSummary:
    """The counts and run details: the last line on the terminal, the Summary sheet, the JSON."""

    schedule: str
    output: str
    started: str  # ISO local time
    finished: str
    total_rows: int
    created: int
    existing: int
    failed: int
    invalid: int
    duplicate: int
    planned: int = 0
    pending: int = 0
    skipped: int = 0  # rows a [[skip]] rule matched: not errors
    # One meeting per section: further rows of a section, reported with its meeting's status on
    # their lines but counted once, under the section's first row (not in created/failed/...).
    shared: int = 0
    dry_run: bool = False
    requests_sent: int = 0
    throttled: int = 0
    api: str = ""  # e.g. "https://graph.microsoft.com/v1.0"
    interrupted: bool = False
    notes: tuple[str, ...] = ()  # e.g. one line per organizer that failed with the same 403/404
    blocked: tuple[str, ...] = ()  # organizers whose meetings all failed for one reason (a note each)
    # bulkmeet.sync: rows whose meeting was changed, meetings of removed rows, warnings shown.
    updated: int = 0
    orphaned: int = 0  # removed rows whose meetings are still in Teams (changes pending)
    cancelled: int = 0  # removed rows whose meetings this run deleted
    warnings: int = 0  # output lines with a warning
    cancel_refused: str | None = None  # why nothing was cancelled, when the safety rule said no
    concurrency: str | None = None  # what the runner settled on: "concurrency settled at 24, ..."

    def line(self) -> str:
        """'48 rows: 40 created, 2 existing, 3 failed, 3 invalid' (+ other counts when nonzero)."""
        noun = "row" if self.total_rows == 1 else "rows"
        parts = [f"{self.created} created", f"{self.existing} existing", f"{self.failed} failed",
                 f"{self.invalid} invalid"]
        if self.updated:
            parts.insert(1, f"{self.updated} updated")
        for label in (DUPLICATE, PLANNED, PENDING, SKIPPED):
            count = getattr(self, label)
            if count:
                parts.append(f"{count} {label}")
        if self.shared:
            parts.append(f"{self.shared} sharing their section's meeting")
        if self.warnings:
            parts.append(f"{self.warnings} warning{'s' if self.warnings != 1 else ''}")
        removed = [f"{n} {label}" for n, label in ((self.orphaned, ORPHANED),
                                                   (self.cancelled, CANCELLED)) if n]
        tail = f"; removed rows: {', '.join(removed)}" if removed else ""
        return f"{self.total_rows} {noun}: {', '.join(parts)}{tail}"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["notes"] = list(self.notes)
        data["unchanged"] = self.existing  # sync's word for it: the meeting already matched
        data["line"] = self.line()
        return data


def default_output_path(schedule: Path, kind: str = "results") -> Path:
    """Beside the input: ``term.results.xlsx``, for a CSV schedule too, since the links, colours
    and the Summary sheet are the point of the file (``--output term.results.csv`` gives a CSV).

    ``kind`` "dry-run" and "plan" name the files of ``--dry-run`` and ``bulkmeet plan``, which
    never overwrite the last real results (the join links people were sent).
    """
    return Path(schedule).with_name(f"{Path(schedule).stem}.{kind}.xlsx")


def output_columns(sheet: Sheet, *, dry_run: bool = False) -> list[str]:
    columns = list(sheet.columns) + list(RESULT_COLUMNS)
    if dry_run:
        columns.append(REQUEST_COLUMN)
    return columns


def _datetime_columns(sheet: Sheet) -> frozenset[int]:
    """Indexes of original columns holding a date-time with a time of day somewhere.

    The reader turns an Excel date cell into a datetime at midnight; those columns are written as
    plain dates ("2027-03-01"), which is what the user typed and what a date column re-reads as.
    A column with real times writes every value with its time, midnight included.
    """
    found = set()
    for index, name in enumerate(sheet.columns):
        for row in sheet.rows:
            value = row.values.get(name)
            if isinstance(value, datetime) and (value.time() != time(0) or value.tzinfo):
                found.add(index)
                break
    found.update(len(sheet.columns) + RESULT_COLUMNS.index(c) for c in _LOCAL_COLUMNS)
    return frozenset(found)


def _lines(sheet: Sheet, outcomes: Mapping[Any, RowOutcome]
           ) -> list[tuple[SheetRow, RowOutcome | None]]:
    """One (input row, outcome) per output line, in (row, session) order.

    A row with several outcomes (one per session meeting) gets a line for each, every one
    carrying the row's input values; a row with none yet gets one line (written as pending).
    Only the outcomes themselves are read (``outcome_key``), not how the mapping is keyed.
    """
    by_row: dict[int, list[RowOutcome]] = {}
    for outcome in outcomes.values():
        by_row.setdefault(outcome.row, []).append(outcome)
    lines: list[tuple[SheetRow, RowOutcome | None]] = []
    for row in sheet.rows:
        mine = by_row.get(row.number)
        if mine:
            lines.extend((row, o) for o in sorted(mine, key=lambda o: o.outcome_key))
        else:
            lines.append((row, None))
    return lines


def _rows(sheet: Sheet, lines: list[tuple[SheetRow, RowOutcome | None]], dry_run: bool,
          tz: tzinfo | None = None) -> Iterator[tuple[list[Any], str]]:
    """(values in output column order, status) per output line; unsent rows become pending.

    A duplicate row shows the meeting its externalId already has (the first row's): people
    reading the sheet find the link on every row that means that meeting.
    """
    shared = {o.external_id: o.meeting for _, o in lines
              if o is not None and o.meeting is not None and o.external_id}
    for row, outcome in lines:
        if outcome is None:
            outcome = RowOutcome(row.number, PENDING,
                                 error="Not sent in this run: run bulkmeet again to send it.")
        elif outcome.status == DUPLICATE and outcome.meeting is None and outcome.external_id:
            outcome = replace(outcome, meeting=shared.get(outcome.external_id))
        values = [row.values.get(col) for col in sheet.columns]
        results = outcome.result_columns(tz)
        values.extend(results[col] for col in RESULT_COLUMNS)
        if dry_run:
            values.append(outcome.request)
        yield values, outcome.status


def _summary_rows(summary: RunSummary) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [
        ("Result", summary.line()),
        ("Schedule", summary.schedule),
        ("Output", summary.output),
        ("Graph API", summary.api),
        ("Started", summary.started),
        ("Finished", summary.finished),
        ("Dry run", "yes" if summary.dry_run else "no"),
        ("Interrupted", "yes: run bulkmeet again to finish" if summary.interrupted else "no"),
        ("Rows", summary.total_rows),
        ("Created", summary.created),
        ("Existing", summary.existing),
        ("Failed", summary.failed),
        ("Invalid", summary.invalid),
        ("Duplicate", summary.duplicate),
        ("Planned", summary.planned),
        ("Pending", summary.pending),
        ("Skipped (not meetings)", summary.skipped),
        ("Sharing their section's meeting", summary.shared),
        ("Updated", summary.updated),
        ("Orphaned (removed rows still in Teams)", summary.orphaned),
        ("Cancelled", summary.cancelled),
        ("Warnings", summary.warnings),
        ("Cancelling refused", summary.cancel_refused or "no"),
        ("Requests sent", summary.requests_sent),
        ("Throttled (429) responses", summary.throttled),
        ("Concurrency", summary.concurrency or "-"),
        ("bulkmeet version", __version__),
    ]
    rows.extend(("Note", note) for note in summary.notes)
    return rows


# -- CSV ---------------------------------------------------------------------------------------

def _csv_text(value: Any, with_time: bool = True) -> str:
    if missing(value):
        return ""
    if isinstance(value, str):
        return neutralise(value)
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return value.isoformat()
        if not with_time and value.time() == time(0):
            return value.strftime("%Y-%m-%d")
        return value.strftime("%Y-%m-%d %H:%M:%S" if value.second or value.microsecond
                              else "%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.strftime("%H:%M:%S" if value.second or value.microsecond else "%H:%M")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    return neutralise(str(value))


def _write_csv(handle: BinaryIO, columns: list[str], rows: Iterable[tuple[list[Any], str]],
               datetime_columns: frozenset[int]) -> None:
    # UTF-8 with a BOM: Excel on Windows reads it as UTF-8 instead of the ANSI code page.
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
    try:
        writer = csv.writer(text)
        writer.writerow([neutralise(c) for c in columns])
        for values, _status in rows:
            writer.writerow([_csv_text(v, i in datetime_columns) for i, v in enumerate(values)])
        text.flush()
    finally:
        text.detach()  # the atomic writer fsyncs and closes the binary handle


# -- XLSX --------------------------------------------------------------------------------------

def _sheet_title(name: str | None) -> str:
    title = re.sub(r"[\[\]:*?/\\]", "_", name or "").strip("'")[:31]
    if not title or title.lower() == SUMMARY_SHEET.lower():
        return RESULTS_SHEET
    return title


def _write_xlsx(handle: BinaryIO, sheet: Sheet, columns: list[str],
                rows: Iterator[tuple[list[Any], str]], summary: RunSummary,
                line_count: int | None = None, scratch: Path | None = None,
                removed: Sequence[RemovedMeeting] = (), time_zone: str | None = None) -> None:
    """The workbook: the Results sheet streamed row by row, then Summary (and Removed)."""
    # Widths come from the header and the first rows; everything else is streamed.
    head = list(islice(rows, 500))
    lines = len(sheet.rows) if line_count is None else line_count
    ref = f"A1:{column_letter(len(columns) - 1)}{lines + 1}"
    cells = XlsxRowWriter(columns, _datetime_columns(sheet), max_hyperlinks=EXCEL_MAX_HYPERLINKS)
    results = SheetPart(_sheet_title(sheet.sheet_name), column_widths(columns, [v for v, _ in head]),
                        ref, autofilter=ref, hyperlinks=cells.hyperlinks)

    def result_rows() -> Iterator[str]:
        yield cells.header(columns, Style.HEADER)
        for number, (values, status) in enumerate(chain(head, rows), start=2):
            yield cells.row(values, status, number)

    book = WorkbookWriter(handle, scratch_beside=scratch, fill_colours=FILL_COLOURS)
    try:
        book.add_sheet(results, result_rows)
        notes = list(summary.notes)
        if cells.hyperlinks_dropped:
            notes.append(
                f"Excel allows {cells.max_hyperlinks:,} links per sheet: the last "
                f"{cells.hyperlinks_dropped:,} join URLs are plain text (copy them into a browser)."
            )
        rows_shown = _summary_rows(RunSummary(**{**asdict(summary), "notes": tuple(notes)}))
        if time_zone:  # the zone of startLocal/endLocal, right after the run's times
            rows_shown.insert(6, ("Local times (startLocal, endLocal)", time_zone))
        summary_rows = [f'<row r="{n}">{cells.cell(f"A{n}", label, style=Style.LABEL)}'
                        f'{cells.cell(f"B{n}", value)}</row>'
                        for n, (label, value) in enumerate(rows_shown, start=1)]
        book.add_sheet(SheetPart(SUMMARY_SHEET, (28, 100), f"A1:B{len(rows_shown)}",
                                 freeze_header=False), summary_rows)
        if removed:
            _removed_sheet(book, removed)
        book.close()
    except BaseException:
        book.abandon()  # a failure (disk full) leaves no half-closed zip or scratch behind
        raise


def _removed_sheet(book: WorkbookWriter, removed: Sequence[RemovedMeeting]) -> None:
    """Meetings of this schedule whose rows are gone: orphaned (still in Teams) or cancelled."""
    columns = list(REMOVED_COLUMNS)
    cells = XlsxRowWriter(columns, max_hyperlinks=EXCEL_MAX_HYPERLINKS)
    part = SheetPart(REMOVED_SHEET, (11, 30, 40, 17, 45, 60, 22, 22, 38, 30),
                     f"A1:{column_letter(len(columns) - 1)}{len(removed) + 1}",
                     hyperlinks=cells.hyperlinks)
    rows = [cells.header(columns, Style.HEADER_PLAIN)]
    rows.extend(cells.row(removed_row(item), item.status, number)
                for number, item in enumerate(removed, start=2))
    book.add_sheet(part, rows)


# -- entry point -------------------------------------------------------------------------------

def removed_csv_path(output: Path) -> Path:
    """``term.results.csv`` -> ``term.results.removed.csv``: the CSV form of the Removed sheet."""
    return output.with_name(output.stem + ".removed.csv")


def check_output_name(path: Path) -> None:
    """The output sheet's name must end in .xlsx or .csv (the run checks it before sending)."""
    if Path(path).suffix.lower() not in (".xlsx", ".csv"):
        raise InputError(
            f"Cannot write the output sheet {path}: the name must end in .xlsx or .csv."
        )


def write_output(path: Path, sheet: Sheet, outcomes: Mapping[Any, RowOutcome],
                 summary: RunSummary, *, dry_run: bool = False,
                 removed: Sequence[RemovedMeeting] = (), time_zone: str | None = None) -> None:
    """Write one line per outcome in (row, session) order, .xlsx or .csv by suffix, atomically.

    ``outcomes`` is keyed by ``RowOutcome.outcome_key``. A row without an outcome is written as
    ``pending`` (not sent in this run); a classic sheet gets exactly one line per row.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    check_output_name(path)
    columns = output_columns(sheet, dry_run=dry_run)
    lines = _lines(sheet, outcomes)
    rows = _rows(sheet, lines, dry_run, ZoneInfo(time_zone) if time_zone else None)
    if suffix == ".csv":
        def writer(handle: BinaryIO) -> None:
            _write_csv(handle, columns, rows, _datetime_columns(sheet))
    else:
        def writer(handle: BinaryIO) -> None:
            _write_xlsx(handle, sheet, columns, rows, summary, len(lines), scratch=path,
                        removed=removed, time_zone=time_zone)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, writer)
        if suffix == ".csv" and removed:  # a CSV has one sheet: the Removed one goes beside it
            def removed_writer(handle: BinaryIO) -> None:
                _write_csv(handle, list(REMOVED_COLUMNS),
                           ((removed_row(r), r.status) for r in removed), frozenset())
            atomic_write(removed_csv_path(path), removed_writer)
        elif suffix == ".csv":  # nothing removed any more: no stale list left to mislead
            removed_csv_path(path).unlink(missing_ok=True)
    except OSError as exc:
        raise OutputError(
            f"Cannot write the output sheet {path} ({exc.strerror or exc}). Every result is kept "
            "in the journal, so nothing is lost: fix this (free disk space, make the folder "
            "writable, or choose another file with --output) and run bulkmeet again; rows "
            "already done are not sent again."
        ) from None
