"""Running many Graph calls at bounded, adaptive concurrency while honouring throttling.

The API (one engine for every kind of call, so retries, pacing and throttling have one home):

* ``Operation(call, organizer=..., key=...)`` is one logical Graph call. ``call(gateway,
  organizer_path_id)`` makes exactly ONE attempt and returns the ``GraphResponse``; it gets the
  organizer's object id for the path (None for /me or when ``organizer`` is None). ``done`` are
  the statuses that finish it well (default 200/201; a DELETE would say 204). ``organizer_404``
  says whether a 404 means "this organizer is unknown" (createOrGet: yes, so the organizer's other
  operations fail at once) or "this item is gone" (GET/PATCH/DELETE of one meeting: no).
* ``Runner.run_operations(ops, on_done)`` runs them and calls ``on_done(Completed)`` once per
  operation, from a worker thread, as soon as it is final. ``Completed.ok`` says whether it
  succeeded; otherwise ``response`` is the last answer (None if it was never sent) and ``error``
  is set when there is a sentence without a response (organizer unresolved, token failure).
  ``Runner.describe(organizer, response, attempts)`` turns a failed answer into the output
  sheet's sentence.
* ``Runner.run(requests)`` is createOrGet on top of that: one ``MeetingResult`` per
  ``MeetingRequest`` to ``on_result``. ``resolve_organizers`` is GET /users on top of it.
* ``Runner(gateway, concurrency=START, max_concurrency=MAX, quota=MeetingQuota(...),
  batch=False, organizer_ids=..., organizer_problems=..., clock=...)``; after a run,
  ``runner.stats`` (requests, throttled, blocked_organizers, concurrency settled on, ...).
  An ``Operation`` with ``batch`` set (a ``graph.BatchRequest`` for the organizer id) may travel
  in a JSON ``$batch``; one with ``creates=True`` counts against the monthly meeting quota.

Why it is shaped this way:
- Graph's budget is shared by the whole app, so every request passes one ``Gate``
  (``bulkmeet.gate``), which finds the limit by itself: an adaptive window (slow start, then
  AIMD, cut on rising latency) and, once Graph throttles systemically, pacing just under the rate
  Graph let through, probing upward while clean. A lone 429 (or a 503 with Retry-After) delays
  only its own operation, never by less than Retry-After. ``RateLimit-*`` headers help when
  present and are never needed.
- ``Operation.creates`` operations count against the organizer's 2,000 meetings a month
  (``bulkmeet.quota``): at the cap the organizer's remaining ones are not sent, with one sentence.
- With ``batch=True`` a worker takes up to 20 ready batchable operations and sends them as one
  JSON ``$batch``; each item's answer then goes through the same retry decision as a single call.
- An operation that must wait (Retry-After, backoff) goes back into one time-ordered queue
  instead of holding a worker asleep, so the other operations keep the connection slots busy.
  Nothing in this module sleeps: workers wait on the queue's condition.
- The retry decision is made in one place (``Runner._verdict``) for every kind of operation.
- Every finished row is handed to ``on_result`` at once (the journal commits it before the worker
  takes the next row): a result that came back from Graph is never lost.
- createOrGet is idempotent by externalId, so re-sending after a timeout or a dropped connection
  is safe; 400/401/403/404 are final and fail at once.
- Time comes from an injectable ``clock`` (as for ``Gate``), so the schedule can be reasoned
  about without the wall clock.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bulkmeet.errors import BulkmeetError
from bulkmeet.gate import Gate
from bulkmeet.graph import (
    CREATE,
    MAX_BATCH,
    TLS,
    BatchRequest,
    GraphGateway,
    GraphResponse,
    create_or_get_path,
    describe_failure,
    is_access_policy_error,
)
from bulkmeet.ids import GUID_RE as GUID
from bulkmeet.models import (
    CREATED,
    EXISTING,
    FAILED,
    ME,
    MeetingInfo,
    MeetingRequest,
    MeetingResult,
    MeetingState,
)
from bulkmeet.quota import MeetingQuota

log = logging.getLogger(__name__)

TRANSIENT_STATUSES = frozenset({500, 502, 503, 504, 507})
Clock = Callable[[], float]


@dataclass(frozen=True)
class RetryPolicy:
    """Per operation, per run. Whatever is left failed is retried by the next run."""

    max_attempts: int = 6  # attempts that end in 5xx, timeouts or dropped connections
    max_throttled: int = 40  # 429 answers a row may absorb (throttling is expected, not an error)
    base_delay: float = 0.5  # first backoff without Retry-After; doubles each time, with jitter
    max_delay: float = 60.0

    def backoff(self, n: int, rng: random.Random) -> float:
        """Wait before the n-th retry without Retry-After: doubling, capped, with jitter."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (n - 1)))
        return rng.uniform(ceiling / 2, ceiling)


@dataclass
class RunStats:
    requests: int = 0  # Graph requests (each item of a JSON batch counts)
    throttled: int = 0
    blocked_organizers: dict[str, str] = field(default_factory=dict)  # organizer -> message
    batches: int = 0  # $batch calls (batch = true)
    concurrency: int | None = None  # requests in flight the run settled on
    paced_rate: float | None = None  # requests/s the gate paced at in the end (None: no pacing)
    throttle_events: int = 0  # episodes of systemic throttling (each paused every worker)
    seconds: float = 0.0  # sending time

    def describe(self) -> str:
        """'concurrency settled at 24 (39 requests/s; Graph throttled the app 3 times)'."""
        if self.concurrency is None:
            return ""
        rate = f"{self.requests / self.seconds:.0f} requests/s" if self.seconds > 0 else ""
        times = {0: "", 1: "once"}.get(self.throttle_events, f"{self.throttle_events} times")
        throttled = f"Graph throttled the app {times}" if times else ""
        detail = "; ".join(p for p in (rate, throttled) if p)
        return f"concurrency settled at {self.concurrency}" + (f" ({detail})" if detail else "")

    def count(self, response: GraphResponse) -> None:
        self.requests += 1
        if response.status == 429:
            self.throttled += 1


# -- operations ------------------------------------------------------------------------------

Call = Callable[[GraphGateway, str | None], GraphResponse]
OK_STATUSES = frozenset({200, 201})


@dataclass(frozen=True, eq=False)
class Operation:
    """One logical Graph call; the runner makes the attempts. See the module docstring."""

    call: Call  # ONE attempt: (gateway, organizer path id or None) -> response
    organizer: str | None = None  # the sheet's organizer (GUID, UPN or ME); None: not per organizer
    key: Any = None  # whatever the caller needs to tell operations apart in on_done
    done: frozenset[int] = OK_STATUSES  # statuses that finish the operation well
    organizer_404: bool = True  # a 404 means the organizer is unknown: fail their other operations
    creates: bool = False  # may create a meeting: counts against the organizer's monthly quota
    batch: Callable[[str | None], BatchRequest] | None = None  # the same call as a $batch item


@dataclass(frozen=True)
class Completed:
    """How an operation ended: handed to ``on_done`` once per operation."""

    operation: Operation
    response: GraphResponse | None  # the last answer; None when it was never sent
    attempts: int
    ok: bool
    error: str | None = None  # a sentence when there is no answer to describe (or it was blocked)


@dataclass(eq=False)
class _Task:
    op: Operation
    attempts: int = 0
    throttled: int = 0
    transient: int = 0
    settled: bool = False  # completed, or queued again: nothing more to do with it now


DONE, RETRY, FINAL = "done", "retry", "final"


class Runner:
    """Runs operations through one scheduler, one gate and one retry decision."""

    def __init__(
        self,
        gateway: GraphGateway,
        *,
        concurrency: int = 4,
        max_concurrency: int | None = None,
        policy: RetryPolicy = RetryPolicy(),
        on_result: Callable[[MeetingResult], None] = lambda r: None,
        organizer_ids: Mapping[str, str] | None = None,
        organizer_problems: Mapping[str, str] | None = None,
        quota: MeetingQuota | None = None,
        batch: bool = False,
        client_id: str | None = None,
        stop: threading.Event | None = None,
        rng: random.Random | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.gateway = gateway
        # ``concurrency`` is where the gate starts; it adapts up to ``max_concurrency`` (default:
        # no higher than it started) and down as far as Graph's answers say.
        self.concurrency = max(1, concurrency)
        self.max_concurrency = max(self.concurrency, max_concurrency or self.concurrency)
        self.quota = quota or MeetingQuota()
        self.batch_size = MAX_BATCH if batch else 1  # JSON $batch: up to 20 ready rows per call
        self._refused: dict[str, str] = {}  # organizer at the monthly cap -> the sentence
        self.policy = policy
        self.on_result = on_result
        self.organizer_ids = dict(organizer_ids or {})
        self.client_id = client_id
        self.stop = stop or threading.Event()
        self.rng = rng or random.Random()
        self.clock = clock
        self.gate = Gate(self.max_concurrency, clock=clock, start=self.concurrency)
        self.stats = RunStats()
        # organizer -> why none of their operations can be sent (e.g. the UPN did not resolve)
        self._unresolvable = dict(organizer_problems or {})
        self.stats.blocked_organizers.update(self._unresolvable)
        self._cond = threading.Condition()
        self._ready: list[tuple[float, int, _Task]] = []
        self._seq = itertools.count()
        self._busy = 0
        self._blocked: dict[str, GraphResponse] = {}
        self.unfinished: list[MeetingRequest] = []
        self.unfinished_operations: list[Operation] = []
        self._on_done: Callable[[Completed], None] = lambda done: None

    # -- scheduling: one time-ordered queue, nobody sleeps -----------------------------------

    def _push(self, task: _Task, delay: float = 0.0) -> None:
        task.settled = True
        with self._cond:
            heapq.heappush(self._ready, (self.clock() + delay, next(self._seq), task))
            self._cond.notify()

    def _take(self) -> list[_Task]:
        """The next ready task, plus (batching) more ready batchable ones; [] when all is done."""
        with self._cond:
            while True:
                if self.stop.is_set():
                    return []
                now = self.clock()
                if self._ready and self._ready[0][0] <= now:
                    tasks = [heapq.heappop(self._ready)[2]]
                    while (tasks[0].op.batch is not None and len(tasks) < self.batch_size
                           and self._ready and self._ready[0][0] <= now
                           and self._ready[0][2].op.batch is not None):
                        tasks.append(heapq.heappop(self._ready)[2])
                    self._busy += len(tasks)
                    for t in tasks:
                        t.settled = False
                    return tasks
                if not self._ready and self._busy == 0:
                    return []
                wait = (self._ready[0][0] - now) if self._ready else 0.25
                self._cond.wait(timeout=min(max(wait, 0.0), 0.25))

    def _done_with(self, n: int) -> None:
        with self._cond:
            self._busy -= n
            self._cond.notify_all()

    def _push_back(self, task: _Task) -> None:
        task.settled = True
        with self._cond:
            heapq.heappush(self._ready, (0.0, next(self._seq), task))

    # -- running -----------------------------------------------------------------------------

    def run_operations(self, operations: Sequence[Operation],
                       on_done: Callable[[Completed], None]) -> RunStats:
        """Run every operation to a final state (or until ``stop``); see the module docstring."""
        self._on_done = on_done
        began = self.clock()
        with self._cond:
            for op in operations:
                heapq.heappush(self._ready, (0.0, next(self._seq), _Task(op)))
        workers = [
            threading.Thread(target=self._work, name=f"bulkmeet-worker-{i}", daemon=True)
            for i in range(min(self.max_concurrency, max(1, len(operations))))
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        with self._cond:
            self.unfinished_operations = [t.op for _, _, t in sorted(self._ready)]
            self._ready.clear()
        self.stats.seconds += self.clock() - began
        if self.stats.requests:
            self.stats.concurrency = self.gate.settled()
            self.stats.paced_rate = self.gate.rate
            self.stats.throttle_events = self.gate.throttle_events
        return self.stats

    def run(self, requests: Sequence[MeetingRequest]) -> RunStats:
        """createOrGet for each request; one ``MeetingResult`` per request to ``on_result``."""
        ops = [self.create_or_get_operation(req) for req in requests]
        stats = self.run_operations(ops, self._meeting_result)
        self.unfinished = [op.key for op in self.unfinished_operations]
        return stats

    @staticmethod
    def create_or_get_operation(req: MeetingRequest) -> Operation:
        body = req.body()
        return Operation(lambda gateway, oid: gateway.create_or_get(oid, body),
                         organizer=req.organizer, key=req, creates=True,
                         batch=lambda oid: BatchRequest("POST", create_or_get_path(oid), body))

    def _work(self) -> None:
        while True:
            tasks = self._take()
            if not tasks:
                return
            try:
                self._step(tasks)
            except BulkmeetError as exc:  # e.g. the token could not be renewed mid-run
                for task in tasks:
                    if not task.settled:
                        self._complete(task, None, error=str(exc))
            except Exception as exc:  # a bug must not hang the run: record the row as failed
                log.error("unexpected error while sending %s: %s", _label(tasks[0].op),
                          type(exc).__name__)
                log.debug("details of the unexpected error", exc_info=True)
                for task in tasks:
                    if not task.settled:
                        self._complete(task, None, error="bulkmeet hit an internal error on "
                                       "this row (see the log); the next run retries it.")
            finally:
                self._done_with(len(tasks))

    def organizer_path_id(self, organizer: str | None) -> str | None:
        if organizer is None or organizer == ME:
            return None
        if GUID.match(organizer):
            return organizer
        return self.organizer_ids.get(organizer)

    def _precheck(self, task: _Task) -> bool:
        """Finish a task that must not be sent (its organizer is blocked, unresolved or at the
        monthly cap); True when it was finished."""
        org = task.op.organizer
        if org is None:
            return False
        blocked = self._blocked.get(org)
        if blocked is not None:
            self._complete(task, blocked)
            return True
        if org != ME and self.organizer_path_id(org) is None:
            self._complete(task, None, error=self._unresolvable.get(org) or (
                f"Organizer {org} could not be resolved to an Entra object ID."))
            return True
        if task.op.creates and (org in self._refused or self.quota.full(org)):
            self._complete(task, None, error=self._refuse(org, by_graph=False))
            return True
        return False

    def _step(self, tasks: list[_Task]) -> None:
        """Send one call (or one JSON batch) through the gate; then decide about each task."""
        live = [t for t in tasks if not self._precheck(t)]
        if not live:
            return
        if not self.gate.acquire(self.stop, len(live)):
            for task in live:
                self._push_back(task)
            return
        sent_at = self.clock()
        responses: list[GraphResponse] | None = None
        try:
            if len(live) == 1:
                op = live[0].op
                responses = [op.call(self.gateway, self.organizer_path_id(op.organizer))]
            else:
                responses = self.gateway.batch([
                    t.op.batch(self.organizer_path_id(t.op.organizer))  # type: ignore[misc]
                    for t in live])
                self.stats.batches += 1
        finally:
            if responses is None:
                self.gate.release(None)
        capped = [self._quota_refusal(t, r) for t, r in zip(live, responses, strict=True)]
        throttling: list[bool | None] = [False if c else None for c in capped]
        if len(live) == 1:
            self.gate.release(responses[0], sent_at, throttling=throttling[0])
        else:
            self.gate.release_batch(responses, sent_at, throttling)
        for task, response, cap in zip(live, responses, capped, strict=True):
            task.attempts += 1
            self.stats.count(response)
            if cap:
                self._complete(task, response, error=self._refuse(task.op.organizer or "",
                                                                  by_graph=True))
            else:
                self._answered(task, response)

    def _answered(self, task: _Task, response: GraphResponse) -> None:
        verdict, delay = self._verdict(task, response)
        if verdict == RETRY:
            self._push(task, delay)
            return
        if verdict == FINAL:
            self._maybe_block(task, response)
        elif task.op.creates and response.status == 201 and task.op.organizer is not None:
            self.quota.created(task.op.organizer)
        self._complete(task, response)

    def _quota_refusal(self, task: _Task, response: GraphResponse) -> bool:
        """Is this answer Graph's monthly meeting cap for the organizer (not throttling)?"""
        org = task.op.organizer
        if not task.op.creates or org is None or response.status != 429:
            return False
        return response.retry_after is None and self.quota.refused(org)

    def _refuse(self, organizer: str, *, by_graph: bool) -> str:
        """The organizer is at the monthly cap: one sentence, one note, no more sends."""
        with self._cond:
            if organizer not in self._refused:
                self._refused[organizer] = self.quota.note(organizer, by_graph=by_graph)
                self.stats.blocked_organizers[organizer] = self._refused[organizer]
                log.debug("%s", self._refused[organizer])  # the run summary notes it once
            return self._refused[organizer]

    def _verdict(self, task: _Task, response: GraphResponse) -> tuple[str, float]:
        """THE retry decision, for every kind of operation: done, retry after a delay, or final."""
        status = response.status
        if status in task.op.done:
            return DONE, 0.0
        if status == 429:
            task.throttled += 1
            if task.throttled >= self.policy.max_throttled:
                return FINAL, 0.0
            wait = response.retry_after
            return RETRY, wait if wait is not None else self._backoff(task.throttled)
        if response.failure == TLS:  # an unverifiable certificate fails again: never retried
            return FINAL, 0.0
        if status is None or status in TRANSIENT_STATUSES:
            task.transient += 1
            if task.transient >= self.policy.max_attempts:
                return FINAL, 0.0
            return RETRY, response.retry_after or self._backoff(task.transient)
        return FINAL, 0.0  # 400, 401, 403, 404 and the rest

    def _maybe_block(self, task: _Task, response: GraphResponse) -> None:
        """A 403 access-policy answer (or an organizer 404) is about the organizer, not the row:
        their other operations fail at once with the same sentence instead of being sent."""
        org = task.op.organizer
        if org is None:
            return
        if not (is_access_policy_error(response) or (response.status == 404 and task.op.organizer_404)):
            return
        with self._cond:
            if org not in self._blocked:
                self._blocked[org] = response
                self.stats.blocked_organizers[org] = self.describe(org, response, task.attempts)

    def _backoff(self, n: int) -> float:
        return self.policy.backoff(n, self.rng)

    def describe(self, organizer: str, response: GraphResponse, attempts: int,
                 action: str = CREATE) -> str:
        """The output sheet's sentence for a failed answer about ``organizer``; ``action`` is
        what the call was for (graph.CREATE, UPDATE, CANCEL, READ)."""
        oid = self.organizer_path_id(organizer)
        who = f"{organizer} ({oid})" if oid and oid != organizer else organizer
        return describe_failure(response, organizer=who, client_id=self.client_id,
                                attempts=attempts, organizer_id=oid, action=action)

    def _complete(self, task: _Task, response: GraphResponse | None, *,
                  error: str | None = None) -> None:
        task.settled = True
        ok = error is None and response is not None and response.status in task.op.done
        self._on_done(Completed(task.op, response, task.attempts, ok, error))

    # -- createOrGet results -----------------------------------------------------------------

    def _meeting_result(self, done: Completed) -> None:
        req: MeetingRequest = done.operation.key
        response = done.response
        status = FAILED
        meeting = warning = state = None
        error = done.error
        if done.ok and response is not None:
            status = CREATED if response.status == 201 else EXISTING
            if isinstance(response.body, dict):
                meeting = MeetingInfo.from_graph(response.body)
                state = MeetingState.from_graph(response.body)
                if status == EXISTING:
                    warning = differences(req, response.body)
        elif error is None and response is not None:
            error = self.describe(req.organizer, response, done.attempts)
        self.on_result(MeetingResult(
            external_id=req.external_id,
            organizer=req.organizer,
            status=status,
            fingerprint=req.fingerprint(),
            http_status=response.status if response is not None else None,
            meeting=meeting,
            error=error,
            error_code=response.error_code if response is not None else None,
            request_id=response.request_id if response is not None else None,
            attempts=done.attempts,
            warning=warning,
            recorded_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            state=state,
        ))


def _label(op: Operation) -> str:
    row = getattr(op.key, "row", None)
    return f"row {row}" if row is not None else "a request"


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)  # Graph sends 7 fractional digits
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def differences(request: MeetingRequest, meeting: Mapping[str, Any]) -> str | None:
    """Why an existing meeting does not match the sheet (createOrGet never updates it), or None."""
    diffs: list[str] = []
    if request.subject and meeting.get("subject") not in (None, request.subject):
        diffs.append(f"subject is \"{meeting.get('subject')}\"")
    for key, wanted in (("startDateTime", request.start), ("endDateTime", request.end)):
        have = _instant(meeting.get(key))
        if wanted is not None and have is not None and have != wanted:
            diffs.append(f"{key[:-8]} is {have.strftime('%Y-%m-%d %H:%M')} UTC")
    if not diffs:
        return None
    return ("The meeting already existed and differs from the sheet (" + ", ".join(diffs) +
            "): createOrGet does not change existing meetings; the join link still works. "
            "Change the meeting in Teams, or give the row a new key to get a new meeting.")


# -- organizer lookups -----------------------------------------------------------------------

def resolve_organizers(
    gateway: GraphGateway, upns: Iterable[str], *, concurrency: int = 4,
    policy: RetryPolicy = RetryPolicy(), stop: threading.Event | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """UPN -> object id, once per distinct organizer. Returns (resolved, problems by UPN).

    Graph answers 404 for a UPN in the createOrGet path, so every UPN is resolved first with
    ``GET /users/{upn}?$select=id`` (needs User.Read.All). The lookups run through the same
    ``Runner`` (scheduler, gate, retry decision) as the meetings.
    """
    resolved: dict[str, str] = {}
    problems: dict[str, str] = {}
    lock = threading.Lock()

    def lookup(upn: str) -> Operation:
        return Operation(lambda gw, _oid: gw.get_user(upn), key=upn, done=frozenset({200}))

    def on_done(done: Completed) -> None:
        upn: str = done.operation.key
        body = done.response.body if done.response is not None else None
        with lock:
            if done.ok and isinstance(body, dict) and body.get("id"):
                resolved[upn] = str(body["id"]).lower()
            elif done.response is not None:
                problems[upn] = _resolve_problem(upn, done.response, done.attempts)
            else:
                problems[upn] = done.error or f"Could not look up organizer {upn}."

    runner = Runner(gateway, concurrency=concurrency, policy=policy, stop=stop)
    runner.run_operations([lookup(u) for u in dict.fromkeys(upns)], on_done)
    return resolved, problems


def _resolve_problem(upn: str, response: GraphResponse, attempts: int) -> str:
    if response.status == 404:
        return (f"Organizer {upn} was not found in the tenant (GET /users answered 404): check the "
                "address, or put the organizer's Entra object ID in the sheet.")
    if response.status == 403:
        return (f"Could not look up organizer {upn} (403 {response.error_code or ''}): grant the "
                "app the User.Read.All application permission with admin consent, or put object IDs "
                "in the organizer column.")
    if response.status == 200:  # an answer without an id
        return f"Graph's answer for organizer {upn} had no object id: put the ID in the sheet."
    return describe_failure(response, organizer=upn, attempts=attempts).replace(
        "retries this row", "retries this organizer's rows")
