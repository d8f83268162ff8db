"""Throttling and injected faults, so that clients are tested against Graph's bad days too.

Both follow what Microsoft's Dev Proxy simulates for Graph: a per-app token bucket answering 429
with a whole-second ``Retry-After`` (and a second 429 for a client that comes back early), and
random 429/500/502/503/504 answers, dropped connections and stalls. Some 5xx and drops happen
*after* the meeting was made, as they do in reality; a client that retries with a plain POST
(not createOrGet) would make a duplicate there.

Every random choice comes from one seeded RNG, drawn the same number of times per request, so
with a seed the sequence of decisions is reproducible.
"""
from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass

FAULT_KINDS = ("429", "500", "502", "503", "504", "drop", "stall")
# Kinds that may strike after the request was carried out (the meeting then exists).
AFTER_KINDS = frozenset({"500", "502", "503", "504", "drop"})


@dataclass(frozen=True)
class Fault:
    kind: str
    after: bool  # carry the request out first, then fail
    retry_after: int  # seconds, for 429 and 503
    stall_then_drop: bool  # a stall ends by dropping the connection (else by answering late)


class Chaos:
    """Latency and fault decisions for Graph requests, in a reproducible order."""

    def __init__(self, fault_rate: float, latency_ms: tuple[float, float], seed: int | None) -> None:
        self.fault_rate = fault_rate
        self.latency_ms = latency_ms
        self._seed = seed
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def reseed(self, seed: int | None = None) -> None:
        with self._lock:
            if seed is not None:
                self._seed = seed
            self._rng = random.Random(self._seed)

    @property
    def active(self) -> bool:
        return self.fault_rate > 0 or self.latency_ms[1] > 0

    def decide(self) -> tuple[Fault | None, float]:
        """(fault or None, delay in seconds) for one request."""
        with self._lock:
            r = self._rng.random
            roll, pick, when, retry, latency = r(), r(), r(), r(), r()
        lo, hi = self.latency_ms
        delay = (lo + (hi - lo) * latency) / 1000.0 if hi > 0 else 0.0
        if roll >= self.fault_rate:
            return None, delay
        kind = FAULT_KINDS[min(int(pick * len(FAULT_KINDS)), len(FAULT_KINDS) - 1)]
        after = kind == "stall" or (kind in AFTER_KINDS and when < 0.5)
        return Fault(
            kind=kind,
            after=after,
            retry_after=1 + min(int(retry * 3), 2),
            stall_then_drop=when < 0.5,
        ), delay


class RateLimiter:
    """A token bucket per (tenant, app): refilled at ``rate``/s, holding at most ``rate`` tokens.

    An empty bucket answers 429 and blocks the app until Retry-After has passed; requests that
    come back earlier are throttled again without being served.
    """

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self._buckets: dict[tuple[str, str], list[float]] = {}
        self._lock = threading.Lock()

    def reset(self, rate: float | None = ...) -> None:  # type: ignore[assignment]
        with self._lock:
            if rate is not ...:
                self.rate = rate
            self._buckets.clear()

    def take(self, key: tuple[str, str], now: float) -> tuple[int | None, list[tuple[str, str]]]:
        """(Retry-After seconds if throttled else None, RateLimit-* headers)."""
        rate = self.rate
        if not rate:
            return None, []
        capacity = max(rate, 1.0)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = [capacity, now, 0.0]  # tokens, last refill, blocked until
            tokens = min(capacity, bucket[0] + (now - bucket[1]) * rate)
            bucket[1] = now
            retry_after: int | None = None
            if now < bucket[2]:
                retry_after = max(1, math.ceil(bucket[2] - now))
            elif tokens >= 1.0:
                tokens -= 1.0
            else:
                retry_after = max(1, math.ceil((1.0 - tokens) / rate))
                bucket[2] = now + retry_after
            bucket[0] = tokens
        reset = math.ceil((capacity - tokens) / rate) if tokens < capacity else 0
        if retry_after is not None:
            reset = max(reset, retry_after)
        headers = [
            ("RateLimit-Limit", str(math.ceil(capacity))),
            ("RateLimit-Remaining", str(int(tokens))),
            ("RateLimit-Reset", str(reset)),
        ]
        return retry_after, headers
