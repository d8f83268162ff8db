"""Throttling the way Graph throttles: hidden limits, 429 + Retry-After, and little else.

Microsoft publishes no per-second limit for onlineMeetings, and meeting calls carry no hint of
how close a client is to one: a throttled call gets ``429`` with ``Retry-After`` and nothing more.
This module models that, every part configurable and deterministic:

* a token bucket per (tenant, app) at ``rate`` requests/s (the hidden limit), optionally a second
  one per (tenant, app, organizer);
* an app that comes back before its Retry-After has passed is throttled again, and with
  ``early_penalty_s`` its window is pushed out further each time (what a real service does to a
  client that hammers it);
* ``RateLimit-*`` headers only when asked for (``ratelimit_headers``), and then SharePoint-style:
  only once more than 80% of the budget is used;
* on the directory (``/users``), Graph's own headers: ``x-ms-resource-unit`` on every answer,
  ``x-ms-throttle-limit-percentage`` past 80%, ``x-ms-throttle-scope`` and
  ``x-ms-throttle-information`` on a 429;
* the 2,000 meetings per organizer per calendar month cap (Graph's "meeting information" limit).
  The real answer at the cap is not documented: by default a 429 *without* Retry-After (waiting
  does not help until the month turns), or a 403 (``cap_error = "403"``).

Times come from the emulator's clock, so tests advance it instead of sleeping.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

HEADER_THRESHOLD = 0.8  # headers start past 80% of the budget
MONTHLY_MEETING_CAP = 2000
CAP_ERRORS = ("429", "403")


@dataclass(frozen=True)
class ThrottleOptions:
    rate: float | None = None  # requests/s per (tenant, app); None = unlimited
    burst: float | None = None  # bucket size; None = max(rate, 1) (one second's worth)
    per_organizer_rate: float | None = None  # also a bucket per (tenant, app, organizer)
    early_penalty_s: float = 0.0  # extra seconds each time an app returns before Retry-After
    ratelimit_headers: bool = False  # RateLimit-* on meeting calls (past 80% only)
    meeting_cap: int | None = MONTHLY_MEETING_CAP  # per organizer per calendar month; None = off
    cap_error: str = "429"  # "429" (no Retry-After) or "403"

    def checked(self) -> ThrottleOptions:
        for name in ("rate", "burst", "per_organizer_rate"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not value > 0):
                raise ValueError(f"{name.replace('_', ' ')} {value!r} must be a number above 0.")
        if isinstance(self.early_penalty_s, bool) or not isinstance(self.early_penalty_s, (int, float)) \
                or not self.early_penalty_s >= 0:
            raise ValueError(f"early penalty {self.early_penalty_s!r} must be seconds >= 0.")
        cap = self.meeting_cap
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ValueError(f"meeting cap {cap!r} must be a whole number above 0 (or none).")
        if self.cap_error not in CAP_ERRORS:
            raise ValueError(f"cap error {self.cap_error!r} must be one of {', '.join(CAP_ERRORS)}.")
        return self


@dataclass
class Verdict:
    """What the throttle says about one request."""

    retry_after: int | None = None  # throttled: seconds to wait
    early: bool = False  # came back before Retry-After
    headers: list[tuple[str, str]] = field(default_factory=list)


class _Bucket:
    __slots__ = ("tokens", "last", "blocked_until")

    def __init__(self, tokens: float, now: float) -> None:
        self.tokens = tokens
        self.last = now
        self.blocked_until = 0.0


class Throttle:
    """Token buckets and the monthly meeting cap; thread-safe, driven by the emulator's clock."""

    def __init__(self, options: ThrottleOptions) -> None:
        self.options = options.checked()
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, ...], _Bucket] = {}
        self._created: dict[tuple[str, str, str], int] = {}  # (tenant, organizer, YYYY-MM)

    def reset(self, options: ThrottleOptions | None = None, *, counts: bool = True) -> None:
        with self._lock:
            if options is not None:
                self.options = options.checked()
            self._buckets.clear()
            if counts:
                self._created.clear()

    # ------------------------------------------------------------------ buckets

    def _refill(self, key: tuple[str, ...], rate: float, now: float) -> tuple[_Bucket, float]:
        capacity = max(self.options.burst or rate, 1.0) if key[0] != "org" else max(rate, 1.0)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(capacity, now)
        bucket.tokens = min(capacity, bucket.tokens + max(0.0, now - bucket.last) * rate)
        bucket.last = now
        return bucket, capacity

    def _blocked(self, bucket: _Bucket, now: float) -> int | None:
        if now >= bucket.blocked_until:
            return None
        if self.options.early_penalty_s:
            bucket.blocked_until += self.options.early_penalty_s
        return max(1, math.ceil(bucket.blocked_until - now))

    def take(self, tenant: str, app: str, organizer: str | None, now: float, *,
             directory: bool = False) -> Verdict:
        """One request's verdict; consumes a token when it is let through."""
        opts = self.options
        rate = opts.rate
        if not rate:
            return Verdict(headers=[("x-ms-resource-unit", "1")] if directory else [])
        scope = "users" if directory else "meetings"
        keys: list[tuple[tuple[str, ...], float]] = [((scope, tenant, app), rate)]
        if organizer and opts.per_organizer_rate and not directory:
            keys.append((("org", tenant, app, organizer), opts.per_organizer_rate))
        with self._lock:
            buckets = [(self._refill(k, r, now), r) for k, r in keys]
            verdict = Verdict()
            for (bucket, _cap), _r in buckets:
                early = self._blocked(bucket, now)
                if early is not None:
                    verdict.retry_after, verdict.early = early, True
                    break
            else:
                short = [(b, r) for (b, _c), r in buckets if b.tokens < 1.0]
                if short:
                    wait = max(max(1, math.ceil((1.0 - b.tokens) / r)) for b, r in short)
                    for b, _r in short:
                        b.blocked_until = now + wait
                    verdict.retry_after = wait
                else:
                    for (b, _c), _r in buckets:
                        b.tokens -= 1.0
            (app_bucket, capacity), _ = buckets[0]
            used = 1.0 - app_bucket.tokens / capacity
            reset = math.ceil((capacity - app_bucket.tokens) / rate) if app_bucket.tokens < capacity else 0
        verdict.headers = self._headers(directory, verdict, used, capacity, app_bucket.tokens, reset,
                                        tenant, app)
        return verdict

    def _headers(self, directory: bool, verdict: Verdict, used: float, capacity: float,
                 tokens: float, reset: int, tenant: str, app: str) -> list[tuple[str, str]]:
        if directory:
            out = [("x-ms-resource-unit", "1")]
            if used > HEADER_THRESHOLD or verdict.retry_after is not None:
                out.append(("x-ms-throttle-limit-percentage", f"{max(used, HEADER_THRESHOLD):.2f}"))
            if verdict.retry_after is not None:
                out.append(("x-ms-throttle-scope", f"Tenant_Application/Read/{tenant}/{app}"))
                out.append(("x-ms-throttle-information", "ResourceUnitLimitExceeded"))
            return out
        if not self.options.ratelimit_headers:
            return []
        if used <= HEADER_THRESHOLD and verdict.retry_after is None:
            return []
        reset = max(reset, verdict.retry_after or 0)
        return [("RateLimit-Limit", str(math.ceil(capacity))),
                ("RateLimit-Remaining", str(max(0, int(tokens)))),
                ("RateLimit-Reset", str(reset))]

    # ------------------------------------------------------------------ monthly meeting cap

    @staticmethod
    def month(now: float) -> str:
        return datetime.fromtimestamp(now, UTC).strftime("%Y-%m")

    def cap_reached(self, tenant: str, organizer: str, now: float) -> bool:
        cap = self.options.meeting_cap
        if cap is None:
            return False
        with self._lock:
            return self._created.get((tenant, organizer, self.month(now)), 0) >= cap

    def count_created(self, tenant: str, organizer: str, month: str) -> None:
        with self._lock:
            key = (tenant, organizer, month)
            self._created[key] = self._created.get(key, 0) + 1
