"""Graph's monthly meeting quota: 2,000 meetings per organizer per calendar month.

Graph documents this "meeting information" limit but not the answer a client gets at the cap
(observed and plausible: a 429 *without* Retry-After, or a 403). Waiting does not help until the
month turns, so retrying row after row would only burn the run's time and the app's budget. The
runner therefore counts: what the journal says this organizer got created this month (UTC), plus
what this run creates. At 90 % it warns once; at the cap it stops sending that organizer's new
meetings, with one note for the whole organizer (as for a missing access policy). Meetings made
outside bulkmeet do not show in the journal, so a 429 without Retry-After for an organizer that
is near the cap, or three of them in a row, is taken as the cap too.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

log = logging.getLogger(__name__)

MONTHLY_MEETING_CAP = 2000
WARN_SHARE = 0.9
REFUSALS_IN_A_ROW = 3  # 429s without Retry-After, with no meeting made between them


def this_month() -> str:
    """The calendar month Graph counts in, as the journal stores it: "YYYY-MM" (UTC)."""
    return datetime.now(UTC).strftime("%Y-%m")


class MeetingQuota:
    """Meetings created per organizer in ``month``; thread-safe.

    Graph counts per user, whatever the sheet called them: ``identity`` maps an organizer as
    written (a UPN, an object id in any case) to the user it is, so that a teacher written as
    ``ada@school.example`` last week and by object id today is counted once. The journal's
    counts are folded by it too. Notes name the organizer as this run wrote them.
    """

    def __init__(self, used: Mapping[str, int] | None = None, month: str | None = None,
                 cap: int = MONTHLY_MEETING_CAP,
                 identity: Callable[[str], str] | None = None) -> None:
        self.cap = cap
        self.month = month or this_month()
        self._identity = identity or (lambda organizer: organizer)
        self._used: dict[str, int] = {}
        for organizer, n in (used or {}).items():
            key = self._identity(organizer)
            self._used[key] = self._used.get(key, 0) + n
        self._refusals: dict[str, int] = {}
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        self.warnings: dict[str, str] = {}  # organizer -> the 90 % note, once per user
        for organizer in (used or {}):
            self._maybe_warn(organizer)

    def used(self, organizer: str) -> int:
        with self._lock:
            return self._used.get(self._identity(organizer), 0)

    def full(self, organizer: str) -> bool:
        return self.used(organizer) >= self.cap

    def created(self, organizer: str) -> None:
        key = self._identity(organizer)
        with self._lock:
            self._used[key] = self._used.get(key, 0) + 1
            self._refusals.pop(key, None)
            self._maybe_warn(organizer)

    def refused(self, organizer: str) -> bool:
        """A createOrGet for ``organizer`` got 429 without Retry-After: is it the cap?"""
        key = self._identity(organizer)
        with self._lock:
            n = self._refusals[key] = self._refusals.get(key, 0) + 1
            near = self._used.get(key, 0) >= WARN_SHARE * self.cap
            return near or n >= REFUSALS_IN_A_ROW

    def _maybe_warn(self, organizer: str) -> None:
        key = self._identity(organizer)
        n = self._used.get(key, 0)
        if n >= WARN_SHARE * self.cap and key not in self._warned and n < self.cap:
            self._warned.add(key)
            self.warnings[organizer] = (
                f"Organizer {organizer} has {n:,} of Graph's {self.cap:,} meetings for {self.month} "
                "(counted in the journal): new meetings beyond the limit will be refused until "
                "the month turns; spread the remaining sessions over other organizers if needed.")
            log.debug("%s", self.warnings[organizer])  # shown once, as a note of the run

    def note(self, organizer: str, *, by_graph: bool = False) -> str:
        """The one sentence for every row of an organizer at the cap."""
        n = self.used(organizer)
        why = ("Graph refused new meetings for them (429 without Retry-After)" if by_graph else
               f"{n:,} meetings were created for them in {self.month} (counted in the journal)")
        return (f"Organizer {organizer} has reached Graph's limit of {self.cap:,} meetings per "
                f"calendar month: {why}, so their remaining new meetings were not sent. The next "
                "run after the month turns sends them; or give those sessions another organizer.")
