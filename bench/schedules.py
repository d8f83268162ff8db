"""Inputs the benchmarks share: the emulated tenant, generated schedules, bulkmeet's config.

Every contender in a scenario reads the same schedule file. The tenant grants the app a global
access policy and has a handful of organizers, so every row is a valid createOrGet and the bench
measures sending, not error handling. Schedules are deterministic (same rows for the same size).
"""
from __future__ import annotations

import csv
import json
import uuid
from datetime import date, time, timedelta
from pathlib import Path

NAMESPACE = uuid.UUID("7d1c5b0e-3b0a-4a4e-9d3e-62656e636821")  # "bench!" — ids are stable
TENANT_ID = str(uuid.uuid5(NAMESPACE, "tenant"))
CLIENT_ID = str(uuid.uuid5(NAMESPACE, "app"))
# Only the emulator knows this app; it is no secret anywhere else.
CLIENT_SECRET = "bench-secret-for-the-local-emulator-only"
SECRET_ENV = "BULKMEET_BENCH_SECRET"
TIME_ZONE = "America/Chicago"
ORGANIZER_COUNT = 24

COLUMNS = ("CRN", "Course", "Section", "Title", "Organizer", "Date", "Start", "End", "Room",
           "Campus", "Notes")
SUBJECT_TEMPLATE = "{Course}-{Section}: {Title}"
SESSIONS_PER_SECTION = 120  # (CRN, Date) is unique: one section meets on 120 different days
FIRST_DAY = date(2026, 1, 12)  # the term crosses the March DST change in America/Chicago
TITLES = ("Data Structures", "Linear Algebra", "Organic Chemistry", "World History",
          "Microeconomics", "Operating Systems", "Statistics", "Creative Writing")


def organizers() -> list[dict[str, str]]:
    return [{"id": str(uuid.uuid5(NAMESPACE, f"organizer-{i}")),
             "userPrincipalName": f"teacher{i:02d}@bench.example",
             "displayName": f"Teacher {i:02d}"} for i in range(ORGANIZER_COUNT)]


def write_directory(path: Path) -> Path:
    """The emulator's tenant for the bench: one app with a global access policy."""
    data = {"tenants": [{
        "id": TENANT_ID,
        "displayName": "bulkmeet bench tenant",
        "users": organizers(),
        "apps": [{
            "clientId": CLIENT_ID,
            "displayName": "bulkmeet bench app",
            "secret": CLIENT_SECRET,
            "certificatePem": None,
            "roles": ["OnlineMeetings.ReadWrite.All", "User.Read.All"],
            "accessPolicy": "global",
        }],
    }]}
    path.write_text(json.dumps(data, indent=1))
    return path


def rows(n: int):
    """Row i as Python values: dates and times as date/time (xlsx cells) — csv formats them."""
    orgs = [o["id"] for o in organizers()]
    for i in range(n):
        section = i // SESSIONS_PER_SECTION
        day = FIRST_DAY + timedelta(days=i % SESSIONS_PER_SECTION)
        hour = 8 + (section % 9)
        yield (
            f"{10000 + section:05d}",
            f"CS{100 + section % 400}",
            f"{section % 7 + 1:03d}",
            TITLES[section % len(TITLES)],
            orgs[section % len(orgs)],
            day,
            time(hour, 0),
            time(hour + 1, 15),
            f"Hall {section % 30 + 1}",
            "Main",
            "",
        )


def write_csv(path: Path, n: int) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for r in rows(n):
            w.writerow([*r[:5], r[5].isoformat(), r[6].strftime("%H:%M"), r[7].strftime("%H:%M"),
                        *r[8:]])
    return path


def write_xlsx(path: Path, n: int) -> Path:
    """Real Excel date and time cells, as a registrar's export has them (write-only: fast, small)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("Schedule")
    ws.append(list(COLUMNS))
    for r in rows(n):
        d = WriteOnlyCell(ws, value=r[5])
        d.number_format = "yyyy-mm-dd"
        s = WriteOnlyCell(ws, value=r[6])
        s.number_format = "hh:mm"
        e = WriteOnlyCell(ws, value=r[7])
        e.number_format = "hh:mm"
        ws.append([*r[:5], d, s, e, *r[8:]])
    wb.save(path)
    return path


def write_schedule(path: Path, n: int) -> Path:
    return write_xlsx(path, n) if path.suffix == ".xlsx" else write_csv(path, n)


def write_config(path: Path, *, base_url: str, ca_path: str | None, concurrency: int | None,
                 max_concurrency: int | None = None, batch: bool = False) -> Path:
    """bulkmeet's TOML for the bench tenant, as a user would write it (keys = CRN + Date).

    ``concurrency`` None leaves [run] at bulkmeet's defaults (the "unknown limit" scenario);
    ``max_concurrency`` pins the adaptive window's ceiling (fixed-concurrency scenarios set it to
    the contenders' concurrency, so everyone runs with the same number of slots).
    """
    ca_line = f"ca_bundle = {json.dumps(ca_path)}\n" if ca_path else ""
    run = "".join([f"concurrency = {concurrency}\n" if concurrency else "",
                   f"max_concurrency = {max_concurrency}\n" if max_concurrency else "",
                   "batch = true\n" if batch else ""])
    path.write_text(f"""\
# Written by bench/run.py for one benchmark run.
[graph]
base_url = {json.dumps(base_url)}
api_version = "v1.0"
{ca_line}
[auth]
mode = "app"
tenant_id = "{TENANT_ID}"
client_id = "{CLIENT_ID}"
authority_host = {json.dumps(base_url)}
client_secret_env = "{SECRET_ENV}"

[mapping]
organizer = "Organizer"
subject = "{SUBJECT_TEMPLATE}"
date = "Date"
start_time = "Start"
end_time = "End"
time_zone = "{TIME_ZONE}"
keys = ["CRN", "Date"]

[run]
{run}
# The files for people (calendars, handouts, HTML report) are not what the bench compares: the
# other contenders write none. Their cost is measured on its own (bench/README.md).
[publish]
enabled = false
""")
    return path
