"""Process plumbing for the benchmarks: an emulator in its own process, and measured subprocesses.

Why every piece runs in its own process: the emulator must not share a GIL with the client it is
timing, and each contender's peak memory and CPU time must be its own. CPU seconds come from
``getrusage(RUSAGE_CHILDREN)`` deltas around one reaped child (exact, no sampling); peak RSS from
polling the contender's process tree with psutil (the kernel keeps no per-child peak we could read
back without a wrapper, and ``ru_maxrss`` of children is a maximum over *all* children reaped so far).
"""
from __future__ import annotations

import json
import os
import platform
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import requests

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# The variables that would let requests override the CA a client was told to trust (see design.md).
CA_OVERRIDES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


class BenchError(RuntimeError):
    """A benchmark could not run (emulator did not start, a contender crashed)."""


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment every child gets: no CA override, no proxy for loopback, no progress bars."""
    env = {k: v for k, v in os.environ.items() if k not in CA_OVERRIDES}
    no_proxy = ",".join(filter(None, [env.get("NO_PROXY"), "127.0.0.1", "localhost"]))
    env["NO_PROXY"] = env["no_proxy"] = no_proxy
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if extra:
        env.update(extra)
    return env


def machine() -> dict[str, Any]:
    """What the table's header says about where it ran; numbers mean little without it."""
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


# --------------------------------------------------------------------------- the emulator


@dataclass(frozen=True)
class EmulatorSettings:
    """The emulator as real Graph behaves by default: a hidden limit answers 429 + Retry-After
    and nothing else (no RateLimit-* headers unless ``ratelimit_headers``)."""

    latency_ms: tuple[float, float] = (0.0, 0.0)
    rate_limit: float | None = None  # hidden requests/s per app (token bucket, one second's burst)
    fault_rate: float = 0.0
    seed: int = 1
    stall_s: float | None = None  # the emulator's default (35 s) unless set
    ratelimit_headers: bool = False  # SharePoint-style RateLimit-* past 80% of the budget
    per_organizer_rate: float | None = None

    def argv(self) -> list[str]:
        lo, hi = self.latency_ms
        args = ["--latency-ms", f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}", "--seed", str(self.seed)]
        if self.rate_limit:
            args += ["--rate-limit", f"{self.rate_limit:g}"]
        if self.ratelimit_headers:
            args.append("--ratelimit-headers")
        if self.per_organizer_rate:
            args += ["--per-organizer-rate", f"{self.per_organizer_rate:g}"]
        if self.fault_rate:
            args += ["--fault-rate", f"{self.fault_rate:g}"]
        if self.stall_s is not None:
            args += ["--stall-seconds", f"{self.stall_s:g}"]
        return args


class EmulatorProcess:
    """``python -m bulkmeet.emulator`` in a subprocess; started on enter, SIGTERMed on exit."""

    def __init__(self, workdir: Path, directory: Path, settings: EmulatorSettings,
                 *, name: str = "emulator", start_timeout: float = 60.0) -> None:
        self.workdir = workdir
        self.directory = directory
        self.settings = settings
        self.name = name
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.base_url = ""
        self.ca_path = ""
        self._http = requests.Session()
        self._http.trust_env = False  # loopback only; no proxy, no REQUESTS_CA_BUNDLE override

    def __enter__(self) -> EmulatorProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        ready = self.workdir / f"{self.name}.ready.json"
        ready.unlink(missing_ok=True)
        self.log_path = self.workdir / f"{self.name}.log"
        cmd = [PYTHON, "-m", "bulkmeet.emulator", "--host", "127.0.0.1", "--port", "0",
               "--ready-file", str(ready), "--directory", str(self.directory),
               "--ca-out", str(self.workdir / f"{self.name}.ca.pem"), *self.settings.argv()]
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=child_env(), stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + self.start_timeout
        while True:
            if ready.exists():
                try:
                    info = json.loads(ready.read_text())
                    self.base_url = info["base_url"].rstrip("/")
                    self.ca_path = info["ca_path"]
                    break
                except (ValueError, KeyError):
                    pass  # written atomically per contract, but be lenient
            if self.proc.poll() is not None:
                raise BenchError(f"the emulator exited with status {self.proc.returncode} before "
                                 f"it was ready: {tail(self.log_path)}")
            if time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise BenchError(f"the emulator was not ready after {self.start_timeout:.0f} s: "
                                 f"{tail(self.log_path)}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def _get(self, path: str) -> Any:
        r = self._http.get(self.base_url + path, verify=self.ca_path, timeout=60)
        r.raise_for_status()
        return r.json()

    def stats(self) -> dict[str, Any]:
        return self._get("/_emulator/stats")

    def meetings(self) -> list[dict[str, Any]]:
        data = self._get("/_emulator/meetings")
        if isinstance(data, dict):  # tolerate {"value": [...]} as well as a bare list
            data = data.get("value") or data.get("meetings") or []
        return list(data)


def tail(path: Path | str, chars: int = 600) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no output)"
    text = text.strip()
    return ("..." + text[-chars:]) if len(text) > chars else (text or "(no output)")


# --------------------------------------------------------------------------- emulator counters

IDENTITY_MARKERS = ("/oauth2/", "/.well-known/", "/discovery/", "/_emulator")


def _is_graph_path(key: str) -> bool:
    path = key.split(" ", 1)[-1]
    if any(m in path for m in IDENTITY_MARKERS):
        return False
    if path.endswith("/$batch"):  # its items are counted under their own routes
        return False
    return path.startswith("/v1.0/") or path.startswith("/beta/")


def graph_counts(stats: Mapping[str, Any]) -> tuple[int, int]:
    """(Graph requests, 429 answers) from the emulator's stats, identity traffic left out.

    Only Graph calls are compared between contenders: how each one gets its token differs by
    design (msal, a plain POST, a credential object) and is not what the bench measures.
    """
    by_path = stats.get("by_path") or {}
    total = throttled = 0
    if by_path:
        for key, statuses in by_path.items():
            if not _is_graph_path(str(key)) or not isinstance(statuses, Mapping):
                continue
            for status, n in statuses.items():
                total += int(n)
                if str(status) == "429":
                    throttled += int(n)
        return total, throttled
    total = int(stats.get("requests", 0)) - int(stats.get("token_requests", 0))
    return total, int(stats.get("throttled", 0))


def diff_counts(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[int, int]:
    b_total, b_429 = graph_counts(before)
    a_total, a_429 = graph_counts(after)
    return a_total - b_total, a_429 - b_429


def fault_counts(stats: Mapping[str, Any]) -> dict[str, int]:
    faults = stats.get("faults") or {}
    if not isinstance(faults, Mapping):
        return {}
    out: dict[str, int] = {}
    for kind, n in faults.items():
        if isinstance(n, (int, float)):
            out[str(kind)] = int(n)
    return out


# --------------------------------------------------------------------------- measured children


@dataclass
class Measured:
    """One contender process: how long, how much CPU, how much memory, how it ended."""

    argv: Sequence[str]
    exit_code: int | None
    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    timed_out: bool = False
    stdout_path: Path | None = None
    stderr_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def stderr_tail(self) -> str:
        return tail(self.stderr_path) if self.stderr_path else ""


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def measure(argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, log_prefix: Path,
            timeout: float | None = None, poll_s: float = 0.02) -> Measured:
    """Run ``argv`` to completion; wall time, CPU seconds (user+sys, children included) and the
    peak RSS of its process tree.

    Only one child is reaped between the two getrusage calls (the emulator is reaped later), so
    the delta is this contender's CPU alone.
    """
    out_path = Path(f"{log_prefix}.stdout")
    err_path = Path(f"{log_prefix}.stderr")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(env), stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        peak = 0
        stop = threading.Event()

        def poll() -> None:
            nonlocal peak
            try:
                ps = psutil.Process(proc.pid)
            except psutil.Error:
                return
            while not stop.is_set():
                peak = max(peak, _tree_rss(ps))
                stop.wait(poll_s)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        wall = time.perf_counter() - t0
        stop.set()
        poller.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Measured(argv=list(argv), exit_code=proc.returncode, wall_s=wall, cpu_s=cpu,
                    peak_rss_mib=peak / 2**20, timed_out=timed_out, stdout_path=out_path,
                    stderr_path=err_path)
