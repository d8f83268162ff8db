"""Weekly patterns -> meetings: the planning step for registrar exports (``[pattern]``).

A registrar row is a section's meeting *pattern* (``MWF 09:30-10:45``, part of term ``1``), not a
dated session. This module turns each row into its class days (``terms``), skips rows a
``[[skip]]`` rule names (``filters``), finds organizers in the staff directory (``staff``) and
plans the createOrGet requests, in one of two modes:

* ``meetings = "session"``: one meeting per class day. ``session`` counts a row's class days from
  1, so every output line says which input row it came from. The externalId is a UUIDv5 over the
  key values, the class day, the block of that day when a section meets more than once on it
  (``block 2`` for its second block by start time; nothing for the first, so adding an afternoon
  block never changes the morning's id) and the organizer. A changed pattern therefore only adds
  or removes sessions; a changed time keeps the id and is flagged as a change.
* ``meetings = "section"``: one meeting for the whole term per section (all rows with the same
  key values): the first valid row owns it (organizer, subject), it starts and ends like the
  section's first session, the other rows' instructors and attendees join it, and those rows are
  reported as sharing it (``shared_with``), never as duplicates. The externalId is over the keys
  and the organizer, so a new term date or pattern keeps the link.

Two rows of one section with the very same day and start time are a duplicate (the later one's
sessions on those days are not sent).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from bulkmeet import times
from bulkmeet.config import Config
from bulkmeet.filters import SkipFilter
from bulkmeet.models import (
    Attendee,
    DuplicateRow,
    InvalidRow,
    MeetingRequest,
    SharedRow,
    Sheet,
    SheetRow,
    SkippedRow,
)
from bulkmeet.patterns import (
    DAYS_HINT,
    PER_SECTION,
    PatternError,
    WeeklyPattern,
    parse_clock,
    parse_days,
    parse_time_range,
)
from bulkmeet.plan import (
    ROLE_RANK,
    SANITY_YEARS,
    Plan,
    RowPlanner,
    derive_external_id,
    normalise_key_value,
    section_key,
)
from bulkmeet.staff import StaffDirectory, StaffError
from bulkmeet.terms import TermCalendar, TermError, class_days


@dataclass(frozen=True)
class _RowPlan:
    """What one valid pattern row contributes, before sessions get their ids."""

    row: int
    organizer: str
    subject: str
    attendees: tuple[Attendee, ...]
    others: tuple[str, ...]  # co-instructors from the staff directory
    thread_id: str | None
    pattern: WeeklyPattern
    days: tuple[date, ...]
    key_values: tuple[Any, ...]
    key: tuple[str, ...]  # normalised: what groups rows into one section
    section: str  # plan.section_key: kept per meeting in the journal


class PatternPlanner:
    """Plans a sheet of weekly patterns; everything config-only is worked out once."""

    def __init__(self, config: Config, resolved: dict[str, str], now: datetime) -> None:
        assert config.pattern is not None and config.term is not None
        self.config = config
        self.rows = RowPlanner(config, resolved, now)
        def col(name: str) -> str:
            return resolved.get(name, name)

        p = config.pattern
        self.days_col = col(p.days)
        self.times_col = col(p.times) if p.times else None
        # With one range column, problems with either end are reported against it.
        self.start_col = col(p.start_time) if p.start_time else col(p.times or "")
        self.end_col = col(p.end_time) if p.end_time else col(p.times or "")
        self.per_section = p.meetings == PER_SECTION
        self.resolved = resolved
        source = str(config.path.name) if config.path else "the config"
        self.calendar = TermCalendar(config.term, config.mapping.date_order, source)
        self.staff = StaffDirectory(config.staff) if config.staff else None
        self.staff_col = col(config.staff.column) if config.staff else None
        self.others_role = config.staff.others_role if config.staff else "coorganizer"
        self.skip = SkipFilter(config.skip, resolved)
        t = config.term
        term_col = t.column or t.first_day_column
        self.term_col = col(term_col) if term_col else None

    # --- one row -----------------------------------------------------------------------------

    def organizer(self, values: Mapping[str, Any], errors: list) -> tuple[str | None, tuple[str, ...]]:
        if self.staff is None:
            return self.rows.organizer(values, errors), ()
        assert self.staff_col is not None
        try:
            upn, others = self.staff.instructors(values.get(self.staff_col))
        except StaffError as exc:
            errors.append((self.staff_col, str(exc)))
            return None, ()
        if upn is None:
            errors.append((self.staff_col, "missing; this row names no instructor: fill it in, or "
                                           "set fallback_organizer in [staff]"))
        return upn, others

    def pattern(self, values: Mapping[str, Any], errors: list) -> WeeklyPattern | None:
        """The row's days and times; each problem is reported against its own column."""
        parsed: list[Any] = []
        cells: tuple[tuple[str, str, Callable[[Any], Any]], ...] = (
            (self.days_col, "the days the class meets", _days),
            (self.start_col, "the time the class starts", parse_clock),
            (self.end_col, "the time the class ends", parse_clock))
        if self.times_col:
            cells = ((self.days_col, "the days the class meets", _days),
                     (self.times_col, "the class times", parse_time_range))
        for column, what, parse in cells:
            raw = values.get(column)
            if raw is None:
                errors.append((column, f"missing; {what} is needed (add a [[skip]] rule for rows "
                                       "that are not scheduled classes)"))
                return None
            try:
                parsed.append(parse(raw))
            except PatternError as exc:
                errors.append((column, str(exc)))
                return None
        weekdays, start, end = parsed if len(parsed) == 3 else (parsed[0], *parsed[1])
        if end <= start:
            relation = "the same as" if end == start else "before"
            what = (f"{times.show(end)} is {relation} the start {times.show(start)}" if self.times_col
                    else f"{times.show(values.get(self.end_col))} is {relation} {self.start_col} "
                         f"{times.show(values.get(self.start_col))}")
            errors.append((self.end_col, f"{what}; a class must end after it starts, on the same day"))
            return None
        return WeeklyPattern(weekdays, start, end)

    def keys(self, values: Mapping[str, Any], errors: list) -> tuple[Any, ...] | None:
        out = []
        for column in self.rows.key_cols:
            raw = values.get(column)
            if raw is None:
                errors.append((column, f"missing; it is one of the keys ({self.rows.keys_shown}) "
                                       "that identify the section"))
                return None
            out.append(raw)
        return tuple(out)

    def plan_row(self, row: SheetRow) -> _RowPlan | InvalidRow:
        values = row.values
        errors: list[tuple[str | None, str]] = []
        organizer, others = self.organizer(values, errors)
        subject = self.rows.subject(values, errors)
        attendees = self.rows.attendees(values, errors)
        thread_id = self.rows.thread_id(values, errors)
        pattern = self.pattern(values, errors)
        span = None
        try:
            span = self.calendar.span(values, self.resolved)
        except TermError as exc:
            errors.append((exc.column, exc.message))
        key_values = self.keys(values, errors)
        days: tuple[date, ...] = ()
        if span is not None and not (self.rows.earliest.date() <= span[0] <= self.rows.latest.date()):
            errors.append((self.term_col, f"the term starts on {span[0]}, more than "
                                          f"{SANITY_YEARS} years from today; check the year"))
            span = None
        if pattern is not None and span is not None:
            first, last, closures = span
            days = class_days(first, last, pattern.weekdays, closures)
            if not days and not errors:
                errors.append((self.days_col, f"{times.show(values.get(self.days_col))} meets on no "
                                              f"open day from {first} to {last}; check the days "
                                              "code and the term's dates and closures"))
        if errors:
            column, first_msg = errors[0]
            rest = [f"{c}: {msg}" if c else msg for c, msg in errors[1:]]
            # The key still names the section: its journalled meetings are not orphans.
            section = section_key(key_values) if key_values is not None else None
            return InvalidRow(row.number, column, "; ".join([first_msg, *rest]), section=section)
        assert organizer is not None and subject is not None and pattern is not None
        assert key_values is not None
        return _RowPlan(row.number, organizer, subject, attendees, others, thread_id, pattern,
                        days, key_values, tuple(normalise_key_value(v) for v in key_values),
                        section_key(key_values))

    # --- times -------------------------------------------------------------------------------

    def utc(self, day: date, clock: time) -> datetime:
        return times.to_utc(datetime.combine(day, clock), self.rows.tz)

    def session_times(self, rp: _RowPlan, day: date) -> tuple[datetime, datetime]:
        """UTC start and end of one class day; ``times.TimeValueError`` inside a DST gap."""
        return self.utc(day, rp.pattern.start), self.utc(day, rp.pattern.end)

    def attendees_for(self, rp: _RowPlan, extra: Sequence[tuple[str, str]] = ()) -> tuple[Attendee, ...]:
        merged: dict[str, str] = {}
        for upn, role in [*((a.upn, a.role) for a in rp.attendees),
                          *((u, self.others_role) for u in rp.others), *extra]:
            if upn == rp.organizer:
                continue
            old = merged.get(upn)
            if old is None or ROLE_RANK[role] > ROLE_RANK[old]:
                merged[upn] = role
        return tuple(Attendee(u, r) for u, r in merged.items())


def plan_patterns(sheet: Sheet, config: Config, resolved: dict[str, str], now: datetime) -> Plan:
    """Plan every row of a weekly-pattern sheet (columns already checked)."""
    planner = PatternPlanner(config, resolved, now)
    skipped: list[SkippedRow] = []
    invalid: list[InvalidRow] = []
    valid: list[_RowPlan] = []
    for row in sheet.rows:
        rule = planner.skip.match(row.values)
        if rule is not None:
            keys = [row.values.get(c) for c in planner.rows.key_cols]
            section = section_key(keys) if all(v is not None for v in keys) else None
            skipped.append(SkippedRow(row.number, rule.describe(), section))
            continue
        result = planner.plan_row(row)
        if isinstance(result, InvalidRow):
            invalid.append(result)
        else:
            valid.append(result)
    if planner.per_section:
        return _per_section(planner, valid, invalid, skipped)
    return _per_session(planner, valid, invalid, skipped)


def _gap_invalid(planner: PatternPlanner, rp: _RowPlan, exc: times.TimeValueError) -> InvalidRow:
    return InvalidRow(rp.row, planner.start_col, f"{exc} (the pattern {rp.pattern.describe()} "
                                                 "meets on that day)", section=rp.section)


def _per_session(planner: PatternPlanner, valid: list[_RowPlan], invalid: list[InvalidRow],
                 skipped: list[SkippedRow]) -> Plan:
    # Which block of its section's day each session is: sort by (day, start time, row order).
    blocks: dict[tuple[tuple[str, ...], date], list[tuple[time, int, int]]] = {}
    for index, rp in enumerate(valid):
        for day in rp.days:
            blocks.setdefault((rp.key, day), []).append((rp.pattern.start, index, rp.row))
    block_of: dict[tuple[int, date], int] = {}
    duplicate_of: dict[tuple[int, date], tuple[int, int]] = {}  # -> (first row, its block)
    for (_, day), entries in blocks.items():
        entries.sort()
        n = 0
        last_start: time | None = None
        first_row = 0
        for start, index, row in entries:
            if start == last_start:
                duplicate_of[(index, day)] = (first_row, n)
                continue
            n += 1
            last_start, first_row = start, row
            block_of[(index, day)] = n
    requests: list[MeetingRequest] = []
    duplicates: list[DuplicateRow] = []
    for index, rp in enumerate(valid):
        attendees = planner.attendees_for(rp)
        row_requests: list[MeetingRequest] = []
        row_dups: list[DuplicateRow] = []
        try:
            for session, day in enumerate(rp.days, start=1):
                block = block_of.get((index, day))
                first_row, same_block = duplicate_of.get((index, day), (0, 0))
                n = block or same_block
                extra: tuple[Any, ...] = (day,) if n == 1 else (day, f"block {n}")
                external_id = derive_external_id((*rp.key_values, *extra), rp.organizer)
                if block is None:  # the very same class as an earlier row's: that one is sent
                    row_dups.append(DuplicateRow(rp.row, external_id, first_row, session=session))
                    continue
                begins, ends = planner.session_times(rp, day)
                row_requests.append(MeetingRequest(
                    row=rp.row, external_id=external_id, organizer=rp.organizer, subject=rp.subject,
                    start=begins, end=ends, attendees=attendees, thread_id=rp.thread_id,
                    session=session, section=rp.section))
        except times.TimeValueError as exc:
            invalid.append(_gap_invalid(planner, rp, exc))
            continue
        requests.extend(row_requests)
        duplicates.extend(row_dups)
    return Plan(tuple(requests), tuple(sorted(invalid, key=lambda i: i.row)), tuple(duplicates),
                skipped=tuple(skipped))


def _per_section(planner: PatternPlanner, valid: list[_RowPlan], invalid: list[InvalidRow],
                 skipped: list[SkippedRow]) -> Plan:
    sections: dict[tuple[str, ...], list[_RowPlan]] = {}
    for rp in valid:
        sections.setdefault(rp.key, []).append(rp)
    requests: list[MeetingRequest] = []
    shared: list[SharedRow] = []
    for members in sections.values():
        owner = members[0]
        try:
            first = min((planner.session_times(rp, rp.days[0]) for rp in members),
                        key=lambda se: se[0])
        except times.TimeValueError as exc:
            invalid.extend(_gap_invalid(planner, rp, exc) for rp in members)
            continue
        extra = [(u, planner.others_role) for rp in members[1:]
                 for u in (rp.organizer, *rp.others) if u != owner.organizer]
        extra += [(a.upn, a.role) for rp in members[1:] for a in rp.attendees]
        external_id = derive_external_id(owner.key_values, owner.organizer)
        requests.append(MeetingRequest(
            row=owner.row, external_id=external_id, organizer=owner.organizer,
            subject=owner.subject, start=first[0], end=first[1],
            attendees=planner.attendees_for(owner, extra), thread_id=owner.thread_id,
            section=owner.section))
        shared.extend(SharedRow(rp.row, external_id, owner.row) for rp in members[1:])
    return Plan(tuple(requests), tuple(sorted(invalid, key=lambda i: i.row)), (),
                skipped=tuple(skipped), shared=tuple(shared))


def _days(value: Any) -> frozenset[int]:
    if not isinstance(value, str):
        raise PatternError(f"{times.show(value)} is not a days code ({DAYS_HINT})")
    return parse_days(value)
