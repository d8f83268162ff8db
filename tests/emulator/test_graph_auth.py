"""Authorization as strict as Graph's: 401, 403, the access policy, 404 for UPNs and strangers."""
from __future__ import annotations

import time

import jwt
import msal
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.emulator.conftest import (
    ADA,
    ALAN,
    APP,
    FRANCES,
    GLOBAL_APP,
    GRACE,
    NO_POLICY_APP,
    NO_ROLES_APP,
    OTHER_APP,
    OTHER_TENANT,
    OTHER_USER,
    PUBLIC_APP,
    READER_APP,
    TENANT,
    UPN,
    gid,
    graph_error,
)


def expect(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    err = graph_error(r)
    assert err["code"] == code, err
    return err


# --------------------------------------------------------------------------- 401


def test_missing_token_is_401(api):
    r = api.request("POST", f"/v1.0/users/{ADA}/onlineMeetings/createOrGet", json={"externalId": "x"})
    expect(r, 401, "InvalidAuthenticationToken")
    assert "Bearer" in r.headers["WWW-Authenticate"]


def test_expired_token_is_401(api, emu):
    token = emu.issue_access_token(tenant_id=TENANT, client_id=APP, lifetime_s=-60)
    expect(api.create(ADA, token=token), 401, "InvalidAuthenticationToken")


def test_token_expiring_after_first_use_is_refused_once_expired(api, emu):
    """Verified tokens are cached for speed, but the cache must not outlive the token."""
    token = emu.issue_access_token(tenant_id=TENANT, client_id=APP, lifetime_s=1)
    first = api.create(ADA, token=token)
    assert first.status_code == 201
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    time.sleep(max(0.0, exp - time.time()) + 0.05)
    expect(api.create(ADA, token=token), 401, "InvalidAuthenticationToken")


def test_tampered_signature_is_401(api):
    token = api.app_token()
    head, payload, sig = token.split(".")
    forged = ".".join([head, payload, sig[:-4] + ("AAAA" if not sig.endswith("AAAA") else "BBBB")])
    expect(api.create(ADA, token=forged), 401, "InvalidAuthenticationToken")


def test_token_signed_by_someone_else_is_401(api):
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    real = jwt.decode(api.app_token(), options={"verify_signature": False})
    header = jwt.get_unverified_header(api.app_token())
    forged = jwt.encode(real, other_key, algorithm="RS256", headers={"kid": header["kid"]})
    expect(api.create(ADA, token=forged), 401, "InvalidAuthenticationToken")


def test_wrong_audience_is_401(api, emu):
    token = emu.issue_access_token(tenant_id=TENANT, client_id=APP, audience="https://outlook.office.com")
    err = expect(api.create(ADA, token=token), 401, "InvalidAuthenticationToken")
    assert "audience" in err["message"].lower()


def test_graph_app_id_audience_is_accepted(api, emu):
    token = emu.issue_access_token(tenant_id=TENANT, client_id=APP,
                                   audience="00000003-0000-0000-c000-000000000000")
    assert api.create(ADA, token=token).status_code == 201


def test_garbage_token_is_401(api):
    expect(api.create(ADA, token="not-a-jwt"), 401, "InvalidAuthenticationToken")


# --------------------------------------------------------------------------- 403


def test_app_without_the_role_is_403(api):
    expect(api.create(ADA, token=api.app_token(NO_ROLES_APP)), 403, "Forbidden")


def test_no_application_access_policy_is_403_with_graphs_message(api):
    err = expect(api.create(ADA, token=api.app_token(NO_POLICY_APP)), 403, "Forbidden")
    assert err["message"] == "No application access policy found for this app."
    # A policy granted to some users only: others get the same 403.
    err = expect(api.create(GRACE, token=api.app_token(APP)), 403, "Forbidden")
    assert err["message"] == "No application access policy found for this app."
    # A global policy covers everyone.
    assert api.create(GRACE, token=api.app_token(GLOBAL_APP)).status_code == 201


def delegated_token(emu, client_id: str, user: str) -> str:
    return emu.issue_access_token(tenant_id=TENANT, client_id=client_id, user=user)


def test_delegated_token_without_the_scope_is_403(api, emu):
    token = delegated_token(emu, READER_APP, UPN[ADA])
    expect(api.create("me", token=token), 403, "Forbidden")


def test_delegated_token_for_another_user_is_403(api, emu):
    token = delegated_token(emu, PUBLIC_APP, UPN[ADA])
    expect(api.create(ALAN, token=token), 403, "Forbidden")
    assert api.create(ADA, token=token).status_code == 201  # own id in /users/{id} is fine


def test_delegated_token_needs_no_access_policy(api, emu):
    token = delegated_token(emu, PUBLIC_APP, UPN[GRACE])
    r = api.create("me", token=token)
    assert r.status_code == 201
    assert r.json()["participants"]["organizer"]["upn"] == UPN[GRACE]


# --------------------------------------------------------------------------- 400 /me, 404 users


def test_me_with_an_app_token_is_400(api):
    expect(api.create("me"), 400, "BadRequest")


def test_unknown_user_is_404(api):
    expect(api.create(gid("nobody"), token=api.app_token(GLOBAL_APP)), 404, "NotFound")


def test_upn_in_place_of_the_object_id_is_404(api):
    err = expect(api.create(UPN[ADA]), 404, "NotFound")
    assert "object ID" in err["message"]  # the emulator says what to do about it


def test_unlicensed_organizer_is_404(api):
    expect(api.create(FRANCES), 404, "NotFound")


def test_user_of_another_tenant_is_404(api):
    expect(api.create(OTHER_USER, token=api.app_token(GLOBAL_APP)), 404, "NotFound")
    # ...and that tenant's own app works there.
    token = api.app_token(OTHER_APP, tenant=OTHER_TENANT)
    assert api.create(OTHER_USER, token=token).status_code == 201


# --------------------------------------------------------------------------- GET /users


def test_get_user_by_upn_with_select_id(api):
    r = api.request("GET", f"/v1.0/users/{UPN[ADA]}?$select=id", token=api.app_token())
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == ADA and set(body) == {"@odata.context", "id"}
    assert body["@odata.context"].endswith("#users(id)/$entity")


def test_get_user_by_id_full_and_case_insensitive_upn(api):
    r = api.request("GET", f"/v1.0/users/{ADA}", token=api.app_token())
    assert r.status_code == 200 and r.json()["userPrincipalName"] == UPN[ADA]
    r = api.request("GET", f"/v1.0/users/{UPN[ADA].upper()}", token=api.app_token(),
                    params={"$select": "id,userPrincipalName"})
    assert r.json()["id"] == ADA and r.json()["userPrincipalName"] == UPN[ADA]


def test_get_user_errors(api):
    expect(api.request("GET", "/v1.0/users/nobody@school.example", token=api.app_token()),
           404, "Request_ResourceNotFound")
    expect(api.request("GET", f"/v1.0/users/{ADA}?$select=shoeSize", token=api.app_token()),
           400, "BadRequest")
    # Needs User.Read.All with an app token.
    r = api.request("GET", f"/v1.0/users/{UPN[ADA]}", token=api.app_token(NO_ROLES_APP))
    assert r.status_code == 403


def test_get_user_with_any_delegated_token(api, emu):
    token = delegated_token(emu, READER_APP, UPN[ALAN])
    r = api.request("GET", f"/v1.0/users/{UPN[ADA]}?$select=id", token=token)
    assert r.status_code == 200 and r.json()["id"] == ADA
    me = api.request("GET", "/v1.0/me", token=token)
    assert me.status_code == 200 and me.json()["id"] == ALAN


def test_real_msal_token_works_on_graph(api, emu):
    cca = msal.ConfidentialClientApplication(
        GLOBAL_APP, client_credential="s3cret-global", authority=f"{emu.base_url}/{TENANT}",
        instance_discovery=False, verify=str(emu.ca_path))
    token = cca.acquire_token_for_client(["https://graph.microsoft.com/.default"])["access_token"]
    assert api.create(GRACE, token=token).status_code == 201
