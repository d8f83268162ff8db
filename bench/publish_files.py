"""How long the files for people take: calendars, handouts and the run report for N meetings.

    .venv/bin/python bench/publish_files.py 10000

Synthetic meetings (200 organizers, one section per 30 meetings, a 110-day term in
America/Chicago), written twice into a fresh folder: the first pass writes every file, the second
is what a nightly run over an unchanged term costs (``calendars.Digests`` skips unchanged files).
No network, no emulator: only the writers are timed.
"""
from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bulkmeet import calendars, handouts, runreport
from bulkmeet.models import PublishedMeeting

TZ = "America/Chicago"


def meetings(n: int) -> list[PublishedMeeting]:
    start = datetime(2027, 1, 11, 8, 0, tzinfo=ZoneInfo(TZ))
    return [PublishedMeeting(
        organizer=f"teacher{i % 200}@school.example", external_id=f"ext-{i}",
        subject=f"CS {i % 500}: Lecture {i}", time_zone=TZ, status="created",
        start=start + timedelta(days=i % 110, hours=i % 9),
        end=start + timedelta(days=i % 110, hours=i % 9, minutes=50),
        section=str(10000 + i % max(n // 30, 1)),
        join_url=f"https://teams.microsoft.com/l/meetup-join/19%3ameeting_{i:040d}%40thread.v2/0",
        join_meeting_id="123456789012", passcode="aB3cD4", toll_number="+1 425-555-0100",
        conference_id="987654321", dialin_url="https://dialin.teams.microsoft.com/x",
        options_url="https://teams.microsoft.com/meetingOptions/x",
        stamp=datetime(2027, 1, 1, tzinfo=UTC)) for i in range(n)]


def main(n: int) -> None:
    items = meetings(n)
    folder = Path(tempfile.mkdtemp(prefix="bulkmeet-publish-bench-"))
    known: tuple[dict[str, str], dict[str, str]] = ({}, {})
    for run in ("first run", "unchanged rerun"):
        cal, hand = calendars.Digests(known[0]), calendars.Digests(known[1])
        timings = []
        began = time.perf_counter()
        calendars.write_calendars(folder / "c", items, time_zone=TZ, digests=cal)
        timings.append(f"calendars {time.perf_counter() - began:.2f} s")
        began = time.perf_counter()
        handouts.write_handouts(folder / "h", items, time_zone=TZ, digests=hand)
        timings.append(f"handouts {time.perf_counter() - began:.2f} s")
        began = time.perf_counter()
        runreport.write_run_report(folder / "r.html", {"total_rows": n, "created": n},
                                   meetings=items)
        timings.append(f"report {time.perf_counter() - began:.2f} s")
        print(f"{n:,} meetings, {run}: {', '.join(timings)}")
        known = (cal.current, hand.current)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
