"""Injected faults and latency, so that clients are tested against Graph's bad days too.

This follows what Microsoft's Dev Proxy simulates for Graph: random 429/500/502/503/504 answers,
dropped connections, stalls and random latency (throttling by load is ``throttle.py``). Some 5xx
and drops happen *after* the meeting was made, as they do in reality; a client that retries with a plain POST
(not createOrGet) would make a duplicate there.

Every random choice comes from one seeded RNG, drawn the same number of times per request, so
with a seed the sequence of decisions is reproducible.
"""
from __future__ import annotations

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

    def latency(self) -> float:
        """A delay alone (seconds), for a request that travels once but runs many ($batch)."""
        with self._lock:
            x = self._rng.random()
        lo, hi = self.latency_ms
        return (lo + (hi - lo) * x) / 1000.0 if hi > 0 else 0.0

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
