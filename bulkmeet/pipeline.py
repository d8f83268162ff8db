"""The main job as a library call: sheet in, meetings created, journal written, output sheet out.

The CLI parses arguments and calls ``run_import`` / ``validate_schedule``; tests and benchmarks call
them too. Data flows one way: sheets -> plan -> journal (skip what is done) -> runner -> journal
(each result at once) -> report.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from bulkmeet import journal as journals
from bulkmeet import plan as planning
from bulkmeet import report, sheets
from bulkmeet.atomic import atomic_write
from bulkmeet.config import Config
from bulkmeet.errors import AuthError, ExitStatus
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
    MeetingRequest,
    MeetingResult,
    RowOutcome,
    Sheet,
)
from bulkmeet.runner import GUID, RetryPolicy, Runner, resolve_organizers

log = logging.getLogger(__name__)

NORMAL, FULL, RETRY_FAILED = "normal", "full", "retry-failed"


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
    progress: bool | None = None  # None: a bar only when stderr is a terminal
    summary_json: Path | None = None
    argv: tuple[str, ...] = ()


@dataclass
class RunOutcome:
    summary: report.RunSummary
    exit_status: ExitStatus
    output: Path
    outcomes: dict[int, RowOutcome] = field(default_factory=dict)


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def plan_schedule(schedule: Path, config: Config, sheet_name: str | None = None
                  ) -> tuple[Sheet, planning.Plan]:
    """Read and plan; raises InputError/ConfigError (exit 2) when nothing can be sent."""
    sheet = sheets.read_sheet(schedule, sheet_name)
    planning.check_columns(sheet, config)
    return sheet, planning.plan_rows(sheet, config)


def static_outcomes(the_plan: planning.Plan) -> dict[int, RowOutcome]:
    """Outcomes known before any call: invalid and duplicate rows."""
    outcomes: dict[int, RowOutcome] = {}
    for bad in the_plan.invalid:
        where = f"{bad.column}: " if bad.column else ""
        outcomes[bad.row] = RowOutcome(bad.row, INVALID, external_id=bad.external_id,
                                       error=f"{where}{bad.message}")
    for dup in the_plan.duplicates:
        outcomes[dup.row] = RowOutcome(
            dup.row, DUPLICATE, external_id=dup.external_id,
            error=f"Same externalId as row {dup.first_row}: only row {dup.first_row} gets a "
                  "meeting. Remove this row or change its key columns.")
    return outcomes


def describe_request(req: MeetingRequest, config: Config) -> str:
    if req.organizer == ME:
        path = create_or_get_path(None)
    else:
        shown = req.organizer if GUID.match(req.organizer) else f"{{id of {req.organizer}}}"
        path = f"/users/{shown}/onlineMeetings/createOrGet"
    body = json.dumps(req.body(), ensure_ascii=False, separators=(", ", ": "))
    return f"POST /{config.graph.api_version}{path} {body}"


def outcome_from_result(row: int, result: MeetingResult, *, reused: bool = False) -> RowOutcome:
    return RowOutcome(
        row=row,
        status=EXISTING if reused and result.ok else result.status,
        external_id=result.external_id,
        meeting=result.meeting,
        http_status=result.http_status,
        error=result.error,
        request_id=result.request_id,
        attempts=0 if reused else result.attempts,
        warning=result.warning,
    )


def _summary(options: RunOptions, sheet: Sheet, outcomes: dict[int, RowOutcome], output: Path,
             started: str, *, requests_sent: int = 0, throttled: int = 0,
             interrupted: bool = False, notes: tuple[str, ...] = ()):
    counts = {s: 0 for s in (CREATED, EXISTING, FAILED, INVALID, DUPLICATE, PLANNED, PENDING)}
    for row in sheet.rows:
        o = outcomes.get(row.number)
        counts[o.status if o else PENDING] += 1
    cfg = options.config
    return report.RunSummary(
        schedule=str(options.schedule), output=str(output), started=started, finished=_now(),
        total_rows=len(sheet.rows), created=counts[CREATED], existing=counts[EXISTING],
        failed=counts[FAILED], invalid=counts[INVALID], duplicate=counts[DUPLICATE],
        planned=counts[PLANNED], pending=counts[PENDING], dry_run=options.dry_run,
        requests_sent=requests_sent, throttled=throttled,
        api=f"{cfg.graph.base_url}/{cfg.graph.api_version}", interrupted=interrupted, notes=notes,
    )


def _exit_status(summary, interrupted: bool) -> ExitStatus:
    if interrupted:
        return ExitStatus.INTERRUPTED
    bad = summary.failed + summary.invalid + summary.duplicate + summary.pending
    return ExitStatus.ROWS_FAILED if bad else ExitStatus.OK


def _finish(options: RunOptions, sheet: Sheet, outcomes: dict[int, RowOutcome], summary,
            output: Path) -> None:
    report.write_output(output, sheet, outcomes, summary, dry_run=options.dry_run)
    if options.summary_json:
        data = summary.as_dict()
        atomic_write(options.summary_json,
                     lambda f: f.write((json.dumps(data, indent=2) + "\n").encode()))


def validate_schedule(schedule: Path, config: Config, sheet_name: str | None = None
                      ) -> tuple[Sheet, planning.Plan, dict[int, RowOutcome]]:
    sheet, the_plan = plan_schedule(schedule, config, sheet_name)
    return sheet, the_plan, static_outcomes(the_plan)


class _Progress:
    """tqdm on a terminal; under cron a log line at most every 30 s, never a bar in the mail."""

    def __init__(self, total: int, enabled: bool | None) -> None:
        self.total = total
        self.done = 0
        self.bar = None
        self._lock = threading.Lock()
        self._last_log = time.monotonic()
        use_bar = sys.stderr.isatty() if enabled is None else enabled
        if use_bar and total:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="row", desc="meetings", file=sys.stderr,
                            dynamic_ncols=True, leave=False)

    def step(self) -> None:
        with self._lock:
            self.done += 1
            if self.bar is not None:
                self.bar.update(1)
                return
            if time.monotonic() - self._last_log >= 30:
                log.info("%d of %d rows sent (%d%%)", self.done, self.total,
                         100 * self.done // max(self.total, 1))
                self._last_log = time.monotonic()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_import(
    options: RunOptions,
    *,
    gateway_factory: Callable[[Config], GraphGateway] | None = None,
    stop: threading.Event | None = None,
) -> RunOutcome:
    """Run the whole job once. Raises InputError/ConfigError (2), AuthError (3), LockedError (5)."""
    started = _now()
    cfg = options.config
    output = options.output or report.default_output_path(options.schedule)
    sheet, the_plan = plan_schedule(options.schedule, cfg, options.sheet)
    outcomes = static_outcomes(the_plan)
    log.info("%s: %d rows, %d to send, %d invalid, %d duplicate", options.schedule,
             len(sheet.rows), len(the_plan.requests), len(the_plan.invalid),
             len(the_plan.duplicates))

    if options.dry_run:
        for req in the_plan.requests:
            outcomes[req.row] = RowOutcome(req.row, PLANNED, external_id=req.external_id,
                                           request=describe_request(req, cfg))
        summary = _summary(options, sheet, outcomes, output, started)
        _finish(options, sheet, outcomes, summary, output)
        bad = summary.invalid + summary.duplicate
        return RunOutcome(summary, ExitStatus.ROWS_FAILED if bad else ExitStatus.OK, output,
                          outcomes)

    journal_path = options.journal or (Path(os.path.expanduser(cfg.run.journal)) if cfg.run.journal
                                       else journals.default_journal_path(options.schedule))
    with journals.Journal.open(journal_path, lock=True) as journal:
        run_id = journal.start_run(schedule=str(options.schedule), argv=list(options.argv))
        to_send, changed = _select(the_plan.requests, journal, options.mode, outcomes)
        if len(to_send) < len(the_plan.requests):
            log.info("%d row(s) already done according to the journal %s; %d to send",
                     len(the_plan.requests) - len(to_send), journal_path, len(to_send))
        stop = stop or threading.Event()
        requests_sent = throttled = 0
        notes: list[str] = []
        interrupted = False
        if to_send:
            gateway = gateway_factory(cfg) if gateway_factory else _http_gateway(
                cfg, options.concurrency)
            try:
                ids, problems = _resolve(gateway, to_send, journal, cfg, stop)
                rows_by_key = {(r.organizer, r.external_id): r for r in to_send}
                progress = _Progress(len(to_send), options.progress)
                lock = threading.Lock()

                write_errors: list[journals.JournalWriteError] = []

                def on_result(result: MeetingResult) -> None:
                    try:
                        journal.record(result)
                    except journals.JournalWriteError as exc:  # disk full: stop, say so
                        write_errors.append(exc)
                        stop.set()
                        return
                    req = rows_by_key[(result.organizer, result.external_id)]
                    outcome = outcome_from_result(req.row, result)
                    if (result.status == EXISTING and not outcome.warning
                            and (req.organizer, req.external_id) in changed):
                        outcome = replace(outcome, warning=(
                            "The row changed since its meeting was made; createOrGet does not "
                            "update meetings, so Teams keeps the earlier details."))
                    with lock:
                        outcomes[req.row] = outcome
                    progress.step()

                runner = Runner(
                    gateway, concurrency=options.concurrency or cfg.run.concurrency,
                    policy=RetryPolicy(max_attempts=cfg.run.max_attempts),
                    on_result=on_result, organizer_ids=ids, client_id=cfg.auth.client_id or None,
                    stop=stop,
                )
                for upn, message in problems.items():
                    runner.stats.blocked_organizers[upn] = message
                began = time.monotonic()
                stats = runner.run(to_send)
                progress.close()
                log.info("%d request(s) to Graph in %.1f s, %d throttled", stats.requests,
                         time.monotonic() - began, stats.throttled)
                if write_errors:
                    raise write_errors[0]
                requests_sent += stats.requests
                throttled = stats.throttled
                interrupted = stop.is_set()
                for upn, message in sorted(runner.stats.blocked_organizers.items()):
                    n = sum(1 for o in outcomes.values() if o.status == FAILED and
                            rows_by_key.get((upn, o.external_id or "")) is not None)
                    notes.append(f"{message} ({n} row(s) of this organizer failed.)")
            finally:
                close = getattr(gateway, "close", None)
                if close:
                    close()
        for req in to_send:
            if req.row not in outcomes:
                outcomes[req.row] = RowOutcome(
                    req.row, PENDING, external_id=req.external_id,
                    error="Not sent: the run was stopped before this row; run bulkmeet again "
                          "to finish." if interrupted else "Not sent in this run.")
        summary = _summary(options, sheet, outcomes, output, started,
                           requests_sent=requests_sent, throttled=throttled,
                           interrupted=interrupted, notes=tuple(notes))
        _finish(options, sheet, outcomes, summary, output)
        journal.finish_run(run_id, summary.as_dict())
    return RunOutcome(summary, _exit_status(summary, interrupted), output, outcomes)


def _select(requests, journal, mode: str, outcomes: dict[int, RowOutcome]
            ) -> tuple[list[MeetingRequest], set[tuple[str, str]]]:
    """Which rows go to Graph: new, failed, or changed ones (all with --full)."""
    latest = journal.latest()
    to_send: list[MeetingRequest] = []
    changed: set[tuple[str, str]] = set()
    for req in requests:
        key = (req.organizer, req.external_id)
        prev = latest.get(key)
        if mode == FULL:
            to_send.append(req)
        elif prev is not None and prev.ok:
            if prev.fingerprint == req.fingerprint() or mode == RETRY_FAILED:
                outcomes[req.row] = outcome_from_result(req.row, prev, reused=True)
            else:
                changed.add(key)
                to_send.append(req)
        elif mode == RETRY_FAILED and prev is None:
            outcomes[req.row] = RowOutcome(
                req.row, PENDING, external_id=req.external_id,
                error="Not sent: --retry-failed sends only rows that failed before.")
        else:
            to_send.append(req)
    return to_send, changed


def _resolve(gateway: GraphGateway, requests: list[MeetingRequest], journal, cfg: Config,
             stop: threading.Event) -> tuple[dict[str, str], dict[str, str]]:
    upns = sorted({r.organizer for r in requests if r.organizer != ME and not GUID.match(r.organizer)})
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


def _http_gateway(cfg: Config, concurrency: int | None = None) -> HttpGraph:
    from bulkmeet import auth

    tokens = auth.build_token_provider(cfg)
    check_permissions(tokens.token(), delegated=tokens.delegated)  # once, before the pool starts
    return HttpGraph(cfg.graph.base_url, cfg.graph.api_version, tokens,
                     ca_bundle=cfg.graph.ca_bundle,
                     timeout=(cfg.graph.connect_timeout, cfg.graph.read_timeout),
                     pool_size=(concurrency or cfg.run.concurrency) + 2)


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


def check_permissions(token: str, *, delegated: bool) -> None:
    """Fail before the first row when the token cannot create meetings at all (exit 3).

    Without this, a missing admin consent shows up as the same 403 on every row.
    """
    import jwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return  # not a JWT we can read: let Graph decide
    if delegated:
        scopes = str(claims.get("scp", "")).split()
        if "OnlineMeetings.ReadWrite" not in scopes and "OnlineMeetings.ReadWrite.All" not in scopes:
            raise AuthError(
                "Your sign-in has no OnlineMeetings.ReadWrite permission: add that delegated "
                "permission to the app registration, grant consent, then run `bulkmeet login` again.")
        return
    roles = claims.get("roles") or []
    if "OnlineMeetings.ReadWrite.All" not in roles:
        raise AuthError(
            "The app's token has no OnlineMeetings.ReadWrite.All role: in the Azure portal open the "
            "app registration > API permissions, add Microsoft Graph > Application permissions > "
            "OnlineMeetings.ReadWrite.All, and click 'Grant admin consent'.")
