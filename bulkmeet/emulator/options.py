"""The emulator's options and the checks on them (one place, for the CLI, tests and configure()).

Defaults are *realistic*: terse error messages, no ``RateLimit-*`` headers on meeting calls, the
2,000 meetings per organizer per month cap, the access-policy 403 with code ``Forbidden`` or
``General``. Friendlier behaviour is opt-in (``helpful_errors``, ``ratelimit_headers``).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bulkmeet.emulator.throttle import MONTHLY_MEETING_CAP

POLICY_ERROR_CODES = ("random", "Forbidden", "General")


@dataclass(frozen=True)
class EmulatorOptions:
    host: str = "127.0.0.1"  # loopback only: the emulator hands out tokens
    port: int = 0  # 0 = ephemeral
    directory: Path | None = None  # None = the built-in demo directory
    latency_ms: tuple[float, float] = (0.0, 0.0)  # uniform min..max delay before Graph answers
    rate_limit: float | None = None  # hidden requests/s per (tenant, app); None = unlimited
    burst: float | None = None  # token-bucket size; None = one second's worth of rate_limit
    per_organizer_rate: float | None = None  # also requests/s per (tenant, app, organizer)
    early_penalty_s: float = 0.0  # each return before Retry-After pushes the window out this much
    ratelimit_headers: bool = False  # RateLimit-* on meeting calls, SharePoint-style (past 80%)
    meeting_cap: int | None = MONTHLY_MEETING_CAP  # meetings per organizer per calendar month
    cap_error: str = "429"  # the answer at the cap: "429" (no Retry-After) or "403"
    policy_error_code: str = "random"  # access-policy 403 code: Forbidden, General, or seeded mix
    helpful_errors: bool = False  # explanations in error messages instead of Graph's terse ones
    fault_rate: float = 0.0  # probability of an injected fault per Graph request
    seed: int | None = None
    state_path: Path | None = None  # keep meetings, device codes, refresh tokens, keys here
    ca_dir: Path | None = None  # keep/load ca.pem + ca-key.pem here; None = a temp dir
    token_lifetime_s: int = 3600
    stall_s: float = 35.0  # how long a "stall" fault holds the response
    device_code_interval_s: int = 5  # polling interval the devicecode endpoint asks for
    clock_offset_s: float = 0.0  # start the emulated clock this far ahead of the machine's


def check_loopback(host: str) -> str:
    if host == "localhost":
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise ValueError(f"--host '{host}' is not an IP address; the emulator listens on "
                         "loopback only (127.0.0.1 or ::1).") from None
    if not ip.is_loopback:
        raise ValueError(f"--host '{host}' is not a loopback address; the emulator hands out "
                         "tokens and listens on loopback only (127.0.0.1 or ::1).")
    return str(ip)


def parse_latency(value: Any) -> tuple[float, float]:
    """``50``, ``"10-200"``, ``(10, 200)`` -> (min, max) milliseconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo = hi = float(value)
    elif isinstance(value, str):
        text = value.strip()
        lo_s, sep, hi_s = text.partition("-")
        try:
            lo = float(lo_s)
            hi = float(hi_s) if sep else lo
        except ValueError:
            raise ValueError(f"latency '{value}' must be MIN or MIN-MAX in milliseconds, "
                             "e.g. 20 or 10-200.") from None
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        try:
            lo, hi = float(value[0]), float(value[1])
        except (TypeError, ValueError):
            raise ValueError(f"latency {value!r} must be two numbers (milliseconds).") from None
    else:
        raise ValueError(f"latency {value!r} must be MIN or MIN-MAX in milliseconds.")
    if not 0 <= lo <= hi:
        raise ValueError(f"latency {value!r}: need 0 <= MIN <= MAX (milliseconds).")
    return lo, hi


def check_rate(rate: Any, what: str = "rate limit") -> float | None:
    if rate is None:
        return None
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0:
        raise ValueError(f"{what} {rate!r} must be a number of requests/second above 0.")
    return float(rate)


def check_fault_rate(rate: Any) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise ValueError(f"fault rate {rate!r} must be a probability between 0 and 1.")
    return float(rate)


def check_positive(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{what} {value!r} must be a number above 0.")
    return value


def check_bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{what} {value!r} must be true or false.")
    return value


def check_policy_code(value: Any) -> str:
    if value not in POLICY_ERROR_CODES:
        raise ValueError(f"policy error code {value!r} must be one of {', '.join(POLICY_ERROR_CODES)}.")
    return str(value)
