"""`bulkmeet init` for registrar exports: weekly patterns, part-of-term codes, instructor names.

Recognised when the sheet has a days column (``MWF``, ``TR``, ``Mon/Wed``...) next to time columns
without dates. Values such as ``ARRANGED``/``TBA`` are left out when deciding what a column holds
(in one real export 1,374 of 1,775 rows were ARRANGED) and become ``[[skip]]`` rules, as do
cancelled statuses and online/independent-study types. The subject is built from the
department, course number, section and title, never from one code alone. The config asks only
for what the sheet cannot tell: the term's dates (``"TODO"`` values that stop ``validate`` with a
message naming them) and the staff directory (a file name to fill in). No config it writes sends
a meeting without a time.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from bulkmeet import text
from bulkmeet.models import Sheet
from bulkmeet.patterns import PatternError, parse_clock, parse_days, parse_time_range
from bulkmeet.starter import (
    _ID,
    _ORGANIZER,
    _SECTION,
    _TITLE,
    ARRANGED,
    RUN_SYNC_AND_SETTINGS,
    _Columns,
    _field,
    _head,
    _is_address,
    _mostly,
    _q,
    _toml_list,
    scheduled,
)

_DAYS = [r"((meeting|class|mtg|course|section) )?days?( (of (the )?week|pattern|code|met))?",
         r"(weekdays?|day pattern|mtg pattern|meeting pattern)"]
_BEGIN = [r"(begin|start|from)( (time|tm|hour))?", r"(time )?(begin|start)", r"(mtg |meeting )?start time",
          r".*\b(begin|start)\b.*"]
_FINISH = [r"(end|finish|until|to)( (time|tm|hour))?", r"(time )?(end|finish)", r"(mtg |meeting )?end time",
           r".*\b(end|finish)\b.*"]
_TIMES = [r"((meeting|mtg|class|section) )?times?( range)?", r".*\btimes?\b.*", r"hours?"]
_TERM = [r"(part of term( code)?|pot|ptrm|part term|term part|session( code| cd)?|sess|sub ?term)"]
_INSTRUCTOR = [r"(primary )?(instructors?|teachers?|faculty|professors?|lecturers?)( (names?|list))?",
               r".*\b(instructors?|faculty)\b.*"]
_DEPT = [r"(subject|subj|subject code|dept|department( code)?|prefix|course prefix|discipline)"]
_NUMBER = [r"(course( number| no| num| nbr)?|crse( numb| no)?|catalog( number| nbr| no)?|cat nbr|number|nbr)"]
_STATUS = [r"((section|class|course|enrollment|enrl) )?stat(us)?"]
_TYPE = [r"((schedule|sched|schd) (type|code)( code| desc(ription)?)?|schd|type"
         r"|instruction(al)? (mode|method)|method|mode|delivery|format"
         r"|component|class type|section type)"]
_NOT_LIVE = re.compile(r"online|web|internet|independent|ind(ep)?\b|async|distance|study|ind std", re.I)


def _ok(parse: Any, value: Any) -> bool:
    try:
        parse(value)
    except (PatternError, TypeError, AttributeError):
        return False
    return True


def _days_like(values: list[Any]) -> bool:
    real = [v for v in scheduled(values) if isinstance(v, str)]
    return bool(real) and _mostly(real, lambda v: _ok(parse_days, v) and len(v) <= 20)


def _clock_like(values: list[Any]) -> bool:
    real = scheduled(values)
    return bool(real) and _mostly(real, lambda v: _ok(parse_clock, v))


def _range_like(values: list[Any]) -> bool:
    real = scheduled(values)
    return bool(real) and _mostly(real, lambda v: _ok(parse_time_range, v))


def _names_like(values: list[Any]) -> bool:
    return bool(values) and not _mostly(values, _is_address) and _mostly(
        values, lambda v: isinstance(v, str) and bool(re.search(r"[A-Za-z]", v)))


def _short_codes(values: Iterable[Any]) -> bool:
    vals = [v for v in values if v is not None]
    return bool(vals) and all(isinstance(v, str) and len(v) <= 6 for v in vals)


def _distinct(sheet: Sheet, column: str, limit: int = 40) -> list[str]:
    seen: dict[str, None] = {}
    for row in sheet.rows:
        v = row.values.get(column)
        seen.setdefault("" if v is None else text.clean(str(v)), None)
        if len(seen) >= limit:
            break
    return list(seen)


def _arranged_values(sheet: Sheet, columns: Iterable[str | None]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for column in columns:
        if not column:
            continue
        found = [v for v in _distinct(sheet, column, 200) if v and ARRANGED.match(v)]
        if found:
            out[column] = found
    return out


def registrar_starter(sheet: Sheet) -> str | None:
    """The starter config for a weekly-pattern export, or None when the sheet is not one."""
    cols = _Columns(sheet)
    days = cols.find(_DAYS, _days_like)
    if days is None:
        return None
    begin = cols.find(_BEGIN, _clock_like)
    finish = cols.find(_FINISH, _clock_like) if begin else None
    span = None if (begin and finish) else cols.find(_TIMES, _range_like)
    if not ((begin and finish) or span):
        cols.used.discard(days)
        return None
    organizer = cols.find(_ORGANIZER, lambda vs: _mostly(vs, _is_address))
    instructor = None if organizer else cols.find(_INSTRUCTOR, _names_like)
    term = cols.find(_TERM, _short_codes)
    status = cols.find(_STATUS, take=False)
    kind = cols.find(_TYPE, take=False)
    ident = cols.find(_ID, take=False)
    dept = cols.find(_DEPT, lambda vs: _short_codes(vs), take=False)
    if dept:
        cols.used.add(dept)
    number = cols.find(_NUMBER, take=False)
    section = cols.find(_SECTION, take=False)
    title = cols.find(_TITLE, take=False)
    subject = _subject(dept, number, section, title, ident, sheet)
    keys = [ident] if ident else [c for c in (dept, number, section) if c] or [sheet.columns[0]]

    lines = _head(sheet, "app")
    lines.extend(_mapping_and_pattern_lines(subject, organizer, keys, days, (begin, finish, span)))
    add = lines.append
    lines.extend(_term_lines(sheet, term))
    if instructor:
        lines.extend(_staff_lines(sheet, instructor))
    elif not organizer:
        add("# TODO: no instructor column found; name the organizer of every meeting in [mapping]:")
        add("# organizer_fixed = \"registrar@school.edu\"")
        add("")
    lines.extend(_skip_lines(sheet, days, (begin, finish, span), status, kind))
    lines.extend(RUN_SYNC_AND_SETTINGS)
    return "\n".join(lines) + "\n"


def _mapping_and_pattern_lines(subject: str, organizer: str | None, keys: list[str], days: str,
                               times: tuple[str | None, str | None, str | None]) -> list[str]:
    """[mapping] and [pattern] of a weekly-pattern starter, each guess commented."""
    begin, finish, span = times
    lines: list[str] = []
    add = lines.append
    add("[mapping]")
    add("# Subject: department, course number, section and title (HTML entities such as &amp; are")
    add("# decoded and spaces tidied before sending).")
    add(f"subject = {_q(subject)}")
    if organizer:
        add(f"# Organizer of each meeting (guessed: column '{organizer}').")
        add(f"organizer = {_q(organizer)}")
    add("# What identifies a section; bulkmeet adds the class day itself (README \"Choosing keys\").")
    add(f"keys = {_toml_list(keys)}")
    add("")
    add("[pattern]")
    add("# The weekly pattern (guessed): days code column and class times, no dates.")
    add(f"days = {_q(days)}")
    if begin and finish:
        add(f"start_time = {_q(begin)}")
        add(f"end_time = {_q(finish)}")
    elif span:
        add(f"times = {_q(span)}   # one column: 09:30 AM-10:45 AM")
    add("# \"section\": one meeting (one link) per section for the whole term, starting at its first")
    add("# class; \"session\": one meeting per class day.")
    add("meetings = \"section\"")
    add("")
    return lines


def _subject(dept: str | None, number: str | None, section: str | None, title: str | None,
             ident: str | None, sheet: Sheet) -> str:
    course = " ".join(_field(c) for c in (dept, number) if c)
    if section:
        course = f"{course}-{_field(section)}" if course else _field(section)
    if title:
        return f"{course}: {_field(title)}" if course else _field(title)
    if course and (number or section):
        return course
    # Never one code alone (every meeting "ACCT"): add the section id and say so.
    parts = [c for c in (dept, ident) if c] or list(sheet.columns[:2])
    return " ".join(_field(c) for c in dict.fromkeys(parts))


def _term_lines(sheet: Sheet, term: str | None) -> list[str]:
    out = ["[term]"]
    if term:
        codes = _distinct(sheet, term)
        shown = ", ".join(f"\"{c}\"" for c in codes)
        out += [f"# Class days come from the part-of-term code in column '{term}' (found: {shown}).",
                f"column = {_q(term)}",
                "# Holidays and closures for every part: days or ranges, e.g.",
                "# closures = [\"2027-01-18\", \"2027-03-15..2027-03-19\"]",
                "closures = []",
                "# TODO: the first and last class day of each part of term (bulkmeet cannot know them).",
                "# Or keep them in a CSV: table = \"terms.csv\" (columns code, first_day, last_day, closures)."]
        for code in codes:
            out += [f"[term.parts.{_q(code)}]", "first_day = \"TODO\"   # e.g. first_day = 2027-01-19",
                    "last_day = \"TODO\""]
    else:
        out += ["# TODO: the term's first and last class day (bulkmeet cannot know them).",
                "first_day = \"TODO\"   # e.g. first_day = 2027-01-19",
                "last_day = \"TODO\"",
                "# Holidays and closures: days or ranges, e.g. [\"2027-03-15..2027-03-19\"].",
                "closures = []"]
    return [*out, ""]


def _staff_lines(sheet: Sheet, instructor: str) -> list[str]:
    values = _distinct(sheet, instructor, 200)
    separator = ";" if any(";" in v for v in values) else "/" if any("/" in v for v in values) else ";"
    return [
        "[staff]",
        f"# Instructors are names (guessed: column '{instructor}'), so organizers come from your staff",
        "# list: a CSV or XLSX with each person's name (\"Last, First\") or staff ID and UPN.",
        f"column = {_q(instructor)}",
        "# TODO: the staff list's file and its columns.",
        "directory = \"TODO-staff-list.csv\"",
        "name_column = \"Name\"",
        "upn_column = \"Email\"",
        "# id_column = \"Staff ID\"",
        f"separator = {_q(separator)}   # between several instructors in one cell",
        "# The first instructor organizes; the others join with this role.",
        "others_role = \"coorganizer\"",
        "# fallback_organizer = \"registrar@school.edu\"   # for rows with no instructor",
        "",
    ]


def _skip_lines(sheet: Sheet, days: str, clock: tuple[str | None, ...], status: str | None,
                kind: str | None) -> list[str]:
    out: list[str] = []
    arranged = _arranged_values(sheet, (*clock, days))
    if arranged:
        out.append("# Rows that are not scheduled classes are reported as \"skipped\", not errors.")
    for column, found in arranged.items():
        out += ["[[skip]]", f"column = {_q(column)}", f"one_of = {_toml_list(found)}",
                "reason = \"no scheduled time\"", ""]
    if any(row.values.get(days) is None for row in sheet.rows):
        out += ["[[skip]]", f"column = {_q(days)}", "equals = \"\"", "reason = \"no meeting days\"", ""]
    if status:
        cancelled = [v for v in _distinct(sheet, status) if re.search(r"cancel", v, re.I)]
        if cancelled:
            out += ["[[skip]]", f"column = {_q(status)}", f"one_of = {_toml_list(cancelled)}",
                    "reason = \"cancelled section\"", ""]
    if kind:
        remote = [v for v in _distinct(sheet, kind) if v and _NOT_LIVE.search(v)]
        if remote:
            out += ["# Remove this rule if these sections meet live online.",
                    "[[skip]]", f"column = {_q(kind)}", f"one_of = {_toml_list(remote)}",
                    "reason = \"online or independent study\"", ""]
    return out
