"""No secret reaches any artefact: every command that writes files is run against the emulator
over real HTTPS, then every file it left behind is read back -- each part of every .xlsx, every
table and column of the SQLite journal (and its raw bytes), .ics unfolded, .html, .csv, .json,
.log -- together with stdout and stderr, and searched for the client secret, the private key,
the PFX password, any JWT and the refresh token.

The delegated token cache is the one file allowed to hold tokens, and it must be mode 0600.
Each test combines many commands on one emulator so the file stays fast.
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests import helpers

JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
B64_RUN = re.compile(r"[A-Za-z0-9+/]{24,}")
WINDOW = 24  # a run of this many characters of the key's PEM body counts as a leak
PFX_PASSWORD = "pfx-pw-" + "Zq8x-Mw3r-Kt5v"
GHOST = "ghost.teacher@test.example"  # a well-formed organizer the tenant does not have


# -- reading every artefact back, independently of bulkmeet -------------------------------------


def _sqlite_dump(path: Path) -> str:
    """Every value of every column of every table (the journal's content as SQLite sees it)."""
    out: list[str] = []
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert tables, f"{path} has no tables"
        for table in tables:
            cur = con.execute(f'SELECT * FROM "{table}"')  # noqa: S608 -- names from sqlite_master
            out.append(table + ": " + ",".join(d[0] for d in cur.description))
            for row in cur:
                out.append("\t".join(v.decode("latin-1") if isinstance(v, bytes) else str(v)
                                     for v in row))
    finally:
        con.close()
    return "\n".join(out)


def _unfold_ics(text: str) -> str:
    """RFC 5545 folds lines at 75 octets: a token split over two lines must still be found."""
    return text.replace("\r\n ", "").replace("\r\n\t", "").replace("\n ", "")


def read_artefacts(root: Path, skip: set[Path]) -> dict[str, str]:
    """{file (or file!member): text} for every file under root except the inputs in ``skip``."""
    texts: dict[str, str] = {}
    files = sorted(p for p in root.rglob("*") if p.is_file() and p not in skip)
    for path in files:
        raw = path.read_bytes()
        texts[str(path)] = raw.decode("latin-1")  # the raw bytes, whatever the format
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                for name in zf.namelist():
                    texts[f"{path}!{name}"] = zf.read(name).decode("utf-8", "replace")
        elif raw.startswith(b"SQLite format 3\x00"):
            texts[f"{path}!tables"] = _sqlite_dump(path)
        elif path.suffix == ".ics":
            texts[f"{path}!unfolded"] = _unfold_ics(raw.decode("utf-8", "replace"))
        else:
            texts[f"{path}!utf8"] = raw.decode("utf-8", "replace")
    return texts


@dataclass
class Evidence:
    """What a test collected: stdout/stderr of each command and the files it must search."""

    streams: dict[str, str] = field(default_factory=dict)

    def add(self, label: str, result: helpers.CliResult) -> helpers.CliResult:
        self.streams[f"{label} stdout"] = result.out
        self.streams[f"{label} stderr"] = result.err
        return result


@dataclass(frozen=True)
class Secrets:
    literal: tuple[str, ...]  # client secret, PFX password, tokens, refresh tokens
    key_bodies: tuple[str, ...] = ()  # PEM bodies of the private key (base64, no line breaks)

    def found_in(self, text: str) -> list[str]:
        hits = [f"literal {s[:6]}..." for s in self.literal if s and s in text]
        hits += [f"JWT {m.group(0)[:20]}..." for m in JWT.finditer(text)]
        windows = {body[i:i + WINDOW] for body in self.key_bodies
                   for i in range(len(body) - WINDOW + 1)}
        if windows:
            for run in B64_RUN.finditer(text):
                s = run.group(0)
                if any(s[i:i + WINDOW] in windows for i in range(len(s) - WINDOW + 1)):
                    hits.append(f"private key material {s[:12]}...")
                    break
        return hits


def assert_clean(root: Path, skip: set[Path], evidence: Evidence, secrets: Secrets,
                 must_exist: tuple[str, ...]) -> dict[str, str]:
    texts = {**read_artefacts(root, skip), **evidence.streams}
    names = "\n".join(texts)
    for pattern in must_exist:  # the walk really saw what the commands were asked to write
        assert re.search(pattern, names), f"no artefact matching {pattern!r} in:\n{names}"
    leaks = {where: hits for where, text in texts.items() if (hits := secrets.found_in(text))}
    assert not leaks, f"secrets found: {leaks}"
    return texts


def key_bodies(key: Any) -> tuple[str, ...]:
    """The base64 body of the key as every PEM form bulkmeet could print it."""
    bodies = []
    for traditional in (False, True):
        pem = helpers.key_pem(key, traditional=traditional).decode()
        bodies.append("".join(line for line in pem.splitlines() if not line.startswith("-----")))
    return tuple(bodies)


def private_hex(key: Any) -> str:
    return format(key.private_numbers().d, "x")[:32]


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_cert():
    return helpers.make_key_and_cert(cn="bulkmeet secrets test")


@pytest.fixture
def tenant(tmp_path: Path, app_cert) -> helpers.Tenant:
    """conftest's tenant, with the app's certificate registered too (a secret AND a certificate)."""
    made = helpers.make_tenant(tmp_path / "directory.json")
    directory = json.loads(made.directory_path.read_text())
    directory["tenants"][0]["apps"][0]["certificatePem"] = helpers.cert_pem(app_cert[1]).decode()
    made.directory_path.write_text(json.dumps(directory))
    return made


def mixed_rows(tenant: helpers.Tenant, n: int = 6) -> list[list[str]]:
    """n good rows, one for the organizer without an access policy, one for an unknown organizer,
    one invalid row."""
    rows = helpers.schedule_rows(tenant, n + 3)
    rows[n][3] = tenant.teachers[-1][0]  # blocked: no application access policy
    rows[n + 1][3] = GHOST  # fails at Graph: not in the tenant
    rows[n + 2][5] = "25:00"  # invalid Start
    return rows


def outputs(tmp_path: Path, tag: str) -> list[str | Path]:
    """Every artefact flag of `run`, to paths named for this run (later runs overwrite nothing)."""
    return ["--output", tmp_path / f"{tag}.results.xlsx", "--summary-json",
            tmp_path / f"{tag}.summary.json", "--calendar", tmp_path / f"{tag}.calendars",
            "--handouts", tmp_path / f"{tag}.handouts", "--report", tmp_path / f"{tag}.html",
            "--log-file", tmp_path / "logs" / "bulkmeet.log"]


RUN_ARTEFACTS = (r"results\.xlsx!xl/worksheets/sheet\d+\.xml", r"summary\.json", r"\.ics",
                 r"handouts/.*\.xlsx", r"mail-merge\.csv", r"\.html", r"bulkmeet\.log",
                 r"journal\.sqlite!tables")


def delete_by_hand(emulator: Any, meeting: dict[str, Any]) -> None:
    """What an admin does in Teams: a real DELETE over HTTPS, with a token bulkmeet never sees."""
    token = emulator.issue_access_token()
    gone = requests.delete(
        f"{emulator.base_url}/v1.0/users/{meeting['organizerId']}/onlineMeetings/{meeting['id']}",
        headers={"Authorization": f"Bearer {token}"}, verify=str(emulator.ca_path), timeout=10)
    assert gone.status_code == 204, gone.text


# -- app secret ----------------------------------------------------------------------------------


def test_app_secret_mode_leaves_no_secret_or_token_in_any_artefact(
        tmp_path, tenant, emulator, secret_env, run_cli, monkeypatch):
    ev = Evidence()
    rows = mixed_rows(tenant)
    schedule = helpers.write_xlsx(tmp_path / "term.xlsx", rows)
    config = helpers.write_config(tmp_path / "bulkmeet.toml", tenant, emulator.base_url,
                                  emulator.ca_path)

    # init while every credential variable is set: the starter config must not copy any of them
    starter = tmp_path / "init"
    starter.mkdir()
    helpers.write_xlsx(starter / "term.xlsx", rows)
    for var in ("AZURE_CLIENT_SECRET", "BULKMEET_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PASSWORD"):
        monkeypatch.setenv(var, tenant.secret)
    assert ev.add("init", run_cli("init", starter / "term.xlsx")).code == 0
    for var in ("AZURE_CLIENT_SECRET", "BULKMEET_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PASSWORD"):
        monkeypatch.delenv(var)

    assert ev.add("validate", run_cli("validate", schedule, "--config", config)).code == 1
    assert ev.add("plan", run_cli("plan", schedule, "--config", config)).code in (0, 1)
    dry = ev.add("dry-run", run_cli("run", schedule, "--config", config, "--dry-run"))
    assert dry.code == 1, dry.err
    first = ev.add("run", run_cli("run", schedule, "--config", config, *outputs(tmp_path, "a")))
    assert first.code == 1, first.err
    assert "6 created" in first.out and "2 failed" in first.out, first.out
    assert emulator.stats()["token_requests"] >= 1
    assert ev.add("verify", run_cli("verify", schedule, "--config", config)).code == 0
    delete_by_hand(emulator, emulator.meetings()[0])
    assert ev.add("verify missing", run_cli("verify", schedule, "--config", config)).code == 1
    repair = ev.add("repair", run_cli("verify", schedule, "--config", config, "--repair"))
    assert repair.code == 0 and "1 re-created" in repair.out, repair.out + repair.err

    # a row leaves the sheet (the invalid one too, else nothing is cancelled): the Removed sheet,
    # then a cancel (a real DELETE) logged in the journal's operations table
    helpers.write_xlsx(schedule, rows[1:-1])
    removed = ev.add("orphans", run_cli("run", schedule, "--config", config,
                                        *outputs(tmp_path, "b")))
    assert removed.code == 1 and "Removed sheet" in removed.err, removed.err
    assert ev.add("plan again", run_cli("plan", schedule, "--config", config,
                                        "--cancel-removed")).code == 8  # past the safety limit
    assert ev.add("plan lifted", run_cli("plan", schedule, "--config", config,
                                         "--max-cancel", "1")).code in (0, 1)
    cancel = ev.add("cancel", run_cli("run", schedule, "--config", config, "--max-cancel", "1",
                                      *outputs(tmp_path, "c")))
    assert cancel.code == 1, cancel.err
    assert json.loads((tmp_path / "c.summary.json").read_text())["cancelled"] == 1

    # Graph's bad days: 5xx/429/dropped answers reported per row (one attempt: no waits), on the
    # rows whose organizers the journal already knows (a failed lookup would be retried)
    once = helpers.write_config(tmp_path / "once.toml", tenant, emulator.base_url,
                                emulator.ca_path, extra_run="max_attempts = 1")
    faulty = helpers.write_xlsx(tmp_path / "faulty.xlsx", rows[1:6])
    emulator.configure(fault_rate=0.5, stall_s=0.1)
    bad_day = ev.add("faults", run_cli("run", faulty, "--config", once, "--full", "--journal",
                                       tmp_path / "term.journal.sqlite", *outputs(tmp_path, "e")))
    emulator.configure(fault_rate=0.0)
    assert bad_day.code == 1 and "failed" in bad_day.out, bad_day.out + bad_day.err

    # the wrong secret: authentication fails before any row, for run and verify
    monkeypatch.setenv(helpers.SECRET_ENV, "wrong-" + tenant.secret)
    bad = ev.add("bad secret", run_cli("run", schedule, "--config", config, "--full",
                                       *outputs(tmp_path, "d")))
    assert bad.code == 3 and "7000215" in bad.err, bad.err
    assert ev.add("bad verify", run_cli("verify", schedule, "--config", config)).code == 3

    secrets = Secrets((tenant.secret, "wrong-" + tenant.secret))
    texts = assert_clean(tmp_path, {tenant.directory_path}, ev, secrets,
                         (*RUN_ARTEFACTS, r"term\.dry-run\.xlsx!", r"term\.plan\.xlsx!",
                          r"init/bulkmeet\.toml"))
    books = [t for name, t in texts.items() if name.endswith("b.results.xlsx!xl/workbook.xml")]
    assert books and "Summary" in books[0] and "Removed" in books[0]  # both sheets were walked
    assert any("Grant-CsApplicationAccessPolicy" in t for t in texts.values())  # failing rows seen


def test_the_embedded_emulator_run_leaves_its_secret_only_in_its_private_state(
        tmp_path, tenant, run_cli):
    """`--emulator --directory`: bulkmeet signs in with the directory's app secret itself."""
    ev = Evidence()
    schedule = helpers.write_xlsx(tmp_path / "term.xlsx", mixed_rows(tenant))
    config = helpers.write_config(tmp_path / "bulkmeet.toml", tenant, "https://127.0.0.1:9",
                                  tenant.directory_path)  # the embedded run replaces both
    emulated = ("--emulator", "--directory", tenant.directory_path)
    check = ev.add("validate", run_cli("validate", schedule, "--config", config, *emulated))
    assert check.code == 1 and GHOST in check.out, check.out + check.err
    run = ev.add("run", run_cli("run", schedule, "--config", config, *emulated,
                                *outputs(tmp_path, "a")))
    assert run.code == 1 and "6 created" in run.out, run.out + run.err
    state = tmp_path / "term.emulator-state.json"
    assert state.stat().st_mode & 0o777 == 0o600  # the emulator's own tenant database
    assert_clean(tmp_path, {tenant.directory_path, state}, ev, Secrets((tenant.secret,)),
                 RUN_ARTEFACTS)


# -- certificate ---------------------------------------------------------------------------------


def cert_config(tmp_path: Path, tenant: helpers.Tenant, emulator: Any, certificate: Path,
                name: str = "bulkmeet.toml", password_env: bool = False) -> Path:
    config = helpers.write_config(tmp_path / name, tenant, emulator.base_url, emulator.ca_path)
    password = 'certificate_password_env = "BULKMEET_TEST_PFX_PASSWORD"\n' if password_env else ""
    config.write_text(config.read_text().replace(
        "[auth]\n", f'[auth]\ncertificate_path = "{certificate}"\n{password}'))
    return config


def test_certificate_mode_leaves_no_key_password_or_token_in_any_artefact(
        tmp_path, tenant, emulator, app_cert, run_cli, monkeypatch):
    key, cert = app_cert
    ev = Evidence()
    keys = tmp_path / "keys"
    keys.mkdir()
    pfx = helpers.write_pfx(keys / "app.pfx", key, cert, PFX_PASSWORD)
    pem = helpers.write_pem(keys / "app.pem", key, cert)
    schedule = helpers.write_xlsx(tmp_path / "term.xlsx", mixed_rows(tenant))
    config = cert_config(tmp_path, tenant, emulator, pfx, password_env=True)
    monkeypatch.setenv("BULKMEET_TEST_PFX_PASSWORD", PFX_PASSWORD)

    run = ev.add("pfx run", run_cli("run", schedule, "--config", config, *outputs(tmp_path, "a")))
    assert run.code == 1, run.err
    assert "6 created" in run.out and "2 failed" in run.out, run.out
    assert ev.add("pfx verify", run_cli("verify", schedule, "--config", config)).code == 0
    pem_config = cert_config(tmp_path, tenant, emulator, pem, "pem.toml")
    again = ev.add("pem run", run_cli("run", schedule, "--config", pem_config, "--full",
                                      *outputs(tmp_path, "b")))
    assert again.code == 1 and "6 existing" in again.out, again.err

    # a wrong PFX password (unusable settings) and a certificate Entra does not know (exit 3)
    monkeypatch.setenv("BULKMEET_TEST_PFX_PASSWORD", PFX_PASSWORD[::-1])
    wrong_pw = ev.add("wrong password", run_cli("run", schedule, "--config", config, "--full",
                                                *outputs(tmp_path, "c")))
    assert wrong_pw.code == 2 and "BULKMEET_TEST_PFX_PASSWORD" in wrong_pw.err, wrong_pw.err
    locked = helpers.write_pem(keys / "locked.pem", key, cert, password=PFX_PASSWORD)
    locked_config = cert_config(tmp_path, tenant, emulator, locked, "locked.toml", password_env=True)
    wrong_pem_pw = ev.add("wrong PEM password", run_cli("run", schedule, "--config", locked_config,
                                                        "--full", *outputs(tmp_path, "e")))
    assert wrong_pem_pw.code == 2 and "BULKMEET_TEST_PFX_PASSWORD" in wrong_pem_pw.err
    other_key, other_cert = helpers.make_key_and_cert(cn="not registered")
    stranger = helpers.write_pem(keys / "stranger.pem", other_key, other_cert)
    unknown = ev.add("unregistered", run_cli(
        "run", schedule, "--config", cert_config(tmp_path, tenant, emulator, stranger, "x.toml"),
        "--full", *outputs(tmp_path, "d")))
    assert unknown.code == 3 and "700027" in unknown.err, unknown.err

    secrets = Secrets((tenant.secret, PFX_PASSWORD, PFX_PASSWORD[::-1], private_hex(key),
                       private_hex(other_key)),
                      key_bodies(key) + key_bodies(other_key))
    inputs = {tenant.directory_path, pfx, pem, stranger, locked}
    assert_clean(tmp_path, inputs, ev, secrets, RUN_ARTEFACTS)


# -- delegated -----------------------------------------------------------------------------------


def delegated_config(tmp_path: Path, tenant: helpers.Tenant, emulator: Any, cache: Path) -> Path:
    config = helpers.write_config(tmp_path / "bulkmeet.toml", tenant, emulator.base_url,
                                  emulator.ca_path)
    config.write_text(config.read_text().replace('organizer = "Teacher"\n', "").replace(
        "[auth]\n", f'[auth]\nmode = "delegated"\ntoken_cache = "{cache}"\n'))
    return config


def login(config: Path, emulator: Any, upn: str, ev: Evidence) -> None:
    """`bulkmeet login` as a real process; the code is approved through the emulator's HTTPS
    admin endpoint, as a person at the device-code page would."""
    proc = subprocess.Popen([sys.executable, "-m", "bulkmeet", "login", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ))
    assert proc.stderr is not None
    prompt = proc.stderr.readline()
    found = re.search(r"enter the code (\S+)", prompt)
    assert found, prompt
    approved = requests.post(f"{emulator.base_url}/_emulator/devicecode/approve",
                             json={"user_code": found.group(1), "user": upn},
                             verify=str(emulator.ca_path), timeout=10)
    assert approved.status_code == 200, approved.text
    out, err = proc.communicate(timeout=60)
    ev.streams["login stdout"], ev.streams["login stderr"] = out, prompt + err
    assert proc.returncode == 0, err
    assert f"Signed in as {upn}" in out


def cached_tokens(cache: Path) -> tuple[str, ...]:
    """Every token the msal cache holds (access, refresh, id)."""
    data = json.loads(cache.read_text())
    found = tuple(entry["secret"] for section in ("AccessToken", "RefreshToken", "IdToken")
                  for entry in data.get(section, {}).values())
    assert data.get("RefreshToken") and data.get("AccessToken"), list(data)
    return found


def test_delegated_mode_keeps_tokens_only_in_the_private_cache(
        tmp_path, tenant, emulator, run_cli):
    emulator.configure(device_code_interval_s=1)
    ev = Evidence()
    cache = tmp_path / "cache" / "tokens.json"
    rows = helpers.schedule_rows(tenant, 5)
    rows[4][5] = "25:00"  # one invalid row
    schedule = helpers.write_csv(tmp_path / "mine.csv", rows)
    config = delegated_config(tmp_path, tenant, emulator, cache)

    before = ev.add("before login", run_cli("run", schedule, "--config", config,
                                            *outputs(tmp_path, "a")))
    assert before.code == 3 and "bulkmeet login" in before.err, before.err
    login(config, emulator, tenant.teachers[0][0], ev)
    assert cache.stat().st_mode & 0o777 == 0o600
    assert cache.parent.stat().st_mode & 0o777 == 0o700  # the folder login made is private too

    assert ev.add("plan", run_cli("plan", schedule, "--config", config)).code in (0, 1)
    assert ev.add("dry-run", run_cli("run", schedule, "--config", config, "--dry-run")).code == 1
    cache.chmod(0o644)  # someone loosened it: the run puts it back before using it
    run = ev.add("run", run_cli("run", schedule, "--config", config, *outputs(tmp_path, "b")))
    assert run.code == 1 and "4 created" in run.out, run.err
    assert "Token cache" in run.err and cache.stat().st_mode & 0o777 == 0o600
    assert "/me/onlineMeetings" in str(emulator.stats()["by_path"])
    assert ev.add("verify", run_cli("verify", schedule, "--config", config)).code == 0
    assert cache.stat().st_mode & 0o777 == 0o600  # still private after the runs rewrote it

    secrets = Secrets((tenant.secret, *cached_tokens(cache)))
    assert len(secrets.literal) >= 3
    assert_clean(tmp_path, {tenant.directory_path, cache}, ev, secrets,
                 (*RUN_ARTEFACTS, r"mine\.dry-run\.xlsx!", r"mine\.plan\.xlsx!"))
    assert JWT.search(cache.read_text())  # the cache is where the tokens are: the search works


# -- a secret typed into the wrong place is refused without being echoed --------------------------

LEGACY_SECRET = "n]Fc@kh?=8Ek:b2M.JL-U/_AG1/vTa3S"  # an Entra secret of before 2021: 32, no '~'
ENTRA_SECRET = "Xy78Q~" + "a1B2c3D4e5" * 3 + "f6G7"  # today's shape: 40 characters with '~'


def _misplace(text: str, tenant: helpers.Tenant, base_url: str, secret: str) -> dict[str, str]:
    def auth(line: str) -> str:
        return text.replace("[auth]\n", f"[auth]\n{line}\n")

    return {
        "client_secret key": auth(f'client_secret = "{secret}"'),
        "secret as the env var name": text.replace(
            f'client_secret_env = "{helpers.SECRET_ENV}"', f'client_secret_env = "{secret}"'),
        "password as the env var name": auth(
            f'certificate_path = "app.pfx"\ncertificate_password_env = "{secret}"'),
        "broken TOML on the secret's line": auth(f'client_secret_env = "{secret}'),
        "user:password@ in base_url": text.replace(
            f'base_url = "{base_url}"', f'base_url = "https://ops:{secret}@127.0.0.1:9"'),
        "key in the base_url query": text.replace(
            f'base_url = "{base_url}"', f'base_url = "{base_url}/?sig={secret}"'),
        "key in the authority_host query": text.replace(
            f'authority_host = "{base_url}"', f'authority_host = "{base_url}?code={secret}"'),
        "today's secret as client_id": text.replace(tenant.client_id, ENTRA_SECRET),
        "a pre-2021 secret as client_id": text.replace(tenant.client_id, LEGACY_SECRET),
        "the secret as tenant_id": text.replace(tenant.tenant_id, secret),
    }


MISPLACED = ("client_secret key", "secret as the env var name", "password as the env var name",
             "broken TOML on the secret's line", "user:password@ in base_url",
             "key in the base_url query", "key in the authority_host query",
             "today's secret as client_id", "a pre-2021 secret as client_id",
             "the secret as tenant_id")


@pytest.mark.parametrize("mistake", MISPLACED)
def test_a_secret_in_the_wrong_setting_is_refused_without_being_echoed(
        tmp_path, tenant, secret_env, run_cli, app_cert, mistake):
    schedule = helpers.write_csv(tmp_path / "s.csv", helpers.schedule_rows(tenant, 2))
    ca = tmp_path / "ca.pem"
    ca.write_bytes(helpers.cert_pem(app_cert[1]))  # any certificate: nothing is connected to
    base_url = "https://127.0.0.1:9"  # nothing listens: every case must stop at the config
    text = helpers.write_config(tmp_path / "bulkmeet.toml", tenant, base_url, ca).read_text()
    config = tmp_path / "bulkmeet.toml"
    mistakes = _misplace(text, tenant, base_url, tenant.secret)
    assert tuple(mistakes) == MISPLACED
    assert mistakes[mistake] != text  # the mistake really was made
    config.write_text(mistakes[mistake])
    for command in ("run", "validate", "plan", "verify"):
        result = run_cli(command, schedule, "--config", config)
        shown = result.out + result.err
        assert result.code == 2, (command, shown)
        assert str(config) in shown  # the message names the file to fix...
        for secret in (tenant.secret, LEGACY_SECRET, ENTRA_SECRET):
            assert secret not in shown, (command, shown)  # ...and never the value typed


def test_the_search_finds_secrets_hidden_by_every_format(tmp_path, app_cert):
    """The walk above can fail: a secret inside a shared string, a folded .ics line, a SQLite
    column, a JSON-escaped PEM; a clean folder passes."""
    from openpyxl import Workbook

    key = app_cert[0]
    token = "eyJhbGciOiJSUzI1NiJ9." + "eyJzdWIiOiJ4In0" * 4 + ".c2lnbmF0dXJl"
    secrets = Secrets(("s3cr3t-literal",), key_bodies(key))
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "a.csv").write_text("CRN,status\n10001,created\n")
    assert_clean(clean, set(), Evidence(), secrets, (r"a\.csv",))

    wb = Workbook()
    wb.active.append(["x", "s3cr3t-literal"])
    wb.save(tmp_path / "a.xlsx")
    ics = "BEGIN:VEVENT\r\nDESCRIPTION:" + token + "\r\nEND:VEVENT\r\n"
    (tmp_path / "a.ics").write_text(ics[:40] + "\r\n " + ics[40:])  # folded inside the token
    con = sqlite3.connect(tmp_path / "j.sqlite")
    con.execute("CREATE TABLE results (error TEXT)")
    con.execute("INSERT INTO results VALUES (?)", (key_bodies(key)[0][100:130],))
    con.commit()
    con.close()
    (tmp_path / "s.json").write_text(json.dumps({"e": helpers.key_pem(key).decode()[:200]}))
    texts = read_artefacts(tmp_path, set())
    for name in ("a.xlsx!xl/worksheets/sheet1.xml", "a.ics!unfolded", "j.sqlite!tables", "s.json"):
        assert secrets.found_in(texts[str(tmp_path / name)]), name
    for name in ("a.xlsx", "a.ics"):  # compressed / folded: only the decoded text shows them
        assert not secrets.found_in(texts[str(tmp_path / name)]), name
    with pytest.raises(AssertionError, match="secrets found"):
        assert_clean(tmp_path, set(), Evidence(), secrets, ())
