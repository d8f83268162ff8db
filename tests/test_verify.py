"""`bulkmeet verify`: meetings the journal remembers but the tenant forgot (issue 12, item 10).

Against the emulator over real HTTPS: a run makes the meetings, an "admin" deletes some of them
with a real DELETE, and verify must find exactly those, by sheet row, and --repair must make them
again so that the next run writes their new links.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests import helpers


def _delete(config: Path, meetings: list[dict]) -> None:
    """What an admin does by hand: a real DELETE of each meeting, over HTTPS."""
    from bulkmeet.config import load_config
    from bulkmeet.pipeline import _http_gateway

    gateway = _http_gateway(load_config(config))
    try:
        for m in meetings:
            assert gateway.delete_meeting(m["organizerId"], m["id"]).status == 204
    finally:
        gateway.close()


def test_verify_finds_deleted_meetings_and_repair_makes_them_again(
        tmp_path, tenant, emulator, secret_env, run_cli):
    rows = helpers.schedule_rows(tenant, 12)
    schedule = helpers.write_csv(tmp_path / "s.csv", rows)
    config = helpers.write_config(tmp_path / "bulkmeet.toml", tenant, emulator.base_url,
                                  emulator.ca_path)
    assert run_cli("run", schedule, "--config", config).code == 0
    clean = run_cli("verify", schedule, "--config", config)
    assert clean.code == 0, clean.err
    assert "12 journalled meetings: 12 present, 0 missing" in clean.out

    out = {r["externalId"]: r for r in helpers.read_output(tmp_path / "s.results.xlsx")}
    by_ext = {m["externalId"]: m for m in emulator.meetings()}
    victims = [by_ext[ext] for ext in list(out)[3:5]]  # sheet rows 5 and 6
    _delete(config, victims)
    gets_before = _gets(emulator)

    found = run_cli("verify", schedule, "--config", config)
    assert found.code == 1, found.out + found.err
    assert "12 journalled meetings: 10 present, 2 missing" in found.out
    for victim, row in zip(victims, (5, 6), strict=True):
        assert f"{schedule}: row {row}: the meeting {victim['id']} of " in found.out
    assert "--repair" in found.out
    assert _gets(emulator) - gets_before == 12  # one GET per journalled meeting, nothing else
    assert len(emulator.meetings()) == 10  # verify alone changes nothing

    repaired = run_cli("verify", schedule, "--config", config, "--repair")
    assert repaired.code == 0, repaired.out + repaired.err
    assert "2 missing, 2 re-created" in repaired.out
    assert len(emulator.meetings()) == 12
    assert run_cli("verify", schedule, "--config", config).code == 0

    again = run_cli("run", schedule, "--config", config)
    assert again.code == 0, again.err
    new = {m["externalId"]: m for m in emulator.meetings()}
    out = {r["externalId"]: r for r in helpers.read_output(tmp_path / "s.results.xlsx")}
    for victim in victims:
        assert out[victim["externalId"]]["joinWebUrl"] == new[victim["externalId"]]["joinWebUrl"]
        assert new[victim["externalId"]]["id"] != victim["id"]


def test_verify_without_a_journal_says_so(tmp_path, tenant, emulator, secret_env, run_cli):
    schedule = helpers.write_csv(tmp_path / "s.csv", helpers.schedule_rows(tenant, 2))
    config = helpers.write_config(tmp_path / "bulkmeet.toml", tenant, emulator.base_url,
                                  emulator.ca_path)
    result = run_cli("verify", schedule, "--config", config)
    assert result.code == 2
    assert f"There is no journal {tmp_path}/s.journal.sqlite for {schedule}" in result.err


def _gets(emulator) -> int:
    """GETs of single meetings the emulator answered (any status)."""
    return sum(sum(per.values()) for key, per in emulator.stats()["by_path"].items()
               if key.startswith("GET ") and "/onlineMeetings/" in key)


def test_an_interrupted_verify_exits_4_like_run_and_counts_what_it_did_not_reach(
        tmp_path, tenant, emulator, secret_env, run_cli):
    schedule = helpers.write_csv(tmp_path / "s.csv", helpers.schedule_rows(tenant, 30))
    config = helpers.write_config(tmp_path / "bulkmeet.toml", tenant, emulator.base_url,
                                  emulator.ca_path)
    assert run_cli("run", schedule, "--config", config).code == 0
    emulator.configure(latency_ms=(100, 100))  # 30 GETs one at a time: 3 s to stop it in
    gets_before = _gets(emulator)
    proc = subprocess.Popen([sys.executable, "-m", "bulkmeet", "verify", str(schedule),
                             "--config", str(config), "--concurrency", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ))
    deadline = time.monotonic() + 60
    while _gets(emulator) - gets_before < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 4, out + err
    found = re.search(r"30 journalled meetings: (\d+) present, 0 missing, (\d+) not reached "
                      r"\(stopped; run verify again\)", out)
    assert found, out
    present, not_reached = int(found[1]), int(found[2])
    assert present + not_reached == 30 and not_reached > 0
    assert "Traceback" not in err
    assert run_cli("verify", schedule, "--config", config).code == 0  # again: all 30 checked


def test_without_repair_the_next_run_makes_a_missing_meeting_again(
        tmp_path, tenant, emulator, secret_env, run_cli):
    schedule = helpers.write_csv(tmp_path / "s.csv", helpers.schedule_rows(tenant, 6))
    config = helpers.write_config(tmp_path / "bulkmeet.toml", tenant, emulator.base_url,
                                  emulator.ca_path)
    assert run_cli("run", schedule, "--config", config).code == 0
    out = helpers.read_output(tmp_path / "s.results.xlsx")
    victim = next(m for m in emulator.meetings() if m["externalId"] == out[2]["externalId"])
    _delete(config, [victim])

    found = run_cli("verify", schedule, "--config", config)
    assert found.code == 1, found.out + found.err
    assert re.search(rf"{re.escape(str(schedule))}: row 4: the meeting {re.escape(victim['id'])} "
                     r"of \S+ is gone from Teams \(404\), although the journal had it; the next "
                     r"bulkmeet run makes it again\n", found.out), found.out
    assert "6 journalled meetings: 5 present, 1 missing" in found.out
    assert "The next `bulkmeet run` makes the missing meetings again" in found.out
    # a second verify still lists it (it is still missing), without asking Graph about it again
    gets = _gets(emulator)
    still = run_cli("verify", schedule, "--config", config)
    assert still.code == 1 and "6 journalled meetings: 5 present, 1 missing" in still.out
    assert "found by an earlier verify" in still.out and _gets(emulator) - gets == 5

    again = run_cli("run", schedule, "--config", config)
    assert again.code == 0, again.out + again.err
    assert "6 rows: 1 created, 5 existing, 0 failed, 0 invalid" in again.out
    new = {m["externalId"]: m for m in emulator.meetings()}
    assert len(new) == 6 and new[victim["externalId"]]["id"] != victim["id"]
    assert run_cli("verify", schedule, "--config", config).code == 0


def test_verify_with_the_directory_the_run_used_finds_every_meeting(tmp_path, tenant, run_cli):
    schedule = helpers.write_csv(tmp_path / "term.csv", helpers.schedule_rows(tenant, 3))
    config = helpers.write_config(tmp_path / "bulkmeet.toml", tenant, "https://127.0.0.1:9",
                                  tenant.directory_path)  # the embedded emulator replaces both
    emulated = ("--config", config, "--emulator", "--directory", tenant.directory_path)
    made = run_cli("run", schedule, *emulated)
    assert made.code == 0 and "3 created" in made.out, made.out + made.err
    same = run_cli("verify", schedule, *emulated)
    assert same.code == 0, same.out + same.err
    assert "gone" not in same.out and "warning" not in same.err.lower(), same.out + same.err

    demo = run_cli("verify", schedule, "--config", config, "--emulator")
    state, note = tmp_path / "term.emulator-state.json", tmp_path / "term.emulator-tenant.json"
    directory = Path(tenant.directory_path).resolve()
    assert demo.code == 2, demo.out + demo.err
    assert demo.err == (
        f"bulkmeet: error: The embedded emulator's state {state} was made with --directory "
        f"{directory}, but this command uses the demo tenant, which does not have the organizers "
        f"of its meetings (the emulator would drop them): pass --directory {directory}, or delete "
        f"{state} and {note} to start afresh.\n")
    again = run_cli("verify", schedule, *emulated)  # the refused verify lost nothing
    assert again.code == 0 and "gone" not in again.out, again.out + again.err
