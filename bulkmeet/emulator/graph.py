"""The Graph half of the emulator: onlineMeetings createOrGet/GET/PATCH/DELETE and users.

Authorization is as strict as Graph's: a bad token is 401, a missing role or scope is 403, an
organizer without an application access policy is 403 with Graph's exact message, and a UPN
where the object id belongs is 404. A client that works here has handled what Graph will do.
"""
from __future__ import annotations

import json
import random
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from bulkmeet.emulator.directory import Tenant, User
from bulkmeet.emulator.faults import Fault
from bulkmeet.emulator.httpd import Request, Response
from bulkmeet.emulator.meetings import (
    SELECTABLE,
    BodyError,
    apply_patch,
    new_meeting,
    parse_create_or_get,
    user_json,
)
from bulkmeet.emulator.tokens import Principal, TokenRejected

if TYPE_CHECKING:  # pragma: no cover
    from bulkmeet.emulator.app import Emulator

GRAPH_CONTENT_TYPE = ("application/json;odata.metadata=minimal;odata.streaming=true;"
                      "IEEE754Compatible=false;charset=utf-8")
APP_WRITE = "OnlineMeetings.ReadWrite.All"
APP_READ = frozenset({"OnlineMeetings.Read.All", APP_WRITE})
DELEGATED_WRITE = "onlinemeetings.readwrite"
DELEGATED_READ = frozenset({"onlinemeetings.read", DELEGATED_WRITE})
USER_READ_ROLES = frozenset({"User.Read.All", "User.ReadBasic.All", "User.ReadWrite.All",
                             "Directory.Read.All", "Directory.ReadWrite.All"})
NO_POLICY = "No application access policy found for this app."
ME_WITH_APP_TOKEN = "/me request is only valid with delegated authentication flow."
BAD_JSON = ("Unable to read JSON request payload. Please ensure Content-Type header is set and "
            "payload is of valid JSON format.")
_SELECT_CANON = {name.lower(): name for name in SELECTABLE}


class GraphError(Exception):
    def __init__(self, status: int, code: str, message: str,
                 headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or []


class MeetingRecord:
    """One meeting, kept as its JSON bytes.

    Bytes, not a dict: createOrGet for an existing meeting is then a lookup and a concatenation,
    and a tenant with 100,000 meetings does not hold millions of small objects for the garbage
    collector to walk on every collection.
    """

    __slots__ = ("tenant_id", "organizer_id", "external_id", "app_id", "raw")

    def __init__(self, tenant_id: str, organizer_id: str, external_id: str, app_id: str,
                 raw: bytes) -> None:
        self.tenant_id = tenant_id
        self.organizer_id = organizer_id
        self.external_id = external_id
        self.app_id = app_id
        self.raw = raw

    @property
    def data(self) -> dict[str, Any]:
        return json.loads(self.raw)

    def body(self, version: str) -> bytes:
        return (b'{"@odata.context":"https://graph.microsoft.com/' + version.encode()
                + b'/$metadata#microsoft.graph.onlineMeeting",' + self.raw[1:])

    def state_bytes(self) -> bytes:
        """This record as state-file JSON, without decoding and re-encoding the meeting."""
        head = json.dumps({"tenantId": self.tenant_id, "organizerId": self.organizer_id,
                           "externalId": self.external_id, "appId": self.app_id},
                          separators=(",", ":")).encode()
        return head[:-1] + b',"meeting":' + self.raw + b"}"

    def listing(self) -> dict[str, Any]:
        out = self.data
        out.update(organizerId=self.organizer_id, tenantId=self.tenant_id,
                   externalId=self.external_id, createdByAppId=self.app_id)
        return out


def _dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def _error_body(request: Request, code: str, message: str) -> bytes:
    return json.dumps({"error": {
        "code": code,
        "message": message,
        "innerError": {
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "request-id": request.request_id,
            "client-request-id": request.client_request_id,
        },
    }}, separators=(",", ":")).encode()


class GraphService:
    def __init__(self, emulator: Emulator, seed: int | None) -> None:
        self._emu = emulator
        self._lock = threading.Lock()
        self._by_key: dict[tuple[str, str, str], MeetingRecord] = {}
        self._by_id: dict[str, MeetingRecord] = {}
        self._rng = random.Random(None if seed is None else seed + 1)

    # ------------------------------------------------------------------ state

    def count(self) -> int:
        return len(self._by_key)

    def records(self) -> list[MeetingRecord]:
        with self._lock:
            return list(self._by_key.values())

    def reset(self, seed: int | None) -> None:
        with self._lock:
            self._by_key.clear()
            self._by_id.clear()
            self._rng = random.Random(None if seed is None else seed + 1)

    def import_state(self, meetings: list[dict[str, Any]]) -> None:
        with self._lock:
            for raw in meetings:
                meeting = raw["meeting"]
                rec = MeetingRecord(raw["tenantId"], raw["organizerId"], raw["externalId"],
                                    raw.get("appId", ""), _dumps(meeting))
                self._by_key[(rec.tenant_id, rec.organizer_id, rec.external_id)] = rec
                self._by_id[meeting["id"]] = rec

    # ------------------------------------------------------------------ entry point

    def handle(self, request: Request, version: str, rest: list[str]) -> Response:
        low = [s.lower() for s in rest]
        method = request.method
        handler, key, args = self._route(method, rest, low)
        request.stat_key = f"{method} /{version}/{key}"
        try:
            if handler is None:
                raise GraphError(*args)
            principal, tenant = self._authenticate(request)
        except GraphError as exc:
            return self._error(request, exc)
        return self._serve(request, version, principal, tenant, handler, args)

    def _route(self, method: str, rest: list[str], low: list[str]) -> tuple[Any, str, tuple]:
        n = len(low)
        if n >= 3 and low[-2] == "onlinemeetings" and low[:1] in (["me"], ["users"]):
            me = low[0] == "me"
            if (me and n == 3) or (not me and n == 4):
                user = None if me else rest[1]
                prefix = "me" if me else "users/{id}"
                if low[-1] == "createorget":
                    key = f"{prefix}/onlineMeetings/createOrGet"
                    if method != "POST":
                        return None, key, (405, "MethodNotAllowed",
                                           f"The HTTP method '{method}' is not allowed; use POST.")
                    return self._create_or_get, key, (user,)
                key = f"{prefix}/onlineMeetings/{{id}}"
                if method not in ("GET", "PATCH", "DELETE"):
                    return None, key, (405, "MethodNotAllowed",
                                       f"The HTTP method '{method}' is not allowed for a meeting.")
                return self._meeting, key, (user, rest[-1])
        if n == 1 and low[0] == "me" or n == 2 and low[0] == "users":
            key = "me" if n == 1 else "users/{id}"
            if method != "GET":
                return None, key, (405, "MethodNotAllowed",
                                   f"The HTTP method '{method}' is not allowed; the emulator "
                                   "serves only GET on users.")
            return self._user, key, (None if n == 1 else rest[1],)
        segment = rest[-1] if rest else ""
        return None, "(unknown path)", (400, "BadRequest",
                                        f"Resource not found for the segment '{segment}'.")

    def _authenticate(self, request: Request) -> tuple[Principal, Tenant]:
        auth = request.headers.get("authorization")
        if not auth:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise GraphError(401, "InvalidAuthenticationToken",
                             "Access token is empty or the Authorization header is not 'Bearer <token>'.")
        try:
            principal = self._emu.tokens.verify_access_token(token.strip(), time.time())
        except TokenRejected as exc:
            raise GraphError(401, "InvalidAuthenticationToken", str(exc)) from None
        tenant = self._emu.directory.tenant(principal.tenant_id)
        if tenant is None or tenant.app(principal.app_id) is None:
            raise GraphError(401, "InvalidAuthenticationToken",
                             "Access token validation failure: the tenant or app is not in the "
                             "directory this emulator serves.")
        return principal, tenant

    def _serve(self, request: Request, version: str, principal: Principal, tenant: Tenant,
               handler: Any, args: tuple) -> Response:
        emu = self._emu
        throttle_headers: list[tuple[str, str]] = []
        limiter = emu._limiter
        if limiter.rate:
            retry_after, throttle_headers = limiter.take((tenant.id, principal.app_id), time.monotonic())
            if retry_after is not None:
                emu._stats.count_throttled()
                return self._error(request, GraphError(
                    429, "TooManyRequests",
                    f"Too many requests from this app for this tenant. Retry after {retry_after} "
                    "seconds.", [("Retry-After", str(retry_after))] + throttle_headers))
        fault: Fault | None = None
        chaos = emu._chaos
        if chaos.active:
            fault, delay = chaos.decide()
            if delay > 0 and emu._stop_event.wait(delay):
                return self._dropped()
            if fault is not None and not fault.after:
                emu._stats.count_fault(fault.kind, after=False)
                return self._fault_response(request, fault, throttle_headers)
        try:
            response = handler(request, version, principal, tenant, *args)
        except GraphError as exc:
            response = self._error(request, exc)
        if fault is not None:  # after the work was done: the meeting may exist now
            emu._stats.count_fault(fault.kind, after=True)
            if fault.kind == "stall":
                emu._stop_event.wait(emu._settings.stall_s)
                if fault.stall_then_drop:
                    return self._dropped()
            else:
                return self._fault_response(request, fault, throttle_headers)
        if throttle_headers:
            response.headers.extend(throttle_headers)
        return response

    @staticmethod
    def _dropped() -> Response:
        r = Response(0)
        r.drop = True
        return r

    def _fault_response(self, request: Request, fault: Fault,
                        throttle_headers: list[tuple[str, str]]) -> Response:
        kind = fault.kind
        if kind == "drop":
            return self._dropped()
        headers = list(throttle_headers)
        if kind in ("429", "503"):
            headers.insert(0, ("Retry-After", str(fault.retry_after)))
        code, message = {
            "429": ("TooManyRequests", "Too many requests. Retry after the number of seconds "
                                       "in Retry-After. (injected by the emulator)"),
            "500": ("InternalServerError", "An internal server error occurred. (injected)"),
            "502": ("BadGateway", "Bad gateway. (injected)"),
            "503": ("ServiceUnavailable", "The service is temporarily unavailable. (injected)"),
            "504": ("GatewayTimeout", "The gateway timed out. (injected)"),
        }[kind]
        return self._error(request, GraphError(int(kind), code, message, headers))

    # ------------------------------------------------------------------ responses

    def _error(self, request: Request, exc: GraphError) -> Response:
        headers = [("request-id", request.request_id),
                   ("client-request-id", request.client_request_id)]
        if exc.status == 401:
            headers.append(("WWW-Authenticate",
                            'Bearer realm="", authorization_uri="https://login.microsoftonline.com'
                            '/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"'))
        headers.extend(exc.headers)
        return Response(exc.status, _error_body(request, exc.code, exc.message), headers,
                        content_type=GRAPH_CONTENT_TYPE)

    @staticmethod
    def _ok(request: Request, status: int, body: bytes) -> Response:
        return Response(status, body, [("request-id", request.request_id),
                                       ("client-request-id", request.client_request_id)],
                        content_type=GRAPH_CONTENT_TYPE if body else None)

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

    @staticmethod
    def _organizer(principal: Principal, tenant: Tenant, path_user: str | None) -> User:
        """The meeting organizer named by the path (or /me), checked like Graph does."""
        if path_user is None:
            if not principal.delegated:
                raise GraphError(400, "BadRequest", ME_WITH_APP_TOKEN)
            user_id = principal.user_id or ""
        else:
            user_id = path_user
        user = tenant.user_by_id(user_id)
        if user is None:
            hint = (" A UPN or e-mail address is not accepted here: use the organizer's object "
                    "ID (GET /users/{upn}?$select=id resolves it)." if "@" in user_id else "")
            raise GraphError(404, "NotFound", f"The user '{user_id}' was not found.{hint}")
        if principal.delegated and user.id != principal.user_id:
            raise GraphError(403, "Forbidden",
                             "With a delegated token, meetings can only be managed for the "
                             "signed-in user.")
        if not user.licensed:
            raise GraphError(404, "NotFound",
                             f"The user '{user_id}' was not found or has no Teams license.")
        return user

    @staticmethod
    def _check_meeting_permission(principal: Principal, write: bool) -> None:
        if principal.delegated:
            ok = DELEGATED_WRITE in principal.scopes if write else bool(DELEGATED_READ & principal.scopes)
            needed = "OnlineMeetings.ReadWrite" if write else "OnlineMeetings.Read"
        else:
            ok = APP_WRITE in principal.roles if write else bool(APP_READ & principal.roles)
            needed = APP_WRITE if write else "OnlineMeetings.Read.All"
        if not ok:
            raise GraphError(403, "Forbidden",
                             f"Insufficient privileges to complete the operation: the token lacks "
                             f"the '{needed}' permission.")

    @staticmethod
    def _check_policy(principal: Principal, tenant: Tenant, user: User) -> None:
        if principal.delegated:
            return
        app = tenant.app(principal.app_id)
        if app is None or not app.policy_allows(user.id):
            raise GraphError(403, "Forbidden", NO_POLICY)

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
            raise GraphError(400, "BadRequest", str(exc)) from None
        key = (tenant.id, organizer.id, req.external_id)
        created = False
        with self._lock:
            rec = self._by_key.get(key)
            if rec is None:
                data = new_meeting(req, tenant, organizer, self._rng, datetime.now(UTC))
                while data["id"] in self._by_id:  # a seeded RNG replays ids after a restart
                    data = new_meeting(req, tenant, organizer, self._rng, datetime.now(UTC))
                rec = MeetingRecord(tenant.id, organizer.id, req.external_id, principal.app_id,
                                    _dumps(data))
                self._by_key[key] = rec
                self._by_id[data["id"]] = rec
                created = True
        if created:
            self._emu._stats.count_created()
            self._emu._mark_dirty()
        return self._ok(request, 201 if created else 200, rec.body(version))

    def _meeting(self, request: Request, version: str, principal: Principal, tenant: Tenant,
                 path_user: str | None, meeting_id: str) -> Response:
        if path_user is None and not principal.delegated:
            raise GraphError(400, "BadRequest", ME_WITH_APP_TOKEN)
        write = request.method != "GET"
        self._check_meeting_permission(principal, write=write)
        body = self._json_body(request) if request.method == "PATCH" else None
        organizer = self._organizer(principal, tenant, path_user)
        self._check_policy(principal, tenant, organizer)
        with self._lock:
            rec = self._by_id.get(meeting_id)
            if rec is None or rec.tenant_id != tenant.id or rec.organizer_id != organizer.id:
                raise GraphError(404, "NotFound",
                                 f"The online meeting '{meeting_id}' was not found for this organizer.")
            if request.method == "GET":
                return self._ok(request, 200, rec.body(version))
            if request.method == "DELETE":
                del self._by_id[meeting_id]
                del self._by_key[(rec.tenant_id, rec.organizer_id, rec.external_id)]
            else:
                try:
                    rec.raw = _dumps(apply_patch(rec.data, body, tenant, organizer))
                except BodyError as exc:
                    raise GraphError(400, "BadRequest", str(exc)) from None
        self._emu._mark_dirty()
        if request.method == "DELETE":
            return self._ok(request, 204, b"")
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
