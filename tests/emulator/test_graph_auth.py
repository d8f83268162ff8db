"""Authorization as strict as Graph's: 401, 403, the access policy, 404 for UPNs and strangers."""
from __future__ import annotations

import jwt
import msal
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from bulkmeet.emulator import Emulator, EmulatorOptions
from tests.emulator.helpers import (
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
    Api,
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
    """Verified tokens are cached for speed, but the cache must not outlive the token. The
    emulator's clock is advanced over HTTPS instead of sleeping."""
    token = emu.issue_access_token(tenant_id=TENANT, client_id=APP, lifetime_s=30)
    first = api.create(ADA, token=token)
    assert first.status_code == 201
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 30
    r = api.request("POST", "/_emulator/clock", json={"advance": 29})
    assert r.status_code == 200
    assert api.create(ADA, token=token).status_code == 201  # 1 s left
    api.request("POST", "/_emulator/clock", json={"advance": 1})
    err = expect(api.create(ADA, token=token), 401, "InvalidAuthenticationToken")
    assert "expired" in err["message"]
    # Tokens issued now carry the emulator's time, so they are valid from its point of view.
    fresh = emu.issue_access_token(tenant_id=TENANT, client_id=APP, lifetime_s=30)
    assert api.create(ADA, token=fresh).status_code == 201


def test_clock_endpoint_refuses_going_back_and_junk(api):
    for body in ({"advance": -1}, {"advance": "soon"}, {}, {"advance": 1, "x": 2}):
        assert api.request("POST", "/_emulator/clock", json=body).status_code == 400


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


def test_no_application_access_policy_is_403_forbidden_or_general(api):
    """Both codes are seen in the wild; by default the emulator mixes them (seeded)."""
    codes = set()
    for _ in range(20):
        r = api.create(ADA, token=api.app_token(NO_POLICY_APP))
        assert r.status_code == 403
        err = graph_error(r)
        assert err["message"] == "No application access policy found for this app."
        codes.add(err["code"])
    assert codes == {"Forbidden", "General"}
    # A policy granted to some users only: others get the same 403.
    r = api.create(GRACE, token=api.app_token(APP))
    assert r.status_code == 403 and graph_error(r)["code"] in ("Forbidden", "General")
    # A global policy covers everyone.
    assert api.create(GRACE, token=api.app_token(GLOBAL_APP)).status_code == 201


@pytest.mark.parametrize("code", ["Forbidden", "General"])
def test_policy_error_code_can_be_fixed(directory_file, code):
    with Emulator(EmulatorOptions(directory=directory_file, policy_error_code=code)) as emu:
        api = Api(emu)
        for _ in range(3):
            expect(api.create(ADA, token=api.app_token(NO_POLICY_APP)), 403, code)
        api.close()


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


def test_upn_in_place_of_the_object_id_is_404_unknown_error_without_message(api):
    err = expect(api.create(UPN[ADA]), 404, "UnknownError")
    assert err["message"] == ""  # as reported from real tenants


def test_default_messages_are_as_terse_as_graphs(api):
    """So that no bulkmeet sentence can come to depend on the emulator's wording."""
    assert expect(api.create(gid("nobody"), token=api.app_token(GLOBAL_APP)), 404,
                  "NotFound")["message"] == "An error has occurred."
    assert expect(api.create(FRANCES), 404, "NotFound")["message"] == "1026: An error has occurred."
    assert expect(api.create(ADA, token=api.app_token(NO_ROLES_APP)), 403,
                  "Forbidden")["message"] == "An error has occurred."
    bad = api.create(ADA, {"externalId": "x", "endDateTime": "2030-01-01T10:00:00Z"})
    assert expect(bad, 400, "BadRequest")["message"] == "An error has occurred."


def test_helpful_errors_explain(directory_file):
    with Emulator(EmulatorOptions(directory=directory_file, helpful_errors=True)) as emu:
        api = Api(emu)
        assert "object ID" in expect(api.create(UPN[ADA]), 404, "UnknownError")["message"]
        assert "Teams license" in expect(api.create(FRANCES), 404, "NotFound")["message"]
        bad = api.create(ADA, {"externalId": "x", "endDateTime": "2030-01-01T10:00:00Z"})
        assert "without startDateTime" in expect(bad, 400, "BadRequest")["message"]
        api.close()


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
