"""Converging Teams on the sheet: what each row needs (create, update, nothing) and which
meetings this schedule made whose rows are gone (orphans), with the safety rule for cancelling.

Why it is shaped this way (terraform plan / octodns): the sheet is the desired state, the journal
holds the state Graph last *confirmed* for each meeting, and this module only compares the two.
It sends nothing and writes nothing, so ``bulkmeet plan`` and ``bulkmeet run`` share one answer
to "what would change", and the rules can be tested without a network:

* An update is one PATCH per meeting with only what changed, following Graph's update rules:
  start and end always together, the whole attendee list (never a diff), never the organizer.
* A changed organizer is a different meeting (Graph keys meetings by organizer and externalId):
  the new organizer's row is created, the old meeting becomes an orphan, and the report says why.
* Cancelling is refused as a whole, never done in part, when the sheet looks wrong (empty, many
  invalid rows) or when more would be cancelled than the threshold allows (default: more than
  10% of this schedule's meetings or more than 25); ``--max-cancel N`` lifts it once.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bulkmeet import meeting_options
from bulkmeet.models import (
    Attendees,
    InvalidRow,
    MeetingRequest,
    MeetingState,
    SkippedRow,
    graph_instant,
    utc_iso,
)

__all__ = [
    "ACTIVE", "CANCELLED", "DELETING", "ORPHANED", "REMOVED_CANCELLED", "REMOVED_COLUMNS",
    "REMOVED_FAILED", "CancelDecision", "Change", "JournalledMeeting", "MeetingState",
    "RemovedMeeting", "SyncLimits", "SyncPlan", "Update", "build_plan", "decide_cancel", "diff",
    "find_orphans", "local_text", "merged_state", "patch_body", "plan_update", "removed_row",
    "unconfirmed",
]

# Where a journalled meeting stands (the journal's ``meetings.status``).
ACTIVE = "active"  # exists in Teams as far as bulkmeet knows
DELETING = "deleting"  # a DELETE was sent; its answer was not recorded (killed?) -> send again
CANCELLED = "cancelled"  # Graph confirmed the DELETE (204, or 404: already gone)

ORPHANED = "orphaned"  # row statuses for the Removed sheet
REMOVED_CANCELLED = "cancelled"
REMOVED_FAILED = "failed"

@dataclass(frozen=True)
class JournalledMeeting:
    """One meeting this schedule made, as the journal knows it (``meetings`` table)."""

    organizer: str
    external_id: str
    meeting_id: str
    state: MeetingState
    status: str = ACTIVE  # ACTIVE | DELETING | CANCELLED
    join_url: str | None = None
    fingerprint: str | None = None  # of the row that created it (journals before format 2)
    row: int | None = None  # the sheet row it last came from
    version: int = 0  # confirmed updates that changed subject or times (for .ics SEQUENCE)
    section: str | None = None  # plan.section_key of its row (None: journalled before it was kept)


@dataclass(frozen=True)
class Change:
    """One difference between the sheet and Teams, for people: ``start 12:30→14:00``."""

    field: str  # "time" | "subject" | "attendees" | an option name
    text: str


@dataclass(frozen=True)
class Update:
    """A PATCH to send: only the changed parts, and what they are in words."""

    request: MeetingRequest
    meeting_id: str
    changes: tuple[Change, ...]
    body: Mapping[str, Any]

    @property
    def description(self) -> str:
        return "; ".join(c.text for c in self.changes)


@dataclass(frozen=True)
class RemovedMeeting:
    """A meeting of this schedule whose row is gone, for the log and the Removed sheet."""

    organizer: str
    external_id: str
    meeting_id: str
    subject: str | None
    start_utc: str | None
    end_utc: str | None
    join_url: str | None
    status: str = ORPHANED  # ORPHANED | REMOVED_CANCELLED | REMOVED_FAILED
    reason: str = ""
    start_local: str | None = None  # the start as people read it (the config's time_zone)


REMOVED_COLUMNS = ("status", "organizer", "subject", "start", "joinWebUrl", "reason",
                   "startDateTimeUtc", "endDateTimeUtc", "externalId", "meetingId")


def removed_row(r: RemovedMeeting) -> list[Any]:
    """One line of the Removed sheet, in ``REMOVED_COLUMNS`` order."""
    return [r.status, r.organizer, r.subject, r.start_local, r.join_url, r.reason, r.start_utc,
            r.end_utc, r.external_id, r.meeting_id]


@dataclass(frozen=True)
class SyncLimits:
    """``[sync]`` in the config, plus this run's command-line choices."""

    cancel_removed: bool = False
    max_cancel_percent: float = 10.0
    max_cancel_count: int = 25
    max_cancel_once: int | None = None  # --max-cancel N: allow up to N this run


@dataclass(frozen=True)
class CancelDecision:
    allowed: bool
    reason: str | None = None  # why nothing is cancelled (None when allowed or not asked)
    refused: bool = False  # the safety threshold said no (its own exit status)


@dataclass(frozen=True)
class SyncPlan:
    creates: tuple[MeetingRequest, ...]  # not in the journal (or cancelled before): createOrGet
    updates: tuple[Update, ...]  # journalled, and the sheet differs: PATCH
    unchanged: tuple[MeetingRequest, ...]  # journalled and equal: nothing to send
    orphans: tuple[RemovedMeeting, ...]  # journalled, row gone
    deleting: tuple[RemovedMeeting, ...] = ()  # a DELETE in flight when a run died: finish it
    cancel: CancelDecision = field(default_factory=lambda: CancelDecision(False))
    # The journal's meetings this plan was made from (read once per run; 10,000 rows cost
    # about 0.3 s to read).
    journalled: Mapping[tuple[str, str], JournalledMeeting] = field(default_factory=dict,
                                                                    compare=False)


# -- differences -------------------------------------------------------------------------------

def _local(text: str | None, tz: ZoneInfo) -> datetime | None:
    parsed = graph_instant(text)
    return parsed.astimezone(tz) if parsed else None


def local_text(text: str | None, tz: ZoneInfo) -> str | None:
    """``2027-03-01T14:00:00Z`` as people in ``tz`` read it: ``2027-03-01 08:00``."""
    moment = _local(text, tz)
    return moment.strftime("%Y-%m-%d %H:%M") if moment else None


def _time_change(name: str, old: str | None, new: str | None, tz: ZoneInfo) -> str:
    before, after = _local(old, tz), _local(new, tz)
    if before is None or after is None:
        return f"{name} {old or 'unset'}→{new or 'unset'}"
    if before.date() == after.date():
        return f"{name} {before:%H:%M}→{after:%H:%M}"
    return f"{name} {before:%Y-%m-%d %H:%M}→{after:%Y-%m-%d %H:%M}"


def _attendee_change(old: Attendees, new: Attendees) -> str:
    before, after = dict(old), dict(new)
    parts = [f"+{u}" + (f" ({r})" if r != "attendee" else "") for u, r in new if u not in before]
    parts += [f"-{u}" for u, _ in old if u not in after]
    parts += [f"{u} {before[u]}→{r}" for u, r in new if u in before and before[u] != r]
    return "attendees " + ", ".join(parts)


def diff(wanted: MeetingState, have: MeetingState, tz: ZoneInfo, *,
         attendees_known_equal: bool = False) -> tuple[Change, ...]:
    """What must change for ``have`` to become ``wanted``; empty when nothing.

    A part the sheet does not set (no times mapped, an option not configured) is left alone.
    ``attendees_known_equal``: the journal lacks the attendee list but the row is byte for byte
    the one that created the meeting (journals before format 2), so the list is the row's.
    """
    changes: list[Change] = []
    if wanted.start is not None and (wanted.start, wanted.end) != (have.start, have.end):
        texts = []
        if wanted.start != have.start:
            texts.append(_time_change("start", have.start, wanted.start, tz))
        if wanted.end != have.end:
            texts.append(_time_change("end", have.end, wanted.end, tz))
        changes.append(Change("time", ", ".join(texts)))
    if wanted.subject is not None and wanted.subject != have.subject:
        changes.append(Change("subject", f"subject \"{have.subject or ''}\"→\"{wanted.subject}\""))
    if wanted.attendees is not None:
        if have.attendees is None:
            if not attendees_known_equal:
                changes.append(Change("attendees", "attendees re-sent (not recorded before)"))
        elif wanted.attendees != have.attendees:
            changes.append(Change("attendees", _attendee_change(have.attendees, wanted.attendees)))
    current = dict(have.settings) if have.settings is not None else None
    for name, value in wanted.settings or ():
        old = current.get(name) if current is not None else None
        if current is None or old != value:
            shown = meeting_options.show_value(old) if current is not None else "unknown"
            changes.append(Change(name, f"{name} {shown}→{meeting_options.show_value(value)}"))
    return tuple(changes)


def patch_body(wanted: MeetingState, changes: Sequence[Change]) -> dict[str, Any]:
    """The PATCH body for these changes: times in pairs, the whole attendee list."""
    body: dict[str, Any] = {}
    fields = {c.field for c in changes}
    if "time" in fields:
        body["startDateTime"], body["endDateTime"] = wanted.start, wanted.end
    if "subject" in fields:
        body["subject"] = wanted.subject
    if "attendees" in fields:
        body["participants"] = {"attendees": [{"upn": u, "role": r}
                                              for u, r in wanted.attendees or ()]}
    options = {name: value for name, value in wanted.settings or () if name in fields}
    body.update(meeting_options.patch_fragment(options))
    return body


def unconfirmed(wanted: MeetingState, answer: MeetingState, changes: Sequence[Change]
                ) -> list[str]:
    """The changed parts that Graph's answer does not show (an update is recorded only when
    this is empty: the journal never holds an update Graph did not confirm)."""
    fields = {c.field for c in changes}
    missing = []
    if "time" in fields and (answer.start, answer.end) != (wanted.start, wanted.end):
        missing.append("time")
    if "subject" in fields and answer.subject != wanted.subject:
        missing.append("subject")
    if "attendees" in fields and answer.attendees != wanted.attendees:
        missing.append("attendees")
    have = dict(answer.settings or ())
    missing += [name for name, value in wanted.settings or ()
                if name in fields and have.get(name) != value]
    return missing


def merged_state(wanted: MeetingState, answer: MeetingState) -> MeetingState:
    """What to record after a confirmed PATCH: Graph's answer, with parts it did not echo (an
    answer without participants) taken from what was sent and confirmed."""
    return MeetingState(
        subject=answer.subject, start=answer.start, end=answer.end,
        attendees=answer.attendees if answer.attendees is not None else wanted.attendees,
        settings=answer.settings if answer.settings is not None else wanted.settings,
    )


# -- the plan ------------------------------------------------------------------------------------

def plan_update(request: MeetingRequest, meeting: JournalledMeeting, tz: ZoneInfo
                ) -> Update | None:
    wanted = MeetingState.desired(request)
    same_row = (meeting.state.attendees is None and meeting.fingerprint is not None
                and meeting.fingerprint == request.fingerprint())  # hashing only when needed
    changes = diff(wanted, meeting.state, tz, attendees_known_equal=same_row)
    if not changes:
        return None
    return Update(request, meeting.meeting_id, changes, patch_body(wanted, changes))


def find_orphans(requests: Iterable[MeetingRequest], invalid: Iterable[InvalidRow],
                 journalled: Mapping[tuple[str, str], JournalledMeeting],
                 skipped: Iterable[SkippedRow] = ()) -> list[RemovedMeeting]:
    """Active journalled meetings no valid row asks for.

    An invalid row keeps its meetings while it can still say which they are (the row is there,
    only broken): by its externalId, or by its key columns (``section``), which name every
    meeting journalled with that key whatever the organizer, since an instructor gone from the
    staff list makes the organizer unknown and with it every session's externalId. The reason
    says when a valid row with the same externalId under another organizer means the organizer
    changed, and when a skip rule now matches the row (a cancelled section is still in the
    export: "no longer in the sheet" would send people looking for it).
    """
    requests = list(requests)
    wanted = {(r.organizer, r.external_id) for r in requests}
    invalid = list(invalid)
    kept = {bad.external_id for bad in invalid if bad.external_id}
    kept_sections = {bad.section for bad in invalid if bad.section}
    why = _OrphanReasons(requests, skipped)
    out = []
    for key, m in journalled.items():
        if m.status != ACTIVE or key in wanted or m.external_id in kept:
            continue
        if m.section is not None and m.section in kept_sections:
            continue
        out.append(_removed(m, ORPHANED, why.of(m)))
    return out


class _OrphanReasons:
    """Why a journalled meeting no row asks for is an orphan, in words for the Removed sheet."""

    def __init__(self, requests: Sequence[MeetingRequest], skipped: Iterable[SkippedRow]) -> None:
        self.moved = {r.external_id: r.organizer for r in requests}
        # With keys = [...], the externalId includes the organizer, so a new organizer also
        # means a new externalId: the same subject at the same time under someone else is the
        # tell.
        self.slots: dict[tuple[str, str], set[str]] = {}
        for r in requests:
            if r.start:
                self.slots.setdefault((r.subject, utc_iso(r.start)), set()).add(r.organizer)
        live = {r.section for r in requests if r.section}  # a valid row of it remains
        self.skipped = {s.section: s for s in skipped if s.section and s.section not in live}

    def of(self, m: JournalledMeeting) -> str:
        new_org = self.moved.get(m.external_id)
        others = self.slots.get((m.state.subject or "", m.state.start or ""), set())
        if new_org is None and len(others) == 1 and m.organizer not in others:
            new_org = next(iter(others))
        if new_org:
            return (f"the organizer changed to {new_org}: Graph cannot move a meeting, so the "
                    "new organizer gets a new one")
        skip = self.skipped.get(m.section) if m.section else None
        if skip is not None:
            return f"its row {skip.row} is now skipped ({skip.rule})"
        return "its row is no longer in the sheet"


def _removed(m: JournalledMeeting, status: str, reason: str) -> RemovedMeeting:
    return RemovedMeeting(m.organizer, m.external_id, m.meeting_id, m.state.subject,
                          m.state.start, m.state.end, m.join_url, status, reason)


def decide_cancel(orphans: int, *, schedule_meetings: int, rows: int, invalid: int,
                  limits: SyncLimits, unkeyed: int = 0) -> CancelDecision:
    """May this run cancel ``orphans`` meetings? All of them or none.

    A sheet that reads empty or with many invalid rows (more than 10%) is more likely a broken
    export than a cancelled term, so it never cancels; nor does one with an invalid row whose
    key cannot be read (its meeting would look removed). The threshold counts against the
    meetings this schedule had before the run.
    """
    if not limits.cancel_removed or orphans == 0:
        return CancelDecision(False)
    if rows == 0:
        return CancelDecision(False, "the sheet has no rows, which looks like a failed export; "
                                     "nothing is cancelled from an empty sheet")
    if invalid * 10 > rows:
        return CancelDecision(False, f"{invalid} of {rows} rows are invalid, which looks like a "
                                     "broken export; fix them first, nothing is cancelled while "
                                     "more than 10% of the rows cannot be read")
    if unkeyed:
        return CancelDecision(False, f"{unkeyed} invalid row(s) have no readable key, so "
                                     "bulkmeet cannot tell which meetings they are; nothing is "
                                     "cancelled until they are fixed")
    if limits.max_cancel_once is not None:
        if orphans <= limits.max_cancel_once:
            return CancelDecision(True)
        return CancelDecision(False, f"{orphans} meetings would be cancelled but --max-cancel "
                                     f"allows {limits.max_cancel_once}", refused=True)
    share = 100.0 * orphans / max(schedule_meetings, 1)
    if orphans > limits.max_cancel_count or share > limits.max_cancel_percent:
        return CancelDecision(False, (
            f"{orphans} of this schedule's {schedule_meetings} meetings would be cancelled "
            f"({share:.0f}%), more than the safety limit ({limits.max_cancel_percent:g}% or "
            f"{limits.max_cancel_count} meetings, [sync] in the config); if that is right, run "
            f"again with --max-cancel {orphans}"), refused=True)
    return CancelDecision(True)


def build_plan(requests: Sequence[MeetingRequest], invalid: Sequence[InvalidRow], rows: int,
               journalled: Mapping[tuple[str, str], JournalledMeeting], tz: ZoneInfo,
               limits: SyncLimits, *, full: bool = False,
               skipped: Sequence[SkippedRow] = ()) -> SyncPlan:
    """Sort every valid row into create / update / unchanged, and find the orphans.

    ``full`` (``--full``) sends every row's createOrGet again, as before sync existed.
    """
    creates: list[MeetingRequest] = []
    updates: list[Update] = []
    unchanged: list[MeetingRequest] = []
    for req in requests:
        m = journalled.get((req.organizer, req.external_id))
        if full or m is None or m.status != ACTIVE:
            creates.append(req)
            continue
        update = plan_update(req, m, tz)
        if update is None:
            unchanged.append(req)
        else:
            updates.append(update)
    orphans = find_orphans(requests, invalid, journalled, skipped)
    wanted = {(r.organizer, r.external_id) for r in requests}
    deleting = [_removed(m, ORPHANED, "a cancel was sent by an earlier run that did not finish")
                for key, m in journalled.items() if m.status == DELETING and key not in wanted]
    orphans = [replace(o, start_local=local_text(o.start_utc, tz)) for o in orphans]
    deleting = [replace(o, start_local=local_text(o.start_utc, tz)) for o in deleting]
    active = sum(1 for m in journalled.values() if m.status == ACTIVE)
    decision = decide_cancel(len(orphans), schedule_meetings=active, rows=rows,
                             invalid=len(invalid), limits=limits,
                             unkeyed=sum(1 for bad in invalid
                                         if not bad.external_id and not bad.section))
    return SyncPlan(tuple(creates), tuple(updates), tuple(unchanged), tuple(orphans),
                    tuple(deleting), decision, journalled)
