"""Injected faults and latency: seeded, counted, and on Graph calls only (throttling: test_throttle)."""
from __future__ import annotations

import threading
import time

import requests

from bulkmeet.emulator.faults import Chaos
from tests.emulator.helpers import ADA, APP, Api, graph_error

RETRIED = {"500", "502", "503", "504", "dropped"}


def outcome(api: Api, external_id: str, token: str, organizer: str = ADA) -> tuple[str, requests.Response | None]:
    try:
        r = api.create(organizer, {"externalId": external_id}, token=token)
    except requests.ConnectionError:
        return "dropped", None
    return str(r.status_code), r


def test_fault_sequence_is_reproducible_with_a_seed(start):
    runs = []
    for _ in range(2):
        emu, api = start(fault_rate=0.5, seed=42, stall_s=0.05)
        token = api.app_token()
        runs.append([outcome(api, f"seeded-{i}", token)[0] for i in range(30)])
    assert runs[0] == runs[1]
    assert set(runs[0]) - {"201"}, "a fault rate of 0.5 should inject some faults in 30 calls"
    # A different seed gives a different sequence.
    emu, api = start(fault_rate=0.5, seed=43, stall_s=0.05)
    token = api.app_token()
    assert [outcome(api, f"seeded-{i}", token)[0] for i in range(30)] != runs[0]


def test_every_fault_kind_is_injected_and_counted(start):
    emu, api = start(fault_rate=1.0, seed=7, stall_s=0.05)
    token = api.app_token()
    seen: dict[str, int] = {}
    for i in range(70):
        status, r = outcome(api, f"kinds-{i}", token)
        seen[status] = seen.get(status, 0) + 1
        if r is not None and r.status_code >= 400:
            err = graph_error(r)
            if r.status_code in (429, 503):
                assert r.headers["Retry-After"] in ("1", "2", "3")
            if r.status_code == 429:
                assert err["code"] == "TooManyRequests"
    faults = emu.stats()["faults"]
    assert set(faults) == {"429", "500", "502", "503", "504", "drop", "stall"}
    assert all(n > 0 for n in faults.values()), faults
    assert sum(faults.values()) == 70
    assert seen.get("dropped", 0) >= faults["drop"]  # stalls may end in a drop too
    assert seen["429"] == faults["429"] == emu.stats()["throttled"]


def test_some_faults_strike_after_the_meeting_was_created(start):
    """A retry after such a fault gets 200 for that externalId; createOrGet makes no duplicate."""
    emu, api = start(fault_rate=1.0, seed=11, stall_s=0.05)
    token = api.app_token()
    first = {f"after-{i}": outcome(api, f"after-{i}", token)[0] for i in range(40)}
    emu.configure(fault_rate=0.0)
    retried = {ext: outcome(api, ext, token)[0] for ext, status in first.items() if status in RETRIED}
    assert "200" in retried.values() and "201" in retried.values(), retried
    assert emu.stats()["faults_after_create"] > 0
    assert len({m["externalId"] for m in emu.meetings()}) == len(emu.meetings())


def test_faults_and_latency_spare_identity_and_admin(start):
    # A minute of latency: an identity or admin call that waited for it would time out.
    emu, api = start(fault_rate=1.0, seed=3, latency_ms=(60_000.0, 60_000.0))
    for _ in range(5):
        assert api.token_response(APP).status_code == 200
    assert api.request("GET", "/_emulator/stats", timeout=10).status_code == 200
    assert sum(emu.stats()["faults"].values()) == 0


def test_latency_delays_graph_answers(start):
    emu, api = start(latency_ms=(150.0, 150.0))
    token = api.app_token()
    began = time.monotonic()
    assert api.create(ADA, token=token).status_code == 201
    assert time.monotonic() - began >= 0.15


def test_configure_over_http(start):
    emu, api = start()
    r = api.request("POST", "/_emulator/config", json={"rate_limit": 5, "fault_rate": 0.25,
                                                       "latency_ms": [1, 2], "stall_s": 1})
    assert r.status_code == 200
    cfg = emu.stats()["config"]
    assert cfg["rate_limit"] == 5 and cfg["fault_rate"] == 0.25 and cfg["latency_ms"] == [1, 2]
    assert api.request("POST", "/_emulator/config", json={"fault_rate": 2}).status_code == 400
    assert api.request("POST", "/_emulator/config", json={"colour": 1}).status_code == 400
    assert emu.stats()["config"]["fault_rate"] == 0.25  # a refused change changes nothing
    api.request("POST", "/_emulator/config", json={"rate_limit": None})
    assert emu.stats()["config"]["rate_limit"] is None


def test_stop_is_prompt_with_a_stalled_response_and_idle_connections(start):
    seed = next(s for s in range(200) if (Chaos(1.0, (0.0, 0.0), s).decide()[0].kind == "stall"))
    emu, api = start(fault_rate=1.0, seed=seed, stall_s=30.0)
    token = api.app_token()  # leaves an idle keep-alive connection open
    result: dict[str, object] = {}

    def call() -> None:
        try:
            result["status"] = api.create(ADA, token=token, timeout=60).status_code
        except requests.RequestException as exc:
            result["error"] = type(exc).__name__

    client = threading.Thread(target=call)
    client.start()
    deadline = time.monotonic() + 10
    while emu.stats()["faults"]["stall"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert emu.stats()["faults"]["stall"] == 1
    began = time.monotonic()
    emu.stop()
    assert time.monotonic() - began < 5  # the stall would hold it for 30 s
    client.join(10)
    assert not client.is_alive() and "error" in result


def test_reset_clears_meetings_counters_and_restarts_the_fault_sequence(start):
    emu, api = start(fault_rate=0.5, seed=5, stall_s=0.05)
    token = api.app_token()
    first = [outcome(api, f"r-{i}", token)[0] for i in range(12)]
    assert api.request("POST", "/_emulator/reset").status_code == 200
    stats = emu.stats()
    assert stats["meetings"] == 0 and stats["requests"] == 0 and sum(stats["faults"].values()) == 0
    assert [outcome(api, f"r-{i}", token)[0] for i in range(12)] == first
    # Tokens issued before the reset still work.
    emu.configure(fault_rate=0.0)
    assert api.create(ADA, token=token).status_code == 201
