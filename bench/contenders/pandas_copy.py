"""Baseline for the no-op rerun: read the schedule and write it back, nothing else.

This is the floor for a rerun that has nothing to send: bulkmeet must still read the sheet and
write the output sheet, so "within 1.5x of a bare pandas read + openpyxl write" says its own
overhead (planning, journal look-ups, result columns) is small.
"""
from __future__ import annotations

import sys

import pandas as pd


def main() -> int:
    source, target = sys.argv[1], sys.argv[2]
    if source.endswith(".csv"):
        frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    else:
        frame = pd.read_excel(source, dtype=object, engine="openpyxl")
    if target.endswith(".csv"):
        frame.to_csv(target, index=False)
    else:
        frame.to_excel(target, index=False, engine="openpyxl")
    print(f"{len(frame)} rows copied")
    return 0


if __name__ == "__main__":
    sys.exit(main())
