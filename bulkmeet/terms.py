"""Where a weekly pattern's dates come from: the term's first and last class day, and closures.

Registrar exports give no dates, only a pattern (``MWF 09:30-10:45``) and often a part-of-term
code (``1``, ``S1``, ``S2A``, blank) whose first and last class days the ops team knows. The
config says where the dates come from (``[term]`` in the README):

* constants: ``first_day``/``last_day`` for every row;
* columns of the row: ``first_day_column``/``last_day_column`` (some exports carry them);
* a term table keyed by a column's value: ``column = "Part of Term"`` with the parts inline
  (``[term.parts."S1"]``) or in a CSV/XLSX file (``table = "terms.csv"``, read with pandas:
  columns ``code``, ``first_day``, ``last_day`` and optionally ``closures``).

Closures (holidays, a spring-break week) are single days or ranges, for the whole term
(``closures`` in ``[term]``) or for one part. A class day that falls on a closure has no session.
Codes are compared after HTML-entity decoding, trimming and ignoring case; a blank cell is the code
``""``, so a table may have a row for it.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from bulkmeet import text, times
from bulkmeet.errors import ConfigError, InputError, did_you_mean

MAX_TERM_DAYS = 400  # a "term" longer than this is a typo in a year
_RANGE = re.compile(r"^(?P<a>.+?)\s*(?:\.\.|\bto\b|\s[-–—]\s|\s*[–—]\s*)\s*(?P<b>.+)$", re.I)
CLOSURE_HINT = "write a day \"2027-01-18\" or a range \"2027-03-15..2027-03-19\""
TABLE_COLUMNS = ("code", "first_day", "last_day")


@dataclass(frozen=True)
class Closure:
    first: date
    last: date

    def covers(self, day: date) -> bool:
        return self.first <= day <= self.last

    def describe(self) -> str:
        return self.first.isoformat() if self.first == self.last else \
            f"{self.first.isoformat()}..{self.last.isoformat()}"


@dataclass(frozen=True)
class TermPart:
    """One part of term: its first and last class day and its own closures."""

    code: str  # as written (shown in messages)
    first_day: date
    last_day: date
    closures: tuple[Closure, ...] = ()


@dataclass(frozen=True)
class TermSettings:
    """``[term]`` as loaded from the config (files are read when the schedule is planned)."""

    column: str | None = None  # column whose value picks a part of term
    table: str | None = None  # CSV/XLSX term table (absolute, or relative to the config)
    parts: tuple[TermPart, ...] = ()  # inline [term.parts."CODE"]
    first_day: date | None = None
    last_day: date | None = None
    first_day_column: str | None = None
    last_day_column: str | None = None
    closures: tuple[Closure, ...] = ()

    def mapped_columns(self) -> list[tuple[str, str]]:
        out = []
        for key in ("column", "first_day_column", "last_day_column"):
            value = getattr(self, key)
            if value:
                out.append((f"[term] {key}", value))
        return out


# --- parsing values ------------------------------------------------------------------------------

def parse_day(value: Any, date_order: str = "MDY") -> date:
    """A date from TOML (a date literal or text) or a cell; ``times.TimeValueError`` if not."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return times.parse_date(value, date_order)


def parse_closure(value: Any, date_order: str = "MDY") -> Closure:
    """A closure from ``2027-01-18``, ``"2027-03-15..2027-03-19"`` or ``"3/15/2027 to 3/19/2027"``.

    ``ValueError`` with a message starting with the value as typed."""
    if isinstance(value, (date, datetime)):
        day = parse_day(value)
        return Closure(day, day)
    if isinstance(value, dict):
        first = value.get("first") or value.get("from")
        last = value.get("last") or value.get("to") or first
        if first is None:
            raise ValueError(f"{value!r} has no 'first' day ({CLOSURE_HINT})")
        a, b = parse_day(first, date_order), parse_day(last, date_order)
    elif isinstance(value, str):
        try:
            a = b = times.parse_date(value, date_order)
        except times.TimeValueError:
            m = _RANGE.match(value.strip())
            if not m:
                raise ValueError(f"\"{value}\" is not a day or a range of days ({CLOSURE_HINT})") from None
            try:
                a, b = times.parse_date(m["a"], date_order), times.parse_date(m["b"], date_order)
            except times.TimeValueError:
                raise ValueError(f"\"{value}\" is not a day or a range of days ({CLOSURE_HINT})") from None
    else:
        raise ValueError(f"{value!r} is not a day or a range of days ({CLOSURE_HINT})")
    if b < a:
        raise ValueError(f"\"{value}\": the range ends ({b}) before it starts ({a})")
    return Closure(a, b)


def _closures(raw: Any, where: str, date_order: str) -> tuple[Closure, ...]:
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for item in items:
        if isinstance(item, str) and ";" in item:
            parts: Iterable[Any] = [p for p in item.split(";") if p.strip()]
        else:
            parts = [item]
        for part in parts:
            try:
                out.append(parse_closure(part, date_order))
            except (ValueError, times.TimeValueError) as exc:
                raise ConfigError(f"{where}: closures: {exc}.") from None
    return tuple(out)


def _check_span(first: date, last: date, where: str) -> None:
    if last < first:
        raise ConfigError(f"{where}: last_day {last} is before first_day {first}; swap them.")
    if (last - first).days > MAX_TERM_DAYS:
        raise ConfigError(f"{where}: {first} to {last} is more than {MAX_TERM_DAYS} days; check "
                          "the years.")


def _config_day(table: Mapping[str, Any], key: str, where: str, date_order: str) -> date | None:
    value = table.get(key)
    if value is None:
        return None
    try:
        return parse_day(value, date_order)
    except times.TimeValueError as exc:
        raise ConfigError(f"{where} {key}: {exc}; write it as {key} = 2027-01-19.") from None


_KEYS = {"column", "table", "parts", "first_day", "last_day", "first_day_column",
         "last_day_column", "closures"}


def parse_term_settings(raw: Any, where: str, base_dir: Path | None, date_order: str
                        ) -> TermSettings:
    """``[term]`` from TOML; ``ConfigError`` naming the key for anything wrong."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: [term] must be a table.")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' in [term]."
                          f"{did_you_mean(unknown[0], _KEYS)}")
    for key in ("column", "table", "first_day_column", "last_day_column"):
        if key in raw and not (isinstance(raw[key], str) and raw[key].strip()):
            raise ConfigError(f"{where}: [term] {key} must be a text value in quotes.")
    parts = []
    raw_parts = raw.get("parts", {})
    if not isinstance(raw_parts, dict):
        raise ConfigError(f"{where}: [term] parts must be tables: [term.parts.\"S1\"] with "
                          "first_day and last_day.")
    for code, entry in raw_parts.items():
        pw = f"{where}: [term.parts.\"{code}\"]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{pw} must be a table with first_day and last_day.")
        extra = sorted(set(entry) - {"first_day", "last_day", "closures"})
        if extra:
            raise ConfigError(f"{pw}: unknown key '{extra[0]}' (first_day, last_day, closures).")
        first = _config_day(entry, "first_day", pw, date_order)
        last = _config_day(entry, "last_day", pw, date_order)
        if first is None or last is None:
            raise ConfigError(f"{pw} needs first_day and last_day, e.g. first_day = 2027-01-19.")
        _check_span(first, last, pw)
        parts.append(TermPart(str(code), first, last, _closures(entry.get("closures"), pw, date_order)))
    table = raw.get("table")
    if table:
        p = Path(table).expanduser()
        if base_dir is not None and not p.is_absolute():
            p = base_dir / p
        table = str(p)
    settings = TermSettings(
        column=(raw.get("column") or "").strip() or None, table=table, parts=tuple(parts),
        first_day=_config_day(raw, "first_day", f"{where}: [term]", date_order),
        last_day=_config_day(raw, "last_day", f"{where}: [term]", date_order),
        first_day_column=(raw.get("first_day_column") or "").strip() or None,
        last_day_column=(raw.get("last_day_column") or "").strip() or None,
        closures=_closures(raw.get("closures"), f"{where}: [term]", date_order),
    )
    _check_sources(settings, where)
    return settings


def _check_sources(s: TermSettings, where: str) -> None:
    by_table = bool(s.column or s.table or s.parts)
    by_const = s.first_day is not None or s.last_day is not None
    by_cols = bool(s.first_day_column or s.last_day_column)
    if sum((by_table, by_const, by_cols)) != 1:
        raise ConfigError(
            f"{where}: [term] must say where the class days come from, in one way: first_day and "
            "last_day (the same for every row), first_day_column and last_day_column (columns of "
            "the sheet), or column = \"Part of Term\" with [term.parts.\"CODE\"] tables or "
            "table = \"terms.csv\".")
    if by_const and (s.first_day is None or s.last_day is None):
        raise ConfigError(f"{where}: [term] needs both first_day and last_day.")
    if by_const:
        assert s.first_day is not None and s.last_day is not None
        _check_span(s.first_day, s.last_day, f"{where}: [term]")
    if by_cols and not (s.first_day_column and s.last_day_column):
        raise ConfigError(f"{where}: [term] needs both first_day_column and last_day_column.")
    if by_table and not s.column:
        raise ConfigError(f"{where}: [term] parts/table need column = \"...\": the column whose "
                          "value (the part-of-term code) picks the part.")
    if by_table and s.table and s.parts:
        raise ConfigError(f"{where}: [term] give the parts inline or in table = \"...\", not both.")
    if by_table and not (s.table or s.parts):
        raise ConfigError(f"{where}: [term] column = \"{s.column}\" needs the parts: "
                          "[term.parts.\"CODE\"] tables, or table = \"terms.csv\".")


# --- the term table file -------------------------------------------------------------------------

def _norm_header(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", str(name).casefold()).strip("_")


def read_term_table(path: Path, date_order: str) -> tuple[TermPart, ...]:
    """The parts of a CSV/XLSX term table, read with pandas; ``InputError`` naming file and row."""
    from bulkmeet.staff import read_table

    frame = read_table(path, "term table")
    headers = {_norm_header(c): c for c in frame.columns}
    missing = [c for c in TABLE_COLUMNS if c not in headers]
    if missing:
        raise InputError(f"{path}: the term table needs the columns code, first_day and last_day "
                         f"(missing: {', '.join(missing)}; it has: {', '.join(map(str, frame.columns))}).")
    closures_col = headers.get("closures")
    parts = []
    seen: dict[str, int] = {}
    for index, rec in enumerate(frame.to_dict("records")):
        line = index + 2
        raw_code = rec[headers["code"]]
        code = "" if raw_code is None else str(raw_code).strip()
        key = text.fold(code)
        if key in seen:
            raise InputError(f"{path}: row {line}: code \"{code}\" is already in row {seen[key]}; "
                             "each part of term once.")
        seen[key] = line
        try:
            first = parse_day(rec[headers["first_day"]], date_order)
            last = parse_day(rec[headers["last_day"]], date_order)
        except times.TimeValueError as exc:
            raise InputError(f"{path}: row {line}: {exc}.") from None
        try:
            _check_span(first, last, f"{path}: row {line}")
            cl = _closures(rec.get(closures_col) or None, f"{path}: row {line}", date_order) \
                if closures_col else ()
        except ConfigError as exc:
            raise InputError(str(exc)) from None
        parts.append(TermPart(code, first, last, cl))
    return tuple(parts)


# --- the calendar --------------------------------------------------------------------------------

class TermCalendar:
    """Class days for a row: the term's days on the pattern's weekdays, closures left out."""

    def __init__(self, settings: TermSettings, date_order: str, source: str) -> None:
        self.settings = settings
        self.date_order = date_order
        self.source = source  # where the parts came from, for messages: a file or the config
        parts = settings.parts
        if settings.table:
            parts = read_term_table(Path(settings.table), date_order)
            self.source = settings.table
        self.parts = {text.fold(p.code): p for p in parts}
        self.shown_codes = ", ".join(f"\"{p.code}\"" for p in parts)

    def span(self, values: Mapping[str, Any], columns: Mapping[str, str]
             ) -> tuple[date, date, tuple[Closure, ...]]:
        """(first day, last day, closures) for one row; ``_TermError`` (column, message) if unknown."""
        s = self.settings
        if s.first_day is not None and s.last_day is not None:
            return s.first_day, s.last_day, s.closures
        if s.first_day_column and s.last_day_column:
            days = []
            for col in (s.first_day_column, s.last_day_column):
                column = columns.get(col, col)
                raw = values.get(column)
                if raw is None:
                    raise TermError(column, "missing; the class days of this row are counted "
                                            "from it")
                try:
                    days.append(parse_day(raw, self.date_order))
                except times.TimeValueError as exc:
                    raise TermError(column, str(exc)) from None
            if days[1] < days[0]:
                raise TermError(columns.get(s.last_day_column, s.last_day_column),
                                f"{days[1]} is before the first day {days[0]}")
            return days[0], days[1], s.closures
        assert s.column is not None
        column = columns.get(s.column, s.column)
        raw = values.get(column)
        code = raw if isinstance(raw, str) else ("" if raw is None else times.show(raw))
        part = self.parts.get(text.fold(code))
        if part is None:
            shown = f"\"{code}\"" if code else "empty"
            fix = (f"add a row for it to {self.source}" if self.settings.table
                   else f"add [term.parts.\"{code}\"] to {self.source}")
            raise TermError(column, f"{shown} is not a part of term that bulkmeet knows "
                                    f"(known: {self.shown_codes}); {fix}, or skip such rows "
                                    "with a [[skip]] rule")
        return part.first_day, part.last_day, s.closures + part.closures


class TermError(Exception):
    def __init__(self, column: str | None, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.message = message


@lru_cache(maxsize=4096)
def class_days(first: date, last: date, weekdays: frozenset[int],
               closures: tuple[Closure, ...]) -> tuple[date, ...]:
    """Every day from ``first`` to ``last`` on one of ``weekdays`` and not closed, in order."""
    out = []
    day = first
    one = timedelta(days=1)
    while day <= last:
        if day.weekday() in weekdays and not any(c.covers(day) for c in closures):
            out.append(day)
        day += one
    return tuple(out)
