"""The main job as a library call: sheet in, meetings created, journal written, output sheet out.

The CLI parses arguments and calls ``run_import`` / ``validate_schedule``; tests and benchmarks call
them too. Data flows one way, one named step each:

    plan_schedule      sheet -> plan (invalid and duplicate rows become ``static_outcomes``)
    _dry_run           --dry-run: every planned row with the request it would send; stop
    apply.plan_sync    sheet vs the journal's confirmed meetings (bulkmeet.sync): create,
                       update, unchanged, orphans; apply.select: what goes to createOrGet
    _send              resolve organizers, run the createOrGet operations, record each result
                       in the journal at once (``_Recorder``), collect per-organizer notes
    apply.run_phases   the PATCHes (changed rows, options of new meetings), then the DELETEs
                       (--cancel-removed, within the safety limit), each answer recorded
    _mark_unsent       rows left unsent become pending
    _summary/_finish   counts, output sheet, summary JSON

Outcomes are keyed by ``RowOutcome.outcome_key`` = (row, session): one output line each. The
caller hands in a ``progress.Progress`` (the CLI picks a bar or log lines); the pipeline never
looks at terminals.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import BinaryIO
from zoneinfo import ZoneInfo

from bulkmeet import apply, paths, publish, report, sheets, sync
from bulkmeet import journal as journals
from bulkmeet import plan as planning
from bulkmeet.atomic import atomic_write, remove_stale_temp_files
from bulkmeet.config import Config
from bulkmeet.errors import BulkmeetError, ExitStatus, WriteError
from bulkmeet.graph import GraphGateway, HttpGraph, create_or_get_path
from bulkmeet.models import (
    CREATED,
    DUPLICATE,
    EXISTING,
    FAILED,
    INVALID,
    ME,
    PENDING,
    PLANNED,
    SKIPPED,
    UPDATED,
    MeetingInfo,
    MeetingRequest,
    MeetingResult,
    OutcomeKey,
    RowOutcome,
    Sheet,
    utc_iso,
)
from bulkmeet.progress import NoProgress, Progress
from bulkmeet.quota import MeetingQuota, this_month
from bulkmeet.runner import GUID, RetryPolicy, Runner, resolve_organizers

log = logging.getLogger(__name__)

NORMAL, FULL, RETRY_FAILED = "normal", "full", "retry-failed"

Outcomes = dict[OutcomeKey, RowOutcome]


@dataclass(frozen=True)
class RunOptions:
    schedule: Path
    config: Config
    output: Path | None = None
    sheet: str | None = None
    concurrency: int | None = None
    dry_run: bool = False
    mode: str = NORMAL  # NORMAL | FULL (re-send everything) | RETRY_FAILED (only failed rows)
    journal: Path | None = None
    summary_json: Path | None = None
    argv: tuple[str, ...] = ()
    cancel_removed: bool = False  # --cancel-removed: delete meetings of removed rows
    max_cancel: int | None = None  # --max-cancel N: allow up to N cancels this once
    calendars: Path | None = None  # .ics folder (default: [publish], else beside the output)
    handouts: Path | None = None  # handouts folder (likewise)
    report: Path | None = None  # the HTML run report (likewise)

    def publish_targets(self) -> publish.Targets:
        output = self.output or report.default_output_path(self.schedule, _kind(self))
        return publish.Targets.for_run(output, self.config.publish, calendars=self.calendars,
                                       handouts=self.handouts, report=self.report)


@dataclass
class RunOutcome:
    summary: report.RunSummary
    exit_status: ExitStatus
    output: Path
    outcomes: Outcomes = field(default_factory=dict)
    published: publish.Published | None = None  # calendars, handouts, run report
    removed: tuple[sync.RemovedMeeting, ...] = ()  # meetings of removed rows (Removed sheet)


@dataclass(frozen=True)
class _Sent:
    """What the sending step reports back to the summary."""

    requests: int = 0
    throttled: int = 0
    interrupted: bool = False
    notes: tuple[str, ...] = ()
    concurrency: str | None = None  # "concurrency settled at 24, paced at 39 requests/s"
    blocked: tuple[str, ...] = ()  # organizers with one note for all their meetings


def _kind(options: RunOptions) -> str:
    """A dry run writes NAME.dry-run.xlsx: never over the last real results."""
    return "dry-run" if options.dry_run else "results"


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def plan_schedule(schedule: Path, config: Config, sheet_name: str | None = None
                  ) -> tuple[Sheet, planning.Plan]:
    """Read and plan; raises InputError/ConfigError (exit 2) when nothing can be sent."""
    sheet = sheets.read_sheet(schedule, sheet_name)
    planning.check_columns(sheet, config)
    return sheet, planning.plan_rows(sheet, config)


def static_outcomes(the_plan: planning.Plan) -> Outcomes:
    """Outcomes known before any call: invalid and duplicate rows."""
    outcomes: Outcomes = {}
    for bad in the_plan.invalid:
        where = f"{bad.column}: " if bad.column else ""
        outcomes[(bad.row, 0)] = RowOutcome(bad.row, INVALID, external_id=bad.external_id,
                                            error=f"{where}{bad.message}")
    for dup in the_plan.duplicates:
        error = (f"Same externalId as row {dup.first_row}: only row {dup.first_row} gets a "
                 "meeting. Remove this row or change its key columns.")
        if dup.session:
            error = (f"Row {dup.first_row} of the same section already meets on this day at this "
                     f"time, so only row {dup.first_row} gets this meeting. Remove the repeated "
                     "pattern from the export, or add a column that tells the two apart to keys.")
        outcomes[(dup.row, dup.session)] = RowOutcome(
            dup.row, DUPLICATE, external_id=dup.external_id, error=error, session=dup.session)
    for skip in the_plan.skipped:
        outcomes[(skip.row, 0)] = RowOutcome(skip.row, SKIPPED, warning=f"Not a meeting: {skip.rule}.")
    return outcomes


def share_outcomes(the_plan: planning.Plan, outcomes: Outcomes) -> None:
    """One meeting per section: each further row of a section reports its section's meeting."""
    for shared in the_plan.shared:
        primary = outcomes.get((shared.primary_row, 0))
        if primary is None:
            continue
        note = (f"Same meeting as row {shared.primary_row} (one meeting per section): this "
                "row's pattern is part of that meeting.")
        outcomes[(shared.row, 0)] = replace(
            primary, row=shared.row, session=0, shared_with=shared.primary_row, request=None,
            attempts=0, warning=f"{primary.warning} {note}" if primary.warning else note)


def describe_request(req: MeetingRequest, config: Config) -> str:
    if req.organizer == ME:
        path = create_or_get_path(None)
    else:
        shown = req.organizer if GUID.match(req.organizer) else f"{{id of {req.organizer}}}"
        path = f"/users/{shown}/onlineMeetings/createOrGet"
    body = json.dumps(req.body(), ensure_ascii=False, separators=(", ", ": "))
    return f"POST /{config.graph.api_version}{path} {body}"


def outcome_from_result(req: MeetingRequest, result: MeetingResult, *,
                        reused: bool = False) -> RowOutcome:
    return RowOutcome(
        row=req.row,
        status=EXISTING if reused and result.ok else result.status,
        external_id=result.external_id,
        meeting=result.meeting,
        http_status=result.http_status,
        error=result.error,
        request_id=result.request_id,
        attempts=0 if reused else result.attempts,
        warning=result.warning,
        session=req.session,
    )


def _summary(options: RunOptions, sheet: Sheet, outcomes: Outcomes, output: Path,
             started: str, sent: _Sent = _Sent(), removed: Sequence[sync.RemovedMeeting] = (),
             cancel: sync.CancelDecision | None = None) -> report.RunSummary:
    counts = {s: 0 for s in (CREATED, EXISTING, FAILED, INVALID, DUPLICATE, PLANNED, PENDING,
                             SKIPPED, UPDATED)}
    shared = 0
    for o in outcomes.values():
        if o.shared_with is not None:  # its section's meeting, counted once under that row
            shared += 1
            continue
        counts[o.status] += 1
    with_outcome = {o.row for o in outcomes.values()}
    counts[PENDING] += sum(1 for row in sheet.rows if row.number not in with_outcome)
    cfg = options.config
    return report.RunSummary(
        schedule=str(options.schedule), output=str(output), started=started, finished=_now(),
        total_rows=len(sheet.rows), created=counts[CREATED], existing=counts[EXISTING],
        failed=counts[FAILED], invalid=counts[INVALID], duplicate=counts[DUPLICATE],
        planned=counts[PLANNED], pending=counts[PENDING], skipped=counts[SKIPPED],
        shared=shared, dry_run=options.dry_run,
        requests_sent=sent.requests, throttled=sent.throttled,
        api=f"{cfg.graph.base_url}/{cfg.graph.api_version}", interrupted=sent.interrupted,
        notes=sent.notes + _removed_notes(removed, cancel), blocked=sent.blocked,
        updated=counts[UPDATED],
        orphaned=sum(1 for r in removed if r.status != sync.REMOVED_CANCELLED),
        cancelled=sum(1 for r in removed if r.status == sync.REMOVED_CANCELLED),
        warnings=sum(1 for o in outcomes.values()  # skip rules and shared-meeting notes are not warnings
                     if o.warning and o.status != SKIPPED and o.shared_with is None),
        cancel_refused=cancel.reason if cancel is not None and cancel.refused else None,
        concurrency=sent.concurrency,
    )


def _removed_notes(removed: Sequence[sync.RemovedMeeting], cancel: sync.CancelDecision | None
                   ) -> tuple[str, ...]:
    left = sum(1 for r in removed if r.status != sync.REMOVED_CANCELLED)
    if not left:
        return ()
    if cancel is not None and cancel.reason:
        return (f"{left} meeting(s) of removed rows are still in Teams, and nothing was "
                f"cancelled: {cancel.reason}. See the Removed sheet.",)
    return (f"{left} meeting(s) of removed rows are still in Teams (see the Removed sheet): "
            "run with --cancel-removed to cancel them, or put the rows back.",)


def _exit_status(summary: report.RunSummary, interrupted: bool) -> ExitStatus:
    """Most urgent first: stopped, the cancel safety stop, failed rows, then orphans left."""
    if interrupted:
        return ExitStatus.INTERRUPTED
    if summary.cancel_refused:
        return ExitStatus.CANCEL_REFUSED
    bad = summary.failed + summary.invalid + summary.duplicate + summary.pending
    if bad:
        return ExitStatus.ROWS_FAILED
    return ExitStatus.CHANGES_PENDING if summary.orphaned else ExitStatus.OK


def _finish(options: RunOptions, sheet: Sheet, outcomes: Outcomes, summary: report.RunSummary,
            output: Path, removed: Sequence[sync.RemovedMeeting] = ()) -> None:
    report.write_output(output, sheet, outcomes, summary, dry_run=options.dry_run,
                        removed=removed, time_zone=options.config.mapping.time_zone)
    if options.summary_json:
        text = (json.dumps(summary.as_dict(), indent=2) + "\n").encode()

        def write(f: BinaryIO) -> None:
            f.write(text)

        try:
            atomic_write(options.summary_json, write)
        except OSError as exc:  # the output sheet is written: say so
            raise WriteError(
                f"Cannot write the summary JSON {options.summary_json} ({exc.strerror or exc}); "
                f"the output sheet {output} was written and every result is in the journal. "
                "Free space or fix the folder's permissions (or choose another file with "
                "--summary-json).") from None


def validate_schedule(schedule: Path, config: Config, sheet_name: str | None = None
                      ) -> tuple[Sheet, planning.Plan, Outcomes]:
    sheet, the_plan = plan_schedule(schedule, config, sheet_name)
    return sheet, the_plan, static_outcomes(the_plan)


def run_import(
    options: RunOptions,
    *,
    gateway_factory: Callable[[Config], GraphGateway] | None = None,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
) -> RunOutcome:
    """Run the whole job once. Raises InputError/ConfigError (2), AuthError (3), LockedError (5).

    Every file the run writes is checked first (``bulkmeet.paths``), and the output sheet is
    locked for the whole run, so nothing is sent before a bad path is found.
    """
    output = options.output or report.default_output_path(options.schedule, _kind(options))
    report.check_output_name(output)
    paths.check_run_paths(options.schedule, write_targets(options))
    with paths.lock_output(output, str(options.schedule)):
        remove_stale_temp_files(output)
        return _run_import(options, gateway_factory=gateway_factory, stop=stop,
                           progress=progress)


def write_targets(options: RunOptions, log_file: str | None = None
                  ) -> dict[str, tuple[Path | None, str]]:
    """Every file this run writes, by label, with the option that sets it (for the checks)."""
    output = options.output or report.default_output_path(options.schedule, _kind(options))
    return {
        "the output sheet": (output, "--output"),
        "the journal": (None if options.dry_run else _journal_path(options),
                        "--journal or [run] journal"),
        "the summary JSON": (options.summary_json, "--summary-json"),
        "the run report": (None if options.dry_run else options.publish_targets().report,
                           "--report (or [publish] report)"),
        "the log file": (Path(os.path.expanduser(log_file)) if log_file else None,
                         "--log-file or [run] log_file"),
    }


def _run_import(
    options: RunOptions,
    *,
    gateway_factory: Callable[[Config], GraphGateway] | None = None,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
) -> RunOutcome:
    started = _now()
    cfg = options.config
    output = options.output or report.default_output_path(options.schedule, _kind(options))
    sheet, the_plan = plan_schedule(options.schedule, cfg, options.sheet)
    outcomes = static_outcomes(the_plan)
    log.info("%s: %d rows, %d to send, %d invalid, %d duplicate", options.schedule,
             len(sheet.rows), len(the_plan.requests), len(the_plan.invalid),
             len(the_plan.duplicates))
    if options.dry_run:
        return _dry_run(options, sheet, the_plan, outcomes, output, started)

    journal_path = _journal_path(options)
    with journals.Journal.open(journal_path, lock=True) as journal:
        run_id = journal.start_run(schedule=str(options.schedule), argv=list(options.argv))
        limits = apply.limits_for(cfg, cancel_removed=options.cancel_removed,
                                  max_cancel=options.max_cancel)
        sync_plan = apply.plan_sync(the_plan.requests, the_plan.invalid, len(sheet.rows),
                                    journal, cfg, limits, full=options.mode == FULL,
                                    skipped=the_plan.skipped)
        to_send = apply.select(sync_plan, journal, outcomes,
                               retry_failed=options.mode == RETRY_FAILED)
        if len(to_send) < len(the_plan.requests):
            log.info("%d row(s) already done according to the journal %s; %d to send",
                     len(the_plan.requests) - len(to_send), journal_path, len(to_send))
        sent, removed = _Sent(), sync_plan.orphans
        if to_send or sync_plan.updates or apply.cancel_targets(sync_plan):
            gateway = gateway_factory(cfg) if gateway_factory else _http_gateway(
                cfg, options.concurrency)
            try:
                sent, removed = _call_graph(options, gateway, sheet, sync_plan, to_send, journal,
                                            outcomes, (output, started), stop or threading.Event(),
                                            progress or NoProgress())
            finally:
                gateway.close()
        _mark_unsent(to_send, outcomes, sent.interrupted)
        share_outcomes(the_plan, outcomes)
        apply.log_removed(removed, ZoneInfo(cfg.mapping.time_zone))
        summary = _summary(options, sheet, outcomes, output, started, sent, removed,
                           sync_plan.cancel)
        _finish(options, sheet, outcomes, summary, output, removed)
        journal.finish_run(run_id, summary.as_dict())
        published = publish.publish_run(options.publish_targets(), cfg, sheet, the_plan.requests,
                                        outcomes, summary.as_dict(), journal, removed)
    return RunOutcome(summary, published.exit_status(_exit_status(summary, sent.interrupted)),
                      output, outcomes, published, removed=tuple(removed))


def _call_graph(options: RunOptions, gateway: GraphGateway, sheet: Sheet,
                sync_plan: sync.SyncPlan, to_send: list[MeetingRequest],
                journal: journals.Journal, outcomes: Outcomes, where: tuple[Path, str],
                stop: threading.Event, progress: Progress
                ) -> tuple[_Sent, tuple[sync.RemovedMeeting, ...]]:
    """createOrGet for ``to_send``, then the sync phases (PATCH, DELETE). A journal that cannot
    be written (disk full) ends the run here, after the output sheet says what was done."""
    output, started = where
    sent = _Sent()
    try:
        if to_send:
            sent = _send(options, gateway, to_send, journal, outcomes, stop, progress)
        applied = apply.run_phases(
            sync_plan, to_send, journal, outcomes, options.config,
            lambda organizers: _runner(options, gateway, journal, organizers, stop),
            stop, retry_failed=options.mode == RETRY_FAILED)
    except journals.JournalWriteError as exc:  # disk full mid-run
        raise _output_after_journal_failure(options, sheet, to_send, outcomes, output, started,
                                            exc) from None
    return replace(sent, requests=sent.requests + applied.requests,
                   throttled=sent.throttled + applied.throttled,
                   interrupted=sent.interrupted or applied.interrupted), applied.removed


def _dry_run(options: RunOptions, sheet: Sheet, the_plan: planning.Plan, outcomes: Outcomes,
             output: Path, started: str) -> RunOutcome:
    """--dry-run: every valid row is written with the request it would send; nothing is called."""
    for req in the_plan.requests:
        # The planned subject and times fill meetingSubject/startLocal/endLocal, so a weekly
        # pattern's sessions can be checked day by day before anything is made.
        planned = MeetingInfo(meeting_id="", subject=req.subject,
                              start_utc=utc_iso(req.start) if req.start else None,
                              end_utc=utc_iso(req.end) if req.end else None)
        outcomes[req.outcome_key] = RowOutcome(
            req.row, PLANNED, external_id=req.external_id, meeting=planned,
            request=describe_request(req, options.config), session=req.session)
    share_outcomes(the_plan, outcomes)
    summary = _summary(options, sheet, outcomes, output, started)
    _finish(options, sheet, outcomes, summary, output)
    bad = summary.invalid + summary.duplicate
    return RunOutcome(summary, ExitStatus.ROWS_FAILED if bad else ExitStatus.OK, output, outcomes)


def _journal_path(options: RunOptions) -> Path:
    cfg = options.config
    if options.journal:
        return options.journal
    if cfg.run.journal:
        return Path(os.path.expanduser(cfg.run.journal))
    return journals.default_journal_path(options.schedule)


class _Recorder:
    """``on_result`` for the runner: journal first (so nothing that came back is lost), then the
    output line and the progress. A journal that cannot be written stops the run (disk full)."""

    def __init__(self, journal: journals.Journal, to_send: list[MeetingRequest],
                 outcomes: Outcomes, progress: Progress, stop: threading.Event) -> None:
        self.journal = journal
        self.by_key = {(r.organizer, r.external_id): r for r in to_send}
        self.outcomes = outcomes
        self.progress = progress
        self.stop = stop
        self.write_errors: list[journals.JournalWriteError] = []
        self._lock = threading.Lock()

    def __call__(self, result: MeetingResult) -> None:
        req = self.by_key[(result.organizer, result.external_id)]
        try:  # the meeting as Graph answered becomes its confirmed state (bulkmeet.sync)
            self.journal.record(result, state=result.state, row=req.row, section=req.section)
        except journals.JournalWriteError as exc:  # disk full: stop, say so
            self.write_errors.append(exc)
            self.stop.set()  # ... but keep this result for the output sheet
        outcome = outcome_from_result(req, result)
        with self._lock:
            self.outcomes[req.outcome_key] = outcome
        self.progress.advance()


def _send(options: RunOptions, gateway: GraphGateway, to_send: list[MeetingRequest],
          journal: journals.Journal, outcomes: Outcomes, stop: threading.Event,
          progress: Progress) -> _Sent:
    """Resolve organizers, send every request, record each result as it comes back."""
    cfg = options.config
    ids, problems = _resolve(gateway, (r.organizer for r in to_send), journal, cfg, stop)
    recorder = _Recorder(journal, to_send, outcomes, progress, stop)
    month = this_month()
    quota = MeetingQuota(journal.created_in_month(month), month,
                         identity=_user_identity(ids, journal.resolved_organizers()))
    runner = Runner(
        gateway, concurrency=options.concurrency or cfg.run.concurrency,
        max_concurrency=cfg.run.max_concurrency, batch=cfg.run.batch,
        policy=RetryPolicy(max_attempts=cfg.run.max_attempts), on_result=recorder,
        organizer_ids=ids, organizer_problems=problems, quota=quota,
        client_id=cfg.auth.client_id or None, stop=stop,
    )
    progress.start(len(to_send))
    began = time.monotonic()
    try:
        stats = runner.run(to_send)
    finally:
        progress.close()
    log.info("%d request(s) to Graph in %.1f s, %d throttled; %s", stats.requests,
             time.monotonic() - began, stats.throttled, stats.describe() or "nothing sent")
    if recorder.write_errors:
        raise recorder.write_errors[0]
    notes = _organizer_notes(stats.blocked_organizers, recorder.by_key, outcomes)
    notes += tuple(text for org, text in sorted(quota.warnings.items())
                   if org not in stats.blocked_organizers)
    return _Sent(stats.requests, stats.throttled, stop.is_set(), notes,
                 concurrency=stats.describe() or None, blocked=tuple(sorted(stats.blocked_organizers)))


def _organizer_notes(blocked: dict[str, str], by_key: dict[tuple[str, str], MeetingRequest],
                     outcomes: Outcomes) -> tuple[str, ...]:
    """One note per organizer whose rows all failed for the same reason (no access policy...)."""
    notes = []
    for upn, message in sorted(blocked.items()):
        n = sum(1 for o in outcomes.values() if o.status == FAILED and
                by_key.get((upn, o.external_id or "")) is not None)
        notes.append(f"{message} ({n} meeting(s) of this organizer failed.)")
    return tuple(notes)


def _output_after_journal_failure(options: RunOptions, sheet: Sheet,
                                  to_send: list[MeetingRequest], outcomes: Outcomes, output: Path,
                                  started: str, exc: journals.JournalWriteError
                                  ) -> journals.JournalWriteError:
    """The journal filled up mid-run: still write the output sheet (it holds every result that
    came back, journalled or not), and say in the error where the results are."""
    _mark_unsent(to_send, outcomes, True)
    summary = _summary(options, sheet, outcomes, output, started, _Sent(interrupted=True))
    try:
        _finish(options, sheet, outcomes, summary, output)
    except BulkmeetError:
        where = ("The output sheet could not be written either. The meetings made so far exist "
                 "in Teams: once there is space, run bulkmeet again and it finds them "
                 "(createOrGet returns a meeting that exists instead of making another).")
    else:
        where = (f"The results of this run so far, join links included, are in the output sheet "
                 f"{output}; the rows not sent are marked pending.")
    return journals.JournalWriteError(f"{exc} {where}")


def _mark_unsent(to_send: list[MeetingRequest], outcomes: Outcomes, interrupted: bool) -> None:
    for req in to_send:
        if req.outcome_key not in outcomes:
            outcomes[req.outcome_key] = RowOutcome(
                req.row, PENDING, external_id=req.external_id, session=req.session,
                error="Not sent: the run was stopped before this row; run bulkmeet again "
                      "to finish." if interrupted else "Not sent in this run.")


def _user_identity(ids: Mapping[str, str], known: Mapping[str, str]) -> Callable[[str], str]:
    """Organizer as written -> the user Graph counts meetings for (the object id when known;
    UPNs and ids compared without case), so the monthly quota counts each teacher once."""
    def identity(organizer: str) -> str:
        if GUID.match(organizer):
            return organizer.lower()
        oid = ids.get(organizer) or known.get(organizer.lower())  # known: lower-cased UPNs
        return (oid or organizer).lower()
    return identity


def _resolve(gateway: GraphGateway, organizers: Iterable[str], journal, cfg: Config,
             stop: threading.Event) -> tuple[dict[str, str], dict[str, str]]:
    upns = sorted({o for o in organizers if o != ME and not GUID.match(o)})
    if not upns:
        return {}, {}
    known = journal.resolved_organizers()
    ids = {u: known[u] for u in upns if u in known}
    missing = [u for u in upns if u not in ids]
    problems: dict[str, str] = {}
    if missing:
        if not cfg.graph.resolve_upns:
            return ids, {u: (f"Organizer {u} is a UPN, but resolve_upns is off in [graph]: put the "
                             "organizer's Entra object ID in the sheet, or turn resolve_upns on.")
                         for u in missing}
        log.info("resolving %d organizer address(es) to object ids", len(missing))
        found, problems = resolve_organizers(gateway, missing, concurrency=cfg.run.concurrency,
                                             stop=stop)
        for upn, oid in found.items():
            journal.remember_organizer(upn, oid)
        ids.update(found)
    return ids, problems


def _runner(options: RunOptions, gateway: GraphGateway, journal: journals.Journal,
            organizers: Iterable[str], stop: threading.Event) -> Runner:
    """A runner for PATCH/DELETE (bulkmeet.apply): same gate, retries and organizer ids."""
    cfg = options.config
    ids, problems = _resolve(gateway, organizers, journal, cfg, stop)
    return Runner(gateway, concurrency=options.concurrency or cfg.run.concurrency,
                  policy=RetryPolicy(max_attempts=cfg.run.max_attempts), organizer_ids=ids,
                  organizer_problems=problems, client_id=cfg.auth.client_id or None, stop=stop)


def _http_gateway(cfg: Config, concurrency: int | None = None) -> HttpGraph:
    from bulkmeet import auth

    tokens = auth.build_token_provider(cfg)
    auth.check_permissions(tokens.token(), delegated=tokens.delegated)  # once, before the pool starts
    return HttpGraph(cfg.graph.base_url, cfg.graph.api_version, tokens,
                     ca_bundle=cfg.graph.ca_bundle,
                     timeout=(cfg.graph.connect_timeout, cfg.graph.read_timeout),
                     pool_size=max(concurrency or cfg.run.concurrency, cfg.run.max_concurrency) + 2)


def check_organizers(the_plan: planning.Plan, cfg: Config) -> list[tuple[int, str]]:
    """validate --emulator (or a real tenant): does every UPN organizer exist? One line per row."""
    upns = sorted({r.organizer for r in the_plan.requests
                   if r.organizer != ME and not GUID.match(r.organizer)})
    if not upns:
        return []
    gateway = _http_gateway(cfg)
    try:
        _, problems = resolve_organizers(gateway, upns, concurrency=cfg.run.concurrency)
    finally:
        gateway.close()
    return [(r.row, f"{problems[r.organizer]}") for r in the_plan.requests if r.organizer in problems]
