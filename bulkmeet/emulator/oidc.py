"""The identity platform's documents and shapes: discovery, errors, the device-login page.

Kept apart from the token logic (``identity.py``) so that what msal reads is in one place.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bulkmeet.emulator.directory import Tenant
from bulkmeet.emulator.httpd import Request

DENIALS = {  # what the admin endpoint can make the next device-code poll answer
    "authorization_declined": (70000, "The end user denied the authorization request."),
    "bad_verification_code": (70000, "The provided value for the input parameter 'device_code' "
                                     "is not valid. The device code was not recognized."),
    "expired_token": (70020, "The provided value for the input parameter 'device_code' is not "
                             "valid. This device code has expired."),
}


class IdentityError(Exception):
    """An error answer of the token/devicecode endpoints, in the platform's shape."""

    def __init__(self, status: int, error: str, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.code = code
        self.message = message


def tenant_not_found(name: str) -> IdentityError:
    return IdentityError(
        400, "invalid_request", 90002,
        f"Tenant '{name}' not found. Check to make sure you have the correct tenant ID and are "
        "signing into the correct cloud. Check with your subscription administrator, this may "
        "happen if there are no active subscriptions for the tenant.",
    )


def error_payload(request: Request, exc: IdentityError, now: float) -> dict[str, Any]:
    """The platform's error body: AADSTS number first in the description, ids to quote."""
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    description = (f"AADSTS{exc.code}: {exc.message} Trace ID: {request.request_id} "
                   f"Correlation ID: {request.client_request_id} Timestamp: {stamp}")
    return {
        "error": exc.error,
        "error_description": description,
        "error_codes": [exc.code],
        "timestamp": stamp,
        "trace_id": request.request_id,
        "correlation_id": request.client_request_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={exc.code}",
    }


def openid_configuration(url: str, tenant: Tenant | None, name: str) -> dict[str, Any]:
    """As Entra ID: a named tenant's endpoints use its id; organizations/common keep the
    name, and their issuer is the ``{tenantid}`` template."""
    base = f"{url}/{tenant.id if tenant else name}"
    issuer = f"{base}/v2.0" if tenant else f"{url}/{{tenantid}}/v2.0"
    return {
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                  "client_secret_basic"],
        "jwks_uri": f"{base}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": issuer,
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{base}/openid/userinfo",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
                             "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat",
                             "auth_time", "acr", "nonce", "preferred_username", "name", "tid",
                             "ver", "at_hash", "c_hash", "email"],
        "tenant_region_scope": "NA",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": url.split("://", 1)[1],
        "rbac_url": "https://pas.windows.net",
    }


def device_login_page(base_url: str) -> bytes:
    """What a person sees at verification_uri: how to approve a code on the emulator."""
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>bulkmeet emulator sign-in</title>"
        "</head><body><h1>bulkmeet emulator: device sign-in</h1>"
        "<p>The emulator has no sign-in page. Approve the code shown by your client with:</p>"
        f"<pre>curl --cacert CA.pem -X POST {base_url}/_emulator/devicecode/approve "
        "-H 'Content-Type: application/json' "
        "-d '{\"user_code\": \"CODE\", \"user\": \"ada.lovelace@school.example\"}'</pre>"
        "</body></html>"
    ).encode()

