"""The registrar-export building blocks on their own: days codes, term calendars, staff
directories (real CSV/XLSX files), skip rules, text cleanup and the config sections."""
from __future__ import annotations

from datetime import date, time
from pathlib import Path

import pytest

from bulkmeet.config import load_config
from bulkmeet.errors import ConfigError, InputError
from bulkmeet.filters import SkipFilter, parse_skip_rules
from bulkmeet.patterns import PatternError, parse_clock, parse_days
from bulkmeet.staff import StaffDirectory, StaffError, parse_staff_settings
from bulkmeet.terms import Closure, TermCalendar, TermError, class_days, parse_closure, parse_term_settings
from bulkmeet.text import clean

MON, TUE, WED, THU, FRI, SAT, SUN = range(7)


@pytest.mark.parametrize("code, days", [
    ("MTWRF", {MON, TUE, WED, THU, FRI}), ("TR", {TUE, THU}), ("MWF", {MON, WED, FRI}),
    ("M W F", {MON, WED, FRI}), ("Mon/Wed", {MON, WED}), ("TTh", {TUE, THU}), ("R", {THU}),
    ("S", {SAT}), ("U", {SUN}), ("SU", {SAT, SUN}), ("TH", {THU}), ("Tu Th", {TUE, THU}),
    ("MoWeFr", {MON, WED, FRI}), ("Monday, Wednesday", {MON, WED}), ("thurs", {THU}),
    ("MTWTHF", {MON, TUE, WED, THU, FRI}), ("Sa/Su", {SAT, SUN}),
])
def test_days_codes(code, days):
    assert parse_days(code) == frozenset(days)


@pytest.mark.parametrize("code, message", [
    ("MXF", '"MXF" is not a days code: "MXF" is not a weekday (use letters like MWF, TR '
            '(R = Thursday), or names like Mon/Wed)'),
    ("Mon/Funday", '"Mon/Funday" is not a days code: "Funday" is not a weekday (use letters like '
                   'MWF, TR (R = Thursday), or names like Mon/Wed)'),
    ("/", '"/" names no weekday (use letters like MWF, TR (R = Thursday), or names like Mon/Wed)'),
])
def test_bad_days_codes_name_the_part_that_is_no_day(code, message):
    with pytest.raises(PatternError) as err:
        parse_days(code)
    assert str(err.value) == message


def test_clock_times():
    assert parse_clock("09:30 AM") == time(9, 30)
    assert parse_clock("12:30 PM") == time(12, 30)
    assert parse_clock("0930") == time(9, 30) and parse_clock("1445") == time(14, 45)
    assert parse_clock("930") == time(9, 30)  # a number cell that lost its leading zero
    assert parse_clock(time(8, 0)) == time(8, 0)
    with pytest.raises(PatternError, match='"ARRANGED" is not a time'):
        parse_clock("ARRANGED")


def test_class_days_leave_out_closures():
    spring_break = Closure(date(2027, 3, 15), date(2027, 3, 19))
    days = class_days(date(2027, 3, 1), date(2027, 3, 26), frozenset({MON, WED}), (spring_break,))
    assert days == (date(2027, 3, 1), date(2027, 3, 3), date(2027, 3, 8), date(2027, 3, 10),
                    date(2027, 3, 22), date(2027, 3, 24))


@pytest.mark.parametrize("value, first, last", [
    ("2027-03-15..2027-03-19", date(2027, 3, 15), date(2027, 3, 19)),
    ("3/15/2027 to 3/19/2027", date(2027, 3, 15), date(2027, 3, 19)),
    ("2027-03-15 - 2027-03-19", date(2027, 3, 15), date(2027, 3, 19)),
    ("2027-04-02", date(2027, 4, 2), date(2027, 4, 2)),
    (date(2027, 4, 2), date(2027, 4, 2), date(2027, 4, 2)),
    ({"first": date(2027, 3, 15), "last": date(2027, 3, 19)}, date(2027, 3, 15), date(2027, 3, 19)),
])
def test_closures_are_days_or_ranges(value, first, last):
    assert parse_closure(value) == Closure(first, last)


def test_a_backwards_closure_is_refused():
    with pytest.raises(ValueError, match="ends"):
        parse_closure("2027-03-19..2027-03-15")


def _terms(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "terms.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_term_table_file_and_unknown_code_message(tmp_path):
    _terms(tmp_path, "code,first_day,last_day,closures\n1,2027-01-19,2027-05-07,2027-03-15..2027-03-19\n"
                     "S1,1/19/2027,3/12/2027,\n")
    settings = parse_term_settings({"column": "PTRM", "table": "terms.csv"}, "cfg", tmp_path, "MDY")
    cal = TermCalendar(settings, "MDY", "cfg")
    first, last, closures = cal.span({"PTRM": "s1"}, {})
    assert (first, last, closures) == (date(2027, 1, 19), date(2027, 3, 12), ())
    assert cal.span({"PTRM": "1"}, {})[2] == (Closure(date(2027, 3, 15), date(2027, 3, 19)),)
    with pytest.raises(TermError) as err:
        cal.span({"PTRM": "S9"}, {})
    assert err.value.column == "PTRM"
    assert err.value.message == (
        f'"S9" is not a part of term that bulkmeet knows (known: "1", "S1"); add a row for it to '
        f'{tmp_path / "terms.csv"}, or skip such rows with a [[skip]] rule')


def test_term_table_errors_name_file_and_row(tmp_path):
    _terms(tmp_path, "code,first_day,last_day\n1,2027-01-19,2027-05-07\nS1,2027-03-12,2027-01-19\n")
    settings = parse_term_settings({"column": "PTRM", "table": "terms.csv"}, "cfg", tmp_path, "MDY")
    with pytest.raises(InputError) as err:
        TermCalendar(settings, "MDY", "cfg")
    assert str(err.value) == f"{tmp_path / 'terms.csv'}: row 3: last_day 2027-01-19 is before first_day 2027-03-12; swap them."
    _terms(tmp_path, "part,start\n1,2027-01-19\n")
    with pytest.raises(InputError, match="needs the columns code, first_day and last_day"):
        TermCalendar(settings, "MDY", "cfg")


@pytest.mark.parametrize("table, message", [
    ({}, "must say where the class days come from"),
    ({"first_day": "2027-01-19"}, "needs both first_day and last_day"),
    ({"first_day": date(2027, 1, 19), "last_day": date(2029, 1, 1)}, "more than 400 days"),
    ({"column": "PTRM"}, "needs the parts"),
    ({"parts": {"1": {"first_day": date(2027, 1, 19), "last_day": date(2027, 5, 7)}}}, "need column"),
    ({"first_day": date(2027, 1, 19), "last_day": date(2027, 5, 7), "closures": ["spring break"]},
     '"spring break" is not a day or a range of days'),
    ({"colum": "PTRM"}, "unknown key 'colum' in [term]. Did you mean 'column'?"),
])
def test_term_section_errors(table, message):
    with pytest.raises(ConfigError) as err:
        parse_term_settings(table, "cfg.toml", None, "MDY")
    assert message in str(err.value)


def _staff(tmp_path: Path, suffix: str = ".csv") -> StaffDirectory:
    rows = [["Staff ID", "Name", "Email"], ["00417", "Noonan, Jane", "jane.noonan@school.example"],
            ["E2", "Kim, Min", "min.kim@school.example"], ["E3", "Kim, Mark", "mark.kim@school.example"],
            ["E4", "Muñoz, José", "jose.munoz@school.example"], ["E5", "O'Brien, Pat", "PAT.OBRIEN@school.example"]]
    path = tmp_path / f"staff{suffix}"
    if suffix == ".csv":
        path.write_text("\n".join(",".join(f'"{c}"' for c in r) for r in rows) + "\n", encoding="utf-8")
    else:
        from openpyxl import Workbook

        wb = Workbook()
        for r in rows:
            wb.active.append(r)
        wb.save(path)
    settings = parse_staff_settings({"column": "Instructor", "directory": str(path), "name_column": "Name",
                                     "id_column": "Staff ID", "upn_column": "Email"}, "cfg", None)
    return StaffDirectory(settings)


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_staff_lookup_by_name_initial_and_id(tmp_path, suffix):
    d = _staff(tmp_path, suffix)
    assert d.lookup("Noonan, J").upn == "jane.noonan@school.example"
    assert d.lookup("noonan,  Jane ").upn == "jane.noonan@school.example"
    assert d.lookup("Jane Noonan").upn == "jane.noonan@school.example"
    assert d.lookup("00417").upn == "jane.noonan@school.example"  # leading zeros kept
    assert d.lookup("Munoz, J").upn == "jose.munoz@school.example"  # accents ignored
    assert d.lookup("O&#39;Brien, P.").upn == "pat.obrien@school.example"  # entities, dots, case
    assert d.instructors("Noonan, J;Kim, Min") == ("jane.noonan@school.example", ("min.kim@school.example",))
    assert d.instructors(None) == (None, ())


def test_staff_missing_and_ambiguous_names(tmp_path):
    d = _staff(tmp_path)
    with pytest.raises(StaffError) as err:
        d.lookup("Nobody, X")
    assert str(err.value) == (f'"Nobody, X" is not in the staff directory {tmp_path / "staff.csv"}; add '
                              "them (with their UPN) to that file, or correct the name in the sheet")
    with pytest.raises(StaffError) as err:
        d.lookup("Kim, M")
    assert str(err.value) == (
        f'"Kim, M" matches 2 people in the staff directory {tmp_path / "staff.csv"} (Kim, Min '
        "<min.kim@school.example>; Kim, Mark <mark.kim@school.example>); write the first name in "
        "full or use the staff ID")


def test_staff_file_problems(tmp_path):
    path = tmp_path / "staff.csv"
    path.write_text("Name,Email\n\"Noonan, Jane\",jane.noonan\n", encoding="utf-8")
    settings = parse_staff_settings({"column": "I", "directory": str(path), "name_column": "Name",
                                     "upn_column": "Email"}, "cfg", None)
    with pytest.raises(InputError) as err:
        StaffDirectory(settings)
    assert str(err.value) == (f'{path}: row 2: Email "jane.noonan" is not an e-mail address (UPN); '
                              "fix it in the staff directory.")
    settings = parse_staff_settings({"column": "I", "directory": str(path), "name_column": "Full Name",
                                     "upn_column": "Email"}, "cfg", None)
    with pytest.raises(InputError, match="has no column 'Full Name'"):
        StaffDirectory(settings)
    with pytest.raises(ConfigError, match="separator must be a character other than"):
        parse_staff_settings({"column": "I", "directory": "x.csv", "name_column": "N",
                              "upn_column": "E", "separator": ","}, "cfg", None)


def test_skip_rules():
    rules = parse_skip_rules([
        {"column": "Time", "one_of": ["ARRANGED", "TBA"]},
        {"column": "Type", "equals": "Online", "reason": "online"},
        {"column": "Status", "pattern": "cancel+ed"},
    ], "cfg")
    f = SkipFilter(rules, {})
    assert f.match({"Time": " arranged "}) is rules[0]
    assert f.match({"Time": "09:00", "Type": "ONLINE"}) is rules[1]
    assert f.match({"Status": "Cancelled"}) is rules[2]
    assert f.match({"Status": "Active", "Time": "TBA later"}) is None
    assert rules[1].describe() == 'skip rule 2 (Type is "Online"): online'
    with pytest.raises(ConfigError, match="needs exactly one of equals"):
        parse_skip_rules([{"column": "Time", "equals": "x", "pattern": "y"}], "cfg")
    with pytest.raises(ConfigError, match="is not a regular expression"):
        parse_skip_rules([{"column": "Time", "pattern": "("}], "cfg")


@pytest.mark.parametrize("raw, cleaned", [
    ("Atg Measurement &amp; Disclosure", "Atg Measurement & Disclosure"),
    ("Caf&eacute;\u00a0 Culture  ", "Café Culture"),
    ("R&amp;amp;D", "R&D"),
    ("Tom & Jerry; Q&A", "Tom & Jerry; Q&A"),
    ("\tLine\nbreak\u200b", "Line break"),
])
def test_text_cleanup(raw, cleaned):
    assert clean(raw) == cleaned


BASE = """
time_zone = "America/Chicago"
[auth]
mode = "delegated"
[mapping]
subject = "{Course}"
keys = ["CRN"]
"""
PATTERN = '[pattern]\ndays = "Days"\nstart_time = "Begin"\nend_time = "End"\n'
TERM = '[term]\nfirst_day = 2027-01-19\nlast_day = 2027-05-07\n'


@pytest.mark.parametrize("extra, message", [
    (PATTERN, "[pattern] needs [term]"),
    (TERM, "[term] is used only with [pattern]"),
    (PATTERN.replace('"Days"', "3") + TERM, "[pattern] days must be a text value"),
    (PATTERN + TERM + '[pattern.x]\n', "unknown key 'x' in [pattern]."),
    (PATTERN.replace('days = "Days"\n', "") + TERM, "missing: days"),
    (PATTERN + 'meetings = "weekly"\n' + TERM, 'meetings must be "session"'),
    (PATTERN + TERM + '[staff]\ncolumn = "I"\n', "[staff] needs directory"),
    ('[patern]\n', "Did you mean [pattern]?"),
])
def test_config_sections_are_checked(tmp_path, extra, message):
    path = tmp_path / "bulkmeet.toml"
    path.write_text(BASE + extra)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value)


def test_pattern_and_dated_mapping_together_is_refused(tmp_path):
    path = tmp_path / "bulkmeet.toml"
    path.write_text(BASE.replace('keys = ["CRN"]', 'keys = ["CRN"]\ndate = "Date"\nstart_time = "S"')
                    + PATTERN + TERM)
    with pytest.raises(ConfigError, match="cannot both say when classes meet"):
        load_config(path)


def test_a_complete_registrar_config_loads(tmp_path):
    path = tmp_path / "bulkmeet.toml"
    path.write_text(BASE + PATTERN + 'meetings = "section"\n' + TERM + 'closures = ["2027-03-15..2027-03-19"]\n'
                    + '[staff]\ncolumn = "Instructor"\ndirectory = "staff.csv"\nname_column = "Name"\n'
                      'upn_column = "Email"\n[[skip]]\ncolumn = "Begin"\nequals = "ARRANGED"\n')
    cfg = load_config(path)
    assert cfg.pattern is not None and cfg.pattern.meetings == "section"
    assert cfg.term is not None and cfg.term.closures == (Closure(date(2027, 3, 15), date(2027, 3, 19)),)
    assert cfg.staff is not None and cfg.staff.directory == str(tmp_path / "staff.csv")
    assert [r.equals for r in cfg.skip] == ["ARRANGED"]
    assert ("[pattern] days", "Days") in cfg.mapped_columns()


def test_term_table_in_excel_with_date_cells_and_number_codes(tmp_path):
    from datetime import datetime

    from openpyxl import Workbook

    wb = Workbook()
    wb.active.append(["Code", "First Day", "Last Day", "Name"])
    wb.active.append([1, datetime(2027, 1, 19), datetime(2027, 5, 7), "Full term"])
    wb.active.append(["S2A", "3/22/2027", "5/7/2027", "Second half"])
    wb.save(tmp_path / "terms.xlsx")
    settings = parse_term_settings({"column": "PTRM", "table": "terms.xlsx"}, "cfg", tmp_path, "MDY")
    cal = TermCalendar(settings, "MDY", "cfg")
    assert cal.span({"PTRM": "1"}, {})[:2] == (date(2027, 1, 19), date(2027, 5, 7))
    assert cal.span({"PTRM": "s2a"}, {})[:2] == (date(2027, 3, 22), date(2027, 5, 7))
