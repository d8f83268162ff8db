"""Contender: the script most admins write — a ``requests`` loop with a simple retry on 429.

Deliberately ordinary: one token from a plain POST, one Session, one row at a time, sleep for
Retry-After on a 429 (up to 5 tries), anything else is the row's final answer; an exception
(a dropped connection) fails the row and the loop goes on. Results go to a CSV.

``--deadline S`` stops taking new rows after S seconds, so the bench can time a slow contender on a
prefix of the schedule and project the rest instead of waiting many minutes (the report says so).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import requests


def utc(day: str, hhmm: str, tz: ZoneInfo) -> str:
    local = datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=tz)
    return local.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--schedule", required=True)
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--tenant", required=True)
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--secret-env", required=True)
    ap.add_argument("--time-zone", default="UTC")
    ap.add_argument("--results", required=True)
    ap.add_argument("--summary-json", required=True)
    ap.add_argument("--deadline", type=float, default=None)
    ap.add_argument("--concurrency", type=int, default=1, help="ignored: this script is sequential")
    args = ap.parse_args()
    started = time.monotonic()
    tz = ZoneInfo(args.time_zone)

    token = requests.post(
        f"{args.base_url}/{args.tenant}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "client_id": args.client_id,
              "client_secret": os.environ[args.secret_env],
              "scope": "https://graph.microsoft.com/.default"},
        verify=args.ca, timeout=30,
    ).json()["access_token"]
    session = requests.Session()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    with open(args.schedule, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    done = ok = failed = 0
    with open(args.results, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["CRN", "Date", "status", "meetingId", "joinWebUrl", "error"])
        for row in rows:
            if args.deadline is not None and time.monotonic() - started > args.deadline:
                break
            body = {
                "externalId": f"{row['CRN']}-{row['Date']}",
                "subject": f"{row['Course']}-{row['Section']}: {row['Title']}",
                "startDateTime": utc(row["Date"], row["Start"], tz),
                "endDateTime": utc(row["Date"], row["End"], tz),
            }
            url = f"{args.base_url}/v1.0/users/{row['Organizer']}/onlineMeetings/createOrGet"
            status, meeting, error = None, {}, ""
            try:
                for _ in range(5):
                    r = session.post(url, json=body, headers=headers, verify=args.ca, timeout=30)
                    if r.status_code == 429:
                        time.sleep(int(r.headers.get("Retry-After", "5")))
                        continue
                    break
                status = r.status_code
                if r.ok:
                    meeting = r.json()
                else:
                    error = r.text[:200]
            except requests.RequestException as exc:
                error = type(exc).__name__
            done += 1
            if status in (200, 201):
                ok += 1
                writer.writerow([row["CRN"], row["Date"], "ok", meeting.get("id"),
                                 meeting.get("joinWebUrl"), ""])
            else:
                failed += 1
                writer.writerow([row["CRN"], row["Date"], "failed", "", "", f"{status} {error}"])
    with open(args.summary_json, "w") as f:
        json.dump({"rows": len(rows), "rows_done": done, "ok": ok, "failed": failed,
                   "deadline_hit": done < len(rows)}, f)
    print(f"{done} of {len(rows)} rows: {ok} ok, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
