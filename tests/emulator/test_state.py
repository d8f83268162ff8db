"""--state: a restarted emulator remembers meetings, approved device codes, refresh tokens, keys."""
from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest

from bulkmeet.emulator import Emulator, EmulatorOptions
from tests.emulator.conftest import ADA, PUBLIC_APP, TENANT, UPN, Api

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def device_flow(api: Api) -> dict:
    r = api.request("POST", f"/{TENANT}/oauth2/v2.0/devicecode", data={
        "client_id": PUBLIC_APP, "scope": "https://graph.microsoft.com/OnlineMeetings.ReadWrite"})
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


def test_state_is_written_while_running_not_only_at_stop(directory_file, tmp_path):
    state = tmp_path / "state.json"
    with Emulator(EmulatorOptions(directory=directory_file, state_path=state)) as emu:
        api = Api(emu)
        assert api.create(ADA, {"externalId": "early"}).status_code == 201
        deadline = time.monotonic() + 10
        seen: list[str] = []
        while time.monotonic() < deadline:
            if state.exists():
                seen = [m["externalId"] for m in json.loads(state.read_text())["meetings"]]
                if seen:
                    break
            time.sleep(0.05)
        assert seen == ["early"]
        assert not list(tmp_path.glob(".state.json.*"))  # no temp files left behind
        api.close()


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
