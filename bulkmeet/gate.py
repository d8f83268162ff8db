"""The one door every Graph request goes through: it finds the app's limit by itself.

Real Graph publishes no limit for onlineMeetings and sends no hint on meeting calls: a throttled
call gets 429 + Retry-After and nothing more. So the gate learns from what every client sees,
the way TCP finds a path's capacity (AIMD), and uses hints only when they happen to be there:

* **Window** (``limit``, requests in flight). Starts at the configured ``concurrency``. Until the
  first sign of congestion it grows by one per clean answer (slow start: doubling every round
  trip), then by one per round trip (``1/limit`` per clean answer), up to ``max_limit``
  (``[run] max_concurrency``). It is cut multiplicatively (``LATENCY_CUT``) when answers get
  slow: a short-term latency average above ``LATENCY_RISE`` x the run's baseline means Graph is
  queueing us. With a fixed concurrency (``start == max_limit``) it never grows.
* **Rate** (``rate``, requests/s, off until needed). Systemic throttling (several 429s among
  recent answers, or ``RateLimit-Remaining: 0``) pauses *everyone* until Retry-After and sets the
  pacing rate just under what Graph actually let through in the last seconds (``RATE_CUT`` x the
  delivered rate); clean seconds raise it by ``RATE_PROBE`` (multiplicative increase, so it finds
  a moved limit again). Cutting the rate, not the window, matters: a 40 requests/s limit at 0.6 s
  latency needs 24 in flight, and halving the window would halve the throughput; pacing at
  0.9 x the limit loses a tenth at worst and recovers in seconds. A lone 429 (one unlucky
  request, or an injected fault) delays only its own row.
* **Hints.** ``RateLimit-Limit/Remaining/Reset`` (SharePoint-style, or a proxy) set the rate from
  the advertised budget; ``x-ms-throttle-limit-percentage`` (directory calls, past 80 % of the
  budget) stops the growth before any 429. Neither is needed: without them the same loop runs
  on 429s and latency alone.

The gate never sleeps a caller longer than 0.25 s at a time, and reads time from ``clock``.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable

from bulkmeet.graph import GraphResponse

log = logging.getLogger(__name__)

RECENT_WINDOW = 6  # answers remembered to tell systemic throttling from a lone 429
SYSTEMIC_429S = 3  # 429s among them that mean the app is over its budget: when the budget is
# spent, Graph answers *every* request with 429 at once, so they come in runs; a few 429s
# scattered among hundreds of answers (a busy backend) are not the app's budget
RATE_CUT = 0.9  # pace at this share of the delivered rate after systemic throttling
RATE_PROBE = 0.02  # then raise the rate by this share per clean second
RATE_RECOVER = 0.15  # ... or by this share while far below the rate Graph last throttled at
DELIVERY_WINDOW_S = 3.0  # how far back "what Graph let through" is measured
LATENCY_RISE = 2.0  # short-term latency above this x the baseline: Graph is queueing us
LATENCY_CUT = 0.85  # ... and the window shrinks by this factor (at most once a second)
LATENCY_WARMUP = 20  # answers before the latency baseline counts
LATENCY_MIN_RISE_S = 0.25  # ... and by at least this much (tiny latencies are our own CPU noise)
THROTTLE_HINT = 0.95  # x-ms-throttle-limit-percentage at or above this stops growth

Clock = Callable[[], float]


class Gate:
    """Global pause, adaptive window (AIMD) and adaptive pacing; thread-safe."""

    def __init__(self, max_limit: int, clock: Clock = time.monotonic, *,
                 start: int | None = None) -> None:
        self.max_limit = max(1, max_limit)
        self.limit = float(min(self.max_limit, max(1, start or self.max_limit)))
        self.in_flight = 0
        self.paused_until = 0.0
        self.rate: float | None = None  # requests/s we pace at (None: no pacing)
        self.throttle_events = 0  # systemic throttling episodes (each paused everyone)
        self.slow_start = self.limit < self.max_limit
        self._window = 1.0
        self._next_send = 0.0
        self._last_cut = -1e9
        self._last_probe: float | None = None
        self._last_latency_cut = -1e9
        self._clock = clock
        self._cond = threading.Condition()
        self._recent: deque[bool] = deque(maxlen=RECENT_WINDOW)  # was each recent answer a 429?
        self._delivered: deque[float] = deque()  # times of recent 2xx answers
        self._first_answer: float | None = None
        self._measure_from = -math.inf  # delivery is measured from here (the end of the last pause)
        self._rate_max: float | None = None  # the delivered rate when Graph last throttled us
        self._fast_latency: float | None = None  # EWMA over ~10 answers
        self._slow_latency: float | None = None  # EWMA over ~20 answers, its minimum is the base
        self._base_latency: float | None = None
        self._latency_samples = 0
        self._in_flight_samples: deque[int] = deque(maxlen=400)

    # -- the door ------------------------------------------------------------------------------

    def acquire(self, stop: threading.Event, weight: int = 1) -> bool:
        """Wait for a slot (one HTTP call); ``weight`` is how many Graph requests it carries
        (a JSON batch carries up to 20, and Graph counts each against the budget)."""
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
                    self._in_flight_samples.append(self.in_flight)
                    if self.rate:
                        self._next_send = max(self._next_send, now) + weight / self.rate
                    return True
                self._cond.wait(timeout=0.25 if wait is None else min(wait, 0.25))

    def release(self, response: GraphResponse | None, sent_at: float | None = None, *,
                throttling: bool | None = None) -> None:
        """Hand back a slot with what came of it. ``throttling`` overrides "is this 429 about
        the app's budget?" (a 429 for an organizer's monthly quota is not)."""
        with self._cond:
            self.in_flight -= 1
            if response is not None:
                throttled = response.status == 429 if throttling is None else throttling
                self._learn(response, throttled, sent_at)
            self._cond.notify_all()

    def release_batch(self, responses: list[GraphResponse], sent_at: float | None,
                      throttling: list[bool | None]) -> None:
        """Hand back a batch's slot, learning from every item's answer."""
        with self._cond:
            self.in_flight -= 1
            for response, flag in zip(responses, throttling, strict=True):
                throttled = response.status == 429 if flag is None else flag
                self._learn(response, throttled, sent_at)
            self._cond.notify_all()

    def pause_for(self, seconds: float) -> None:
        with self._cond:
            self.paused_until = max(self.paused_until, self._clock() + seconds)
            self._cond.notify_all()

    def ready_at(self) -> float:
        """The earliest time the next send may go (the pause and the pacing; not the window)."""
        with self._cond:
            return max(self.paused_until, self._next_send if self.rate else 0.0)

    # -- what the run settled on ---------------------------------------------------------------

    def settled(self) -> int:
        """Requests in flight the run settled on: the mean over its last sends."""
        with self._cond:
            samples = list(self._in_flight_samples)
        return max(1, round(sum(samples) / len(samples))) if samples else int(self.limit)

    def describe(self) -> str:
        rate = f", paced at {self.rate:.0f} requests/s" if self.rate else ""
        return f"concurrency settled at {self.settled()} (limit {int(self.limit)}){rate}"

    # -- learning ------------------------------------------------------------------------------

    def _learn(self, response: GraphResponse, throttled: bool, sent_at: float | None) -> None:
        now = self._clock()
        self._recent.append(throttled)
        self._learn_headers(response, throttled, now)
        if throttled and self._systemic(response):
            self._throttled(response, now)
        elif not throttled and response.status is not None:
            # Every answer but a 429 was let through and counted against the budget, failures
            # included: that is the rate Graph accepted.
            if self._first_answer is None:
                self._first_answer = now
            self._delivered.append(now)
            while self._delivered and self._delivered[0] < now - DELIVERY_WINDOW_S:
                self._delivered.popleft()
            if not 200 <= response.status < 300:
                return  # a failure says nothing about latency, and is no reason to grow
            if sent_at is not None and self._latency(now - sent_at, now):
                return
            self._grow(now)

    def _learn_headers(self, response: GraphResponse, throttled: bool, now: float) -> None:
        limit = _number(response.header("RateLimit-Limit"))
        reset = _number(response.header("RateLimit-Reset"))
        if limit and limit > 0:
            # The window is learned from ordinary answers only: on a 429, Reset may be stretched
            # to Retry-After, which says nothing about the steady rate.
            if not throttled and reset is not None and reset > self._window:
                self._window = reset
            rate = 0.95 * limit / self._window
            self.rate = min(self.rate, rate) if (throttled and self.rate) else rate
            self._last_probe = now
        used = _number(response.header("x-ms-throttle-limit-percentage"))
        if used is not None and used >= THROTTLE_HINT:
            self.slow_start = False
            if self.rate is None:
                self.rate = max(1.0, self._delivered_rate(now))
            self._last_probe = now  # hold the rate: no probing while Graph says we are close

    def _throttled(self, response: GraphResponse, now: float) -> None:
        wait = response.retry_after if response.retry_after is not None else 1.0
        self.paused_until = max(self.paused_until, now + wait)
        self.slow_start = False
        if now - self._last_cut <= max(wait, 1.0):
            return  # one cut per episode: the other 429s of the burst say the same thing
        self._last_cut = now
        self.throttle_events += 1
        delivered = self._delivered_rate(now)
        current = self.rate if self.rate else math.inf
        base = min(current, delivered) if delivered > 0 else (self.rate or 1.0)
        self._rate_max = base
        # Never more than halve the pace in one episode: a few unlucky 429s among slow answers
        # (faults, stalls) must not drive it to nothing.
        floor = 0.5 * self.rate if self.rate else 0.5
        self.rate = max(0.5, floor, RATE_CUT * base)
        self._last_probe = now + wait
        self._measure_from = self.paused_until  # the pause itself delivers nothing: not a rate
        log.info("Graph is throttling: pausing %.0f s, pacing at %.1f requests/s", wait, self.rate)

    def _grow(self, now: float) -> None:
        if self.slow_start:
            self.limit = min(float(self.max_limit), self.limit + 1.0)
            self.slow_start = self.limit < self.max_limit
        else:
            self.limit = min(float(self.max_limit), self.limit + 1.0 / self.limit)
        if self.rate and self._last_probe is not None and now - self._last_probe >= 1.0:
            seconds = now - self._last_probe
            # Far below where Graph last throttled us, climb back fast; near it, carefully.
            far = self._rate_max is not None and self.rate < 0.8 * self._rate_max
            self.rate *= (1.0 + (RATE_RECOVER if far else RATE_PROBE)) ** min(seconds, 5.0)
            # A rate far above what is delivered no longer paces anything: stop growing it.
            self.rate = min(self.rate, max(2.0 * self._delivered_rate(now), 1.0))
            self._last_probe = now

    def _latency(self, seconds: float, now: float) -> bool:
        """Track latency; True when it says Graph is queueing us (and the window was cut)."""
        prev = self._fast_latency
        if prev is not None:
            seconds = min(seconds, 3.0 * prev)  # one stalled answer is not a trend
        fast = seconds if prev is None else 0.9 * prev + 0.1 * seconds
        self._fast_latency = fast
        slow = seconds if self._slow_latency is None else 0.95 * self._slow_latency + 0.05 * seconds
        self._slow_latency = slow
        self._latency_samples += 1
        if self._latency_samples < LATENCY_WARMUP:
            return False
        base = self._base_latency
        if base is None or slow < base:
            self._base_latency = slow  # the best the run has seen, smoothed
        else:
            self._base_latency = base + 0.001 * (slow - base)  # a moved baseline is followed slowly
        base = self._base_latency
        queueing = fast > LATENCY_RISE * base and fast - base > LATENCY_MIN_RISE_S
        if queueing and now - self._last_latency_cut >= 1.0:
            self._last_latency_cut = now
            self.slow_start = False
            self.limit = max(1.0, self.limit * LATENCY_CUT)
            log.info("Graph answers slowly (%.1f s, baseline %.1f s): concurrency now %d",
                     fast, base, int(self.limit))
            return True
        return False

    def _delivered_rate(self, now: float) -> float:
        """2xx answers per second over the last few seconds (or since the first answer: early
        in a run, dividing by the whole window would underestimate the limit badly)."""
        while self._delivered and self._delivered[0] < now - DELIVERY_WINDOW_S:
            self._delivered.popleft()
        if not self._delivered or self._first_answer is None:
            return 0.0
        start = max(self._first_answer, self._measure_from)
        span = min(DELIVERY_WINDOW_S, max(now - start, 0.25))
        if start > now - DELIVERY_WINDOW_S:
            return sum(1 for t in self._delivered if t >= start) / span
        return len(self._delivered) / span

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
