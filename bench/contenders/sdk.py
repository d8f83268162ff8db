"""Contender: the official Microsoft Graph Python SDK (msgraph-sdk), used as its docs show.

``GraphServiceClient`` over ``GraphRequestAdapter`` with the default middleware pipeline
(``GraphClientFactory.create_with_default_middleware``: its RetryHandler retries 429/503/504 three
times, honouring Retry-After). The only changes are the ones needed to reach the emulator: the base
URL, an httpx client that trusts the emulator's CA, and a tiny ``AccessTokenProvider`` that gets
the app token with one plain POST (only the Graph calls are compared). Rows are sent with
``asyncio.gather`` bounded by a semaphore at the bench's concurrency. An exception from the SDK
(ODataError after its retries, a dropped connection) fails the row.
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import ssl
import sys
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.users.item.online_meetings.create_or_get.create_or_get_post_request_body import (  # noqa: E501
    CreateOrGetPostRequestBody,
)
from msgraph_core import GraphClientFactory


class EmulatorTokenProvider(AccessTokenProvider):
    """Client-credentials token from the emulator's token endpoint, fetched once and reused."""

    def __init__(self, token_url: str, form: dict[str, str], verify: ssl.SSLContext,
                 host: str) -> None:
        self.token_url = token_url
        self.form = form
        self.verify = verify
        self.validator = AllowedHostsValidator([host])
        self.token: str | None = None
        self.lock = asyncio.Lock()

    async def get_authorization_token(self, uri: str,
                                      additional_authentication_context: dict[str, Any] | None = None
                                      ) -> str:
        async with self.lock:
            if self.token is None:
                async with httpx.AsyncClient(verify=self.verify) as client:
                    r = await client.post(self.token_url, data=self.form)
                    r.raise_for_status()
                    self.token = r.json()["access_token"]
        return self.token

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return self.validator


def local(day: str, hhmm: str, tz: ZoneInfo) -> datetime:
    return datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=tz).astimezone(UTC)


async def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    tz = ZoneInfo(args.time_zone)
    verify = ssl.create_default_context(cafile=args.ca)
    host = urlsplit(args.base_url).netloc
    tokens = EmulatorTokenProvider(
        f"{args.base_url}/{args.tenant}/oauth2/v2.0/token",
        {"grant_type": "client_credentials", "client_id": args.client_id,
         "client_secret": os.environ[args.secret_env],
         "scope": "https://graph.microsoft.com/.default"},
        verify, host,
    )
    auth_provider = BaseBearerTokenAuthenticationProvider(tokens)
    http_client = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(verify=verify, timeout=httpx.Timeout(100.0, connect=30.0)))
    adapter = GraphRequestAdapter(auth_provider, http_client)
    adapter.base_url = f"{args.base_url}/v1.0"
    graph = GraphServiceClient(request_adapter=adapter)

    with open(args.schedule, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    semaphore = asyncio.Semaphore(args.concurrency)

    async def one(row: dict[str, str]) -> tuple[dict[str, str], str, Any]:
        async with semaphore:
            if args.deadline is not None and time.monotonic() - started > args.deadline:
                return row, "skipped", None
            body = CreateOrGetPostRequestBody(
                external_id=f"{row['CRN']}-{row['Date']}",
                subject=f"{row['Course']}-{row['Section']}: {row['Title']}",
                start_date_time=local(row["Date"], row["Start"], tz),
                end_date_time=local(row["Date"], row["End"], tz),
            )
            try:
                meeting = await graph.users.by_user_id(row["Organizer"]) \
                    .online_meetings.create_or_get.post(body)
            except Exception as exc:  # ODataError, httpx errors: the row failed
                code = getattr(exc, "response_status_code", None)
                return row, "failed", f"{code or ''} {type(exc).__name__}"
            return row, "ok", meeting

    results = await asyncio.gather(*(one(r) for r in rows))
    ok = failed = done = 0
    with open(args.results, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["CRN", "Date", "status", "meetingId", "joinWebUrl", "error"])
        for row, status, value in results:
            if status == "skipped":
                continue
            done += 1
            if status == "ok":
                ok += 1
                writer.writerow([row["CRN"], row["Date"], "ok", getattr(value, "id", ""),
                                 getattr(value, "join_web_url", ""), ""])
            else:
                failed += 1
                writer.writerow([row["CRN"], row["Date"], "failed", "", "", value])
    await http_client.aclose()
    with open(args.summary_json, "w") as f:
        json.dump({"rows": len(rows), "rows_done": done, "ok": ok, "failed": failed,
                   "deadline_hit": done < len(rows)}, f)
    print(f"{done} of {len(rows)} rows: {ok} ok, {failed} failed")
    return 0 if failed == 0 else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--schedule", required=True)
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--tenant", required=True)
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--secret-env", required=True)
    ap.add_argument("--time-zone", default="UTC")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--results", required=True)
    ap.add_argument("--summary-json", required=True)
    ap.add_argument("--deadline", type=float, default=None)
    return asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
