"""Turn sheet rows into createOrGet requests, checking every row before anything is sent.

Each row becomes exactly one of: a ``MeetingRequest`` (valid, first row with its externalId), an
``InvalidRow`` (what is wrong, naming the column and the value as typed), or a ``DuplicateRow``
(same externalId as an earlier valid row). One bad row never stops the others.

Rules decided here (documented for users in the README):

* Times: no start column mapped -> no times are sent (Graph starts the meeting "now", for an
  hour). A mapped start column that is empty in a row -> invalid. No end -> start +
  ``default_duration_minutes`` if set, else no end is sent (Graph makes it start + 1 h). End not
  after start -> invalid; with date + start_time/end_time a class cannot run past midnight (map
  full date-time ``start``/``end`` columns for that). An ``end`` column holding only a time means
  the start's day. A start more than 10 years away from today is refused (a typo in the year,
  or a time cell mapped as a date).
* Subject: the template's fields are filled in, HTML entities decoded (``&amp;`` -> ``&``) and
  whitespace normalised (``bulkmeet.text``); a subject with no
  letter or digit left is invalid, and so is one over 255 characters (Outlook's subject limit;
  truncating silently would merge distinct sessions in people's calendars).
* Attendees: a cell lists addresses separated by ``;`` or ``,``. An entry may carry its role in
  brackets after the address, ``jo@school.edu (presenter)``, overriding the column's role, and may
  be in Outlook's ``Jo Smith <jo@school.edu>`` form. Addresses are lower-cased and de-duplicated;
  someone listed twice keeps the stronger role (coorganizer > producer > presenter > attendee).
* externalId from ``keys``: a UUIDv5 under ``EXTERNAL_ID_NAMESPACE`` over the normalised key values
  and the normalised organizer (see ``derive_external_id``). Key columns that are also the mapped
  date/time columns use the *parsed* value, so "2/1/2027" typed in a CSV and a date cell in Excel
  give the same id. From an ``external_id`` column: the value as typed (stripped), at most 255
  characters, no control characters.
* Duplicates: a later valid row whose externalId equals an earlier valid row's. Invalid rows do
  not claim their id, so fixing a row never turns a later one into a duplicate.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from bulkmeet import meeting_options, times
from bulkmeet.columns import check_columns, resolve_columns
from bulkmeet.config import EMAIL_RE, GUID_RE, ROLES, Config
from bulkmeet.filters import SkipFilter
from bulkmeet.models import (
    ME,
    Attendee,
    DuplicateRow,
    InvalidRow,
    MeetingRequest,
    SharedRow,
    Sheet,
    SheetRow,
    SkippedRow,
)
from bulkmeet.sheets import paused_gc
from bulkmeet.templates import parse_template
from bulkmeet.text import clean as clean_text

# Fixed forever: changing it would give every existing meeting a new externalId, and the next run
# would create the whole term again. It is uuid5(NAMESPACE_URL, "https://bulkmeet.invalid/externalId").
EXTERNAL_ID_NAMESPACE = uuid.UUID("858c66b1-10a4-5209-872d-1acce24f9aaf")

MAX_SUBJECT = 255
MAX_EXTERNAL_ID = 255
SANITY_YEARS = 10
ROLE_RANK = {role: rank for rank, role in enumerate(("attendee", "presenter", "producer", "coorganizer"))}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Control characters that whitespace clean-up does not remove (NUL, BEL, ESC, DEL, C1): never
# sent; Outlook shows them as boxes and ESC sequences drive terminals that print the subject.
_SENT_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x7f-\x9f]")


def _control_message(value: str) -> str:
    found = _SENT_CONTROL.search(value)
    code = ord(found.group()) if found else 0
    return (f"{times.show(value)} contains the control character U+{code:04X} at position "
            f"{found.start() + 1 if found else 0}; remove it from the cell (it is invisible in "
            "Excel; retype the text or use =CLEAN())")
_SPLIT = re.compile(r"[;,]")
_ROLE_SUFFIX = re.compile(r"^(?P<addr>.*?)\s*\(\s*(?P<role>[^()]*?)\s*\)$")
_ANGLE = re.compile(r"^(?P<name>[^<>]*)<(?P<addr>[^<>]*)>$")
_HAS_WORD = re.compile(r"\w")


@dataclass(frozen=True)
class Plan:
    requests: tuple[MeetingRequest, ...]  # valid, first occurrence of each externalId, sheet order
    invalid: tuple[InvalidRow, ...]
    duplicates: tuple[DuplicateRow, ...]
    skipped: tuple[SkippedRow, ...] = ()  # rows a [[skip]] rule matched (not errors)
    shared: tuple[SharedRow, ...] = ()  # one meeting per section: rows that join another's meeting

    def by_row(self) -> dict[int, MeetingRequest | InvalidRow | DuplicateRow]:
        """Every planned row by its Excel row number, in sheet order (first session of a row)."""
        out: dict[int, MeetingRequest | InvalidRow | DuplicateRow] = {}
        items: list[MeetingRequest | InvalidRow | DuplicateRow] = [
            *self.requests, *self.invalid, *self.duplicates]
        for item in items:
            out.setdefault(item.row, item)
        return dict(sorted(out.items()))

    @property
    def total(self) -> int:
        """Planned lines: requests (one per session), invalid, duplicate, skipped and shared."""
        return (len(self.requests) + len(self.invalid) + len(self.duplicates) + len(self.skipped)
                + len(self.shared))


# --- externalId ----------------------------------------------------------------------------------

def normalise_key_value(value: object) -> str:
    """How one key value enters the externalId: immune to spacing and case, dates as ISO."""
    if value is None:
        return ""
    if isinstance(value, str):
        return " ".join(value.split()).casefold()
    if isinstance(value, (datetime, date, time)):
        return times.format_local(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return " ".join(str(value).split()).casefold()


def derive_external_id(key_values: Sequence[object], organizer: str) -> str:
    """A UUIDv5 that is the same on every run for the same class session and organizer.

    The name hashed is the normalised key values joined by U+001F, then U+001E and the
    normalised organizer (stripped, case-folded), under ``EXTERNAL_ID_NAMESPACE``. The organizer
    is part of it because Graph keys meetings by (organizer, externalId): two teachers with the
    same CRN and date get two meetings, and each id is unique across the sheet.
    """
    name = "\x1f".join(normalise_key_value(v) for v in key_values)
    name += "\x1e" + " ".join(str(organizer).split()).casefold()
    return str(uuid.uuid5(EXTERNAL_ID_NAMESPACE, name))


def section_key(key_values: Sequence[object]) -> str:
    """What identifies a row's section (or, on a dated sheet, its meeting) without the organizer
    or the class day: the journal keeps it per meeting, so an invalid row whose key columns can
    still be read protects the meetings made for it even when its organizer cannot be read (an
    instructor gone from the staff list) and its sessions' externalIds are unknown."""
    name = "section\x1d" + "\x1f".join(normalise_key_value(v) for v in key_values)
    return str(uuid.uuid5(EXTERNAL_ID_NAMESPACE, name))


# --- cell helpers --------------------------------------------------------------------------------

class _CellError(Exception):
    """A problem with one cell; ``str()`` is the message without the column name."""


@lru_cache(maxsize=4096)
def normalise_organizer(value: str) -> str:
    """A lower-case object id (braces dropped) or a lower-case UPN; ValueError otherwise."""
    text = value.strip()
    m = GUID_RE.match(text)
    if m:
        return m.group(1).lower()
    if EMAIL_RE.match(text) and not _SENT_CONTROL.search(text):
        return text.lower()
    raise ValueError(text)


@lru_cache(maxsize=8192)
def parse_attendees(cell: str, column_role: str = "attendee") -> tuple[tuple[str, str], ...]:
    """(upn, role) pairs from one attendee cell; ``_CellError`` on the first bad entry."""
    out: list[tuple[str, str]] = []
    for entry in _SPLIT.split(cell):
        entry = " ".join(entry.split())
        if not entry:
            continue
        role = column_role
        addr = entry
        m = _ROLE_SUFFIX.match(addr)
        if m:
            role = m["role"].lower()
            addr = m["addr"]
            if role not in ROLES:
                raise _CellError(
                    f"\"{entry}\": the role in brackets must be one of {', '.join(ROLES)}")
        m = _ANGLE.match(addr)
        if m:
            addr = m["addr"].strip()
        if not EMAIL_RE.match(addr) or _SENT_CONTROL.search(addr):
            raise _CellError(
                f"{times.show(entry)} is not an e-mail address (separate addresses with ; or ,)")
        out.append((addr.lower(), role))
    return tuple(out)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else times.show(value)


# --- the planner ---------------------------------------------------------------------------------

class RowPlanner:
    """Everything that depends only on the config is worked out once, not per row."""

    def __init__(self, config: Config, resolved: dict[str, str], now: datetime) -> None:
        m = config.mapping
        col = lambda name: resolved.get(name, name) if name else None  # noqa: E731
        self.read_columns = frozenset(resolved.values())  # for the reader's cell problems
        self.delegated = config.delegated
        self.org_col = col(m.organizer)
        self.org_fixed = normalise_organizer(m.organizer_fixed) if m.organizer_fixed else None
        self.subject_parts = [(p.literal, col(p.column), p.spec) for p in parse_template(m.subject)]
        self.subject_template = m.subject
        self.start_col, self.end_col = col(m.start), col(m.end)
        self.date_col, self.start_time_col, self.end_time_col = col(m.date), col(m.start_time), col(m.end_time)
        self.duration = timedelta(minutes=m.default_duration_minutes) if m.default_duration_minutes else None
        self.tz = ZoneInfo(m.time_zone)
        self.date_order = m.date_order
        self.attendee_cols = [(resolved.get(a.column, a.column), a.role) for a in m.attendees]
        self.thread_col = col(m.thread_id)
        self.ext_col = col(m.external_id)
        self.key_cols = [resolved.get(k, k) for k in m.keys]
        self.keys_shown = ", ".join(m.keys)
        self.earliest = now - timedelta(days=365 * SANITY_YEARS)
        self.latest = now + timedelta(days=365 * SANITY_YEARS)

    # Each helper appends (column, message) to ``errors`` and returns None on failure.

    def organizer(self, values: Mapping[str, Any], errors: list) -> str | None:
        if self.org_col is None:
            return self.org_fixed or ME
        raw = values.get(self.org_col)
        if raw is None:
            errors.append((self.org_col, "missing; every row needs the organizer's e-mail address "
                                         "(UPN) or Entra object ID"))
            return None
        if isinstance(raw, str):
            try:
                return normalise_organizer(raw)
            except ValueError:
                pass
        errors.append((self.org_col, f"{times.show(raw)} is neither an e-mail address (UPN) nor an "
                                     "Entra object ID"))
        return None

    def subject(self, values: Mapping[str, Any], errors: list) -> str | None:
        pieces: list[str] = []
        used: list[str] = []
        for literal, column, spec in self.subject_parts:
            pieces.append(literal)
            if column is None:
                continue
            used.append(column)
            value = values.get(column)
            if value is None:
                continue
            if isinstance(value, str) and _SENT_CONTROL.search(value):
                errors.append((column, _control_message(value)))
                return None
            try:
                pieces.append(self._field(value, spec))
            except _CellError as exc:
                errors.append((column, str(exc)))
                return None
        text = clean_text("".join(pieces))  # entities decoded, whitespace normalised
        if not _HAS_WORD.search(text):
            cols = " and ".join(dict.fromkeys(used)) or "the template"
            errors.append((None, f"the subject \"{self.subject_template}\" is empty for this row "
                                 f"({cols} empty); fill in the cells, or change subject in the config"))
            return None
        if len(text) > MAX_SUBJECT:
            errors.append((None, f"the subject is {len(text)} characters long, more than the "
                                 f"{MAX_SUBJECT} Teams and Outlook allow: \"{text[:60]}...\"; shorten "
                                 "the cells or the subject template"))
            return None
        return text

    def _field(self, value: Any, spec: str | None) -> str:
        if spec is None:
            if isinstance(value, str):
                return value
            if isinstance(value, (datetime, date, time)):
                return times.format_local(value).replace("T", " ")
            return str(value)
        parsed: Any = value
        if isinstance(value, str):
            parsed = None
            for parse in (lambda v: times.parse_datetime(v, self.date_order),
                          lambda v: times.parse_date(v, self.date_order), times.parse_time):
                try:
                    parsed = parse(value)
                    break
                except times.TimeValueError:
                    continue
        if not isinstance(parsed, (datetime, date, time)):
            raise _CellError(f"{times.show(value)} is not a date or time, so the subject field "
                             f"with format '{spec}' cannot format it")
        return parsed.strftime(spec)

    def when(self, values: Mapping[str, Any], errors: list, parsed: dict[str, Any]
             ) -> tuple[datetime | None, datetime | None]:
        """(start, end) in UTC, or (None, None) when the mapping sends no times."""
        if self.start_col:
            return self._when_datetime(values, errors, parsed)
        if self.start_time_col:
            return self._when_date_and_times(values, errors, parsed)
        return None, None

    def _need(self, values: Mapping[str, Any], column: str | None, what: str, errors: list) -> Any:
        raw = values.get(column) if column else None
        if raw is None:
            errors.append((column, f"missing; {what} is needed"))
        return raw

    def _when_datetime(self, values, errors, parsed):
        raw = self._need(values, self.start_col, "the meeting's start date and time", errors)
        if raw is None:
            return None, None
        try:
            start = times.parse_datetime(raw, self.date_order)
        except times.TimeValueError as exc:
            errors.append((self.start_col, str(exc)))
            return None, None
        parsed[self.start_col] = start
        end = None
        end_raw = values.get(self.end_col) if self.end_col else None
        if end_raw is not None:
            try:
                value = times.parse_time_or_datetime(end_raw, self.date_order)
            except times.TimeValueError as exc:
                errors.append((self.end_col, str(exc)))
                return None, None
            end = datetime.combine(start.date(), value, tzinfo=start.tzinfo) if isinstance(value, time) else value
            parsed[self.end_col] = end
        return self._finish(start, end, self.start_col, self.end_col, end_raw, errors, False)

    def _when_date_and_times(self, values, errors, parsed):
        day_raw = self._need(values, self.date_col, "the day of the class", errors)
        start_raw = self._need(values, self.start_time_col, "the time the class starts", errors)
        day = start_t = None
        if day_raw is not None:
            try:
                day = parsed[self.date_col] = times.parse_date(day_raw, self.date_order)
            except times.TimeValueError as exc:
                errors.append((self.date_col, str(exc)))
        if start_raw is not None:
            try:
                start_t = parsed[self.start_time_col] = times.parse_time(start_raw)
            except times.TimeValueError as exc:
                errors.append((self.start_time_col, str(exc)))
        end_t = None
        end_raw = values.get(self.end_time_col) if self.end_time_col else None
        if end_raw is not None:
            try:
                end_t = parsed[self.end_time_col] = times.parse_time(end_raw)
            except times.TimeValueError as exc:
                errors.append((self.end_time_col, str(exc)))
                return None, None
        if day is None or start_t is None:
            return None, None
        start = datetime.combine(day, start_t)
        end = datetime.combine(day, end_t) if end_t is not None else None
        return self._finish(start, end, self.start_time_col, self.end_time_col, end_raw, errors, True)

    def _finish(self, start: datetime, end: datetime | None, start_col: str | None, end_col: str | None,
                end_raw: Any, errors: list, same_day: bool) -> tuple[datetime | None, datetime | None]:
        try:
            start_utc = times.to_utc(start, self.tz)
        except times.TimeValueError as exc:
            errors.append((start_col, str(exc)))
            return None, None
        if not self.earliest <= start_utc <= self.latest:
            errors.append((self.date_col or start_col,
                           f"{times.show(start)} is more than {SANITY_YEARS} years from today; "
                           "check the year (or whether a time cell is mapped as a date)"))
            return None, None
        if end is None:
            return start_utc, (start_utc + self.duration if self.duration else None)
        try:
            end_utc = times.to_utc(end, self.tz)
        except times.TimeValueError as exc:
            errors.append((end_col, str(exc)))
            return None, None
        if end_utc <= start_utc:
            shown_end = times.show(end.time() if same_day else end)
            shown_start = times.show(start.time() if same_day else start)
            relation = "the same as" if end_utc == start_utc else "before"
            extra = (" (a class cannot run past midnight here; map full date-time 'start' and "
                     "'end' columns for that)" if same_day and end_utc < start_utc else "")
            errors.append((end_col, f"{shown_end} is {relation} {start_col} {shown_start}; the "
                                    f"end must be after the start{extra}"))
            return None, None
        return start_utc, end_utc

    def attendees(self, values: Mapping[str, Any], errors: list) -> tuple[Attendee, ...]:
        merged: dict[str, str] = {}
        for column, role in self.attendee_cols:
            raw = values.get(column)
            if raw is None:
                continue
            if not isinstance(raw, str):
                errors.append((column, f"{times.show(raw)} is not a list of e-mail addresses"))
                continue
            try:
                pairs = parse_attendees(raw, role)
            except _CellError as exc:
                errors.append((column, str(exc)))
                continue
            for upn, r in pairs:
                old = merged.get(upn)
                if old is None or ROLE_RANK[r] > ROLE_RANK[old]:
                    merged[upn] = r
        return tuple(Attendee(upn, role) for upn, role in merged.items())

    def thread_id(self, values: Mapping[str, Any], errors: list) -> str | None:
        if not self.thread_col:
            return None
        raw = values.get(self.thread_col)
        if raw is None:
            return None
        text = _text(raw)
        if not text.startswith("19:") or any(ch.isspace() for ch in text) or _CONTROL.search(text):
            errors.append((self.thread_col, f"{times.show(raw)} is not a Teams chat thread id "
                                            "(they look like 19:...@thread.v2)"))
            return None
        return text

    def external_id(self, values: Mapping[str, Any], errors: list, organizer: str | None,
                    parsed: dict[str, Any]) -> tuple[str | None, str | None]:
        """(externalId, section key); either None when it cannot be read."""
        if self.ext_col:
            raw = values.get(self.ext_col)
            text = _text(raw).strip() if raw is not None else ""
            if not text:
                errors.append((self.ext_col, "missing; every row needs its externalId"))
                return None, None
            if len(text) > MAX_EXTERNAL_ID:
                errors.append((self.ext_col, f"{len(text)} characters long; an externalId may have "
                                             f"at most {MAX_EXTERNAL_ID}"))
                return None, None
            if _CONTROL.search(text):
                errors.append((self.ext_col, f"{times.show(raw)} contains a control character "
                                             "(a line break or tab?); remove it"))
                return None, None
            return text, None
        failed = {c for c, _ in errors}
        key_values: list[Any] = []
        ok = True
        for column in self.key_cols:
            if column in parsed:
                key_values.append(parsed[column])
                continue
            raw = values.get(column)
            if raw is None:
                if column not in failed:
                    errors.append((column, f"missing; it is one of the keys ({self.keys_shown}) that "
                                           "tell the meetings apart"))
                ok = False
                continue
            if column in failed:
                ok = False
            key_values.append(raw)
        if not ok:
            return None, None
        section = section_key(key_values)
        if organizer is None:
            return None, section
        return derive_external_id(key_values, organizer), section

    def plan(self, row: SheetRow) -> MeetingRequest | InvalidRow:
        values = row.values
        errors: list[tuple[str | None, str]] = []
        parsed: dict[str, Any] = {}
        organizer = self.organizer(values, errors)
        subject = self.subject(values, errors)
        start, end = self.when(values, errors, parsed)
        attendees = self.attendees(values, errors)
        thread_id = self.thread_id(values, errors)
        external_id, section = self.external_id(values, errors, organizer, parsed)
        if row.problems:
            errors = _with_cell_problems(row.problems, errors, self.read_columns)
        if errors:
            column, first = errors[0]
            rest = [f"{c}: {msg}" if c else msg for c, msg in errors[1:]]
            message = "; ".join([first, *rest])
            return InvalidRow(row.number, column, message, external_id, section)
        assert organizer is not None and subject is not None and external_id is not None
        return MeetingRequest(row=row.number, external_id=external_id, organizer=organizer,
                              subject=subject, start=start, end=end, attendees=attendees,
                              thread_id=thread_id, section=section)


def _with_cell_problems(problems: Sequence[tuple[str, str]], errors: list[tuple[str | None, str]],
                        used: frozenset[str]) -> list[tuple[str | None, str]]:
    """The reader's cell problems (merged, formula without value) in used columns come first
    and replace what the planner said about the same cell ("missing")."""
    flagged: list[tuple[str | None, str]] = [(c, m) for c, m in problems if c in used]
    if not flagged:
        return errors
    cols = {c for c, _ in flagged}
    return flagged + [(c, m) for c, m in errors if c not in cols]


def plan_rows(sheet: Sheet, config: Config, *, now: datetime | None = None) -> Plan:
    """Plan every row (check_columns first: a missing column raises ``InputError``).

    ``now`` is the reference for the sanity check on dates (a start more than 10 years away
    is refused); tests pass a fixed value.
    """
    check_columns(sheet, config)
    resolved, _ = resolve_columns(sheet, config)
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    with paused_gc():
        if config.pattern is not None:  # a registrar export: weekly patterns, not dated rows
            from bulkmeet.expand import plan_patterns  # expand builds on this module

            planned = plan_patterns(sheet, config, resolved, now)
        else:
            planned = _plan(sheet, RowPlanner(config, resolved, now), SkipFilter(config.skip, resolved))
    return _with_options(planned, sheet, config, resolved)


def _with_options(planned: Plan, sheet: Sheet, config: Config, resolved: dict[str, str]) -> Plan:
    """Each request's meeting options: ``[settings]``, then its row's option cells (a bad cell,
    or roleIsPresenter without a presenter, makes the row invalid, all of its sessions)."""
    if not config.settings and not config.mapping.settings:
        return planned
    columns = [(name, resolved.get(column, column)) for name, column in config.mapping.settings]
    values = {row.number: row.values for row in sheet.rows}
    requests: list[MeetingRequest] = []
    broken: dict[int, InvalidRow] = {}
    for req in planned.requests:
        errors: list[tuple[str | None, str]] = []
        settings = meeting_options.row_settings(values.get(req.row, {}), columns, config.settings,
                                                (a.role for a in req.attendees), errors)
        if errors:
            column, first = errors[0]
            rest = "".join(f"; {c}: {m}" if c else f"; {m}" for c, m in errors[1:])
            broken.setdefault(req.row, InvalidRow(req.row, column, first + rest,
                                                        req.external_id, req.section))
        else:
            requests.append(replace(req, settings=settings))
    if not broken:
        return replace(planned, requests=tuple(requests))
    return replace(planned, requests=tuple(r for r in requests if r.row not in broken),
                   invalid=tuple(sorted((*planned.invalid, *broken.values()),
                                        key=lambda bad: bad.row)))


def _plan(sheet: Sheet, planner: RowPlanner, skip: SkipFilter) -> Plan:
    requests: list[MeetingRequest] = []
    invalid: list[InvalidRow] = []
    duplicates: list[DuplicateRow] = []
    skipped: list[SkippedRow] = []
    first_row: dict[str, int] = {}
    for row in sheet.rows:
        rule = skip.match(row.values) if skip.compiled else None
        if rule is not None:  # [[skip]] rules hold for dated sheets too
            skipped.append(SkippedRow(row.number, rule.describe()))
            continue
        result = planner.plan(row)
        if isinstance(result, InvalidRow):
            invalid.append(result)
            continue
        first = first_row.get(result.external_id)
        if first is not None:
            duplicates.append(DuplicateRow(row.number, result.external_id, first))
            continue
        first_row[result.external_id] = row.number
        requests.append(result)
    return Plan(tuple(requests), tuple(invalid), tuple(duplicates), skipped=tuple(skipped))
