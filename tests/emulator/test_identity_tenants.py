"""Tenants by domain and organizations; device-code denials; refresh/id tokens only when asked.

Driven by plain requests and by the real msal library (as bulkmeet signs in).
"""
from __future__ import annotations

import threading

import msal
import pytest

from tests.emulator.helpers import ADA, APP, GRAPH_SCOPE, PUBLIC_APP, TENANT, UPN, identity_error

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
MEETINGS = "https://graph.microsoft.com/OnlineMeetings.ReadWrite"


def device_flow(api, tenant: str = TENANT, scope: str = MEETINGS) -> dict:
    r = api.request("POST", f"/{tenant}/oauth2/v2.0/devicecode",
                    data={"client_id": PUBLIC_APP, "scope": scope})
    assert r.status_code == 200, r.text
    return r.json()


def poll(api, flow: dict, tenant: str = TENANT):
    return api.request("POST", f"/{tenant}/oauth2/v2.0/token", data={
        "grant_type": DEVICE_GRANT, "client_id": PUBLIC_APP, "device_code": flow["device_code"]})


@pytest.mark.parametrize("name", ["school.example", "contoso.onmicrosoft.com", "CONTOSO.onmicrosoft.com"])
def test_a_tenant_is_found_by_its_domain(api, name):
    conf = api.request("GET", f"/{name}/v2.0/.well-known/openid-configuration").json()
    assert conf["token_endpoint"].endswith(f"/{TENANT}/oauth2/v2.0/token")  # as Entra ID: the id
    r = api.token_response(APP, tenant=name)
    assert r.status_code == 200, r.text
    assert api.create(ADA, token=r.json()["access_token"]).status_code == 201
    assert identity_error(api.token_response(APP, tenant="nowhere.example"))[1] == 90002


def test_organizations_discovery_and_its_limits(api):
    conf = api.request("GET", "/organizations/v2.0/.well-known/openid-configuration").json()
    assert conf["issuer"].endswith("/{tenantid}/v2.0")
    assert conf["device_authorization_endpoint"].endswith("/organizations/oauth2/v2.0/devicecode")
    # An app token needs a tenant.
    r = api.token_response(APP, tenant="organizations")
    assert r.status_code == 400 and identity_error(r) == ("invalid_request", 50059)


def test_msal_device_flow_through_organizations_with_msals_default_scopes(emu, api):
    """msal asks for openid, profile and offline_access by itself: it gets an account (id token)
    and a refresh token, as bulkmeet's delegated sign-in needs."""
    pca = msal.PublicClientApplication(PUBLIC_APP, authority=f"{emu.base_url}/organizations",
                                       instance_discovery=False, verify=str(emu.ca_path))
    flow = pca.initiate_device_flow(scopes=[MEETINGS])
    assert "user_code" in flow, flow
    approver = threading.Timer(0.2, emu.approve_device_code, args=(flow["user_code"], UPN[ADA]))
    approver.start()
    result = pca.acquire_token_by_device_flow(flow)
    approver.join()
    assert "access_token" in result and "refresh_token" in result, result.get("error_description")
    accounts = pca.get_accounts()
    assert [a["username"] for a in accounts] == [UPN[ADA]]
    assert accounts[0]["home_account_id"] == f"{ADA}.{TENANT}"  # the user's home tenant
    silent = pca.acquire_token_silent([MEETINGS], account=accounts[0], force_refresh=True)
    assert silent and "access_token" in silent, silent
    assert api.create("me", token=silent["access_token"]).status_code == 201


def test_refresh_and_id_tokens_only_when_asked_for(emu, api):
    plain = device_flow(api, scope=MEETINGS)
    emu.approve_device_code(plain["user_code"], UPN[ADA])
    body = poll(api, plain).json()
    assert "access_token" in body
    assert not {"refresh_token", "id_token", "client_info"} & set(body)
    assert body["scope"] == MEETINGS

    offline = device_flow(api, scope=f"{MEETINGS} offline_access")
    emu.approve_device_code(offline["user_code"], UPN[ADA])
    body = poll(api, offline).json()
    assert "refresh_token" in body and "id_token" not in body

    oidc = device_flow(api, scope=f"{MEETINGS} openid profile")
    emu.approve_device_code(oidc["user_code"], UPN[ADA])
    body = poll(api, oidc).json()
    assert "id_token" in body and "client_info" in body and "refresh_token" not in body
    assert set(body["scope"].split()) == {MEETINGS, "openid", "profile"}


@pytest.mark.parametrize("error", ["authorization_declined", "bad_verification_code", "expired_token"])
def test_device_code_denials_are_reachable_through_the_admin_endpoint(api, error):
    flow = device_flow(api)
    r = api.request("POST", "/_emulator/devicecode/deny", json={"user_code": flow["user_code"], "error": error})
    assert r.status_code == 200, r.text
    r = poll(api, flow)
    assert r.status_code == 400 and identity_error(r)[0] == error
    # The code is gone afterwards: approving it is an admin 404.
    r = api.request("POST", "/_emulator/devicecode/approve", json={"user_code": flow["user_code"], "user": UPN[ADA]})
    assert r.status_code == 404


def test_msal_reports_a_declined_sign_in(emu, api):
    pca = msal.PublicClientApplication(PUBLIC_APP, authority=f"{emu.base_url}/{TENANT}",
                                       instance_discovery=False, verify=str(emu.ca_path))
    flow = pca.initiate_device_flow(scopes=[MEETINGS])
    denier = threading.Timer(0.2, emu.deny_device_code, args=(flow["user_code"], "authorization_declined"))
    denier.start()
    result = pca.acquire_token_by_device_flow(flow)
    denier.join()
    assert result.get("error") == "authorization_declined"


def test_deny_endpoint_checks_its_input(api):
    flow = device_flow(api)
    assert api.request("POST", "/_emulator/devicecode/deny",
                       json={"user_code": flow["user_code"], "error": "nope"}).status_code == 400
    assert api.request("POST", "/_emulator/devicecode/deny",
                       json={"user_code": "NOPE", "error": "authorization_declined"}).status_code == 404
    assert api.request("POST", "/_emulator/devicecode/deny", json={}).status_code == 400


def test_client_credentials_by_domain_with_msal(emu):
    cca = msal.ConfidentialClientApplication(
        APP, client_credential="s3cret-app", authority=f"{emu.base_url}/contoso.onmicrosoft.com",
        instance_discovery=False, verify=str(emu.ca_path))
    result = cca.acquire_token_for_client([GRAPH_SCOPE])
    assert "access_token" in result, result.get("error_description")
