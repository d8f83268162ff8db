"""Guard against rot in bench/registrar.py: it runs at toy size and reports well-formed numbers
(speed itself is what the benchmark reports, never asserted here)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_registrar_bench_runs_at_toy_size(tmp_path):
    results = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "registrar.py"), "--sections", "40",
                           "--results", str(results)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(results.read_text())
    assert data["sections"] == 40 and data["rows"] == 40 + 4 + 10 and data["skipped"] == 10
    assert data["invalid"] == 0 and data["duplicates"] == 0
    assert 40 * 10 < data["sessions"] < 40 * 80  # every section expanded into its term's days
    assert data["read_filter_join_plan_s"] >= 0 and data["peak_rss_mib"] > 0
