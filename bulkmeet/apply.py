"""Carrying out the sync plan: which rows go to createOrGet, then the PATCHes, then the DELETEs,
each answer recorded in the journal the moment it arrives.

Why the order and the bookkeeping (crash safety, issue "kill -9 during a PATCH or DELETE"):

* createOrGet first, then every update in one pass: a new meeting whose options differ from the
  sheet, an existing one whose row changed. The update is decided against the state Graph
  *confirmed* (the journal's ``meetings``), re-read after createOrGet, so a new meeting's options
  are compared with what Graph really made.
* A PATCH is recorded as applied only when Graph's answer shows the new values
  (``sync.unconfirmed``). A run killed mid-PATCH leaves the old state in the journal; the next run
  sees the difference again and sends the same PATCH (it sets values, so sending it twice is
  harmless). Nothing is half-recorded: the result row, the new state and the log entry are one
  transaction.
* A DELETE is preceded by marking the meeting ``deleting`` in the journal. A run killed after that
  finishes the cancel next time (even without --cancel-removed: the operator already chose it),
  and a DELETE answered 404 counts as done, so nothing is deleted twice and a meeting that is
  being cancelled is never mistaken for an active one.
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from bulkmeet import sync
from bulkmeet.config import Config
from bulkmeet.graph import CANCEL, UPDATE, GraphGateway, GraphResponse
from bulkmeet.journal import Journal, JournalWriteError
from bulkmeet.models import (
    CREATED,
    EXISTING,
    FAILED,
    PENDING,
    UPDATED,
    InvalidRow,
    MeetingInfo,
    MeetingRequest,
    MeetingResult,
    MeetingState,
    OutcomeKey,
    RowOutcome,
    SkippedRow,
)
from bulkmeet.runner import Completed, Operation, Runner
from bulkmeet.sync import JournalledMeeting, RemovedMeeting, SyncPlan, Update

log = logging.getLogger(__name__)

Outcomes = dict[OutcomeKey, RowOutcome]
MakeRunner = Callable[[Iterable[str]], Runner]  # organizers -> a runner with their ids resolved
LOG_LINES = 20  # orphans listed one per line in the log, then a count


@dataclass(frozen=True)
class Applied:
    """What the update and cancel phases did, for the summary."""

    requests: int = 0
    throttled: int = 0
    removed: tuple[RemovedMeeting, ...] = ()
    interrupted: bool = False


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(req: MeetingRequest) -> tuple[str, str]:
    return (req.organizer, req.external_id)


# -- which rows are sent ----------------------------------------------------------------------

def select(plan: SyncPlan, journal: Journal, outcomes: Outcomes, *, retry_failed: bool
           ) -> list[MeetingRequest]:
    """Fill in the rows that need no createOrGet; return those that do.

    Unchanged rows report the meeting from the journal (``existing``, no call). Rows with an
    update get a ``pending`` line now, replaced when the PATCH is answered, so a run stopped
    before the update phase says what was left undone. ``--retry-failed`` sends only rows whose
    last createOrGet failed.
    """
    remember_sections(plan, journal)
    latest = journal.latest()
    book = plan.journalled
    for req in plan.unchanged:
        outcomes[req.outcome_key] = _journal_line(req, latest.get(_key(req)), book.get(_key(req)))
    retried = {_key(u.request) for u in retry_updates(plan, latest)} if retry_failed else set()
    for update in plan.updates:
        req = update.request
        line = _journal_line(req, latest.get(_key(req)), book.get(_key(req)))
        why = ("--retry-failed sends only rows that failed before; a normal run applies it"
               if retry_failed and _key(req) not in retried
               else "the run stopped before sending it; run bulkmeet again")
        outcomes[req.outcome_key] = replace(line, status=PENDING, error=(
            f"Not updated yet ({update.description}): {why}."))
    to_send = []
    for req in plan.creates:
        prev = latest.get(_key(req))
        if retry_failed and (prev is None or prev.ok):
            outcomes[req.outcome_key] = RowOutcome(
                req.row, PENDING, external_id=req.external_id, session=req.session,
                error="Not sent: --retry-failed sends only rows that failed before.")
            continue
        to_send.append(req)
    return to_send


def retry_updates(plan: SyncPlan, latest: Mapping[tuple[str, str], MeetingResult]
                  ) -> tuple[Update, ...]:
    """--retry-failed: only the updates whose last attempt failed."""
    return tuple(u for u in plan.updates
                 if (prev := latest.get(_key(u.request))) is not None and not prev.ok)


def _journal_line(req: MeetingRequest, prev: MeetingResult | None,
                  meeting: JournalledMeeting | None) -> RowOutcome:
    info = prev.meeting if prev is not None else None
    if info is None and meeting is not None:
        info = MeetingInfo(meeting_id=meeting.meeting_id, join_url=meeting.join_url,
                           start_utc=meeting.state.start, end_utc=meeting.state.end,
                           subject=meeting.state.subject)
    return RowOutcome(req.row, EXISTING, external_id=req.external_id, meeting=info,
                      http_status=prev.http_status if prev else None,
                      request_id=prev.request_id if prev else None, attempts=0,
                      warning=prev.warning if prev and prev.ok else None, session=req.session)


# -- updates ----------------------------------------------------------------------------------

def updates_after_create(plan: SyncPlan, sent: Sequence[MeetingRequest], journal: Journal,
                         outcomes: Outcomes, tz: ZoneInfo
                         ) -> tuple[list[Update], Mapping[tuple[str, str], JournalledMeeting]]:
    """Every PATCH this run sends: the plan's updates, and the rows createOrGet just answered
    whose meeting differs from the sheet (new options; an existing meeting's old times). Also
    returns the journal's meetings it compared with."""
    book = journal.meetings() if sent else plan.journalled  # createOrGet added meetings
    candidates = [u.request for u in plan.updates]
    candidates += [r for r in sent if (o := outcomes.get(r.outcome_key)) is not None and
                   o.status in (CREATED, EXISTING)]
    out = []
    for req in candidates:
        meeting = book.get(_key(req))
        if meeting is None or meeting.status != sync.ACTIVE:
            continue
        update = sync.plan_update(req, meeting, tz)
        if update is not None:
            out.append(update)
    return out, book


class _Updates:
    """``on_done`` of the PATCH phase: check the answer, record, write the output line."""

    def __init__(self, runner: Runner, journal: Journal, book: dict[tuple[str, str],
                 JournalledMeeting], outcomes: Outcomes) -> None:
        self.runner, self.journal, self.book, self.outcomes = runner, journal, book, outcomes
        self._lock = threading.Lock()
        self.write_errors: list[JournalWriteError] = []

    def __call__(self, done: Completed) -> None:
        try:
            self._done(done)
        except JournalWriteError as exc:  # disk full: stop sending, report it after the phase
            self.write_errors.append(exc)
            self.runner.stop.set()

    def operation(self, update: Update) -> Operation:
        meeting = self.book[_key(update.request)]
        body = dict(update.body)
        text = json.dumps(body, separators=(",", ":"), sort_keys=True)

        def call(gateway: GraphGateway, organizer_id: str | None) -> GraphResponse:
            self.journal.update_sent(meeting, text)  # logged before each attempt goes out
            return gateway.update_meeting(organizer_id, update.meeting_id, body)

        return Operation(call, organizer=update.request.organizer, key=update,
                         done=frozenset({200}), organizer_404=False)

    def _done(self, done: Completed) -> None:
        update: Update = done.operation.key
        req = update.request
        meeting = self.book[_key(req)]
        prior = self.outcomes.get(req.outcome_key)
        earlier = (prior.attempts or 0) if prior is not None and prior.status != PENDING else 0
        attempts = earlier + done.attempts  # createOrGet's and the PATCH's, for this run
        response = done.response
        wanted = MeetingState.desired(req)
        if done.ok and response is not None and isinstance(response.body, dict):
            answer = MeetingState.from_graph(response.body)
            missing = sync.unconfirmed(wanted, answer, update.changes)
            if not missing:
                info = MeetingInfo.from_graph(response.body)
                result = MeetingResult(
                    external_id=req.external_id, organizer=req.organizer, status=UPDATED,
                    fingerprint=req.fingerprint(), http_status=response.status, meeting=info,
                    request_id=response.request_id, attempts=done.attempts, recorded_at=_now(),
                    changes=update.description)
                self.journal.update_confirmed(meeting, sync.merged_state(wanted, answer), result,
                                              row=req.row)
                status = CREATED if prior is not None and prior.status == CREATED else UPDATED
                self._line(req, RowOutcome(
                    req.row, status, external_id=req.external_id, meeting=info,
                    http_status=response.status, request_id=response.request_id,
                    attempts=attempts, changes=update.description, session=req.session))
                return
            error = (f"Graph answered the update ({update.description}) with {response.status}, "
                     f"but the meeting it sent back does not show the new {', '.join(missing)}: "
                     "nothing is recorded as changed, and the next run sends the update again.")
        elif response is not None and response.status == 404:
            self.journal.forget(meeting, "update answered 404")
            error = ("The meeting is no longer in Teams (deleted outside bulkmeet?), so it could "
                     f"not be updated ({update.description}); the next run makes a new one for "
                     "this row.")
        else:
            reason = done.error or (self.runner.describe(req.organizer, response, done.attempts,
                                                         UPDATE)
                                    if response is not None else "it was never sent")
            error = f"The update ({update.description}) was not applied: {reason}"
        kept = prior.meeting if prior is not None else None
        self.journal.operation_failed(meeting, "update", error, MeetingResult(
            external_id=req.external_id, organizer=req.organizer, status=FAILED,
            fingerprint=req.fingerprint(), http_status=response.status if response else None,
            meeting=kept, error=error, error_code=response.error_code if response else None,
            request_id=response.request_id if response else None, attempts=done.attempts,
            recorded_at=_now()))
        self._line(req, RowOutcome(
            req.row, FAILED, external_id=req.external_id, meeting=kept,
            http_status=response.status if response else None, error=error,
            request_id=response.request_id if response else None, attempts=attempts,
            session=req.session))

    def _line(self, req: MeetingRequest, outcome: RowOutcome) -> None:
        with self._lock:
            self.outcomes[req.outcome_key] = outcome


def send_updates(make_runner: MakeRunner, journal: Journal, updates: Sequence[Update],
                 outcomes: Outcomes, book: Mapping[tuple[str, str], JournalledMeeting]
                 ) -> tuple[int, int]:
    """PATCH each meeting once (with the runner's retries); returns (requests, throttled)."""
    if not updates:
        return 0, 0
    runner = make_runner(u.request.organizer for u in updates)
    handler = _Updates(runner, journal, dict(book), outcomes)
    log.info("updating %d meeting(s) to match the sheet", len(updates))
    stats = runner.run_operations([handler.operation(u) for u in updates], handler)
    if handler.write_errors:
        raise handler.write_errors[0]
    done = [(u, outcomes.get(u.request.outcome_key)) for u in updates]
    changed = [(u, o) for u, o in done if o is not None and o.changes]
    for u, _ in changed[:LOG_LINES]:
        log.info("row %d: %s", u.request.row, u.description)
    if len(changed) > LOG_LINES:
        log.info("... and %d more meeting(s) updated: see the changes column",
                 len(changed) - LOG_LINES)
    failed = sum(1 for _, o in done if o is not None and o.status == FAILED)
    if failed:
        log.warning("%d update(s) were not applied: see the error column; the next run tries "
                    "again", failed)
    return stats.requests, stats.throttled


# -- cancels ----------------------------------------------------------------------------------

def send_cancels(make_runner: MakeRunner, journal: Journal, targets: Sequence[RemovedMeeting],
                 book: Mapping[tuple[str, str], JournalledMeeting]
                 ) -> tuple[list[RemovedMeeting], int, int]:
    """DELETE each target; returns (what became of each, requests, throttled)."""
    if not targets:
        return [], 0, 0
    runner = make_runner(t.organizer for t in targets)
    results: dict[tuple[str, str], RemovedMeeting] = {}
    lock = threading.Lock()
    write_errors: list[JournalWriteError] = []

    def operation(target: RemovedMeeting) -> Operation:
        meeting = book[(target.organizer, target.external_id)]

        def call(gateway: GraphGateway, organizer_id: str | None) -> GraphResponse:
            journal.delete_sent(meeting)  # before the request: a kill now is finished next run
            return gateway.delete_meeting(organizer_id, meeting.meeting_id)

        return Operation(call, organizer=target.organizer, key=target,
                         done=frozenset({204, 404}), organizer_404=False)

    def on_done(done: Completed) -> None:
        try:
            settle(done)
        except JournalWriteError as exc:  # disk full: stop sending, report it after the phase
            write_errors.append(exc)
            runner.stop.set()

    def settle(done: Completed) -> None:
        target: RemovedMeeting = done.operation.key
        meeting = book[(target.organizer, target.external_id)]
        response = done.response
        if done.ok and response is not None:
            journal.delete_confirmed(meeting, http_status=response.status,
                                     request_id=response.request_id)
            gone = " (it was already gone from Teams)" if response.status == 404 else ""
            outcome = replace(target, status=sync.REMOVED_CANCELLED,
                              reason=f"{target.reason}; cancelled{gone}")
        else:
            reason = done.error or (runner.describe(target.organizer, response, done.attempts,
                                                    CANCEL)
                                    if response is not None else "it was never sent")
            final = response is not None and response.status is not None and \
                response.status < 500 and response.status != 429
            if final:
                journal.delete_abandoned(meeting, reason)
                reason = f"could not be cancelled: {reason}"
            else:
                reason = f"the cancel was not confirmed ({reason}); the next run tries again"
            outcome = replace(target, status=sync.REMOVED_FAILED, reason=reason)
        with lock:
            results[(target.organizer, target.external_id)] = outcome

    log.info("cancelling %d meeting(s) whose rows were removed", len(targets))
    stats = runner.run_operations([operation(t) for t in targets], on_done)
    if write_errors:
        raise write_errors[0]
    done = [results.get((t.organizer, t.external_id), t) for t in targets]
    return done, stats.requests, stats.throttled


def cancel_targets(plan: SyncPlan) -> list[RemovedMeeting]:
    """Deletes this run sends: the ones a killed run left half-done, and the orphans when the
    operator asked and the safety rule allows."""
    return list(plan.deleting) + (list(plan.orphans) if plan.cancel.allowed else [])


def log_removed(removed: Sequence[RemovedMeeting], tz: ZoneInfo) -> None:
    """The log's view of removed rows, on every run until they are cancelled or back (what to
    do about them is the summary's note, printed once)."""
    for r in removed[:LOG_LINES]:
        log.warning("%s meeting %r of %s (%s, externalId %s): %s", r.status, r.subject or "",
                    r.organizer, sync.local_text(r.start_utc, tz) or "no time", r.external_id,
                    r.reason)
    if len(removed) > LOG_LINES:
        log.warning("... and %d more removed meeting(s): see the Removed sheet",
                    len(removed) - LOG_LINES)


# -- the whole sync step ----------------------------------------------------------------------

def limits_for(cfg: Config, *, cancel_removed: bool = False, max_cancel: int | None = None
               ) -> sync.SyncLimits:
    """[sync] in the config plus this run's flags; --max-cancel N implies --cancel-removed."""
    return sync.SyncLimits(
        cancel_removed=cancel_removed or max_cancel is not None or cfg.sync.cancel_removed,
        max_cancel_percent=cfg.sync.max_cancel_percent,
        max_cancel_count=cfg.sync.max_cancel_count, max_cancel_once=max_cancel)


def plan_sync(requests: Sequence[MeetingRequest], invalid: Sequence[InvalidRow], rows: int,
              journal: Journal | None, cfg: Config, limits: sync.SyncLimits, *,
              full: bool = False, skipped: Sequence[SkippedRow] = ()) -> SyncPlan:
    """The sync plan against the journal (None: no journal yet, everything is new)."""
    book = journal.meetings() if journal is not None else {}
    return sync.build_plan(requests, invalid, rows, book, ZoneInfo(cfg.mapping.time_zone),
                           limits, full=full, skipped=skipped)


def remember_sections(plan: SyncPlan, journal: Journal) -> None:
    """Give meetings journalled before section keys were kept their row's key (a real run only,
    from ``select``; new meetings get it with their createOrGet result)."""
    wanted = [*plan.unchanged, *(u.request for u in plan.updates)]
    journal.remember_sections(
        (r.organizer, r.external_id, r.section) for r in wanted if r.section
        and (m := plan.journalled.get((r.organizer, r.external_id))) is not None
        and m.section is None)


def run_phases(plan: SyncPlan, sent: Sequence[MeetingRequest], journal: Journal,
               outcomes: Outcomes, cfg: Config, make_runner: MakeRunner,
               stop: threading.Event, *, retry_failed: bool = False) -> Applied:
    """After createOrGet: the PATCHes, then the DELETEs (each phase skipped once stopped)."""
    requests = throttled = 0
    tz = ZoneInfo(cfg.mapping.time_zone)
    if retry_failed:
        plan = replace(plan, updates=retry_updates(plan, journal.latest()))
    updates, book = updates_after_create(plan, sent, journal, outcomes, tz)
    if updates and not stop.is_set():
        n, t = send_updates(make_runner, journal, updates, outcomes, book)
        requests, throttled = requests + n, throttled + t
    removed = list(plan.orphans)
    targets = cancel_targets(plan)
    if targets and not stop.is_set():
        done, n, t = send_cancels(make_runner, journal, targets, book)
        requests, throttled = requests + n, throttled + t
        by_key = {(d.organizer, d.external_id): d for d in done}
        removed = [by_key.get((o.organizer, o.external_id), o) for o in plan.orphans]
        removed += [by_key.get((d.organizer, d.external_id), d) for d in plan.deleting]
    return Applied(requests, throttled, tuple(removed), stop.is_set())
