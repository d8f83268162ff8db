"""The output writer alone: N lines, 9 input columns + the result columns, .xlsx vs .csv.

Usage: python bench/writer.py N OUT_STEM   (e.g. `bench/writer.py 50000 /tmp/w/out`)
Prints CPU and wall seconds per format and the peak RSS; used to measure the streaming xlsx writer
(bulkmeet/xlsx_writer.py) against openpyxl's write-only mode it replaced.
"""
from __future__ import annotations

import resource
import sys
import time as clock
from datetime import datetime, time, timedelta
from pathlib import Path

from bulkmeet.models import CREATED, MeetingInfo, RowOutcome, Sheet, SheetRow
from bulkmeet.report import RunSummary, write_output

n = int(sys.argv[1])
out = Path(sys.argv[2])
out.parent.mkdir(parents=True, exist_ok=True)
COLS = ("CRN", "Course", "Title", "Date", "Start", "End", "Teacher", "Room", "Notes")
rows = []
outcomes = {}
for i in range(n):
    r = i + 2
    rows.append(SheetRow(r, {"CRN": f"{10000 + i:05d}", "Course": f"CS{i % 300:03d}",
                             "Title": f"Introduction to topic {i}", "Date": datetime(2027, 3, 1) + timedelta(days=i % 90),
                             "Start": time(8 + i % 9, 30), "End": time(9 + i % 9, 45),
                             "Teacher": f"teacher{i % 24}@school.example", "Room": f"B{i % 40}",
                             "Notes": "-" if i % 7 == 0 else None}))
    m = MeetingInfo(meeting_id=f"MSoMeetingId{i:08d}", join_url=f"https://teams.microsoft.com/l/meetup-join/19%3ameeting_{i:010d}%40thread.v2/0?context=%7b%7d",
                    join_meeting_id=f"{3000000000 + i}", passcode="aB3cD4", dialin_url="https://dialin.teams.microsoft.com/abc",
                    conference_id=f"{100000 + i}", toll_number="+1 425-555-0100",
                    start_utc="2027-03-01T14:30:00Z", end_utc="2027-03-01T15:45:00Z", subject=f"CS{i % 300:03d}: Introduction",
                    options_url=f"https://teams.microsoft.com/meetingOptions/?organizerId=x&threadId={i}", toll_free_number=None)
    outcomes[(r, 0)] = RowOutcome(r, CREATED, f"bulkmeet-{i:08d}", m, 200, None, f"rid-{i}", 1)
sheet = Sheet(out.with_suffix(".in.xlsx"), "Fall", COLS, tuple(rows))
summary = RunSummary("s", str(out), "", "", n, 0, n, 0, 0, 0)
for suffix in (".xlsx", ".csv"):
    t0 = clock.process_time()
    w0 = clock.perf_counter()
    write_output(out.with_suffix(suffix), sheet, outcomes, summary, time_zone="America/Chicago")
    print(f"{n} lines {suffix}: {clock.process_time() - t0:.2f} CPU s, {clock.perf_counter() - w0:.2f} wall s, "
          f"{out.with_suffix(suffix).stat().st_size / 1e6:.1f} MB")
print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
