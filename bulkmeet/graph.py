"""Talking to Microsoft Graph: one createOrGet or user lookup per call, no retry policy.

``GraphGateway`` is the seam (as in pip-tools): the runner only knows this interface. ``HttpGraph``
is the real implementation, over ``http11`` (urllib3 through a proxy); the tests' ``FakeGraph``
(tests/fakes.py) is an in-memory one with Graph's createOrGet semantics, used by fast tests of
the runner's retry and concurrency logic. Retrying, pacing and throttling live in ``runner``;
turning Graph's answers into sentences lives here, because only here do we know what each Graph
error means for an ops user.
"""
from __future__ import annotations

import json
import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import urllib3

from bulkmeet.http import (
    describe_ca,
    endpoint,
    environ_proxies,
    is_certificate_failure,
    resolve_ca_bundle,
    tls_context,
    tls_failure_message,
)
from bulkmeet.http11 import Http11Pool

# What went wrong when there was no HTTP status at all.
TIMEOUT = "timeout"
CONNECTION = "connection"
TLS = "tls"  # the certificate did not verify: not transient, so never retried


class Tokens(Protocol):
    delegated: bool

    def token(self) -> str: ...

    def invalidate(self, token: str) -> None: ...


@dataclass(frozen=True)
class GraphResponse:
    """One HTTP exchange with Graph (or the lack of one: ``status`` None and ``failure`` set)."""

    status: int | None
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    failure: str | None = None  # TIMEOUT | CONNECTION | TLS when no response arrived
    detail: str | None = None  # the exception text (TLS: the sentence); never contains a token

    @property
    def request_id(self) -> str | None:
        rid = self.headers.get("request-id")
        if rid:
            return rid
        inner = self.error.get("innerError") or {}
        return inner.get("request-id")

    @property
    def error(self) -> dict[str, Any]:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return self.body["error"]
        return {}

    @property
    def error_code(self) -> str | None:
        return self.error.get("code")

    @property
    def error_message(self) -> str:
        return str(self.error.get("message") or "")

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None

    @property
    def retry_after(self) -> float | None:
        """Retry-After in seconds: whole seconds per Graph, but tolerate fractions and junk."""
        raw = self.header("Retry-After")
        if raw is None:
            return None
        try:
            return max(0.0, float(raw))
        except ValueError:
            return None


class GraphGateway(ABC):
    """The calls bulkmeet makes. Each is a single attempt: the runner decides about retries."""

    delegated: bool = False

    @abstractmethod
    def create_or_get(self, organizer_id: str | None, body: Mapping[str, Any]) -> GraphResponse:
        """POST .../onlineMeetings/createOrGet; ``organizer_id`` None means /me (delegated)."""

    @abstractmethod
    def get_user(self, upn: str) -> GraphResponse:
        """GET /users/{upn}?$select=id — resolves a UPN to the object id createOrGet needs."""

    @abstractmethod
    def get_meeting(self, organizer_id: str | None, meeting_id: str) -> GraphResponse:
        """GET .../onlineMeetings/{id}: 200 with the meeting, 404 when it is gone."""

    @abstractmethod
    def update_meeting(self, organizer_id: str | None, meeting_id: str,
                       body: Mapping[str, Any]) -> GraphResponse:
        """PATCH .../onlineMeetings/{id}: 200 with the updated meeting (bulkmeet.sync checks it)."""

    @abstractmethod
    def delete_meeting(self, organizer_id: str | None, meeting_id: str) -> GraphResponse:
        """DELETE .../onlineMeetings/{id}: 204, no body."""

    def batch(self, requests: Sequence[BatchRequest]) -> list[GraphResponse]:
        """POST /$batch with up to ``MAX_BATCH`` requests: one answer per request, in order.

        Each item has its own status, headers (Retry-After) and body; when the batch call itself
        fails (timeout, 5xx, 429 for the whole batch) every item gets that answer. Only used with
        ``[run] batch = true``; a gateway that cannot batch says so here.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot send JSON batches")

    def describe(self) -> str:
        return type(self).__name__

    def close(self) -> None:
        """Release connections (the pipeline calls it when a run ends). Nothing to release here."""
        return None


MAX_BATCH = 20  # Graph's JSON batching limit


@dataclass(frozen=True)
class BatchRequest:
    """One request inside a JSON batch: ``path`` is relative to the API version root."""

    method: str
    path: str
    body: Mapping[str, Any] | None = None


def create_or_get_path(organizer_id: str | None) -> str:
    if organizer_id is None:
        return "/me/onlineMeetings/createOrGet"
    return f"/users/{quote(organizer_id, safe='')}/onlineMeetings/createOrGet"


def meeting_path(organizer_id: str | None, meeting_id: str) -> str:
    """``/users/{id}/onlineMeetings/{meetingId}``, or ``/me/...`` with a delegated token."""
    owner = "/me" if organizer_id is None else f"/users/{quote(organizer_id, safe='')}"
    return f"{owner}/onlineMeetings/{quote(meeting_id, safe='')}"


class HttpGraph(GraphGateway):
    """Graph over HTTPS: one thread-safe keep-alive pool sized to the concurrency.

    Measured on a 2-core machine, requests' per-call machinery (environment merging, adapters,
    hooks) capped the client at ~1,000 createOrGet/s; urllib3 did the same work with a third of
    the CPU, and ``http11`` with a third of urllib3's (its docstring says why). Through a proxy,
    urllib3's ProxyManager. TLS is always verified against the resolved CA bundle
    (``http.resolve_ca_bundle``). A 401 is answered once by dropping the token and trying again
    with a fresh one: a token can expire between being handed out and arriving.
    """

    def __init__(
        self,
        base_url: str,
        api_version: str,
        tokens: Tokens,
        *,
        ca_bundle: str | None = None,
        timeout: tuple[float, float] = (10.0, 60.0),
        pool_size: int = 16,
    ) -> None:
        base = endpoint(base_url, "Graph base URL")  # parsed once: what is checked is what is used
        self.root = f"{base.url}/{api_version}"
        self._tls_failure = tls_failure_message(f"Graph at {base.url}", describe_ca(ca_bundle))
        self.tokens = tokens
        self.delegated = tokens.delegated
        self._prefix = f"{base.path}/{api_version}"
        ca = resolve_ca_bundle(ca_bundle)
        proxy = environ_proxies(self.root).get(base.scheme)
        # Without a proxy, bulkmeet's own keep-alive client (http11: a third of urllib3's CPU per
        # call); through a proxy, urllib3's ProxyManager, which knows CONNECT and proxy auth.
        self._proxied = pool_for(self.root, ca, pool_size, proxy) if proxy else None
        self._proxy_timeout = urllib3.Timeout(connect=timeout[0], read=timeout[1])
        self._direct = None if proxy else Http11Pool(
            base.scheme, base.host, base.port, context=tls_context(ca) if base.scheme == "https"
            else None, connect_timeout=timeout[0], read_timeout=timeout[1], maxsize=pool_size)

    def close(self) -> None:
        for pool in (self._direct, self._proxied):
            if pool is not None:
                pool.clear()

    def create_or_get(self, organizer_id: str | None, body: Mapping[str, Any]) -> GraphResponse:
        return self._send("POST", create_or_get_path(organizer_id), body)

    def get_user(self, upn: str) -> GraphResponse:
        return self._send("GET", f"/users/{quote(upn, safe='@')}?$select=id", None)

    def get_meeting(self, organizer_id: str | None, meeting_id: str) -> GraphResponse:
        return self._send("GET", meeting_path(organizer_id, meeting_id), None)

    def update_meeting(self, organizer_id: str | None, meeting_id: str,
                       body: Mapping[str, Any]) -> GraphResponse:
        return self._send("PATCH", meeting_path(organizer_id, meeting_id), body)

    def delete_meeting(self, organizer_id: str | None, meeting_id: str) -> GraphResponse:
        return self._send("DELETE", meeting_path(organizer_id, meeting_id), None)

    def describe(self) -> str:
        return self.root

    def batch(self, requests: Sequence[BatchRequest]) -> list[GraphResponse]:
        items = [{"id": str(i), "method": r.method, "url": r.path,
                  **({"headers": {"Content-Type": "application/json"}, "body": r.body}
                     if r.body is not None else {})}
                 for i, r in enumerate(requests)]
        outer = self._send("POST", "/$batch", {"requests": items})
        answers = outer.body.get("responses") if outer.status == 200 and isinstance(
            outer.body, dict) else None
        if not isinstance(answers, list):
            return [outer] * len(requests)
        by_id = {str(a.get("id")): a for a in answers if isinstance(a, dict)}
        out = []
        for i in range(len(requests)):
            a = by_id.get(str(i)) or {}
            status = a.get("status")
            if not isinstance(status, int):  # an item Graph did not answer: send it again
                out.append(GraphResponse(None, failure=CONNECTION, detail="no answer in the batch"))
                continue
            headers = a.get("headers")
            headers = headers if isinstance(headers, dict) else {}
            out.append(GraphResponse(status, a.get("body"), {str(k): str(v) for k, v in headers.items()}))
        return out

    def _send(self, method: str, path: str, body: Mapping[str, Any] | None) -> GraphResponse:
        response = self._attempt(method, path, body)
        if response.status == 401:
            response = self._attempt(method, path, body, refresh=True)
        return response

    def _attempt(
        self, method: str, path: str, body: Mapping[str, Any] | None, refresh: bool = False
    ) -> GraphResponse:
        token = self.tokens.token()
        if refresh:
            self.tokens.invalidate(token)
            token = self.tokens.token()
        headers = {
            "Authorization": f"Bearer {token}",
            "client-request-id": str(uuid.uuid4()),
            "Accept": "application/json",
        }
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body, separators=(",", ":")).encode()
        try:
            status, raw, got = self._exchange(method, path, headers, data)
        except (urllib3.exceptions.TimeoutError, TimeoutError) as exc:
            return GraphResponse(None, failure=TIMEOUT, detail=_scrub(exc, token))
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if isinstance(getattr(exc, "reason", None), urllib3.exceptions.TimeoutError):
                return GraphResponse(None, failure=TIMEOUT, detail=_scrub(exc, token))
            if is_certificate_failure(exc):
                return GraphResponse(None, failure=TLS, detail=self._tls_failure)
            return GraphResponse(None, failure=CONNECTION, detail=_scrub(exc, token))
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return GraphResponse(status, parsed, got)

    def _exchange(self, method: str, path: str, headers: dict[str, str], data: bytes | None
                  ) -> tuple[int, bytes, dict[str, str]]:
        """One request on the wire: (status, body, headers); raises what the client raises."""
        if self._proxied is None:
            assert self._direct is not None
            answer = self._direct.request(method, self._prefix + path, headers, data)
            return answer.status, answer.body, answer.headers
        r = self._proxied.request(method, self.root + path, body=data, headers=headers,
                                  timeout=self._proxy_timeout, retries=False, redirect=False)
        return r.status, r.data, dict(r.headers)


def pool_for(url: str, ca: str | bool, size: int, proxy: str) -> urllib3.ProxyManager:
    """A verifying urllib3 pool through the environment's HTTPS proxy for this host."""
    tls: dict[str, Any] = {"cert_reqs": "CERT_REQUIRED", "maxsize": max(size, 1), "block": False}
    if isinstance(ca, str):
        tls["ca_certs" if not os.path.isdir(ca) else "ca_cert_dir"] = ca
    else:
        import certifi

        tls["ca_certs"] = certifi.where()
    return urllib3.ProxyManager(proxy, **tls)


def _scrub(exc: BaseException, token: str) -> str:
    text = str(exc) or type(exc).__name__
    return text.replace(token, "[token]")


# ---------------------------------------------------------------------------------------------
# What Graph's answers mean for the person reading the output sheet.

POLICY_MESSAGE = "No application access policy found for this app"
# The access-policy 403 has been seen with code Forbidden and with General, and Graph's wording
# varies: decide on status and code family. (A token without the role is refused before the
# first row, by the permission check, so a 403 Forbidden on a meeting call is the policy.)
POLICY_CODES = frozenset({"forbidden", "general"})


def is_access_policy_error(response: GraphResponse) -> bool:
    if response.status != 403:
        return False
    return ((response.error_code or "").lower() in POLICY_CODES
            or POLICY_MESSAGE.lower() in response.error_message.lower())


# What a call was doing, for the sentences below: createOrGet, PATCH, DELETE, GET.
CREATE, UPDATE, CANCEL, READ = "create", "update", "cancel", "read"
_DOING = {CREATE: "create meetings", UPDATE: "change meetings", CANCEL: "delete meetings",
          READ: "read meetings"}
_REJECTED = {
    CREATE: "the request for this row: check its times (end after start), subject and attendee "
            "addresses.",
    UPDATE: "the update for this row: check its times (end after start), subject, attendee "
            "addresses and meeting options.",
    CANCEL: "the cancellation; nothing was deleted. Report it to Microsoft with the request id.",
    READ: "the check of this meeting; nothing was changed. Report it to Microsoft with the "
          "request id.",
}


def describe_failure(response: GraphResponse, *, organizer: str, client_id: str | None = None,
                     attempts: int = 1, organizer_id: str | None = None,
                     action: str = CREATE) -> str:
    """One sentence for the ``error`` column: Graph's code and message, then what to do.

    ``action`` (CREATE, UPDATE, CANCEL, READ) is what the call was for: a 403 on a PATCH must
    not tell the admin the app cannot *create* meetings."""
    code = response.error_code or (str(response.status) if response.status else "")
    graph_says = f"{code}: {response.error_message}".strip(": ").rstrip(".") if response.status else ""
    if response.failure == TLS:  # detail is the sentence (http.tls_failure_message)
        return response.detail or tls_failure_message("Graph", "the configured CA bundle")
    if response.status is None:
        what = "timed out" if response.failure == TIMEOUT else "connection failed"
        return (f"Could not get an answer from Graph ({what}) after {attempts} attempt(s); "
                "nothing is lost: the next run retries this row.")
    status = response.status
    if status == 429:
        return (f"Graph kept throttling this request (429 {graph_says}) after {attempts} "
                "attempt(s); the next run retries it.")
    if status >= 500:
        return (f"Graph had a temporary failure ({status} {graph_says}) after {attempts} "
                "attempt(s); the next run retries this row.")
    if is_access_policy_error(response):
        app = client_id or "APP_CLIENT_ID"
        return (
            f"403 {graph_says}. Organizer {organizer} has no application access policy for this "
            f"app. A Teams admin must run in PowerShell: New-CsApplicationAccessPolicy -Identity "
            f"bulkmeet-policy -AppIds \"{app}\"; then Grant-CsApplicationAccessPolicy -PolicyName "
            f"bulkmeet-policy -Identity \"{organizer_id or '<organizer object id>'}\" (or -Global). "
            "Policies take up "
            "to 30 minutes to apply."
        )
    if status == 403:
        return (
            f"403 {graph_says}. The app is not allowed to {_DOING[action]}: grant the "
            "OnlineMeetings.ReadWrite.All application permission (delegated: OnlineMeetings."
            "ReadWrite) in the Azure portal and click 'Grant admin consent'."
        )
    if status == 404:
        return (
            f"404 {graph_says}. Organizer {organizer} was not found: check the address, that the "
            "user has a Teams licence, and that the organizer column holds the Entra object ID or "
            "a UPN with resolve_upns = true in [graph]."
        )
    if status == 401:
        return (f"401 {graph_says}. Graph rejected the access token even after a fresh one was "
                "fetched: check the tenant id and that the app is registered in that tenant.")
    if status == 400:
        return f"400 {graph_says}. Graph rejected {_REJECTED[action]}"
    return f"{status} {graph_says}. Graph refused the request."
