"""The publish step: after the results are written, the files that get the links to people.

One call from the pipeline (``publish_run``) turns this run's results into ``PublishedMeeting``
records (one per meeting, however many rows share it) and writes, from those:

* calendars (``bulkmeet.calendars``): one .ics per organizer and one per section;
* handouts (``bulkmeet.handouts``): one workbook per organizer and a mail-merge CSV;
* the run report (``bulkmeet.runreport``): one HTML page beside the results.

Where things come from: times and subject from Graph's answer (what the meeting really is),
shown in the schedule's time zone; the section from the ``[publish] section`` columns (default:
the ``keys`` that are not date or time columns, e.g. ``CRN``); ``SEQUENCE`` from the journal's
count of confirmed changes; meetings whose rows are gone from the sync's removed list (cancelled
ones become ``STATUS:CANCELLED`` events).

A removed meeting has no row any more, so its section is looked up in ``sections.json`` in the
calendars folder, which remembers the section of every event written before (a cache: if it is
lost, a cancelled meeting still reaches its organizer's calendar, only not the section's).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from zoneinfo import ZoneInfo

from bulkmeet import calendars, handouts, runreport
from bulkmeet.atomic import atomic_write
from bulkmeet.config import Config, PublishSettings
from bulkmeet.models import (
    CANCELLED,
    CREATED,
    DUPLICATE,
    EXISTING,
    FAILED,
    INVALID,
    ORPHANED,
    UPDATED,
    MeetingRequest,
    MeetingResult,
    OutcomeKey,
    PublishedMeeting,
    RowOutcome,
    Sheet,
    graph_instant,
)
from bulkmeet.plan import resolve_columns

log = logging.getLogger(__name__)

SECTIONS_INDEX = "sections.json"
_OK = (CREATED, EXISTING, UPDATED)
_BLOCKED_TAIL = "row(s) of this organizer failed.)"  # pipeline's per-organizer note ends so


class RemovedLike(Protocol):
    """What the sync reports for a meeting whose row is gone (``bulkmeet.sync.RemovedMeeting``)."""

    organizer: str
    external_id: str
    subject: str | None
    start_utc: str | None
    end_utc: str | None
    join_url: str | None
    status: str
    reason: str


class JournalLike(Protocol):
    def latest(self) -> dict[tuple[str, str], MeetingResult]: ...

    def meeting_versions(self) -> dict[tuple[str, str], int]: ...


@dataclass(frozen=True)
class Targets:
    """Where this run's files for people go (None: not written)."""

    calendars: Path | None
    handouts: Path | None
    report: Path | None

    @classmethod
    def for_run(cls, output: Path, settings: PublishSettings, *, calendars: Path | None = None,
                handouts: Path | None = None, report: Path | None = None) -> Targets:
        """Command-line choices first, then ``[publish]``, then beside the results file."""
        if not settings.enabled and not (calendars or handouts or report):
            return cls(None, None, None)
        output = Path(output)
        stem = output.name[: -len(output.suffix)] if output.suffix else output.name
        stem = stem.removesuffix(".results")

        def pick(given: Path | None, configured: str | None, default: str) -> Path:
            if given is not None:
                return Path(given)
            return Path(configured) if configured else output.with_name(default)

        return cls(pick(calendars, settings.calendars, f"{stem}.calendars"),
                   pick(handouts, settings.handouts, f"{stem}.handouts"),
                   pick(report, settings.report, runreport.default_report_path(output).name))


@dataclass(frozen=True)
class Published:
    meetings: tuple[PublishedMeeting, ...]
    calendars: calendars.CalendarFiles | None
    handouts: handouts.HandoutFiles | None
    report: Path | None
    calendar_folder: Path | None = None

    def paths(self) -> list[tuple[str, Path]]:
        """(label, path) of what was written, for the lines the CLI prints after "Output:"."""
        out: list[tuple[str, Path]] = []
        if self.calendars is not None and self.calendar_folder is not None:
            out.append(("Calendars", self.calendar_folder))
        if self.handouts is not None:
            out.append(("Handouts", self.handouts.mail_merge.parent))
        if self.report is not None:
            out.append(("Report", self.report))
        return out


# -- building PublishedMeeting records -----------------------------------------------------------

def section_columns(config: Config) -> tuple[str, ...]:
    """``[publish] section``, else the mapping's keys that are not its date/time columns."""
    if config.publish.section:
        return config.publish.section
    m = config.mapping
    timed = {c for c in (m.start, m.end, m.date, m.start_time, m.end_time) if c}
    return tuple(k for k in m.keys if k not in timed)


def _cell_text(value: Any) -> str:
    """A key cell as text, the same for a CSV's "10001" and an Excel number 10001."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return " ".join(str(value).split())


def _local(text: str | None, fallback: datetime | None, tz: ZoneInfo) -> datetime | None:
    instant = graph_instant(text) or fallback
    return instant.astimezone(tz) if instant is not None else None


def published_meetings(config: Config, sheet: Sheet, requests: Sequence[MeetingRequest],
                       outcomes: Mapping[OutcomeKey, RowOutcome], *,
                       latest: Mapping[tuple[str, str], MeetingResult] | None = None,
                       versions: Mapping[tuple[str, str], int] | None = None,
                       removed: Iterable[RemovedLike] = (),
                       known_sections: Mapping[str, str] | None = None) -> list[PublishedMeeting]:
    """One record per meeting this run knows of: every ok row's meeting, then removed ones."""
    tz_name = config.mapping.time_zone
    tz = ZoneInfo(tz_name)
    resolved, _ = resolve_columns(sheet, config)
    columns = [resolved.get(c, c) for c in section_columns(config)]
    name_col = config.publish.organizer_name
    name_col = resolved.get(name_col, name_col) if name_col else None
    values = {row.number: row.values for row in sheet.rows}
    latest, versions = latest or {}, versions or {}
    found: dict[tuple[str, str], PublishedMeeting] = {}
    for req in requests:
        outcome = outcomes.get(req.outcome_key)
        if outcome is None or outcome.status not in _OK or outcome.meeting is None:
            continue
        key = (req.organizer, req.external_id)
        if key in found:
            found[key] = replace(found[key], rows=(*found[key].rows, req.row))
            continue
        m, row = outcome.meeting, values.get(req.row, {})
        recorded = latest.get(key)
        found[key] = PublishedMeeting(
            organizer=req.organizer, external_id=req.external_id,
            subject=m.subject or req.subject, start=_local(m.start_utc, req.start, tz),
            end=_local(m.end_utc, req.end, tz), time_zone=tz_name, status=outcome.status,
            organizer_name=_cell_text(row.get(name_col)) if name_col else "",
            section=" ".join(filter(None, (_cell_text(row.get(c)) for c in columns))),
            join_url=m.join_url, join_meeting_id=m.join_meeting_id, passcode=m.passcode,
            toll_number=m.toll_number, toll_free_number=m.toll_free_number,
            conference_id=m.conference_id, dialin_url=m.dialin_url, options_url=m.options_url,
            sequence=versions.get(key, 0),
            stamp=graph_instant(recorded.recorded_at) if recorded else None, rows=(req.row,))
    # rows that share a meeting without a request of their own (one meeting per section)
    by_external_id = {key[1]: key for key in found}
    for outcome in outcomes.values():
        shared = by_external_id.get(outcome.external_id or "") if outcome.shared_with else None
        if shared is not None and outcome.row not in found[shared].rows:
            found[shared] = replace(found[shared], rows=(*found[shared].rows, outcome.row))
    sections = known_sections or {}
    for gone in removed:
        key = (gone.organizer, gone.external_id)
        if key in found:
            continue
        cancelled = gone.status == CANCELLED
        found[key] = PublishedMeeting(
            organizer=gone.organizer, external_id=gone.external_id,
            subject=gone.subject or "(meeting removed from the schedule)",
            start=_local(gone.start_utc, None, tz), end=_local(gone.end_utc, None, tz),
            time_zone=tz_name, status=CANCELLED if cancelled else ORPHANED,
            section=sections.get(calendars.event_uid(*key), ""), join_url=gone.join_url,
            sequence=versions.get(key, 0) + (1 if cancelled else 0))
    return list(found.values())


# -- what the report lists ------------------------------------------------------------------------

def attention(summary_notes: Sequence[str], requests: Sequence[MeetingRequest],
              outcomes: Mapping[OutcomeKey, RowOutcome], removed: Iterable[RemovedLike] = ()
              ) -> list[runreport.Attention]:
    """What needs a person, worst first: blocked organizers (one line each, with the admin
    command), other notes, failed rows not covered by those, invalid and duplicate rows, orphans."""
    organizer_of = {r.outcome_key: r.organizer for r in requests}
    items: list[runreport.Attention] = []
    blocked: set[str] = set()
    for note in summary_notes:
        who = next((org for org in set(organizer_of.values()) if f"Organizer {org} " in note), None)
        if note.endswith(_BLOCKED_TAIL) and who:
            blocked.add(who)
            items.append(runreport.Attention("blocked organizer", note, organizer=who))
        else:
            items.append(runreport.Attention("note", note))
    for kind in (FAILED, INVALID, DUPLICATE):
        for key, o in sorted(outcomes.items()):
            org = organizer_of.get(key)
            if o.status == kind and not (kind == FAILED and org in blocked):
                items.append(runreport.Attention(kind, o.error or kind, row=o.row, organizer=org))
    for gone in removed:
        if gone.status != CANCELLED:
            when = graph_instant(gone.start_utc)
            items.append(runreport.Attention(
                gone.status, f"{gone.subject or gone.external_id}"
                f"{' at ' + when.strftime('%Y-%m-%d %H:%M UTC') if when else ''}: "
                f"{gone.reason or 'its row is gone from the schedule; the meeting still exists'}",
                organizer=gone.organizer))
    return items


def organizer_lines(meetings: Sequence[PublishedMeeting], requests: Sequence[MeetingRequest],
                    outcomes: Mapping[OutcomeKey, RowOutcome], files: Published | None = None
                    ) -> list[runreport.OrganizerLine]:
    failed: dict[str, int] = {}
    for r in requests:
        o = outcomes.get(r.outcome_key)
        if o is not None and o.status == FAILED:
            failed[r.organizer] = failed.get(r.organizer, 0) + 1
    groups: dict[str, list[PublishedMeeting]] = {org: [] for org in failed}
    for m in meetings:
        groups.setdefault(m.organizer, []).append(m)
    lines = []
    for org in sorted(groups):
        items = groups[org]
        live = [m for m in items if not m.cancelled]
        starts = sorted(m.start for m in live if m.start is not None)
        name = next((m.organizer_name for m in items if m.organizer_name), org)
        lines.append(runreport.OrganizerLine(
            org, name, len(live), failed.get(org, 0), len(items) - len(live),
            starts[0] if starts else None, starts[-1] if starts else None,
            files.handouts.workbooks.get(org) if files and files.handouts else None,
            files.calendars.organizers.get(org) if files and files.calendars else None))
    return lines


# -- the step ---------------------------------------------------------------------------------

def _read_sections(folder: Path | None) -> dict[str, str]:
    if folder is None:
        return {}
    try:
        data = json.loads((folder / SECTIONS_INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_sections(folder: Path, meetings: Sequence[PublishedMeeting], known: dict[str, str]) -> None:
    merged = dict(known)
    merged.update({calendars.event_uid(m.organizer, m.external_id): m.section
                   for m in meetings if m.section})
    text = (json.dumps(merged, indent=1, sort_keys=True) + "\n").encode()

    def write(handle: BinaryIO) -> None:
        handle.write(text)

    atomic_write(folder / SECTIONS_INDEX, write)


def publish_run(targets: Targets, config: Config, sheet: Sheet, requests: Sequence[MeetingRequest],
                outcomes: Mapping[OutcomeKey, RowOutcome], summary: Mapping[str, Any],
                journal: JournalLike | None = None, removed: Sequence[RemovedLike] = ()
                ) -> Published:
    """Write calendars, handouts and the run report for this run (see the module docstring).

    Raises ``calendars.PublishError`` (exit 6) when a file cannot be written; the results sheet
    and the journal are complete by then, so nothing is lost and the next run rewrites them.
    """
    known = _read_sections(targets.calendars)
    meetings = published_meetings(
        config, sheet, requests, outcomes, removed=removed, known_sections=known,
        latest=journal.latest() if journal else None,
        versions=journal.meeting_versions() if journal else None)
    tz = config.mapping.time_zone
    cal_files = hand_files = None
    if meetings and targets.calendars is not None:
        cal_files = calendars.write_calendars(targets.calendars, meetings, time_zone=tz)
        _write_sections(targets.calendars, meetings, known)
        log.info("calendars: %d organizer and %d section file(s) in %s", len(cal_files.organizers),
                 len(cal_files.sections), targets.calendars)
    if meetings and targets.handouts is not None:
        hand_files = handouts.write_handouts(
            targets.handouts, meetings, time_zone=tz,
            calendars=cal_files.organizers if cal_files else None)
        log.info("handouts: %d workbook(s) and %s", len(hand_files.workbooks), hand_files.mail_merge)
    published = Published(tuple(meetings), cal_files, hand_files, None, targets.calendars)
    if targets.report is None:
        return published
    files = {"results": Path(str(summary.get("output", "")))} if summary.get("output") else {}
    if hand_files:
        files["mail merge"] = hand_files.mail_merge
    if targets.calendars and cal_files:
        files["calendars"] = targets.calendars
    report_path = runreport.write_run_report(
        targets.report, summary, meetings=meetings, time_zone=tz, files=files,
        attention=attention(tuple(summary.get("notes") or ()), requests, outcomes, removed),
        organizers=organizer_lines(meetings, requests, outcomes, published))
    log.info("run report: %s", report_path)
    return replace(published, report=report_path)
