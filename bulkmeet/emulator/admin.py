"""``/_emulator/*``: what a test or a benchmark asks of the emulator over HTTPS.

    GET  /_emulator/health | stats | meetings
    POST /_emulator/reset
    POST /_emulator/config            {"rate_limit": 40, "latency_ms": [300, 900], ...}
    POST /_emulator/clock             {"advance": 3600}   (emulated time moves; nobody sleeps)
    POST /_emulator/devicecode/approve {"user_code": "...", "user": "UPN or object id"}
    POST /_emulator/devicecode/deny    {"user_code": "...", "error": "authorization_declined"}

Admin calls are not counted in the stats, so a test can read the counters without moving them.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from bulkmeet.emulator.app import CONFIG_KEYS
from bulkmeet.emulator.httpd import Request, Response

if TYPE_CHECKING:  # pragma: no cover
    from bulkmeet.emulator.app import Emulator


def _json(status: int, payload: Any) -> Response:
    return Response(status, json.dumps(payload, separators=(",", ":")).encode())


def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        raise ValueError("the body must be JSON") from None
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def _code_and(body: dict[str, Any], other: str, hint: str) -> tuple[str, Any]:
    code = body.get("user_code")
    if not isinstance(code, str) or (other == "user" and not isinstance(body.get(other), str)):
        raise ValueError(hint)
    return code, body.get(other)


def handle_admin(emu: Emulator, request: Request) -> Response:
    route = (request.method, request.path.rstrip("/"))
    try:
        if route == ("GET", "/_emulator/stats"):
            return _json(200, emu.stats())
        if route == ("GET", "/_emulator/meetings"):
            return _json(200, emu.meetings())
        if route == ("GET", "/_emulator/health"):
            return _json(200, {"ok": True})
        if route == ("POST", "/_emulator/reset"):
            emu.reset()
            return _json(200, {"ok": True})
        if route == ("POST", "/_emulator/config"):
            body = _body(request)
            unknown = sorted(set(body) - CONFIG_KEYS)
            if unknown:
                raise ValueError(f"unknown setting(s) {', '.join(unknown)}; known: "
                                 f"{', '.join(sorted(CONFIG_KEYS))}")
            emu.configure(**body)
            return _json(200, emu.stats()["config"])
        if route == ("POST", "/_emulator/clock"):
            body = _body(request)
            if set(body) != {"advance"}:
                raise ValueError('send {"advance": SECONDS}')
            return _json(200, {"clock_offset_s": emu.advance_clock(body["advance"])})
        if route == ("POST", "/_emulator/devicecode/approve"):
            code, user = _code_and(_body(request), "user",
                                   'send {"user_code": "...", "user": "UPN or object id"}')
            try:
                emu.approve_device_code(code, user)
            except LookupError as exc:
                return _json(404, {"error": str(exc)})
            return _json(200, {"ok": True})
        if route == ("POST", "/_emulator/devicecode/deny"):
            code, error = _code_and(_body(request), "error",
                                    'send {"user_code": "...", "error": "authorization_declined"}')
            try:
                emu.deny_device_code(code, error or "authorization_declined")
            except LookupError as exc:
                return _json(404, {"error": str(exc)})
            return _json(200, {"ok": True})
    except (ValueError, TypeError) as exc:
        return _json(400, {"error": str(exc)})
    return _json(404, {"error": f"no admin endpoint {request.method} {request.path}"})
