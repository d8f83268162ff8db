"""`bulkmeet run` / `validate` / `init` end to end: real files in, real HTTPS to the emulator, real
output read back and checked against the emulator's own list of meetings."""
from __future__ import annotations

import json
from pathlib import Path

from tests import helpers
from tests.helpers import create_calls, setup_run


def test_run_creates_one_meeting_per_row_and_the_output_matches_the_tenant(
        tmp_path, tenant, emulator, secret_env, run_cli):
    schedule, config, rows = setup_run(tmp_path, tenant, emulator)
    result = run_cli("run", schedule, "--config", config)
    assert result.code == 0, result.err
    assert "24 rows: 24 created, 0 existing, 0 failed, 0 invalid" in result.out
    out = helpers.read_output(tmp_path / "schedule.results.xlsx")
    assert [r["CRN"] for r in out] == [r[0] for r in rows]  # every row, input order, zeros kept
    meetings = {m["externalId"]: m for m in emulator.meetings()}
    assert len(meetings) == 24
    for r in out:
        m = meetings[r["externalId"]]
        assert r["status"] == "created" and r["httpStatus"] in (201, "201")
        assert r["meetingId"] == m["id"] and r["joinWebUrl"] == m["joinWebUrl"]
        assert r["requestId"] and r["passcode"]
    # 08:00 in Chicago on 2027-03-01 (CST, UTC-6) is 14:00 UTC.
    first = meetings[out[0]["externalId"]]
    assert first["startDateTime"].startswith("2027-03-01T14:00")


def test_second_run_sends_nothing_and_reports_existing(tmp_path, tenant, emulator, secret_env,
                                                        run_cli):
    schedule, config, _ = setup_run(tmp_path, tenant, emulator, n=10)
    assert run_cli("run", schedule, "--config", config).code == 0
    before = create_calls(emulator)
    again = run_cli("run", schedule, "--config", config)
    assert again.code == 0
    assert "10 rows: 0 created, 10 existing, 0 failed, 0 invalid" in again.out
    assert create_calls(emulator) == before  # the journal answered, Graph was not asked
    out = helpers.read_output(tmp_path / "schedule.results.xlsx")
    assert {r["status"] for r in out} == {"existing"} and all(r["meetingId"] for r in out)


def test_csv_in_csv_out_and_the_output_can_be_fed_back(tmp_path, tenant, emulator, secret_env,
                                                      run_cli):
    schedule, config, _ = setup_run(tmp_path, tenant, emulator, n=6, fmt="csv")
    output = tmp_path / "schedule.results.csv"  # CSV output only when asked: .xlsx is the default
    assert run_cli("run", schedule, "--config", config, "--output", output).code == 0
    first = helpers.read_output(output)
    fed = tmp_path / "fed.csv"
    fed.write_bytes(output.read_bytes())
    again = run_cli("run", fed, "--config", config, "--full", "--output",
                    tmp_path / "fed.results.csv")
    assert again.code == 0 and "6 rows: 0 created, 6 existing" in again.out
    second = helpers.read_output(tmp_path / "fed.results.csv")
    assert [r["externalId"] for r in second] == [r["externalId"] for r in first]
    assert len(emulator.meetings()) == 6


def test_dry_run_sends_nothing_and_shows_each_request(tmp_path, tenant, emulator, secret_env,
                                                     run_cli):
    schedule, config, _ = setup_run(tmp_path, tenant, emulator, n=5)
    result = run_cli("run", schedule, "--config", config, "--dry-run")
    assert result.code == 0, result.err
    assert emulator.stats()["requests"] == 0
    out = helpers.read_output(tmp_path / "schedule.dry-run.xlsx")
    assert {r["status"] for r in out} == {"planned"}
    assert out[0]["request"].startswith("POST /v1.0/users/")
    assert '"externalId"' in out[0]["request"]
    assert not (tmp_path / "schedule.results.xlsx").exists()


def test_a_dry_run_never_overwrites_the_last_real_results(tmp_path, tenant, emulator,
                                                          secret_env, run_cli):
    schedule, config, _ = setup_run(tmp_path, tenant, emulator, n=4)
    assert run_cli("run", schedule, "--config", config).code == 0
    real = (tmp_path / "schedule.results.xlsx").read_bytes()
    assert run_cli("run", schedule, "--config", config, "--dry-run").code == 0
    assert (tmp_path / "schedule.results.xlsx").read_bytes() == real
    links = {r["joinWebUrl"] for r in helpers.read_output(tmp_path / "schedule.results.xlsx")}
    assert len(links) == 4 and None not in links


def test_bad_rows_are_reported_and_good_rows_still_run(tmp_path, tenant, emulator, secret_env,
                                                      run_cli):
    rows = helpers.schedule_rows(tenant, 6)
    rows[1][5] = "25:00"  # Start
    rows[2][6] = "07:00"  # End before start
    rows[3][3] = "not-an-address"
    rows.append(list(rows[0]))  # duplicate of row 2
    schedule = helpers.write_csv(tmp_path / "s.csv", rows)
    config = helpers.write_config(tmp_path / "bulkmeet.toml", tenant, emulator.base_url,
                                  emulator.ca_path)
    result = run_cli("run", schedule, "--config", config)
    assert result.code == 1
    assert "7 rows: 3 created, 0 existing, 0 failed, 3 invalid" in result.out
    out = {int(i) + 2: r for i, r in enumerate(helpers.read_output(tmp_path / "s.results.xlsx"))}
    assert out[3]["status"] == "invalid" and "Start" in out[3]["error"] and "25:00" in out[3]["error"]
    assert out[4]["status"] == "invalid" and "End" in out[4]["error"]
    assert out[5]["status"] == "invalid" and "not-an-address" in out[5]["error"]
    assert out[8]["status"] == "duplicate" and "row 2" in out[8]["error"]
    assert len(emulator.meetings()) == 3

    check = run_cli("validate", schedule, "--config", config)
    assert check.code == 1
    assert f"{schedule}: row 3: Start" in check.out
    assert "7 rows: 3 ready to send, 3 invalid, 1 duplicate" in check.out


def test_organizer_without_access_policy_fails_only_their_rows_and_is_named_once(
        tmp_path, tenant, emulator, secret_env, run_cli):
    rows = helpers.schedule_rows(tenant, 8, teachers=len(tenant.teachers))  # includes the last
    schedule = helpers.write_csv(tmp_path / "s.csv", rows)
    config = helpers.write_config(tmp_path / "bulkmeet.toml", tenant, emulator.base_url,
                                  emulator.ca_path)
    result = run_cli("run", schedule, "--config", config, "--summary-json", tmp_path / "sum.json")
    assert result.code == 1
    blocked_upn = tenant.teachers[-1][0]
    assert result.err.count(f"Organizer {blocked_upn}") == 1
    assert "New-CsApplicationAccessPolicy" in result.err
    out = helpers.read_output(tmp_path / "s.results.xlsx")
    failed = [r for r in out if r["status"] == "failed"]
    assert failed and all(r["Teacher"] == blocked_upn for r in failed)
    assert all("Grant-CsApplicationAccessPolicy" in r["error"] for r in failed)
    summary = json.loads((tmp_path / "sum.json").read_text())
    assert summary["failed"] == len(failed) and summary["created"] == 8 - len(failed)


def test_unusable_input_exits_2_and_names_what_exists(tmp_path, tenant, emulator, secret_env,
                                                     run_cli):
    schedule, config, _ = setup_run(tmp_path, tenant, emulator, n=3)
    missing = run_cli("run", tmp_path / "nope.xlsx", "--config", config)
    assert missing.code == 2 and "nope.xlsx" in missing.err and "Traceback" not in missing.err
    sheet = run_cli("run", schedule, "--config", config, "--sheet", "Fall")
    assert sheet.code == 2 and "Schedule" in sheet.err  # names the sheets that exist
    text = config.read_text().replace('subject = "{Course}: {Title}"', 'subject = "{Course}: {Titel}"')
    config.write_text(text)
    column = run_cli("run", schedule, "--config", config)
    assert column.code == 2
    assert "Titel" in column.err and "Did you mean 'Title'" in column.err and "CRN" in column.err
    assert emulator.stats()["requests"] == 0


def test_wrong_secret_exits_3_before_any_row_and_never_shows_the_secret(
        tmp_path, tenant, emulator, monkeypatch, run_cli):
    schedule, config, _ = setup_run(tmp_path, tenant, emulator, n=3)
    monkeypatch.setenv(helpers.SECRET_ENV, "wrong-" + tenant.secret)
    result = run_cli("run", schedule, "--config", config)
    assert result.code == 3
    assert "7000215" in result.err
    assert tenant.secret not in result.err + result.out
    assert create_calls(emulator) == 0


def test_no_secret_or_token_in_any_artefact(tmp_path, tenant, emulator, secret_env, run_cli):
    schedule, config, _ = setup_run(tmp_path, tenant, emulator, n=6)
    log_file = tmp_path / "logs" / "bulkmeet.log"
    result = run_cli("run", schedule, "--config", config, "--log-file", log_file,
                     "--summary-json", tmp_path / "summary.json")
    assert result.code == 0
    assert emulator.stats()["token_requests"] >= 1
    artefacts = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "directory.json"]
    blob = result.out + result.err + "".join(p.read_bytes().decode("latin-1") for p in artefacts)
    assert tenant.secret not in blob
    assert "eyJ" not in blob  # no JWT (header of every token) anywhere
    assert log_file.exists() and "rows" in log_file.read_text()


def test_init_writes_a_config_that_validate_accepts(tmp_path, tenant, run_cli):
    schedule = helpers.write_xlsx(tmp_path / "term.xlsx", helpers.schedule_rows(tenant, 4))
    result = run_cli("init", schedule)
    assert result.code == 0, result.err
    written = tmp_path / "bulkmeet.toml"
    assert written.exists() and "Teacher" in written.read_text()
    again = run_cli("init", schedule)
    assert again.code == 2 and "--force" in again.err


def test_demo_with_embedded_emulator_keeps_its_tenant_between_runs(tmp_path, run_cli):
    samples = Path(__file__).resolve().parent.parent / "samples"
    for name in ("schedule.xlsx", "bulkmeet.toml"):
        (tmp_path / name).write_bytes((samples / name).read_bytes())
    first = run_cli("run", tmp_path / "schedule.xlsx", "--config", tmp_path / "bulkmeet.toml",
                    "--emulator")
    assert first.code == 1, first.err  # the sample has deliberately bad rows
    assert " created" in first.out and "invalid" in first.out
    (tmp_path / "schedule.journal.sqlite").unlink()  # forget our journal: ask the tenant again
    for extra in tmp_path.glob("schedule.journal.sqlite-*"):
        extra.unlink()
    second = run_cli("run", tmp_path / "schedule.xlsx", "--config", tmp_path / "bulkmeet.toml",
                     "--emulator")
    assert " 0 created" in second.out  # the emulator's state file remembered every meeting


def test_validate_with_the_emulator_also_checks_organizers_exist(tmp_path, run_cli):
    samples = Path(__file__).resolve().parent.parent / "samples"
    text = (samples / "schedule.csv").read_text(encoding="utf-8-sig")
    first_teacher = "ada.lovelace@school.example"
    assert first_teacher in text
    schedule = tmp_path / "term.csv"
    schedule.write_text(text.replace(first_teacher, "ada.byron@school.example", 1),
                        encoding="utf-8")
    (tmp_path / "bulkmeet.toml").write_bytes((samples / "bulkmeet.toml").read_bytes())
    offline = run_cli("validate", schedule)
    online = run_cli("validate", schedule, "--emulator")
    assert online.code == 1
    assert "ada.byron@school.example was not found in the tenant" in online.out
    assert "ada.byron" not in offline.out  # only a lookup can know


def test_quiet_prints_only_the_summary_line_for_cron_mail(tmp_path, tenant, emulator, secret_env,
                                                           run_cli):
    schedule, config, _ = setup_run(tmp_path, tenant, emulator, n=3)
    loud = run_cli("run", schedule, "--config", config)
    assert loud.code == 0 and "Output: " in loud.out
    quiet = run_cli("run", schedule, "--config", config, "--quiet")
    assert quiet.code == 0
    assert quiet.out.strip().splitlines() == ["3 rows: 0 created, 3 existing, 0 failed, 0 invalid"]
    assert "Output: " not in quiet.err and "INFO" not in quiet.err
