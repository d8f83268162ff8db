"""The directory file: the demo matches samples/, and mistakes are reported by file and entry."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bulkmeet.emulator import DEMO_DIRECTORY, DirectoryError, Emulator, EmulatorOptions, load_directory
from tests.emulator.helpers import CertPair

REPO = Path(__file__).resolve().parents[2]


def test_builtin_demo_directory_matches_samples():
    assert json.loads(DEMO_DIRECTORY.read_text()) == json.loads((REPO / "samples/directory.json").read_text())
    demo = load_directory(None)
    tenant = demo.tenants[0]
    app = tenant.apps[0]
    assert app.public_client and "OnlineMeetings.ReadWrite" in app.delegated_scopes
    assert any(not u.licensed for u in tenant.users)
    assert all(app.policy_allows(uid) for uid in app.access_policy)  # type: ignore[union-attr]


def write(tmp_path: Path, data) -> Path:
    path = tmp_path / "dir.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def tenant(**overrides):
    base = {"id": "T1", "users": [{"id": "U1", "userPrincipalName": "u1@x.example"}],
            "apps": [{"clientId": "A1", "secret": "s"}]}
    base.update(overrides)
    return {"tenants": [base]}


@pytest.mark.parametrize("data, fragment", [
    ("{nope", "not valid JSON"),
    ({"tenants": []}, "at least one tenant"),
    (tenant(users=[{"userPrincipalName": "x@y.example"}]), "'id' is required"),
    (tenant(users=[{"id": "U1", "userPrincipalName": "no-at-sign"}]), "name@domain"),
    (tenant(users=[{"id": "U1", "userPrincipalName": "a@x.example"},
                   {"id": "u1", "userPrincipalName": "b@x.example"}]), "appears twice"),
    (tenant(apps=[{"clientId": "A1", "accessPolicy": ["a@x.example"]}]), "object id"),
    (tenant(apps=[{"clientId": "A1", "accessPolicy": "everyone"}]), "accessPolicy"),
    (tenant(apps=[{"clientId": "A1", "certificatePem": "-----BEGIN CERTIFICATE-----\nxx"}]), "PEM"),
    (tenant(apps=[{"clientId": "A1", "roles": "OnlineMeetings.ReadWrite.All"}]), "list of strings"),
    (tenant(apps=[{"clientId": "A1", "publicClient": "yes"}]), "true or false"),
    (tenant(domains=["not a domain"]), "must look like contoso.onmicrosoft.com"),
    (tenant(domains="x.example"), "list of strings"),
    ({"tenants": [tenant(domains=["x.example"])["tenants"][0],
                  dict(tenant(domains=["x.example"])["tenants"][0], id="T2")]}, "belongs to tenant t1"),
])
def test_mistakes_name_the_file_and_entry(tmp_path, data, fragment):
    path = write(tmp_path, data)
    with pytest.raises(DirectoryError) as exc:
        load_directory(path)
    assert fragment in str(exc.value) and str(path) in str(exc.value)


def test_optional_keys_and_certificate_forms(tmp_path, certs: dict[str, CertPair]):
    one, two = certs["registered"], certs["stranger"]
    data = tenant(apps=[
        {"clientId": "A1", "certificatePem": one.cert_pem, "accessPolicy": "global"},
        {"clientId": "A2", "certificatePem": [one.cert_pem, two.cert_pem], "accessPolicy": ["U1"]},
        {"clientId": "A3", "secret": "s", "extra": {"ignored": True}},
    ])
    d = load_directory(write(tmp_path, data))
    t = d.tenant("t1")  # ids are case-insensitive
    assert t is not None
    a1, a2, a3 = t.app("A1"), t.app("a2"), t.app("A3")
    assert len(a1.certificates) == 1 and len(a2.certificates) == 2
    assert a1.roles == frozenset() and a3.access_policy is None and not a3.policy_allows("u1")
    assert a2.policy_allows("u1") and a1.policy_allows("anyone")
    assert t.find_user("U1@X.EXAMPLE").id == "u1"


def test_emulator_refuses_a_bad_directory_and_a_non_loopback_host(tmp_path):
    with pytest.raises(DirectoryError):
        Emulator(EmulatorOptions(directory=write(tmp_path, "{nope")))
    with pytest.raises(ValueError, match="loopback"):
        Emulator(EmulatorOptions(host="0.0.0.0"))
    with pytest.raises(ValueError, match="loopback"):
        Emulator(EmulatorOptions(host="203.0.113.10"))
