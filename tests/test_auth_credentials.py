"""Finding and loading the app credential, and the settings checks that need no network.

Certificates are made here with `cryptography` (and one with the openssl CLI when it exists), so
the thumbprint bulkmeet computes is compared with one computed independently.
"""
from __future__ import annotations

import logging
import shutil
import subprocess
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from bulkmeet import auth
from bulkmeet.auth.client import MsalClient
from bulkmeet.config import AuthSettings, Config, GraphSettings
from bulkmeet.errors import AuthError, ConfigError, ExitStatus, UnsafeURLError
from tests.helpers import cert_pem, key_pem, make_key_and_cert, sha1_hex, write_pem, write_pfx

TENANT = "ab124da5-db7b-5a4a-908b-9f2538c5d372"
CLIENT = "210ebc0a-c674-5b7a-866f-c2cc1251ec0a"


@pytest.fixture(scope="module")
def pair():
    return make_key_and_cert()


def app_config(tmp_path: Path | None = None, **auth_fields) -> Config:
    fields = {"tenant_id": TENANT, "client_id": CLIENT, **auth_fields}
    path = (tmp_path / "bulkmeet.toml") if tmp_path else None
    return Config(path=path, auth=AuthSettings(**fields))


# ---------------------------------------------------------------------------- credential order


def test_secret_from_bulkmeet_env(monkeypatch):
    monkeypatch.setenv("BULKMEET_CLIENT_SECRET", "  the-secret-value\n")
    cred = auth.find_credential(AuthSettings())
    assert isinstance(cred, auth.SecretCredential)
    assert cred.value == "the-secret-value"
    assert cred.source == "environment variable BULKMEET_CLIENT_SECRET"


def test_secret_from_custom_env_name_beats_azure_name(monkeypatch):
    monkeypatch.setenv("MY_SECRET", "mine")
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "azure")
    cred = auth.find_credential(AuthSettings(client_secret_env="MY_SECRET"))
    assert cred.value == "mine"


def test_azure_identity_secret_name_is_used_when_bulkmeet_name_empty(monkeypatch):
    monkeypatch.setenv("BULKMEET_CLIENT_SECRET", "")  # "export VAR=" in a cron file means unset
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "azure")
    cred = auth.find_credential(AuthSettings())
    assert (cred.value, cred.source) == ("azure", "environment variable AZURE_CLIENT_SECRET")


def test_secret_file_relative_to_config_and_loose_mode_warns(tmp_path, caplog):
    secret = tmp_path / "secret.txt"
    secret.write_text("file-secret\n")
    secret.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="bulkmeet.auth"):
        cred = auth.find_credential(AuthSettings(client_secret_file="secret.txt"),
                                    config_path=tmp_path / "bulkmeet.toml")
    assert cred.value == "file-secret"
    assert cred.source == f"file {secret}"
    assert "chmod 600" in caplog.text and "file-secret" not in caplog.text


def test_secret_file_private_mode_does_not_warn(tmp_path, caplog):
    secret = tmp_path / "secret.txt"
    secret.write_text("file-secret")
    secret.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="bulkmeet.auth"):
        auth.find_credential(AuthSettings(client_secret_file=str(secret)))
    assert caplog.records == []


def test_env_secret_beats_secret_file(tmp_path, monkeypatch):
    (tmp_path / "secret.txt").write_text("file-secret")
    monkeypatch.setenv("BULKMEET_CLIENT_SECRET", "env-secret")
    cred = auth.find_credential(AuthSettings(client_secret_file=str(tmp_path / "secret.txt")))
    assert cred.value == "env-secret"


@pytest.mark.parametrize("content,needle", [("", "is empty"), (None, "not found")])
def test_unusable_secret_file(tmp_path, content, needle):
    secret = tmp_path / "secret.txt"
    if content is not None:
        secret.write_text(content)
    with pytest.raises(ConfigError, match=needle) as exc:
        auth.find_credential(AuthSettings(client_secret_file=str(secret)))
    assert str(secret) in str(exc.value)


def test_certificate_beats_secret(tmp_path, monkeypatch, pair):
    key, cert = pair
    pem = write_pem(tmp_path / "app.pem", key, cert)
    monkeypatch.setenv("BULKMEET_CLIENT_SECRET", "env-secret")
    cred = auth.find_credential(AuthSettings(certificate_path=str(pem)))
    assert isinstance(cred, auth.CertificateCredential)


def test_certificate_from_azure_env(tmp_path, monkeypatch, pair):
    key, cert = pair
    pem = write_pem(tmp_path / "app.pem", key, cert)
    monkeypatch.setenv("AZURE_CLIENT_CERTIFICATE_PATH", str(pem))
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "ignored")
    cred = auth.find_credential(AuthSettings())
    assert isinstance(cred, auth.CertificateCredential) and cred.path == pem


def test_no_credential_names_the_variables(tmp_path):
    with pytest.raises(ConfigError) as exc:
        auth.find_credential(AuthSettings(client_secret_env="SCHOOL_SECRET"),
                             config_path=tmp_path / "b.toml")
    msg = str(exc.value)
    assert "SCHOOL_SECRET" in msg and "AZURE_CLIENT_SECRET" in msg
    assert "certificate_path" in msg and str(tmp_path / "b.toml") in msg
    assert exc.value.exit_status == ExitStatus.UNUSABLE_INPUT


# ---------------------------------------------------------------------------- tenant / client ids


def test_ids_from_azure_env(monkeypatch):
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT)
    assert auth.resolve_ids(AuthSettings()) == (TENANT, CLIENT)


def test_config_ids_beat_env(monkeypatch):
    monkeypatch.setenv("AZURE_TENANT_ID", str(uuid.uuid4()))
    assert auth.resolve_ids(AuthSettings(tenant_id="contoso.onmicrosoft.com", client_id=CLIENT)) \
        == ("contoso.onmicrosoft.com", CLIENT)


@pytest.mark.parametrize("fields,needle", [
    ({"client_id": CLIENT}, "AZURE_TENANT_ID"),
    ({"tenant_id": TENANT}, "AZURE_CLIENT_ID"),
    ({"tenant_id": TENANT, "client_id": "my-app"}, "is not a GUID"),
])
def test_missing_ids(fields, needle):
    with pytest.raises(ConfigError, match=needle):
        auth.resolve_ids(AuthSettings(**fields))


USE = ("use the Directory (tenant) ID GUID from the app registration's Overview page, or the "
       "tenant's domain (contoso.onmicrosoft.com)")


@pytest.mark.parametrize("mode,tenant,message", [
    ("app", "not a tenant/..", "the config: [auth] tenant_id (the value given is not shown: it may be "
     f"a secret) is neither a GUID nor a domain such as contoso.onmicrosoft.com: {USE}."),
    ("app", "s3cr3t-Q2xR7vKm9pLw", "the config: [auth] tenant_id (the value given is not shown: it may "
     f"be a secret) is neither a GUID nor a domain such as contoso.onmicrosoft.com: {USE}."),
    ("app", "school.example.1", 'the config: [auth] tenant_id "school.example.1" is neither a GUID '
     f"nor a domain such as contoso.onmicrosoft.com: {USE}."),
    ("delegated", "common", 'the config: [auth] tenant_id "common" lets personal Microsoft accounts '
     f'sign in, which bulkmeet does not support: {USE} (or "organizations" with mode = '
     '"delegated").'),
    ("app", "Consumers", 'the config: [auth] tenant_id "Consumers" lets personal Microsoft accounts '
     f'sign in, which bulkmeet does not support: {USE} (or "organizations" with mode = '
     '"delegated").'),
    ("app", "organizations", 'the config: [auth] tenant_id "organizations" works only when a person '
     f'signs in (mode = "delegated"); an app signs in to its own tenant: {USE}.'),
])
def test_unusable_tenant_ids_say_what_the_identity_platform_accepts(mode, tenant, message):
    with pytest.raises(ConfigError) as exc:
        auth.resolve_ids(AuthSettings(mode=mode, tenant_id=tenant, client_id=CLIENT))
    assert str(exc.value) == message


@pytest.mark.parametrize("mode,tenant,expected", [
    ("app", "school.example", "school.example"),
    ("app", "contoso.onmicrosoft.com", "contoso.onmicrosoft.com"),
    ("app", "{" + TENANT.upper() + "}", TENANT),  # as PowerShell prints it
    ("delegated", "organizations", "organizations"),
])
def test_usable_tenant_ids(mode, tenant, expected):
    ids = auth.resolve_ids(AuthSettings(mode=mode, tenant_id=tenant, client_id="{" + CLIENT + "}"))
    assert ids == (expected, CLIENT)


def test_tenant_from_the_environment_is_named_as_such(monkeypatch):
    monkeypatch.setenv("AZURE_TENANT_ID", "common")
    with pytest.raises(ConfigError, match=r'^the config: AZURE_TENANT_ID "common" lets personal'):
        auth.resolve_ids(AuthSettings(client_id=CLIENT))


def test_a_secret_pasted_as_client_id_is_not_echoed():
    pasted = "Abc8Q~" + "x" * 34  # the shape of an Entra client secret
    with pytest.raises(ConfigError) as exc:
        auth.resolve_ids(AuthSettings(tenant_id=TENANT, client_id=pasted))
    assert pasted not in str(exc.value)
    assert str(exc.value).startswith("the config: [auth] client_id (the value given is not shown: it "
                                     "may be a secret) is not a GUID")


@pytest.mark.parametrize("pasted,shown", [
    ("n]Fc@kh?=8Ek:b2M.JL-U/_AG1/vTa3S", False),  # an Entra secret of before 2021: no '~'
    ("Q2xR7vKm9pLwZ3bN8cT4yH6dF1gJ5sAe", False),  # base64-like letters and digits, mixed case
    ("my-app", True),  # a name, not a secret: shown so the reader recognises it
    ("8D4C1E2A-0B3F-4F5A-9C6D-7E8F9A0B1C2", True),  # a GUID one digit short, upper-case
])
def test_a_client_id_is_echoed_only_when_it_is_made_like_an_id(pasted, shown):
    with pytest.raises(ConfigError) as exc:
        auth.resolve_ids(AuthSettings(tenant_id=TENANT, client_id=pasted))
    expected = f'"{pasted}"' if shown else "(the value given is not shown: it may be a secret)"
    assert str(exc.value).startswith(f"the config: [auth] client_id {expected} is not a GUID")
    assert (pasted in str(exc.value)) == shown


# ---------------------------------------------------------------------------- certificates


def test_pem_thumbprint_matches_independent_sha1(tmp_path, pair):
    key, cert = pair
    cred = auth.load_certificate(write_pem(tmp_path / "a.pem", key, cert))
    assert cred.kind == "pem"
    assert cred.thumbprint == sha1_hex(cert)
    assert len(cred.thumbprint) == 40
    msal_cred = cred.for_msal()
    assert msal_cred["thumbprint"] == cred.thumbprint
    assert "BEGIN PRIVATE KEY" in msal_cred["private_key"] and "CERTIFICATE" not in msal_cred["private_key"]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_pem_made_with_openssl_cli_matches_openssl_fingerprint(tmp_path):
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", crt, "-days", "30", "-subj", "/CN=bulkmeet"], check=True,
                   capture_output=True)
    fp = subprocess.run(["openssl", "x509", "-in", crt, "-noout", "-fingerprint", "-sha1"],
                        check=True, capture_output=True, text=True).stdout
    expected = fp.strip().split("=", 1)[1].replace(":", "").upper()
    both = tmp_path / "bulkmeet.pem"
    both.write_bytes(key.read_bytes() + crt.read_bytes())
    assert auth.load_certificate(both).thumbprint == expected


def test_pem_certificate_first_and_traditional_key(tmp_path, pair):
    key, cert = pair
    p = tmp_path / "a.pem"
    p.write_bytes(cert_pem(cert) + key_pem(key, traditional=True))
    cred = auth.load_certificate(p)
    assert cred.thumbprint == sha1_hex(cert)
    assert "BEGIN RSA PRIVATE KEY" in cred.for_msal()["private_key"]


def test_pem_with_chain_picks_the_certificate_of_the_key(tmp_path, pair):
    key, cert = pair
    _, other = make_key_and_cert(cn="some CA")
    p = tmp_path / "chain.pem"
    p.write_bytes(key_pem(key) + cert_pem(other) + cert_pem(cert))
    assert auth.load_certificate(p).thumbprint == sha1_hex(cert)


def test_encrypted_pem_with_password_env(tmp_path, monkeypatch, pair):
    key, cert = pair
    pem = write_pem(tmp_path / "enc.pem", key, cert, password="pem-pass-123")
    monkeypatch.setenv("AZURE_CLIENT_CERTIFICATE_PASSWORD", "pem-pass-123")
    cred = auth.find_credential(AuthSettings(certificate_path=str(pem)))
    assert cred.thumbprint == sha1_hex(cert)
    assert cred.for_msal()["passphrase"] == "pem-pass-123"
    assert "pem-pass-123" not in repr(cred)


def test_encrypted_pem_without_password_says_which_variable(tmp_path, pair):
    key, cert = pair
    pem = write_pem(tmp_path / "enc.pem", key, cert, password="pem-pass-123")
    with pytest.raises(ConfigError, match="AZURE_CLIENT_CERTIFICATE_PASSWORD"):
        auth.load_certificate(pem)


def test_encrypted_pem_wrong_password(tmp_path, monkeypatch, pair):
    key, cert = pair
    pem = write_pem(tmp_path / "enc.pem", key, cert, password="right-one")
    monkeypatch.setenv("PFX_PW", "wrong-one")
    with pytest.raises(ConfigError, match="probably wrong") as exc:
        auth.find_credential(AuthSettings(certificate_path=str(pem), certificate_password_env="PFX_PW"))
    assert "wrong-one" not in str(exc.value) and "PFX_PW" in str(exc.value)


def test_pfx_with_password_from_named_env(tmp_path, monkeypatch, pair):
    key, cert = pair
    pfx = write_pfx(tmp_path / "app.pfx", key, cert, "pfx-pass")
    monkeypatch.setenv("PFX_PW", "pfx-pass")
    cred = auth.find_credential(AuthSettings(certificate_path=str(pfx), certificate_password_env="PFX_PW"))
    assert cred.kind == "pfx" and cred.thumbprint == sha1_hex(cert)
    assert cred.for_msal() == {"private_key_pfx_path": str(pfx), "passphrase": "pfx-pass"}
    assert "pfx-pass" not in repr(cred) and "pfx-pass" not in cred.describe()


def test_pfx_without_password(tmp_path, pair):
    key, cert = pair
    cred = auth.load_certificate(write_pfx(tmp_path / "app.p12", key, cert, None))
    assert cred.for_msal() == {"private_key_pfx_path": str(tmp_path / "app.p12")}


@pytest.mark.parametrize("given", [None, "pfx-wrong-pw"])
def test_pfx_bad_password(tmp_path, pair, given):
    key, cert = pair
    pfx = write_pfx(tmp_path / "app.pfx", key, cert, "pfx-right-pw")
    with pytest.raises(ConfigError) as exc:
        auth.load_certificate(pfx, given, "environment variable PFX_PW" if given else None)
    msg = str(exc.value)
    assert str(pfx) in msg
    assert ("AZURE_CLIENT_CERTIFICATE_PASSWORD" in msg) if given is None else ("may be wrong" in msg)
    assert "pfx-right-pw" not in msg and "pfx-wrong-pw" not in msg


def test_password_env_named_but_unset(tmp_path, pair):
    key, cert = pair
    pfx = write_pfx(tmp_path / "app.pfx", key, cert, "x")
    with pytest.raises(ConfigError, match="PFX_PW.*not set"):
        auth.find_credential(AuthSettings(certificate_path=str(pfx), certificate_password_env="PFX_PW"))


def test_pem_key_only_or_cert_only(tmp_path, pair):
    key, cert = pair
    (tmp_path / "k.pem").write_bytes(key_pem(key))
    (tmp_path / "c.pem").write_bytes(cert_pem(cert))
    with pytest.raises(ConfigError, match="no certificate"):
        auth.load_certificate(tmp_path / "k.pem")
    with pytest.raises(ConfigError, match="no private key"):
        auth.load_certificate(tmp_path / "c.pem")


def test_key_that_does_not_match_certificate(tmp_path, pair):
    key, _ = pair
    _, other = make_key_and_cert()
    p = tmp_path / "mismatch.pem"
    p.write_bytes(key_pem(key) + cert_pem(other))
    with pytest.raises(ConfigError, match="does not belong"):
        auth.load_certificate(p)


def test_ec_key_is_refused(tmp_path):
    key, cert = make_key_and_cert("ec", days=1, key=ec.generate_private_key(ec.SECP256R1()))
    p = tmp_path / "ec.pem"
    p.write_bytes(key_pem(key) + cert_pem(cert))
    with pytest.raises(ConfigError, match="only RSA"):
        auth.load_certificate(p)


def test_garbage_and_missing_certificate_files(tmp_path):
    (tmp_path / "x.pfx").write_bytes(b"\x00\x01 not a pfx")
    with pytest.raises(ConfigError, match="PFX/P12"):
        auth.load_certificate(tmp_path / "x.pfx")
    with pytest.raises(ConfigError, match="not found"):
        auth.load_certificate(tmp_path / "missing.pem")


def test_expired_certificate_loads_with_a_warning(tmp_path, caplog, pair):
    key, _ = pair
    _, old = make_key_and_cert(days=-1, key=key)
    with caplog.at_level(logging.WARNING, logger="bulkmeet.auth"):
        cred = auth.load_certificate(write_pem(tmp_path / "old.pem", key, old))
    assert cred.thumbprint == sha1_hex(old)
    assert "expired" in caplog.text


# ---------------------------------------------------------------------------- settings, offline


def test_build_is_offline_and_describes_without_secrets(monkeypatch):
    monkeypatch.setenv("BULKMEET_CLIENT_SECRET", "super-secret-value-123")
    # An authority nobody listens on: building must not connect anywhere.
    cfg = app_config(authority_host="https://127.0.0.1:9")
    provider = auth.build_token_provider(cfg)
    assert provider.delegated is False
    text = provider.describe()
    assert text == ("app 210ebc0a… in tenant ab124da5… with a client secret from environment "
                    "variable BULKMEET_CLIENT_SECRET")
    for shown in (text, repr(provider), str(vars(provider))):
        assert "super-secret-value-123" not in shown


def test_provider_repr_and_vars_hide_key_material(tmp_path, pair):
    key, cert = pair
    pem = write_pem(tmp_path / "a.pem", key, cert)
    provider = auth.build_token_provider(app_config(certificate_path=str(pem)))
    assert sha1_hex(cert) in provider.describe()
    body = key_pem(key).decode().splitlines()[5]
    assert body not in repr(provider)
    assert body not in repr(provider._credential)  # type: ignore[attr-defined]


@pytest.mark.parametrize("host,error,needle", [
    ("http://login.example.com", UnsafeURLError, "must be an https:// URL"),
    ("http://127.0.0.1:8443", ConfigError, "msal refuses plain http"),
    ("https://login.microsoftonline.com/contoso.onmicrosoft.com", ConfigError, "tenant goes in"),
    ("ftp://login.example.com", UnsafeURLError, "https"),
])
def test_unsafe_or_malformed_authority(monkeypatch, host, error, needle):
    monkeypatch.setenv("BULKMEET_CLIENT_SECRET", "s")
    with pytest.raises(error, match=needle):
        auth.build_token_provider(app_config(authority_host=host))


def test_instance_discovery_only_for_the_public_cloud(monkeypatch):
    monkeypatch.setenv("BULKMEET_CLIENT_SECRET", "s")
    public = MsalClient(app_config())
    private = MsalClient(app_config(authority_host="https://127.0.0.1:8443"))
    assert public.instance_discovery is None  # msal's default: ask the public cloud
    assert private.instance_discovery is False


def test_delegated_without_cache_is_auth_error_with_login_command(tmp_path):
    cfg = replace(app_config(tmp_path, mode="delegated", token_cache="cache.json"),
                  graph=GraphSettings())
    with pytest.raises(AuthError) as exc:
        auth.build_token_provider(cfg)
    assert exc.value.exit_status == ExitStatus.AUTH_FAILED
    assert f"bulkmeet login --config {tmp_path / 'bulkmeet.toml'}" in str(exc.value)
    assert str(tmp_path / "cache.json") in str(exc.value)


def test_login_refused_in_app_mode(tmp_path):
    with pytest.raises(ConfigError, match="delegated"):
        auth.login(app_config(tmp_path), echo=lambda s: None)


def test_logout_without_cache_returns_none(tmp_path):
    assert auth.logout(app_config(tmp_path, token_cache=str(tmp_path / "none.json"))) is None
