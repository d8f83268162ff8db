"""`bulkmeet emulator` / `python -m bulkmeet.emulator`: start, ready file, banner, signals, errors."""
from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from bulkmeet.emulator.command import emulator
from tests.emulator.helpers import spawn

REPO = Path(__file__).resolve().parents[2]


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail("the emulator did not stop on a signal")
    return proc.returncode, out, err


def test_start_serve_and_sigterm_with_state(tmp_path):
    ca_out, state = tmp_path / "ca.pem", tmp_path / "state.json"
    proc, info = spawn(tmp_path, "--ca-out", str(ca_out), "--state", str(state), "--seed", "1")
    try:
        assert set(info) == {"base_url", "ca_path", "pid"} and info["pid"] == proc.pid
        assert info["ca_path"] == str(ca_out.resolve())
        assert re.fullmatch(r"https://127\.0\.0\.1:\d+", info["base_url"])
        demo = json.loads((REPO / "bulkmeet/emulator/demo_directory.json").read_text())
        tenant, app = demo["tenants"][0], demo["tenants"][0]["apps"][0]
        http = requests.Session()
        http.trust_env = False
        token = http.post(f"{info['base_url']}/{tenant['id']}/oauth2/v2.0/token", verify=str(ca_out), data={
            "grant_type": "client_credentials", "client_id": app["clientId"],
            "client_secret": app["secret"], "scope": "https://graph.microsoft.com/.default"},
            timeout=10).json()["access_token"]
        r = http.post(f"{info['base_url']}/v1.0/users/{app['accessPolicy'][0]}/onlineMeetings/createOrGet",
                      json={"externalId": "cli-1"}, headers={"Authorization": f"Bearer {token}"},
                      verify=str(ca_out), timeout=10)
        assert r.status_code == 201
        http.close()
    finally:
        code, out, err = stop(proc)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"bulkmeet emulator listening on {info['base_url']}"
    assert tenant["id"] in out and app["clientId"] in out and str(ca_out) in out
    assert app["secret"] not in out + err  # no secrets in output
    assert "Traceback" not in err
    assert [m["externalId"] for m in json.loads(state.read_text())["meetings"]] == ["cli-1"]


def test_sigint_stops_cleanly(tmp_path):
    proc, _ = spawn(tmp_path)
    code, out, err = stop(proc, signal.SIGINT)
    assert code == 0 and "Traceback" not in err and "stopped" in err


@pytest.mark.parametrize("args, fragment", [
    (["--port", "99999"], "--port"),
    (["--host", "8.8.8.8"], "loopback"),
    (["--host", "example.com"], "loopback"),
    (["--latency-ms", "fast"], "latency"),
    (["--latency-ms", "50-10"], "latency"),
    (["--fault-rate", "2"], "--fault-rate"),
    (["--rate-limit", "0"], "--rate-limit"),
    (["--directory", "/nonexistent/directory.json"], "not found"),
    (["--token-lifetime", "0"], "--token-lifetime"),
    (["--no-such-option"], "--no-such-option"),
])
def test_bad_options_are_one_line_and_exit_2(args, fragment):
    result = CliRunner().invoke(emulator, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_bad_directory_file_is_one_line(tmp_path):
    bad = tmp_path / "directory.json"
    bad.write_text('{"tenants": [{"id": "t", "users": [{"id": "u"}]}]}')
    result = CliRunner().invoke(emulator, ["--directory", str(bad)])
    assert result.exit_code == 2
    assert "userPrincipalName" in result.stderr and str(bad) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_help_lists_the_options():
    result = CliRunner().invoke(emulator, ["--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--directory", "--latency-ms", "--rate-limit", "--fault-rate",
                   "--seed", "--ca-out", "--state", "--token-lifetime", "--stall-seconds", "--ready-file"):
        assert option in result.output


def test_port_in_use_is_one_line(emu):
    result = CliRunner().invoke(emulator, ["--port", str(emu.port)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "already in use" in lines[0] and str(emu.port) in lines[0]


def test_every_option_is_in_the_readme_emulator_section():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## The emulator"):readme.index("\n## ", readme.index("## The emulator") + 5)]
    for param in emulator.params:
        for opt in getattr(param, "opts", []):
            if opt.startswith("--") and opt != "--help":
                assert f"`{opt}" in section, f"{opt} is not documented in the README's emulator section"


def test_new_options_reach_the_emulator(tmp_path, directory_file):
    proc, info = spawn(tmp_path, "--directory", str(directory_file), "--rate-limit", "40",
                       "--burst", "80", "--per-organizer-rate", "4", "--early-penalty", "2",
                       "--ratelimit-headers", "--meeting-cap", "0", "--cap-error", "403",
                       "--policy-error-code", "General", "--helpful-errors", "--latency-ms", "1-2")
    try:
        cfg = requests.get(f"{info['base_url']}/_emulator/stats", verify=info["ca_path"]).json()["config"]
    finally:
        stop(proc)
    assert (cfg["rate_limit"], cfg["burst"], cfg["per_organizer_rate"], cfg["early_penalty_s"]) == (40, 80, 4, 2)
    assert cfg["ratelimit_headers"] and cfg["helpful_errors"] and cfg["meeting_cap"] is None
    assert (cfg["cap_error"], cfg["policy_error_code"], cfg["latency_ms"]) == ("403", "General", [1, 2])
