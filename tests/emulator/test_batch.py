"""POST /v1.0/$batch: up to 20 requests, each with its own status, headers and Retry-After."""
from __future__ import annotations

import pytest

from tests.emulator.helpers import ADA, ALAN, UPN, gid, graph_error


def item(rid: str, organizer: str = ADA, ext: str | None = None, **extra):
    out = {"id": rid, "method": "POST", "url": f"/users/{organizer}/onlineMeetings/createOrGet",
           "headers": {"Content-Type": "application/json"},
           "body": {"externalId": ext or f"batch-{rid}", "subject": "Batched"}}
    out.update(extra)
    return out


def batch(api, requests, token=None):
    return api.request("POST", "/v1.0/$batch", token=token or api.app_token(), json={"requests": requests})


def test_each_request_has_its_own_answer_and_the_batch_is_200(start):
    emu, api = start()
    r = batch(api, [item("1"), item("2", ALAN), item("3", ext="batch-1"),
                    {"id": "4", "method": "GET", "url": f"/users/{UPN[ADA]}?$select=id"},
                    item("5", gid("nobody"))])
    assert r.status_code == 200, r.text
    answers = {a["id"]: a for a in r.json()["responses"]}
    assert {k: a["status"] for k, a in answers.items()} == {"1": 201, "2": 201, "3": 200, "4": 200, "5": 404}
    assert answers["1"]["body"]["externalId"] == "batch-1"
    assert answers["3"]["body"]["id"] == answers["1"]["body"]["id"]  # createOrGet semantics hold
    assert answers["4"]["body"]["id"] == ADA
    assert answers["5"]["body"]["error"]["code"] == "NotFound"
    assert answers["1"]["headers"]["Content-Type"].startswith("application/json")
    stats = emu.stats()
    assert stats["created"] == 2 and stats["batches"] == 1
    assert stats["by_route"]["POST /v1.0/users/{id}/onlineMeetings/createOrGet"] == 4
    assert stats["by_route"]["POST /v1.0/$batch"] == 1
    assert stats["graph_writes"] == 4  # the items, not the envelope


def test_a_throttled_item_carries_its_own_retry_after(start):
    emu, api = start(rate_limit=0.1, burst=2)
    r = batch(api, [item(str(i)) for i in range(4)])
    assert r.status_code == 200
    answers = r.json()["responses"]
    assert [a["status"] for a in answers] == [201, 201, 429, 429]
    assert answers[2]["headers"]["Retry-After"] == "10"
    assert answers[2]["body"]["error"]["code"] == "TooManyRequests"
    assert "Retry-After" not in answers[0]["headers"]


def test_items_patch_and_delete_too(start):
    emu, api = start()
    made = api.create(ADA, {"externalId": "b-patch"}).json()
    url = f"/users/{ADA}/onlineMeetings/{made['id']}"
    r = batch(api, [{"id": "p", "method": "PATCH", "url": url, "headers": {"Content-Type": "application/json"},
                     "body": {"subject": "Patched"}},
                    {"id": "d", "method": "DELETE", "url": url, "dependsOn": ["p"]}])
    answers = {a["id"]: a for a in r.json()["responses"]}
    assert answers["p"]["status"] == 200 and answers["p"]["body"]["subject"] == "Patched"
    assert answers["d"]["status"] == 204 and "body" not in answers["d"]
    assert emu.meetings() == []


@pytest.mark.parametrize("requests, why", [
    ([item(str(i)) for i in range(21)], "more than 20"),
    ([item("1"), item("1")], "duplicate id"),
    ([dict(item("1"), headers={})], "body without Content-Type"),
    ([dict(item("1"), url="https://graph.microsoft.com/v1.0/users/x/onlineMeetings/createOrGet")], "absolute url"),
    ([{"id": "1", "url": "/me"}], "no method"),
    ([dict(item("1"), dependsOn=["9"])], "unknown dependsOn"),
    ([], "empty"),
])
def test_malformed_batches_are_refused_whole(start, requests, why):
    emu, api = start()
    r = batch(api, requests)
    assert r.status_code == 400, why
    assert graph_error(r)["code"] == "BadRequest"
    assert emu.stats()["created"] == 0


def test_batch_needs_a_token_and_json(start):
    emu, api = start()
    r = api.request("POST", "/v1.0/$batch", json={"requests": [item("1")]})
    assert r.status_code == 401
    r = api.request("POST", "/v1.0/$batch", token=api.app_token(), data=b"{nope",
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert api.request("GET", "/v1.0/$batch", token=api.app_token()).status_code == 405
