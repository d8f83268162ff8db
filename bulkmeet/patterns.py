"""Weekly meeting patterns as registrar exports write them: a days code and two clock times.

Days codes (case and separators do not matter unless said):

* one letter a day, Banner/PeopleSoft style: ``M T W R F S U`` (``R`` = Thursday, ``S`` =
  Saturday, ``U`` = Sunday), run together (``MTWRF``, ``TR``, ``MWF``) or spaced (``M W F``);
* abbreviations and names, run together or separated by ``/ , - + & space``: ``Mon/Wed``, ``TTh``,
  ``Tu Th``, ``MoWeFr``, ``Sa``, ``Su``, ``Thurs``, ``Monday, Wednesday``.

An all-capital code of single letters is read letter by letter first (so ``SU`` is Saturday and
Sunday, as in a Banner export); if a letter is not a day letter (``TH``), the code is read as
abbreviations (``TH`` = Thursday). Anything else is an error naming the part that is not a day.

Times: anything ``times.parse_time`` reads (``09:30 AM``, ``9:30am``, ``13:30``, an Excel time
cell), plus military ``0930``/``1445`` without a colon as some SIS exports write them (also
``930``: an Excel number cell that dropped the leading zero).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time
from functools import lru_cache
from typing import Any

from bulkmeet import times

DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_LETTERS = {"M": 0, "T": 1, "W": 2, "R": 3, "F": 4, "S": 5, "U": 6}
# Longest first, so "thurs" wins over "thu" over "th" over "t".
_WORDS = sorted({
    "monday": 0, "mon": 0, "mo": 0, "m": 0,
    "tuesday": 1, "tues": 1, "tue": 1, "tu": 1, "t": 1,
    "wednesday": 2, "weds": 2, "wed": 2, "we": 2, "w": 2,
    "thursday": 3, "thurs": 3, "thur": 3, "thu": 3, "th": 3, "r": 3,
    "friday": 4, "fri": 4, "fr": 4, "f": 4,
    "saturday": 5, "sat": 5, "sa": 5, "s": 5,
    "sunday": 6, "sun": 6, "su": 6, "u": 6,
}.items(), key=lambda kv: -len(kv[0]))
_SEPARATORS = re.compile(r"[\s/,\-+&.;|]+")
_MILITARY = re.compile(r"^(0\d|1\d|2[0-3]|\d)([0-5]\d)$")
DAYS_HINT = "use letters like MWF, TR (R = Thursday), or names like Mon/Wed"


class PatternError(ValueError):
    """A days code or time that cannot be read; ``str()`` starts with the value as typed."""


@dataclass(frozen=True)
class WeeklyPattern:
    """One meeting pattern: the weekdays it meets (0 = Monday) and its local clock times."""

    weekdays: frozenset[int]
    start: time
    end: time

    def describe(self) -> str:
        days = "/".join(DAY_NAMES[d][:3] for d in sorted(self.weekdays))
        return f"{days} {self.start:%H:%M}-{self.end:%H:%M}"


@lru_cache(maxsize=1024)
def parse_days(text: str) -> frozenset[int]:
    """Weekdays (0 = Monday) of a days code; ``PatternError`` naming the part that is no day."""
    raw = text
    compact = _SEPARATORS.sub("", text)
    if not compact:
        raise PatternError(f"\"{raw}\" names no weekday ({DAYS_HINT})")
    if compact.isupper() and all(ch in _LETTERS for ch in compact):
        return frozenset(_LETTERS[ch] for ch in compact)
    found: set[int] = set()
    for chunk in _SEPARATORS.split(text.strip()):
        rest = chunk.casefold()
        while rest:
            for word, day in _WORDS:
                if rest.startswith(word):
                    found.add(day)
                    rest = rest[len(word):]
                    break
            else:
                raise PatternError(f"\"{raw}\" is not a days code: \"{chunk}\" is not a weekday "
                                   f"({DAYS_HINT})")
    return frozenset(found)


def parse_clock(value: Any) -> time:
    """A class's start or end time; ``PatternError`` with the value as typed."""
    if isinstance(value, str):
        m = _MILITARY.match(value.strip())
        if m:  # "0930", or "930" from a number cell that lost its leading zero
            return time(int(m[1]), int(m[2]))
    try:
        return times.parse_time(value)
    except times.TimeValueError as exc:
        raise PatternError(str(exc)) from None


_RANGE = re.compile(r"^\s*(?P<a>.+?)\s*(?:-|–|—|\bto\b)\s*(?P<b>.+?)\s*$", re.I)
_MERIDIEM = re.compile(r"\s*([ap])\.?\s*m\.?\s*$", re.I)


def parse_time_range(value: Any) -> tuple[time, time]:
    """Start and end of a one-column time range: ``09:30 AM-10:45 AM``, ``0930-1045``,
    ``9:30-10:45 AM`` (the end's AM/PM also applies to the start when that makes it the earlier).
    ``PatternError`` with the value as typed."""
    if not isinstance(value, str):
        raise PatternError(f"{times.show(value)} is not a time range (use 09:30 AM-10:45 AM)")
    m = _RANGE.match(value)
    if not m:
        raise PatternError(f"\"{value}\" is not a time range (use 09:30 AM-10:45 AM)")
    a, b = m["a"], m["b"]
    try:
        end = parse_clock(b)
        suffix = _MERIDIEM.search(b)
        if suffix and not _MERIDIEM.search(a) and not _MILITARY.match(a.strip()):
            other = "a" if suffix[1].lower() == "p" else "p"
            start = parse_clock(f"{a} {suffix[1]}m")
            if start >= end:
                start = parse_clock(f"{a} {other}m")
        else:
            start = parse_clock(a)
    except PatternError:
        raise PatternError(f"\"{value}\" is not a time range (use 09:30 AM-10:45 AM)") from None
    return start, end


def parse_pattern(days: Any, start: Any, end: Any) -> WeeklyPattern:
    """A ``WeeklyPattern`` from the three cells; the end must be after the start (same day)."""
    if not isinstance(days, str):
        raise PatternError(f"{times.show(days)} is not a days code ({DAYS_HINT})")
    weekdays = parse_days(days)
    s, e = parse_clock(start), parse_clock(end)
    if e <= s:
        relation = "the same as" if e == s else "before"
        raise PatternError(f"{times.show(e)} is {relation} the start {times.show(s)}; a class "
                           "must end after it starts on the same day")
    return WeeklyPattern(weekdays, s, e)


# --- [pattern] in the config ---------------------------------------------------------------------

PER_SESSION, PER_SECTION = "session", "section"
MEETINGS = (PER_SESSION, PER_SECTION)
_KEYS = ("days", "start_time", "end_time", "times", "meetings")


@dataclass(frozen=True)
class PatternSettings:
    """``[pattern]``: the sheet has weekly patterns, not dated rows.

    ``meetings = "session"``: one meeting per class day; ``"section"``: one meeting (one link)
    per section for the whole term, starting at its first session."""

    days: str
    start_time: str | None = None
    end_time: str | None = None
    times: str | None = None  # or one column with the range: "09:30 AM-10:45 AM"
    meetings: str = PER_SESSION

    def mapped_columns(self) -> list[tuple[str, str]]:
        pairs = [("[pattern] days", self.days)]
        for key in ("start_time", "end_time", "times"):
            value = getattr(self, key)
            if value:
                pairs.append((f"[pattern] {key}", value))
        return pairs


def parse_pattern_settings(raw: Any, where: str) -> PatternSettings:
    from bulkmeet.errors import ConfigError, did_you_mean

    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: [pattern] must be a table.")
    for key, value in raw.items():
        if key not in _KEYS:
            raise ConfigError(f"{where}: unknown key '{key}' in [pattern].{did_you_mean(key, _KEYS)}")
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where}: [pattern] {key} must be a text value in quotes.")
    wanted = ("days", "times") if "times" in raw else ("days", "start_time", "end_time")
    missing = [k for k in wanted if k not in raw]
    if missing:
        raise ConfigError(f"{where}: [pattern] needs days, start_time and end_time (the columns "
                          "with the days code and the class times; or times = \"...\" for one "
                          f"column like 09:30 AM-10:45 AM); missing: {', '.join(missing)}.")
    if "times" in raw and ("start_time" in raw or "end_time" in raw):
        raise ConfigError(f"{where}: [pattern] set times (one column with the range) or "
                          "start_time and end_time, not both.")
    meetings = raw.get("meetings", PER_SESSION).strip().lower()
    if meetings not in MEETINGS:
        raise ConfigError(f"{where}: [pattern] meetings must be \"session\" (one meeting per class "
                          f"day) or \"section\" (one meeting for the whole term); it is \"{meetings}\".")
    col = {k: raw[k].strip() for k in ("start_time", "end_time", "times") if k in raw}
    return PatternSettings(raw["days"].strip(), col.get("start_time"), col.get("end_time"),
                           col.get("times"), meetings)
