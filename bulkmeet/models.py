"""The small frozen records that flow one way through bulkmeet.

sheets -> ``SheetRow`` -> plan -> ``MeetingRequest`` | ``InvalidRow`` | ``DuplicateRow``
-> runner/graph -> ``MeetingResult`` -> journal + report.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

# Row statuses as they appear in the output sheet.
CREATED = "created"
EXISTING = "existing"
FAILED = "failed"
INVALID = "invalid"
DUPLICATE = "duplicate"
PLANNED = "planned"  # --dry-run: validated, would be sent
PENDING = "pending"  # not sent in this run (interrupted); the next run sends it
UPDATED = "updated"  # the meeting existed and was PATCHed to match the sheet (bulkmeet.sync)
ORPHANED = "orphaned"  # a meeting this schedule made whose row is gone (Removed sheet)
CANCELLED = "cancelled"  # such a meeting, deleted with --cancel-removed
SKIPPED = "skipped"  # a [[skip]] rule matched the row (ARRANGED, cancelled...): not an error

ME = "me"  # organizer value meaning "the signed-in user" (delegated token, /me/...)


@dataclass(frozen=True)
class SheetRow:
    """One non-empty data row as the user sees it in Excel (header is row 1)."""

    number: int
    values: Mapping[str, Any]  # column name -> str | datetime | date | time | None
    # (column, message) for cells the reader could not trust (a formula without a saved
    # value, a merged cell): the planner makes the row invalid if it uses that column.
    problems: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Sheet:
    path: Path
    sheet_name: str | None
    columns: tuple[str, ...]
    rows: tuple[SheetRow, ...]


@dataclass(frozen=True)
class Attendee:
    upn: str
    role: str = "attendee"  # attendee | presenter | producer | coorganizer


def utc_iso(value: datetime) -> str:
    """Graph wants UTC with a Z; one formatter so bodies, journal and output agree."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def graph_instant(text: object) -> datetime | None:
    """The inverse of ``utc_iso`` for what Graph sends back (``2027-03-01T14:00:00.0000000Z``,
    seven fractional digits: Python 3.11's ``fromisoformat`` reads them); None if unreadable."""
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class MeetingRequest:
    """A createOrGet call planned from one sheet row.

    ``organizer`` is what the sheet (or config) says, normalised: a lower-case object-id GUID, a
    lower-case UPN (resolved to an object id before sending), or ``ME`` for /me with a delegated
    token. ``start``/``end`` are aware UTC datetimes or None (Graph's defaults apply).
    """

    row: int
    external_id: str
    organizer: str
    subject: str
    start: datetime | None = None
    end: datetime | None = None
    attendees: tuple[Attendee, ...] = ()
    thread_id: str | None = None
    session: int = 0  # which meeting of its source row this is (0 for one meeting per row)
    # Meeting options (bulkmeet.meeting_options), sorted (name, value): PATCHed after
    # createOrGet, which ignores them; never part of the createOrGet body.
    settings: tuple[tuple[str, Any], ...] = ()
    # What identifies the row's section (plan.section_key over the key values, no organizer, no
    # day), kept per meeting in the journal: an invalid row with this key still protects them.
    section: str | None = None

    @property
    def outcome_key(self) -> tuple[int, int]:
        """The output line this request's outcome goes to: (row, session)."""
        return (self.row, self.session)

    def body(self) -> dict[str, Any]:
        """The JSON body of the createOrGet POST (organizer goes in the path, not the body)."""
        body: dict[str, Any] = {"externalId": self.external_id, "subject": self.subject}
        if self.start is not None:
            body["startDateTime"] = utc_iso(self.start)
        if self.end is not None:
            body["endDateTime"] = utc_iso(self.end)
        if self.attendees:
            body["participants"] = {
                "attendees": [{"upn": a.upn, "role": a.role} for a in self.attendees]
            }
        if self.thread_id:
            body["chatInfo"] = {"threadId": self.thread_id}
        return body

    def fingerprint(self) -> str:
        """Stable hash of everything that would be sent; the journal compares it across runs."""
        payload: dict[str, Any] = {"organizer": self.organizer, "body": self.body()}
        if self.settings:  # only when set, so rows without options keep their old fingerprint
            payload["settings"] = [list(item) for item in self.settings]
        raw = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class InvalidRow:
    """A row that failed validation; ``column`` and ``message`` name the problem for the user."""

    row: int
    column: str | None
    message: str
    external_id: str | None = None
    section: str | None = None  # plan.section_key when the key columns could be read


@dataclass(frozen=True)
class DuplicateRow:
    """A later row with an externalId already used by ``first_row``: only the first runs."""

    row: int
    external_id: str
    first_row: int
    session: int = 0  # a weekly pattern's class day that another row of the section already has


@dataclass(frozen=True)
class SkippedRow:
    """A row a ``[[skip]]`` rule matched; ``rule`` says which, for the output sheet."""

    row: int
    rule: str
    section: str | None = None  # plan.section_key (weekly patterns): names its old meetings


@dataclass(frozen=True)
class SharedRow:
    """One meeting per section: a further pattern row of a section whose meeting is planned from
    ``primary_row``. It gets that meeting's outcome and link, and is never a duplicate."""

    row: int
    external_id: str
    primary_row: int


@dataclass(frozen=True)
class MeetingInfo:
    """The parts of Graph's onlineMeeting that go into the output sheet."""

    meeting_id: str
    join_url: str | None = None
    join_meeting_id: str | None = None
    passcode: str | None = None
    dialin_url: str | None = None
    conference_id: str | None = None
    toll_number: str | None = None
    start_utc: str | None = None
    end_utc: str | None = None
    subject: str | None = None
    options_url: str | None = None  # meetingOptionsWebUrl: where the organizer sets the lobby
    toll_free_number: str | None = None

    @classmethod
    def from_graph(cls, meeting: Mapping[str, Any]) -> MeetingInfo:
        audio = meeting.get("audioConferencing") or {}
        join_id = meeting.get("joinMeetingIdSettings") or {}
        return cls(
            meeting_id=str(meeting.get("id", "")),
            join_url=meeting.get("joinWebUrl"),
            join_meeting_id=join_id.get("joinMeetingId"),
            passcode=join_id.get("passcode"),
            dialin_url=audio.get("dialinUrl"),
            conference_id=audio.get("conferenceId"),
            toll_number=audio.get("tollNumber"),
            start_utc=meeting.get("startDateTime"),
            end_utc=meeting.get("endDateTime"),
            subject=meeting.get("subject"),
            options_url=meeting.get("meetingOptionsWebUrl"),
            toll_free_number=audio.get("tollFreeNumber"),
        )


Attendees = tuple[tuple[str, str], ...]  # sorted (lower-case upn, role)


def _utc_text(value: Any) -> str | None:
    parsed = graph_instant(value)
    return utc_iso(parsed) if parsed else None


@dataclass(frozen=True)
class MeetingState:
    """What one meeting is (or should be): the parts bulkmeet sets and compares (bulkmeet.sync).

    Times are UTC text as ``utc_iso`` writes it. ``attendees`` or ``settings`` None means not
    known (a journal written by bulkmeet before it kept them): the next update sends them.
    """

    subject: str | None = None
    start: str | None = None
    end: str | None = None
    attendees: Attendees | None = None
    settings: tuple[tuple[str, Any], ...] | None = None

    @classmethod
    def from_graph(cls, meeting: Mapping[str, Any]) -> MeetingState:
        """The state of a meeting as Graph sent it back (createOrGet, GET or PATCH answer)."""
        from bulkmeet import meeting_options

        participants = meeting.get("participants")
        attendees: Attendees | None = None
        if isinstance(participants, Mapping) and isinstance(participants.get("attendees"), list):
            attendees = tuple(sorted(
                (str(a.get("upn") or "").lower(), str(a.get("role") or "attendee"))
                for a in participants["attendees"] if isinstance(a, Mapping)))
        return cls(subject=meeting.get("subject"), start=_utc_text(meeting.get("startDateTime")),
                   end=_utc_text(meeting.get("endDateTime")), attendees=attendees,
                   settings=meeting_options.from_graph(meeting))

    @classmethod
    def from_info(cls, info: MeetingInfo) -> MeetingState:
        """What a journal of format 1 knew: subject and times, not attendees or options."""
        return cls(subject=info.subject, start=_utc_text(info.start_utc),
                   end=_utc_text(info.end_utc))

    @classmethod
    def desired(cls, request: MeetingRequest) -> MeetingState:
        """What the row asks for. Without an end Graph makes the meeting an hour long."""
        start = utc_iso(request.start) if request.start else None
        end = request.end or (request.start + timedelta(hours=1) if request.start else None)
        return cls(subject=request.subject, start=start, end=utc_iso(end) if end else None,
                   attendees=tuple(sorted((a.upn.lower(), a.role) for a in request.attendees)),
                   settings=tuple(sorted(request.settings)))

    def to_json(self) -> str:
        return json.dumps({"subject": self.subject, "start": self.start, "end": self.end,
                           "attendees": self.attendees, "settings": self.settings},
                          separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> MeetingState:
        data = json.loads(text) if text else {}
        att = data.get("attendees")
        settings = data.get("settings")
        return cls(subject=data.get("subject"), start=data.get("start"), end=data.get("end"),
                   attendees=tuple(map(tuple, att)) if att is not None else None,
                   settings=tuple(map(tuple, settings)) if settings is not None else None)


@dataclass(frozen=True)
class MeetingResult:
    """What one createOrGet (with its retries) ended as. Recorded in the journal at once."""

    external_id: str
    organizer: str
    status: str  # CREATED | EXISTING | FAILED
    fingerprint: str
    http_status: int | None = None
    meeting: MeetingInfo | None = None
    error: str | None = None  # a sentence an ops user can act on
    error_code: str | None = None  # Graph's error.code, for branching
    request_id: str | None = None  # Graph's request-id, for support tickets
    attempts: int = 0
    warning: str | None = None  # e.g. "the meeting differs from the sheet"
    recorded_at: str = field(default="")
    changes: str | None = None  # UPDATED: what the PATCH changed, e.g. "start 12:30→14:00"
    # The meeting as Graph answered (not stored in the results table: the journal keeps it as
    # the meeting's confirmed state), so comparing results ignores it.
    state: MeetingState | None = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.status in (CREATED, EXISTING, UPDATED)


# Columns bulkmeet appends to every input row in the output sheet, in this order. The reader drops
# them (and REQUEST_COLUMN) when an output sheet is fed back as input.
# startLocal/endLocal are the meeting's times in the config's time_zone (real date-time cells).
RESULT_COLUMNS: tuple[str, ...] = (
    "sourceRow", "sessionNumber", "externalId", "status", "meetingSubject", "meetingId",
    "joinWebUrl", "meetingOptionsWebUrl", "joinMeetingId", "passcode", "dialinUrl",
    "conferenceId", "tollNumber", "tollFreeNumber", "startLocal", "endLocal", "startDateTimeUtc",
    "endDateTimeUtc", "httpStatus", "error", "requestId", "attempts", "warning", "changes",
)
REQUEST_COLUMN = "request"  # --dry-run only: the method, path and JSON body that would be sent


OutcomeKey = tuple[int, int]  # (source row, session within the row)


@dataclass(frozen=True)
class RowOutcome:
    """Everything one output line says about an input row, whichever run did the work.

    A classic sheet has one line per row (session 0). A row that expands into several meetings
    (a weekly pattern) has one line per session, each repeating the row's input values.
    """

    row: int
    status: str  # CREATED | EXISTING | FAILED | INVALID | DUPLICATE | PLANNED | PENDING
    external_id: str | None = None
    meeting: MeetingInfo | None = None
    http_status: int | None = None
    error: str | None = None
    request_id: str | None = None
    attempts: int | None = None
    warning: str | None = None
    request: str | None = None  # dry run: "POST /users/{id}/onlineMeetings/createOrGet {json}"
    session: int = 0  # which meeting of row ``row`` this line is about; (row, session) is the key
    shared_with: int | None = None  # this row reuses the meeting made for that row (one per section)
    changes: str | None = None  # what bulkmeet changed in Teams this run ("start 12:30→14:00")

    @property
    def outcome_key(self) -> OutcomeKey:
        """Where this outcome goes in the output: one line per key, in sorted order."""
        return (self.row, self.session)

    def result_columns(self, tz: tzinfo | None = None) -> dict[str, Any]:
        """The result columns' values; start/endLocal are naive wall-clock times in ``tz``."""
        m = self.meeting
        return {
            "sourceRow": self.row,  # the input row this line came from (one per session)
            "sessionNumber": self.session or None,  # 1, 2, ... for a weekly pattern's class days
            "externalId": self.external_id,
            "status": self.status,
            "meetingSubject": m.subject if m else None,
            "meetingId": m.meeting_id if m else None,
            "joinWebUrl": m.join_url if m else None,
            "meetingOptionsWebUrl": m.options_url if m else None,
            "joinMeetingId": m.join_meeting_id if m else None,
            "passcode": m.passcode if m else None,
            "dialinUrl": m.dialin_url if m else None,
            "conferenceId": m.conference_id if m else None,
            "tollNumber": m.toll_number if m else None,
            "tollFreeNumber": m.toll_free_number if m else None,
            "startLocal": _wall_clock(m.start_utc, tz) if m else None,
            "endLocal": _wall_clock(m.end_utc, tz) if m else None,
            "startDateTimeUtc": m.start_utc if m else None,
            "endDateTimeUtc": m.end_utc if m else None,
            "httpStatus": self.http_status,
            "error": self.error,
            "requestId": self.request_id,
            "attempts": self.attempts,
            "warning": self.warning,
            "changes": self.changes,
        }


def _wall_clock(utc_text: str | None, tz: tzinfo | None) -> datetime | None:
    """Graph's UTC text as a naive local date-time (Excel has no zones); None without a zone."""
    instant = graph_instant(utc_text) if tz is not None else None
    return instant.astimezone(tz).replace(tzinfo=None) if instant is not None else None


@dataclass(frozen=True)
class PublishedMeeting:
    """One meeting as the people who attend it need it: what calendars, handouts and the run
    report are written from (``bulkmeet.publish`` builds these from the run's results).

    ``start``/``end`` are aware datetimes in ``time_zone`` (the schedule's zone: what people read);
    ``sequence`` counts the changes Graph confirmed for this meeting (RFC 5545 SEQUENCE), so a
    re-imported calendar replaces the old event; ``stamp`` is when this version was recorded (UTC),
    so files of an unchanged schedule are byte-identical run after run.
    """

    organizer: str  # as in the sheet: a UPN, an object id, or ME
    external_id: str
    subject: str
    start: datetime | None
    end: datetime | None
    time_zone: str
    status: str  # created | existing | updated | orphaned | cancelled
    organizer_name: str = ""  # for greetings; the address when the sheet has no name column
    section: str = ""  # the section key ("10001"); "" when the config names no section columns
    join_url: str | None = None
    join_meeting_id: str | None = None  # the "Meeting ID" people type into Teams
    passcode: str | None = None
    toll_number: str | None = None
    toll_free_number: str | None = None
    conference_id: str | None = None
    dialin_url: str | None = None  # page listing local dial-in numbers
    options_url: str | None = None  # meetingOptionsWebUrl, for the organizer only
    sequence: int = 0
    stamp: datetime | None = None
    rows: tuple[int, ...] = ()  # sheet rows that share this meeting

    @property
    def cancelled(self) -> bool:
        return self.status == CANCELLED
