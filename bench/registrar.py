"""Scale of a registrar export: a term of 5,000 sections expanding to ~150,000 sessions.

    .venv/bin/python bench/registrar.py                # 5,000 sections (about 10 s)
    .venv/bin/python bench/registrar.py --sections 50  # toy size (the smoke test)

Writes a synthetic export (one row per meeting pattern, plus ARRANGED/online/cancelled rows that
[[skip]] rules drop, and lecture + lab sections), a staff directory of 1,200 people and a term
table, then times, in a fresh interpreter, what ``bulkmeet validate`` and a dry run do before
anything is sent: read the export, filter it, join the instructors to the directory (pandas) and
plan every session (patterns x term days, closures, DST, externalIds). Peak memory is that
interpreter's maximum resident set size. Target (issue 10): under 30 s and under 1 GiB. Prints
one JSON object and writes it to bench/registrar-results.json (``--results`` to change).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
DEFAULT_RESULTS = BENCH / "registrar-results.json"
LAST = ["Noonan", "Kim", "Garcia", "Okafor", "Tanaka", "Novak", "Rossi", "Haddad", "Berg", "Souza",
        "Petrova", "Mensah", "Nair", "Wei", "Lopez", "Smith", "Jones", "Brown", "Davis", "Miller"]
FIRST = [f"{a}{b}" for a in ("Al", "Be", "Ca", "Da", "El", "Fa", "Gi", "Ha", "Io", "Jo")
         for b in ("an", "ex", "ia", "on", "ur", "ys")]
# (days, sessions a week) weighted so the average section has about 30 sessions in a 15-week term
PATTERNS = [("MWF", 3), ("TR", 2), ("M W F", 3), ("TTh", 2), ("MTWRF", 5), ("W", 1), ("Mon/Wed", 2)]
WEIGHTS = [30, 34, 6, 6, 4, 12, 8]
TIMES = [("08:00 AM", "08:50 AM"), ("09:30 AM", "10:45 AM"), ("11:00 AM", "11:50 AM"),
         ("12:30 PM", "01:45 PM"), ("02:00 PM", "03:15 PM"), ("06:00 PM", "08:50 PM")]


def write_inputs(folder: Path, sections: int, seed: int = 10) -> dict[str, int]:
    rng = random.Random(seed)
    people = [(f"E{i:05d}", f"{LAST[i % len(LAST)]}, {FIRST[(i // len(LAST)) % len(FIRST)]}",
               f"staff{i:05d}@school.example") for i in range(1200)]
    with (folder / "staff.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Staff ID", "Name", "Email"])
        w.writerows(people)
    with (folder / "terms.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["code", "first_day", "last_day", "closures"])
        w.writerow(["1", "2027-01-19", "2027-05-07", "2027-03-15..2027-03-19"])
        w.writerow(["S1", "2027-01-19", "2027-03-12", ""])
        w.writerow(["S2A", "2027-03-22", "2027-05-07", ""])
    rows = skipped = 0
    with (folder / "export.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["CRN", "Subject", "Course Number", "Section", "Title", "Part of Term",
                    "Schedule Type", "Status", "Days", "Begin Time", "End Time", "Instructor"])
        for s in range(sections):
            crn = f"{20000 + s}"
            ptrm = rng.choices(["1", "S1", "S2A"], [80, 10, 10])[0]
            teachers = rng.sample(people, 2 if s % 9 == 0 else 1)
            cell = ";".join(t[1] if s % 3 else t[0] for t in teachers)  # names and staff IDs
            days = rng.choices([p for p, _ in PATTERNS], WEIGHTS)[0]
            begin, end = rng.choice(TIMES)
            base = [crn, "ACCT", f"{1000 + s % 3000}", f"{s % 7 + 1:03d}",
                    f"Course {s} &amp; Practice", ptrm]
            w.writerow(base + ["LEC", "Active", days, begin, end, cell])
            rows += 1
            if s % 10 == 0:  # a lab on Thursday afternoons: the same section, a second row
                w.writerow(base + ["LAB", "Active", "R", "03:30 PM", "05:20 PM", cell])
                rows += 1
            if s % 4 == 0:  # the exports' ARRANGED / online / cancelled rows
                kind = ("IND", "Active", "", "ARRANGED", "") if s % 8 else ("WEB", "Cancelled", "TR", "TBA", "TBA")
                w.writerow([f"{90000 + s}", *base[1:], *kind, cell])
                rows += 1
                skipped += 1
    return {"rows": rows, "skipped": skipped, "staff": len(people)}


CONFIG = """\
time_zone = "America/Chicago"
[auth]
mode = "app"
[mapping]
subject = "{Subject} {Course Number}-{Section}: {Title}"
keys = ["CRN"]
[pattern]
days = "Days"
start_time = "Begin Time"
end_time = "End Time"
meetings = "session"
[term]
column = "Part of Term"
table = "terms.csv"
closures = ["2027-04-02"]
[staff]
column = "Instructor"
directory = "staff.csv"
name_column = "Name"
id_column = "Staff ID"
upn_column = "Email"
[[skip]]
column = "Begin Time"
one_of = ["ARRANGED", "TBA"]
[[skip]]
column = "Status"
equals = "Cancelled"
"""

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from bulkmeet.config import load_config
from bulkmeet.pipeline import plan_schedule
cfg = load_config(sys.argv[1])
t1 = time.perf_counter()
sheet, plan = plan_schedule(__import__("pathlib").Path(sys.argv[2]), cfg)
t2 = time.perf_counter()
print(json.dumps({"import_and_config_s": round(t1 - t0, 2), "read_filter_join_plan_s": round(t2 - t1, 2),
                  "sessions": len(plan.requests), "invalid": len(plan.invalid),
                  "skipped": len(plan.skipped), "duplicates": len(plan.duplicates),
                  "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
"""


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", type=int, default=5000)
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bulkmeet-registrar-bench-") as tmp:
        folder = Path(tmp)
        made = write_inputs(folder, args.sections)
        (folder / "bulkmeet.toml").write_text(CONFIG)
        env = {**os.environ, "PYTHONPATH": str(BENCH.parent)}
        proc = subprocess.run([sys.executable, "-c", CHILD, str(folder / "bulkmeet.toml"),
                               str(folder / "export.csv")], capture_output=True, text=True, env=env,
                              timeout=600, check=False)
        if proc.returncode:
            raise SystemExit(f"bench/registrar.py: the planning child failed:\n{proc.stderr}")
        measured = json.loads(proc.stdout.strip().splitlines()[-1])
    result: dict[str, object] = {
        "scenario": "registrar export", "sections": args.sections, **made, **measured,
        "target": "read+filter+join+plan < 30 s and peak < 1024 MiB",
        "met": measured["read_filter_join_plan_s"] < 30 and measured["peak_rss_mib"] < 1024,
        "machine": f"{os.cpu_count()} CPU, Python {platform.python_version()}, {platform.platform()}",
    }
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
