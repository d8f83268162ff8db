"""`bulkmeet validate`: every check of a dry run, as a list of problems by row, and the counts.

A weekly-pattern row can stand for a hundred meetings; its problems are listed once per row (a
problem shared by several of its sessions says how many), never once per session. With an
organizer check (``validate --emulator``, or a real tenant) a row whose organizer the directory
does not know is counted as invalid, not as "ready to send": it would fail when sent.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bulkmeet.models import SKIPPED
from bulkmeet.pipeline import Outcomes
from bulkmeet.plan import Plan


@dataclass(frozen=True)
class Validation:
    rows: int  # non-empty rows in the sheet
    ready: int  # meetings that would be sent
    ready_rows: int  # rows they come from
    invalid: int  # rows
    duplicate: int  # duplicate lines (rows, or sessions of a pattern)
    skipped: int
    shared: int
    problems: tuple[tuple[int, str], ...]  # (row, message), in row order

    def line(self) -> str:
        if self.ready != self.ready_rows:
            ready = f"{self.ready} meetings from {self.ready_rows} rows ready to send"
        else:
            ready = f"{self.ready} ready to send"
        text = f"{self.rows} rows: {ready}, {self.invalid} invalid, {self.duplicate} duplicate"
        if self.skipped:
            text += f", {self.skipped} skipped"
        if self.shared:
            text += f", {self.shared} sharing their section's meeting"
        return text


def _collapse(items: Iterable[tuple[int, str]]) -> list[tuple[int, str]]:
    """One line per (row, message); '(N sessions)' when a message repeats within a row."""
    counts: dict[tuple[int, str], int] = {}
    for key in items:
        counts[key] = counts.get(key, 0) + 1
    return [(row, msg if n == 1 else f"{msg} ({n} sessions)")
            for (row, msg), n in sorted(counts.items(), key=lambda kv: kv[0][0])]


def summarise(rows: int, the_plan: Plan, outcomes: Outcomes,
              check_organizers: Callable[[Plan], list[tuple[int, str]]] | None = None) -> Validation:
    """Counts and problems of a planned sheet; ``check_organizers`` marks unknown organizers."""
    found = [(o.row, o.error or o.status) for _, o in sorted(outcomes.items())
             if o.status != SKIPPED]
    bad_rows = {b.row for b in the_plan.invalid}
    unknown: set[int] = set()
    if check_organizers is not None:
        organizer_problems = check_organizers(the_plan)
        found += [(row, f"invalid: {msg}") for row, msg in organizer_problems]
        unknown = {row for row, _ in organizer_problems}
    ready = [r for r in the_plan.requests if r.row not in unknown]
    return Validation(
        rows=rows, ready=len(ready), ready_rows=len({r.row for r in ready}),
        invalid=len(bad_rows | unknown), duplicate=len(the_plan.duplicates),
        skipped=len(the_plan.skipped), shared=len(the_plan.shared),
        problems=tuple(_collapse(found)))
