"""Meeting options in the config and in sheet cells: what is accepted, and the exact sentences
for what is not (real TOML files, real sheets read back through the planner)."""
from __future__ import annotations

from pathlib import Path

import pytest

from bulkmeet import meeting_options
from bulkmeet.config import load_config
from bulkmeet.errors import ConfigError, InputError
from bulkmeet.plan import plan_rows
from bulkmeet.sheets import read_sheet
from tests import helpers

CONFIG = """\
[auth]
mode = "app"
[mapping]
organizer = "Teacher"
subject = "{Course}"
date = "Date"
start_time = "Start"
end_time = "End"
keys = ["CRN", "Date"]
attendees = ["Students", {column = "TA", role = "presenter"}]
"""


def config(tmp_path: Path, extra: str = "", mapping: str = "") -> Path:
    text = CONFIG.replace('keys = ["CRN", "Date"]', 'keys = ["CRN", "Date"]\n' + mapping)
    path = tmp_path / "bulkmeet.toml"
    path.write_text(text + extra)
    return path


def test_settings_in_both_toml_spellings(tmp_path: Path) -> None:
    cfg = load_config(config(tmp_path, """
[settings]
lobbyBypassSettings.scope = "Everyone"
"lobbyBypassSettings.isDialInBypassEnabled" = true
allowmeetingchat = "disabled"
recordAutomatically = "no"
"""))
    assert cfg.settings == (("allowMeetingChat", "disabled"),
                            ("lobbyBypassSettings.isDialInBypassEnabled", True),
                            ("lobbyBypassSettings.scope", "everyone"),
                            ("recordAutomatically", False))
    assert meeting_options.patch_fragment(dict(cfg.settings)) == {
        "allowMeetingChat": "disabled", "recordAutomatically": False,
        "lobbyBypassSettings": {"isDialInBypassEnabled": True, "scope": "everyone"}}


@pytest.mark.parametrize(("extra", "mapping", "message"), [
    ('[settings]\nallowMeetingchatt = "enabled"\n', "",
     "[settings]: unknown meeting option 'allowMeetingchatt'. Did you mean 'allowMeetingChat'?"),
    ('[settings]\nallowMeetingChat = "sometimes"\n', "",
     '[settings] allowMeetingChat: "sometimes" is not one of enabled, disabled, limited.'),
    ('[settings]\nallowRecording = "maybe"\n', "",
     '[settings] allowRecording: "maybe" is not true or false (write true/false or yes/no).'),
    ("", 'settings = {allowMeetingChat = 3}\n',
     "[mapping] settings allowMeetingChat must name a column of the sheet, in quotes."),
    ('[sync]\nmax_cancel_percent = 150\n', "", "[sync] max_cancel_percent must be between 0"),
])
def test_option_mistakes_name_the_key_and_the_fix(tmp_path, extra, mapping, message) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(config(tmp_path, extra, mapping))
    assert message in str(exc.value)


def test_role_is_presenter_without_any_attendee_column_is_a_config_error(tmp_path) -> None:
    path = config(tmp_path, '[settings]\nallowedPresenters = "roleIsPresenter"\n')
    path.write_text(path.read_text().replace(
        'attendees = ["Students", {column = "TA", role = "presenter"}]\n', ""))
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert "[mapping] has no attendees" in str(exc.value)
    assert 'role = \\"presenter\\"' not in str(exc.value)  # shown as TOML, not escaped


HEADER = ["CRN", "Course", "Teacher", "Date", "Start", "End", "Students", "TA", "Chat"]


def test_row_cells_override_the_config_and_bad_cells_make_the_row_invalid(tmp_path) -> None:
    cfg = load_config(config(tmp_path, '[settings]\nallowMeetingChat = "disabled"\n'
                                       'allowedPresenters = "roleIsPresenter"\n',
                             'settings = {allowMeetingChat = "chat"}\n'))  # case-insensitive
    rows = [
        ["1", "A", "t@x.example", "2027-03-01", "09:00", "09:50", "s@x.example", "ta@x.example", ""],
        ["2", "B", "t@x.example", "2027-03-01", "10:00", "10:50", "s@x.example", "ta@x.example",
         "Enabled"],
        ["3", "C", "t@x.example", "2027-03-01", "11:00", "11:50", "s@x.example", "", ""],
        ["4", "D", "t@x.example", "2027-03-01", "12:00", "12:50", "", "ta@x.example", "often"],
    ]
    sheet = read_sheet(helpers.write_csv(tmp_path / "s.csv", rows, header=HEADER))
    plan = plan_rows(sheet, cfg)
    assert [dict(r.settings)["allowMeetingChat"] for r in plan.requests] == ["disabled",
                                                                            "enabled"]
    assert [(bad.row, bad.column) for bad in plan.invalid] == [(4, None), (5, "Chat")]
    assert plan.invalid[0].message.startswith(
        "allowedPresenters is \"roleIsPresenter\", but this row has no attendee with the "
        "presenter role")
    assert plan.invalid[1].message == '"often" is not one of enabled, disabled, limited'


def test_a_mapped_option_column_missing_from_the_sheet_stops_the_run(tmp_path) -> None:
    cfg = load_config(config(tmp_path, mapping='settings = {allowMeetingChat = "Chat"}\n'))
    sheet = read_sheet(helpers.write_csv(tmp_path / "s.csv", [["1"] * 8], header=HEADER[:-1]))
    with pytest.raises(InputError) as exc:
        plan_rows(sheet, cfg)
    assert "maps settings allowMeetingChat to column 'Chat', which the sheet does not have" in \
        str(exc.value)


def test_rows_without_options_keep_their_fingerprint(tmp_path) -> None:
    """Journals written before options existed must not see every row as changed."""
    from dataclasses import replace

    cfg = load_config(config(tmp_path))
    rows = [["1", "A", "t@x.example", "2027-03-01", "09:00", "09:50", "", "", ""]]
    (req,) = plan_rows(read_sheet(helpers.write_csv(tmp_path / "s.csv", rows, header=HEADER)),
                       cfg).requests
    assert req.settings == ()
    with_options = replace(req, settings=(("allowMeetingChat", "disabled"),))
    assert with_options.fingerprint() != req.fingerprint()
    assert "settings" not in req.body() and "allowMeetingChat" not in with_options.body()


def test_sync_section_and_flags_make_the_limits(tmp_path) -> None:
    from bulkmeet.apply import limits_for

    cfg = load_config(config(tmp_path, "[sync]\ncancel_removed = true\nmax_cancel_percent = 5\n"
                                       "max_cancel_count = 3\n"))
    limits = limits_for(cfg)
    assert (limits.cancel_removed, limits.max_cancel_percent, limits.max_cancel_count,
            limits.max_cancel_once) == (True, 5.0, 3, None)
    (tmp_path / "plain").mkdir()
    default = load_config(config(tmp_path / "plain"))
    assert not limits_for(default).cancel_removed
    assert limits_for(default, max_cancel=7).cancel_removed  # --max-cancel N implies cancelling
    assert limits_for(default, max_cancel=7).max_cancel_once == 7
