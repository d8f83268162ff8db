"""Sync through the CLI against the emulator: the sheet changes, Teams follows — updates,
removed rows, cancels and their safety limit, meeting options, and `bulkmeet plan`.

Every test ends by comparing the emulator's meetings with the sheet itself (``assert_tenant_is``),
not with bulkmeet's own output: the tenant is the thing that must be right."""
from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from openpyxl import load_workbook

from tests import helpers

CHICAGO = ZoneInfo("America/Chicago")


def setup(tmp_path: Path, tenant, emulator, n: int = 10, extra: str = ""):
    rows = helpers.schedule_rows(tenant, n)
    schedule = helpers.write_xlsx(tmp_path / "term.xlsx", rows)
    config = helpers.write_config(tmp_path / "bulkmeet.toml", tenant, emulator.base_url,
                                  emulator.ca_path)
    if extra:
        config.write_text(config.read_text() + "\n" + extra)
    return schedule, config, rows


def utc(day: str, hhmm: str) -> str:
    local = datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=CHICAGO)
    return local.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M")


def assert_tenant_is(emulator, tenant, rows: list[list[str]]) -> None:
    """The emulator holds exactly one meeting per sheet row, with the row's details."""
    upn_by_id = {oid: upn for upn, oid in tenant.teachers}
    meetings = emulator.meetings()
    have = sorted(
        (upn_by_id[m["organizerId"]], m["subject"], m["startDateTime"][:16],
         m["endDateTime"][:16],
         tuple(sorted(a["upn"] for a in m["participants"]["attendees"])))
        for m in meetings)
    want = sorted(
        (r[3], f"{r[1]}: {r[2]}", utc(r[4], r[5]), utc(r[4], r[6]),
         tuple(sorted(r[7].split(";")) if r[7] else ()))
        for r in rows)
    assert have == want


def method_count(emulator, method: str) -> int:
    stats = emulator.stats()
    return sum(n for key, per in stats["by_path"].items() if key.startswith(method + " ")
               and key.split(" ", 1)[1].startswith(("/v1.0/", "/beta/")) for n in per.values())


def writes(emulator) -> int:
    return sum(method_count(emulator, m) for m in ("POST", "PATCH", "DELETE"))


def sheet_rows(path: Path, title: str) -> list[dict]:
    wb = load_workbook(path, read_only=True)
    if title not in wb.sheetnames:
        return []
    values = list(wb[title].iter_rows(values_only=True))
    width = len(values[0])  # trailing empty cells are not stored
    return [dict(zip(values[0], (*r, *[None] * (width - len(r))), strict=True))
            for r in values[1:]]


def test_moved_renamed_and_new_attendees_are_patched_not_recreated(
        tmp_path, tenant, emulator, secret_env, run_cli):
    schedule, config, rows = setup(tmp_path, tenant, emulator)
    assert run_cli("run", schedule, "--config", config).code == 0
    posts = method_count(emulator, "POST")
    rows[0][5], rows[0][6] = "14:00", "14:50"  # 08:00 -> 14:00
    rows[1][2] = "Lecture 1 (room 204)"
    rows[2][7] = rows[2][7] + ";" + tenant.students[5]  # one added
    rows[3][7] = rows[3][7].split(";")[0]  # one removed
    helpers.write_xlsx(schedule, rows)
    result = run_cli("run", schedule, "--config", config, "--summary-json", tmp_path / "s.json")
    assert result.code == 0, result.err
    assert "10 rows: 0 created, 4 updated, 6 existing" in result.out
    assert method_count(emulator, "POST") == posts  # nothing re-sent to createOrGet
    assert method_count(emulator, "PATCH") == 4
    out = helpers.read_output(tmp_path / "term.results.xlsx")
    assert [r["status"] for r in out[:5]] == ["updated"] * 4 + ["existing"]
    assert out[0]["changes"] == "start 08:00→14:00, end 08:50→14:50"
    assert out[1]["changes"] == 'subject "CS101: Lecture 1"→"CS101: Lecture 1 (room 204)"'
    assert out[2]["changes"] == f"attendees +{tenant.students[5]}"
    assert out[3]["changes"].startswith("attendees -")
    assert out[0]["startDateTimeUtc"].startswith(utc(rows[0][4], "14:00"))
    summary = json.loads((tmp_path / "s.json").read_text())
    assert (summary["updated"], summary["unchanged"], summary["orphaned"]) == (4, 6, 0)
    assert_tenant_is(emulator, tenant, rows)
    before = emulator.stats()["requests"]
    again = run_cli("run", schedule, "--config", config)
    assert again.code == 0 and "10 rows: 0 created, 10 existing" in again.out
    assert emulator.stats()["requests"] == before  # converged: nothing left to send


def test_instructor_swap_makes_a_new_meeting_and_orphans_the_old(
        tmp_path, tenant, emulator, secret_env, run_cli):
    schedule, config, rows = setup(tmp_path, tenant, emulator, n=12)
    assert run_cli("run", schedule, "--config", config).code == 0
    old_teacher, new_teacher = rows[4][3], tenant.teachers[2][0]
    assert old_teacher != new_teacher
    rows[4][3] = new_teacher
    helpers.write_xlsx(schedule, rows)
    result = run_cli("run", schedule, "--config", config)
    assert result.code == 7, result.out + result.err  # changes pending: the old meeting
    assert "1 created" in result.out and "removed rows: 1 orphaned" in result.out
    assert f"organizer changed to {new_teacher}" in result.err
    (removed,) = sheet_rows(tmp_path / "term.results.xlsx", "Removed")
    assert removed["status"] == "orphaned" and removed["organizer"] == old_teacher
    assert removed["joinWebUrl"].startswith("https://teams.microsoft.com/l/meetup-join/")
    assert len(emulator.meetings()) == 13  # still in Teams until --cancel-removed
    done = run_cli("run", schedule, "--config", config, "--cancel-removed")
    assert done.code == 0, done.out + done.err
    assert "removed rows: 1 cancelled" in done.out
    assert_tenant_is(emulator, tenant, rows)


def test_a_removed_section_is_reported_on_every_run_then_cancelled(
        tmp_path, tenant, emulator, secret_env, run_cli):
    schedule, config, rows = setup(tmp_path, tenant, emulator, n=20)
    assert run_cli("run", schedule, "--config", config).code == 0
    kept = rows[:9] + rows[11:]  # two sessions gone: 10% of 20
    helpers.write_xlsx(schedule, kept)
    for _ in range(2):  # reported on every run, never acted on without being asked
        result = run_cli("run", schedule, "--config", config, "--summary-json",
                         tmp_path / "s.json")
        assert result.code == 7, result.err
        assert result.out.startswith("18 rows: 0 created, 18 existing")
        assert "removed rows: 2 orphaned" in result.out
        assert result.err.count("orphaned meeting") == 2
        assert "--cancel-removed" in result.err
        summary = json.loads((tmp_path / "s.json").read_text())
        assert (summary["orphaned"], summary["cancelled"]) == (2, 0)
        removed = sheet_rows(tmp_path / "term.results.xlsx", "Removed")
        assert sorted(r["subject"] for r in removed) == ["CS102: Lecture 9", "CS103: Lecture 10"]
        assert len(emulator.meetings()) == 20
    assert method_count(emulator, "DELETE") == 0
    result = run_cli("run", schedule, "--config", config, "--cancel-removed",
                     "--summary-json", tmp_path / "s.json")
    assert result.code == 0, result.err
    assert "removed rows: 2 cancelled" in result.out
    assert json.loads((tmp_path / "s.json").read_text())["cancelled"] == 2
    assert {r["status"] for r in sheet_rows(tmp_path / "term.results.xlsx", "Removed")} == {
        "cancelled"}
    assert method_count(emulator, "DELETE") == 2
    assert_tenant_is(emulator, tenant, kept)
    after = run_cli("run", schedule, "--config", config, "--cancel-removed")
    assert after.code == 0 and "removed rows" not in after.out
    assert method_count(emulator, "DELETE") == 2  # nothing deleted twice


def test_the_cancel_threshold_refuses_then_max_cancel_allows_it_once(
        tmp_path, tenant, emulator, secret_env, run_cli):
    schedule, config, rows = setup(tmp_path, tenant, emulator, n=20)
    assert run_cli("run", schedule, "--config", config).code == 0
    kept = rows[5:]  # 5 of 20 = 25%: over the 10% default
    helpers.write_xlsx(schedule, kept)
    refused = run_cli("run", schedule, "--config", config, "--cancel-removed",
                      "--summary-json", tmp_path / "s.json")
    assert refused.code == 8, refused.err
    assert "5 of this schedule's 20 meetings would be cancelled (25%)" in refused.err
    assert "--max-cancel 5" in refused.err
    assert json.loads((tmp_path / "s.json").read_text())["cancel_refused"]
    assert method_count(emulator, "DELETE") == 0 and len(emulator.meetings()) == 20
    too_few = run_cli("run", schedule, "--config", config, "--max-cancel", "4")
    assert too_few.code == 8 and "--max-cancel allows 4" in too_few.err
    assert method_count(emulator, "DELETE") == 0
    allowed = run_cli("run", schedule, "--config", config, "--max-cancel", "5")
    assert allowed.code == 0, allowed.err
    assert "removed rows: 5 cancelled" in allowed.out
    assert_tenant_is(emulator, tenant, kept)


def test_a_sheet_that_reads_badly_never_cancels_anything(
        tmp_path, tenant, emulator, secret_env, run_cli):
    schedule, config, rows = setup(tmp_path, tenant, emulator, n=10)
    assert run_cli("run", schedule, "--config", config).code == 0
    helpers.write_xlsx(schedule, [])  # an export that came out empty
    empty = run_cli("run", schedule, "--config", config, "--cancel-removed", "--max-cancel", "10")
    assert empty.code == 2 and "no rows" in empty.err
    broken = [r[:] for r in rows]
    for r in broken[:3]:
        r[5] = "25:00"  # a bad time: the row keeps its key (CRN, Date), and its meeting
    helpers.write_xlsx(schedule, broken[:3] + broken[5:])
    bad = run_cli("run", schedule, "--config", config, "--cancel-removed", "--max-cancel", "10")
    assert bad.code == 1 and "3 of 8 rows are invalid" in bad.err
    broken[0][4] = "not a date"  # a key that cannot be read: which meeting is it?
    helpers.write_xlsx(schedule, broken[:1] + rows[1:])  # 1 of 10 invalid: under 10%
    unkeyed = run_cli("run", schedule, "--config", config, "--cancel-removed",
                      "--max-cancel", "10")
    assert unkeyed.code == 1 and "1 invalid row(s) have no readable key" in unkeyed.err
    header = [h if h != "Teacher" else "Instructor" for h in helpers.HEADER]
    helpers.write_xlsx(schedule, rows[:2], header=header)
    missing = run_cli("run", schedule, "--config", config, "--cancel-removed", "--max-cancel", "10")
    assert missing.code == 2 and "Teacher" in missing.err
    assert method_count(emulator, "DELETE") == 0 and len(emulator.meetings()) == 10


SETTINGS = """[settings]
allowMeetingChat = "disabled"
lobbyBypassSettings.scope = "everyone"
isEntryExitAnnounced = false
"""


def test_meeting_options_are_set_after_create_and_follow_the_config(
        tmp_path, tenant, emulator, secret_env, run_cli):
    schedule, config, rows = setup(tmp_path, tenant, emulator, n=6, extra=SETTINGS)
    result = run_cli("run", schedule, "--config", config)
    assert result.code == 0, result.err
    assert method_count(emulator, "PATCH") == 6  # createOrGet ignores options: one PATCH each
    for m in emulator.meetings():
        assert (m["allowMeetingChat"], m["lobbyBypassSettings"]["scope"],
                m["isEntryExitAnnounced"]) == ("disabled", "everyone", False)
    out = helpers.read_output(tmp_path / "term.results.xlsx")
    assert {r["status"] for r in out} == {"created"}
    assert out[0]["changes"] == ("allowMeetingChat enabled→disabled; isEntryExitAnnounced "
                                 "true→false; lobbyBypassSettings.scope organization→everyone")
    again = run_cli("run", schedule, "--config", config)
    assert again.code == 0 and method_count(emulator, "PATCH") == 6  # already right: nothing
    config.write_text(config.read_text().replace('"disabled"', '"limited"'))
    changed = run_cli("run", schedule, "--config", config)
    assert changed.code == 0 and "6 updated" in changed.out
    assert {m["allowMeetingChat"] for m in emulator.meetings()} == {"limited"}
    assert_tenant_is(emulator, tenant, rows)


def test_a_row_column_overrides_the_config_option(tmp_path, tenant, emulator, secret_env,
                                                  run_cli):
    rows = helpers.schedule_rows(tenant, 4)
    header = [*helpers.HEADER, "Chat"]
    cells = [[*r, c] for r, c in zip(rows, ["", "enabled", "", "nonsense"], strict=True)]
    schedule = helpers.write_xlsx(tmp_path / "term.xlsx", cells, header=header)
    config = helpers.write_config(tmp_path / "bulkmeet.toml", tenant, emulator.base_url,
                                  emulator.ca_path)
    text = config.read_text().replace('keys = ["CRN", "Date"]',
                                      'keys = ["CRN", "Date"]\nsettings = {allowMeetingChat = "Chat"}')
    config.write_text(text + '\n[settings]\nallowMeetingChat = "disabled"\n')
    result = run_cli("run", schedule, "--config", config)
    assert result.code == 1
    out = helpers.read_output(tmp_path / "term.results.xlsx")
    assert out[3]["status"] == "invalid"
    assert out[3]["error"] == 'Chat: "nonsense" is not one of enabled, disabled, limited'
    chat = {m["subject"]: m["allowMeetingChat"] for m in emulator.meetings()}
    assert chat == {"CS100: Lecture 0": "disabled", "CS101: Lecture 1": "enabled",
                    "CS102: Lecture 2": "disabled"}


def test_role_is_presenter_without_a_presenter_says_how_to_add_one(
        tmp_path, tenant, emulator, secret_env, run_cli):
    schedule, config, _ = setup(tmp_path, tenant, emulator, n=2,
                                extra='[settings]\nallowedPresenters = "roleIsPresenter"\n')
    result = run_cli("run", schedule, "--config", config)
    assert result.code == 1
    out = helpers.read_output(tmp_path / "term.results.xlsx")
    assert out[0]["status"] == "invalid"
    assert "no attendee with the presenter role" in out[0]["error"]
    assert "(presenter)" in out[0]["error"] and 'role = "presenter"' in out[0]["error"]
    assert len(emulator.meetings()) == 0


def test_plan_previews_every_action_and_sends_nothing(tmp_path, tenant, emulator, secret_env,
                                                      run_cli):
    schedule, config, rows = setup(tmp_path, tenant, emulator, n=20)
    assert run_cli("run", schedule, "--config", config).code == 0
    results = (tmp_path / "term.results.xlsx").read_bytes()
    journal = tmp_path / "term.journal.sqlite"

    def journal_rows() -> int:
        with sqlite3.connect(journal) as db:
            return db.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    recorded = journal_rows()
    rows[0][5], rows[0][6] = "15:00", "15:50"
    new = [f"{30000}", "CS200", "New seminar", tenant.teachers[0][0], "2027-04-01", "09:00",
           "09:50", ""]
    changed = [*rows[:18], new]  # rows 19 and 20 gone, one added, one moved
    changed[3][5] = "25:00"  # and one invalid (its key still reads: its meeting is kept)
    helpers.write_xlsx(schedule, changed)
    before = emulator.stats()
    result = run_cli("plan", schedule, "--config", config, "--cancel-removed")
    assert result.code == 1, result.out + result.err  # the invalid row, as `run` would say
    assert ("Plan: 1 to create, 1 to update, 2 to cancel, 16 unchanged, 1 invalid, 0 skipped"
            in result.out)
    assert result.out.splitlines()[0].split() == ["organizer", "create", "update", "cancel",
                                                  "orphaned", "unchanged"]
    after = emulator.stats()
    assert after["requests"] == before["requests"]  # not one request, read or write
    assert after["graph_writes"] == before["graph_writes"]
    assert writes(emulator) == 20
    assert (tmp_path / "term.results.xlsx").read_bytes() == results
    assert journal_rows() == recorded
    plan_sheet = sheet_rows(tmp_path / "term.plan.xlsx", "Plan")
    actions = [(p["action"], p["change"]) for p in plan_sheet]
    assert ("update", "start 08:00→15:00, end 08:50→15:50") in actions
    assert [a for a, _ in actions].count("cancel") == 2
    assert "unchanged" not in [a for a, _ in actions]  # counted, not listed
    assert [a for a, _ in actions].count("invalid") == 1 and len(actions) == 5
    without = run_cli("plan", schedule, "--config", config)
    assert "0 to cancel" in without.out and "2 orphaned (would stay in Teams)" in without.out


def test_plan_before_any_run_makes_no_journal(tmp_path, tenant, emulator, secret_env, run_cli):
    schedule, config, _ = setup(tmp_path, tenant, emulator, n=3)
    result = run_cli("plan", schedule, "--config", config)
    assert result.code == 0, result.err
    assert "Plan: 3 to create, 0 to update, 0 to cancel, 3" not in result.out
    assert "Plan: 3 to create, 0 to update, 0 to cancel, 0 unchanged" in result.out
    assert not (tmp_path / "term.journal.sqlite").exists()
    assert emulator.stats()["requests"] == 0


def test_a_format_1_journal_keeps_working(tmp_path, tenant, emulator, secret_env, run_cli):
    """A journal written before sync existed: its meetings are adopted, nothing is re-made."""
    schedule, config, rows = setup(tmp_path, tenant, emulator, n=5)
    assert run_cli("run", schedule, "--config", config).code == 0
    journal = tmp_path / "term.journal.sqlite"
    with sqlite3.connect(journal) as db:  # back to what bulkmeet wrote before format 2
        db.executescript("DROP TABLE meetings; DROP TABLE operations; "
                         "UPDATE schema_version SET version = 1;")
    posts = method_count(emulator, "POST")
    again = run_cli("run", schedule, "--config", config)
    assert again.code == 0 and "5 rows: 0 created, 5 existing" in again.out
    assert method_count(emulator, "POST") == posts and method_count(emulator, "PATCH") == 0
    rows[1][5], rows[1][6] = "16:00", "16:50"
    helpers.write_xlsx(schedule, rows)
    moved = run_cli("run", schedule, "--config", config)
    assert moved.code == 0 and "1 updated" in moved.out
    assert_tenant_is(emulator, tenant, rows)


def test_a_dry_run_then_the_next_day_nothing_is_lost(tmp_path, tenant, emulator, secret_env,
                                                    run_cli):
    schedule, config, rows = setup(tmp_path, tenant, emulator, n=3)
    assert run_cli("run", schedule, "--config", config).code == 0
    rows[0][4] = (datetime.fromisoformat(rows[0][4]) + timedelta(days=0)).date().isoformat()
    dry = run_cli("run", schedule, "--config", config, "--dry-run")
    assert dry.code == 0 and "Output:" in dry.out and "dry-run" in dry.out
    assert {r["status"] for r in helpers.read_output(tmp_path / "term.results.xlsx")} == {
        "created"}


def _spawn(schedule: Path, config: Path, *extra: str):
    import os
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, "-m", "bulkmeet", "run", str(schedule), "--config", str(config),
         "--quiet", "--concurrency", "2", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def _kill_after(proc, emulator, method: str, count: int) -> None:
    """kill -9 once the emulator has answered ``count`` requests of ``method`` (progress, not
    the clock)."""
    import signal
    import time

    deadline = time.monotonic() + 60
    while method_count(emulator, method) < count:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)


def _journal_states(path: Path) -> dict[str, tuple[str, str]]:
    with sqlite3.connect(path) as db:
        return {mid: (status, json.loads(state)["start"]) for mid, status, state in
                db.execute("SELECT meeting_id, status, state FROM meetings")}


def test_kill_9_during_updates_then_rerun_converges(tmp_path, tenant, emulator, secret_env,
                                                    run_cli):
    schedule, config, rows = setup(tmp_path, tenant, emulator, n=16)
    assert run_cli("run", schedule, "--config", config).code == 0
    for r in rows:  # every class moves an hour later and is renamed
        r[5], r[6] = f"{int(r[5][:2]) + 1:02d}:00", f"{int(r[6][:2]) + 1:02d}:50"
        r[2] += " (moved)"
    helpers.write_xlsx(schedule, rows)
    emulator.configure(latency_ms=(150, 150))
    _kill_after(_spawn(schedule, config), emulator, "PATCH", 3)
    emulator.configure(latency_ms=(0, 0))
    # The journal is never ahead of Teams: an update it records as applied, Graph holds. (It
    # may be behind: Graph applied a PATCH whose answer the killed run never read.)
    teams = {m["id"]: m["startDateTime"][:16] for m in emulator.meetings()}
    journalled = _journal_states(tmp_path / "term.journal.sqlite")
    wanted = {utc(r[4], r[5]) for r in rows}
    assert len(journalled) == 16
    recorded = [mid for mid, (_, start) in journalled.items() if start[:16] in wanted]
    assert all(teams[mid] in wanted for mid in recorded)
    assert len(recorded) < 16  # the kill really left work undone
    result = run_cli("run", schedule, "--config", config)
    assert result.code == 0, result.err
    assert "0 created" in result.out and "updated" in result.out
    assert_tenant_is(emulator, tenant, rows)
    assert len(emulator.meetings()) == 16  # updated in place, never re-made
    final = run_cli("run", schedule, "--config", config)
    assert final.code == 0 and "16 existing" in final.out


def test_kill_9_during_cancels_then_rerun_converges_and_deletes_nothing_twice(
        tmp_path, tenant, emulator, secret_env, run_cli):
    schedule, config, rows = setup(tmp_path, tenant, emulator, n=24)
    assert run_cli("run", schedule, "--config", config).code == 0
    kept = rows[12:]
    helpers.write_xlsx(schedule, kept)
    emulator.configure(latency_ms=(150, 150))
    _kill_after(_spawn(schedule, config, "--max-cancel", "12"), emulator, "DELETE", 3)
    emulator.configure(latency_ms=(0, 0))
    teams = {m["id"] for m in emulator.meetings()}
    journalled = _journal_states(tmp_path / "term.journal.sqlite")
    for mid, (status, _) in journalled.items():  # never "cancelled" while still in Teams
        assert status != "cancelled" or mid not in teams
    assert len(teams) > len(kept)  # the kill really left cancels undone
    result = run_cli("run", schedule, "--config", config, "--max-cancel", "12")
    assert result.code == 0, result.out + result.err
    assert_tenant_is(emulator, tenant, kept)
    # 12 meetings gone and 12 DELETEs answered 204: none was deleted twice (a second DELETE of
    # a meeting would be a 404, which bulkmeet counts as done).
    assert sum(deletes_answered(emulator, "204").values()) == 12
    final = run_cli("run", schedule, "--config", config, "--cancel-removed")
    assert final.code == 0 and "removed rows" not in final.out


def deletes_answered(emulator, status: str) -> dict[str, int]:
    """Route -> how many DELETEs Graph answered with ``status``."""
    return {key: per[status] for key, per in emulator.stats()["by_path"].items()
            if key.startswith("DELETE ") and per.get(status)}


ALL_NINE = """[settings]
lobbyBypassSettings.scope = "organizer"
allowedPresenters = "organizer"
allowMeetingChat = "limited"
isEntryExitAnnounced = false
recordAutomatically = true
allowRecording = false
allowTranscription = false
allowAttendeeToEnableCamera = false
allowAttendeeToEnableMic = false
"""


def test_every_option_the_issue_names_reaches_teams(tmp_path, tenant, emulator, secret_env,
                                                    run_cli):
    schedule, config, rows = setup(tmp_path, tenant, emulator, n=3, extra=ALL_NINE)
    result = run_cli("run", schedule, "--config", config)
    assert result.code == 0, result.err
    for m in emulator.meetings():
        assert m["lobbyBypassSettings"]["scope"] == "organizer"
        assert (m["allowedPresenters"], m["allowMeetingChat"]) == ("organizer", "limited")
        assert (m["isEntryExitAnnounced"], m["recordAutomatically"], m["allowRecording"],
                m["allowTranscription"], m["allowAttendeeToEnableCamera"],
                m["allowAttendeeToEnableMic"]) == (False, True, False, False, False, False)
    assert method_count(emulator, "PATCH") == 3
    assert run_cli("run", schedule, "--config", config).code == 0
    assert method_count(emulator, "PATCH") == 3  # Teams already matches: nothing sent


def test_delegated_updates_and_cancels_go_to_me(tmp_path, tenant, emulator, run_cli):
    """Signed in as the organizer: PATCH and DELETE use /me/onlineMeetings/{id}."""
    import os
    import re
    import subprocess
    import sys

    from tests.test_cli_delegated import delegated_config

    emulator.configure(device_code_interval_s=1)
    rows = helpers.schedule_rows(tenant, 4)
    schedule = helpers.write_xlsx(tmp_path / "mine.xlsx", rows)
    config = delegated_config(tmp_path, tenant, emulator)
    login = subprocess.Popen([sys.executable, "-m", "bulkmeet", "login", "--config", str(config)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ))
    code = re.search(r"enter the code (\S+)", login.stderr.readline()).group(1)  # type: ignore[union-attr]
    emulator.approve_device_code(code, tenant.teachers[0][0])
    assert login.wait(timeout=60) == 0
    assert run_cli("run", schedule, "--config", config).code == 0
    rows[0][5], rows[0][6] = "12:00", "12:50"
    helpers.write_xlsx(schedule, rows[:3])
    result = run_cli("run", schedule, "--config", config, "--max-cancel", "1")
    assert result.code == 0, result.err
    assert "1 updated" in result.out and "removed rows: 1 cancelled" in result.out
    routes = emulator.stats()["by_path"]
    assert any(k.startswith("PATCH /v1.0/me/onlineMeetings/") for k in routes)
    assert any(k.startswith("DELETE /v1.0/me/onlineMeetings/") for k in routes)
    assert len(emulator.meetings()) == 3


def test_a_csv_output_gets_its_removed_sheet_beside_it(tmp_path, tenant, emulator, secret_env,
                                                       run_cli):
    schedule, config, rows = setup(tmp_path, tenant, emulator, n=10)
    output = tmp_path / "term.results.csv"
    assert run_cli("run", schedule, "--config", config, "--output", output).code == 0
    helpers.write_xlsx(schedule, rows[1:])
    result = run_cli("run", schedule, "--config", config, "--output", output)
    assert result.code == 7, result.err
    (removed,) = helpers.read_output(tmp_path / "term.results.removed.csv")
    assert (removed["status"], removed["subject"]) == ("orphaned", "CS100: Lecture 0")
    assert removed["joinWebUrl"].startswith("https://") and removed["reason"]
    assert run_cli("run", schedule, "--config", config, "--output", output,
                   "--cancel-removed").code == 0
    assert helpers.read_output(tmp_path / "term.results.removed.csv")[0]["status"] == "cancelled"
    helpers.write_xlsx(schedule, rows[1:])
    assert run_cli("run", schedule, "--config", config, "--output", output).code == 0
    assert not (tmp_path / "term.results.removed.csv").exists()  # nothing removed any more


def test_a_cancelled_row_that_comes_back_gets_a_new_meeting(tmp_path, tenant, emulator,
                                                            secret_env, run_cli):
    schedule, config, rows = setup(tmp_path, tenant, emulator, n=10)
    assert run_cli("run", schedule, "--config", config).code == 0
    old = helpers.read_output(tmp_path / "term.results.xlsx")[0]
    helpers.write_xlsx(schedule, rows[1:])
    assert run_cli("run", schedule, "--config", config, "--cancel-removed").code == 0
    helpers.write_xlsx(schedule, rows)
    back = run_cli("run", schedule, "--config", config)
    assert back.code == 0 and "1 created, 0 existing" not in back.out
    assert "10 rows: 1 created, 9 existing" in back.out
    new = helpers.read_output(tmp_path / "term.results.xlsx")[0]
    assert new["status"] == "created" and new["externalId"] == old["externalId"]
    assert new["meetingId"] != old["meetingId"] and new["joinWebUrl"] != old["joinWebUrl"]
    assert_tenant_is(emulator, tenant, rows)


def test_a_section_cancelled_in_the_registrar_export_is_removed(tmp_path, run_cli):
    """A cancelled section keeps its row in the export but now matches a [[skip]] rule: its
    meeting counts as removed (the registrar sample, against the embedded emulator)."""
    import csv
    import shutil

    sample = Path(__file__).resolve().parent.parent / "samples" / "registrar"
    for name in ("export.csv", "bulkmeet.toml", "staff.csv", "terms.csv"):
        shutil.copy(sample / name, tmp_path / name)
    export, config = tmp_path / "export.csv", tmp_path / "bulkmeet.toml"
    first = run_cli("run", export, "--config", config, "--emulator")
    assert first.code == 1, first.err  # the sample's deliberate staff problems
    with export.open(encoding="utf-8-sig", newline="") as f:
        table = list(csv.reader(f))
    status = table[0].index("Status")
    assert table[1][0] == "10001" and table[1][status] == "Active"
    table[1][status] = "Cancelled"
    with export.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(table)
    again = run_cli("run", export, "--config", config, "--emulator", "--cancel-removed")
    assert again.code == 1, again.err  # still the sample's staff problems
    sessions = sheet_rows(tmp_path / "export.results.xlsx", "Removed")
    assert "3 skipped" in first.out and "4 skipped" in again.out
    assert f"removed rows: {len(sessions)} orphaned" in again.out
    assert len(sessions) > 25  # every class day of the section (meetings = "session")
    assert {r["status"] for r in sessions} == {"orphaned"}
    assert {r["subject"].split(":")[0] for r in sessions} == {"ACCT 2301-001"}
    # The sample keeps two broken rows on purpose, and that alone stops any cancel.
    assert "nothing is cancelled while more than 10% of the rows cannot be read" in again.err


def test_sigterm_during_updates_leaves_the_rest_pending_and_a_rerun_finishes(
        tmp_path, tenant, emulator, secret_env, run_cli):
    import signal

    schedule, config, rows = setup(tmp_path, tenant, emulator, n=16)
    assert run_cli("run", schedule, "--config", config).code == 0
    for r in rows:
        r[2] += " (moved)"
    helpers.write_xlsx(schedule, rows)
    emulator.configure(latency_ms=(150, 150))
    proc = _spawn(schedule, config)
    import time

    deadline = time.monotonic() + 60
    while method_count(emulator, "PATCH") < 2:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    emulator.configure(latency_ms=(0, 0))
    assert proc.returncode == 4
    out = helpers.read_output(tmp_path / "term.results.xlsx")
    statuses = {r["status"] for r in out}
    assert statuses <= {"updated", "pending"} and "pending" in statuses
    pending = next(r for r in out if r["status"] == "pending")
    assert pending["error"].startswith('Not updated yet (subject "')
    assert pending["joinWebUrl"]  # the meeting is still there, with its link
    again = run_cli("run", schedule, "--config", config)
    assert again.code == 0 and "0 created" in again.out
    assert_tenant_is(emulator, tenant, rows)
