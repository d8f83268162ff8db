"""``bulkmeet plan``: what the next run would change, for a careful operator to read first.

Like ``terraform plan`` or octodns without ``--doit``: the sheet is compared with the journal
(the state Graph last confirmed), with the same rules ``bulkmeet run`` applies (``bulkmeet.sync``),
and nothing is sent to Graph at all — no sign-in either, so it can run anywhere the journal is.
It writes its own sheet (``NAME.plan.xlsx``), never the results sheet, and never a result into
the journal.
"""
from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

from bulkmeet import apply, report, sheets
from bulkmeet import journal as journals
from bulkmeet import plan as planning
from bulkmeet.atomic import atomic_write
from bulkmeet.config import Config
from bulkmeet.errors import ExitStatus
from bulkmeet.models import MeetingRequest, utc_iso
from bulkmeet.sync import SyncPlan, local_text

CREATE, UPDATE, CANCEL, KEEP, UNCHANGED, INVALID, SKIPPED, DUPLICATE = (
    "create", "update", "cancel", "orphaned", "unchanged", "invalid", "skipped", "duplicate")
COUNTED = (CREATE, UPDATE, CANCEL, KEEP, UNCHANGED)  # per organizer
PLAN_COLUMNS = ("action", "row", "organizer", "subject", "start", "change", "externalId",
                "meetingId", "joinWebUrl")


@dataclass(frozen=True)
class PlanLine:
    action: str
    row: int | None
    organizer: str
    subject: str | None
    start: str | None  # local time as people read it
    change: str  # what would change, in words
    external_id: str | None = None
    meeting_id: str | None = None
    join_url: str | None = None

    def values(self) -> list[Any]:
        return [self.action, self.row, self.organizer, self.subject, self.start, self.change,
                self.external_id, self.meeting_id, self.join_url]


@dataclass(frozen=True)
class Preview:
    lines: tuple[PlanLine, ...]
    by_organizer: dict[str, Counter[str]]
    totals: Counter[str]
    cancel_reason: str | None  # why the orphans would not be cancelled
    refused: bool
    output: Path
    notes: tuple[str, ...] = field(default=())

    @property
    def exit_status(self) -> ExitStatus:
        """What `bulkmeet run` would exit with, as far as the plan can tell."""
        if self.refused:
            return ExitStatus.CANCEL_REFUSED
        if self.totals[INVALID] or self.totals[DUPLICATE]:
            return ExitStatus.ROWS_FAILED
        return ExitStatus.CHANGES_PENDING if self.totals[KEEP] else ExitStatus.OK

    def line(self) -> str:
        t = self.totals
        return (f"Plan: {t[CREATE]} to create, {t[UPDATE]} to update, {t[CANCEL]} to cancel, "
                f"{t[UNCHANGED]} unchanged, {t[INVALID]} invalid, {t[SKIPPED]} skipped"
                + (f", {t[DUPLICATE]} duplicate" if t[DUPLICATE] else "")
                + (f"; {t[KEEP]} orphaned (would stay in Teams)" if t[KEEP] else ""))

    def table(self) -> Iterator[str]:
        """Per organizer: create / update / cancel / orphaned / unchanged."""
        width = max([len("organizer"), *map(len, self.by_organizer)]) + 2
        yield "organizer".ljust(width) + "".join(f"{name:>11}" for name in COUNTED)
        for organizer in sorted(self.by_organizer):
            counts = self.by_organizer[organizer]
            yield organizer.ljust(width) + "".join(f"{counts[n]:>11}" for n in COUNTED)
        yield "total".ljust(width) + "".join(f"{self.totals[n]:>11}" for n in COUNTED)


def _request_line(action: str, req: MeetingRequest, change: str, tz: ZoneInfo,
                  meeting_id: str | None = None, join_url: str | None = None) -> PlanLine:
    start = local_text(utc_iso(req.start), tz) if req.start else None
    return PlanLine(action, req.row, req.organizer, req.subject, start, change,
                    req.external_id, meeting_id, join_url)


def _lines(the_plan: planning.Plan, sync_plan: SyncPlan, tz: ZoneInfo,
           book: dict[tuple[str, str], Any], failed: set[tuple[str, str]]) -> list[PlanLine]:
    lines: list[PlanLine] = []
    for req in sync_plan.creates:
        key = (req.organizer, req.external_id)
        known = book.get(key)
        what = ("failed last time: createOrGet again" if key in failed else
                "new meeting (createOrGet)" if known is None else
                "its meeting was cancelled or is gone: a new one is made")
        if req.settings:
            what += "; then its options are set"
        lines.append(_request_line(CREATE, req, what, tz))
    for u in sync_plan.updates:
        known = book.get((u.request.organizer, u.request.external_id))
        lines.append(_request_line(UPDATE, u.request, u.description, tz, u.meeting_id,
                                   known.join_url if known else None))
    for req in sync_plan.unchanged:
        known = book.get((req.organizer, req.external_id))
        lines.append(_request_line(UNCHANGED, req, "", tz, known.meeting_id if known else None,
                                   known.join_url if known else None))
    cancels = apply.cancel_targets(sync_plan)
    cancelled = {(r.organizer, r.external_id) for r in cancels}
    for r in [*sync_plan.orphans, *sync_plan.deleting]:
        action = CANCEL if (r.organizer, r.external_id) in cancelled else KEEP
        why = r.reason if action == CANCEL else (
            f"{r.reason}; stays in Teams: {sync_plan.cancel.reason}" if sync_plan.cancel.reason
            else f"{r.reason}; stays in Teams (run with --cancel-removed to cancel it)")
        lines.append(PlanLine(action, None, r.organizer, r.subject, local_text(r.start_utc, tz), why,
                              r.external_id, r.meeting_id, r.join_url))
    for bad in the_plan.invalid:
        lines.append(PlanLine(INVALID, bad.row, "", None, None,
                              f"{bad.column}: {bad.message}" if bad.column else bad.message,
                              bad.external_id))
    for dup in the_plan.duplicates:
        lines.append(PlanLine(DUPLICATE, dup.row, "", None, None,
                              f"same externalId as row {dup.first_row}", dup.external_id))
    for skip in the_plan.skipped:
        lines.append(PlanLine(SKIPPED, skip.row, "", None, None, f"skipped: {skip.rule}"))
    return lines


def preview(schedule: Path, cfg: Config, *, sheet_name: str | None = None,
            journal_path: Path | None = None, output: Path | None = None,
            cancel_removed: bool = False, max_cancel: int | None = None) -> Preview:
    """Plan SCHEDULE against its journal and write the plan sheet. Sends nothing."""
    sheet = sheets.read_sheet(schedule, sheet_name)
    planning.check_columns(sheet, cfg)
    the_plan = planning.plan_rows(sheet, cfg)
    path = journal_path or (Path(os.path.expanduser(cfg.run.journal)) if cfg.run.journal
                            else journals.default_journal_path(schedule))
    limits = apply.limits_for(cfg, cancel_removed=cancel_removed, max_cancel=max_cancel)
    if path.exists():
        with journals.Journal.open(path, lock=False) as journal:
            book = journal.meetings()
            failed = {key for key, r in journal.latest().items() if not r.ok}
            sync_plan = apply.plan_sync(the_plan.requests, the_plan.invalid, len(sheet.rows),
                                        journal, cfg, limits, skipped=the_plan.skipped)
    else:  # never run: everything is new, and no journal file is made just to look
        book, failed = {}, set()
        sync_plan = apply.plan_sync(the_plan.requests, the_plan.invalid, len(sheet.rows), None,
                                    cfg, limits)
    lines = _lines(the_plan, sync_plan, ZoneInfo(cfg.mapping.time_zone), book, failed)
    by_organizer: dict[str, Counter[str]] = defaultdict(Counter)
    totals: Counter[str] = Counter()
    for line in lines:
        totals[line.action] += 1
        if line.action in COUNTED:
            by_organizer[line.organizer][line.action] += 1
    target = output or report.default_output_path(schedule, "plan")
    write_plan(target, lines)
    return Preview(tuple(lines), dict(by_organizer), totals, sync_plan.cancel.reason,
                   sync_plan.cancel.refused, target)


def write_plan(path: Path, lines: list[PlanLine]) -> None:
    """One line per action (.xlsx or .csv by suffix), atomically; cells are made formula-safe.

    Unchanged rows are counted, not listed: like terraform plan, the sheet shows what would
    happen, and a quiet night's plan of 10,000 rows stays a short file.
    """
    order = (CREATE, UPDATE, CANCEL, KEEP, INVALID, DUPLICATE, SKIPPED)
    ordered = sorted((p for p in lines if p.action in order), key=lambda p: order.index(p.action))

    def safe(value: Any) -> Any:
        return report.neutralise(value) if isinstance(value, str) else value

    if path.suffix.lower() == ".csv":
        import csv
        import io

        def write_csv(handle: BinaryIO) -> None:
            text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
            out = csv.writer(text)
            out.writerow(PLAN_COLUMNS)
            out.writerows([safe(v) for v in line.values()] for line in ordered)
            text.flush()
            text.detach()

        atomic_write(path, write_csv)
        return
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    def write_xlsx(handle: BinaryIO) -> None:
        wb = Workbook(write_only=True)  # streamed: a term's worth of changes stays quick
        ws = wb.create_sheet("Plan")
        for letter, width in zip("ABCDEFGHI", (10, 6, 30, 40, 17, 70, 38, 30, 45), strict=True):
            ws.column_dimensions[letter].width = width
        ws.freeze_panes = "A2"
        ws.auto_filter.ref = f"A1:I{len(ordered) + 1}"
        bold = Font(bold=True)
        header = []
        for name in PLAN_COLUMNS:
            cell = WriteOnlyCell(ws, value=name)
            cell.font = bold
            header.append(cell)
        ws.append(header)
        for line in ordered:
            ws.append([safe(v) for v in line.values()])
        wb.save(handle)

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, write_xlsx)
