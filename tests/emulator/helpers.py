"""What the emulator's conformance tests share: the test directory, a plain HTTPS client, checks.

The tests talk to a running emulator over real HTTPS with plain ``requests`` calls (never
bulkmeet's own Graph client), so they check the emulator against the spec, not against the
client it is meant to test. Test modules import from here; the fixtures that use these live in
``conftest.py`` (which no test imports).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from bulkmeet.emulator import Emulator
from tests.helpers import cert_pem, fixed_id, key_pem, make_key_and_cert, sha1_hex

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
REPO = Path(__file__).resolve().parents[2]


def gid(name: str) -> str:
    """Stable GUIDs, so that xdist workers collect identical test ids."""
    return fixed_id(f"emulator/{name}")


TENANT = gid("tenant")
OTHER_TENANT = gid("other-tenant")
ADA = gid("ada")  # has the app's access policy
ALAN = gid("alan")  # has the app's access policy
GRACE = gid("grace")  # no access policy for APP
FRANCES = gid("frances")  # unlicensed
OTHER_USER = gid("other-user")  # in OTHER_TENANT
UPN = {ADA: "ada@school.example", ALAN: "alan@school.example", GRACE: "grace@school.example",
       FRANCES: "frances@school.example", OTHER_USER: "olga@other.example"}

APP = gid("app")  # secret, roles, policy [ADA, ALAN, FRANCES]
GLOBAL_APP = gid("global-app")  # secret, roles, global policy
NO_POLICY_APP = gid("no-policy-app")  # secret, roles, no policy
NO_ROLES_APP = gid("no-roles-app")  # secret, no roles, global policy
EXPIRED_APP = gid("expired-app")  # secretExpired
CERT_APP = gid("cert-app")  # certificate only
PUBLIC_APP = gid("public-app")  # public client with OnlineMeetings.ReadWrite
READER_APP = gid("reader-app")  # public client with User.Read only
OTHER_APP = gid("other-app")  # in OTHER_TENANT
SECRETS = {APP: "s3cret-app", GLOBAL_APP: "s3cret-global", NO_POLICY_APP: "s3cret-nopolicy",
           NO_ROLES_APP: "s3cret-noroles", EXPIRED_APP: "s3cret-expired", OTHER_APP: "s3cret-other"}
ROLES = ["OnlineMeetings.ReadWrite.All", "User.Read.All"]


# REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE (which requests lets override Session.verify) are removed
# for every test by the root conftest's _clean_env.


@dataclass(frozen=True)
class CertPair:
    key_pem: str
    cert_pem: str
    sha1_hex: str  # lower-case hex


def make_cert(cn: str) -> CertPair:
    key, cert = make_key_and_cert(cn, days=30)
    return CertPair(key_pem=key_pem(key).decode(), cert_pem=cert_pem(cert).decode(),
                    sha1_hex=sha1_hex(cert).lower())


def directory_data(certs: dict[str, CertPair]) -> dict[str, Any]:
    def user(uid: str, **extra: Any) -> dict[str, Any]:
        return {"id": uid, "userPrincipalName": UPN[uid], "displayName": UPN[uid].split("@")[0].title(),
                **extra}

    def app(cid: str, **extra: Any) -> dict[str, Any]:
        out = {"clientId": cid, "displayName": f"app {cid[:8]}", "roles": ROLES}
        if cid in SECRETS:
            out["secret"] = SECRETS[cid]
        out.update(extra)
        return out

    return {"tenants": [
        {"id": TENANT, "displayName": "Test School", "domains": ["contoso.onmicrosoft.com"],
         "users": [user(ADA), user(ALAN), user(GRACE), user(FRANCES, licensed=False)],
         "apps": [
             app(APP, accessPolicy=[ADA, ALAN, FRANCES]),
             app(GLOBAL_APP, accessPolicy="global"),
             app(NO_POLICY_APP),
             {"clientId": NO_ROLES_APP, "secret": SECRETS[NO_ROLES_APP], "accessPolicy": "global"},
             app(EXPIRED_APP, secretExpired=True, accessPolicy="global"),
             app(CERT_APP, certificatePem=[certs["registered"].cert_pem], accessPolicy="global"),
             app(PUBLIC_APP, publicClient=True, roles=[],
                 delegatedScopes=["OnlineMeetings.ReadWrite", "User.Read"]),
             app(READER_APP, publicClient=True, roles=[], delegatedScopes=["User.Read"]),
         ]},
        {"id": OTHER_TENANT, "displayName": "Other School",
         "users": [user(OTHER_USER)],
         "apps": [app(OTHER_APP, accessPolicy="global")]},
    ]}


class Api:
    """Plain HTTPS calls against one emulator; every call names the CA explicitly."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.base = emu.base_url
        self.ca = str(emu.ca_path)
        self.http = requests.Session()
        self.http.trust_env = False
        self._tokens: dict[tuple[str, str], str] = {}

    def request(self, method: str, path: str, *, token: str | None = None,
                headers: dict[str, str] | None = None, **kwargs: Any) -> requests.Response:
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        kwargs.setdefault("timeout", 10)
        return self.http.request(method, self.base + path, headers=hdrs, verify=self.ca, **kwargs)

    def token_response(self, client_id: str, tenant: str = TENANT, **form: str) -> requests.Response:
        data = {"grant_type": "client_credentials", "client_id": client_id, "scope": GRAPH_SCOPE}
        if client_id in SECRETS:
            data["client_secret"] = SECRETS[client_id]
        data.update(form)
        data = {k: v for k, v in data.items() if v is not None}
        return self.request("POST", f"/{tenant}/oauth2/v2.0/token", data=data)

    def app_token(self, client_id: str = APP, tenant: str = TENANT) -> str:
        key = (client_id, tenant)
        if key not in self._tokens:
            r = self.token_response(client_id, tenant)
            assert r.status_code == 200, r.text
            self._tokens[key] = r.json()["access_token"]
        return self._tokens[key]

    def create(self, organizer: str = ADA, body: dict[str, Any] | None = None, *,
               token: str | None = None, version: str = "v1.0", **kwargs: Any) -> requests.Response:
        path = f"/{version}/me" if organizer == "me" else f"/{version}/users/{organizer}"
        body = {"externalId": str(uuid.uuid4()), "subject": "Test"} if body is None else body
        return self.request("POST", f"{path}/onlineMeetings/createOrGet",
                            token=token if token is not None else self.app_token(), json=body,
                            **kwargs)

    def close(self) -> None:
        self.http.close()


def graph_error(r: requests.Response) -> dict[str, Any]:
    """Check Graph's error shape and return the inner error object."""
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert isinstance(err["code"], str) and isinstance(err["message"], str)
    inner = err["innerError"]
    assert inner["request-id"] == r.headers["request-id"]
    assert inner["client-request-id"] == r.headers["client-request-id"]
    assert inner["date"]
    return err


def identity_error(r: requests.Response) -> tuple[str, int]:
    """Check the identity platform's error shape; returns (error, AADSTS code)."""
    body = r.json()
    code = body["error_codes"][0]
    assert body["error_description"].startswith(f"AADSTS{code}: "), body
    return body["error"], code


def spawn(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, dict]:
    ready = tmp_path / "ready.json"
    env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bulkmeet.emulator", "--port", "0", "--ready-file", str(ready), *extra],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"emulator did not start: {out}\n{err}")
        time.sleep(0.02)
    return proc, json.loads(ready.read_text())
