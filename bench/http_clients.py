"""HTTP clients alone, against the emulator: the CPU one createOrGet costs the client, and the rate
8 threads reach, for requests, urllib3, http.client and bulkmeet's ``http11``.

Usage: .venv/bin/python bench/http_clients.py [N]   (N requests per client and mode; 3000)

Why it exists: bench scenario 4 (client overhead) found bulkmeet bound by one core, and this
separates the HTTP client's share from the rest of a run. The emulator runs in its own process
(``harness.EmulatorProcess``, as in every scenario), with no latency; each request is a real
createOrGet over verified TLS on one keep-alive connection per thread, with the headers bulkmeet
sends. CPU is this process's (``time.process_time``), so the emulator's share is not in it.
"""
from __future__ import annotations

import http.client
import json
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory

import requests
import urllib3

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import harness, schedules  # noqa: E402
from bulkmeet.http11 import Http11Pool  # noqa: E402

Send = Callable[[str, bytes, dict[str, str]], tuple[int, bytes]]


def clients(host: str, port: int, ca: str) -> dict[str, Callable[[], Send]]:
    """name -> a factory of one thread's sender (status, body) = send(path, body, headers)."""
    base = f"https://{host}:{port}"
    pm = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=ca, maxsize=16)
    u3 = pm.connection_from_url(base)
    timeout = urllib3.Timeout(connect=10, read=60)
    lean = Http11Pool("https", host, port, context=ssl.create_default_context(cafile=ca),
                      connect_timeout=10, read_timeout=60, maxsize=16)
    session = requests.Session()
    session.trust_env = False
    session.mount("https://", requests.adapters.HTTPAdapter(pool_maxsize=16))

    def with_requests() -> Send:
        def send(path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
            r = session.post(base + path, data=body, headers=headers, verify=ca, timeout=60)
            return r.status_code, r.content
        return send

    def with_urllib3() -> Send:
        def send(path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
            r = u3.urlopen("POST", path, body=body, headers=headers, timeout=timeout,
                           retries=False, redirect=False)
            return r.status, r.data
        return send

    def with_http_client() -> Send:
        conn = http.client.HTTPSConnection(host, port, context=ssl.create_default_context(
            cafile=ca), timeout=60)

        def send(path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
            conn.request("POST", path, body=body, headers=headers)
            r = conn.getresponse()
            return r.status, r.read()
        return send

    def with_http11() -> Send:
        def send(path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
            a = lean.request("POST", path, headers, body)
            return a.status, a.body
        return send

    return {"requests": with_requests, "urllib3": with_urllib3, "http.client": with_http_client,
            "bulkmeet http11": with_http11}


def token(base: str, ca: str) -> str:
    s = requests.Session()
    s.trust_env = False
    r = s.post(f"{base}/{schedules.TENANT_ID}/oauth2/v2.0/token", verify=ca, timeout=60, data={
        "grant_type": "client_credentials", "client_id": schedules.CLIENT_ID,
        "client_secret": schedules.CLIENT_SECRET, "scope": "https://graph.microsoft.com/.default"})
    r.raise_for_status()
    return str(r.json()["access_token"])


def drive(make: Callable[[], Send], n: int, threads: int, tag: str, bearer: str,
          organizers: list[str]) -> tuple[float, float]:
    """(client CPU ms per request, requests per second) for n createOrGet over ``threads``."""
    def work(k: int) -> None:
        send = make()
        for i in range(k, n, threads):
            body = json.dumps({"startDateTime": "2027-01-11T15:00:00Z",
                               "endDateTime": "2027-01-11T16:00:00Z", "subject": "bench",
                               "externalId": f"{tag}-{i}"}, separators=(",", ":")).encode()
            status, raw = send(
                f"/v1.0/users/{organizers[i % len(organizers)]}/onlineMeetings/createOrGet", body,
                {"Authorization": f"Bearer {bearer}", "client-request-id": str(uuid.uuid4()),
                 "Accept": "application/json", "Content-Type": "application/json"})
            if status not in (200, 201):
                raise SystemExit(f"{tag}: HTTP {status}: {raw[:200]!r}")
            json.loads(raw)

    cpu, wall = time.process_time(), time.perf_counter()
    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return 1000 * cpu / n, n / wall


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    with TemporaryDirectory() as tmp:
        work = Path(tmp)
        directory = schedules.write_directory(work / "directory.json")
        with harness.EmulatorProcess(work, directory, harness.EmulatorSettings()) as emu:
            host, port = "127.0.0.1", int(emu.base_url.rsplit(":", 1)[1])
            bearer = token(emu.base_url, emu.ca_path)
            organizers = [o["id"] for o in schedules.organizers()]
            made = clients(host, port, emu.ca_path)
            print(f"{n} createOrGet per client and mode, emulator without latency, "
                  f"{harness.machine()['cpu_count']} CPU")
            print(f"{'client':<16} {'1 thread: CPU ms/req':>21} {'req/s':>7} "
                  f"{'8 threads: CPU ms/req':>22} {'req/s':>7}")
            rows = {}
            for name, make in made.items():
                drive(make, 50, 1, f"warm-{name}-{time.time()}", bearer, organizers)
                one = drive(make, n, 1, f"one-{name}-{time.time()}", bearer, organizers)
                many = drive(make, n, 8, f"many-{name}-{time.time()}", bearer, organizers)
                rows[name] = (one, many)
                print(f"{name:<16} {one[0]:>21.3f} {one[1]:>7.0f} {many[0]:>22.3f} "
                      f"{many[1]:>7.0f}")
            ours = rows["bulkmeet http11"]
            for name, (one, many) in rows.items():
                if name != "bulkmeet http11":
                    print(f"  {name}: {one[0] / ours[0][0]:.2f}x http11's CPU per request "
                          f"(1 thread); with 8 threads {many[1] / ours[1][1]:.2f}x its rate")


if __name__ == "__main__":
    main()
