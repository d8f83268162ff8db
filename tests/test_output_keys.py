"""Output lines are keyed by (row, session): one line per meeting, each with its row's inputs.

A weekly-pattern row expands into several session meetings; a classic sheet has session 0 only
and must come out exactly one line per row, in input order. Real files are written and read back.
"""
from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest

from bulkmeet.models import CREATED, FAILED, MeetingInfo, RowOutcome, Sheet, SheetRow
from bulkmeet.report import RunSummary, write_output
from tests import helpers

COLUMNS = ("CRN", "Title")


def sheet(tmp_path: Path) -> Sheet:
    rows = tuple(SheetRow(n, {"CRN": f"00{n}", "Title": f"Class {n}"}) for n in (2, 3, 4))
    return Sheet(tmp_path / "in.csv", None, COLUMNS, rows)


def summary() -> RunSummary:
    return RunSummary(schedule="in.csv", output="out", started="s", finished="f", total_rows=3,
                      created=3, existing=0, failed=1, invalid=0, duplicate=0)


def created(row: int, session: int) -> RowOutcome:
    return RowOutcome(row, CREATED, f"ext-{row}-{session}",
                      MeetingInfo(f"m-{row}-{session}"), 201, attempts=1, session=session)


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_sessions_of_a_row_are_lines_in_session_order_with_the_rows_inputs(tmp_path, suffix):
    outcomes = {o.outcome_key: o for o in (created(2, 2), created(2, 0), created(2, 1),
                                           RowOutcome(4, FAILED, "ext-4-0", error="no"))}
    out = tmp_path / f"out{suffix}"
    write_output(out, sheet(tmp_path), outcomes, summary())
    lines = helpers.read_output(out)
    assert [(r["CRN"], r["meetingId"] or None, r["status"]) for r in lines] == [
        ("002", "m-2-0", "created"), ("002", "m-2-1", "created"), ("002", "m-2-2", "created"),
        ("003", None, "pending"), ("004", None, "failed")]
    assert {r["Title"] for r in lines[:3]} == {"Class 2"}
    if suffix == ".xlsx":  # the filter covers every line, not just one per input row
        ws = openpyxl.load_workbook(out).worksheets[0]
        assert ws.auto_filter.ref.endswith(str(len(lines) + 1))


def test_a_classic_sheet_is_one_line_per_row_in_input_order(tmp_path):
    outcomes = {(n, 0): created(n, 0) for n in (4, 2, 3)}
    out = tmp_path / "out.csv"
    write_output(out, sheet(tmp_path), outcomes, summary())
    assert [r["externalId"] for r in helpers.read_output(out)] == ["ext-2-0", "ext-3-0", "ext-4-0"]


def test_outcome_keys_are_row_and_session():
    assert created(2, 3).outcome_key == (2, 3)
    assert RowOutcome(5, FAILED).outcome_key == (5, 0)
    assert RowOutcome(6, CREATED, shared_with=5).shared_with == 5
