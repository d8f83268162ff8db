"""How many createOrGet requests/second one emulator process serves over keep-alive TLS.

The emulator must never be the bottleneck of a bulkmeet benchmark. This starts it exactly as the
benchmarks do (``python -m bulkmeet.emulator`` in its own process, waiting for --ready-file),
takes one app token, then drives it with client processes, each running a few threads with one
persistent ``requests.Session`` per thread, every request a createOrGet for a new externalId.

It prints the achieved req/s and the emulator's own CPU time per request. On a small machine the
clients share the CPUs with the emulator, so the achieved rate is a lower bound on what the
emulator can serve; ``1 / (emulator CPU per request)`` estimates its ceiling on one core.

    .venv/bin/python bench/emulator_throughput.py [--seconds 5] [--processes 2] [--threads 4]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests
from requests.adapters import HTTPAdapter

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "bulkmeet" / "emulator" / "demo_directory.json"


def _client_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def _session(ca: str) -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # loopback: no proxies, and REQUESTS_CA_BUNDLE must not override verify
    s.verify = ca
    s.mount("https://", HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0))
    return s


def _worker(args: tuple) -> tuple[int, int, float]:
    """One client process: ``threads`` threads, each with its own keep-alive session."""
    import threading

    base, ca, token, organizers, seconds, threads, wid, start_at, existing, client = args
    counts = [0] * threads
    errors = [0] * threads

    def run_http(t: int) -> None:
        """The same calls over http.client: a lighter client, to show the emulator's headroom."""
        import http.client
        import ssl
        from urllib.parse import urlsplit

        parts = urlsplit(base)
        ctx = ssl.create_default_context(cafile=ca)
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, context=ctx, timeout=30)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        paths = [f"/v1.0/users/{o}/onlineMeetings/createOrGet" for o in organizers]
        n = 0
        while time.time() < start_at:
            time.sleep(0.001)
        end = start_at + seconds
        while time.time() < end:
            ext = f"bench-{wid}-{t}-{n % 50}" if existing else f"bench-{wid}-{t}-{n}"
            body = json.dumps({"externalId": ext, "subject": "Throughput"})
            conn.request("POST", paths[n % len(paths)], body=body, headers=headers)
            r = conn.getresponse()
            r.read()
            if r.status in (200, 201):
                counts[t] += 1
            else:
                errors[t] += 1
            n += 1
        conn.close()

    def run(t: int) -> None:
        s = _session(ca)
        headers = {"Authorization": f"Bearer {token}"}
        urls = [f"{base}/v1.0/users/{o}/onlineMeetings/createOrGet" for o in organizers]
        n = 0
        while time.time() < start_at:
            time.sleep(0.001)
        end = start_at + seconds
        while time.time() < end:
            ext = f"bench-{wid}-{t}-{n % 50}" if existing else f"bench-{wid}-{t}-{n}"
            body = {"externalId": ext, "subject": "Throughput"}
            r = s.post(urls[n % len(urls)], json=body, headers=headers, timeout=30)
            if r.status_code in (200, 201):
                counts[t] += 1
            else:
                errors[t] += 1
            n += 1
        s.close()

    target = run_http if client == "http" else run
    pool = [threading.Thread(target=target, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    return sum(counts), sum(errors), seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--processes", type=int, default=2, help="client processes")
    ap.add_argument("--threads", type=int, default=4, help="threads (sessions) per client process")
    ap.add_argument("--existing", action="store_true",
                    help="repeat 50 externalIds per thread (the 200 path) instead of new meetings")
    ap.add_argument("--client", choices=("requests", "http"), default="requests",
                    help="requests.Session per thread (default, as bulkmeet uses) or the lighter "
                         "http.client, which leaves more CPU to the emulator on a small machine")
    ap.add_argument("--state", action="store_true",
                    help="run the emulator with --state (every write journalled and fsynced)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    opts = ap.parse_args()

    directory = json.loads(DEMO.read_text())
    tenant = directory["tenants"][0]
    app = tenant["apps"][0]
    organizers = app["accessPolicy"]

    with tempfile.TemporaryDirectory(prefix="bulkmeet-bench-") as tmp:
        ready = Path(tmp) / "ready.json"
        log = open(Path(tmp) / "emulator.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "bulkmeet.emulator", "--port", "0", "--ready-file", str(ready),
             "--meeting-cap", "0",  # a throughput run makes more than 2,000 per organizer
             *(["--state", str(Path(tmp) / "state.json")] if opts.state else [])],
            cwd=REPO, env=_client_env(), stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while not ready.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    print("the emulator did not start:", (Path(tmp) / "emulator.log").read_text())
                    return 1
                time.sleep(0.05)
            info = json.loads(ready.read_text())
            base, ca = info["base_url"], info["ca_path"]
            s = _session(ca)
            r = s.post(f"{base}/{tenant['id']}/oauth2/v2.0/token", data={
                "grant_type": "client_credentials", "client_id": app["clientId"],
                "client_secret": app["secret"], "scope": "https://graph.microsoft.com/.default"})
            r.raise_for_status()
            token = r.json()["access_token"]
            # Warm up: TLS handshakes and the token cache are not what is measured.
            for i in range(50):
                s.post(f"{base}/v1.0/users/{organizers[0]}/onlineMeetings/createOrGet",
                       json={"externalId": f"warm-{i}"}, headers={"Authorization": f"Bearer {token}"})
            emu = psutil.Process(proc.pid)
            cpu0 = sum(emu.cpu_times()[:2])
            before = s.get(f"{base}/_emulator/stats").json()
            start_at = time.time() + 1.0
            jobs = [(base, ca, token, organizers, opts.seconds, opts.threads, w, start_at,
                     opts.existing, opts.client)
                    for w in range(opts.processes)]
            ctx = mp.get_context("spawn")
            with ctx.Pool(opts.processes) as pool:
                results = pool.map(_worker, jobs)
            cpu1 = sum(emu.cpu_times()[:2])
            after = s.get(f"{base}/_emulator/stats").json()
            s.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()

    ok = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    served = max(after["requests"] - before["requests"], ok + errors)  # /_emulator is not counted
    rate = ok / opts.seconds
    cpu_us = (cpu1 - cpu0) / max(served, 1) * 1e6
    result = {
        "clients": f"{opts.processes} processes x {opts.threads} threads ({opts.client})",
        "state": opts.state,
        "journal_fsyncs": after.get("journal_fsyncs", 0) - before.get("journal_fsyncs", 0),
        "seconds": opts.seconds,
        "createOrGet_ok": ok,
        "errors": errors,
        "req_per_s": round(rate, 1),
        "emulator_cpu_us_per_request": round(cpu_us, 1),
        "emulator_ceiling_req_per_s_per_core": round(1e6 / cpu_us) if cpu_us else None,
        "in_flight_peak": after.get("in_flight_peak"),
        "cpus": os.cpu_count(),
    }
    if opts.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"createOrGet over keep-alive TLS: {rate:,.0f} req/s "
              f"({ok} ok, {errors} errors in {opts.seconds:g} s; {result['clients']})")
        print(f"emulator CPU per request: {cpu_us:.0f} us -> ~{result['emulator_ceiling_req_per_s_per_core']:,} "
              f"req/s per core if the clients did not share the machine ({os.cpu_count()} CPUs)")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
