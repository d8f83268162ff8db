"""Per-teacher handouts: one small workbook per organizer, and a mail-merge CSV to send them.

**One workbook per organizer, not one workbook with a sheet per organizer.** A handout is made to
be attached to one teacher's e-mail, and each row carries a passcode: a shared workbook would hand
every teacher every colleague's links and passcodes, and ops would have to split it by hand before
sending. One file per person is also what Power Automate's "send an e-mail for each row" and
Outlook mail merge tools attach (one path per recipient, given in the CSV).

Each workbook has the teacher's classes sorted by date, in the schedule's time zone (real Excel
date and time cells, so it sorts and filters), the subject, a clickable *Join meeting* link, the
meeting ID and passcode for joining by ID, the phone numbers as text people can dial (no
formula-guard quote before a ``+1 425-555-0100``: ``bulkmeet.cells`` knows a phone number), a link to
the local numbers and to the meeting options (lobby settings). Cancelled meetings stay, struck
through, so a teacher sees what went away.

``mail-merge.csv`` has one row per organizer: address, name, counts, first and last class, the
handout's and calendar's paths, and the list of classes with their links as text.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from bulkmeet.calendars import Digests, meeting_id_text, unique_stems, write_for_people
from bulkmeet.cells import neutralise
from bulkmeet.ids import EMAIL_RE
from bulkmeet.models import CANCELLED, ORPHANED, PublishedMeeting

__all__ = ["HandoutFiles", "HEADER", "write_handouts", "class_line", "MAIL_MERGE_NAME",
           "MAIL_MERGE_COLUMNS"]

SHEET = "Classes"
HEADER = ("Date", "Day", "Start", "End", "Subject", "Join", "Meeting ID", "Passcode", "Phone",
          "Toll-free", "Conference ID", "Local numbers", "Meeting options", "Status")
HEADER_ROW = 4  # title, note, blank line, then the header
MAIL_MERGE_NAME = "mail-merge.csv"
MAIL_MERGE_COLUMNS = ("Email", "Name", "Organizer", "Meetings", "Cancelled", "First class",
                      "Last class", "Handout", "Calendar", "Links")
# What a teacher needs to know about a meeting's state: nothing, unless it went away.
_STATUS_SHOWN = {CANCELLED: "cancelled", ORPHANED: "not in the schedule any more"}
_WIDTHS = (12, 6, 7, 7, 40, 14, 18, 10, 17, 17, 14, 16, 16, 16)


@dataclass(frozen=True)
class HandoutFiles:
    workbooks: dict[str, Path]  # organizer -> workbook
    mail_merge: Path


def _text(value: str | None) -> str | None:
    """Text for a cell; openpyxl would store text starting with '=' as a formula."""
    return neutralise(value) if value else value


def class_line(m: PublishedMeeting) -> str:
    """'Mon 2027-03-01 09:00-09:50 CS101: Intro: https://...' (one line of the mail text)."""
    when = "no time set"
    if m.start is not None:
        when = m.start.strftime("%a %Y-%m-%d %H:%M")
        if m.end is not None:
            when += m.end.strftime("-%H:%M")
    line = f"{when} {m.subject}"
    if m.cancelled:
        return line + " (cancelled)"
    return f"{line}: {m.join_url}" if m.join_url else line


def _sorted(meetings: Sequence[PublishedMeeting]) -> list[PublishedMeeting]:
    return sorted(meetings, key=lambda m: (m.start is None, m.start.replace(tzinfo=None)
                                           if m.start else datetime.max, m.subject))


def _link(ws: Any, row: int, col: int, text: str, url: str | None) -> None:
    cell = ws.cell(row=row, column=col)
    if url and url.startswith(("https://", "http://")):
        cell.value = text
        cell.hyperlink = url
        cell.style = "Hyperlink"


def _workbook(name: str, tz: str, meetings: list[PublishedMeeting], calendar: str | None) -> Any:
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill

    wb = Workbook()
    ws = wb.active
    ws.title = SHEET
    ws.cell(row=1, column=1, value=_text(f"Teams classes for {name}")).font = Font(bold=True, size=14)
    note = f"Times are in {tz}. Click Join to open a class in Teams, or join by meeting ID and passcode."
    if calendar:
        note += f" Calendar file: {calendar}"
    ws.cell(row=2, column=1, value=_text(note))
    bold, fill = Font(bold=True), PatternFill("solid", fgColor="F2F2F2")
    for col, title in enumerate(HEADER, start=1):
        cell = ws.cell(row=HEADER_ROW, column=col, value=title)
        cell.font, cell.fill = bold, fill
    struck = Font(strike=True, color="808080")
    for r, m in enumerate(meetings, start=HEADER_ROW + 1):
        start = m.start.replace(tzinfo=None) if m.start else None
        end = m.end.replace(tzinfo=None) if m.end else None
        values = (start.date() if start else None, start.strftime("%a") if start else None,
                  start.time() if start else None, end.time() if end else None, _text(m.subject),
                  None, meeting_id_text(m.join_meeting_id) or None, _text(m.passcode),
                  _text(m.toll_number), _text(m.toll_free_number),
                  f"{m.conference_id}#" if m.conference_id else None, None, None,
                  _STATUS_SHOWN.get(m.status))
        for col, value in enumerate(values, start=1):
            ws.cell(row=r, column=col, value=value)
        ws.cell(row=r, column=1).number_format = "yyyy-mm-dd"
        ws.cell(row=r, column=3).number_format = "hh:mm"
        ws.cell(row=r, column=4).number_format = "hh:mm"
        if m.cancelled:
            for col in range(1, len(HEADER) + 1):
                ws.cell(row=r, column=col).font = struck
            continue
        _link(ws, r, 6, "Join meeting", m.join_url)
        _link(ws, r, 12, "Local numbers", m.dialin_url)
        _link(ws, r, 13, "Options", m.options_url)
    from openpyxl.utils import get_column_letter

    for col, width in enumerate(_WIDTHS, start=1):
        ws.column_dimensions[get_column_letter(col)].width = width
    ws.freeze_panes = ws.cell(row=HEADER_ROW + 1, column=1)
    ws.auto_filter.ref = f"A{HEADER_ROW}:{get_column_letter(len(HEADER))}{HEADER_ROW + len(meetings)}"
    ws.print_title_rows = f"{HEADER_ROW}:{HEADER_ROW}"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth = 1
    return wb


def _save(path: Path, write: Any) -> None:
    write_for_people(path, write, what="the handout", advice=" or choose another --handouts folder")


def _mail_merge(handle: BinaryIO, rows: list[list[str]]) -> None:
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")  # BOM: Excel reads UTF-8
    try:
        writer = csv.writer(text)
        writer.writerow(MAIL_MERGE_COLUMNS)
        writer.writerows([[neutralise(v) for v in row] for row in rows])
        text.flush()
    finally:
        text.detach()


def write_handouts(folder: Path, meetings: Sequence[PublishedMeeting], *, time_zone: str,
                   calendars: Mapping[str, Path] | None = None,
                   digests: Digests | None = None) -> HandoutFiles:
    """A workbook per organizer and ``mail-merge.csv`` under ``folder``; atomically, each file.
    With ``digests``, a workbook already made from the same meetings is left as it is."""
    folder = Path(folder)
    groups: dict[str, list[PublishedMeeting]] = {}
    for m in meetings:
        groups.setdefault(m.organizer, []).append(m)
    workbooks: dict[str, Path] = {}
    merge_rows: list[list[str]] = []
    for organizer, stem in unique_stems(groups).items():
        items = _sorted(groups[organizer])
        name = next((m.organizer_name for m in items if m.organizer_name), organizer)
        calendar = calendars.get(organizer) if calendars else None
        workbooks[organizer] = path = folder / f"{stem}.xlsx"
        digest = Digests.of(name, time_zone, str(calendar), meetings=items)
        if digests is None or not digests.fresh(path, digest):
            _save(path, _workbook(name, time_zone, items, str(calendar) if calendar else None).save)
        timed = [m for m in items if m.start is not None and not m.cancelled]
        merge_rows.append([
            organizer if EMAIL_RE.match(organizer) else "", name, organizer,
            str(sum(1 for m in items if not m.cancelled)), str(sum(1 for m in items if m.cancelled)),
            timed[0].start.strftime("%Y-%m-%d %H:%M") if timed and timed[0].start else "",
            timed[-1].start.strftime("%Y-%m-%d %H:%M") if timed and timed[-1].start else "",
            str(path.resolve()), str(calendar.resolve()) if calendar else "",
            "\n".join(class_line(m) for m in items),
        ])
    merge = folder / MAIL_MERGE_NAME
    _save(merge, lambda f: _mail_merge(f, merge_rows))
    return HandoutFiles(workbooks, merge)
