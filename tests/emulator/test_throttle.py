"""Throttling as Graph does it: hidden limits, 429 + Retry-After only, Graph's own directory
headers, the 2,000 meetings per organizer per month cap. The clock is advanced, never slept."""
from __future__ import annotations

import calendar
import datetime as dt

from tests.emulator.helpers import ADA, ALAN, APP, GLOBAL_APP, UPN, graph_error

RATELIMIT = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


def has_any(r, names) -> bool:
    return any(n in r.headers for n in names)


def test_meeting_calls_get_429_with_retry_after_and_no_other_hint(start):
    emu, api = start(rate_limit=0.1, burst=2)  # 2 at once, then one per 10 s
    token = api.app_token()
    for i in range(2):
        r = api.create(ADA, {"externalId": f"t-{i}"}, token=token)
        assert r.status_code == 201 and not has_any(r, RATELIMIT)
        assert not any(k.lower().startswith("x-ms-throttle") for k in r.headers)
    throttled = api.create(ADA, {"externalId": "t-2"}, token=token)
    assert throttled.status_code == 429
    assert graph_error(throttled)["code"] == "TooManyRequests"
    assert throttled.headers["Retry-After"] == "10"  # whole seconds
    assert not has_any(throttled, RATELIMIT)
    # Back before Retry-After has passed: throttled again, not served.
    api.request("POST", "/_emulator/clock", json={"advance": 5})
    again = api.create(ADA, {"externalId": "t-2"}, token=token)
    assert again.status_code == 429 and again.headers["Retry-After"] == "5"
    # The bucket is per (tenant, app): another app is not held back.
    assert api.create(ALAN, token=api.app_token(GLOBAL_APP)).status_code == 201
    api.request("POST", "/_emulator/clock", json={"advance": 5})
    assert api.create(ADA, {"externalId": "t-2"}, token=token).status_code == 201
    stats = emu.stats()
    assert stats["throttled"] == 2 and stats["throttled_early"] == 1
    assert {"t-0", "t-1", "t-2"} <= {m["externalId"] for m in emu.meetings()}


def test_early_returns_can_be_penalised_with_a_longer_retry_after(start):
    emu, api = start(rate_limit=0.1, burst=1, early_penalty_s=5)
    token = api.app_token()
    assert api.create(ADA, token=token).status_code == 201
    waits = [api.create(ADA, token=token).headers["Retry-After"] for _ in range(3)]
    assert waits == ["10", "15", "20"]  # each early return pushes the window out
    emu.advance_clock(20)
    assert api.create(ADA, token=token).status_code == 201


def test_ratelimit_headers_only_when_asked_and_only_past_80_percent(start):
    emu, api = start(rate_limit=0.01, burst=10, ratelimit_headers=True)
    token = api.app_token()
    seen = []
    for i in range(10):
        r = api.create(ADA, {"externalId": f"h-{i}"}, token=token)
        assert r.status_code == 201
        seen.append(has_any(r, RATELIMIT))
    assert seen == [False] * 8 + [True] * 2  # 9 of 10 used is past 80%
    assert r.headers["RateLimit-Limit"] == "10" and r.headers["RateLimit-Remaining"] == "0"
    throttled = api.create(ADA, token=token)
    assert throttled.status_code == 429 and int(throttled.headers["RateLimit-Reset"]) >= 1


def test_per_organizer_bucket(start):
    emu, api = start(rate_limit=100, per_organizer_rate=0.1)
    token = api.app_token()
    assert api.create(ADA, token=token).status_code == 201
    assert api.create(ADA, token=token).status_code == 429
    assert api.create(ALAN, token=token).status_code == 201  # another organizer's bucket


def test_directory_calls_carry_graphs_own_throttle_headers(start):
    emu, api = start(rate_limit=0.01, burst=5)
    token = api.app_token()

    def lookup():
        return api.request("GET", f"/v1.0/users/{UPN[ADA]}?$select=id", token=token)

    answers = [lookup() for _ in range(6)]
    assert [r.status_code for r in answers] == [200] * 5 + [429]
    assert all(r.headers["x-ms-resource-unit"] == "1" for r in answers)
    assert ["x-ms-throttle-limit-percentage" in r.headers for r in answers] == [False] * 4 + [True] * 2
    assert float(answers[4].headers["x-ms-throttle-limit-percentage"]) >= 0.8
    last = answers[5]
    assert last.headers["x-ms-throttle-scope"].startswith("Tenant_Application/")
    assert last.headers["x-ms-throttle-information"] and "Retry-After" in last.headers
    # Meeting calls have their own bucket and none of these headers.
    r = api.create(ADA, token=token)
    assert r.status_code == 201 and not any(k.lower().startswith("x-ms-") for k in r.headers)
    # Unthrottled, the directory still says what a call cost.
    emu.configure(rate_limit=None)
    assert lookup().headers["x-ms-resource-unit"] == "1"


def seconds_to_next_month(emu) -> float:
    now = dt.datetime.fromtimestamp(emu.clock.time(), dt.UTC)
    days = calendar.monthrange(now.year, now.month)[1]
    first_next = (now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
                  + dt.timedelta(days=days))
    return (first_next - now).total_seconds() + 60


def test_monthly_meeting_cap_per_organizer(start):
    emu, api = start(meeting_cap=3)
    token = api.app_token()
    assert [api.create(ADA, {"externalId": f"c-{i}"}, token=token).status_code
            for i in range(3)] == [201] * 3
    capped = api.create(ADA, {"externalId": "c-3"}, token=token)
    assert capped.status_code == 429 and "Retry-After" not in capped.headers  # waiting won't help
    assert graph_error(capped)["code"] == "TooManyRequests"
    # An existing meeting still comes back; another organizer is not capped.
    assert api.create(ADA, {"externalId": "c-0"}, token=token).status_code == 200
    assert api.create(ALAN, {"externalId": "c-0"}, token=token).status_code == 201
    emu.configure(cap_error="403")
    refused = api.create(ADA, {"externalId": "c-3"}, token=token)
    assert refused.status_code == 403 and graph_error(refused)["code"] == "Forbidden"
    assert emu.stats()["quota_refused"] == 2
    # A new calendar month: the cap starts over.
    api.request("POST", "/_emulator/clock", json={"advance": seconds_to_next_month(emu)})
    fresh = emu.issue_access_token(client_id=APP)  # the old token is a month older now
    assert api.create(ADA, {"externalId": "c-3"}, token=fresh).status_code == 201


def test_the_default_cap_is_2000_and_can_be_switched_off(start):
    emu, _api = start()
    assert emu.stats()["config"]["meeting_cap"] == 2000
    emu.configure(meeting_cap=None)
    assert emu.stats()["config"]["meeting_cap"] is None


def test_throttle_settings_are_checked(start):
    emu, api = start()
    for body in ({"rate_limit": 0}, {"burst": -1}, {"cap_error": "500"}, {"meeting_cap": 0},
                 {"early_penalty_s": -2}, {"ratelimit_headers": "yes"}):
        assert api.request("POST", "/_emulator/config", json=body).status_code == 400, body
    assert emu.stats()["config"]["rate_limit"] is None
