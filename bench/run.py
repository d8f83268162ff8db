"""bulkmeet benchmarks: how close does a run get to the bound Graph allows, next to other tools?

    .venv/bin/python bench/run.py                 # every scenario, full size (several minutes)
    .venv/bin/python bench/run.py --scenario 2 4  # some of them
    .venv/bin/python bench/run.py --smoke         # every scenario at toy sizes, in seconds

Each scenario starts the emulator in its own process (one fresh emulator per contender, so rate
limit buckets, fault sequences and meeting counts never leak from one contender to the next),
writes one schedule that every contender reads, runs the contenders one after another and prints
one row per contender. Results also go to bench/results.json (``--results`` to change). What the
columns mean and how each ideal is computed: bench/README.md.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
import schedules  # noqa: E402
from harness import BenchError, EmulatorProcess, EmulatorSettings, Measured  # noqa: E402

BENCH = Path(__file__).resolve().parent
CONTENDERS = BENCH / "contenders"
DEFAULT_RESULTS = BENCH / "results.json"

BULKMEET = "bulkmeet"
BULKMEET_BATCH = "bulkmeet batch"  # [run] batch = true: createOrGet in JSON $batch calls of 20
SEQUENTIAL = "sequential"
SDK = "msgraph-sdk"
PANDAS = "pandas read+write"


def sdk_at(concurrency: int) -> str:
    """The SDK at a concurrency of its own (scenario 7: nobody knows the right one)."""
    return f"{SDK} c={concurrency}"

# Mean Retry-After (seconds) that each injected fault kind demands, when the emulator's stats do
# not say how long it asked clients to wait. From the emulator's contract: injected 429s ask for
# 1-3 s (mean 2), injected 503s carry a Retry-After too (1-3 s assumed); a stall holds the
# connection for stall_s. Other kinds ask for no wait (a client may retry at once).
FAULT_WAIT_S = {"429": 2.0, "503": 2.0}


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Scenario:
    number: int
    key: str
    title: str
    rows: int
    concurrency: int
    fmt: str  # schedule file type: "csv" | "xlsx"
    emulator: EmulatorSettings | None
    contenders: tuple[str, ...]
    timeout_s: float  # per contender; a contender still running then is killed and reported
    target: str
    adaptive: bool = False  # bulkmeet with its default [run] (no concurrency given): it adapts
    budget_s: float | None = None  # scenario 7: the SDK's time budget (then projected)


def scenarios(smoke: bool) -> dict[int, Scenario]:
    """The seven scenarios; ``smoke`` shrinks them to seconds (same code paths)."""
    if smoke:
        s = dict(lat=(5.0, 15.0), r1=24, r2=40, rate=20.0, lat2=(1.0, 5.0), r3=24, r4=150,
                 r5=150, r6=300, c1=4, c2=8, stall=0.3, timeout=90.0, r7=60, rate7=20.0,
                 lat7=(5.0, 15.0), budget7=None)
    else:
        s = dict(lat=(100.0, 300.0), r1=2000, r2=3000, rate=50.0, lat2=(20.0, 60.0), r3=2000,
                 r4=5000, r5=10_000, r6=100_000, c1=16, c2=32, stall=3.0, timeout=420.0, r7=4000,
                 rate7=40.0, lat7=(300.0, 900.0), budget7=45.0)
    three = (BULKMEET, SEQUENTIAL, SDK)
    return {
        1: Scenario(1, "latency", "latency-bound", s["r1"], s["c1"], "csv",
                    EmulatorSettings(latency_ms=s["lat"]), three, s["timeout"],
                    ">= 90% of ideal (ratio <= 1.11)"),
        2: Scenario(2, "throttle", "throttle-bound", s["r2"], s["c2"], "csv",
                    EmulatorSettings(latency_ms=s["lat2"], rate_limit=s["rate"]), three,
                    s["timeout"], "ratio <= 1.10, 429s < 3% of requests, 0 failed rows (no "
                    "RateLimit-* headers)"),
        3: Scenario(3, "faults", "faults (20%)", s["r3"], s["c1"], "csv",
                    EmulatorSettings(latency_ms=s["lat"], fault_rate=0.2, stall_s=s["stall"]),
                    three, s["timeout"], "0 failed rows (and no duplicate meetings)"),
        4: Scenario(4, "overhead", "client overhead", s["r4"], s["c1"], "csv",
                    EmulatorSettings(), (BULKMEET, BULKMEET_BATCH), s["timeout"],
                    ">= 1,500 rows/s (with and without batching)"),
        5: Scenario(5, "rerun", "no-op rerun", s["r5"], s["c1"], "xlsx", EmulatorSettings(),
                    (BULKMEET, PANDAS), s["timeout"],
                    "0 requests and <= 1.2x the bare read+write"),
        6: Scenario(6, "bigsheet", "big sheet --dry-run", s["r6"], s["c1"], "xlsx", None,
                    (BULKMEET,), s["timeout"] * 2, "peak RSS < 1 GiB"),
        7: Scenario(7, "unknown", "unknown limit", s["r7"], 0, "csv",
                    EmulatorSettings(latency_ms=s["lat7"], rate_limit=s["rate7"]),
                    (BULKMEET, sdk_at(4), sdk_at(16), sdk_at(64)), s["timeout"],
                    "bulkmeet's default config: ratio <= 1.15, 429s < 3%, 0 failed rows",
                    adaptive=True, budget_s=s["budget7"]),
    }


# --------------------------------------------------------------------------- one table row


@dataclass
class Result:
    """One contender in one scenario: one row of the table, one object in results.json."""

    scenario: int
    contender: str
    rows: int  # rows in the schedule
    rows_done: int | None = None  # rows the contender got through (< rows: stopped by a budget)
    wall_s: float | None = None  # projected to all rows when rows_done < rows (``projected``)
    measured_wall_s: float | None = None
    projected: bool = False
    rows_per_s: float | None = None
    ideal_s: float | None = None
    ratio: float | None = None  # wall / ideal: 1.00 is the bound, 1.25 is 25% slower
    requests: int | None = None  # Graph requests the emulator received (identity traffic excluded)
    throttled: int | None = None  # 429 answers among them
    batches: int | None = None  # $batch calls the emulator received (their items are in requests)
    failed_rows: int | None = None  # rows the contender itself reported as not done
    missing: int | None = None  # rows without a meeting in the tenant afterwards
    duplicates: int | None = None  # meetings beyond one per externalId
    peak_rss_mib: float | None = None  # the contender's process tree
    cpu_s: float | None = None
    cpu_s_per_1000_rows: float | None = None
    send_s: float | None = None  # bulkmeet only: its own log's time for the sending phase
    exit_code: int | None = None
    faults: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    skipped: str | None = None  # why a contender did not run (e.g. msgraph-sdk not installed)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and self.skipped is None


def _secret_env() -> dict[str, str]:
    return harness.child_env({schedules.SECRET_ENV: schedules.CLIENT_SECRET})


def _bulkmeet_argv() -> list[str]:
    script = Path(harness.PYTHON).with_name("bulkmeet")
    return [str(script)] if script.exists() else [harness.PYTHON, "-m", "bulkmeet"]


def _fill(result: Result, m: Measured, rows_done: int) -> Result:
    result.exit_code = m.exit_code
    result.measured_wall_s = m.wall_s
    result.rows_done = rows_done
    result.cpu_s = m.cpu_s
    result.peak_rss_mib = m.peak_rss_mib
    if rows_done and m.wall_s > 0:
        result.rows_per_s = rows_done / m.wall_s
        result.cpu_s_per_1000_rows = 1000 * m.cpu_s / rows_done
    if rows_done and rows_done < result.rows:
        result.projected = True
        result.wall_s = m.wall_s * result.rows / rows_done
        result.notes.append(f"stopped by its time budget after {rows_done} of {result.rows} "
                            f"rows; wall time projected to all rows")
    else:
        result.wall_s = m.wall_s
    if m.timed_out:
        result.error = f"killed after {m.wall_s:.0f} s (scenario timeout)"
    return result


def _count_meetings(emu: EmulatorProcess, result: Result) -> None:
    meetings = emu.meetings()
    per_id = Counter(str(m.get("externalId")) for m in meetings)
    result.duplicates = sum(n - 1 for n in per_id.values() if n > 1)
    if result.rows_done is not None:
        result.missing = max(0, result.rows_done - len(per_id))


def _emulator_counts(emu: EmulatorProcess, before: dict[str, Any], result: Result) -> None:
    after = emu.stats()
    result.requests, result.throttled = harness.diff_counts(before, after)
    result.batches = int(after.get("batches") or 0) - int(before.get("batches") or 0)
    b, a = harness.fault_counts(before), harness.fault_counts(after)
    result.faults = {k: v - b.get(k, 0) for k, v in a.items() if v - b.get(k, 0)}
    result.notes.extend(_emulator_notes(after))


def _emulator_notes(stats: dict[str, Any]) -> list[str]:
    peak = stats.get("in_flight_peak")
    return [f"emulator peak in flight: {peak}"] if peak is not None else []


def run_bulkmeet(scn: Scenario, work: Path, schedule: Path, emu: EmulatorProcess | None, *,
                 tag: str = "", dry_run: bool = False, journal: Path | None = None,
                 result_name: str = BULKMEET, batch: bool = False) -> Result:
    """bulkmeet as a user runs it. Fixed-concurrency scenarios pin [run] concurrency and
    max_concurrency to the scenario's (same slots as the other contenders); an adaptive one
    leaves [run] at bulkmeet's defaults and passes no --concurrency."""
    tag = tag or f"s{scn.number}-{result_name.replace(' ', '-')}"
    fixed = None if scn.adaptive else scn.concurrency
    config = schedules.write_config(
        work / f"{tag}.toml", base_url=emu.base_url if emu else "https://127.0.0.1:9",
        ca_path=emu.ca_path if emu else None, concurrency=fixed, max_concurrency=fixed,
        batch=batch)
    summary = work / f"{tag}.summary.json"
    summary.unlink(missing_ok=True)
    argv = [*_bulkmeet_argv(), "run", str(schedule), "--config", str(config),
            "--output", str(work / f"{tag}.results.xlsx"),
            "--journal", str(journal or work / f"{tag}.journal.sqlite"),
            "--quiet", "--no-progress",
            "--summary-json", str(summary), "--log-file", str(work / f"{tag}.bulkmeet.log")]
    if fixed:
        argv += ["--concurrency", str(fixed)]
    if dry_run:
        argv.append("--dry-run")
    result = Result(scn.number, result_name, scn.rows)
    before = emu.stats() if emu else {}
    m = harness.measure(argv, env=_secret_env(), cwd=work, log_prefix=work / tag,
                        timeout=scn.timeout_s)
    if emu:
        _emulator_counts(emu, before, result)
    if m.exit_code not in (0, 1) or not summary.exists():
        _fill(result, m, 0)
        result.error = result.error or (f"bulkmeet exited with status {m.exit_code}: "
                                        f"{m.stderr_tail()}")
        return result
    s = json.loads(summary.read_text())
    total = int(s.get("total_rows", scn.rows))
    _fill(result, m, total)
    if s.get("concurrency"):
        result.notes.append(f"bulkmeet: {s['concurrency']}")
    result.send_s = _send_seconds(work / f"{tag}.bulkmeet.log")
    if result.send_s is not None:
        result.notes.append(f"sending phase (bulkmeet's log): {result.send_s:.1f} s, "
                            f"{total / max(result.send_s, 1e-9):.0f} rows/s")
    if dry_run:
        result.failed_rows = int(s.get("invalid", 0)) + int(s.get("duplicate", 0))
        if int(s.get("planned", 0)) != total - result.failed_rows:
            result.notes.append(f"planned {s.get('planned')} of {total} rows")
    else:
        result.failed_rows = total - int(s.get("created", 0)) - int(s.get("existing", 0))
        if emu is None:
            result.requests, result.throttled = int(s.get("requests_sent", 0)), int(
                s.get("throttled", 0))
        elif s.get("requests_sent") is not None and int(s["requests_sent"]) != result.requests:
            result.notes.append(f"bulkmeet counted {s['requests_sent']} requests, the emulator "
                                f"{result.requests}")
    if emu and not dry_run:
        _count_meetings(emu, result)
    return result


SEND_LINE = re.compile(r"request\(s\) to Graph in ([0-9.]+) s")


def _send_seconds(log: Path) -> float | None:
    """How long bulkmeet says its sending took (start-up and the output sheet excluded).

    Only informative: the line is bulkmeet's log wording, so a change there just drops the note.
    """
    try:
        found = SEND_LINE.findall(log.read_text(errors="replace"))
    except OSError:
        return None
    return float(found[-1]) if found else None


def run_script(scn: Scenario, work: Path, schedule: Path, emu: EmulatorProcess, name: str,
               script: str, deadline: float | None, concurrency: int | None = None) -> Result:
    concurrency = concurrency or scn.concurrency
    tag = f"s{scn.number}-{script}" + (f"-c{concurrency}" if concurrency != scn.concurrency else "")
    summary = work / f"{tag}.summary.json"
    summary.unlink(missing_ok=True)
    argv = [harness.PYTHON, str(CONTENDERS / f"{script}.py"), "--schedule", str(schedule),
            "--base-url", emu.base_url, "--ca", emu.ca_path, "--tenant", schedules.TENANT_ID,
            "--client-id", schedules.CLIENT_ID, "--secret-env", schedules.SECRET_ENV,
            "--time-zone", schedules.TIME_ZONE, "--concurrency", str(concurrency),
            "--results", str(work / f"{tag}.results.csv"), "--summary-json", str(summary)]
    if deadline is not None:
        argv += ["--deadline", f"{deadline:g}"]
    result = Result(scn.number, name, scn.rows)
    before = emu.stats()
    m = harness.measure(argv, env=_secret_env(), cwd=work, log_prefix=work / tag,
                        timeout=scn.timeout_s)
    _emulator_counts(emu, before, result)
    if m.exit_code not in (0, 1) or not summary.exists():
        _fill(result, m, 0)
        result.error = result.error or f"{script} exited with status {m.exit_code}: " \
                                       f"{m.stderr_tail()}"
        return result
    s = json.loads(summary.read_text())
    _fill(result, m, int(s["rows_done"]))
    result.failed_rows = int(s["failed"])
    _count_meetings(emu, result)
    return result


def run_pandas(scn: Scenario, work: Path, schedule: Path) -> Result:
    tag = f"s{scn.number}-pandas"
    argv = [harness.PYTHON, str(CONTENDERS / "pandas_copy.py"), str(schedule),
            str(work / f"{tag}.copy.xlsx")]
    m = harness.measure(argv, env=harness.child_env(), cwd=work, log_prefix=work / tag,
                        timeout=scn.timeout_s)
    result = _fill(Result(scn.number, PANDAS, scn.rows), m, scn.rows)
    result.requests, result.throttled, result.failed_rows = 0, 0, 0
    if m.exit_code != 0:
        result.error = f"pandas_copy exited with status {m.exit_code}: {m.stderr_tail()}"
    return result


# --------------------------------------------------------------------------- ideals


def latency_ideal(rows: int, latency_ms: tuple[float, float], concurrency: int) -> float:
    """rows x mean latency / concurrency: every slot busy all the time, nothing else costs."""
    return rows * (sum(latency_ms) / 2000.0) / concurrency


def faults_ideal(rows: int, rows_done: int, latency_ms: tuple[float, float], concurrency: int,
                 faults: dict[str, int], stall_s: float) -> tuple[float, str]:
    """Scenario 1's bound plus the cost the faults a contender met demand, scaled to all rows.

    Each injected fault costs one more request (the retry: one more mean latency), plus the wait
    it asks for: Retry-After for 429/503 (``FAULT_WAIT_S``) and ``stall_s`` for a stall. Waits are
    counted as slot-time spread over the concurrency, i.e. as if each waiting row held a slot:
    ideal = ((rows + F) x L + W) / C. A client that re-queues waiting rows can beat this bound
    slightly; one that pauses every worker on any 429 cannot reach it.
    """
    scale = rows / rows_done if rows_done else 1.0
    mean_latency = sum(latency_ms) / 2000.0
    extra = sum(faults.values()) * scale
    waits = sum(FAULT_WAIT_S.get(kind, 0.0) * n for kind, n in faults.items()) * scale
    waits += faults.get("stall", 0) * stall_s * scale
    ideal = ((rows + extra) * mean_latency + waits) / concurrency
    formula = (f"(({rows} + {extra:.0f} faulted) x {mean_latency:.3f} s + {waits:.1f} s waits)"
               f" / {concurrency}")
    return ideal, formula


def set_ratio(result: Result, ideal: float | None) -> None:
    result.ideal_s = ideal
    if ideal and result.wall_s and result.ok:
        result.ratio = result.wall_s / ideal


# --------------------------------------------------------------------------- scenario runners


@dataclass
class Context:
    work: Path
    directory: Path
    smoke: bool
    sequential_budget: float | None
    log: Callable[[str], None]


def _schedule(ctx: Context, scn: Scenario) -> Path:
    path = ctx.work / f"s{scn.number}-schedule.{scn.fmt}"
    t0 = time.perf_counter()
    schedules.write_schedule(path, scn.rows)
    ctx.log(f"  schedule: {scn.rows} rows -> {path.name} ({time.perf_counter() - t0:.1f} s)")
    return path


def _emulator(ctx: Context, scn: Scenario, name: str) -> EmulatorProcess:
    assert scn.emulator is not None
    return EmulatorProcess(ctx.work, ctx.directory, scn.emulator, name=f"s{scn.number}-{name}")


def _contenders(ctx: Context, scn: Scenario, schedule: Path) -> list[Result]:
    """Scenarios 1-3: every contender on its own fresh emulator, same schedule."""
    results = []
    for name in scn.contenders:
        if name.startswith(SDK) and importlib.util.find_spec("msgraph") is None:
            results.append(Result(scn.number, name, scn.rows, skipped=(
                "msgraph-sdk is not installed; `make bench` installs it "
                "(pip install -e '.[bench]')")))
            ctx.log(f"  {name}: skipped ({results[-1].skipped})")
            continue
        ctx.log(f"  {name} ...")
        try:
            with _emulator(ctx, scn, name.replace("msgraph-", "")) as emu:
                if name == BULKMEET:
                    r = run_bulkmeet(scn, ctx.work, schedule, emu)
                elif name == SEQUENTIAL:
                    r = run_script(scn, ctx.work, schedule, emu, name, "sequential",
                                   ctx.sequential_budget)
                elif name == SDK:
                    r = run_script(scn, ctx.work, schedule, emu, name, "sdk", None)
                else:  # "msgraph-sdk c=N"
                    r = run_script(scn, ctx.work, schedule, emu, name, "sdk",
                                   None if ctx.smoke else scn.budget_s,
                                   concurrency=int(name.rsplit("=", 1)[1]))
        except BenchError as exc:
            r = Result(scn.number, name, scn.rows, error=str(exc))
        results.append(r)
        ctx.log(f"    {_brief(r)}")
    return results


def scenario_latency(ctx: Context, scn: Scenario) -> tuple[list[Result], dict[str, Any]]:
    assert scn.emulator is not None
    schedule = _schedule(ctx, scn)
    ideal = latency_ideal(scn.rows, scn.emulator.latency_ms, scn.concurrency)
    results = _contenders(ctx, scn, schedule)
    for r in results:
        set_ratio(r, ideal)
    lo, hi = scn.emulator.latency_ms
    return results, {"ideal_s": ideal, "ideal_formula":
                     f"{scn.rows} rows x {(lo + hi) / 2000:.3f} s mean latency / {scn.concurrency}"}


def scenario_throttle(ctx: Context, scn: Scenario) -> tuple[list[Result], dict[str, Any]]:
    assert scn.emulator is not None and scn.emulator.rate_limit
    schedule = _schedule(ctx, scn)
    ideal = scn.rows / scn.emulator.rate_limit
    results = _contenders(ctx, scn, schedule)
    for r in results:
        set_ratio(r, ideal)
    return results, {"ideal_s": ideal,
                     "ideal_formula": f"{scn.rows} rows / {scn.emulator.rate_limit:g} requests/s"}


def scenario_faults(ctx: Context, scn: Scenario) -> tuple[list[Result], dict[str, Any]]:
    assert scn.emulator is not None
    schedule = _schedule(ctx, scn)
    results = _contenders(ctx, scn, schedule)
    formulas = {}
    for r in results:
        if r.ok and r.rows_done is not None:
            met = ", ".join(f"{n} x {k}" for k, n in sorted(r.faults.items())) or "none"
            r.notes.append(f"faults met: {met}; rows without a meeting afterwards: {r.missing}; "
                           f"duplicate meetings: {r.duplicates}")
        if r.rows_done:
            ideal, formula = faults_ideal(scn.rows, r.rows_done, scn.emulator.latency_ms,
                                          scn.concurrency, r.faults, scn.emulator.stall_s or 0.0)
            set_ratio(r, ideal)
            formulas[r.contender] = formula
    base = latency_ideal(scn.rows, scn.emulator.latency_ms, scn.concurrency)
    return results, {"ideal_s": None, "latency_only_ideal_s": base, "ideal_formula": formulas,
                     "stall_s": scn.emulator.stall_s}


def scenario_overhead(ctx: Context, scn: Scenario) -> tuple[list[Result], dict[str, Any]]:
    schedule = _schedule(ctx, scn)
    results = []
    for name in (BULKMEET, BULKMEET_BATCH):
        ctx.log(f"  {name} ...")
        try:
            with _emulator(ctx, scn, name.replace(" ", "-")) as emu:
                r = run_bulkmeet(scn, ctx.work, schedule, emu, result_name=name,
                                 batch=name == BULKMEET_BATCH)
        except BenchError as exc:
            r = Result(scn.number, name, scn.rows, error=str(exc))
        ctx.log(f"    {_brief(r)}")
        results.append(r)
    return results, {"ideal_s": None, "ideal_formula": "none: the bound is the client itself"}


def scenario_rerun(ctx: Context, scn: Scenario) -> tuple[list[Result], dict[str, Any]]:
    schedule = _schedule(ctx, scn)
    journal = ctx.work / f"s{scn.number}.journal.sqlite"
    extra: dict[str, Any] = {}
    results: list[Result] = []
    try:
        with _emulator(ctx, scn, "bulkmeet") as emu:
            ctx.log("  bulkmeet first run (makes every meeting; not in the table) ...")
            first = run_bulkmeet(scn, ctx.work, schedule, emu, tag=f"s{scn.number}-first",
                                 journal=journal)
            extra["first_run"] = {"wall_s": first.wall_s, "requests": first.requests,
                                  "failed_rows": first.failed_rows, "error": first.error}
            if first.error or first.failed_rows:
                raise BenchError(f"the first run did not finish every row "
                                 f"({first.failed_rows} failed): {first.error or ''}")
            ctx.log(f"    first run: {_brief(first)}")
            ctx.log("  bulkmeet rerun ...")
            r = run_bulkmeet(scn, ctx.work, schedule, emu, tag=f"s{scn.number}-rerun",
                             journal=journal)
    except BenchError as exc:
        r = Result(scn.number, BULKMEET, scn.rows, error=str(exc))
    ctx.log(f"    {_brief(r)}")
    ctx.log("  pandas read + write ...")
    base = run_pandas(scn, ctx.work, schedule)
    ctx.log(f"    {_brief(base)}")
    results = [r, base]
    if base.ok and base.wall_s:
        set_ratio(r, base.wall_s)
        base.ideal_s, base.ratio = base.wall_s, 1.0
    extra.update({"ideal_s": base.wall_s,
                  "ideal_formula": "wall time of a bare pandas read_excel + to_excel (openpyxl)"})
    return results, extra


def scenario_bigsheet(ctx: Context, scn: Scenario) -> tuple[list[Result], dict[str, Any]]:
    schedule = _schedule(ctx, scn)
    ctx.log("  bulkmeet --dry-run ...")
    r = run_bulkmeet(scn, ctx.work, schedule, None, dry_run=True)
    ctx.log(f"    {_brief(r)}")
    return [r], {"ideal_s": None, "ideal_formula": "none: reports time and memory",
                 "schedule_mib": round(schedule.stat().st_size / 2**20, 1)}


RUNNERS = {1: scenario_latency, 2: scenario_throttle, 3: scenario_faults, 4: scenario_overhead,
           5: scenario_rerun, 6: scenario_bigsheet, 7: scenario_throttle}


# --------------------------------------------------------------------------- targets


def targets(scn: Scenario, results: list[Result]) -> list[dict[str, Any]]:
    """The issue's aims for bulkmeet, checked and reported (they never fail the run)."""
    bm = next((r for r in results if r.contender == BULKMEET), None)
    if bm is None or not bm.ok:
        return [{"scenario": scn.number, "target": scn.target, "met": False,
                 "value": bm.error if bm else "not run"}]
    checks: list[tuple[str, bool, str]] = []
    if scn.number == 1:
        eff = (bm.ideal_s / bm.wall_s) if bm.ideal_s and bm.wall_s else 0.0
        checks.append((">= 90% of ideal", eff >= 0.9, f"{eff:.0%} of ideal"))
    elif scn.number in (2, 7):
        share = (bm.throttled or 0) / bm.requests if bm.requests else 0.0
        bound = 1.10 if scn.number == 2 else 1.15
        checks.append((f"within {bound:.0%} of ideal", (bm.ratio or 99) <= bound,
                       f"ratio {bm.ratio:.2f}" if bm.ratio else "no ratio"))
        checks.append(("429s < 3% of requests", share < 0.03, f"{share:.1%}"))
        checks.append(("no failed rows", bm.failed_rows == 0, f"{bm.failed_rows} failed"))
    elif scn.number == 3:
        checks.append(("no failed rows", bm.failed_rows == 0, f"{bm.failed_rows} failed"))
        checks.append(("no duplicates", bm.duplicates == 0, f"{bm.duplicates} duplicates"))
    elif scn.number == 4:
        for r in results:
            if r.ok and r.rows_per_s is not None:
                checks.append((f">= 1,500 rows/s ({r.contender})", r.rows_per_s >= 1500,
                               f"{r.rows_per_s:.0f} rows/s, {r.cpu_s_per_1000_rows:.2f} CPU s/1000 "
                               "rows"))
    elif scn.number == 5:
        checks.append(("0 Graph requests", bm.requests == 0, f"{bm.requests} requests"))
        checks.append(("<= 1.2x bare read+write", bm.ratio is not None and bm.ratio <= 1.2,
                       f"{bm.ratio:.2f}x" if bm.ratio else "no baseline"))
    elif scn.number == 6:
        checks.append(("peak RSS < 1 GiB", (bm.peak_rss_mib or 0) < 1024,
                       f"{bm.peak_rss_mib:.0f} MiB, {bm.rows_per_s:.0f} rows/s"))
    return [{"scenario": scn.number, "target": t, "met": met, "value": v} for t, met, v in checks]


# --------------------------------------------------------------------------- printing

HEAD = ("scenario", "contender", "rows", "wall s", "rows/s", "ideal s", "ratio", "requests",
        "429s", "failed", "peak MiB", "CPU s")


def _num(value: float | int | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def table_lines(sc: dict[int, Scenario], results: list[Result]) -> list[str]:
    lines = []
    body = []
    for r in results:
        if r.error or r.skipped:
            body.append((f"{r.scenario} {sc[r.scenario].title}", r.contender, str(r.rows),
                         "ERROR" if r.error else "skipped", "", "", "", "", "", "", "", ""))
            continue
        wall = _num(r.wall_s, ".1f") + ("*" if r.projected else "")
        body.append((f"{r.scenario} {sc[r.scenario].title}", r.contender, str(r.rows), wall,
                     _num(r.rows_per_s, ".0f"), _num(r.ideal_s, ".1f"), _num(r.ratio, ".2f"),
                     _num(r.requests, "d"), _num(r.throttled, "d"),
                     _num(r.failed_rows, "d"), _num(r.peak_rss_mib, ".0f"), _num(r.cpu_s, ".1f")))
    widths = [max(len(HEAD[i]), *(len(row[i]) for row in body)) if body else len(HEAD[i])
              for i in range(len(HEAD))]
    left = {0, 1}

    def fmt(row: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(widths[i]) if i in left else c.rjust(widths[i])
                         for i, c in enumerate(row)).rstrip()

    lines.append(fmt(HEAD))
    lines.append("  ".join("-" * w for w in widths))
    lines.extend(fmt(row) for row in body)
    return lines


def machine_line(m: dict[str, Any], smoke: bool) -> str:
    return (f"bulkmeet bench{' (smoke sizes)' if smoke else ''} - {m['cpu_count']} CPU "
            f"({m['cpu_model']}), {m['memory_gib']} GiB, Python {m['python']}, {m['platform']}, "
            f"{m['date']}")


def _brief(r: Result) -> str:
    if r.error:
        return f"ERROR: {r.error}"
    if r.skipped:
        return f"skipped: {r.skipped}"
    return (f"{r.wall_s:.1f} s{'*' if r.projected else ''}, {r.rows_done} rows, "
            f"{r.requests if r.requests is not None else '-'} requests, "
            f"{r.throttled if r.throttled is not None else '-'} x 429, {r.failed_rows} failed, "
            f"peak {r.peak_rss_mib:.0f} MiB, CPU {r.cpu_s:.1f} s")


# --------------------------------------------------------------------------- main


def run(selected: list[int], *, smoke: bool, results_path: Path, work: Path,
        sequential_budget: float | None, log: Callable[[str], None] = print) -> dict[str, Any]:
    sc = scenarios(smoke)
    info = harness.machine()
    directory = schedules.write_directory(work / "directory.json")
    ctx = Context(work, directory, smoke, sequential_budget, log)
    log(machine_line(info, smoke))
    all_results: list[Result] = []
    report: dict[str, Any] = {"machine": info, "smoke": smoke, "scenarios": [], "targets": []}
    t0 = time.perf_counter()
    for n in selected:
        scn = sc[n]
        conc = "bulkmeet's default concurrency" if scn.adaptive else f"concurrency {scn.concurrency}"
        log(f"scenario {n}: {scn.title} ({scn.rows} rows, {conc})")
        started = time.perf_counter()
        try:
            results, extra = RUNNERS[n](ctx, scn)
        except BenchError as exc:  # a scenario that cannot even start still gets its rows
            results = [Result(n, c, scn.rows, error=str(exc)) for c in scn.contenders]
            extra = {}
        all_results.extend(results)
        checks = targets(scn, results)
        report["targets"].extend(checks)
        report["scenarios"].append({
            "number": n, "name": scn.title, "rows": scn.rows, "concurrency": scn.concurrency,
            "format": scn.fmt,
            "emulator": asdict(scn.emulator) if scn.emulator else None,
            "target": scn.target, "seconds": round(time.perf_counter() - started, 1),
            **extra, "results": [asdict(r) for r in results],
        })
        # Written after every scenario: a long run interrupted late still leaves its numbers.
        report["total_seconds"] = round(time.perf_counter() - t0, 1)
        report["table"] = table_lines(sc, all_results)
        _write_json(results_path, report)
    log("")
    log(machine_line(info, smoke))
    for line in report["table"]:
        log(line)
    notes = [f"  {r.scenario}/{r.contender}: {note}" for r in all_results
             for note in [*r.notes, *([f"ERROR: {r.error}"] if r.error else []),
                          *([f"skipped: {r.skipped}"] if r.skipped else [])]
             if not note.startswith("emulator peak")]
    if any(r.projected for r in all_results):
        log("* projected from the rows done within the contender's time budget "
            "(--sequential-budget); counts are for the rows done")
    if notes:
        log("notes:")
        for line in notes:
            log(line)
    log("targets (bulkmeet):")
    for t in report["targets"]:
        log(f"  {t['scenario']}: {'met   ' if t['met'] else 'MISSED'} {t['target']}: {t['value']}")
    log(f"results: {results_path} ({report['total_seconds']:.0f} s in all)")
    return report


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str) + "\n")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", type=int, nargs="+", choices=sorted(RUNNERS), metavar="N",
                    help="scenarios to run (1-7; default all)")
    ap.add_argument("--smoke", action="store_true", help="toy sizes: checks the scripts run")
    ap.add_argument("--results", type=Path, default=None,
                    help=f"JSON results (default {DEFAULT_RESULTS.relative_to(harness.REPO)}; "
                         "--smoke defaults to the work folder, so it never replaces real numbers)")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="keep schedules, configs, logs and outputs here (default: a temp folder, "
                         "removed afterwards)")
    ap.add_argument("--sequential-budget", type=float, default=None, metavar="S",
                    help="seconds the sequential script may run per scenario before its time is "
                         "projected from the rows done (default 40; none with --smoke)")
    args = ap.parse_args(argv)
    selected = sorted(set(args.scenario or RUNNERS))
    budget = args.sequential_budget if args.sequential_budget is not None else (
        None if args.smoke else 40.0)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bulkmeet-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results_path = args.results or (work / "results.json" if args.smoke else DEFAULT_RESULTS)
    try:
        report = run(selected, smoke=args.smoke, results_path=results_path, work=work,
                     sequential_budget=budget)
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        if args.workdir is None and not (args.smoke and args.results is None):
            shutil.rmtree(work, ignore_errors=True)
    errors = [r for s in report["scenarios"] for r in s["results"] if r["error"]]
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
