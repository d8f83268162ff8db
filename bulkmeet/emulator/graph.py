"""The Graph half of the emulator: onlineMeetings createOrGet/GET/PATCH/DELETE, users, $batch.

Authorization is as strict as Graph's: a bad token is 401, a missing role or scope is 403, an
organizer without an application access policy is 403 (code ``Forbidden`` or ``General``, as
both are seen in the wild), and a UPN where the object id belongs is 404 ``UnknownError`` with
no message. Error *messages* are as terse as Graph's by default ("An error has occurred."), so
that no client sentence can come to depend on the emulator's wording; ``helpful_errors`` turns
on explanations for people debugging by hand.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from bulkmeet.emulator.context import Context
from bulkmeet.emulator.directory import Directory, Tenant, User
from bulkmeet.emulator.faults import Chaos, Fault
from bulkmeet.emulator.httpd import Request, Response
from bulkmeet.emulator.meetings import (
    SELECTABLE,
    BodyError,
    new_meeting,
    parse_create_or_get,
    user_json,
)
from bulkmeet.emulator.patch import apply_patch
from bulkmeet.emulator.store import MeetingRecord, MeetingStore
from bulkmeet.emulator.throttle import Throttle
from bulkmeet.emulator.tokens import Principal, TokenRejected, TokenService

GRAPH_CONTENT_TYPE = ("application/json;odata.metadata=minimal;odata.streaming=true;"
                      "IEEE754Compatible=false;charset=utf-8")
APP_WRITE = "OnlineMeetings.ReadWrite.All"
APP_READ = frozenset({"OnlineMeetings.Read.All", APP_WRITE})
DELEGATED_WRITE = "onlinemeetings.readwrite"
DELEGATED_READ = frozenset({"onlinemeetings.read", DELEGATED_WRITE})
USER_READ_ROLES = frozenset({"User.Read.All", "User.ReadBasic.All", "User.ReadWrite.All",
                             "Directory.Read.All", "Directory.ReadWrite.All"})
NO_POLICY = "No application access policy found for this app."
POLICY_CODES = ("Forbidden", "General")
ME_WITH_APP_TOKEN = "/me request is only valid with delegated authentication flow."
BAD_JSON = ("Unable to read JSON request payload. Please ensure Content-Type header is set and "
            "payload is of valid JSON format.")
VAGUE = "An error has occurred."
_SELECT_CANON = {name.lower(): name for name in SELECTABLE}


class GraphError(Exception):
    def __init__(self, status: int, code: str, message: str,
                 headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or []


@dataclass(frozen=True)
class Routed:
    """Where a Graph request goes: ``handler`` None means ``error`` is the answer."""

    handler: Any
    key: str  # normalised path for the stats
    args: tuple
    organizer: str | None = None  # for the per-organizer bucket
    directory: bool = False  # a /users call: the directory service's headers and bucket


def error_body(request: Request, code: str, message: str, now: float) -> bytes:
    return json.dumps({"error": {
        "code": code,
        "message": message,
        "innerError": {
            "date": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "request-id": request.request_id,
            "client-request-id": request.client_request_id,
        },
    }}, separators=(",", ":")).encode()


class GraphService:
    def __init__(self, ctx: Context, directory: Directory, tokens: TokenService,
                 throttle: Throttle, chaos: Chaos, seed: int | None,
                 policy_code: str = "random") -> None:
        if policy_code not in (*POLICY_CODES, "random"):
            raise ValueError(f"policy error code {policy_code!r} must be Forbidden, General or random.")
        self.ctx = ctx
        self._directory = directory
        self._tokens = tokens
        self.throttle = throttle
        self.chaos = chaos
        self.store = MeetingStore(ctx.persist)
        self.policy_code = policy_code
        self.reseed(seed)

    def reseed(self, seed: int | None) -> None:
        self._rng = random.Random(None if seed is None else seed + 1)
        self._policy_rng = random.Random(None if seed is None else seed + 2)

    # ------------------------------------------------------------------ state

    def count(self) -> int:
        return self.store.count()

    def records(self) -> list[MeetingRecord]:
        return self.store.records()

    def reset(self, seed: int | None) -> None:
        self.store.clear()
        self.reseed(seed)
        self.throttle.reset()

    def import_state(self, meetings: list[dict[str, Any]]) -> None:
        self.store.load(meetings)
        for rec in self.store.records():  # the monthly cap counts what survived
            created = rec.data.get("creationDateTime") or ""
            self.throttle.count_created(rec.tenant_id, rec.organizer_id, created[:7])

    # ------------------------------------------------------------------ entry point

    def handle(self, request: Request, version: str, rest: list[str]) -> Response:
        routed = self.route(request.method, version, rest)
        request.stat_key = f"{request.method} /{version}/{routed.key}"
        try:
            if routed.handler is None:
                raise GraphError(*routed.args)
            principal, tenant = self._authenticate(request)
        except GraphError as exc:
            return self.error(request, exc)
        if routed.handler == "batch":
            from bulkmeet.emulator.batch import run_batch

            self.ctx.stats.bump("batches")
            return run_batch(self, request, version, principal, tenant)
        return self.serve(request, version, principal, tenant, routed)

    def route(self, method: str, version: str, rest: list[str]) -> Routed:
        low = [s.lower() for s in rest]
        n = len(low)
        if n >= 3 and low[-2] == "onlinemeetings" and low[:1] in (["me"], ["users"]):
            me = low[0] == "me"
            if (me and n == 3) or (not me and n == 4):
                user = None if me else rest[1]
                prefix = "me" if me else "users/{id}"
                if low[-1] == "createorget":
                    key = f"{prefix}/onlineMeetings/createOrGet"
                    if method != "POST":
                        return Routed(None, key, (405, "MethodNotAllowed",
                                                  f"The HTTP method '{method}' is not allowed; use POST."))
                    return Routed(self._create_or_get, key, (user,), organizer=user or "me")
                key = f"{prefix}/onlineMeetings/{{id}}"
                if method not in ("GET", "PATCH", "DELETE"):
                    return Routed(None, key, (405, "MethodNotAllowed",
                                              f"The HTTP method '{method}' is not allowed for a meeting."))
                return Routed(self._meeting, key, (user, rest[-1]), organizer=user or "me")
        if n == 1 and low[0] == "me" or n == 2 and low[0] == "users":
            key = "me" if n == 1 else "users/{id}"
            if method != "GET":
                return Routed(None, key, (405, "MethodNotAllowed",
                                          f"The HTTP method '{method}' is not allowed; the emulator "
                                          "serves only GET on users."))
            return Routed(self._user, key, (None if n == 1 else rest[1],), directory=True)
        if n == 1 and low[0] == "$batch":
            if method != "POST":
                return Routed(None, "$batch", (405, "MethodNotAllowed",
                                               f"The HTTP method '{method}' is not allowed; use POST."))
            return Routed("batch", "$batch", ())
        segment = rest[-1] if rest else ""
        return Routed(None, "(unknown path)", (400, "BadRequest",
                                               f"Resource not found for the segment '{segment}'."))

    def _authenticate(self, request: Request) -> tuple[Principal, Tenant]:
        auth = request.headers.get("authorization")
        if not auth:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise GraphError(401, "InvalidAuthenticationToken",
                             "Access token is empty or the Authorization header is not 'Bearer <token>'.")
        try:
            principal = self._tokens.verify_access_token(token.strip(), self.ctx.clock.time())
        except TokenRejected as exc:
            raise GraphError(401, "InvalidAuthenticationToken", str(exc)) from None
        tenant = self._directory.tenant(principal.tenant_id)
        if tenant is None or tenant.app(principal.app_id) is None:
            raise GraphError(401, "InvalidAuthenticationToken",
                             "Access token validation failure: the tenant or app is not in the "
                             "directory this emulator serves.")
        return principal, tenant

    def serve(self, request: Request, version: str, principal: Principal, tenant: Tenant,
              routed: Routed, *, in_batch: bool = False) -> Response:
        """Throttle, faults, then the handler. In a batch, latency was paid once by the batch
        and a dropped or stalled item becomes a 504 item (the batch itself still answers)."""
        ctx = self.ctx
        organizer = routed.organizer
        if organizer == "me":
            organizer = principal.user_id
        verdict = self.throttle.take(tenant.id, principal.app_id, organizer, ctx.clock.monotonic(),
                                     directory=routed.directory)
        if verdict.retry_after is not None:
            ctx.stats.bump("throttled")
            if verdict.early:
                ctx.stats.bump("throttled_early")
            return self.error(request, GraphError(
                429, "TooManyRequests",
                ctx.say(f"Too many requests from this app for this tenant. Retry after "
                        f"{verdict.retry_after} seconds.", "Please retry again later."),
                [("Retry-After", str(verdict.retry_after))] + verdict.headers))
        fault: Fault | None = None
        chaos = self.chaos
        if chaos.active:
            fault, delay = chaos.decide()
            if delay > 0 and not in_batch and ctx.stop.wait(delay):
                return dropped()
            if fault is not None and not fault.after:
                ctx.stats.count_fault(fault.kind, after=False)
                return self._fault_response(request, fault, verdict.headers, in_batch)
        try:
            response = routed.handler(request, version, principal, tenant, *routed.args)
        except GraphError as exc:
            response = self.error(request, exc)
        if fault is not None:  # after the work was done: the meeting may exist now
            ctx.stats.count_fault(fault.kind, after=True)
            if fault.kind != "stall":
                return self._fault_response(request, fault, verdict.headers, in_batch)
            if in_batch:
                return self._fault_response(request, Fault("504", True, 0, False), [], in_batch)
            ctx.stop.wait(ctx.settings.stall_s)
            if fault.stall_then_drop:
                return dropped()
        if verdict.headers:
            response.headers.extend(verdict.headers)
        return response

    def _fault_response(self, request: Request, fault: Fault,
                        throttle_headers: list[tuple[str, str]], in_batch: bool) -> Response:
        kind = fault.kind
        if kind in ("drop", "stall"):
            if not in_batch:
                return dropped()
            kind = "504"
        headers = list(throttle_headers)
        if kind in ("429", "503"):
            headers.insert(0, ("Retry-After", str(fault.retry_after)))
        code, helpful, vague = {
            "429": ("TooManyRequests", "Too many requests (injected by the emulator).",
                    "Please retry again later."),
            "500": ("InternalServerError", "An internal server error occurred (injected).", VAGUE),
            "502": ("BadGateway", "Bad gateway (injected).", VAGUE),
            "503": ("ServiceUnavailable", "The service is temporarily unavailable (injected).",
                    "The service is temporarily unavailable."),
            "504": ("GatewayTimeout", "The gateway timed out (injected).", VAGUE),
        }[kind]
        return self.error(request, GraphError(int(kind), code, self.ctx.say(helpful, vague), headers))

    # ------------------------------------------------------------------ responses

    def error(self, request: Request, exc: GraphError) -> Response:
        headers = [("request-id", request.request_id),
                   ("client-request-id", request.client_request_id)]
        if exc.status == 401:
            headers.append(("WWW-Authenticate",
                            'Bearer realm="", authorization_uri="https://login.microsoftonline.com'
                            '/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"'))
        headers.extend(exc.headers)
        return Response(exc.status, error_body(request, exc.code, exc.message, self.ctx.clock.time()),
                        headers, content_type=GRAPH_CONTENT_TYPE)

    @staticmethod
    def _ok(request: Request, status: int, body: bytes) -> Response:
        return Response(status, body, [("request-id", request.request_id),
                                       ("client-request-id", request.client_request_id)],
                        content_type=GRAPH_CONTENT_TYPE if body else None)

    def _bad_body(self, exc: BodyError) -> GraphError:
        return GraphError(400, "BadRequest", self.ctx.say(str(exc), exc.realistic or VAGUE))

    # ------------------------------------------------------------------ shared checks

    @staticmethod
    def _json_body(request: Request) -> Any:
        ctype = request.headers.get("content-type", "application/json").lower()
        if "json" not in ctype or not request.body.strip():
            raise GraphError(400, "BadRequest", BAD_JSON)
        try:
            return json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            raise GraphError(400, "BadRequest", BAD_JSON) from None

    def _organizer(self, principal: Principal, tenant: Tenant, path_user: str | None) -> User:
        """The meeting organizer named by the path (or /me), checked like Graph does."""
        say = self.ctx.say
        if path_user is None:
            if not principal.delegated:
                raise GraphError(400, "BadRequest", ME_WITH_APP_TOKEN)
            user_id = principal.user_id or ""
        else:
            user_id = path_user
        user = tenant.user_by_id(user_id)
        if user is None:
            if "@" in user_id:  # reported: a UPN in the path is a 404 UnknownError, no message
                raise GraphError(404, "UnknownError", say(
                    f"The user '{user_id}' was not found. A UPN or e-mail address is not accepted "
                    "here: use the organizer's object ID (GET /users/{upn}?$select=id resolves it).",
                    ""))
            raise GraphError(404, "NotFound", say(f"The user '{user_id}' was not found.", VAGUE))
        if principal.delegated and user.id != principal.user_id:
            raise GraphError(403, "Forbidden", say(
                "With a delegated token, meetings can only be managed for the signed-in user.", VAGUE))
        if not user.licensed:
            raise GraphError(404, "NotFound", say(
                f"The user '{user_id}' was not found or has no Teams license.",
                "1026: An error has occurred."))
        return user

    def _check_meeting_permission(self, principal: Principal, write: bool) -> None:
        if principal.delegated:
            ok = DELEGATED_WRITE in principal.scopes if write else bool(DELEGATED_READ & principal.scopes)
            needed = "OnlineMeetings.ReadWrite" if write else "OnlineMeetings.Read"
        else:
            ok = APP_WRITE in principal.roles if write else bool(APP_READ & principal.roles)
            needed = APP_WRITE if write else "OnlineMeetings.Read.All"
        if not ok:
            raise GraphError(403, "Forbidden", self.ctx.say(
                f"Insufficient privileges to complete the operation: the token lacks the "
                f"'{needed}' permission.", VAGUE))

    def _check_policy(self, principal: Principal, tenant: Tenant, user: User) -> None:
        if principal.delegated:
            return
        app = tenant.app(principal.app_id)
        if app is None or not app.policy_allows(user.id):
            code = self.policy_code
            if code == "random":
                code = self._policy_rng.choice(POLICY_CODES)
            raise GraphError(403, code, self.ctx.say(
                f"{NO_POLICY} An admin grants one with New-CsApplicationAccessPolicy and "
                "Grant-CsApplicationAccessPolicy (see the emulator's directory file).", NO_POLICY))

    # ------------------------------------------------------------------ handlers

    def _create_or_get(self, request: Request, version: str, principal: Principal,
                       tenant: Tenant, path_user: str | None) -> Response:
        if path_user is None and not principal.delegated:
            raise GraphError(400, "BadRequest", ME_WITH_APP_TOKEN)
        self._check_meeting_permission(principal, write=True)
        body = self._json_body(request)
        organizer = self._organizer(principal, tenant, path_user)
        self._check_policy(principal, tenant, organizer)
        try:
            req = parse_create_or_get(body, version, tenant, organizer)
        except BodyError as exc:
            raise self._bad_body(exc) from None
        now = self.ctx.clock.time()
        when = datetime.fromtimestamp(now, UTC)
        month = self.throttle.month(now)

        def make(taken: Any) -> dict[str, Any]:
            data = new_meeting(req, tenant, organizer, self._rng, when)
            while taken(data["id"]):  # a seeded RNG replays ids after a restart
                data = new_meeting(req, tenant, organizer, self._rng, when)
            return data

        rec, created = self.store.create_or_get(
            (tenant.id, organizer.id, req.external_id), principal.app_id, make,
            lambda: not self.throttle.cap_reached(tenant.id, organizer.id, now))
        if rec is None:
            self.ctx.stats.bump("quota_refused")
            cap = self.throttle.options.meeting_cap
            helpful = (f"The organizer has reached the limit of {cap} meetings per month; no "
                       "new meeting can be created for them before the month turns.")
            if self.throttle.options.cap_error == "403":
                raise GraphError(403, "Forbidden", self.ctx.say(helpful, VAGUE))
            raise GraphError(429, "TooManyRequests", self.ctx.say(helpful, "Please retry again later."))
        if created:
            self.throttle.count_created(tenant.id, organizer.id, month)
            self.ctx.stats.bump("created")
        return self._ok(request, 201 if created else 200, rec.body(version))

    def _meeting(self, request: Request, version: str, principal: Principal, tenant: Tenant,
                 path_user: str | None, meeting_id: str) -> Response:
        if path_user is None and not principal.delegated:
            raise GraphError(400, "BadRequest", ME_WITH_APP_TOKEN)
        method = request.method
        self._check_meeting_permission(principal, write=method != "GET")
        body = self._json_body(request) if method == "PATCH" else None
        organizer = self._organizer(principal, tenant, path_user)
        self._check_policy(principal, tenant, organizer)
        rec = self.store.get(tenant.id, organizer.id, meeting_id)
        not_found = GraphError(404, "NotFound", self.ctx.say(
            f"The online meeting '{meeting_id}' was not found for this organizer.", VAGUE))
        if rec is None:
            raise not_found
        if method == "GET":
            return self._ok(request, 200, rec.body(version))
        if method == "DELETE":
            if not self.store.delete(rec, meeting_id):
                raise not_found
            self.ctx.stats.bump("deleted")
            return self._ok(request, 204, b"")
        now = datetime.fromtimestamp(self.ctx.clock.time(), UTC)
        try:
            self.store.update(rec, lambda data: apply_patch(data, body, tenant, organizer, now))
        except BodyError as exc:
            raise self._bad_body(exc) from None
        except LookupError:
            raise not_found from None
        self.ctx.stats.bump("updated")
        return self._ok(request, 200, rec.body(version))

    def _user(self, request: Request, version: str, principal: Principal, tenant: Tenant,
              who: str | None) -> Response:
        if who is None:
            if not principal.delegated:
                raise GraphError(400, "BadRequest", ME_WITH_APP_TOKEN)
            who = principal.user_id or ""
        elif not principal.delegated and not (USER_READ_ROLES & principal.roles):
            raise GraphError(403, "Authorization_RequestDenied",
                             "Insufficient privileges to complete the operation.")
        select: list[str] | None = None
        for name, value in parse_qsl(request.query, keep_blank_values=True):
            if name.lower() in ("$select", "select"):
                select = []
                for item in value.split(","):
                    item = item.strip()
                    canon = _SELECT_CANON.get(item.lower())
                    if canon is None:
                        raise GraphError(400, "BadRequest",
                                         f"Could not find a property named '{item}' on type "
                                         "'microsoft.graph.user'.")
                    select.append(canon)
        user = tenant.find_user(who)
        if user is None:
            raise GraphError(404, "Request_ResourceNotFound",
                             f"Resource '{who}' does not exist or one of its queried "
                             "reference-property objects are not present.")
        body = json.dumps(user_json(user, select, version), separators=(",", ":")).encode()
        return self._ok(request, 200, body)


def dropped() -> Response:
    r = Response(0)
    r.drop = True
    return r
