"""The publish step's choices: where files go, what a section is, and a file that cannot be written."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from bulkmeet.calendars import PublishError, write_calendars
from bulkmeet.config import PublishSettings, parse_config
from bulkmeet.errors import ConfigError, ExitStatus
from bulkmeet.publish import Targets, section_columns
from tests.test_calendars import CHICAGO, TZ, published

MAPPING = {"organizer": "Teacher", "subject": "{Course}", "date": "Date", "start_time": "Start",
           "keys": ["CRN", "Date"], "time_zone": TZ}


def test_files_go_beside_the_output_by_default(tmp_path: Path) -> None:
    t = Targets.for_run(tmp_path / "fall.results.xlsx", PublishSettings())
    assert t == Targets(tmp_path / "fall.calendars", tmp_path / "fall.handouts",
                        tmp_path / "fall.results.html")
    other = Targets.for_run(tmp_path / "out.csv", PublishSettings(), calendars=tmp_path / "c")
    assert other.calendars == tmp_path / "c" and other.report == tmp_path / "out.html"


def test_publish_can_be_turned_off_except_what_the_command_line_names(tmp_path: Path) -> None:
    off = PublishSettings(enabled=False)
    assert Targets.for_run(tmp_path / "x.results.xlsx", off) == Targets(None, None, None)
    only = Targets.for_run(tmp_path / "x.results.xlsx", off, report=tmp_path / "r.html")
    assert only == Targets(None, None, tmp_path / "r.html")


def test_publish_config_section_and_paths(tmp_path: Path) -> None:
    cfg = parse_config({"mapping": MAPPING, "publish": {
        "section": "Course", "calendars": "cal", "organizer_name": "Name"}}, tmp_path / "b.toml")
    assert cfg.publish.section == ("Course",)
    assert cfg.publish.calendars == str(tmp_path / "cal")
    assert ("[publish] organizer_name", "Name") in cfg.mapped_columns()
    default = parse_config({"mapping": MAPPING})
    assert section_columns(default) == ("CRN",)  # the keys without the date column
    with pytest.raises(ConfigError, match=r"\[publish\] section must be a column name or a list"):
        parse_config({"mapping": MAPPING, "publish": {"section": [1]}})
    with pytest.raises(ConfigError, match="unknown key 'calendar' in \\[publish\\]. Did you mean "
                                          "'calendars'"):
        parse_config({"mapping": MAPPING, "publish": {"calendar": "x"}})


def test_an_unwritable_calendar_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "cal"
    blocker.write_text("a file where the folder should be")
    m = published(1, datetime(2027, 3, 8, 9, 0, tzinfo=CHICAGO))
    with pytest.raises(PublishError) as caught:
        write_calendars(blocker, [m], time_zone=TZ)
    assert caught.value.exit_status == ExitStatus.WRITE_FAILED
    assert str(caught.value).startswith(f"Cannot write the calendar file {blocker}/organizers/")
    assert "The meetings exist and the journal has them" in str(caught.value)


def test_cli_says_what_to_do_when_a_calendar_cannot_be_written(tmp_path, tenant, emulator,
                                                               secret_env, run_cli) -> None:
    from tests import helpers

    schedule = helpers.write_csv(tmp_path / "term.csv", helpers.schedule_rows(tenant, 3))
    config = helpers.write_config(tmp_path / "bulkmeet.toml", tenant, emulator.base_url,
                                  emulator.ca_path)
    blocker = tmp_path / "cal"
    blocker.write_text("not a folder")
    result = run_cli("run", schedule, "--config", config, "--calendar", blocker)
    assert result.code == 6
    assert f"ERROR Cannot write the calendar file {blocker}/organizers/" in result.err
    assert "Traceback" not in result.err
    assert "3 rows: 3 created" in result.out  # the summary line still reaches the cron mail
    assert (tmp_path / "term.handouts" / "mail-merge.csv").is_file()  # the others are written
    assert (tmp_path / "term.results.html").is_file()
    assert len(helpers.read_output(tmp_path / "term.results.xlsx")) == 3  # results are complete
    again = run_cli("run", schedule, "--config", config)  # fixed: rerun sends nothing
    assert again.code == 0 and "3 existing" in again.out
    assert len(list((tmp_path / "term.calendars" / "organizers").glob("*.ics"))) == 3


def test_what_needs_a_person_lists_blocked_organizers_once_then_rows_then_orphans() -> None:
    from bulkmeet.models import FAILED, INVALID, MeetingRequest, RowOutcome
    from bulkmeet.publish import attention
    from bulkmeet.sync import RemovedMeeting

    requests = [MeetingRequest(2, "e2", "t1@x.example", "A"), MeetingRequest(3, "e3", "t2@x.example", "B"),
                MeetingRequest(4, "e4", "t1@x.example", "C")]
    outcomes = {(2, 0): RowOutcome(2, FAILED, "e2", error="403 policy"),
                (3, 0): RowOutcome(3, FAILED, "e3", error="Graph had a temporary failure"),
                (4, 0): RowOutcome(4, FAILED, "e4", error="403 policy"),
                (5, 0): RowOutcome(5, INVALID, error="Start: \"25:00\" is not a time")}
    note = ("403 Forbidden. Organizer t1@x.example has no application access policy ... "
            "Grant-CsApplicationAccessPolicy ... (2 meeting(s) of this organizer failed.)")
    removed = [RemovedMeeting("t2@x.example", "e9", "m9", "CS9: Gone", "2027-03-01T15:00:00Z", None,
                              "https://join/9", status="orphaned", reason=""),
               RemovedMeeting("t2@x.example", "e8", "m8", "CS8", None, None, None,
                              status="cancelled")]
    items = attention([note], requests, outcomes, removed, blocked=["t1@x.example"])
    assert [(i.kind, i.row, i.organizer) for i in items] == [
        ("blocked organizer", None, "t1@x.example"),  # its two failed rows are not repeated
        ("failed", 3, "t2@x.example"),
        ("invalid", 5, None),
        ("orphaned", None, "t2@x.example"),
    ]
    assert items[-1].message.startswith("CS9: Gone at 2027-03-01 15:00 UTC: its row is gone")
