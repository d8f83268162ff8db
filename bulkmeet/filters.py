"""Rows to skip: ``[[skip]]`` rules on a column's value (equals, one of, pattern).

Registrar exports hold rows that are not scheduled classes: ``ARRANGED``/``TBA`` in the time
column (1,374 of 1,775 rows in one real export), online or independent-study types, cancelled
sections. A skipped row is reported with status ``skipped`` and the rule that matched; it is not
an error and does not make the exit status non-zero.

Values are compared after HTML-entity decoding, trimming, collapsing spaces and ignoring case.
``equals = ""`` matches an empty cell. ``pattern`` is a regular expression that must match the
whole cell (case ignored): ``pattern = "TBA|ARR.*"``. The first rule that matches wins.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bulkmeet import text, times
from bulkmeet.errors import ConfigError, did_you_mean

_KEYS = ("column", "equals", "one_of", "pattern", "reason")


@dataclass(frozen=True)
class SkipRule:
    column: str
    equals: str | None = None
    one_of: tuple[str, ...] = ()
    pattern: str | None = None
    reason: str | None = None  # shown in the output; default: the rule itself
    number: int = 0  # 1-based position in the config

    def describe(self) -> str:
        if self.equals is not None:
            what = f"{self.column} is \"{self.equals}\"" if self.equals else f"{self.column} is empty"
        elif self.one_of:
            what = f"{self.column} is one of " + ", ".join(f"\"{v}\"" for v in self.one_of)
        else:
            what = f"{self.column} matches \"{self.pattern}\""
        return f"skip rule {self.number} ({what})" + (f": {self.reason}" if self.reason else "")


def parse_skip_rules(raw: Any, where: str) -> tuple[SkipRule, ...]:
    """``[[skip]]`` tables from TOML; ``ConfigError`` naming the rule and key."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
        raise ConfigError(f"{where}: skip rules are written [[skip]] (double brackets), one per "
                          "rule, with column and equals, one_of or pattern.")
    rules = []
    for n, entry in enumerate(raw, start=1):
        w = f"{where}: [[skip]] rule {n}"
        for key in entry:
            if key not in _KEYS:
                raise ConfigError(f"{w}: unknown key '{key}'.{did_you_mean(key, _KEYS)}")
        column = entry.get("column")
        if not isinstance(column, str) or not column.strip():
            raise ConfigError(f"{w} needs column = \"...\" (the column to look at).")
        tests = [k for k in ("equals", "one_of", "pattern") if k in entry]
        if len(tests) != 1:
            raise ConfigError(f"{w} needs exactly one of equals = \"...\", one_of = [\"...\", ...] "
                              "or pattern = \"...\".")
        equals = entry.get("equals")
        if equals is not None and not isinstance(equals, str):
            raise ConfigError(f"{w}: equals must be a text value in quotes.")
        one_of = entry.get("one_of", [])
        if not isinstance(one_of, list) or not all(isinstance(v, str) for v in one_of) or (
                "one_of" in entry and not one_of):
            raise ConfigError(f"{w}: one_of must be a list of text values, e.g. one_of = "
                              "[\"Online\", \"Independent Study\"].")
        pattern = entry.get("pattern")
        if pattern is not None:
            if not isinstance(pattern, str) or not pattern:
                raise ConfigError(f"{w}: pattern must be a regular expression in quotes.")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"{w}: pattern \"{pattern}\" is not a regular expression ({exc}).") from None
        reason = entry.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise ConfigError(f"{w}: reason must be a text value in quotes.")
        rules.append(SkipRule(column.strip(), equals, tuple(one_of), pattern, reason, n))
    return tuple(rules)


class SkipFilter:
    """The rules compiled once; ``match(values)`` gives the first matching rule or None."""

    def __init__(self, rules: tuple[SkipRule, ...], columns: Mapping[str, str]) -> None:
        self.compiled: list[tuple[SkipRule, str, frozenset[str] | None, re.Pattern[str] | None]] = []
        for r in rules:
            column = columns.get(r.column, r.column)
            if r.equals is not None:
                wanted = frozenset([text.fold(r.equals)])
                self.compiled.append((r, column, wanted, None))
            elif r.one_of:
                self.compiled.append((r, column, frozenset(text.fold(v) for v in r.one_of), None))
            else:
                assert r.pattern is not None
                rx = re.compile(r.pattern, re.IGNORECASE)
                self.compiled.append((r, column, None, rx))

    def match(self, values: Mapping[str, Any]) -> SkipRule | None:
        for rule, column, wanted, rx in self.compiled:
            raw = values.get(column)
            value = "" if raw is None else text.fold(raw if isinstance(raw, str) else times.show(raw).strip('"'))
            if wanted is not None:
                if value in wanted:
                    return rule
            elif rx is not None and rx.fullmatch(value):
                return rule
        return None
