"""The gate finds the limit by itself: slow start, pacing cut on systemic 429s, probing, latency.

Driven by a fake clock: no test here sleeps or depends on the machine's speed.
"""
from __future__ import annotations

import threading

import pytest

from bulkmeet.gate import Gate
from bulkmeet.graph import GraphResponse

OK = GraphResponse(201, {})
STOP = threading.Event()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def answer(gate: Gate, clock: Clock, response: GraphResponse, latency: float = 0.5) -> None:
    """One request: wait (on the fake clock) until the gate lets it go, answer after latency."""
    clock.now = max(clock.now, gate.ready_at())
    assert gate.acquire(STOP)
    sent = clock.now
    clock.now += latency
    gate.release(response, sent)


def throttled(retry_after: str = "1", **headers: str) -> GraphResponse:
    return GraphResponse(429, {}, {"Retry-After": retry_after, **headers})


def test_slow_start_grows_the_window_to_the_maximum_while_answers_are_clean():
    clock = Clock()
    gate = Gate(32, clock, start=4)
    assert gate.limit == 4 and gate.slow_start
    for _ in range(28):
        answer(gate, clock, OK, latency=0.0)
    assert gate.limit == 32 and not gate.slow_start and gate.rate is None


def test_a_fixed_concurrency_never_grows():
    clock = Clock()
    gate = Gate(8, clock, start=8)
    for _ in range(50):
        answer(gate, clock, OK, latency=0.01)
    assert gate.limit == 8


def test_systemic_throttling_pauses_everyone_and_paces_under_what_was_delivered():
    clock = Clock()
    gate = Gate(32, clock, start=32)
    for _ in range(120):  # 40 answers a second for 3 s
        answer(gate, clock, OK, latency=0.025)
    for _ in range(4):  # four requests in flight when the budget runs out
        assert gate.acquire(STOP)
    for _ in range(3):
        gate.release(throttled("2"), clock.now)
    assert gate.paused_until - clock.now > 1.9  # nobody sends before Retry-After
    assert gate.rate is not None and 34 <= gate.rate <= 37  # 0.9 x ~40 delivered
    assert gate.limit == 32  # the window is not halved: that would halve the throughput
    assert gate.throttle_events == 1
    gate.release(throttled("2"), clock.now)  # the same burst: no second cut
    assert gate.throttle_events == 1 and 34 <= gate.rate <= 37


def test_a_lone_429_delays_only_its_own_row():
    clock = Clock()
    gate = Gate(8, clock, start=8)
    answer(gate, clock, throttled("2"), latency=0.0)
    assert gate.paused_until < clock.now and gate.rate is None and gate.limit == 8


def test_pacing_probes_upward_while_clean_and_holds_a_steady_send_spacing():
    clock = Clock()
    gate = Gate(32, clock, start=32)
    for _ in range(90):
        answer(gate, clock, OK, latency=1 / 30)
    for _ in range(3):
        answer(gate, clock, throttled(), latency=0.0)
    first = gate.rate
    assert first is not None
    for _ in range(300):  # 10 clean seconds
        answer(gate, clock, OK, latency=1 / 30)
    assert gate.rate > first * 1.1
    # with pacing on, sends are spaced 1/rate apart
    clock.now = gate.ready_at()
    assert gate.acquire(STOP)
    assert gate.ready_at() - clock.now == pytest.approx(1 / gate.rate)
    gate.release(None)


def test_latency_that_doubles_cuts_the_window_and_steady_latency_does_not():
    clock = Clock()
    gate = Gate(32, clock, start=32)
    for i in range(200):  # uniform-ish 0.3-0.9 s: no cut
        answer(gate, clock, OK, latency=0.3 + 0.6 * ((i * 7919) % 100) / 100)
    assert gate.limit == 32
    for _ in range(40):  # Graph queues us: 2 s answers
        answer(gate, clock, OK, latency=2.0)
    assert gate.limit < 32 and not gate.slow_start


def test_ratelimit_headers_set_the_pace_before_any_429():
    clock = Clock()
    gate = Gate(8, clock, start=8)
    answer(gate, clock, GraphResponse(201, {}, {"RateLimit-Limit": "20", "RateLimit-Remaining": "3",
                                                 "RateLimit-Reset": "1"}))
    assert gate.rate is not None and 18 <= gate.rate <= 20
    answer(gate, clock, throttled("2", **{"RateLimit-Limit": "20", "RateLimit-Remaining": "0",
                                          "RateLimit-Reset": "2"}), latency=0.0)
    assert gate.paused_until - clock.now > 1.5  # the budget is spent: everyone waits


def test_a_directory_hint_past_95_percent_stops_growth():
    clock = Clock()
    gate = Gate(32, clock, start=4)
    answer(gate, clock, GraphResponse(200, {"id": "x"}, {"x-ms-throttle-limit-percentage": "0.97"}))
    assert not gate.slow_start and gate.rate is not None


def test_a_quota_429_is_not_taken_for_throttling():
    clock = Clock()
    gate = Gate(8, clock, start=8)
    for _ in range(5):
        assert gate.acquire(STOP)
        gate.release(GraphResponse(429, {}), clock.now, throttling=False)
    assert gate.paused_until < clock.now and gate.rate is None


def test_the_settled_concurrency_is_what_was_in_flight():
    clock = Clock()
    gate = Gate(16, clock, start=16)
    for _ in range(6):
        assert gate.acquire(STOP)
    for _ in range(6):
        gate.release(OK, clock.now)
    assert gate.settled() == 4  # the mean of 1..6 in flight, rounded


def test_scattered_fault_429s_with_long_retry_after_do_not_drive_the_pace_to_nothing():
    """Scenario 3's shape: no real limit, but now and then three injected 429s (Retry-After 3 s)
    land close together. Each episode may cut the pace, never below half, and the pause itself
    is not taken for a low delivery rate."""
    clock = Clock()
    gate = Gate(16, clock, start=16)
    for episode in range(8):
        # ~5 s of clean answers at up to 80/s; twice Graph throttles again just after the pause
        for _ in range(20 if episode in (3, 6) else 400):
            answer(gate, clock, OK, latency=1 / 80)
        for _ in range(3):
            answer(gate, clock, throttled("3"), latency=0.0)
    assert gate.throttle_events == 8
    assert gate.rate is not None and gate.rate > 40  # not 3 requests/s
