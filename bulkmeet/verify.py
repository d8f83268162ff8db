"""``bulkmeet verify``: do the meetings the journal remembers still exist in Teams?

The journal is how a rerun knows a row is done without asking Graph. A tenant can forget what the
journal remembers: an admin deletes meetings by hand, a mailbox is restored, an organizer leaves.
A normal run then keeps reporting ``existing`` with a dead join link. ``verify`` GETs every
meeting the journal holds as active (bounded concurrency, the runner's retries and throttling),
and reports each one that is gone (404) by its sheet row. Each gone meeting is forgotten in the
journal at once (``Journal.forget``), so the next ``bulkmeet run`` makes it again by itself (sync
treats a meeting the journal no longer holds as new), and later verifies keep listing it as
missing until then. With ``--repair`` verify makes each missing meeting again now, from the
sheet's current row (createOrGet, same externalId) and records the new one in the journal, so the
next ``bulkmeet run`` writes the new links into the output sheet.

It sends only GETs unless ``--repair`` is given; meetings cancelled on purpose (``sync``) are not
checked. Exit status: 0 when every meeting is there (or was re-created), 1 when some are missing
or could not be checked, 4 when Ctrl-C or SIGTERM stopped it (as for ``run``: the meetings in
flight are finished and recorded, the rest are counted as not reached; run it again).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bulkmeet import journal as journals
from bulkmeet.config import Config
from bulkmeet.errors import ExitStatus, InputError
from bulkmeet.graph import READ, GraphGateway
from bulkmeet.models import MeetingRequest, MeetingResult
from bulkmeet.runner import Completed, Operation, RetryPolicy, Runner
from bulkmeet.sync import ACTIVE, JournalledMeeting

if TYPE_CHECKING:
    from bulkmeet.pipeline import RunOptions

log = logging.getLogger(__name__)

__all__ = ["VerifyReport", "verify_schedule"]


@dataclass
class VerifyReport:
    checked: int = 0
    present: int = 0
    missing: list[tuple[int | None, str]] = field(default_factory=list)  # (row, sentence)
    unchecked: list[tuple[int | None, str]] = field(default_factory=list)
    recreated: int = 0
    not_reached: int = 0  # left when a stop came (checks, or re-creations with --repair)
    interrupted: bool = False

    @property
    def exit_status(self) -> ExitStatus:
        if self.interrupted:
            return ExitStatus.INTERRUPTED
        bad = len(self.missing) - self.recreated + len(self.unchecked)
        return ExitStatus.ROWS_FAILED if bad else ExitStatus.OK

    def line(self) -> str:
        parts = [f"{self.present} present", f"{len(self.missing)} missing"]
        if self.recreated:
            parts.append(f"{self.recreated} re-created")
        if self.unchecked:
            parts.append(f"{len(self.unchecked)} not checked")
        if self.interrupted:
            parts.append(f"{self.not_reached} not reached (stopped; run verify again)")
        noun = "meeting" if self.checked == 1 else "meetings"
        return f"{self.checked} journalled {noun}: {', '.join(parts)}"


def verify_schedule(schedule: Path, config: Config, *, journal: Path | None = None,
                    sheet: str | None = None, concurrency: int | None = None,
                    repair: bool = False,
                    gateway_factory: Callable[[Config], GraphGateway] | None = None,
                    stop: threading.Event | None = None) -> VerifyReport:
    """Check (and with ``repair`` re-create) every active journalled meeting of ``schedule``."""
    from bulkmeet import pipeline  # the run's own journal path, planning and gateway

    options = pipeline.RunOptions(schedule=schedule, config=config, sheet=sheet,
                                  concurrency=concurrency, journal=journal)
    path = pipeline._journal_path(options)
    if not path.exists():
        raise InputError(f"There is no journal {path} for {schedule}, so there is nothing to "
                         "verify: run bulkmeet first (or give --journal).")
    _, the_plan = pipeline.plan_schedule(schedule, config, sheet)
    requests = {(r.organizer, r.external_id): r for r in the_plan.requests}
    stop = stop or threading.Event()
    report = VerifyReport()
    with journals.Journal.open(path, lock=True, schedule=str(schedule)) as book:
        known = book.meetings()
        meetings = [m for m in known.values() if m.status == ACTIVE and m.meeting_id]
        earlier = [known[key] for key in sorted(book.gone()) if key in requests]
        report.checked = len(meetings) + len(earlier)
        report.missing += [(_where(m, requests), (
            f"the meeting {m.meeting_id} of {m.organizer} is gone from Teams (404, found by an "
            "earlier verify); the next bulkmeet run makes it again")) for m in earlier]
        if not meetings and not (repair and earlier):
            return report
        gateway = gateway_factory(config) if gateway_factory else pipeline._http_gateway(
            config, concurrency)
        try:
            gone = earlier + (_check(options, gateway, book, meetings, requests, report, stop)
                              if meetings else [])
            if repair and gone and not stop.is_set():
                _recreate(options, gateway, book, gone, requests, report, stop)
        finally:
            gateway.close()
    report.interrupted = stop.is_set()
    return report


def _runner(options: RunOptions, gateway: GraphGateway, ids: dict[str, str],
            problems: dict[str, str], stop: threading.Event,
            on_result: Callable[[MeetingResult], None] | None = None) -> Runner:
    """A runner as ``run`` makes one: the same concurrency, retries and throttling."""
    cfg = options.config
    return Runner(gateway, concurrency=options.concurrency or cfg.run.concurrency,
                  policy=RetryPolicy(max_attempts=cfg.run.max_attempts),
                  on_result=on_result or (lambda result: None), organizer_ids=ids,
                  organizer_problems=problems, client_id=cfg.auth.client_id or None, stop=stop)


def _where(meeting: JournalledMeeting, requests: dict[tuple[str, str], MeetingRequest]) -> int | None:
    req = requests.get((meeting.organizer, meeting.external_id))
    return req.row if req else meeting.row


def _check(options: RunOptions, gateway: GraphGateway, book: journals.Journal,
           meetings: list[JournalledMeeting], requests: dict[tuple[str, str], MeetingRequest],
           report: VerifyReport, stop: threading.Event) -> list[JournalledMeeting]:
    """GET each meeting; returns those Graph says are gone (404)."""
    from bulkmeet import pipeline

    cfg = options.config
    ids, problems = pipeline._resolve(gateway, (m.organizer for m in meetings), book, cfg, stop)
    runner = _runner(options, gateway, ids, problems, stop)
    gone: list[JournalledMeeting] = []
    lock = threading.Lock()

    def get(meeting: JournalledMeeting) -> Operation:
        return Operation(call=lambda gw, oid: gw.get_meeting(oid, meeting.meeting_id),
                         organizer=meeting.organizer, key=meeting, done=frozenset({200}),
                         organizer_404=False)

    def on_done(done: Completed) -> None:
        meeting: JournalledMeeting = done.operation.key
        row = _where(meeting, requests)
        with lock:
            if done.ok:
                report.present += 1
            elif done.response is not None and done.response.status == 404:
                gone.append(meeting)
                # forgotten now, so that the next run re-creates it even without --repair
                book.forget(meeting, "verify: the meeting is gone from Teams (404)")
                report.missing.append((row, (
                    f"the meeting {meeting.meeting_id} of {meeting.organizer} is gone from Teams "
                    "(404), although the journal had it; the next bulkmeet run makes it again")))
            else:
                why = done.error or (runner.describe(meeting.organizer, done.response,
                                                     done.attempts, READ)
                                     if done.response is not None else "not checked")
                report.unchecked.append((row, f"could not check the meeting "
                                              f"{meeting.meeting_id}: {why}"))

    runner.run_operations([get(m) for m in meetings], on_done)
    report.not_reached = len(runner.unfinished_operations)
    report.missing.sort(key=lambda item: (item[0] or 0))
    report.unchecked.sort(key=lambda item: (item[0] or 0))
    return gone


def _recreate(options: RunOptions, gateway: GraphGateway, book: journals.Journal,
              gone: list[JournalledMeeting], requests: dict[tuple[str, str], MeetingRequest],
              report: VerifyReport, stop: threading.Event) -> None:
    """createOrGet each missing meeting from its current sheet row; record what comes back."""
    from bulkmeet import pipeline

    cfg = options.config
    todo = [requests[(m.organizer, m.external_id)] for m in gone
            if (m.organizer, m.external_id) in requests]
    for m in gone:
        if (m.organizer, m.external_id) not in requests:
            report.unchecked.append((m.row, f"the meeting {m.meeting_id} is gone and its row is "
                                            "no longer in the sheet, so it was not made again"))
    if not todo:
        return
    by_key = {(r.organizer, r.external_id): r for r in todo}
    ids, problems = pipeline._resolve(gateway, (o for o, _ in by_key), book, cfg, stop)

    def on_result(result: MeetingResult) -> None:
        req = by_key[(result.organizer, result.external_id)]
        book.record(result, state=result.state, row=req.row, section=req.section)
        if result.ok:
            report.recreated += 1

    runner = _runner(options, gateway, ids, problems, stop, on_result=on_result)
    runner.run(todo)
    report.not_reached = len(runner.unfinished)
    log.info("re-created %d of %d missing meeting(s)", report.recreated, len(gone))
