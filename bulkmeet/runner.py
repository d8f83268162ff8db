"""Running many createOrGet calls at bounded, adaptive concurrency while honouring throttling.

Why it is shaped this way:
- Graph's budget is shared by the whole app, so throttling is handled by one ``Gate`` that every
  worker passes: when throttling is systemic (several 429s among recent answers, or
  RateLimit-Remaining: 0) it pauses *all* workers until Retry-After has passed and halves the
  concurrency limit; clean answers grow it back by one per round (AIMD). A lone 429 (or a 503
  with Retry-After) delays only its own row, never by less than Retry-After. When Graph (or the
  emulator, or a proxy) advertises ``RateLimit-*`` headers, the gate paces sends at the advertised
  rate so a run converges on the limit without being throttled at all.
- A row that must wait (Retry-After, backoff) goes back into a time-ordered queue instead of
  holding a worker asleep, so the other rows keep the connection slots busy.
- Every finished row is handed to ``on_result`` at once (the journal commits it before the worker
  takes the next row): a result that came back from Graph is never lost.
- createOrGet is idempotent by externalId, so re-sending after a timeout or a dropped connection
  is safe; 400/401/403/404 are final and fail at once.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bulkmeet.errors import BulkmeetError
from bulkmeet.graph import GraphGateway, GraphResponse, describe_failure, is_access_policy_error
from bulkmeet.models import CREATED, EXISTING, FAILED, ME, MeetingInfo, MeetingRequest, MeetingResult

log = logging.getLogger(__name__)

TRANSIENT_STATUSES = frozenset({500, 502, 503, 504, 507})
RECENT_WINDOW = 20  # answers the gate remembers to tell systemic throttling from a lone 429
SYSTEMIC_429S = 3  # 429s among them that mean the app is over its budget
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


@dataclass(frozen=True)
class RetryPolicy:
    """Per row, per run. Whatever is left failed is retried by the next run."""

    max_attempts: int = 6  # attempts that end in 5xx, timeouts or dropped connections
    max_throttled: int = 40  # 429 answers a row may absorb (throttling is expected, not an error)
    base_delay: float = 0.5  # first backoff without Retry-After; doubles each time, with jitter
    max_delay: float = 60.0

    def backoff(self, n: int, rng: random.Random) -> float:
        """Wait before the n-th retry without Retry-After: doubling, capped, with jitter."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (n - 1)))
        return rng.uniform(ceiling / 2, ceiling)


class Gate:
    """The one door every request goes through: global pause, adaptive limit, rate pacing."""

    def __init__(self, max_limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_limit = max(1, max_limit)
        self.limit = float(self.max_limit)
        self.in_flight = 0
        self.paused_until = 0.0
        self.rate: float | None = None  # requests/s learned from RateLimit-* headers
        self._window = 1.0
        self._next_send = 0.0
        self._last_cut = -1e9
        self._clock = clock
        self._cond = threading.Condition()
        self.peak_in_flight = 0
        self.pauses = 0
        self._recent: deque[bool] = deque(maxlen=RECENT_WINDOW)  # was each recent answer a 429?

    def acquire(self, stop: threading.Event) -> bool:
        with self._cond:
            while True:
                if stop.is_set():
                    return False
                now = self._clock()
                if now < self.paused_until:
                    wait: float | None = self.paused_until - now
                elif self.in_flight >= int(self.limit):
                    wait = None
                elif self.rate and now < self._next_send:
                    wait = self._next_send - now
                else:
                    self.in_flight += 1
                    self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
                    if self.rate:
                        self._next_send = max(self._next_send, now) + 1.0 / self.rate
                    return True
                self._cond.wait(timeout=0.25 if wait is None else min(wait, 0.25))

    def release(self, response: GraphResponse | None) -> None:
        with self._cond:
            self.in_flight -= 1
            if response is not None:
                self._learn(response)
            self._cond.notify_all()

    def pause_for(self, seconds: float) -> None:
        with self._cond:
            self.paused_until = max(self.paused_until, self._clock() + seconds)
            self._cond.notify_all()

    def _learn(self, response: GraphResponse) -> None:
        now = self._clock()
        limit = _number(response.header("RateLimit-Limit"))
        reset = _number(response.header("RateLimit-Reset"))
        throttled = response.status == 429
        self._recent.append(throttled)
        if limit and limit > 0:
            # The window is learned from ordinary answers only: on a 429, Reset may be stretched
            # to Retry-After, which says nothing about the steady rate.
            if not throttled and reset is not None and reset > self._window:
                self._window = reset
            rate = 0.95 * limit / self._window
            self.rate = min(self.rate, rate) if (throttled and self.rate) else rate
        if throttled and self._systemic(response):
            wait = response.retry_after if response.retry_after is not None else 1.0
            self.paused_until = max(self.paused_until, now + wait)
            if now - self._last_cut > max(wait, 1.0):
                self._last_cut = now
                self.limit = max(1.0, self.limit / 2)
                if self.rate:
                    self.rate *= 0.9
                self.pauses += 1
                log.info("Graph is throttling: pausing %.0f s, concurrency now %d", wait, int(self.limit))
        elif response.status in (200, 201):
            self.limit = min(float(self.max_limit), self.limit + 1.0 / self.limit)

    def _systemic(self, response: GraphResponse) -> bool:
        """Is this 429 the app's budget running out (pause everyone) or one unlucky request?

        Graph throttles per app, so real throttling comes in clusters, or says so with
        RateLimit-Remaining: 0. A lone 429 only delays its own row (by Retry-After); pausing
        the whole pool for it would cost every worker the wait.
        """
        remaining = _number(response.header("RateLimit-Remaining"))
        if remaining is not None and remaining < 1:
            return True
        return sum(self._recent) >= SYSTEMIC_429S


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


@dataclass
class RunStats:
    requests: int = 0
    by_status: Counter = field(default_factory=Counter)
    throttled: int = 0
    blocked_organizers: dict[str, str] = field(default_factory=dict)  # organizer -> message

    def count(self, response: GraphResponse) -> None:
        self.requests += 1
        self.by_status[str(response.status or response.failure)] += 1
        if response.status == 429:
            self.throttled += 1


@dataclass
class _Task:
    request: MeetingRequest
    attempts: int = 0
    throttled: int = 0
    transient: int = 0
    last: GraphResponse | None = None


class Runner:
    """Sends planned requests; calls ``on_result`` for each finished row from a worker thread."""

    def __init__(
        self,
        gateway: GraphGateway,
        *,
        concurrency: int = 4,
        policy: RetryPolicy = RetryPolicy(),
        on_result: Callable[[MeetingResult], None] = lambda r: None,
        organizer_ids: Mapping[str, str] | None = None,
        client_id: str | None = None,
        stop: threading.Event | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.gateway = gateway
        self.concurrency = max(1, concurrency)
        self.policy = policy
        self.on_result = on_result
        self.organizer_ids = dict(organizer_ids or {})
        self.client_id = client_id
        self.stop = stop or threading.Event()
        self.rng = rng or random.Random()
        self.gate = Gate(self.concurrency)
        self.stats = RunStats()
        self._cond = threading.Condition()
        self._ready: list[tuple[float, int, _Task]] = []
        self._seq = itertools.count()
        self._busy = 0
        self._blocked: dict[str, GraphResponse] = {}
        self.unfinished: list[MeetingRequest] = []

    # -- scheduling -------------------------------------------------------------------------

    def _push(self, task: _Task, delay: float = 0.0) -> None:
        with self._cond:
            heapq.heappush(self._ready, (time.monotonic() + delay, next(self._seq), task))
            self._cond.notify()

    def _take(self) -> _Task | None:
        with self._cond:
            while True:
                if self.stop.is_set():
                    return None
                now = time.monotonic()
                if self._ready and self._ready[0][0] <= now:
                    self._busy += 1
                    return heapq.heappop(self._ready)[2]
                if not self._ready and self._busy == 0:
                    return None
                wait = (self._ready[0][0] - now) if self._ready else 0.25
                self._cond.wait(timeout=min(max(wait, 0.0), 0.25))

    def _done_with(self) -> None:
        with self._cond:
            self._busy -= 1
            self._cond.notify_all()

    # -- running ----------------------------------------------------------------------------

    def run(self, requests: Sequence[MeetingRequest]) -> RunStats:
        for req in requests:
            heapq.heappush(self._ready, (0.0, next(self._seq), _Task(req)))
        workers = [
            threading.Thread(target=self._work, name=f"bulkmeet-worker-{i}", daemon=True)
            for i in range(min(self.concurrency, max(1, len(requests))))
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        with self._cond:
            self.unfinished = [t.request for _, _, t in sorted(self._ready)]
            self._ready.clear()
        return self.stats

    def _work(self) -> None:
        while True:
            task = self._take()
            if task is None:
                return
            try:
                self._step(task)
            except BulkmeetError as exc:  # e.g. the token could not be renewed mid-run
                self._finish(task, FAILED, error=str(exc))
            except Exception as exc:  # a bug must not hang the run: record the row as failed
                log.error("unexpected error while sending row %s: %s", task.request.row,
                          type(exc).__name__)
                log.debug("details of the unexpected error", exc_info=True)
                self._finish(task, FAILED, error="bulkmeet hit an internal error on this row "
                             "(see the log); the next run retries it.")
            finally:
                self._done_with()

    def _organizer_path_id(self, organizer: str) -> str | None:
        if organizer == ME:
            return None
        if GUID.match(organizer):
            return organizer
        return self.organizer_ids.get(organizer)

    def _step(self, task: _Task) -> None:
        req = task.request
        blocked = self._blocked.get(req.organizer)
        if blocked is not None:
            self._finish(task, FAILED, response=blocked, attempts_override=task.attempts)
            return
        organizer_id = self._organizer_path_id(req.organizer)
        if req.organizer != ME and organizer_id is None:
            msg = self.stats.blocked_organizers.get(req.organizer) or (
                f"Organizer {req.organizer} could not be resolved to an Entra object ID.")
            self._finish(task, FAILED, error=msg)
            return
        if not self.gate.acquire(self.stop):
            self._push_back(task)
            return
        response: GraphResponse | None = None
        try:
            response = self.gateway.create_or_get(organizer_id, req.body())
        finally:
            self.gate.release(response)
        task.attempts += 1
        task.last = response
        self.stats.count(response)
        self._handle(task, response)

    def _push_back(self, task: _Task) -> None:
        with self._cond:
            heapq.heappush(self._ready, (0.0, next(self._seq), task))

    def _handle(self, task: _Task, response: GraphResponse) -> None:
        status = response.status
        if status in (200, 201):
            self._finish(task, CREATED if status == 201 else EXISTING, response=response)
            return
        if status == 429:
            task.throttled += 1
            if task.throttled >= self.policy.max_throttled:
                self._finish(task, FAILED, response=response)
                return
            self._push(task, response.retry_after if response.retry_after is not None
                       else self._backoff(task.throttled))
            return
        if status is None or status in TRANSIENT_STATUSES:
            task.transient += 1
            if task.transient >= self.policy.max_attempts:
                self._finish(task, FAILED, response=response)
                return
            delay = response.retry_after if response.retry_after else self._backoff(task.transient)
            self._push(task, delay)
            return
        # 400, 401, 403, 404 and the rest: final. A 403/404 is about the organizer, not the row.
        if status == 404 or is_access_policy_error(response):
            with self._cond:
                if task.request.organizer not in self._blocked:
                    self._blocked[task.request.organizer] = response
                    self.stats.blocked_organizers[task.request.organizer] = self._describe(
                        task, response)
        self._finish(task, FAILED, response=response)

    def _backoff(self, n: int) -> float:
        return self.policy.backoff(n, self.rng)

    def _describe(self, task: _Task, response: GraphResponse) -> str:
        org = task.request.organizer
        oid = self._organizer_path_id(org)
        who = f"{org} ({oid})" if oid and oid != org else org
        return describe_failure(response, organizer=who, client_id=self.client_id,
                                attempts=task.attempts, organizer_id=oid)

    def _finish(self, task: _Task, status: str, *, response: GraphResponse | None = None,
                error: str | None = None, attempts_override: int | None = None) -> None:
        req = task.request
        meeting = None
        warning = None
        if response is not None and status in (CREATED, EXISTING) and isinstance(response.body, dict):
            meeting = MeetingInfo.from_graph(response.body)
            if status == EXISTING:
                warning = differences(req, response.body)
        if status == FAILED and error is None and response is not None:
            error = self._describe(task, response)
        result = MeetingResult(
            external_id=req.external_id,
            organizer=req.organizer,
            status=status,
            fingerprint=req.fingerprint(),
            http_status=response.status if response is not None else None,
            meeting=meeting,
            error=error,
            error_code=response.error_code if response is not None else None,
            request_id=response.request_id if response is not None else None,
            attempts=task.attempts if attempts_override is None else attempts_override,
            warning=warning,
            recorded_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        self.on_result(result)


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


def resolve_organizers(
    gateway: GraphGateway, upns: Iterable[str], *, concurrency: int = 4,
    policy: RetryPolicy = RetryPolicy(), stop: threading.Event | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """UPN -> object id, once per distinct organizer. Returns (resolved, problems by UPN).

    Graph answers 404 for a UPN in the createOrGet path, so every UPN is resolved first with
    ``GET /users/{upn}?$select=id`` (needs User.Read.All).
    """
    stop = stop or threading.Event()
    gate = Gate(concurrency)
    pending = list(dict.fromkeys(upns))
    resolved: dict[str, str] = {}
    problems: dict[str, str] = {}
    lock = threading.Lock()
    rng = random.Random()

    def one(upn: str) -> None:
        attempts = transient = throttled = 0
        while not stop.is_set():
            if not gate.acquire(stop):
                return
            response = None
            try:
                response = gateway.get_user(upn)
            finally:
                gate.release(response)
            attempts += 1
            if response.status == 200 and isinstance(response.body, dict) and response.body.get("id"):
                with lock:
                    resolved[upn] = str(response.body["id"]).lower()
                return
            if response.status == 429 and throttled < policy.max_throttled:
                throttled += 1
                time.sleep(response.retry_after if response.retry_after is not None else 1.0)
                continue
            if (response.status is None or response.status in TRANSIENT_STATUSES) and \
                    transient + 1 < policy.max_attempts:
                transient += 1
                time.sleep(response.retry_after or policy.backoff(transient, rng))
                continue
            with lock:
                problems[upn] = _resolve_problem(upn, response, attempts)
            return

    threads = []
    queue = list(pending)
    qlock = threading.Lock()

    def worker() -> None:
        while True:
            with qlock:
                if not queue:
                    return
                upn = queue.pop()
            one(upn)

    for _ in range(min(concurrency, len(pending))):
        t = threading.Thread(target=worker, daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    return resolved, problems


def _resolve_problem(upn: str, response: GraphResponse, attempts: int) -> str:
    if response.status == 404:
        return (f"Organizer {upn} was not found in the tenant (GET /users answered 404): check the "
                "address, or put the organizer's Entra object ID in the sheet.")
    if response.status == 403:
        return (f"Could not look up organizer {upn} (403 {response.error_code or ''}): grant the "
                "app the User.Read.All application permission with admin consent, or put object IDs "
                "in the organizer column.")
    return describe_failure(response, organizer=upn, attempts=attempts).replace(
        "retries this row", "retries this organizer's rows")
