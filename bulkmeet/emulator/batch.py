"""JSON batching: ``POST /v1.0/$batch`` with up to 20 requests, each answered on its own.

As Graph does it: the outer answer is 200 whenever the batch itself is well formed, and every
item carries its own ``status``, ``headers`` (a throttled item its own ``Retry-After``) and
``body``. The batch is refused as a whole (400) when it is not JSON, has no ``requests`` array,
has more than 20 requests, repeats an ``id``, has an item without ``method`` or ``url``, an
absolute url, a body without a ``Content-Type`` header, or a ``dependsOn`` naming an unknown id.
Items run in order, each through the same throttle, faults and handlers as a request of its own
(and counted in the stats under its own route).

Whether createOrGet works inside a real batch is not documented; here it does (an assumption).
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from bulkmeet.emulator.httpd import Request, Response
from bulkmeet.emulator.tokens import Principal

if TYPE_CHECKING:  # pragma: no cover
    from bulkmeet.emulator.directory import Tenant
    from bulkmeet.emulator.graph import GraphService

MAX_REQUESTS = 20
METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE")
_SKIP_HEADERS = frozenset({"request-id", "client-request-id"})


class BatchRefused(ValueError):
    """The whole batch is a 400; str() is the helpful reason."""


def _items(request: Request) -> list[dict[str, Any]]:
    try:
        body = json.loads(request.body or b"")
    except (ValueError, UnicodeDecodeError):
        raise BatchRefused("The batch body is not valid JSON.") from None
    items = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise BatchRefused("The batch body needs a non-empty 'requests' array.")
    if len(items) > MAX_REQUESTS:
        raise BatchRefused(f"A batch holds at most {MAX_REQUESTS} requests; this one has {len(items)}.")
    seen: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise BatchRefused(f"requests[{i}] must be a JSON object.")
        rid, method, url = item.get("id"), item.get("method"), item.get("url")
        if not isinstance(rid, str) or not rid:
            raise BatchRefused(f"requests[{i}] needs an 'id' (a string).")
        if rid in seen:
            raise BatchRefused(f"The request id '{rid}' appears twice; ids must be unique.")
        seen.add(rid)
        if not isinstance(method, str) or method.upper() not in METHODS:
            raise BatchRefused(f"requests[{i}] needs a 'method' ({', '.join(METHODS)}).")
        if not isinstance(url, str) or not url or "://" in url or "$batch" in url:
            raise BatchRefused(f"requests[{i}] needs a relative 'url' such as /users/ID/... ")
        headers = item.get("headers") or {}
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise BatchRefused(f"requests[{i}].headers must be an object of strings.")
        if item.get("body") is not None and not any(k.lower() == "content-type" for k in headers):
            raise BatchRefused(f"requests[{i}] has a body but no Content-Type header.")
        depends = item.get("dependsOn") or []
        if not isinstance(depends, list) or any(d not in seen or d == rid for d in depends):
            raise BatchRefused(f"requests[{i}].dependsOn must name earlier request ids.")
    return items


def _inner(request: Request, version: str, item: dict[str, Any]) -> Request:
    headers = {k.lower(): v for k, v in (item.get("headers") or {}).items()}
    for name in ("authorization", "client-request-id"):
        if name in request.headers and name not in headers:
            headers[name] = request.headers[name]
    body = item.get("body")
    raw = b"" if body is None else (body.encode() if isinstance(body, str) else
                                   json.dumps(body, separators=(",", ":")).encode())
    inner = Request(item["method"].upper(), f"/{version}/{item['url'].lstrip('/')}", headers, raw)
    inner.request_id = request.request_id
    inner.client_request_id = headers.get("client-request-id") or request.client_request_id
    return inner


def _item_answer(rid: str, response: Response) -> dict[str, Any]:
    headers = {k: v for k, v in response.headers if k.lower() not in _SKIP_HEADERS}
    out: dict[str, Any] = {"id": rid, "status": response.status}
    if response.body:
        headers.setdefault("Content-Type", response.content_type or "application/json")
        try:
            out["body"] = json.loads(response.body)
        except ValueError:
            out["body"] = response.body.decode("utf-8", "replace")
    out["headers"] = headers
    return out


def run_batch(service: GraphService, request: Request, version: str, principal: Principal,
              tenant: Tenant) -> Response:
    from bulkmeet.emulator.graph import GraphError

    ctx = service.ctx
    try:
        items = _items(request)
    except BatchRefused as exc:
        return service.error(request, GraphError(400, "BadRequest", ctx.say(str(exc), "Invalid batch payload.")))
    chaos = service.chaos
    if chaos.active:  # the batch travels once: its latency is paid once
        delay = chaos.latency()
        if delay > 0 and ctx.stop.wait(delay):
            from bulkmeet.emulator.graph import dropped

            return dropped()
    answers = []
    for item in items:
        inner = _inner(request, version, item)
        routed = service.route(inner.method, version, inner.segments()[1:])
        key = f"{inner.method} /{version}/{routed.key}"
        if routed.handler is None or routed.handler == "batch":
            response = service.error(inner, GraphError(*routed.args) if routed.handler is None
                                     else GraphError(400, "BadRequest", "Nested batches are not allowed."))
        else:
            response = service.serve(inner, version, principal, tenant, routed, in_batch=True)
        ctx.stats.count_item(key, str(response.status))
        answers.append(_item_answer(item["id"], response))
    body = json.dumps({"responses": answers}, separators=(",", ":")).encode()
    return Response(200, body, [("request-id", request.request_id),
                                ("client-request-id", request.client_request_id)],
                    content_type="application/json; charset=utf-8")
