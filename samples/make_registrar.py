"""Write samples/registrar/: a registrar-style export with every shape real exports have.

Called by ``samples/make_samples.py`` (``python samples/make_samples.py`` writes both samples);
deterministic, so tests can check the committed files are current. The data is synthetic.

``export.csv`` is one row per section *meeting pattern*, as Banner/PeopleSoft exports are: a days
column (``MWF``, ``TR``, ``M W F``, ``Mon/Wed``, ``TTh``, ``R``, ``S``), start and end times
(``09:30 AM``) and no dates; a part-of-term code (``1``, ``S1``, ``S2A``, blank) whose dates are
in ``terms.csv`` (with a spring-break week); instructors as ``Last, F`` / ``Last, First`` names,
several in one cell or none, looked up in ``staff.csv``; HTML entities and stray spaces in
titles. It has:

* a lecture + lab section (two rows, one CRN) and a section with two blocks a day;
* rows that are not scheduled classes: ``ARRANGED``/``TBA`` times, an online section, a
  cancelled one (``bulkmeet.toml`` skips them with [[skip]] rules);
* the switch to daylight saving time (2027-03-14, America/Chicago) inside the term;
* two deliberately bad rows: an instructor missing from the staff directory and one whose
  ``Last, F`` matches two people (so the demo exits 1 and shows what that looks like).

The teachers are the emulator's demo tenant's (samples/directory.json) that have an
application access policy, so ``make demo-registrar`` creates every valid meeting.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

EXPORT_HEADER = ["CRN", "Subject", "Course Number", "Section", "Title", "Part of Term",
                 "Schedule Type", "Status", "Days", "Begin Time", "End Time", "Instructor",
                 "Building", "Room"]

# CRN, subject, number, section, title, part of term, type, status, days, begin, end,
# instructor(s), building, room
EXPORT_ROWS: list[tuple[str, ...]] = [
    ("10001", "ACCT", "2301", "001", "Principles of Financial Accounting", "1", "LEC", "Active",
     "MWF", "09:00 AM", "09:50 AM", "Lovelace, A", "BUS", "110"),
    ("10002", "ACCT", "4350", "001", "Atg Measurement &amp; Disclosure", "1", "LEC", "Active",
     "TR", "12:30 PM", "01:45 PM", "Turing, Alan;Hopper, Grace", "BUS", "  204 "),
    ("10003", "BIOL", "1406", "002", "Biology for Science Majors  I", "1", "LEC", "Active",
     "M W F", "10:00 AM", "10:50 AM", "Johnson, K", "SCI", "101"),
    ("10003", "BIOL", "1406", "002", "Biology for Science Majors  I", "1", "LAB", "Active",
     "R", "02:00 PM", "04:50 PM", "Johnson, K", "SCI", "B12"),
    ("10004", "CHEM", "1411", "001", "General Chemistry I", "1", "LEC", "Active",
     "Mon/Wed", "08:00 AM", "08:50 AM", "Dijkstra, E", "SCI", "230"),
    ("10004", "CHEM", "1411", "001", "General Chemistry I", "1", "LEC", "Active",
     "Mon/Wed", "01:00 PM", "01:50 PM", "Dijkstra, E", "SCI", "230"),
    ("10005", "MATH", "2413", "003", "Calculus I", "S1", "LEC", "Active",
     "TTh", "09:30 AM", "10:45 AM", "Turing, A", "MTH", "12"),
    ("10006", "MATH", "2414", "001", "Calculus II", "S2A", "LEC", "Active",
     "MTWRF", "11:00 AM", "11:50 AM", "Hopper, G", "MTH", "14"),
    ("10007", "HIST", "1301", "010", "United States History I", "", "LEC", "Active",
     "S", "09:00 AM", "11:50 AM", "", "LIB", "2"),
    ("10008", "ENGL", "1301", "001", "Composition I", "1", "IND", "Active",
     "", "ARRANGED", "", "Lovelace, Ada", "", ""),
    ("10009", "ENGL", "1302", "002", "Composition II", "1", "WEB", "Active",
     "", "TBA", "TBA", "Hopper, Grace", "ONLINE", ""),
    ("10010", "PHYS", "1401", "001", "College Physics I", "1", "LEC", "Cancelled",
     "TR", "03:00 PM", "04:15 PM", "Johnson, Katherine", "SCI", "140"),
    ("10011", "PSYC", "2301", "001", "General Psychology", "1", "LEC", "Active",
     "MWF", "11:00 AM", "11:50 AM", "Noonan, J", "SOC", "100"),
    ("10012", "SPCH", "1315", "004", "Public Speaking", "1", "LEC", "Active",
     "TR", "08:00 AM", "09:15 AM", "Kim, M", "COM", "5"),
]

STAFF_HEADER = ["Staff ID", "Name", "Email", "Department"]
STAFF_ROWS = [
    ("E0001", "Lovelace, Ada", "ada.lovelace@school.example", "Accounting"),
    ("E0002", "Turing, Alan", "alan.turing@school.example", "Mathematics"),
    ("E0003", "Hopper, Grace", "grace.hopper@school.example", "Computing"),
    ("E0004", "Johnson, Katherine", "katherine.johnson@school.example", "Biology"),
    ("E0005", "Dijkstra, Edsger", "edsger.dijkstra@school.example", "Chemistry"),
    ("E0006", "Kim, Min", "min.kim@school.example", "Communication"),
    ("E0007", "Kim, Mark", "mark.kim@school.example", "Communication"),
]

TERMS_HEADER = ["code", "name", "first_day", "last_day", "closures"]
TERMS_ROWS = [
    ("1", "Full term", "2027-01-19", "2027-05-07", "2027-03-15..2027-03-19"),
    ("S1", "First 8 weeks", "2027-01-19", "2027-03-12", ""),
    ("S2A", "Second 7 weeks", "2027-03-22", "2027-05-07", ""),
    ("", "No part of term given: the full term", "2027-01-19", "2027-05-07",
     "2027-03-15..2027-03-19"),
]


def _csv(header: list[str], rows: list[tuple[str, ...]]) -> bytes:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return b"\xef\xbb\xbf" + buf.getvalue().encode("utf-8")


def write(out: Path) -> list[Path]:
    """Write the export, the staff directory and the term table into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    files = {"export.csv": _csv(EXPORT_HEADER, EXPORT_ROWS),
             "staff.csv": _csv(STAFF_HEADER, STAFF_ROWS),
             "terms.csv": _csv(TERMS_HEADER, TERMS_ROWS)}
    for name, data in files.items():
        (out / name).write_bytes(data)
    return [out / n for n in files]
