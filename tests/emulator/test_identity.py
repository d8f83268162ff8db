"""Identity platform v2.0 endpoints: discovery, client credentials, device code, refresh.

Certificate assertions and the device-code flow are driven by the real msal library, because
"msal works against it" is the property the rest of bulkmeet relies on.
"""
from __future__ import annotations

import base64
import threading
import time

import jwt
import msal
import pytest

from tests.emulator.helpers import (
    ADA,
    APP,
    CERT_APP,
    EXPIRED_APP,
    GRAPH_SCOPE,
    OTHER_TENANT,
    PUBLIC_APP,
    READER_APP,
    TENANT,
    UPN,
    CertPair,
    gid,
    identity_error,
)

MEETINGS_SCOPE = ["https://graph.microsoft.com/OnlineMeetings.ReadWrite"]


def verified_claims(api, token: str) -> dict:
    """Verify a token the way a resource server would: against the published JWKS."""
    jwks = api.request("GET", f"/{TENANT}/discovery/v2.0/keys").json()
    key = jwt.PyJWK(jwks["keys"][0]).key
    return jwt.decode(token, key, algorithms=["RS256"], audience="https://graph.microsoft.com")


def msal_kwargs(emu, tenant: str = TENANT) -> dict:
    return {"authority": f"{emu.base_url}/{tenant}", "instance_discovery": False,
            "verify": str(emu.ca_path)}


# --------------------------------------------------------------------------- discovery


def test_openid_configuration_has_the_endpoints_msal_reads(api, emu):
    r = api.request("GET", f"/{TENANT}/v2.0/.well-known/openid-configuration")
    assert r.status_code == 200
    cfg = r.json()
    base = f"{emu.base_url}/{TENANT}"
    assert cfg["token_endpoint"] == f"{base}/oauth2/v2.0/token"
    assert cfg["device_authorization_endpoint"] == f"{base}/oauth2/v2.0/devicecode"
    assert cfg["authorization_endpoint"] == f"{base}/oauth2/v2.0/authorize"
    assert cfg["jwks_uri"] == f"{base}/discovery/v2.0/keys"
    assert cfg["issuer"] == f"{base}/v2.0"
    keys = api.request("GET", f"/{TENANT}/discovery/v2.0/keys").json()["keys"]
    assert keys and keys[0]["kty"] == "RSA" and keys[0]["kid"]


def test_unknown_tenant_is_aadsts90002_on_discovery_and_token(api):
    r = api.request("GET", f"/{gid('nowhere')}/v2.0/.well-known/openid-configuration")
    assert r.status_code == 400
    assert identity_error(r)[1] == 90002
    r = api.token_response(APP, tenant=gid("nowhere"))
    assert r.status_code == 400 and identity_error(r) == ("invalid_request", 90002)


# --------------------------------------------------------------------------- client credentials


def test_client_secret_token_has_graph_claims_and_verifies_against_jwks(api):
    r = api.token_response(APP)
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] >= 3600
    claims = verified_claims(api, body["access_token"])
    assert claims["aud"] == "https://graph.microsoft.com"
    assert claims["iss"] == f"https://sts.windows.net/{TENANT}/"
    assert claims["tid"] == TENANT and claims["appid"] == APP
    assert claims["exp"] >= time.time() + 3500
    assert sorted(claims["roles"]) == ["OnlineMeetings.ReadWrite.All", "User.Read.All"]
    assert "scp" not in claims


def test_wrong_secret_is_invalid_client_7000215(api):
    r = api.token_response(APP, client_secret="not-the-secret")
    assert r.status_code == 401
    assert identity_error(r) == ("invalid_client", 7000215)
    assert "not-the-secret" not in r.text  # secrets are never echoed


def test_expired_secret_is_7000222(api):
    r = api.token_response(EXPIRED_APP)
    assert r.status_code == 401 and identity_error(r) == ("invalid_client", 7000222)


def test_unknown_client_is_700016(api):
    r = api.token_response(gid("stranger-app"), client_secret="x")
    assert r.status_code == 400 and identity_error(r) == ("unauthorized_client", 700016)


def test_app_of_another_tenant_is_unknown_here(api):
    r = api.token_response(APP, tenant=OTHER_TENANT)
    assert identity_error(r)[1] == 700016


def test_missing_credentials_and_non_default_scope_are_refused(api):
    r = api.token_response(CERT_APP)  # no secret, no assertion
    assert r.status_code == 401 and identity_error(r) == ("invalid_client", 7000218)
    r = api.token_response(APP, scope="https://graph.microsoft.com/User.Read")
    assert identity_error(r) == ("invalid_scope", 1002012)
    r = api.token_response(APP, scope="https://management.azure.com/.default")
    assert identity_error(r) == ("invalid_resource", 500011)


def test_msal_client_secret(emu):
    cca = msal.ConfidentialClientApplication(APP, client_credential="s3cret-app", **msal_kwargs(emu))
    result = cca.acquire_token_for_client([GRAPH_SCOPE])
    assert "access_token" in result, result
    bad = msal.ConfidentialClientApplication(APP, client_credential="wrong", **msal_kwargs(emu))
    result = bad.acquire_token_for_client([GRAPH_SCOPE])
    assert result["error"] == "invalid_client" and 7000215 in result["error_codes"]


def _credential(cert: CertPair, form: str) -> dict[str, str]:
    """msal's two certificate forms: by SHA-1 thumbprint (RS256) or with the certificate (PS256)."""
    if form == "thumbprint-rs256":
        return {"private_key": cert.key_pem, "thumbprint": cert.sha1_hex}
    return {"private_key": cert.key_pem, "public_certificate": cert.cert_pem}


@pytest.mark.parametrize("form", ["thumbprint-rs256", "public-certificate-ps256"])
def test_msal_certificate_assertion(emu, api, certs, form):
    cert = certs["registered"]
    cca = msal.ConfidentialClientApplication(CERT_APP, client_credential=_credential(cert, form),
                                             **msal_kwargs(emu))
    result = cca.acquire_token_for_client([GRAPH_SCOPE])
    assert "access_token" in result, result.get("error_description")
    claims = verified_claims(api, result["access_token"])
    assert claims["appid"] == CERT_APP and claims["appidacr"] == "2"
    assert api.create(ADA, token=result["access_token"]).status_code == 201


@pytest.mark.parametrize("form", ["thumbprint-rs256", "public-certificate-ps256"])
def test_assertion_signed_by_an_unregistered_certificate_is_700027(emu, certs, form):
    stranger = certs["stranger"]
    cca = msal.ConfidentialClientApplication(CERT_APP, client_credential=_credential(stranger, form),
                                             **msal_kwargs(emu))
    result = cca.acquire_token_for_client([GRAPH_SCOPE])
    assert result["error"] == "invalid_client" and 700027 in result["error_codes"]


def test_assertion_with_registered_thumbprint_but_wrong_key_fails_signature(api, certs):
    """Naming the registered certificate is not enough: the signature must verify with it."""
    registered, stranger = certs["registered"], certs["stranger"]
    x5t = base64.urlsafe_b64encode(bytes.fromhex(registered.sha1_hex)).decode()
    assertion = jwt.encode(
        {"aud": f"{api.base}/{TENANT}/oauth2/v2.0/token", "iss": CERT_APP, "sub": CERT_APP,
         "exp": int(time.time()) + 600, "jti": gid("jti")},
        stranger.key_pem, algorithm="RS256", headers={"x5t": x5t})
    r = api.token_response(CERT_APP, client_assertion=assertion,
                           client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    assert r.status_code == 401 and identity_error(r) == ("invalid_client", 700027)


def test_assertion_for_another_audience_is_refused(api, certs):
    cert = certs["registered"]
    x5t = base64.urlsafe_b64encode(bytes.fromhex(cert.sha1_hex)).decode()
    assertion = jwt.encode(
        {"aud": "https://login.example/other/oauth2/v2.0/token", "iss": CERT_APP, "sub": CERT_APP,
         "exp": int(time.time()) + 600},
        cert.key_pem, algorithm="RS256", headers={"x5t": x5t})
    r = api.token_response(CERT_APP, client_assertion=assertion,
                           client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    assert r.status_code == 401 and identity_error(r)[0] == "invalid_client"


# --------------------------------------------------------------------------- device code


def start_device_flow(api, client_id: str = PUBLIC_APP,
                      scope: str = "https://graph.microsoft.com/OnlineMeetings.ReadWrite offline_access openid profile"):
    return api.request("POST", f"/{TENANT}/oauth2/v2.0/devicecode",
                       data={"client_id": client_id, "scope": scope})


def test_device_code_flow_over_plain_http(api):
    r = start_device_flow(api)
    assert r.status_code == 200
    flow = r.json()
    assert {"user_code", "device_code", "verification_uri", "expires_in", "interval", "message"} <= set(flow)
    poll = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "client_id": PUBLIC_APP,
            "device_code": flow["device_code"]}
    r = api.request("POST", f"/{TENANT}/oauth2/v2.0/token", data=poll)
    assert r.status_code == 400 and identity_error(r) == ("authorization_pending", 70016)

    r = api.request("POST", "/_emulator/devicecode/approve",
                    json={"user_code": flow["user_code"], "user": UPN[ADA]})
    assert r.status_code == 200

    r = api.request("POST", f"/{TENANT}/oauth2/v2.0/token", data=poll)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {"access_token", "refresh_token", "id_token", "client_info"} <= set(body)
    claims = verified_claims(api, body["access_token"])
    assert claims["oid"] == ADA and claims["upn"] == UPN[ADA] and claims["tid"] == TENANT
    assert "OnlineMeetings.ReadWrite" in claims["scp"].split() and "roles" not in claims
    # A redeemed code cannot be used twice.
    r = api.request("POST", f"/{TENANT}/oauth2/v2.0/token", data=poll)
    assert identity_error(r) == ("bad_verification_code", 70000)


def test_device_code_for_a_confidential_app_is_refused(api):
    r = start_device_flow(api, client_id=APP)
    assert r.status_code == 401 and identity_error(r) == ("invalid_client", 7000218)


def test_device_code_for_a_scope_not_granted_is_refused(api):
    r = start_device_flow(api, client_id=READER_APP)
    assert identity_error(r) == ("invalid_grant", 65001)


def test_approving_an_unknown_code_or_user_is_an_admin_error(api):
    r = api.request("POST", "/_emulator/devicecode/approve", json={"user_code": "NOPE", "user": UPN[ADA]})
    assert r.status_code == 404
    code = start_device_flow(api).json()["user_code"]
    r = api.request("POST", "/_emulator/devicecode/approve",
                    json={"user_code": code, "user": "nobody@school.example"})
    assert r.status_code == 400 and "nobody@school.example" in r.json()["error"]


def test_msal_device_flow_then_silent_refresh(emu, api):
    pca = msal.PublicClientApplication(PUBLIC_APP, **msal_kwargs(emu))
    flow = pca.initiate_device_flow(scopes=MEETINGS_SCOPE)
    assert "user_code" in flow, flow
    # Approve while msal is polling, as a person would: msal first sees authorization_pending.
    approver = threading.Timer(0.3, emu.approve_device_code, args=(flow["user_code"], UPN[ADA]))
    approver.start()
    result = pca.acquire_token_by_device_flow(flow)
    approver.join()
    assert "access_token" in result, result.get("error_description")
    accounts = pca.get_accounts()
    assert [a["username"] for a in accounts] == [UPN[ADA]]
    before = emu.stats()["token_requests"]
    silent = pca.acquire_token_silent(MEETINGS_SCOPE, account=accounts[0], force_refresh=True)
    assert silent and "access_token" in silent, silent
    assert silent["access_token"] != result["access_token"]
    assert emu.stats()["token_requests"] == before + 1  # one refresh_token grant
    r = api.create("me", token=silent["access_token"])
    assert r.status_code == 201
    assert r.json()["participants"]["organizer"]["identity"]["user"]["id"] == ADA


def test_bad_refresh_token_is_invalid_grant(api):
    r = api.request("POST", f"/{TENANT}/oauth2/v2.0/token", data={
        "grant_type": "refresh_token", "client_id": PUBLIC_APP, "refresh_token": "1.AQnot-a-token",
        "scope": "https://graph.microsoft.com/OnlineMeetings.ReadWrite"})
    assert r.status_code == 400 and identity_error(r)[0] == "invalid_grant"


def test_identity_errors_echo_the_correlation_id(api):
    r = api.request(
        "POST", f"/{TENANT}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "client_id": APP, "client_secret": "wrong",
              "scope": GRAPH_SCOPE},
        headers={"client-request-id": gid("corr")})
    assert r.json()["correlation_id"] == gid("corr")
    assert r.headers["client-request-id"] == gid("corr")


def test_token_lifetime_is_configurable(emu, api):
    emu.configure(token_lifetime_s=120)
    try:
        r = api.token_response(APP)
        claims = verified_claims(api, r.json()["access_token"])
        assert r.json()["expires_in"] == 120 and claims["exp"] - claims["iat"] == 120
    finally:
        emu.configure(token_lifetime_s=3600)


def test_expired_device_code_is_expired_token(emu, api):
    emu.configure(device_code_lifetime_s=0)
    try:
        flow = start_device_flow(api).json()
    finally:
        emu.configure(device_code_lifetime_s=900)
    r = api.request("POST", f"/{TENANT}/oauth2/v2.0/token", data={
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code", "client_id": PUBLIC_APP,
        "device_code": flow["device_code"]})
    assert r.status_code == 400 and identity_error(r) == ("expired_token", 70020)
    r = api.request("POST", "/_emulator/devicecode/approve",
                    json={"user_code": flow["user_code"], "user": UPN[ADA]})
    assert r.status_code == 404  # gone once expired
