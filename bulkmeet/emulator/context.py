"""What the emulator's services share: a clock, the live settings, the counters, persistence.

The Graph and identity services used to reach into ``Emulator`` privates; they get this narrow
object instead, built before them, so each service sees only what it needs and a test can tell
what a service may touch. It is a leaf: it imports nothing else from the emulator.

The clock is controllable: ``advance(seconds)`` moves emulated time forward for everything that
keeps time inside the emulator (token expiry, Retry-After windows, token buckets, device codes,
refresh tokens, meeting creation times, the monthly meeting cap), so conformance tests need not
sleep. Real waits (latency, stalls) stay real: they are about the wire, not about the tenant.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

GRAPH_WRITE_METHODS = ("POST", "PATCH", "DELETE", "PUT")


class Clock:
    """Wall and monotonic time plus an offset that only grows (``advance``)."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    @property
    def offset(self) -> float:
        return self._offset

    def time(self) -> float:
        return time.time() + self._offset

    def monotonic(self) -> float:
        return time.monotonic() + self._offset

    def advance(self, seconds: float) -> float:
        """Move emulated time forward; returns the total offset. Time never goes back."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
            raise ValueError(f"advance {seconds!r}: need a number of seconds >= 0.")
        with self._lock:
            self._offset += float(seconds)
            return self._offset


class Settings:
    """Knobs that ``Emulator.configure()`` may change while the emulator runs."""

    def __init__(self, token_lifetime_s: int, stall_s: float, device_code_interval_s: int,
                 device_code_lifetime_s: float, helpful_errors: bool) -> None:
        self.token_lifetime_s = token_lifetime_s
        self.stall_s = stall_s
        self.device_code_interval_s = device_code_interval_s
        self.device_code_lifetime_s = device_code_lifetime_s
        self.helpful_errors = helpful_errors


class Persist(Protocol):
    """Where state changes go before an answer is sent (the durable journal, or nowhere)."""

    def write(self, record: dict[str, Any] | bytes) -> int: ...
    def sync(self, seq: int) -> None: ...


class NoPersist:
    """Without ``--state`` nothing is kept."""

    def write(self, record: dict[str, Any] | bytes) -> int:
        return 0

    def sync(self, seq: int) -> None:
        return None


class Stats:
    """Counters for ``GET /_emulator/stats``; every update under one lock."""

    def __init__(self, clock: Clock) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._started = time.time()
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests = 0
            self.by_path: dict[str, dict[str, int]] = {}
            self.by_status: dict[str, int] = {}
            self.by_method: dict[str, int] = {}
            self.graph_writes = 0
            self.created = 0
            self.updated = 0
            self.deleted = 0
            self.throttled = 0
            self.throttled_early = 0
            self.quota_refused = 0
            self.batches = 0
            self.faults: dict[str, int] = {}
            self.faults_after_create = 0
            self.in_flight_peak = self.in_flight
            self.token_requests = 0
            self.tokens_issued = 0

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            if self.in_flight > self.in_flight_peak:
                self.in_flight_peak = self.in_flight

    def leave(self, key: str | None, label: str) -> None:
        with self._lock:
            self.in_flight -= 1
            if key is not None:
                self._count(key, label)

    def count_item(self, key: str, label: str) -> None:
        """A request inside a ``$batch``: counted like a request of its own."""
        with self._lock:
            self._count(key, label)

    def _count(self, key: str, label: str) -> None:
        self.requests += 1
        per = self.by_path.get(key)
        if per is None:
            per = self.by_path[key] = {}
        per[label] = per.get(label, 0) + 1
        self.by_status[label] = self.by_status.get(label, 0) + 1
        method, _, route = key.partition(" ")
        if route.startswith(("/v1.0/", "/beta/")):
            self.by_method[method] = self.by_method.get(method, 0) + 1
            if method in GRAPH_WRITE_METHODS and not route.endswith("/$batch"):
                self.graph_writes += 1

    def bump(self, name: str, n: int = 1) -> None:
        """``created``, ``updated``, ``deleted``, ``throttled``, ``quota_refused``, ..."""
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def count_fault(self, kind: str, after: bool) -> None:
        with self._lock:
            self.faults[kind] = self.faults.get(kind, 0) + 1
            if after and kind != "stall":
                self.faults_after_create += 1

    def snapshot(self, fault_kinds: tuple[str, ...] = ()) -> dict[str, Any]:
        with self._lock:
            faults = {k: self.faults.get(k, 0) for k in fault_kinds}
            faults.update(self.faults)
            by_route = {k: sum(v.values()) for k, v in sorted(self.by_path.items())}
            return {
                "requests": self.requests,
                "by_path": {k: dict(v) for k, v in sorted(self.by_path.items())},
                "by_route": by_route,
                "by_method": dict(sorted(self.by_method.items())),
                "graph_writes": self.graph_writes,
                "by_status": dict(sorted(self.by_status.items())),
                "created": self.created,
                "updated": self.updated,
                "deleted": self.deleted,
                "throttled": self.throttled + faults.get("429", 0),
                "rate_limited": self.throttled,
                "throttled_early": self.throttled_early,
                "quota_refused": self.quota_refused,
                "batches": self.batches,
                "faults": faults,
                "faults_after_create": self.faults_after_create,
                "in_flight": self.in_flight,
                "in_flight_peak": self.in_flight_peak,
                "token_requests": self.token_requests,
                "tokens_issued": self.tokens_issued,
                "uptime_s": round(time.time() - self._started, 3),
                "clock_offset_s": self._clock.offset,
            }


@dataclass
class Context:
    """Everything a service may use. ``base_url`` is a callable: it is known only once listening."""

    clock: Clock
    settings: Settings
    stats: Stats
    stop: threading.Event
    base_url: Callable[[], str]
    persist: Persist = field(default_factory=NoPersist)

    def say(self, helpful: str, vague: str = "An error has occurred.") -> str:
        """Graph's terse message by default; the helpful one with ``helpful_errors``."""
        return helpful if self.settings.helpful_errors else vague
