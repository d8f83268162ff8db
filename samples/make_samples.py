"""Write samples/schedule.xlsx and samples/schedule.csv: one spring term, the same rows in both;
and samples/registrar/ (a registrar-style export, see make_registrar.py).

Run from anywhere: ``python samples/make_samples.py [OUTPUT_DIR]`` (default: this folder). The
output is byte-for-byte deterministic, so tests can check the committed files are current.

The term (March-April 2027, America/Chicago) spans the switch to daylight saving time on
2027-03-14, so the same 9:00 AM class is 15:00 UTC before it and 14:00 UTC after it. Teachers and
students are the demo directory's (samples/directory.json):

* barbara.liskov has no application access policy in the demo tenant (403 on every row);
* frances.allen is unlicensed (404), one row;
* the last rows are deliberately wrong: a time "25:00", an end before the start, a malformed
  organizer e-mail, a missing organizer, and a repeat of an earlier session typed with stray
  spaces and capitals (a duplicate: same CRN, date and organizer);
* one fully blank row sits between two courses, as hand-edited sheets have.

In the .xlsx, dates and times are real Excel date/time cells, CRNs with leading zeros are text
cells and the other CRNs are numbers (as Excel stores what people type). The .csv is what Excel's
"CSV UTF-8" save writes: a BOM, CRLF line ends, dates as 3/1/2027 and times as 9:00 AM (one
course's times in 24-hour form, as registrar systems mix them).
"""
from __future__ import annotations

import csv
import io
import re
import sys
import zipfile
from datetime import date, datetime, time, timedelta
from pathlib import Path

HEADER = ["CRN", "Course", "Section", "Title", "Instructor Email", "Date", "Start Time", "End Time",
          "Students", "TA", "Room"]

T = "@school.example"
S = "@students.school.example"

# CRN, course, section, title, teacher, weekday (0 = Monday), start, end, students, TA, room
COURSES = [
    ("00417", "CS 101", "01", "Introduction to Programming", "ada.lovelace", 0, time(9, 0),
     time(10, 15), ["noor.haddad", "li.wei", "sofia.rossi", "kwame.mensah"], ["priya.nair"],
     "Babbage Hall 101"),
    ("20533", "MATH 221", "02", "Discrete Mathematics", "alan.turing", 1, time(13, 30),
     time(14, 45), ["ana.souza", "jonas.berg", "tomas.novak", "amara.okafor"], [],
     "Bletchley 204"),
    ("20871", "CS 240", "01", "Compilers and Languages", "grace.hopper", 2, time(10, 0),
     time(11, 50), ["mateo.garcia", "yuki.tanaka", "elena.petrova", "noor.haddad", "li.wei"],
     ["kwame.mensah", "sofia.rossi"], "Mark I Lab"),
    ("21104", "PHYS 150", "03", "Orbital Mechanics – Trajectories", "katherine.johnson", 3,
     time(15, 0), time(16, 15), ["priya.nair", "tomas.novak", "ana.souza"], [], "Langley 12"),
    ("09212", "CS 330", "01", "Algorithms & Shortest Paths", "edsger.dijkstra", 4, time(8, 30),
     time(9, 45), ["jonas.berg", "yuki.tanaka", "amara.okafor", "elena.petrova"], ["mateo.garcia"],
     "Eindhoven 3"),
    ("21560", "CS 350", "01", "Data Abstraction", "barbara.liskov", 1, time(11, 0), time(12, 15),
     ["sofia.rossi", "kwame.mensah", "li.wei"], [], "Hoare Room"),
]
FIRST_MONDAY = date(2027, 3, 1)
WEEKS = 7  # 2027-03-01 .. 2027-04-16: daylight saving time starts on Sunday 2027-03-14
TWENTY_FOUR_HOUR = {"MATH 221"}  # this course's times are typed as 13:30 in the CSV


def _students(names, role_note=None):
    cells = [n + S for n in names]
    if role_note:
        cells.append(role_note)
    return ";".join(cells)


def rows() -> list[list[object] | None]:
    """The sheet's data rows as Excel values (None = a fully blank row)."""
    out: list[list[object] | None] = []
    for crn, course, section, title, teacher, weekday, start, end, students, tas, room in COURSES:
        for week in range(WEEKS):
            day = FIRST_MONDAY + timedelta(days=7 * week + weekday)
            extra = None
            if course == "CS 240" and week == 3:
                extra = f"amara.okafor{S} (presenter)"  # a guest presenter for one session
            ta = "; ".join(n + S for n in tas) if (tas and week % 3 != 2) else None
            out.append([crn, course, section, title, teacher + T, day, start, end,
                        _students(students, extra), ta, room])
            if course == "CS 101" and week == 2:
                # the second week's session pasted again, with stray spaces and capitals
                out.append([f" {crn} ", course, section, title, " Ada.Lovelace@School.example",
                            FIRST_MONDAY + timedelta(days=7), start, end,
                            _students(students), tas[0] + S, room])
        if course == "CS 240":
            out.append(None)
    out.append(["21777", "CS 480", "01", "Optimizing Compilers", "frances.allen" + T,
                date(2027, 3, 18), time(9, 0), time(10, 15), _students(["elena.petrova", "noor.haddad"]),
                None, "Allen Seminar Room"])
    # Deliberately invalid rows.
    out.append(["00417", "CS 101", "01", "Review session", "ada.lovelace" + T, date(2027, 4, 19),
                "25:00", time(11, 0), _students(["noor.haddad"]), None, "Babbage Hall 101"])
    out.append(["20533", "MATH 221", "02", "Exam review", "alan.turing" + T, date(2027, 4, 20),
                time(14, 0), time(13, 0), _students(["ana.souza"]), None, "Bletchley 204"])
    out.append(["20871", "CS 240", "01", "Lab make-up", "grace.hopper.school.example",
                date(2027, 4, 21), time(10, 0), time(11, 0), _students(["mateo.garcia"]), None,
                "Mark I Lab"])
    out.append(["21104", "PHYS 150", "03", "Make-up lecture", None, date(2027, 4, 22), time(15, 0),
                time(16, 15), _students(["priya.nair"]), None, "Langley 12"])
    return out


def _xlsx_value(col: str, value: object) -> object:
    if col == "CRN" and isinstance(value, str) and value.isdigit() and not value.startswith("0"):
        return int(value)  # what Excel does with 20533 typed into a General cell
    return value


def write_xlsx(path: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = "Spring 2027"
    ws.append(HEADER)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for values in rows():
        if values is None:
            ws.append([])  # openpyxl skips nothing: this leaves the row blank
            continue
        ws.append([_xlsx_value(c, v) for c, v in zip(HEADER, values)])
    for row in ws.iter_rows(min_row=2):
        for cell in row:
            if isinstance(cell.value, datetime) or isinstance(cell.value, date):
                cell.number_format = "m/d/yyyy"
            elif isinstance(cell.value, time):
                cell.number_format = "h:mm AM/PM"
            elif HEADER[cell.column - 1] in ("CRN", "Section"):
                cell.number_format = "@" if isinstance(cell.value, str) else "0"
    for letter, width in zip("ABCDEFGHIJK", (8, 10, 8, 34, 36, 11, 11, 11, 80, 40, 20)):
        ws.column_dimensions[letter].width = width
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = ws.dimensions
    fixed = datetime(2027, 1, 4, 8, 0, 0)
    wb.properties.created = fixed
    wb.properties.modified = fixed
    wb.properties.creator = "bulkmeet samples/make_samples.py"
    wb.properties.lastModifiedBy = "bulkmeet"
    buf = io.BytesIO()
    wb.save(buf)
    path.write_bytes(_stable_zip(buf.getvalue()))


def _stable_zip(data: bytes) -> bytes:
    """Rewrite the archive with fixed timestamps so the same rows give the same bytes."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            stable = zipfile.ZipInfo(info.filename, date_time=(2027, 1, 4, 8, 0, 0))
            stable.compress_type = zipfile.ZIP_DEFLATED
            stable.external_attr = 0o644 << 16
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":  # openpyxl stamps the save time here
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>2027-01-04T08:00:00Z", data)
            dst.writestr(stable, data)
    return out.getvalue()


def _csv_text(col: str, value: object, course: str) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return f"{value.month}/{value.day}/{value.year}"
    if isinstance(value, time):
        if course in TWENTY_FOUR_HOUR:
            return f"{value.hour:02d}:{value.minute:02d}"
        hour = value.hour % 12 or 12
        return f"{hour}:{value.minute:02d} {'AM' if value.hour < 12 else 'PM'}"
    return str(value)


def write_csv(path: Path) -> None:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(HEADER)
    for values in rows():
        if values is None:
            writer.writerow([""] * len(HEADER))
            continue
        writer.writerow([_csv_text(c, v, values[1]) for c, v in zip(HEADER, values)])
    path.write_bytes(b"\xef\xbb\xbf" + buf.getvalue().encode("utf-8"))


def main(argv: list[str]) -> None:
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).parent
    out.mkdir(parents=True, exist_ok=True)
    write_xlsx(out / "schedule.xlsx")
    write_csv(out / "schedule.csv")
    print(f"wrote {out / 'schedule.xlsx'} and {out / 'schedule.csv'} ({len(rows())} rows)")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import make_registrar  # the registrar-export sample, beside this file

    written = make_registrar.write(out / "registrar")
    print("wrote " + ", ".join(str(p) for p in written))


if __name__ == "__main__":
    main(sys.argv)
