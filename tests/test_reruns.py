"""Safe reruns: journal, crash and stop safety, throttling and faults — against the emulator.

Runs that must be killed run as real subprocesses (`python -m bulkmeet run ...`), so signals,
locks and the atomic output file are exercised for real.
"""
from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bulkmeet.journal import Journal
from bulkmeet.quota import this_month
from tests import helpers
from tests.helpers import create_calls, setup_run


def spawn(schedule: Path, config: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bulkmeet", "run", str(schedule), "--config", str(config),
         "--quiet", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def one_meeting_per_external_id(emulator) -> collections.Counter:
    counts = collections.Counter((m.get("organizerId"), m["externalId"]) for m in emulator.meetings())
    assert counts and max(counts.values()) == 1, "a duplicate meeting was created"
    return counts


def assert_output_agrees_with_tenant(output: Path, emulator, n: int) -> None:
    rows = helpers.read_output(output)
    assert len(rows) == n
    by_ext = {m["externalId"]: m["id"] for m in emulator.meetings()}
    for r in rows:
        assert r["status"] in ("created", "existing"), r
        assert r["meetingId"] == by_ext[r["externalId"]]


def test_thirty_percent_faults_every_row_gets_exactly_one_meeting(tmp_path, tenant, emulator,
                                                                 secret_env, run_cli):
    emulator.configure(fault_rate=0.3, stall_s=1.5)
    schedule, config, _ = setup_run(tmp_path, tenant, emulator, n=30, fmt="csv",
                                    extra_graph="", extra_run="max_attempts = 12")
    text = config.read_text().replace("read_timeout = 5", "read_timeout = 1")
    config.write_text(text)
    result = run_cli("run", schedule, "--config", config)
    assert result.code == 0, result.out + result.err
    stats = emulator.stats()
    assert sum(stats["faults"].values()) > 5  # faults really happened
    assert len(one_meeting_per_external_id(emulator)) == 30
    out = helpers.read_output(tmp_path / "schedule.results.xlsx")
    attempts = [int(r["attempts"]) for r in out]
    assert min(attempts) >= 1 and max(attempts) > 1
    assert_output_agrees_with_tenant(tmp_path / "schedule.results.xlsx", emulator, 30)


def test_rate_limit_below_offered_load_finishes_clean_with_few_429s(tmp_path, tenant, emulator,
                                                                    secret_env, run_cli):
    emulator.configure(rate_limit=40)
    schedule, config, _ = setup_run(tmp_path, tenant, emulator, n=160, fmt="csv")
    result = run_cli("run", schedule, "--config", config, "--concurrency", "16",
                     "--summary-json", tmp_path / "s.json")
    assert result.code == 0, result.err
    stats = emulator.stats()
    graph_requests = sum(sum(v.values()) for k, v in stats["by_path"].items() if "/_emulator" not in k
                         and ("createOrGet" in k or "/users/" in k))
    # The gate learns the limit from its first 429s, so some are expected; how few is measured by
    # bench/ (scenarios 2 and 7: under 3 %). Here only "not a retry storm" is asserted: on a loaded
    # 2-core machine the first burst's share varies (10-15 % seen), a storm is several times that.
    assert stats["throttled"] < 0.25 * graph_requests, stats
    settled = json.loads((tmp_path / "s.json").read_text())["concurrency"]
    assert settled.startswith("concurrency settled at "), settled


def wait_for_meetings(emulator, count: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while emulator.stats()["meetings"] < count:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.005)


def test_kill_9_at_several_points_then_rerun_until_done(tmp_path, tenant, emulator, secret_env):
    emulator.configure(latency_ms=(1, 4))
    n = 3000
    schedule, config, _ = setup_run(tmp_path, tenant, emulator, n=n, fmt="csv")
    output = tmp_path / "schedule.results.xlsx"
    for share in (0.15, 0.45, 0.75):  # kill -9 when the tenant has this share of the meetings
        proc = spawn(schedule, config)
        wait_for_meetings(emulator, int(share * n), proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert emulator.stats()["meetings"] < n
        if output.exists():  # never torn: the previous complete file or nothing
            assert len(helpers.read_output(output)) == n
    for _ in range(5):
        proc = spawn(schedule, config)
        out, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            break
        assert proc.returncode == 1, err
    assert proc.returncode == 0, err
    assert len(one_meeting_per_external_id(emulator)) == n
    assert_output_agrees_with_tenant(output, emulator, n)


def test_sigterm_finishes_in_flight_rows_writes_everything_and_a_rerun_completes(
        tmp_path, tenant, emulator, secret_env):
    emulator.configure(latency_ms=(20, 40))
    n = 400
    schedule, config, _ = setup_run(tmp_path, tenant, emulator, n=n, fmt="csv")
    proc = spawn(schedule, config, "--concurrency", "4")
    wait_for_meetings(emulator, 40, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 4, err
    rows = helpers.read_output(tmp_path / "schedule.results.xlsx")
    statuses = collections.Counter(r["status"] for r in rows)
    assert statuses["created"] > 0 and statuses["pending"] > 0
    assert set(statuses) <= {"created", "pending"}
    sent_before = create_calls(emulator)
    assert len(emulator.meetings()) == statuses["created"]  # in-flight rows were finished, recorded
    proc = spawn(schedule, config)
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert create_calls(emulator) - sent_before == statuses["pending"]  # only what was left
    assert_output_agrees_with_tenant(tmp_path / "schedule.results.xlsx", emulator, n)


def test_overlapping_runs_the_second_exits_at_once(tmp_path, tenant, emulator, secret_env):
    emulator.configure(latency_ms=(100, 100))
    schedule, config, _ = setup_run(tmp_path, tenant, emulator, n=40, fmt="csv")
    first = spawn(schedule, config, "--concurrency", "2")
    wait_for_meetings(emulator, 1, first)  # the first run is sending, so it holds the lock
    second = spawn(schedule, config)
    out, err = second.communicate(timeout=20)
    assert second.returncode == 5
    assert "Another bulkmeet run" in err and "Traceback" not in err
    first.communicate(timeout=60)
    assert first.returncode == 0


def test_changed_row_is_updated_not_resent(tmp_path, tenant, emulator, secret_env, run_cli):
    """The sheet is the truth: a changed time is PATCHed (bulkmeet.sync), not re-sent to a
    createOrGet that would ignore it."""
    rows = helpers.schedule_rows(tenant, 5)
    schedule = helpers.write_csv(tmp_path / "s.csv", rows)
    config = helpers.write_config(tmp_path / "bulkmeet.toml", tenant, emulator.base_url,
                                  emulator.ca_path)
    output = tmp_path / "s.results.xlsx"
    assert run_cli("run", schedule, "--config", config, "--output", output).code == 0
    before = create_calls(emulator)
    rows[2][5], rows[2][6] = "13:00", "13:50"  # the time changed; keys (CRN, Date) did not
    helpers.write_csv(schedule, rows)
    result = run_cli("run", schedule, "--config", config, "--output", output)
    assert result.code == 0, result.err
    assert create_calls(emulator) == before
    out = helpers.read_output(output)
    assert out[2]["status"] == "updated" and out[2]["changes"].startswith("start 10:00→13:00")
    assert not any(r["warning"] for r in out)


def test_retry_failed_sends_only_failed_rows_and_full_sends_all(tmp_path, tenant, emulator,
                                                               secret_env, run_cli):
    rows = helpers.schedule_rows(tenant, 8)
    schedule = helpers.write_csv(tmp_path / "s.csv", rows[:4])
    config = helpers.write_config(tmp_path / "bulkmeet.toml", tenant, emulator.base_url,
                                  emulator.ca_path, extra_run="max_attempts = 1")
    assert run_cli("run", schedule, "--config", config).code == 0
    # Graph unreachable (nothing listens on port 9 of loopback), identity still fine.
    unreachable = tmp_path / "down.toml"
    unreachable.write_text(config.read_text().replace(
        f'base_url = "{emulator.base_url}"', 'base_url = "https://127.0.0.1:9"'))
    helpers.write_csv(schedule, rows[:6])
    down = run_cli("run", schedule, "--config", unreachable)
    assert down.code == 1 and "2 failed" in down.out  # rows 6 and 7 failed
    helpers.write_csv(schedule, rows)
    before = create_calls(emulator)
    result = run_cli("run", schedule, "--config", config, "--retry-failed")
    assert result.code == 1  # the two new rows were not sent: pending
    assert create_calls(emulator) - before == 2
    statuses = [r["status"] for r in helpers.read_output(tmp_path / "s.results.xlsx")]
    assert statuses == ["existing"] * 4 + ["created"] * 2 + ["pending"] * 2
    before = create_calls(emulator)
    assert run_cli("run", schedule, "--config", config, "--full").code == 0
    assert create_calls(emulator) - before == 8
    assert len(one_meeting_per_external_id(emulator)) == 8


def test_an_organizer_at_the_monthly_cap_fails_with_one_note(
        tmp_path, tenant, emulator, secret_env, run_cli):
    """Graph's 2,000 meetings per organizer per month, shrunk to 2 (the emulator's cap answers 429
    without Retry-After): the organizer's other rows fail with one sentence, not row by row,
    and a later run (here: after the cap was raised) sends just those rows."""
    emulator.configure(meeting_cap=2)
    teacher = tenant.teachers[0][0]
    rows = [r for r in helpers.schedule_rows(tenant, 12) if r[3] == teacher]  # 4 rows, one teacher
    schedule = helpers.write_csv(tmp_path / "s.csv", rows)
    config = helpers.write_config(tmp_path / "bulkmeet.toml", tenant, emulator.base_url,
                                  emulator.ca_path, extra_run="max_concurrency = 1")
    result = run_cli("run", schedule, "--config", config, "--output", tmp_path / "o.csv",
                     "--concurrency", "1")
    assert result.code == 1, result.err
    out = helpers.read_output(tmp_path / "o.csv")
    assert [r["status"] for r in out] == ["created", "created", "failed", "failed"]
    assert out[2]["error"] == out[3]["error"]
    assert f"Organizer {teacher} has reached Graph's limit" in out[3]["error"]
    assert result.err.count("reached Graph's limit") == 1  # one note for the organizer
    with Journal.open(tmp_path / "s.journal.sqlite") as journal:  # what the next run counts from
        assert journal.created_in_month(this_month()) == {teacher: 2}
    before = create_calls(emulator)
    emulator.configure(meeting_cap=100)
    again = run_cli("run", schedule, "--config", config, "--output", tmp_path / "o.csv")
    assert again.code == 0, again.err  # below the real cap, the failed rows are sent again
    assert create_calls(emulator) - before == 2
