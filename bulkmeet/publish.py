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

Each folder keeps a ``bulkmeet-index.json``, a cache (if it is lost, everything is rewritten):
the digest of what each file was made from, so an unchanged file is not serialised again
(``calendars.Digests``), and in the calendars folder the section of every event written before:
a removed meeting has no row any more, and its section is how a cancellation still reaches the
students' calendar.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar
from zoneinfo import ZoneInfo

from bulkmeet import calendars, handouts, runreport
from bulkmeet.atomic import atomic_write
from bulkmeet.config import Config, PublishSettings
from bulkmeet.errors import ExitStatus
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
from bulkmeet.sync import RemovedMeeting

log = logging.getLogger(__name__)

INDEX = "bulkmeet-index.json"  # per folder: what each file was made from, sections of events
_OK = (CREATED, EXISTING, UPDATED)


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
        if not settings.enabled:  # only what the command line names
            return cls(calendars, handouts, report)
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
    errors: tuple[str, ...] = ()  # files that could not be written (logged; exit status 6)

    def exit_status(self, status: ExitStatus) -> ExitStatus:
        """The run's status, made WRITE_FAILED when a file for people is missing."""
        if self.errors and status in (ExitStatus.OK, ExitStatus.ROWS_FAILED):
            return ExitStatus.WRITE_FAILED
        return status

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
                       removed: Iterable[RemovedMeeting] = (),
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
              outcomes: Mapping[OutcomeKey, RowOutcome], removed: Iterable[RemovedMeeting] = (),
              blocked: Iterable[str] = ()) -> list[runreport.Attention]:
    """What needs a person, worst first: blocked organizers (one line each, with the admin
    command), other notes, failed rows not covered by those, invalid and duplicate rows, orphans."""
    organizer_of = {r.outcome_key: r.organizer for r in requests}
    items: list[runreport.Attention] = []
    blocked = set(blocked)  # the summary says which organizers have one note for all their rows
    for note in summary_notes:
        who = next((org for org in sorted(blocked) if f"Organizer {org} " in note), None)
        if who:
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

def _read_index(folder: Path | None) -> dict[str, dict[str, str]]:
    """``bulkmeet-index.json`` of a folder: {"sections": {uid: section}, "files": {path: digest}}."""
    if folder is None:
        return {}
    try:
        data = json.loads((folder / INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {part: {str(k): str(v) for k, v in table.items()}
            for part, table in data.items() if isinstance(table, dict)}


def _write_index(folder: Path, digests: calendars.Digests,
                 sections: Mapping[str, str] | None = None) -> None:
    data: dict[str, Mapping[str, str]] = {"files": digests.current}
    if sections is not None:
        data["sections"] = sections
    text = (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()

    def write(handle: BinaryIO) -> None:
        handle.write(text)

    atomic_write(folder / INDEX, write)


def _sections(meetings: Sequence[PublishedMeeting], known: Mapping[str, str]) -> dict[str, str]:
    merged = dict(known)
    merged.update({calendars.event_uid(m.organizer, m.external_id): m.section
                   for m in meetings if m.section})
    return merged


def publish_run(targets: Targets, config: Config, sheet: Sheet, requests: Sequence[MeetingRequest],
                outcomes: Mapping[OutcomeKey, RowOutcome], summary: Mapping[str, Any],
                journal: JournalLike | None = None, removed: Sequence[RemovedMeeting] = ()
                ) -> Published:
    """Write calendars, handouts and the run report for this run (see the module docstring).

    A file that cannot be written is logged as an error and listed in ``Published.errors``
    (the run then exits 6); the others are still written. The results sheet and the journal are
    complete by then, so nothing is lost and the next run rewrites the files.
    """
    if targets.calendars is None and targets.handouts is None and targets.report is None:
        return Published((), None, None, None)  # nothing asked for: not even the journal read
    cal_index, hand_index = _read_index(targets.calendars), _read_index(targets.handouts)
    known = cal_index.get("sections", {})
    meetings = published_meetings(
        config, sheet, requests, outcomes, removed=removed, known_sections=known,
        latest=journal.latest() if journal else None,
        versions=journal.meeting_versions() if journal else None)
    tz = config.mapping.time_zone
    errors: list[str] = []
    cal_files = hand_files = None
    cal_dir, hand_dir, report = targets.calendars, targets.handouts, targets.report
    if meetings and cal_dir is not None:
        cal_digests = calendars.Digests(cal_index.get("files"))
        cal_files = _attempt(errors, lambda: calendars.write_calendars(
            cal_dir, meetings, time_zone=tz, digests=cal_digests))
        _attempt(errors, lambda: _write_index(cal_dir, cal_digests, _sections(meetings, known)))
    organizer_files = cal_files.organizers if cal_files else None
    if meetings and hand_dir is not None:
        hand_digests = calendars.Digests(hand_index.get("files"))
        hand_files = _attempt(errors, lambda: handouts.write_handouts(
            hand_dir, meetings, time_zone=tz, calendars=organizer_files, digests=hand_digests))
        _attempt(errors, lambda: _write_index(hand_dir, hand_digests))
    published = Published(tuple(meetings), cal_files, hand_files, None, targets.calendars)
    if report is not None:
        report_path = _attempt(errors, lambda: runreport.write_run_report(
            report, summary, meetings=meetings, time_zone=tz,
            files=_report_links(summary, published),
            attention=attention(tuple(summary.get("notes") or ()), requests, outcomes, removed,
                                blocked=summary.get("blocked") or ()),
            organizers=organizer_lines(meetings, requests, outcomes, published)))
        published = replace(published, report=report_path)
    for label, path in published.paths():
        log.info("%s: %s", label.lower(), path)
    return replace(published, errors=tuple(errors))


T = TypeVar("T")


def _attempt(errors: list[str], write: Callable[[], T]) -> T | None:
    """Run one writer; a file that cannot be written is an error for the log, not a stop."""
    try:
        return write()
    except calendars.PublishError as exc:
        errors.append(str(exc))
    except OSError as exc:  # bulkmeet-index.json
        errors.append(f"Cannot write an index file ({exc.strerror or exc}): free disk "
                      "space, then run bulkmeet again (nothing is sent again).")
    log.error("%s", errors[-1])
    return None


def _report_links(summary: Mapping[str, Any], published: Published) -> dict[str, Path]:
    files = {"results": Path(str(summary["output"]))} if summary.get("output") else {}
    if published.handouts:
        files["mail merge"] = published.handouts.mail_merge
    if published.calendars and published.calendar_folder:
        files["calendars"] = published.calendar_folder
    return files
