"""Which sheet column each column the config names is, and the one error when one is missing.

Columns are matched exactly, else ignoring case and spacing when that finds exactly one (a
re-export that changes capitalisation must not stop a cron job). Every section's columns count
(``Config.mapped_columns``: [mapping], [pattern], [term], [staff], [[skip]]). A missing column stops
the run before anything is sent (``InputError``, exit 2), naming the columns that exist and the
closest one.
"""
from __future__ import annotations

import difflib

from bulkmeet.config import Config
from bulkmeet.errors import InputError
from bulkmeet.models import REQUEST_COLUMN, RESULT_COLUMNS, Sheet


def _fold(name: str) -> str:
    return " ".join(name.split()).casefold()


def resolve_columns(sheet: Sheet, config: Config) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Map each column the config names to the sheet's column.

    An exact match wins; otherwise a unique match ignoring case and spacing ("start time" finds
    "Start  Time"), so a re-export that changes capitalisation does not stop a cron job. Returns
    (resolved, missing) where missing holds (config key, column) pairs.
    """
    exact = set(sheet.columns)
    folded: dict[str, list[str]] = {}
    for c in sheet.columns:
        folded.setdefault(_fold(c), []).append(c)
    resolved: dict[str, str] = {}
    missing: list[tuple[str, str]] = []
    for key, col in config.mapped_columns():
        if col in resolved:
            continue
        if col in exact:
            resolved[col] = col
            continue
        candidates = folded.get(_fold(col), [])
        if len(candidates) == 1:
            resolved[col] = candidates[0]
        elif (key, col) not in missing:
            missing.append((key, col))
    return resolved, missing


def check_columns(sheet: Sheet, config: Config) -> None:
    """Raise ``InputError`` (exit 2, nothing sent) when a column the config maps is not in the sheet."""
    _, missing = resolve_columns(sheet, config)
    if not missing:
        return
    cfg_name = config.path.name if config.path else "the config"
    available = ", ".join(sheet.columns)
    sentences = []
    for key, col in missing:
        if col in RESULT_COLUMNS or col == REQUEST_COLUMN:
            sentences.append(
                f"{cfg_name} maps {key} to column '{col}', but that is one of the columns bulkmeet "
                "writes into its output sheet, and it ignores them when reading; rename the column "
                "in the sheet and in the config.")
            continue
        twins = [c for c in sheet.columns if _fold(c) == _fold(col)]
        if len(twins) > 1:
            sentences.append(
                f"{cfg_name} maps {key} to column '{col}', which is not in the sheet exactly as "
                f"written and matches {' and '.join(repr(t) for t in twins)} when case and spacing "
                "are ignored; write the exact name in the config.")
            continue
        close = difflib.get_close_matches(_fold(col), [_fold(c) for c in sheet.columns], n=1, cutoff=0.6)
        hint = ""
        if close:
            original = next(c for c in sheet.columns if _fold(c) == close[0])
            hint = f" Did you mean '{original}'?"
        sentences.append(f"{cfg_name} maps {key} to column '{col}', which the sheet does not have.{hint}")
    where = f"{sheet.path}" + (f" (sheet '{sheet.sheet_name}')" if sheet.sheet_name else "")
    raise InputError(f"{where}: {' '.join(sentences)} Columns in the sheet: {available}.")
