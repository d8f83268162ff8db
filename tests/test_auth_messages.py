"""Identity-platform error responses -> one sentence a person can act on (no network needed).

The responses are shaped as Microsoft Entra sends them (error, error_description with trace and
correlation ids, error_codes); the emulator-backed tests check the same mapping end to end.
"""
from __future__ import annotations

import json
import logging

import pytest

from bulkmeet import auth
from bulkmeet.config import AuthSettings, Config
from bulkmeet.errors import AuthError, ExitStatus

TENANT = "ab124da5-db7b-5a4a-908b-9f2538c5d372"
CLIENT = "210ebc0a-c674-5b7a-866f-c2cc1251ec0a"
CTX = auth.Context(tenant=TENANT, client=CLIENT, authority="https://login.example.com",
                    ca="ca_bundle /etc/ca.pem", login="bulkmeet login --config /etc/b.toml",
                    source="environment variable BULKMEET_CLIENT_SECRET",
                    thumbprint="A1B2C3", cache="/home/ops/.config/bulkmeet/token-cache.json")

TRACE = (" Trace ID: 0e1c7a5e-5ad4-4b49-9b73-1ad2d7a20500 Correlation ID: "
         "51bb2ea1-9a6e-4d3b-a12c-37f4b1e1b2d9 Timestamp: 2026-03-02 07:01:13Z")


def entra(code: int, error: str, text: str) -> dict:
    return {"error": error, "error_description": f"AADSTS{code}: {text}{TRACE}",
            "error_codes": [code], "timestamp": "2026-03-02 07:01:13Z",
            "trace_id": "0e1c7a5e", "correlation_id": "51bb2ea1"}


@pytest.mark.parametrize("code,error,text,musts", [
    (7000215, "invalid_client", "Invalid client secret provided. Ensure the secret being sent in "
     "the request is the client secret value, not the client secret ID.",
     ["secret", "Value, not its Secret ID", "BULKMEET_CLIENT_SECRET"]),
    (7000222, "invalid_client", "The provided client secret keys for app are expired.",
     ["expired", "create a new one"]),
    (90002, "invalid_tenant", "Tenant 'x' not found. Check to make sure you have the correct "
     "tenant ID.", ["Tenant", "not found", "tenant_id", "AZURE_TENANT_ID"]),
    (700016, "unauthorized_client", "Application with identifier 'x' was not found in the "
     "directory 'y'.", ["not found in tenant", "client_id", "admin consent"]),
    (700027, "invalid_client", "The certificate with identifier used to sign the client "
     "assertion is not registered on application.", ["certificate", "A1B2C3", "Certificates & secrets"]),
    (700024, "invalid_client", "Client assertion is not within its valid time range.", ["clock"]),
    (7000218, "invalid_client", "The request body must contain the following parameter: "
     "'client_assertion' or 'client_secret'.", ["Allow public client flows"]),
    (65001, "invalid_grant", "The user or administrator has not consented to use the application.",
     ["admin consent", "API permissions"]),
    (50059, "invalid_request", "No tenant-identifying information found in either the request or "
     "implied by any provided credentials.", ["tenant_id", "Directory (tenant) ID"]),
    (50194, "invalid_request", "Application 'x' is not configured as a multi-tenant application.",
     ["own tenant only", "instead of '" + TENANT + "'", "multi-tenant"]),
    (700082, "invalid_grant", "The refresh token has expired due to inactivity.",
     ["expired or was revoked", "bulkmeet login --config /etc/b.toml", "token-cache.json"]),
    (50076, "invalid_grant", "Due to a configuration change made by your administrator, you must "
     "use multi-factor authentication.", ["MFA", "bulkmeet login --config /etc/b.toml"]),
])
def test_known_codes(code, error, text, musts):
    msg = auth.aad_error_message(entra(code, error, text), CTX)
    assert f"AADSTS{code}" in msg
    for must in musts:
        assert must in msg
    # One sentence, no trace/correlation ids, nothing of the raw description's tail.
    assert "Trace ID" not in msg and "Correlation" not in msg and "0e1c7a5e" not in msg
    assert msg.count("\n") == 0


def test_unknown_code_keeps_code_and_first_sentence_only():
    result = entra(9999999, "invalid_request", "Something odd happened. Second sentence with "
                   "details that go on and on.")
    msg = auth.aad_error_message(result, CTX)
    assert "AADSTS9999999: Something odd happened." in msg
    assert "Second sentence" not in msg and "Trace ID" not in msg
    assert CLIENT in msg and TENANT in msg


def test_long_description_is_cut():
    result = entra(1234567, "invalid_request", "x" * 1000 + ".")
    msg = auth.aad_error_message(result, CTX)
    assert len(msg) < 400 and "…" in msg


def test_code_found_in_description_without_error_codes():
    result = {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret."}
    assert "AADSTS7000215" in auth.aad_error_message(result, CTX)


@pytest.mark.parametrize("error,needle", [
    ("authorization_declined", "declined"),
    ("expired_token", "code expired"),
    ("invalid_grant", "expired or was revoked"),
])
def test_oauth_errors_without_aadsts_code(error, needle):
    msg = auth.aad_error_message({"error": error, "error_description": "whatever"}, CTX)
    assert needle in msg and "bulkmeet login --config /etc/b.toml" in msg


def test_messages_are_auth_errors_with_exit_3():
    err = AuthError(auth.aad_error_message(entra(90002, "invalid_tenant", "Tenant not found."), CTX))
    assert err.exit_status == ExitStatus.AUTH_FAILED == 3


# ---------------------------------------------------------------------------- cache file, offline


def delegated_config(tmp_path, cache) -> Config:
    return Config(path=tmp_path / "b.toml", auth=AuthSettings(
        mode="delegated", tenant_id=TENANT, client_id=CLIENT, token_cache=str(cache),
        authority_host="https://127.0.0.1:9"))


def test_damaged_cache_file(tmp_path):
    cache = tmp_path / "cache.json"
    cache.write_text("{not json")
    cache.chmod(0o600)
    with pytest.raises(AuthError, match="damaged.*bulkmeet login --config"):
        auth.build_token_provider(delegated_config(tmp_path, cache))


def test_loose_cache_mode_is_tightened_before_anything_else(tmp_path, caplog):
    cache = tmp_path / "cache.json"
    cache.write_text(json.dumps({}))
    cache.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="bulkmeet.auth"), \
            pytest.raises(AuthError, match="holds no sign-in"):
        auth.build_token_provider(delegated_config(tmp_path, cache))
    assert cache.stat().st_mode & 0o777 == 0o600
    assert "set it back to 600" in caplog.text


def test_logout_removes_cache(tmp_path):
    cache = tmp_path / "sub" / "cache.json"
    cache.parent.mkdir()
    cache.write_text("{}")
    cfg = delegated_config(tmp_path, "sub/cache.json")  # relative to the config file's folder
    assert auth.logout(cfg) == cache
    assert not cache.exists()
    assert auth.logout(cfg) is None
