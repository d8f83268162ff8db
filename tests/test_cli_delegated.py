"""Delegated mode through the CLI: `bulkmeet login` (device code, as a real subprocess), then an
unattended `bulkmeet run` that creates meetings under /me from the cached sign-in, then logout."""
from __future__ import annotations

import os
import re
import subprocess
import sys

from tests import helpers


def delegated_config(tmp_path, tenant, emulator):
    config = helpers.write_config(tmp_path / "bulkmeet.toml", tenant, emulator.base_url,
                                  emulator.ca_path)
    text = config.read_text().replace('organizer = "Teacher"\n', "").replace(
        "[auth]\n", f'[auth]\nmode = "delegated"\ntoken_cache = "{tmp_path / "cache" / "tokens.json"}"\n')
    config.write_text(text)
    return config


def test_login_once_then_unattended_runs_create_meetings_as_me(tmp_path, tenant, emulator, run_cli):
    emulator.configure(device_code_interval_s=1)
    rows = helpers.schedule_rows(tenant, 4)
    schedule = helpers.write_csv(tmp_path / "mine.csv", rows)
    config = delegated_config(tmp_path, tenant, emulator)

    before = run_cli("run", schedule, "--config", config)
    assert before.code == 3
    assert f"bulkmeet login --config {config}" in before.err

    teacher_upn, teacher_id = tenant.teachers[0]
    login = subprocess.Popen([sys.executable, "-m", "bulkmeet", "login", "--config", str(config)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ))
    prompt = login.stderr.readline()
    code = re.search(r"enter the code (\S+)", prompt).group(1)
    emulator.approve_device_code(code, teacher_upn)
    out, err = login.communicate(timeout=60)
    assert login.returncode == 0, err
    assert f"Signed in as {teacher_upn}" in out
    cache = tmp_path / "cache" / "tokens.json"
    assert cache.stat().st_mode & 0o777 == 0o600

    result = run_cli("run", schedule, "--config", config)
    assert result.code == 0, result.err
    meetings = emulator.meetings()
    assert len(meetings) == 4 and {m["organizerId"] for m in meetings} == {teacher_id}
    assert "/me/onlineMeetings" in str(emulator.stats()["by_path"])

    assert run_cli("logout", "--config", config).code == 0
    assert not cache.exists()
