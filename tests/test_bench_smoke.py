"""Guard against rot in bench/: every scenario runs at toy size and reports well-formed numbers.

Nothing here is about speed (machines are noisy; speed is what `make bench` reports). Each
scenario runs ``bench/run.py --smoke --scenario N`` for real -- emulator subprocesses, bulkmeet,
the competing scripts -- in its own temp folder, so the scenarios spread over xdist workers.
"""
from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
RUN = BENCH / "run.py"

EXPECTED = {
    1: {"bulkmeet", "sequential", "msgraph-sdk"},
    2: {"bulkmeet", "sequential", "msgraph-sdk"},
    3: {"bulkmeet", "sequential", "msgraph-sdk"},
    4: {"bulkmeet", "bulkmeet batch"},
    5: {"bulkmeet", "pandas read+write"},
    6: {"bulkmeet"},
    7: {"bulkmeet", "msgraph-sdk c=4", "msgraph-sdk c=16", "msgraph-sdk c=64"},
}
WITH_EMULATOR = {1, 2, 3, 4, 5, 7}
WITH_IDEAL = {1, 2, 3, 5, 7}
HAVE_SDK = importlib.util.find_spec("msgraph") is not None


def _bench_module(name: str):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(name)


def _number(value, *, positive: bool = False) -> float:
    assert isinstance(value, (int, float)) and not isinstance(value, bool), value
    assert math.isfinite(value), value
    assert value > 0 if positive else value >= 0, value
    return float(value)


def _check_row(scenario: dict, row: dict) -> None:
    n = scenario["number"]
    who = f"scenario {n} / {row['contender']}"
    assert row["error"] is None, f"{who}: {row['error']}"
    assert row["rows"] == scenario["rows"]
    assert row["rows_done"] == row["rows"], f"{who}: no budget in smoke mode, all rows run"
    assert row["projected"] is False
    wall = _number(row["wall_s"], positive=True)
    assert wall == row["measured_wall_s"]
    rate = _number(row["rows_per_s"], positive=True)
    assert rate == pytest.approx(row["rows_done"] / wall, rel=1e-6)
    peak = _number(row["peak_rss_mib"], positive=True)
    assert 5 < peak < 4096, f"{who}: peak RSS {peak} MiB is not a process's RSS"
    _number(row["cpu_s"])
    assert row["exit_code"] in (0, 1)
    failed = row["failed_rows"]
    assert isinstance(failed, int) and 0 <= failed <= row["rows"]
    if n in WITH_EMULATOR:
        requests, throttled = row["requests"], row["throttled"]
        assert isinstance(requests, int) and isinstance(throttled, int)
        assert 0 <= throttled <= requests
        if n == 5:
            # the rerun sends nothing (that is the point); the baseline never talks to Graph
            assert requests == 0, f"{who}: {requests} Graph requests on a no-op rerun"
        else:
            assert requests >= row["rows"], f"{who}: fewer requests than rows"
            assert isinstance(row["missing"], int) and row["missing"] >= 0
            assert isinstance(row["duplicates"], int) and row["duplicates"] >= 0
    if n in WITH_IDEAL:
        ideal = _number(row["ideal_s"], positive=True)
        assert row["ratio"] == pytest.approx(wall / ideal, rel=1e-6)
    if n == 4:
        batched = row["contender"] == "bulkmeet batch"
        assert (row["batches"] > 0) == batched, f"{who}: {row['batches']} $batch calls"
        assert row["cpu_s_per_1000_rows"] == pytest.approx(1000 * row["cpu_s"] / row["rows"],
                                                            rel=1e-6)
    if n == 6:
        assert failed == 0, f"{who}: generated rows must all plan"


@pytest.mark.parametrize("number", sorted(EXPECTED))
def test_smoke_scenario(number: int, tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(RUN), "--smoke", "--scenario", str(number),
         "--workdir", str(tmp_path / "work"), "--results", str(results)],
        cwd=tmp_path, capture_output=True, text=True, timeout=150,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(results.read_text())
    assert data["smoke"] is True
    machine = data["machine"]
    assert machine["cpu_count"] >= 1 and machine["python"].count(".") == 2 and machine["date"]
    [scenario] = data["scenarios"]
    assert scenario["number"] == number
    rows = {r["contender"]: r for r in scenario["results"]}
    assert set(rows) == EXPECTED[number]
    for name, row in rows.items():
        if name.startswith("msgraph-sdk") and not HAVE_SDK:
            assert row["skipped"], "without msgraph-sdk the SDK row says it was skipped"
            continue
        assert row["skipped"] is None
        _check_row(scenario, row)
    # the printed table: a header naming the machine, one line per contender
    assert f"{machine['cpu_count']} CPU" in proc.stdout and f"Python {machine['python']}" in proc.stdout
    table = data["table"]
    assert table[0].split()[:2] == ["scenario", "contender"]
    for name in EXPECTED[number]:
        assert sum(1 for line in table[2:] if f"  {name}  " in line) == 1, (name, table)
    assert data["targets"] and all(t["scenario"] == number and isinstance(t["met"], bool)
                                   for t in data["targets"])


def test_ideals_follow_the_documented_formulas() -> None:
    run = _bench_module("run")
    assert run.latency_ideal(2000, (100.0, 300.0), 16) == pytest.approx(25.0)
    # 10 faulted requests (2 x 429, 1 x 503, 1 stall, 6 others) met on half of 100 rows, scaled:
    ideal, formula = run.faults_ideal(100, 50, (100.0, 300.0), 4,
                                      {"429": 2, "503": 1, "stall": 1, "500": 6}, 3.0)
    extra, waits = 20, 2 * (2 * 2.0 + 1 * 2.0 + 1 * 3.0)
    assert ideal == pytest.approx(((100 + extra) * 0.2 + waits) / 4)
    assert "/ 4" in formula


def test_graph_counts_leave_identity_traffic_out() -> None:
    harness = _bench_module("harness")
    stats = {"by_path": {
        "POST /v1.0/users/{id}/onlineMeetings/createOrGet": {"201": 90, "429": 7, "dropped": 3},
        "GET /v1.0/users/{id}": {"200": 2},
        "POST /{tenant}/oauth2/v2.0/token": {"200": 4},
        "GET /{tenant}/v2.0/.well-known/openid-configuration": {"200": 4},
    }}
    assert harness.graph_counts(stats) == (102, 7)
    before = {"by_path": {"POST /v1.0/users/{id}/onlineMeetings/createOrGet": {"201": 40}}}
    assert harness.diff_counts(before, stats) == (62, 7)


def test_the_http_client_bench_runs_at_toy_size() -> None:
    """bench/http_clients.py: every client really sends (it stops at a non-2xx answer)."""
    out = subprocess.run([sys.executable, str(BENCH / "http_clients.py"), "40"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    table = {line[:16].strip(): line[16:].split() for line in lines[2:6]}
    assert set(table) == {"requests", "urllib3", "http.client", "bulkmeet http11"}
    for cells in table.values():
        assert len(cells) == 4 and all(_number(float(c), positive=True) for c in cells)
