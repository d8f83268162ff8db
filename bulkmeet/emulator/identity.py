"""The identity half of the emulator: Microsoft identity platform v2.0 endpoints.

Shapes follow Entra ID closely enough that the real msal library works against them unchanged
(OIDC discovery, client credentials with a secret or a certificate assertion, the device-code
flow, refresh tokens), and errors carry the real AADSTS numbers so that a client's handling of
"wrong secret" or "unknown tenant" is tested for real.
"""
from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from bulkmeet.emulator.context import Context
from bulkmeet.emulator.directory import App, Directory, Tenant
from bulkmeet.emulator.httpd import Request, Response
from bulkmeet.emulator.oidc import (
    DENIALS,
    IdentityError,
    error_payload,
    openid_configuration,
    tenant_not_found,
)
from bulkmeet.emulator.tokens import (
    GRAPH_APP_ID,
    GRAPH_RESOURCE,
    AssertionRejected,
    TokenService,
    client_info,
    verify_client_assertion,
)

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
MULTI_TENANT = ("organizations", "common")
DEVICE_CODE_LIFETIME_S = 900
REFRESH_TOKEN_LIFETIME_S = 90 * 24 * 3600
_USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ23456789"


@dataclass
class DeviceCode:
    device_code: str
    user_code: str
    tenant_id: str
    client_id: str
    scopes: list[str]  # graph scopes as requested, for the response "scope"
    expires_at: float
    approved_user: str | None = None
    denied: str | None = None  # an error the next poll gets (set through the admin endpoint)
    oidc: list[str] = field(default_factory=list)  # openid/offline_access/... as asked

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RefreshGrant:
    tenant_id: str
    client_id: str
    user_id: str
    expires_at: float


class IdentityService:
    def __init__(self, ctx: Context, directory: Directory, tokens: TokenService) -> None:
        self._ctx = ctx
        self._directory = directory
        self._tokens = tokens
        self._lock = threading.Lock()
        self._device_codes: dict[str, DeviceCode] = {}
        self._user_codes: dict[str, str] = {}
        self._refresh: dict[str, RefreshGrant] = {}

    # ------------------------------------------------------------------ state

    def export_state(self) -> dict[str, Any]:
        now = self._ctx.clock.time()
        with self._lock:
            return {
                "deviceCodes": [d.to_json() for d in self._device_codes.values() if d.expires_at > now],
                "refreshTokens": {k: dict(v.__dict__) for k, v in self._refresh.items()
                                  if v.expires_at > now},
            }

    def _persist_code(self, dc: DeviceCode) -> int:
        return self._ctx.persist.write({"op": "dc", "code": dc.to_json()})

    def _persist_gone(self, dc: DeviceCode) -> int:
        return self._ctx.persist.write({"op": "dcx", "device_code": dc.device_code})

    def import_state(self, data: dict[str, Any]) -> None:
        with self._lock:
            for raw in data.get("deviceCodes", []):
                dc = DeviceCode(**raw)
                self._device_codes[dc.device_code] = dc
                self._user_codes[dc.user_code] = dc.device_code
            for key, raw in (data.get("refreshTokens") or {}).items():
                self._refresh[key] = RefreshGrant(**raw)

    def reset(self) -> None:
        with self._lock:
            self._device_codes.clear()
            self._user_codes.clear()

    # ------------------------------------------------------------------ routing

    def handle(self, request: Request, segs: list[str]) -> Response:
        """``segs`` starts with the tenant segment (an id, a domain, or organizations/common)."""
        tenant_name = segs[0]
        rest = [s.lower() for s in segs[1:]]
        method = request.method
        try:
            if rest in (["v2.0", ".well-known", "openid-configuration"],
                        [".well-known", "openid-configuration"]):
                request.stat_key = f"{method} /{{tenant}}/{'/'.join(rest)}"
                self._require(method, "GET")
                multi = tenant_name.lower() in MULTI_TENANT
                return self._json(request, 200, openid_configuration(self._ctx.base_url(),
                    None if multi else self._tenant(tenant_name), tenant_name.lower()))
            if rest in (["discovery", "v2.0", "keys"], ["discovery", "keys"]):
                request.stat_key = f"{method} /{{tenant}}/{'/'.join(rest)}"
                self._require(method, "GET")
                if tenant_name.lower() not in MULTI_TENANT:
                    self._tenant(tenant_name)
                return self._json(request, 200, self._tokens.jwks())
            if rest == ["oauth2", "v2.0", "token"]:
                request.stat_key = f"{method} /{{tenant}}/oauth2/v2.0/token"
                self._require(method, "POST")
                self._ctx.stats.bump("token_requests")
                return self._json(request, 200, self._token(request, tenant_name))
            if rest == ["oauth2", "v2.0", "devicecode"]:
                request.stat_key = f"{method} /{{tenant}}/oauth2/v2.0/devicecode"
                self._require(method, "POST")
                return self._json(request, 200, self._devicecode(request, tenant_name))
            if rest == ["oauth2", "v2.0", "authorize"]:
                request.stat_key = f"{method} /{{tenant}}/oauth2/v2.0/authorize"
                raise IdentityError(
                    400, "unsupported_response_type", 70049,
                    "The bulkmeet emulator has no interactive sign-in; use the device-code flow "
                    "(approve codes with POST /_emulator/devicecode/approve).",
                )
        except IdentityError as exc:
            return self._error(request, exc)
        request.stat_key = f"{method} (unknown path)"
        return self._error(request, IdentityError(
            404, "invalid_request", 900561, f"The endpoint {request.path} does not exist."))

    @staticmethod
    def _require(method: str, wanted: str) -> None:
        if method != wanted:
            raise IdentityError(405, "invalid_request", 900561,
                                f"The endpoint only accepts {wanted} requests. Received a {method} request.")

    def _tenant(self, name: str) -> Tenant:
        """A tenant named by id or by one of its domains (``school.example``, ``x.onmicrosoft.com``)."""
        tenant = self._directory.tenant_by_name(name)
        if tenant is None:
            raise tenant_not_found(name)
        return tenant

    def _tenant_and_app(self, name: str, client_id: str) -> tuple[Tenant, App]:
        """For ``organizations``/``common`` the app's own tenant: the user signs in there."""
        if name.lower() not in MULTI_TENANT:
            tenant = self._tenant(name)
            return tenant, self._app(tenant, client_id)
        for tenant in self._directory.tenants:
            app = tenant.app(client_id)
            if app is not None:
                return tenant, app
        raise IdentityError(
            400, "unauthorized_client", 700016,
            f"Application with identifier '{client_id}' was not found in the directory. This can "
            "happen if the application has not been installed by the administrator of the tenant "
            "or consented to by any user in the tenant.")

    def _json(self, request: Request, status: int, payload: dict[str, Any]) -> Response:
        resp = Response(status, json.dumps(payload, separators=(",", ":")).encode(), [
            ("Cache-Control", "no-store, no-cache"),
            ("x-ms-request-id", request.request_id),
            ("client-request-id", request.client_request_id),
        ], content_type="application/json; charset=utf-8")
        return resp

    def _error(self, request: Request, exc: IdentityError) -> Response:
        return self._json(request, exc.status, error_payload(request, exc, self._ctx.clock.time()))

    def issuer(self, tenant: Tenant) -> str:
        return f"{self._ctx.base_url()}/{tenant.id}/v2.0"

    # ------------------------------------------------------------------ token endpoint

    @staticmethod
    def _form(request: Request) -> dict[str, str]:
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError:
            raise IdentityError(400, "invalid_request", 900144,
                                "The request body must be application/x-www-form-urlencoded.") from None
        form: dict[str, str] = {}
        for key, value in parse_qsl(text, keep_blank_values=True):
            form[key] = value
        auth = request.headers.get("authorization", "")
        if auth[:6].lower() == "basic ":  # client_secret_basic
            try:
                user, _, pwd = base64.b64decode(auth[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise IdentityError(401, "invalid_client", 7000215,
                                    "The Authorization header is not valid Basic credentials.") from None
            form.setdefault("client_id", unquote_plus(user))
            form.setdefault("client_secret", unquote_plus(pwd))
        return form

    @staticmethod
    def _param(form: dict[str, str], name: str) -> str:
        value = form.get(name, "").strip()
        if not value:
            raise IdentityError(400, "invalid_request", 900144,
                                f"The request body must contain the following parameter: '{name}'.")
        return value

    def _app(self, tenant: Tenant, client_id: str) -> App:
        app = tenant.app(client_id)
        if app is None:
            raise IdentityError(
                400, "unauthorized_client", 700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{tenant.display_name}'. This can happen if the application has not been "
                "installed by the administrator of the tenant or consented to by any user in the "
                "tenant. You may have sent your authentication request to the wrong tenant.",
            )
        return app

    def _authenticate_client(self, tenant: Tenant, app: App, form: dict[str, str],
                             required: bool) -> str | None:
        """Check the client's secret or certificate assertion; returns appidacr ("1"/"2")."""
        assertion = form.get("client_assertion")
        secret = form.get("client_secret")
        if assertion:
            if form.get("client_assertion_type") != JWT_BEARER:
                raise IdentityError(
                    400, "invalid_request", 50027,
                    f"client_assertion_type must be '{JWT_BEARER}'.")
            base = f"{self._ctx.base_url()}/{tenant.id}/oauth2"
            endpoints = [f"{base}/v2.0/token", f"{base}/token"]
            try:
                # The client signed it by its own clock, which the emulated clock does not move.
                verify_client_assertion(assertion, app, endpoints, time.time())
            except AssertionRejected as exc:
                raise IdentityError(401, "invalid_client", exc.code, str(exc)) from None
            return "2"
        if secret:
            if app.secret is None or not hmac.compare_digest(secret.encode(), app.secret.encode()):
                raise IdentityError(
                    401, "invalid_client", 7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request "
                    "is the client secret value, not the client secret ID, for a secret added to "
                    f"app '{app.client_id}'.",
                )
            if app.secret_expired:
                raise IdentityError(
                    401, "invalid_client", 7000222,
                    f"The provided client secret keys for app '{app.client_id}' are expired. "
                    "Visit the Azure portal to create new keys for your app: "
                    "https://aka.ms/NewClientSecret, or consider using certificate credentials "
                    "for added security: https://aka.ms/certCreds.",
                )
            return "1"
        if required:
            raise IdentityError(
                401, "invalid_client", 7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
            )
        return None

    def _token(self, request: Request, tenant_name: str) -> dict[str, Any]:
        form = self._form(request)
        grant = self._param(form, "grant_type")
        client_id = self._param(form, "client_id")
        multi = tenant_name.lower() in MULTI_TENANT
        if multi and grant == "client_credentials":
            raise IdentityError(
                400, "invalid_request", 50059,
                "No tenant-identifying information found in either the request or implied by any "
                "provided credentials. (An app token needs the tenant id or a domain in the "
                "authority, not organizations or common.)")
        tenant, app = self._tenant_and_app(tenant_name, client_id)
        if grant == "client_credentials":
            return self._client_credentials(tenant, app, form)
        if grant == DEVICE_CODE_GRANT:
            return self._redeem_device_code(tenant, app, form, multi)
        if grant == "refresh_token":
            return self._refresh_token(tenant, app, form, multi)
        raise IdentityError(400, "unsupported_grant_type", 70003,
                            f"The app requested an unsupported grant type '{grant}'.")

    def _client_credentials(self, tenant: Tenant, app: App, form: dict[str, str]) -> dict[str, Any]:
        appidacr = self._authenticate_client(tenant, app, form, required=True)
        scope = self._param(form, "scope").strip()
        resource, _, last = scope.rpartition("/")
        if " " in scope or last != ".default":
            raise IdentityError(
                400, "invalid_scope", 1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows must "
                "have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
            )
        if resource.rstrip("/").lower() not in (GRAPH_RESOURCE, GRAPH_APP_ID):
            raise IdentityError(
                400, "invalid_resource", 500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{tenant.display_name}. The emulator only issues tokens for Microsoft Graph "
                f"({GRAPH_RESOURCE}/.default).",
            )
        lifetime = self._ctx.settings.token_lifetime_s
        token = self._tokens.app_token(tenant, app, lifetime, appidacr=appidacr or "1")
        self._ctx.stats.bump("tokens_issued")
        return {"token_type": "Bearer", "expires_in": int(lifetime),
                "ext_expires_in": int(lifetime), "access_token": token}

    # ------------------------------------------------------------------ delegated

    def _graph_scopes(self, tenant: Tenant, app: App, scope: str) -> list[str]:
        """The Graph scopes asked for, checked against what the app was granted."""
        granted = {s.lower() for s in app.delegated_scopes}
        out: list[str] = []
        for item in scope.split():
            if item.lower() in OIDC_SCOPES:
                continue
            name = item
            for prefix in (GRAPH_RESOURCE + "/", GRAPH_APP_ID + "/"):
                if item.lower().startswith(prefix):
                    name = item[len(prefix):]
                    break
            else:
                if "/" in item or ":" in item:
                    raise IdentityError(
                        400, "invalid_resource", 500011,
                        f"The resource principal named {item.rsplit('/', 1)[0]} was not found in "
                        f"the tenant named {tenant.display_name}.",
                    )
            if name == ".default":
                out.extend(f"{GRAPH_RESOURCE}/{s}" for s in app.delegated_scopes)
                continue
            if name.lower() not in granted:
                raise IdentityError(
                    400, "invalid_grant", 65001,
                    f"The user or administrator has not consented to use the application with ID "
                    f"'{app.client_id}' named '{app.display_name}' for scope '{name}'. Send an "
                    "interactive authorization request for this user and resource.",
                )
            out.append(item)  # echoed as asked, so msal's cache matches the next silent call
        if not out and not app.delegated_scopes:
            raise IdentityError(400, "invalid_scope", 70011,
                                f"The app '{app.client_id}' has no delegated permissions granted.")
        return out

    def _devicecode(self, request: Request, tenant_name: str) -> dict[str, Any]:
        form = self._form(request)
        tenant, app = self._tenant_and_app(tenant_name, self._param(form, "client_id"))
        if not app.public_client:
            raise IdentityError(
                401, "invalid_client", 7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                f"'client_secret'. (App '{app.client_id}' is not a public client: set "
                '"publicClient": true in the emulator directory, like "Allow public client flows" '
                "in Entra ID.)",
            )
        asked = form.get("scope", "")
        scopes = self._graph_scopes(tenant, app, asked)
        interval = self._ctx.settings.device_code_interval_s
        lifetime = self._ctx.settings.device_code_lifetime_s
        with self._lock:
            while True:
                raw = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(9))
                if raw not in self._user_codes:
                    break
            dc = DeviceCode(
                device_code="DAQABIQEAAAD" + secrets.token_urlsafe(96),
                user_code=raw, tenant_id=tenant.id, client_id=app.client_id, scopes=scopes,
                expires_at=self._ctx.clock.time() + lifetime, oidc=_oidc_asked(asked),
            )
            self._device_codes[dc.device_code] = dc
            self._user_codes[dc.user_code] = dc.device_code
            seq = self._persist_code(dc)
        self._ctx.persist.sync(seq)
        uri = f"{self._ctx.base_url()}/devicelogin"
        return {
            "user_code": dc.user_code,
            "device_code": dc.device_code,
            "verification_uri": uri,
            "expires_in": int(lifetime),
            "interval": interval,
            "message": f"To sign in, use a web browser to open the page {uri} and enter the code "
                       f"{dc.user_code} to authenticate.",
        }

    def _pending(self, user_code: str) -> DeviceCode:
        code = user_code.strip().upper().replace("-", "").replace(" ", "")
        dc_key = self._user_codes.get(code)
        dc = self._device_codes.get(dc_key) if dc_key else None
        if dc is None:
            raise LookupError(f"No pending device code '{user_code}' (it may have expired or "
                              "been redeemed already).")
        if dc.expires_at <= self._ctx.clock.time():
            raise LookupError(f"Device code '{user_code}' has expired; start the sign-in again.")
        return dc

    def approve(self, user_code: str, user: str) -> str:
        """Approve a pending code as ``user`` (UPN or object id); returns the user's object id."""
        with self._lock:
            dc = self._pending(user_code)
            tenant = self._directory.tenant(dc.tenant_id)
            who = tenant.find_user(user) if tenant else None
            if who is None:
                raise ValueError(f"User '{user}' is not in tenant {dc.tenant_id}, where the code "
                                 "was issued.")
            dc.approved_user = who.id
            seq = self._persist_code(dc)
        self._ctx.persist.sync(seq)
        return who.id

    def deny(self, user_code: str, error: str) -> None:
        """Make the next poll for this code fail with ``error`` (a person declined, or typed the
        code wrong), so a client's handling of it can be tested."""
        if error not in DENIALS:
            raise ValueError(f"error {error!r} must be one of {', '.join(sorted(DENIALS))}.")
        with self._lock:
            dc = self._pending(user_code)
            dc.denied = error
            seq = self._persist_code(dc)
        self._ctx.persist.sync(seq)

    def _redeem_device_code(self, tenant: Tenant, app: App, form: dict[str, str],
                            multi: bool) -> dict[str, Any]:
        code = self._param(form, "device_code")
        now = self._ctx.clock.time()
        seq = 0
        with self._lock:
            dc = self._device_codes.get(code)
            if dc is None or dc.client_id != app.client_id or (dc.tenant_id != tenant.id and not multi):
                raise IdentityError(400, "bad_verification_code", 70000, DENIALS["bad_verification_code"][1])
            gone = dc.expires_at <= now or dc.denied is not None
            if gone:
                self._device_codes.pop(code, None)
                self._user_codes.pop(dc.user_code, None)
                seq = self._persist_gone(dc)
        self._ctx.persist.sync(seq)
        if gone:
            error = dc.denied or "expired_token"
            raise IdentityError(400, error, *DENIALS[error])
        if dc.approved_user is None:
            raise IdentityError(400, "authorization_pending", 70016,
                                "OAuth 2.0 device flow error. Authorization is pending. "
                                "Continue polling.")
        with self._lock:
            if self._device_codes.pop(code, None) is None:  # a parallel poll redeemed it
                raise IdentityError(400, "bad_verification_code", 70000, DENIALS["bad_verification_code"][1])
            self._user_codes.pop(dc.user_code, None)
            seq = self._persist_gone(dc)
        self._ctx.persist.sync(seq)
        home = self._directory.tenant(dc.tenant_id) or tenant
        return self._user_tokens(home, app, dc.approved_user, dc.scopes, dc.oidc)

    def _refresh_token(self, tenant: Tenant, app: App, form: dict[str, str],
                       multi: bool) -> dict[str, Any]:
        token = self._param(form, "refresh_token")
        if not app.public_client:
            self._authenticate_client(tenant, app, form, required=True)
        with self._lock:
            grant = self._refresh.get(token)
        if grant is None:
            raise IdentityError(400, "invalid_grant", 9002313,
                                "Invalid request. Request is malformed or invalid. (The refresh "
                                "token is unknown to this emulator.)")
        if grant.expires_at <= self._ctx.clock.time():
            raise IdentityError(400, "invalid_grant", 700082,
                                "The refresh token has expired due to inactivity.")
        if grant.client_id != app.client_id or (grant.tenant_id != tenant.id and not multi):
            raise IdentityError(400, "invalid_grant", 70000,
                                "Provided grant is invalid or malformed: the refresh token was "
                                "issued to another client or tenant.")
        home = self._directory.tenant(grant.tenant_id) or tenant
        asked = form.get("scope", "")
        scopes = self._graph_scopes(home, app, asked)
        # A refresh keeps offline access; openid (an id token) only when asked again.
        return self._user_tokens(home, app, grant.user_id, scopes,
                                 sorted({"offline_access", *_oidc_asked(asked)}))

    def _user_tokens(self, tenant: Tenant, app: App, user_id: str, scopes: list[str],
                     oidc: list[str]) -> dict[str, Any]:
        """Access token always; a refresh token only for ``offline_access``, an id token and
        client_info only for ``openid`` -- as the identity platform does."""
        user = tenant.user_by_id(user_id)
        if user is None:
            raise IdentityError(400, "invalid_grant", 50034,
                                f"The user account {user_id} does not exist in the directory.")
        lifetime = self._ctx.settings.token_lifetime_s
        tokens = self._tokens
        access = tokens.user_token(tenant, app, user, app.delegated_scopes, lifetime)
        scope_out = list(dict.fromkeys(scopes + [s for s in ("openid", "profile", "email",
                                                              "offline_access") if s in oidc]))
        out: dict[str, Any] = {
            "token_type": "Bearer", "scope": " ".join(scope_out),
            "expires_in": int(lifetime), "ext_expires_in": int(lifetime),
            "access_token": access,
        }
        if "offline_access" in oidc:
            refresh = "1.AQ" + secrets.token_urlsafe(96)
            grant = RefreshGrant(tenant.id, app.client_id, user.id,
                                 self._ctx.clock.time() + REFRESH_TOKEN_LIFETIME_S)
            with self._lock:
                self._refresh[refresh] = grant
                seq = self._ctx.persist.write({"op": "rt", "token": refresh, "grant": dict(grant.__dict__)})
            self._ctx.persist.sync(seq)
            out["refresh_token"] = refresh
        if "openid" in oidc:
            out["id_token"] = tokens.id_token(tenant, app, user, self.issuer(tenant))
            out["client_info"] = client_info(user, tenant)
        self._ctx.stats.bump("tokens_issued")
        return out


def _oidc_asked(scope: str) -> list[str]:
    return sorted({s.lower() for s in scope.split()} & OIDC_SCOPES)
