"""A token cache that is valid JSON of the wrong shape is a damaged cache (exit 3, sign in again).

msal trusts the file it wrote; a cache edited by hand, half-restored from a backup or written by
another tool fails deep inside msal (AttributeError, ValueError) unless bulkmeet checks its shape.
Driven through the CLI on a real cache from a real device-code sign-in to the emulator.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from tests import helpers


def _signed_in(tmp_path, tenant, emulator):
    """A delegated config and the token cache `bulkmeet login` wrote for it."""
    emulator.configure(device_code_interval_s=1)
    config = helpers.write_config(tmp_path / "bulkmeet.toml", tenant, emulator.base_url,
                                  emulator.ca_path)
    cache = tmp_path / "cache" / "tokens.json"
    config.write_text(config.read_text().replace('organizer = "Teacher"\n', "").replace(
        "[auth]\n", f'[auth]\nmode = "delegated"\ntoken_cache = "{cache}"\n'))
    login = subprocess.Popen([sys.executable, "-m", "bulkmeet", "login", "--config", str(config)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ))
    code = re.search(r"enter the code (\S+)", login.stderr.readline()).group(1)
    emulator.approve_device_code(code, tenant.teachers[0][0])
    _, err = login.communicate(timeout=60)
    assert login.returncode == 0, err
    return config, cache


def _damaged(good: dict) -> dict[str, str]:
    """Ways to damage a cache that stay valid JSON, named for the failure message."""
    def edit(section: str, field: str, value: object, *, drop_access_token: bool = False) -> str:
        data = json.loads(json.dumps(good))
        for entry in data[section].values():
            if value is _MISSING:
                del entry[field]
            else:
                entry[field] = value
        if drop_access_token:  # so msal must redeem the refresh token
            data["AccessToken"] = {}
        return json.dumps(data)

    return {
        "a list": "[]",
        "null": "null",
        "a string": '"tokens"',
        "refresh token entry is a string": json.dumps({**good, "RefreshToken": {"k": "1.AQxyz"}}),
        "accounts are a list": json.dumps({**good, "Account": []}),
        "expires_on is not a number": edit("AccessToken", "expires_on", "soon"),
        "cached_at is a list": edit("AccessToken", "cached_at", [1]),
        "last_modification_time is null": edit("RefreshToken", "last_modification_time", None,
                                               drop_access_token=True),
        "the access token is missing": edit("AccessToken", "secret", _MISSING),
        "the access token's scopes are a number": edit("AccessToken", "target", 5),
        "the refresh token is null": edit("RefreshToken", "secret", None, drop_access_token=True),
        "a refresh token typed as another credential": edit(
            "RefreshToken", "credential_type", "IdToken", drop_access_token=True),
        "the account id is a number": edit("Account", "home_account_id", 5),
        "the account has no authority type": edit("Account", "authority_type", _MISSING),
    }


_MISSING = object()


def test_a_cache_of_the_wrong_shape_is_damaged_not_an_internal_error(
        tmp_path, tenant, emulator, run_cli):
    config, cache = _signed_in(tmp_path, tenant, emulator)
    schedule = helpers.write_csv(tmp_path / "s.csv", helpers.schedule_rows(tenant, 1))
    good = json.loads(cache.read_text())
    expected = (f"The token cache {cache} is damaged: run `bulkmeet login --config {config}` "
                "again.")
    for name, text in _damaged(good).items():
        cache.write_text(text)
        cache.chmod(0o600)
        result = run_cli("run", schedule, "--config", config)
        assert result.code == 3, (name, result.err)
        assert expected in result.err, (name, result.err)
        assert "authority_host" not in result.err and "internal error" not in result.err, name
    assert emulator.meetings() == []  # nothing was sent with a damaged cache
    cache.write_text(json.dumps(good))  # the real cache still works: the check is not too strict
    cache.chmod(0o600)
    result = run_cli("run", schedule, "--config", config)
    assert result.code == 0, result.err
    assert len(emulator.meetings()) == 1
