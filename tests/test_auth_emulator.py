"""Token acquisition through the real msal against the emulator's identity endpoints (HTTPS).

One emulator per module (per xdist worker) with its own directory: an app with a secret, one with
a registered certificate, one whose secret has expired, one that is not a public client. Tests
that change the emulator's knobs put them back.
"""
from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
import uuid
from pathlib import Path

import jwt
import pytest
import requests

from bulkmeet import auth
from bulkmeet.config import AuthSettings, Config, GraphSettings
from bulkmeet.errors import AuthError, ExitStatus
from tests.helpers import cert_pem, fixed_id, make_key_and_cert, sha1_hex, write_pem, write_pfx

pytest.importorskip("bulkmeet.emulator")
from bulkmeet.emulator import Emulator, EmulatorOptions  # noqa: E402


def _id(name: str) -> str:
    return fixed_id(f"auth/{name}")


TENANT = _id("tenant")
SECRET_APP = _id("secret-app")
CERT_APP = _id("cert-app")
EXPIRED_APP = _id("expired-app")
PRIVATE_APP = _id("private-app")
NO_ROLES_APP = _id("no-roles-app")
UNKNOWN_APP = _id("unknown-app")
UNKNOWN_TENANT = _id("unknown-tenant")
SECRET = "emu-secret-" + _id("secret").replace("-", "")
ADA = ("ada.lovelace@school.example", _id("ada"))
SCOPES = ["OnlineMeetings.ReadWrite", "User.Read"]
ROLES = ["OnlineMeetings.ReadWrite.All", "User.Read.All"]
FAST = {"retry_delays": (0.05,)}


@pytest.fixture(scope="module")
def certs():
    registered = make_key_and_cert(cn="registered")
    unregistered = make_key_and_cert(cn="not registered")
    return registered, unregistered


@pytest.fixture(scope="module")
def emu(tmp_path_factory, certs):
    (key, cert), _ = certs
    folder = tmp_path_factory.mktemp("auth-emulator")
    app = {"roles": ROLES, "accessPolicy": "global"}
    directory = {"tenants": [{
        "id": TENANT, "displayName": "Auth test tenant",
        "users": [{"id": ADA[1], "userPrincipalName": ADA[0], "displayName": "Ada"}],
        "apps": [
            {**app, "clientId": SECRET_APP, "secret": SECRET, "publicClient": True,
             "delegatedScopes": SCOPES},
            {**app, "clientId": CERT_APP, "certificatePem": cert_pem(cert).decode()},
            {**app, "clientId": EXPIRED_APP, "secret": "old-" + SECRET, "secretExpired": True},
            {"clientId": NO_ROLES_APP, "secret": "noroles-" + SECRET, "accessPolicy": "global"},
            {**app, "clientId": PRIVATE_APP, "secret": "private-" + SECRET, "publicClient": False,
             "delegatedScopes": SCOPES},
        ]}]}
    path = folder / "directory.json"
    path.write_text(json.dumps(directory))
    with Emulator(EmulatorOptions(directory=path, device_code_interval_s=1)) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def default_knobs(emu):
    yield
    emu.configure(token_lifetime_s=3600, device_code_interval_s=1)


def config(emu, tmp_path: Path, *, client: str = SECRET_APP, tenant: str = TENANT,
           ca: str | None = "emu", **auth_fields) -> Config:
    graph = GraphSettings(base_url=emu.base_url,
                          ca_bundle=str(emu.ca_path) if ca == "emu" else ca,
                          connect_timeout=5, read_timeout=10)
    fields = {"tenant_id": tenant, "client_id": client, "authority_host": emu.base_url,
              "token_cache": str(tmp_path / "cache" / "token-cache.json"), **auth_fields}
    return Config(path=tmp_path / "bulkmeet.toml", graph=graph, auth=AuthSettings(**fields))


def token_requests(emu) -> int:
    return emu.stats()["token_requests"]


def claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def create_meeting(emu, token: str, path: str = f"/v1.0/users/{ADA[1]}") -> requests.Response:
    return requests.post(
        f"{emu.base_url}{path}/onlineMeetings/createOrGet",
        json={"externalId": str(uuid.uuid4()), "subject": "auth test"},
        headers={"Authorization": f"Bearer {token}"}, verify=str(emu.ca_path), timeout=10)


def tokens_at_once(provider, workers: int) -> list[str]:
    """``provider.token()`` from ``workers`` threads released together, as the runner's pool does."""
    barrier = threading.Barrier(workers)
    got: list[str] = []

    def worker() -> None:
        barrier.wait()
        got.append(provider.token())

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return got


def auth_error(call) -> AuthError:
    with pytest.raises(AuthError) as exc:
        call()
    assert exc.value.exit_status == ExitStatus.AUTH_FAILED
    return exc.value


# ---------------------------------------------------------------------------- app: secret


def test_secret_token_is_reused_and_works_on_graph(emu, tmp_path, monkeypatch):
    monkeypatch.setenv("BULKMEET_CLIENT_SECRET", SECRET)
    provider = auth.build_token_provider(config(emu, tmp_path))
    before = token_requests(emu)
    token = provider.token()
    assert provider.token() == token and provider.token() == token
    assert token_requests(emu) - before == 1
    c = claims(token)
    assert c["appid"] == SECRET_APP and c["tid"] == TENANT and "OnlineMeetings.ReadWrite.All" in c["roles"]
    assert create_meeting(emu, token).status_code == 201


def test_secret_from_azure_identity_variables(emu, tmp_path, monkeypatch):
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_CLIENT_ID", SECRET_APP)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", SECRET)
    cfg = config(emu, tmp_path, tenant="", client="")
    assert claims(auth.build_token_provider(cfg).token())["appid"] == SECRET_APP


def test_secret_from_file(emu, tmp_path):
    (tmp_path / "secret").write_text(SECRET + "\n")
    (tmp_path / "secret").chmod(0o600)
    provider = auth.build_token_provider(config(emu, tmp_path, client_secret_file="secret"))
    assert claims(provider.token())["appid"] == SECRET_APP


def test_sixteen_threads_on_a_cold_start_send_one_token_request(emu, tmp_path, monkeypatch):
    monkeypatch.setenv("BULKMEET_CLIENT_SECRET", SECRET)
    provider = auth.build_token_provider(config(emu, tmp_path))
    before = token_requests(emu)
    got = tokens_at_once(provider, 16)
    assert len(got) == 16 and len(set(got)) == 1
    assert token_requests(emu) - before == 1


def test_invalidate_fetches_a_new_token_once(emu, tmp_path, monkeypatch):
    monkeypatch.setenv("BULKMEET_CLIENT_SECRET", SECRET)
    provider = auth.build_token_provider(config(emu, tmp_path))
    first = provider.token()
    before = token_requests(emu)
    provider.invalidate(first)
    provider.invalidate(first)  # a second worker with the same 401: no second request
    second = provider.token()
    assert second != first  # msal's own cache would have handed back the same token
    assert token_requests(emu) - before == 1
    provider.invalidate(first)  # stale token: the current one stays
    assert provider.token() == second
    assert token_requests(emu) - before == 1


def test_short_lived_tokens_are_refreshed_ahead_by_one_worker_while_the_others_keep_theirs(
        emu, tmp_path, monkeypatch):
    """6 s tokens over 9 s of emulated time (the provider's clock and the emulator's move together,
    nobody sleeps): at every step 8 workers get a token Graph accepts, one refresh per window."""
    monkeypatch.setenv("BULKMEET_CLIENT_SECRET", SECRET)
    emu.configure(token_lifetime_s=6)
    now = [0.0]
    provider = auth.build_token_provider(config(emu, tmp_path), clock=lambda: now[0])
    tokens = {provider.token()}  # as the runner does before starting its pool
    before = token_requests(emu)
    for _step in range(6):
        now[0] += 1.5
        emu.advance_clock(1.5)
        got = tokens_at_once(provider, 8)
        assert len(got) == 8
        for token in set(got):  # the old token while one worker fetched the new one: still good
            assert create_meeting(emu, token).status_code == 201
        tokens |= set(got)
    # A 6 s token is refreshed from 3 s before it expires: at t = 3, 6 and 9; never once per worker.
    assert token_requests(emu) - before == 3
    assert len(tokens) == 4


def test_a_token_without_the_meetings_role_is_refused_before_any_row(emu, tmp_path, monkeypatch):
    monkeypatch.setenv("BULKMEET_CLIENT_SECRET", "noroles-" + SECRET)
    token = auth.build_token_provider(config(emu, tmp_path, client=NO_ROLES_APP)).token()
    err = auth_error(lambda: auth.check_permissions(token, delegated=False))
    assert str(err) == (
        "The app's token has no OnlineMeetings.ReadWrite.All role: in the Azure portal open the "
        "app registration > API permissions, add Microsoft Graph > Application permissions > "
        "OnlineMeetings.ReadWrite.All, and click 'Grant admin consent'.")
    monkeypatch.setenv("BULKMEET_CLIENT_SECRET", SECRET)
    auth.check_permissions(auth.build_token_provider(config(emu, tmp_path)).token(), delegated=False)


def test_delegated_token_without_the_meetings_scope_is_refused():
    token = jwt.encode({"scp": "User.Read", "oid": ADA[1]}, "k" * 32, algorithm="HS256")  # not verified
    err = auth_error(lambda: auth.check_permissions(token, delegated=True))
    assert str(err) == ("Your sign-in has no OnlineMeetings.ReadWrite permission: add that delegated "
                        "permission to the app registration, grant consent, then run `bulkmeet "
                        "login` again.")
    auth.check_permissions("not-a-jwt", delegated=True)  # unreadable: Graph decides


# ---------------------------------------------------------------------------- app: certificate


def test_certificate_pem_with_computed_thumbprint(emu, tmp_path, certs):
    (key, cert), _ = certs
    pem = write_pem(tmp_path / "app.pem", key, cert)
    provider = auth.build_token_provider(config(emu, tmp_path, client=CERT_APP, certificate_path="app.pem"))
    assert sha1_hex(cert) in provider.describe() and str(pem) in provider.describe()
    token = provider.token()
    assert claims(token)["appid"] == CERT_APP
    assert claims(token)["appidacr"] == "2"  # signed with a certificate
    assert create_meeting(emu, token).status_code == 201


def test_certificate_pfx_with_password(emu, tmp_path, certs, monkeypatch):
    (key, cert), _ = certs
    pfx = write_pfx(tmp_path / "app.pfx", key, cert, "pfx-secret-pw")
    monkeypatch.setenv("AZURE_CLIENT_CERTIFICATE_PATH", str(pfx))
    monkeypatch.setenv("AZURE_CLIENT_CERTIFICATE_PASSWORD", "pfx-secret-pw")
    provider = auth.build_token_provider(config(emu, tmp_path, client=CERT_APP))
    assert claims(provider.token())["appidacr"] == "2"


def test_unregistered_certificate_names_its_thumbprint(emu, tmp_path, certs):
    _, (key, cert) = certs
    write_pem(tmp_path / "other.pem", key, cert)
    provider = auth.build_token_provider(
        config(emu, tmp_path, client=CERT_APP, certificate_path="other.pem"), **FAST)
    err = auth_error(provider.token)
    assert "AADSTS700027" in str(err) and sha1_hex(cert) in str(err)
    assert "Certificates & secrets" in str(err)


# ---------------------------------------------------------------------------- identity errors


@pytest.mark.parametrize("client,tenant,secret,code,needle", [
    (SECRET_APP, TENANT, "not-the-secret", 7000215, "Value, not its Secret ID"),
    (EXPIRED_APP, TENANT, "old-" + SECRET, 7000222, "has expired"),
    (SECRET_APP, UNKNOWN_TENANT, SECRET, 90002, "tenant_id"),
    (UNKNOWN_APP, TENANT, SECRET, 700016, "client_id"),
], ids=["wrong-secret", "expired-secret", "unknown-tenant", "unknown-app"])
def test_identity_errors_map_to_one_sentence(emu, tmp_path, monkeypatch, client, tenant, secret,
                                             code, needle):
    monkeypatch.setenv("BULKMEET_CLIENT_SECRET", secret)
    provider = auth.build_token_provider(config(emu, tmp_path, client=client, tenant=tenant), **FAST)
    before = token_requests(emu)
    err = auth_error(provider.token)
    msg = str(err)
    assert f"AADSTS{code}" in msg and needle in msg
    assert "Trace ID" not in msg and "Correlation ID" not in msg and "\n" not in msg
    assert secret not in msg
    assert err.__cause__ is None and err.__suppress_context__
    assert token_requests(emu) - before <= 1  # a wrong secret is not retried


def test_untrusted_tls_certificate_mentions_ca_bundle(emu, tmp_path, monkeypatch):
    monkeypatch.setenv("BULKMEET_CLIENT_SECRET", SECRET)
    provider = auth.build_token_provider(config(emu, tmp_path, ca=None), **FAST)
    msg = str(auth_error(provider.token))
    assert "TLS certificate" in msg and "ca_bundle" in msg and "REQUESTS_CA_BUNDLE" in msg
    assert "certifi" in msg


def test_requests_ca_bundle_is_used_only_without_ca_bundle(emu, tmp_path, monkeypatch, certs):
    monkeypatch.setenv("BULKMEET_CLIENT_SECRET", SECRET)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emu.ca_path))
    assert auth.build_token_provider(config(emu, tmp_path, ca=None)).token()
    # A configured bundle wins over the environment, even when the environment would work.
    (_, other_ca), _ = certs
    wrong = tmp_path / "other-ca.pem"
    wrong.write_bytes(cert_pem(other_ca))
    provider = auth.build_token_provider(config(emu, tmp_path, ca=str(wrong)), **FAST)
    msg = str(auth_error(provider.token))
    assert f"ca_bundle {wrong}" in msg


def test_unreachable_authority_is_retried_then_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("BULKMEET_CLIENT_SECRET", SECRET)
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = Config(path=None, graph=GraphSettings(connect_timeout=2), auth=AuthSettings(
        tenant_id=TENANT, client_id=SECRET_APP, authority_host=f"https://127.0.0.1:{port}"))
    slept: list[float] = []
    provider = auth.build_token_provider(cfg, retry_delays=(0.5, 1.5), sleep=slept.append)
    msg = str(auth_error(provider.token))
    assert "Cannot reach the sign-in service" in msg and "tried 3 times" in msg
    assert slept == [0.5, 1.5]  # three attempts, two waits
    # Workers queued behind the failure get the same answer at once, not three more attempts.
    assert str(auth_error(provider.token)) == msg
    assert slept == [0.5, 1.5]


def test_metadata_pointing_to_another_host_is_refused(emu, tmp_path, monkeypatch):
    """The emulator's certificate is valid for localhost too, but its metadata names 127.0.0.1."""
    monkeypatch.setenv("BULKMEET_CLIENT_SECRET", SECRET)
    host = emu.base_url.replace("127.0.0.1", "localhost")
    provider = auth.build_token_provider(config(emu, tmp_path, authority_host=host), **FAST)
    before = token_requests(emu)
    msg = str(auth_error(provider.token))
    assert "another host" in msg and "refusing to send credentials" in msg
    assert token_requests(emu) == before


def test_refresh_failure_keeps_the_valid_token(tmp_path, monkeypatch, caplog):
    """The sign-in service goes away mid-run: workers keep the still-valid token until it runs out."""
    monkeypatch.setenv("BULKMEET_CLIENT_SECRET", "demo-client-secret-only-for-the-emulator")
    now = [1000.0]
    with Emulator(EmulatorOptions(token_lifetime_s=30, ca_dir=tmp_path / "ca")) as demo:  # demo tenant
        cfg = config(demo, tmp_path, tenant="ab124da5-db7b-5a4a-908b-9f2538c5d372",
                     client="210ebc0a-c674-5b7a-866f-c2cc1251ec0a")
        provider = auth.build_token_provider(cfg, clock=lambda: now[0], **FAST)
        token = provider.token()
    now[0] += 24  # inside the refresh window (7.5 s before expiry), still usable
    with caplog.at_level(logging.WARNING, logger="bulkmeet.auth"):
        assert provider.token() == token
    assert "Cannot reach the sign-in service" in caplog.text
    assert "still using the current one" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bulkmeet.auth"):
        assert provider.token() == token  # backs off instead of trying on every call
    assert caplog.records == []
    now[0] += 4  # past the hard margin (3 s before expiry): no usable token left
    assert "Cannot reach the sign-in service" in str(auth_error(provider.token))


# ---------------------------------------------------------------------------- delegated


def do_login(emu, cfg, user: str = ADA[0], timeout: float | None = 30) -> tuple[str, list[str]]:
    shown: list[str] = []

    def echo(message: str) -> None:
        shown.append(message)
        code = re.search(r"enter the code (\S+)", message).group(1)
        threading.Timer(0.2, emu.approve_device_code, (code, user)).start()

    return auth.login(cfg, echo=echo, timeout=timeout), shown


def test_login_then_silent_reuse_from_the_cache_file(emu, tmp_path):
    cfg = config(emu, tmp_path, mode="delegated")
    username, shown = do_login(emu, cfg)
    assert username == ADA[0]
    assert shown and shown[0].startswith("To sign in")
    cache = auth.token_cache_path(cfg)
    assert cache.stat().st_mode & 0o777 == 0o600
    assert cache.parent.stat().st_mode & 0o777 == 0o700
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]  # no temp files left
    written = cache.stat()

    # A later run (cron): a new provider reads the file, no person involved.
    before = token_requests(emu)
    provider = auth.build_token_provider(cfg)
    assert provider.delegated is True
    assert ADA[0] in provider.describe()
    token = provider.token()
    assert token_requests(emu) == before  # the hour-long token came from the cache file
    assert claims(token)["oid"] == ADA[1] and "OnlineMeetings.ReadWrite" in claims(token)["scp"]
    assert create_meeting(emu, token, "/v1.0/me").status_code == 201
    after = cache.stat()
    assert (after.st_ino, after.st_mtime_ns) == (written.st_ino, written.st_mtime_ns)  # unchanged

    # A refresh (here forced by a 401) redeems the refresh token and rewrites the file atomically.
    provider.invalidate(token)
    assert provider.token() != token
    assert token_requests(emu) == before + 1
    rewritten = cache.stat()
    assert rewritten.st_ino != written.st_ino and rewritten.st_mode & 0o777 == 0o600
    assert SECRET not in cache.read_text()

    assert auth.logout(cfg) == cache and not cache.exists()
    err = auth_error(lambda: auth.build_token_provider(cfg))
    assert f"bulkmeet login --config {tmp_path / 'bulkmeet.toml'}" in str(err)


def test_delegated_short_tokens_refresh_through_the_refresh_token(emu, tmp_path):
    emu.configure(token_lifetime_s=5)
    cfg = config(emu, tmp_path, mode="delegated")
    do_login(emu, cfg)
    now = [0.0]
    provider = auth.build_token_provider(cfg, clock=lambda: now[0])
    first = provider.token()
    now[0] += 3.5  # inside the refresh window of a 5 s token
    second = provider.token()
    assert second != first and claims(second)["oid"] == ADA[1]


def test_revoked_refresh_token_asks_for_login(emu, tmp_path):
    cfg = config(emu, tmp_path, mode="delegated")
    do_login(emu, cfg)
    cache = auth.token_cache_path(cfg)
    data = json.loads(cache.read_text())
    for entry in data["AccessToken"].values():  # the access token has run out ...
        entry["expires_on"] = entry["extended_expires_on"] = str(int(time.time()) - 10)
    for entry in data["RefreshToken"].values():  # ... and the refresh token was revoked
        entry["secret"] = "1.AQ-revoked-" + uuid.uuid4().hex
    cache.write_text(json.dumps(data))
    cache.chmod(0o600)
    provider = auth.build_token_provider(cfg, **FAST)
    msg = str(auth_error(provider.token))
    assert "expired or was revoked" in msg
    assert f"`bulkmeet login --config {tmp_path / 'bulkmeet.toml'}`" in msg and str(cache) in msg


def test_login_needs_public_client_flows(emu, tmp_path):
    cfg = config(emu, tmp_path, client=PRIVATE_APP, mode="delegated")
    msg = str(auth_error(lambda: auth.login(cfg, echo=lambda s: None, timeout=5)))
    assert "AADSTS7000218" in msg and "Allow public client flows" in msg
    assert not auth.token_cache_path(cfg).exists()


def test_login_times_out_when_nobody_enters_the_code(emu, tmp_path):
    cfg = config(emu, tmp_path, mode="delegated")
    shown: list[str] = []
    msg = str(auth_error(lambda: auth.login(cfg, echo=shown.append, timeout=1.5)))
    assert "Nobody entered the sign-in code in time" in msg and len(shown) == 1
    assert not auth.token_cache_path(cfg).exists()


@pytest.mark.parametrize("error,sentence", [
    ("authorization_declined", "The sign-in was declined in the browser: run `{login}` again and "
                               "approve it."),
    ("bad_verification_code", "The sign-in service did not accept the code that was entered: run "
                              "`{login}` again and type the new code exactly as shown."),
    ("expired_token", "The sign-in code expired before it was used: run `{login}` again and enter "
                      "the code promptly."),
])
def test_login_refused_at_the_device_code_page_says_what_to_do(emu, tmp_path, error, sentence):
    cfg = config(emu, tmp_path, mode="delegated")

    def echo(message: str) -> None:
        code = re.search(r"enter the code (\S+)", message).group(1)
        emu.deny_device_code(code, error)

    msg = str(auth_error(lambda: auth.login(cfg, echo=echo, timeout=30)))
    assert msg == sentence.format(login=f"bulkmeet login --config {tmp_path / 'bulkmeet.toml'}")
    assert not auth.token_cache_path(cfg).exists()


# ---------------------------------------------------------------------------- no secrets anywhere


def test_no_secret_or_token_in_logs_messages_or_reprs(emu, tmp_path, monkeypatch, caplog, certs):
    """Run every path at DEBUG (msal and urllib3 included) and grep everything for secrets."""
    (key, cert), _ = certs
    monkeypatch.setenv("BULKMEET_CLIENT_SECRET", SECRET)
    seen: list[str] = []
    tokens: list[str] = []
    with caplog.at_level(logging.DEBUG):
        ok = auth.build_token_provider(config(emu, tmp_path))
        tokens.append(ok.token())
        seen += [ok.describe(), repr(ok), str(vars(ok))]
        ok.invalidate(tokens[0])
        tokens.append(ok.token())
        monkeypatch.setenv("BULKMEET_CLIENT_SECRET", SECRET[::-1])
        bad = auth.build_token_provider(config(emu, tmp_path), **FAST)
        seen.append(str(auth_error(bad.token)))
        write_pem(tmp_path / "app.pem", key, cert, password="pem-pass-xyz")
        monkeypatch.setenv("AZURE_CLIENT_CERTIFICATE_PASSWORD", "pem-pass-xyz")
        cert_provider = auth.build_token_provider(
            config(emu, tmp_path, client=CERT_APP, certificate_path="app.pem"))
        tokens.append(cert_provider.token())
        seen += [cert_provider.describe(), repr(cert_provider), repr(cert_provider._credential)]
        cfg = config(emu, tmp_path, mode="delegated")
        do_login(emu, cfg)
        delegated = auth.build_token_provider(cfg)
        tokens.append(delegated.token())
        seen += [delegated.describe(), repr(delegated)]
    refresh_tokens = [e["secret"] for e in
                      json.loads(auth.token_cache_path(cfg).read_text())["RefreshToken"].values()]
    key_body = (tmp_path / "app.pem").read_text().splitlines()[3]
    everything = caplog.text + "\n".join(seen) + "\n".join(str(r.args) for r in caplog.records)
    assert caplog.records  # the debug logs really were captured
    for needle in [SECRET, SECRET[::-1], "pem-pass-xyz", key_body, *tokens, *refresh_tokens]:
        assert needle not in everything


def test_a_lent_session_is_used_and_left_open(emu, tmp_path, monkeypatch):
    from bulkmeet.http import build_session

    monkeypatch.setenv("BULKMEET_CLIENT_SECRET", SECRET)
    session = build_session(str(emu.ca_path))
    provider = auth.build_token_provider(config(emu, tmp_path), http_session=session)
    token = provider.token()
    provider.close()
    assert create_meeting(emu, token).status_code == 201
    r = session.post(f"{emu.base_url}/v1.0/users/{ADA[1]}/onlineMeetings/createOrGet",
                     json={"externalId": "lent", "subject": "s"},
                     headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code in (200, 201)
    session.close()
