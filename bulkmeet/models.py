"""The small frozen records that flow one way through bulkmeet.

sheets -> ``SheetRow`` -> plan -> ``MeetingRequest`` | ``InvalidRow`` | ``DuplicateRow``
-> runner/graph -> ``MeetingResult`` -> journal + report.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
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

ME = "me"  # organizer value meaning "the signed-in user" (delegated token, /me/...)


@dataclass(frozen=True)
class SheetRow:
    """One non-empty data row as the user sees it in Excel (header is row 1)."""

    number: int
    values: Mapping[str, Any]  # column name -> str | datetime | date | time | None


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
        payload = {"organizer": self.organizer, "body": self.body()}
        raw = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class InvalidRow:
    """A row that failed validation; ``column`` and ``message`` name the problem for the user."""

    row: int
    column: str | None
    message: str
    external_id: str | None = None


@dataclass(frozen=True)
class DuplicateRow:
    """A later row with an externalId already used by ``first_row``: only the first runs."""

    row: int
    external_id: str
    first_row: int


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
        )


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

    @property
    def ok(self) -> bool:
        return self.status in (CREATED, EXISTING)


# Columns bulkmeet appends to every input row in the output sheet, in this order. The reader drops
# them (and REQUEST_COLUMN) when an output sheet is fed back as input.
RESULT_COLUMNS: tuple[str, ...] = (
    "externalId", "status", "meetingId", "joinWebUrl", "joinMeetingId", "passcode", "dialinUrl",
    "conferenceId", "tollNumber", "startDateTimeUtc", "endDateTimeUtc", "httpStatus", "error",
    "requestId", "attempts", "warning",
)
REQUEST_COLUMN = "request"  # --dry-run only: the method, path and JSON body that would be sent


@dataclass(frozen=True)
class RowOutcome:
    """Everything the output sheet says about one input row, whichever run did the work."""

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

    def result_columns(self) -> dict[str, Any]:
        m = self.meeting
        return {
            "externalId": self.external_id,
            "status": self.status,
            "meetingId": m.meeting_id if m else None,
            "joinWebUrl": m.join_url if m else None,
            "joinMeetingId": m.join_meeting_id if m else None,
            "passcode": m.passcode if m else None,
            "dialinUrl": m.dialin_url if m else None,
            "conferenceId": m.conference_id if m else None,
            "tollNumber": m.toll_number if m else None,
            "startDateTimeUtc": m.start_utc if m else None,
            "endDateTimeUtc": m.end_utc if m else None,
            "httpStatus": self.http_status,
            "error": self.error,
            "requestId": self.request_id,
            "attempts": self.attempts,
            "warning": self.warning,
        }
