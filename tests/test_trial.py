"""The acceptance trial of registrar exports (issue 10) and sync safety (issue 11), through the CLI.

A Banner/PeopleSoft-like export that is not shaped like ``samples/registrar/``: an .xlsx with a
title row, ``CRN``/``Subj``/``Crse``/``Sec``, ``&amp;`` in titles, days as ``MWF``, ``TR``,
``M W F``, ``TTh``, one ``Time`` range column in three spellings, part-of-term codes ``1`` (a
number cell and text), ``S1``, ``S2A`` and blank, instructors ``Noonan, J;Kim, Min-Ji (P)``,
``TBA``/``ARRANGED`` rows, a cancelled section, a lab with its lecture's CRN; a staff list as .xlsx
with HR's column names. The config is what ``bulkmeet init`` wrote, completed the way the README
says. Everything runs against the embedded emulator with the user's own ``--directory`` file, and
the emulator's saved state is read back to see what Teams holds.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook

from tests import helpers

TENANT = "11111111-2222-4333-8444-555555555555"
CLIENT = "99999999-8888-4777-8666-555555555555"
STAFF = [  # Employee ID, Preferred Name, Surname, Email
    ("E001", "Jane", "Noonan", "jane.noonan@uni.example"),
    ("E002", "Min-Ji", "Kim", "minji.kim@uni.example"),
    ("E003", "Chidi", "Okafor", "chidi.okafor@uni.example"),
    ("E004", "Paola", "Rossi", "paola.rossi@uni.example"),
    ("E005", "Luis", "Martinez", "luis.martinez@uni.example"),
    ("E006", "Anna", "Schmidt", "anna.schmidt@uni.example"),
    ("E007", "Ana", "Lee", "ana.lee@uni.example"),
]
HEADER = ["CRN", "Subj", "Crse", "Sec", "Title", "Days", "Time", "PTRM", "Instructor", "Status",
          "Schd Type"]
ROWS = [  # Excel rows 3.. (a title row above the header)
    ["20417", "ACCT", "3310", "001", "Atg Measurement &amp; Disclosure", "MWF", "0930-1020", "1",
     "Noonan, J;Kim, Min-Ji (P)", "Active", "LEC"],
    ["20418", "ACCT", "3310", "002", "Atg Measurement &amp; Disclosure", "TR",
     "09:30 AM-10:45 AM", 1, "Kim, Min-Ji (P)", "Active", "LEC"],
    ["20419", "BIOL", "1401", "001", "Intro  Biology", "M W F", "1000-1050", "S1",
     "Okafor, Chidi", "Active", "LEC"],
    ["20419", "BIOL", "1401", "001", "Intro  Biology", "R", "1400-1650", "S1", "Okafor, Chidi",
     "Active", "LAB"],
    ["20420", "CHEM", "2301", "01W", "Organic Chem", "TBA", "TBA", "2", "Rossi, Paola", "Active",
     "WEB"],
    ["20421", "HIST", "1301", "003", "US History to 1877", "TTh", "12:30 PM-01:45 PM", "S2A",
     "Martinez, Luis", "Cancelled", "LEC"],
    ["20422", "MATH", "2413", "001", "Calculus I", "MTWRF", "0800-0850", None, "Schmidt, Anna",
     "Active", "LEC"],
    ["20423", "ENGL", "1301", "004", "Composition I", None, "ARRANGED", "1", "Noonan, J",
     "Active", "IND"],
    ["20424", "PHYS", "2425", "001", "Physics &amp; Engineering I", "MW", "1:00 PM-2:15 PM", "1",
     "Rossi, Paola;Okafor, Chidi", "Active", "LEC"],
    ["20425", "MUSI", "1306", "001", "Music Appreciation", "F", "11:00-12:15 PM", "S2A",
     "Lee, Ana", "Active", "LEC"],
    ["20426", "PSYC", "4390", "001", "Independent Study", "TBA", "TBA", "1", "Rossi, Paola",
     "Active", "IND"],
]
TERMS = '''[term.parts."1"]
first_day = 2027-01-19
last_day = 2027-05-07
closures = ["2027-03-15..2027-03-19"]
[term.parts."S1"]
first_day = 2027-01-19
last_day = 2027-03-12
[term.parts."2"]
first_day = 2027-01-19
last_day = 2027-05-07
[term.parts."S2A"]
first_day = 2027-03-22
last_day = 2027-05-07
[term.parts.""]
first_day = 2027-01-19
last_day = 2027-05-07
'''


def write_export(path: Path, rows: list[list[object]]) -> Path:
    wb = Workbook()
    ws = wb.active
    ws.title = "Sections"
    ws.append(["Spring 2027 Class Schedule (exported 2026-12-01)"])
    ws.append(HEADER)
    for row in rows:
        ws.append(row)
    wb.save(path)
    return path


def write_staff(path: Path, people: list[tuple[str, str, str, str]]) -> Path:
    wb = Workbook()
    ws = wb.active
    ws.append(["Employee ID", "Preferred Name", "Surname", "Email", "Dept"])
    for person in people:
        ws.append([*person, "X"])
    wb.save(path)
    return path


def user_id(n: int) -> str:
    return f"a0000000-0000-4000-8000-{n:012d}"


def write_directory(path: Path, unlicensed: tuple[str, ...] = ()) -> Path:
    users = [{"id": user_id(i), "userPrincipalName": email, "licensed": email not in unlicensed}
             for i, (_, _, _, email) in enumerate(STAFF, start=1)]
    path.write_text(json.dumps({"tenants": [{
        "id": TENANT, "users": users,
        "apps": [{"clientId": CLIENT, "secret": "local-only",
                  "roles": ["OnlineMeetings.ReadWrite.All", "User.Read.All"],
                  "accessPolicy": "global"}]}]}), encoding="utf-8")
    return path


def complete(starter: str, *, meetings: str) -> str:
    """What a user does with the starter, following the README: every TODO filled in."""
    text = starter.replace('time_zone = "Etc/UTC"', 'time_zone = "America/Chicago"')
    text = re.sub(r'^time_zone = ".*"$', 'time_zone = "America/Chicago"', text, flags=re.M)
    text = text.replace('tenant_id = ""', f'tenant_id = "{TENANT}"')
    text = text.replace('client_id = ""', f'client_id = "{CLIENT}"')
    start, end = text.index('[term.parts."'), text.index("[staff]")
    text = text[:start] + TERMS + "\n" + text[end:]
    text = text.replace('directory = "TODO-staff-list.csv"\nname_column = "Name"',
                        'directory = "staff.xlsx"\nlast_name_column = "Surname"\n'
                        'first_name_column = "Preferred Name"\nid_column = "Employee ID"')
    text = text.replace('meetings = "section"', f'meetings = "{meetings}"')
    assert not re.search(r"^[^#\n]*TODO", text, flags=re.M), text
    return text


@pytest.fixture
def trial(tmp_path, run_cli):
    """The export, staff list and directory in a folder, and the starter config from init."""
    export = write_export(tmp_path / "spring27.xlsx", ROWS)
    write_staff(tmp_path / "staff.xlsx", STAFF)
    write_directory(tmp_path / "mytenant.json")
    result = run_cli("init", export)
    assert result.code == 0, result.err
    return export, (tmp_path / "bulkmeet.toml")


def emulator_meetings(export: Path) -> list[dict]:
    state = json.loads(export.with_name(export.stem + ".emulator-state.json").read_text())
    return [m["meeting"] for m in state["meetings"]]


def run(run_cli, export: Path, *args: str) -> helpers.CliResult:
    return run_cli("run", export, "--emulator", "--directory", export.with_name("mytenant.json"),
                   "--no-progress", *args)


def test_init_proposes_the_shape_and_shows_sync_and_settings(trial, run_cli):
    export, config = trial
    starter = config.read_text()
    for line in ('subject = "{Subj} {Crse}-{Sec}: {Title}"', 'keys = ["CRN"]', 'days = "Days"',
                 'times = "Time"', 'column = "PTRM"', 'column = "Instructor"',
                 'one_of = ["TBA", "ARRANGED"]', 'one_of = ["Cancelled"]',
                 'column = "Schd Type"\none_of = ["WEB", "IND"]',
                 "# [sync]", "# cancel_removed = false", "# max_cancel_percent = 10",
                 "# [settings]", '# allowMeetingChat = "enabled"'):
        assert line in starter, line
    # the commented sections are real config: uncommented, they load and validate
    text = complete(starter, meetings="session")
    text = re.sub(r"^# (\[sync\]|\[settings\]|cancel_removed|max_cancel_\w+|lobbyBypass\S+|allow\w+"
                  r"|recordAutomatically|isEntryExitAnnounced)", r"\1", text, flags=re.M)
    assert "\n[sync]\ncancel_removed = false\n" in text and "\n[settings]\nlobbyBypass" in text
    config.write_text(text)
    result = run_cli("validate", export)
    assert result.code == 0, result.out + result.err
    assert result.out.strip().endswith("11 rows: 220 meetings from 7 rows ready to send, 0 invalid, "
                                       "0 duplicate, 4 skipped")


def test_the_name_column_placeholder_points_at_the_two_column_staff_list(trial, run_cli):
    export, config = trial
    text = complete(config.read_text(), meetings="session").replace(
        'last_name_column = "Surname"\nfirst_name_column = "Preferred Name"', 'name_column = "Name"')
    config.write_text(text)
    result = run_cli("validate", export)
    assert result.code == 2
    assert (f"{export.parent / 'staff.xlsx'}: the staff directory has no column 'Name' (named in "
            "[staff] of the config). This list has the names in two columns: instead of "
            'name_column, write last_name_column = "Surname" and first_name_column = '
            '"Preferred Name". Its columns: Employee ID, Preferred Name, Surname, Email, Dept.'
            ) in result.err


def test_a_real_run_per_session_with_the_primary_instructor_organizing(trial, run_cli):
    export, config = trial
    config.write_text(complete(config.read_text(), meetings="session"))
    result = run(run_cli, export)
    assert result.code == 0, result.out + result.err
    assert "11 rows: 220 created, 0 existing, 0 failed, 0 invalid, 4 skipped" in result.out
    out = helpers.read_output(export.with_name("spring27.results.xlsx"))
    acct = [r for r in out if r["CRN"] == "20417"]
    assert acct[0]["meetingSubject"] == "ACCT 3310-001: Atg Measurement & Disclosure"
    assert {r["sourceRow"] for r in acct} == {3}
    skipped = {r["CRN"]: r["warning"] for r in out if r["status"] == "skipped"}
    assert skipped == {
        "20420": 'Not a meeting: skip rule 1 (Time is one of "TBA", "ARRANGED"): no scheduled time.',
        "20421": 'Not a meeting: skip rule 4 (Status is one of "Cancelled"): cancelled section.',
        "20423": 'Not a meeting: skip rule 1 (Time is one of "TBA", "ARRANGED"): no scheduled time.',
        "20426": 'Not a meeting: skip rule 1 (Time is one of "TBA", "ARRANGED"): no scheduled time.'}
    meetings = emulator_meetings(export)
    assert len(meetings) == 220
    first = next(m for m in meetings if m["subject"].startswith("ACCT 3310-001")
                 and m["startDateTime"].startswith("2027-01-20"))
    # "(P)" marks the primary instructor: Kim organizes although Noonan is listed first
    assert first["participants"]["organizer"]["identity"]["user"]["id"] == user_id(2)
    assert [(a["upn"], a["role"]) for a in first["participants"]["attendees"]] == [
        ("jane.noonan@uni.example", "coorganizer")]


def test_an_instructor_gone_from_the_staff_list_keeps_the_rows_meetings(trial, run_cli):
    """Issue 11 safety: the row is invalid (exit 1), its meetings are neither orphaned nor
    cancelled, while a section really removed in the same run is cancelled."""
    export, config = trial
    config.write_text(complete(config.read_text(), meetings="session"))
    assert run(run_cli, export).code == 0
    before = emulator_meetings(export)
    music = [m for m in before if m["subject"].startswith("MUSI")]
    labs = [m for m in before if m["subject"].startswith("BIOL") and "T20:00" in m["startDateTime"]]
    assert len(music) == 7 and len(labs) == 8
    write_staff(export.with_name("staff.xlsx"), [p for p in STAFF if p[2] != "Lee"])
    write_export(export, [r for r in ROWS if r[-1] != "LAB"])  # the lab is gone

    plan = run_cli("plan", export, "--cancel-removed")
    assert plan.code == 1, plan.out + plan.err
    assert "Plan: 0 to create, 0 to update, 8 to cancel, 205 unchanged, 1 invalid, 4 skipped" in plan.out
    assert "orphaned (would stay" not in plan.out

    result = run(run_cli, export, "--cancel-removed")
    assert result.code == 1, result.out + result.err
    assert ("10 rows: 0 created, 205 existing, 0 failed, 1 invalid, 4 skipped; removed rows: "
            "8 cancelled") in result.out
    assert "orphaned" not in result.err
    out = helpers.read_output(export.with_name("spring27.results.xlsx"))
    (bad,) = [r for r in out if r["status"] == "invalid"]
    assert (bad["sourceRow"], bad["CRN"]) == (11, "20425")
    assert bad["error"].startswith(f'Instructor: "Lee, Ana" is not in the staff directory '
                                   f'{export.parent / "staff.xlsx"}')
    removed = load_workbook(export.with_name("spring27.results.xlsx"))["Removed"]
    statuses = [row[0] for row in removed.iter_rows(min_row=2, values_only=True)]
    assert len(statuses) == 8
    after = emulator_meetings(export)
    assert len(after) == 220 - 8
    assert sorted(m["id"] for m in after if m["subject"].startswith("MUSI")) == sorted(
        m["id"] for m in music)

    # Lee is back in the list: the same meetings, nothing created, exit 0
    write_staff(export.with_name("staff.xlsx"), STAFF)
    again = run(run_cli, export)
    assert again.code == 0, again.out + again.err
    assert "10 rows: 0 created, 212 existing, 0 failed, 0 invalid, 4 skipped" in again.out


def test_a_failed_section_counts_once_per_section_mode(trial, run_cli):
    export, config = trial
    config.write_text(complete(config.read_text(), meetings="section"))
    write_directory(export.with_name("mytenant.json"), unlicensed=("chidi.okafor@uni.example",))
    result = run(run_cli, export, "--summary-json", export.with_name("summary.json"))
    assert result.code == 1, result.out + result.err
    # BIOL 1401-001 is one meeting (lecture + lab) and it failed: one failure, not two
    assert ("11 rows: 5 created, 0 existing, 1 failed, 0 invalid, 4 skipped, 1 sharing their "
            "section's meeting") in result.out
    out = helpers.read_output(export.with_name("spring27.results.xlsx"))
    biol = [r for r in out if r["CRN"] == "20419"]
    assert [r["status"] for r in biol] == ["failed", "failed"]  # each line still shows it
    summary = json.loads(export.with_name("summary.json").read_text())
    assert (summary["failed"], summary["shared"], summary["created"]) == (1, 1, 5)
    sheet = dict(load_workbook(export.with_name("spring27.results.xlsx"))["Summary"].iter_rows(
        values_only=True))
    assert sheet["Sharing their section's meeting"] == 1 and sheet["Skipped (not meetings)"] == 4
    assert len(emulator_meetings(export)) == 5


def test_a_dated_row_whose_organizer_cannot_be_read_keeps_its_meeting(tmp_path, run_cli):
    """The same safety on a sheet that is one row per meeting: the key (CRN, Date) still names
    the meeting when the organizer cell is broken, so it is neither orphaned nor cancelled."""
    teachers = ["ada.lovelace", "alan.turing", "grace.hopper"]
    lines = ["CRN,Date,Start,End,Teacher,Title"] + [
        f"{30000 + n},2027-03-{n + 1:02d},09:00,09:50,{teachers[n % 3]}@school.example,Class {n}"
        for n in range(12)]
    schedule = tmp_path / "dated.csv"
    schedule.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "bulkmeet.toml").write_text(
        'time_zone = "America/Chicago"\n[mapping]\norganizer = "Teacher"\n'
        'subject = "{Title}"\ndate = "Date"\nstart_time = "Start"\nend_time = "End"\n'
        'keys = ["CRN", "Date"]\n', encoding="utf-8")
    first = run_cli("run", schedule, "--emulator", "--no-progress")
    assert first.code == 0, first.out + first.err
    broken = lines[:3] + [lines[3].replace("grace.hopper@school.example", "Grace Hopper")]
    schedule.write_text("\n".join(broken + lines[4:12]) + "\n", encoding="utf-8")  # row 13 gone
    result = run_cli("run", schedule, "--emulator", "--no-progress", "--cancel-removed")
    assert result.code == 1, result.out + result.err
    assert ("11 rows: 0 created, 10 existing, 0 failed, 1 invalid; removed rows: 1 cancelled"
            in result.out)
    titles = sorted(m["subject"] for m in emulator_meetings(schedule))
    assert titles == sorted(f"Class {n}" for n in range(11))  # Class 2 (row 4) is still there


def test_a_section_cancelled_in_the_export_is_reported_as_now_skipped(trial, run_cli):
    export, config = trial
    config.write_text(complete(config.read_text(), meetings="session"))
    assert run(run_cli, export).code == 0
    rows = [[*r[:9], "Cancelled", r[10]] if r[0] == "20425" else r for r in ROWS]
    write_export(export, rows)
    result = run(run_cli, export)
    assert result.code == 7, result.out + result.err  # changes pending: 7 orphans left
    assert ("11 rows: 0 created, 213 existing, 0 failed, 0 invalid, 5 skipped; removed rows: "
            "7 orphaned") in result.out
    assert ("its row 12 is now skipped (skip rule 4 (Status is one of \"Cancelled\"): cancelled "
            "section)") in result.err
    assert "no longer in the sheet" not in result.err


def test_a_journal_from_before_section_keys_learns_them_on_the_next_run(trial, run_cli):
    import sqlite3

    export, config = trial
    config.write_text(complete(config.read_text(), meetings="session"))
    assert run(run_cli, export).code == 0
    journal = export.with_name("spring27.journal.sqlite")
    db = sqlite3.connect(journal)
    db.execute("UPDATE meetings SET section = NULL")  # what an earlier bulkmeet wrote
    db.commit()
    db.close()
    assert run(run_cli, export).code == 0  # unchanged: nothing sent, the keys are filled in
    db = sqlite3.connect(journal)
    assert db.execute("SELECT COUNT(*) FROM meetings WHERE section IS NULL").fetchone() == (0,)
    db.close()
    write_staff(export.with_name("staff.xlsx"), [p for p in STAFF if p[2] != "Lee"])
    plan = run_cli("plan", export)
    assert plan.code == 1 and "orphaned (would stay in Teams)" not in plan.out, plan.out
    assert "Plan: 0 to create, 0 to update, 0 to cancel, 213 unchanged, 1 invalid, 4 skipped" in plan.out
