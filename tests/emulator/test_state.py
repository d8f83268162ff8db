"""--state: a restarted (or killed) emulator remembers meetings, device codes, refresh tokens, keys."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from bulkmeet.emulator import Emulator, EmulatorOptions
from bulkmeet.emulator.state import journal_path
from tests.emulator.helpers import ADA, APP, GRAPH_SCOPE, PUBLIC_APP, SECRETS, TENANT, UPN, Api, spawn

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def device_flow(api: Api) -> dict:
    r = api.request("POST", f"/{TENANT}/oauth2/v2.0/devicecode", data={
        "client_id": PUBLIC_APP,
        "scope": "https://graph.microsoft.com/OnlineMeetings.ReadWrite openid offline_access"})
    assert r.status_code == 200, r.text
    return r.json()


def redeem(api: Api, device_code: str):
    return api.request("POST", f"/{TENANT}/oauth2/v2.0/token", data={
        "grant_type": DEVICE_GRANT, "client_id": PUBLIC_APP, "device_code": device_code})


def test_restart_remembers_meetings_codes_tokens_and_keys(directory_file, tmp_path):
    state = tmp_path / "emulator-state.json"
    options = EmulatorOptions(directory=directory_file, state_path=state)

    with Emulator(options) as emu:
        api = Api(emu)
        created = api.create(ADA, {"externalId": "persist-me", "subject": "Kept"})
        assert created.status_code == 201
        app_token = api.app_token()
        # A sign-in that completed (its refresh token must survive)...
        done = device_flow(api)
        emu.approve_device_code(done["user_code"], UPN[ADA])
        refresh_token = redeem(api, done["device_code"]).json()["refresh_token"]
        # ...and one approved but not yet redeemed when the emulator stops.
        pending = device_flow(api)
        emu.approve_device_code(pending["user_code"], UPN[ADA])
        ca_before = emu.ca_path.read_bytes()
        api.close()

    assert stat.S_IMODE(state.stat().st_mode) == 0o600  # it holds the emulator's keys
    saved = json.loads(state.read_text())
    assert [m["externalId"] for m in saved["meetings"]] == ["persist-me"]

    with Emulator(options) as emu:
        assert emu.ca_path.read_bytes() == ca_before  # clients that trusted it still do
        api = Api(emu)
        again = api.create(ADA, {"externalId": "persist-me", "subject": "ignored"})
        assert again.status_code == 200 and again.json()["id"] == created.json()["id"]
        assert again.json()["subject"] == "Kept"
        got = api.request("GET", f"/v1.0/users/{ADA}/onlineMeetings/{created.json()['id']}", token=app_token)
        assert got.status_code == 200  # the access token from before the restart is still valid
        assert redeem(api, pending["device_code"]).status_code == 200
        refreshed = api.request("POST", f"/{TENANT}/oauth2/v2.0/token", data={
            "grant_type": "refresh_token", "client_id": PUBLIC_APP, "refresh_token": refresh_token,
            "scope": "https://graph.microsoft.com/OnlineMeetings.ReadWrite"})
        assert refreshed.status_code == 200, refreshed.text
        api.close()


def test_every_change_is_in_the_journal_before_the_answer(directory_file, tmp_path):
    """Durable per write: the answer is sent only once the change is on disk (journal)."""
    state = tmp_path / "state.json"
    with Emulator(EmulatorOptions(directory=directory_file, state_path=state)) as emu:
        api = Api(emu)
        assert state.exists()  # the keys are kept from the first moment
        made = api.create(ADA, {"externalId": "early"})
        assert made.status_code == 201
        lines = [json.loads(x) for x in journal_path(state).read_text().splitlines()]
        assert [(e["op"], e["r"]["externalId"]) for e in lines] == [("m", "early")]
        mid = made.json()["id"]
        path = f"/v1.0/users/{ADA}/onlineMeetings/{mid}"
        assert api.request("PATCH", path, token=api.app_token(), json={"subject": "New"}).status_code == 200
        assert api.request("DELETE", path, token=api.app_token()).status_code == 204
        ops = [json.loads(x)["op"] for x in journal_path(state).read_text().splitlines()]
        assert ops == ["m", "m", "d"]
        assert emu.stats()["journal_fsyncs"] >= 3
        api.close()
    # A clean stop compacts into the snapshot and removes the journal.
    assert not journal_path(state).exists()
    assert json.loads(state.read_text())["meetings"] == []
    assert not list(tmp_path.glob(".state.json.*"))  # no temp files left behind


def _load(proc: subprocess.Popen, info: dict, token: str) -> tuple[dict[str, str], dict[str, str], set[str]]:
    """Create, patch and delete meetings from 4 threads until the process dies; what was
    acknowledged."""
    acked: dict[str, str] = {}  # externalId -> meeting id (201/200 seen)
    patched: dict[str, str] = {}  # meeting id -> subject (200 seen)
    deleted: set[str] = set()  # externalIds whose meeting was deleted (204 seen)
    doomed: set[str] = set()  # DELETE sent: a kill before the 204 may or may not have kept it
    lock = threading.Lock()

    def worker(t: int) -> None:
        s = requests.Session()
        s.trust_env = False
        headers = {"Authorization": f"Bearer {token}"}
        base = f"{info['base_url']}/v1.0/users/{ADA}/onlineMeetings"
        n = 0
        while True:
            ext = f"k-{t}-{n}"
            try:
                r = s.post(f"{base}/createOrGet", json={"externalId": ext}, headers=headers,
                           verify=info["ca_path"], timeout=10)
                if r.status_code not in (200, 201):
                    continue
                mid = r.json()["id"]
                with lock:
                    acked[ext] = mid
                if n % 3 == 0:
                    r = s.patch(f"{base}/{mid}", json={"subject": f"s-{ext}"}, headers=headers,
                                verify=info["ca_path"], timeout=10)
                    if r.status_code == 200:
                        with lock:
                            patched[mid] = f"s-{ext}"
                elif n % 5 == 0:
                    with lock:
                        doomed.add(ext)  # from here on, either outcome is right
                    r = s.delete(f"{base}/{mid}", headers=headers, verify=info["ca_path"], timeout=10)
                    if r.status_code == 204:
                        with lock:
                            deleted.add(ext)
            except requests.RequestException:
                return  # the emulator is gone
            n += 1

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    deadline = time.monotonic() + 30
    # 160, not 150: up to one in-flight DELETE per thread is dropped from the result below.
    while len(acked) < 160 and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)  # mid-load: requests are in flight
    proc.wait(10)
    for th in threads:
        th.join(15)
    return {k: v for k, v in acked.items() if k not in doomed - deleted}, patched, deleted


def test_kill_9_mid_load_loses_no_acknowledged_meeting(directory_file, tmp_path):
    state = tmp_path / "state.json"
    proc, info = spawn(tmp_path, "--directory", str(directory_file), "--state", str(state))
    try:
        r = requests.post(f"{info['base_url']}/{TENANT}/oauth2/v2.0/token", verify=info["ca_path"],
                          data={"grant_type": "client_credentials", "client_id": APP,
                                "client_secret": SECRETS[APP], "scope": GRAPH_SCOPE})
        token = r.json()["access_token"]
        acked, patched, deleted = _load(proc, info, token)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert len(acked) >= 150 and patched and deleted
    assert journal_path(state).exists()  # no clean stop happened
    with Emulator(EmulatorOptions(directory=directory_file, state_path=state)) as emu:
        kept = {m["externalId"]: m for m in emu.meetings()}
        assert not deleted & set(kept), "a deleted meeting came back"
        missing = sorted(set(acked) - deleted - set(kept))
        assert not missing, f"{len(missing)} acknowledged meetings lost, e.g. {missing[:3]}"
        assert all(kept[ext]["id"] == mid for ext, mid in acked.items() if ext not in deleted)
        by_id = {m["id"]: m for m in kept.values()}
        assert all(by_id[mid]["subject"] == subject for mid, subject in patched.items())
    assert not journal_path(state).exists()  # compacted on start, removed at the clean stop


def test_a_torn_last_journal_line_is_dropped_and_damage_elsewhere_is_refused(directory_file, tmp_path):
    state = tmp_path / "state.json"
    with Emulator(EmulatorOptions(directory=directory_file, state_path=state)) as emu:
        api = Api(emu)
        assert api.create(ADA, {"externalId": "whole"}).status_code == 201
        good = journal_path(state).read_bytes()
        api.close()
    journal_path(state).write_bytes(good + good[: len(good) // 2])  # a kill mid-append
    with Emulator(EmulatorOptions(directory=directory_file, state_path=state)) as emu:
        assert [m["externalId"] for m in emu.meetings()] == ["whole"]
    journal_path(state).write_bytes(b"{broken\n" + good)
    with pytest.raises(ValueError) as exc:
        Emulator(EmulatorOptions(directory=directory_file, state_path=state))
    assert "journal is damaged at line 1" in str(exc.value) and "delete it" in str(exc.value)


def test_without_state_a_restart_forgets(directory_file):
    with Emulator(EmulatorOptions(directory=directory_file)) as emu:
        api = Api(emu)
        assert api.create(ADA, {"externalId": "gone"}).status_code == 201
        api.close()
    with Emulator(EmulatorOptions(directory=directory_file)) as emu:
        api = Api(emu)
        assert api.create(ADA, {"externalId": "gone"}).status_code == 201
        api.close()


@pytest.mark.parametrize("content", [
    "{not json", '{"version": 99}', "[]",
    '{"version": 1, "meetings": [{"tenantId": "t"}]}',
    '{"version": 1, "ca": {"certPem": "not a certificate", "keyPem": "x"}}',
])
def test_unusable_state_file_is_a_clear_error(directory_file, tmp_path, content):
    state = tmp_path / "state.json"
    state.write_text(content)
    with pytest.raises(ValueError) as exc:
        Emulator(EmulatorOptions(directory=directory_file, state_path=state))
    assert str(state) in str(exc.value) and "delete it" in str(exc.value)


def test_ca_dir_keeps_the_ca_across_restarts(directory_file, tmp_path):
    ca_dir = tmp_path / "ca"
    with Emulator(EmulatorOptions(directory=directory_file, ca_dir=ca_dir)) as emu:
        first = emu.ca_path.read_bytes()
        assert emu.ca_path == ca_dir / "ca.pem"
    assert stat.S_IMODE((ca_dir / "ca-key.pem").stat().st_mode) == 0o600
    with Emulator(EmulatorOptions(directory=directory_file, ca_dir=ca_dir)) as emu:
        assert emu.ca_path.read_bytes() == first
        assert Api(emu).request("GET", "/_emulator/health").status_code == 200


def test_temporary_ca_is_removed_at_stop(directory_file):
    emu = Emulator(EmulatorOptions(directory=directory_file)).start()
    ca = Path(emu.ca_path)
    assert ca.exists()
    emu.stop()
    assert not ca.exists()


def test_seeded_restart_does_not_reuse_meeting_ids(directory_file, tmp_path):
    options = EmulatorOptions(directory=directory_file, state_path=tmp_path / "s.json", seed=9)
    with Emulator(options) as emu:
        api = Api(emu)
        first = api.create(ADA, {"externalId": "one"}).json()["id"]
        api.close()
    with Emulator(options) as emu:
        api = Api(emu)
        second = api.create(ADA, {"externalId": "two"}).json()["id"]
        assert second != first
        got = api.request("GET", f"/v1.0/users/{ADA}/onlineMeetings/{first}", token=api.app_token())
        assert got.json()["externalId"] == "one"
        api.close()


_LIMITED_JOURNAL = """
import resource, sys
from pathlib import Path
from bulkmeet.emulator.state import Journal, StateWriteError
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
journal = Journal(Path(sys.argv[1]))
for n in range(100):
    try:
        journal.sync(journal.write({"op": "dcx", "device_code": str(n) * 40}))
    except StateWriteError as exc:
        print(n, isinstance(exc, OSError), exc.filename, exc, sep="|")
        break
"""


def test_a_journal_the_disk_refuses_is_a_clear_error_and_never_keeps_half_a_line(tmp_path):
    # RLIMIT_FSIZE in a child: the kernel refuses to grow the file past 1000 bytes, as a full
    # disk would; the refused record must be cut off again, or the next start would see a
    # damaged journal instead of one that merely stops early.
    path = tmp_path / "state.json.journal"
    done = subprocess.run([sys.executable, "-c", _LIMITED_JOURNAL, str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    n, is_os_error, filename, message = done.stdout.strip().split("|")
    assert int(n) > 0 and is_os_error == "True" and filename == str(path)
    assert message == (f"Cannot write the emulator journal {path} (File too large). Free disk "
                       "space or fix the folder's permissions, then run again: the meetings the "
                       "emulator confirmed are in its state file and journal.")
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) - 1 == int(n)
    assert all(json.loads(line)["op"] == "dcx" for line in lines[:-1])


def test_the_emulator_command_on_a_full_disk_names_the_state_file_not_the_port(tmp_path):
    state = tmp_path / "state.json"
    script = ("import resource, sys\nresource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))\n"
              "from bulkmeet.emulator.command import emulator\nemulator(sys.argv[1:])\n")
    done = subprocess.run([sys.executable, "-c", script, "--state", str(state), "--port", "0"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    assert done.stderr == (f"bulkmeet emulator: error: Cannot write the emulator state file {state} "
                           "(File too large). Free disk space or fix the folder's permissions, then "
                           "run again: the meetings the emulator confirmed are in its state file "
                           "and journal.\n")
    assert not state.exists() and "listening" not in done.stdout
