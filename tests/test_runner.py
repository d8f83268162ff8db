"""The runner's retry, throttling and per-organizer rules, driven through the FakeGraph seam."""
from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from bulkmeet.graph import GraphResponse
from bulkmeet.models import CREATED, EXISTING, FAILED, MeetingRequest
from bulkmeet.quota import MeetingQuota
from bulkmeet.runner import (
    Completed,
    Operation,
    RetryPolicy,
    Runner,
    differences,
    resolve_organizers,
)
from tests.fakes import FakeGraph

ORG = "f199edb8-f58c-5e6b-9f48-a3723d49780c"
FAST = RetryPolicy(max_attempts=3, max_throttled=5, base_delay=0.01, max_delay=0.05)


def req(n: int, organizer: str = ORG, **kw) -> MeetingRequest:
    return MeetingRequest(row=n + 1, external_id=f"ext-{n}", organizer=organizer,
                          subject=f"Class {n}", **kw)


def run(graph: FakeGraph, requests, **kw):
    results = []
    lock = threading.Lock()

    def record(r):
        with lock:
            results.append(r)

    runner = Runner(graph, policy=kw.pop("policy", FAST), on_result=record, **kw)
    stats = runner.run(requests)
    return {r.external_id: r for r in results}, stats, runner


def error(status: int, code: str, message: str = "x", **headers) -> GraphResponse:
    return GraphResponse(status, {"error": {"code": code, "message": message,
                                            "innerError": {"request-id": "rid-1"}}}, headers)


def test_every_row_gets_one_result_and_a_rerun_finds_existing():
    graph = FakeGraph()
    results, stats, _ = run(graph, [req(i) for i in range(50)], concurrency=8)
    assert len(results) == 50 and {r.status for r in results.values()} == {CREATED}
    assert stats.requests == 50
    again, _, _ = run(graph, [req(i) for i in range(50)], concurrency=8)
    assert {r.status for r in again.values()} == {EXISTING}
    assert len(graph.meetings) == 50


def test_retry_after_is_honoured_before_the_retry():
    graph = FakeGraph()
    graph.script["ext-0"] = [error(429, "TooManyRequests", **{"Retry-After": "1"})]
    started = time.monotonic()
    results, stats, _ = run(graph, [req(0)])
    assert results["ext-0"].status == CREATED
    assert results["ext-0"].attempts == 2
    assert time.monotonic() - started >= 1.0  # never back before Retry-After
    assert stats.throttled == 1


def test_transient_errors_are_retried_then_left_failed_for_the_next_run():
    graph = FakeGraph()
    graph.script["ext-0"] = [error(503, "ServiceUnavailable"), GraphResponse(None, failure="connection")]
    graph.script["ext-1"] = [error(500, "InternalServerError")] * 5
    results, _, _ = run(graph, [req(0), req(1)])
    assert results["ext-0"].status == CREATED and results["ext-0"].attempts == 3
    failed = results["ext-1"]
    assert failed.status == FAILED and failed.attempts == 3
    assert "next run retries this row" in failed.error
    assert failed.request_id == "rid-1"


def test_bad_request_fails_at_once_with_graphs_code():
    graph = FakeGraph()
    graph.script["ext-0"] = [error(400, "BadRequest", "An error has occurred.")]
    results, stats, _ = run(graph, [req(0)])
    r = results["ext-0"]
    assert (r.status, r.attempts, r.http_status, r.error_code) == (FAILED, 1, 400, "BadRequest")
    assert r.error.startswith("400 BadRequest: An error has occurred.")
    assert stats.requests == 1


def test_access_policy_403_fails_the_organizers_rows_once_with_the_powershell_fix():
    graph = FakeGraph()
    graph.script["ext-0"] = [error(403, "Forbidden", "No application access policy found for this app.")]
    other = "0a4c9b67-3046-51d6-9b36-0c0ca27bd9cc"
    requests = [req(0), req(1), req(2), req(3, organizer=other)]
    results, stats, runner = run(graph, requests, concurrency=1, client_id="app-123")
    assert [results[f"ext-{i}"].status for i in range(4)] == [FAILED, FAILED, FAILED, CREATED]
    assert stats.requests == 2  # the blocked organizer's later rows were not sent
    msg = results["ext-1"].error
    assert "New-CsApplicationAccessPolicy" in msg and "Grant-CsApplicationAccessPolicy" in msg
    assert "app-123" in msg and "30 minutes" in msg
    assert list(stats.blocked_organizers) == [ORG]


def test_stop_leaves_unsent_rows_unfinished():
    graph = FakeGraph()
    stop = threading.Event()
    seen = []

    def record(r):
        seen.append(r)
        if len(seen) == 5:
            stop.set()

    runner = Runner(graph, concurrency=1, policy=FAST, on_result=record, stop=stop)
    runner.run([req(i) for i in range(20)])
    assert len(seen) == 5
    assert [r.row for r in runner.unfinished] == list(range(6, 21))


def test_upns_are_resolved_once_each_and_unknown_ones_reported():
    graph = FakeGraph(users={"ada@school.example": ORG})
    resolved, problems = resolve_organizers(graph, ["ada@school.example", "nobody@school.example",
                                                    "ada@school.example"], concurrency=2)
    assert resolved == {"ada@school.example": ORG}
    assert "nobody@school.example" in problems["nobody@school.example"]
    assert "404" in problems["nobody@school.example"]
    assert sum(1 for c in graph.calls if c[0] == "getUser") == 2


def test_existing_meeting_that_differs_from_the_sheet_gets_a_warning():
    start = datetime(2027, 2, 1, 15, 0, tzinfo=UTC)
    r = req(0, start=start, end=datetime(2027, 2, 1, 16, 0, tzinfo=UTC))
    same = {"subject": "Class 0", "startDateTime": "2027-02-01T15:00:00.0000000Z",
            "endDateTime": "2027-02-01T16:00:00Z"}
    assert differences(r, same) is None
    moved = dict(same, startDateTime="2027-02-01T14:00:00.0000000Z", subject="Old title")
    text = differences(r, moved)
    assert 'subject is "Old title"' in text and "start is 2027-02-01 14:00 UTC" in text


class _ExpiredSecret(FakeGraph):
    def create_or_get(self, organizer_id, body):
        from bulkmeet.errors import AuthError

        raise AuthError("The client secret has expired (AADSTS7000222): create a new one.")


def test_a_token_failure_mid_run_fails_rows_with_its_sentence_not_a_traceback(caplog):
    results, _, _ = run(_ExpiredSecret(), [req(0), req(1)])
    assert {r.status for r in results.values()} == {FAILED}
    assert results["ext-0"].error.startswith("The client secret has expired (AADSTS7000222)")
    assert "Traceback" not in caplog.text


def test_any_operation_runs_through_the_same_retries_and_organizer_rules():
    """What sync's PATCH/DELETE/GET use: a 503 is retried, a 204 finishes it, an item's 404 does
    not block the organizer's other operations."""
    answers = {"a": [error(503, "ServiceUnavailable"), GraphResponse(204)],
               "b": [error(404, "NotFound")], "c": [GraphResponse(204)]}
    seen_ids = []

    def op(name: str) -> Operation:
        def call(gateway, organizer_id):
            seen_ids.append(organizer_id)
            return answers[name].pop(0)
        return Operation(call, organizer=ORG, key=name, done=frozenset({204}), organizer_404=False)

    done: dict[str, Completed] = {}
    runner = Runner(FakeGraph(), concurrency=1, policy=FAST)
    stats = runner.run_operations([op("a"), op("b"), op("c")], lambda c: done.update({c.operation.key: c}))
    assert (done["a"].ok, done["a"].attempts) == (True, 2)
    assert (done["b"].ok, done["b"].response.status) == (False, 404)
    assert done["c"].ok  # sent: the item's 404 said nothing about the organizer
    assert stats.requests == 4 and not stats.blocked_organizers
    assert set(seen_ids) == {ORG}


def test_a_throttled_lookup_is_retried_by_the_shared_scheduler():
    graph = FakeGraph(users={"ada@school.example": ORG})
    graph.script["ada@school.example"] = [error(429, "TooManyRequests", **{"Retry-After": "0"}),
                                          error(503, "ServiceUnavailable")]
    resolved, problems = resolve_organizers(graph, ["ada@school.example"], policy=FAST)
    assert resolved == {"ada@school.example": ORG} and problems == {}
    assert sum(1 for c in graph.calls if c[0] == "getUser") == 3


def test_unresolved_organizers_fail_with_the_given_sentence_without_a_request():
    upn = "nobody@school.example"
    results, stats, _ = run(FakeGraph(), [req(0, organizer=upn)],
                            organizer_problems={upn: "Organizer nobody@school.example was not found."})
    assert results["ext-0"].error == "Organizer nobody@school.example was not found."
    assert stats.requests == 0 and upn in stats.blocked_organizers


def test_an_organizer_at_the_monthly_cap_is_not_sent_and_gets_one_note():
    other = "0a4c9b67-3046-51d6-9b36-0c0ca27bd9cc"
    quota = MeetingQuota({ORG: 1999}, month="2027-03")
    graph = FakeGraph()
    results, stats, _ = run(graph, [req(0), req(1), req(2), req(3, organizer=other)],
                            concurrency=1, quota=quota)
    assert [results[f"ext-{i}"].status for i in range(4)] == [CREATED, FAILED, FAILED, CREATED]
    assert stats.requests == 2  # the cap was reached by row 1: rows 2 and 3 of ORG never sent
    note = stats.blocked_organizers[ORG]
    assert results["ext-1"].error == note == results["ext-2"].error
    assert "2,000 meetings per calendar month" in note and "2027-03" in note
    assert quota.used(ORG) == 2000 and quota.used(other) == 1


def test_the_90_percent_warning_is_given_once_per_organizer():
    quota = MeetingQuota({ORG: 1799}, month="2027-03")
    assert not quota.warnings
    run(FakeGraph(), [req(0), req(1)], concurrency=1, quota=quota)
    assert list(quota.warnings) == [ORG] and "1,800 of Graph's 2,000" in quota.warnings[ORG]


def test_graphs_own_cap_answer_stops_the_organizer_without_pausing_the_app():
    """Meetings made outside bulkmeet are not in the journal: three 429s without Retry-After
    in a row for one organizer are taken as the cap, not as throttling."""
    graph = FakeGraph()
    refusal = error(429, "TooManyRequests", "An error has occurred.")
    for i in range(3):
        graph.script[f"ext-{i}"] = [refusal] * 3
    results, stats, runner = run(graph, [req(i) for i in range(5)], concurrency=1)
    assert {results[f"ext-{i}"].status for i in range(5)} == {FAILED}
    assert "Graph refused new meetings for them" in results["ext-4"].error
    assert runner.gate.throttle_events == 0 and runner.gate.rate is None
    assert stats.requests < 10


def test_batching_sends_up_to_20_rows_per_call_with_per_item_answers():
    graph = FakeGraph()
    graph.script["ext-3"] = [error(429, "TooManyRequests", **{"Retry-After": "0"})]
    graph.script["ext-4"] = [error(400, "BadRequest", "An error has occurred.")]
    results, stats, _ = run(graph, [req(i) for i in range(45)], concurrency=1, batch=True)
    assert len(results) == 45
    assert results["ext-3"].status == CREATED and results["ext-3"].attempts == 2
    assert results["ext-4"].status == FAILED and results["ext-4"].http_status == 400
    batches = [int(c[2]) for c in graph.calls if c[0] == "batch"]
    assert max(batches) == 20 and stats.batches == len(batches)
    assert stats.requests == 46  # every item counts, the retried one twice


def test_the_quota_folds_the_journals_counts_by_user():
    ids = {"ada@school.example": ORG}
    quota = MeetingQuota({"ada@school.example": 1000, ORG.upper(): 799}, month="2027-03",
                         identity=lambda o: (ids.get(o.lower()) or o).lower())
    assert quota.used(ORG) == quota.used("ADA@school.example") == 1799
    quota.created("ada@school.example")
    assert quota.used(ORG) == 1800 and len(quota.warnings) == 1
    quota.created(ORG)
    assert len(quota.warnings) == 1  # one warning per user, however it is written
