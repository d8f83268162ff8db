"""Registrar exports end to end: `bulkmeet run` / `validate` on real CSV files (an export, a staff
directory, a term table) against the emulator over HTTPS, output read back and checked against the
emulator's own list of meetings. One test per shape of issue 10."""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from tests import helpers

HEADER = ["CRN", "Subj", "Crse", "Sec", "Title", "PTRM", "Status", "Days", "Begin", "End", "Instructor"]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def setup(tmp_path: Path, tenant: helpers.Tenant, emulator, rows: list[list[str]], *,
          meetings: str = "session", extra: str = "") -> tuple[Path, Path]:
    """An export, staff.csv naming the tenant's teachers, terms.csv, and the config."""
    t = [upn for upn, _ in tenant.teachers]
    write_csv(tmp_path / "staff.csv", ["Staff ID", "Name", "Email"], [
        ["E0", "Noonan, Jane", t[0]], ["E1", "Kim, Min", t[1]], ["E2", "Park, Lee", t[2]],
        ["E3", "Ghost, Gail", "gail.ghost@test.example"]])
    write_csv(tmp_path / "terms.csv", ["code", "first_day", "last_day", "closures"], [
        ["1", "2027-03-01", "2027-03-26", "2027-03-15..2027-03-19"],
        ["S1", "2027-03-01", "2027-03-12", ""]])
    export = write_csv(tmp_path / "export.csv", HEADER, rows)
    config = tmp_path / "bulkmeet.toml"
    config.write_text(f"""\
time_zone = "America/Chicago"
[graph]
base_url = "{emulator.base_url}"
ca_bundle = "{emulator.ca_path}"
[auth]
tenant_id = "{tenant.tenant_id}"
client_id = "{tenant.client_id}"
authority_host = "{emulator.base_url}"
client_secret_env = "{helpers.SECRET_ENV}"
[mapping]
subject = "{{Subj}} {{Crse}}-{{Sec}}: {{Title}}"
keys = ["CRN"]
[pattern]
days = "Days"
start_time = "Begin"
end_time = "End"
meetings = "{meetings}"
[term]
column = "PTRM"
table = "terms.csv"
[staff]
column = "Instructor"
directory = "staff.csv"
name_column = "Name"
id_column = "Staff ID"
upn_column = "Email"
[[skip]]
column = "Begin"
one_of = ["ARRANGED", "TBA"]
reason = "no scheduled time"
[[skip]]
column = "Status"
equals = "Cancelled"
{extra}
""")
    return export, config


def row(crn: str, days: str, begin: str, end: str, instructor: str = "Noonan, J", ptrm: str = "1",
        status: str = "Active", title: str = "Principles of Accounting") -> list[str]:
    return [crn, "ACCT", "2301", "001", title, ptrm, status, days, begin, end, instructor]


def meetings_by_id(emulator) -> dict[str, dict]:
    return {m["externalId"]: m for m in emulator.meetings()}


def test_a_term_with_dst_and_a_spring_break_becomes_one_meeting_per_class_day(
        tmp_path, tenant, emulator, secret_env, run_cli):
    export, config = setup(tmp_path, tenant, emulator, [
        row("10001", "MWF", "09:00 AM", "09:50 AM", title="Atg Measurement &amp; Disclosure ")])
    result = run_cli("run", export, "--config", config, "--output", tmp_path / "out.csv")
    assert result.code == 0, result.err
    assert "9 rows" not in result.out and "1 row: 9 created, 0 existing, 0 failed, 0 invalid" in result.out
    out = helpers.read_output(tmp_path / "out.csv")
    assert [(r["sourceRow"], r["sessionNumber"]) for r in out] == [("2", str(n)) for n in range(1, 10)]
    meetings = meetings_by_id(emulator)
    starts = [meetings[r["externalId"]]["startDateTime"][:16] for r in out]
    # Mar 1-12 in CST (UTC-6); DST from Mar 14; spring break Mar 15-19 has no class; CDT (UTC-5).
    assert starts == ["2027-03-01T15:00", "2027-03-03T15:00", "2027-03-05T15:00",
                      "2027-03-08T15:00", "2027-03-10T15:00", "2027-03-12T15:00",
                      "2027-03-22T14:00", "2027-03-24T14:00", "2027-03-26T14:00"]
    first = meetings[out[0]["externalId"]]
    assert first["subject"] == "ACCT 2301-001: Atg Measurement & Disclosure"
    assert first["endDateTime"].startswith("2027-03-01T15:50")
    assert len(meetings) == 9


def test_two_blocks_a_day_are_two_meetings_and_a_repeated_block_is_a_duplicate(
        tmp_path, tenant, emulator, secret_env, run_cli):
    export, config = setup(tmp_path, tenant, emulator, [
        row("10004", "TR", "08:00 AM", "08:50 AM", ptrm="S1"),
        row("10004", "TR", "01:00 PM", "01:50 PM", ptrm="S1"),
        row("10004", "R", "01:00 PM", "01:50 PM", ptrm="S1")])  # pasted again: Thursdays repeat
    result = run_cli("run", export, "--config", config, "--output", tmp_path / "out.csv")
    assert result.code == 1, result.err
    assert "3 rows: 8 created, 0 existing, 0 failed, 0 invalid, 2 duplicate" in result.out
    out = helpers.read_output(tmp_path / "out.csv")
    status = Counter((r["sourceRow"], r["status"]) for r in out)
    assert status == {("2", "created"): 4, ("3", "created"): 4, ("4", "duplicate"): 2}
    dup = next(r for r in out if r["status"] == "duplicate")
    assert dup["error"].startswith("Row 3 of the same section already meets on this day at this time")
    assert len({r["externalId"] for r in out if r["status"] == "created"}) == 8
    morning, afternoon = (sorted(meetings_by_id(emulator)[r["externalId"]]["startDateTime"][11:16]
                                 for r in out if r["sourceRow"] == n and r["status"] == "created")
                          for n in ("2", "3"))
    assert set(morning) == {"14:00"} and set(afternoon) == {"19:00"}


def test_an_instructor_missing_from_the_directory_makes_that_row_invalid(
        tmp_path, tenant, emulator, secret_env, run_cli):
    export, config = setup(tmp_path, tenant, emulator, [
        row("10001", "MWF", "09:00 AM", "09:50 AM", instructor="Noonan, J;Kim, Min"),
        row("10002", "TR", "09:00 AM", "09:50 AM", instructor="Nobody, X"),
        row("10003", "TR", "11:00 AM", "11:50 AM", instructor="")])
    result = run_cli("validate", export, "--config", config)
    assert result.code == 1
    staff = tmp_path / "staff.csv"
    assert result.out.splitlines() == [
        f'{export}: row 3: Instructor: "Nobody, X" is not in the staff directory {staff}; add them '
        "(with their UPN) to that file, or correct the name in the sheet",
        f"{export}: row 4: Instructor: missing; this row names no instructor: fill it in, or set "
        "fallback_organizer in [staff]",
        "3 rows: 9 meetings from 1 rows ready to send, 2 invalid, 0 duplicate",
    ]
    assert run_cli("run", export, "--config", config, "--output", tmp_path / "out.csv").code == 1
    meetings = emulator.meetings()
    assert len(meetings) == 9
    teacher0, teacher1 = tenant.teachers[0][0], tenant.teachers[1][0]
    assert all(m["participants"]["organizer"]["upn"] == teacher0 for m in meetings)
    assert all({"upn": teacher1, "role": "coorganizer"} in
               [{"upn": a["upn"], "role": a["role"]} for a in m["participants"]["attendees"]]
               for m in meetings)


def test_a_rerun_after_a_pattern_change_only_adds_and_removes_sessions(
        tmp_path, tenant, emulator, secret_env, run_cli):
    export, config = setup(tmp_path, tenant, emulator, [row("10001", "MW", "09:00 AM", "09:50 AM")])
    assert run_cli("run", export, "--config", config, "--output", tmp_path / "out.csv").code == 0
    before = {r["externalId"]: r["startDateTimeUtc"] for r in helpers.read_output(tmp_path / "out.csv")}
    assert len(before) == 6
    write_csv(export, HEADER, [row("10001", "MWF", "09:00 AM", "09:50 AM")])
    again = run_cli("run", export, "--config", config, "--output", tmp_path / "out.csv")
    assert again.code == 0, again.err
    assert "1 row: 3 created, 6 existing, 0 failed, 0 invalid" in again.out
    after = helpers.read_output(tmp_path / "out.csv")
    kept = {r["externalId"]: r["startDateTimeUtc"] for r in after if r["status"] == "existing"}
    assert kept == before  # the Monday/Wednesday meetings keep their ids and links
    write_csv(export, HEADER, [row("10001", "F", "09:00 AM", "09:50 AM")])
    third = run_cli("run", export, "--config", config, "--output", tmp_path / "out.csv")
    # Fridays only: nothing new; the six Monday/Wednesday meetings are reported as removed
    # (bulkmeet.sync: exit 7 until they are cancelled with --cancel-removed or put back).
    assert "1 row: 0 created, 3 existing, 0 failed, 0 invalid; removed rows: 6 orphaned" in third.out
    assert third.code == 7
    assert len(emulator.meetings()) == 9  # nothing was made twice


def test_arranged_tba_and_cancelled_rows_are_skipped_not_errors(
        tmp_path, tenant, emulator, secret_env, run_cli):
    export, config = setup(tmp_path, tenant, emulator, [
        row("10001", "MWF", "09:00 AM", "09:50 AM", ptrm="S1"),
        row("10008", "", "ARRANGED", "", ptrm="1"),
        row("10009", "", "TBA", "TBA", ptrm="9"),
        row("10010", "TR", "03:00 PM", "04:15 PM", status="Cancelled")])
    result = run_cli("run", export, "--config", config, "--output", tmp_path / "out.csv")
    assert result.code == 0, result.err
    assert "4 rows: 6 created, 0 existing, 0 failed, 0 invalid, 3 skipped" in result.out
    out = helpers.read_output(tmp_path / "out.csv")
    skipped = {r["sourceRow"]: r["warning"] for r in out if r["status"] == "skipped"}
    assert skipped == {
        "3": 'Not a meeting: skip rule 1 (Begin is one of "ARRANGED", "TBA"): no scheduled time.',
        "4": 'Not a meeting: skip rule 1 (Begin is one of "ARRANGED", "TBA"): no scheduled time.',
        "5": 'Not a meeting: skip rule 2 (Status is "Cancelled").'}
    assert all(not r["error"] for r in out)


def test_one_meeting_per_section_joins_its_rows_and_an_unchanged_schedule_exits_0(
        tmp_path, tenant, emulator, secret_env, run_cli):
    export, config = setup(tmp_path, tenant, emulator, [
        row("10003", "R", "02:00 PM", "04:50 PM", instructor="Park, L"),  # the lab comes first
        row("10003", "M W F", "10:00 AM", "10:50 AM", instructor="Noonan, Jane"),
        row("10005", "TTh", "09:30 AM", "10:45 AM", instructor="E1", ptrm="S1")], meetings="section")
    for attempt in (1, 2):
        result = run_cli("run", export, "--config", config, "--output", tmp_path / "out.csv")
        assert result.code == 0, (attempt, result.out, result.err)
    # two meetings, each counted once; the lecture row shares the lab's (its line says so)
    assert ("3 rows: 0 created, 2 existing, 0 failed, 0 invalid, 1 sharing their section's "
            "meeting") in result.out
    out = helpers.read_output(tmp_path / "out.csv")
    lab, lecture, calc = out
    assert lab["status"] == lecture["status"] == "existing"
    assert lab["joinWebUrl"] and lab["joinWebUrl"] == lecture["joinWebUrl"]
    assert lecture["warning"] == ("Same meeting as row 2 (one meeting per section): this row's "
                                  "pattern is part of that meeting.")
    assert lab["externalId"] == lecture["externalId"] != calc["externalId"]
    meetings = meetings_by_id(emulator)
    assert len(meetings) == 2
    section = meetings[lab["externalId"]]
    # the section's first session: Monday 2027-03-01 10:00 CST, not the lab's Thursday
    assert (section["startDateTime"][:16], section["endDateTime"][:16]) == ("2027-03-01T16:00", "2027-03-01T16:50")
    assert section["participants"]["organizer"]["upn"] == tenant.teachers[2][0]
    assert {a["upn"]: a["role"] for a in section["participants"]["attendees"]} == {
        tenant.teachers[0][0]: "coorganizer"}
    assert meetings[calc["externalId"]]["participants"]["organizer"]["upn"] == tenant.teachers[1][0]


def test_validate_with_the_users_own_directory_marks_unknown_organizers_invalid(
        tmp_path, tenant, emulator, run_cli):
    export, config = setup(tmp_path, tenant, emulator, [
        row("10001", "MWF", "09:00 AM", "09:50 AM"),
        row("10002", "TR", "09:00 AM", "09:50 AM", instructor="Ghost, G")])
    result = run_cli("validate", export, "--config", config, "--emulator", "--directory",
                     tenant.directory_path)
    assert result.code == 1, result.err
    lines = result.out.splitlines()
    assert lines[-1] == "2 rows: 9 meetings from 1 rows ready to send, 1 invalid, 0 duplicate"
    assert lines[0].startswith(f"{export}: row 3: invalid: ") and "gail.ghost@test.example" in lines[0]
    assert "(6 sessions)" in lines[0] and len(lines) == 2
    # the same directory serves a real run end to end
    run = run_cli("run", export, "--config", config, "--output", tmp_path / "out.csv", "--emulator", "--directory", tenant.directory_path)
    assert run.code == 1 and "2 rows: 9 created, 0 existing, 6 failed, 0 invalid" in run.out


def test_directory_without_emulator_is_refused(tmp_path, tenant, emulator, run_cli):
    export, config = setup(tmp_path, tenant, emulator, [row("10001", "MWF", "09:00 AM", "09:50 AM")])
    result = run_cli("validate", export, "--config", config, "--directory", tenant.directory_path)
    assert result.code == 2
    assert "--directory is for --emulator runs" in result.err


def test_init_on_the_sample_export_asks_for_term_dates_then_validates(tmp_path, run_cli):
    sample = Path(__file__).resolve().parent.parent / "samples" / "registrar"
    export = tmp_path / "export.csv"
    export.write_bytes((sample / "export.csv").read_bytes())
    (tmp_path / "staff.csv").write_bytes((sample / "staff.csv").read_bytes())
    result = run_cli("init", export)
    assert result.code == 0, result.err
    config = tmp_path / "bulkmeet.toml"
    first = run_cli("validate", export, "--config", config)
    assert first.code == 2
    assert first.err == (f'bulkmeet: error: {config}: [term.parts."1"] first_day: "TODO" is not a date '
                         "(use 2027-02-01 or 2/1/2027); write it as first_day = 2027-01-19.\n")
    text = config.read_text().replace('first_day = "TODO"   # e.g. first_day = 2027-01-19', "first_day = 2027-01-19")
    text = text.replace('last_day = "TODO"', "last_day = 2027-05-07").replace("TODO-staff-list.csv", "staff.csv")
    config.write_text(text)
    second = run_cli("validate", export, "--config", config)
    assert second.code == 1  # the two deliberately bad instructors, and no fallback organizer yet
    lines = second.out.splitlines()
    assert [line.split(": ")[1] for line in lines[:-1]] == ["row 10", "row 14", "row 15"]
    assert "set fallback_organizer in [staff]" in lines[0]
    assert lines[-1] == ("14 rows: 6 ready to send, 3 invalid, 0 duplicate, 3 skipped, 2 sharing "
                         "their section's meeting")


def test_per_section_meeting_follows_a_new_term_start_and_keeps_its_link(
        tmp_path, tenant, emulator, secret_env, run_cli):
    export, config = setup(tmp_path, tenant, emulator, [row("10001", "MWF", "09:00 AM", "09:50 AM")],
                           meetings="section")
    out = tmp_path / "out.csv"
    assert run_cli("run", export, "--config", config, "--output", out).code == 0
    (link,) = [r["joinWebUrl"] for r in helpers.read_output(out)]
    write_csv(tmp_path / "terms.csv", ["code", "first_day", "last_day", "closures"], [
        ["1", "2027-03-03", "2027-03-26", "2027-03-15..2027-03-19"]])
    again = run_cli("run", export, "--config", config, "--output", out)
    assert again.code == 0, again.err
    (line,) = helpers.read_output(out)
    assert line["status"] == "updated" and line["joinWebUrl"] == link
    (meeting,) = emulator.meetings()
    assert meeting["startDateTime"].startswith("2027-03-03T15:00")


def test_dry_run_shows_each_sessions_planned_day_and_time(tmp_path, tenant, emulator, run_cli):
    export, config = setup(tmp_path, tenant, emulator, [row("10001", "TR", "12:30 PM", "01:45 PM", ptrm="S1")])
    out = tmp_path / "out.csv"
    result = run_cli("run", export, "--config", config, "--dry-run", "--output", out)
    assert result.code == 0, result.err
    lines = helpers.read_output(out)
    assert [(r["sessionNumber"], r["startLocal"], r["endLocal"]) for r in lines] == [
        (str(n), f"{d} 12:30", f"{d} 13:45") for n, d in enumerate(
            ["2027-03-02", "2027-03-04", "2027-03-09", "2027-03-11"], start=1)]
    assert {r["status"] for r in lines} == {"planned"} and emulator.stats()["requests"] == 0
    assert lines[0]["meetingSubject"] == "ACCT 2301-001: Principles of Accounting"
