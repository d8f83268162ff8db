"""Subject templates: text with {Column Name} fields, parsed once, for every row.

A template is text with {Column Name} fields; {{ and }} are literal braces. A field may carry a
strftime format for date/time values after the *last* colon, e.g. {Date:%a %b %d}. Column names
may hold spaces and any character but braces; a column whose name itself contains a colon is
written with a trailing colon and no format: {Room: Building:}.
We do not use str.format: "{Course Code}" and "{Section.1}" would not survive it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TemplatePart:
    literal: str
    column: str | None = None
    spec: str | None = None


def parse_template(template: str) -> tuple[TemplatePart, ...]:
    """Split a subject template into literal text and column fields; ValueError on bad braces."""
    parts: list[TemplatePart] = []
    buf: list[str] = []
    i, n = 0, len(template)
    while i < n:
        ch = template[i]
        if ch == "{":
            if template.startswith("{{", i):
                buf.append("{")
                i += 2
                continue
            close = template.find("}", i + 1)
            if close < 0:
                raise ValueError(f"'{{' at character {i + 1} is never closed (write {{{{ for a literal brace)")
            inner = template[i + 1:close]
            if "{" in inner:
                raise ValueError(f"'{{' at character {i + 1} is never closed (write {{{{ for a literal brace)")
            name, spec = inner, None
            if ":" in inner:
                head, _, tail = inner.rpartition(":")
                name, spec = head, (tail or None)
            name = name.strip()
            if not name:
                raise ValueError(f"empty field '{{{inner}}}' at character {i + 1}: put a column name between the braces")
            parts.append(TemplatePart("".join(buf), name, spec))
            buf = []
            i = close + 1
        elif ch == "}":
            if template.startswith("}}", i):
                buf.append("}")
                i += 2
                continue
            raise ValueError(f"'}}' at character {i + 1} has no matching '{{' (write }}}} for a literal brace)")
        else:
            buf.append(ch)
            i += 1
    if buf or not parts:
        parts.append(TemplatePart("".join(buf)))
    return tuple(parts)


def template_columns(template: str) -> list[str]:
    """Column names a subject template reads, in order, without repeats."""
    try:
        parts = parse_template(template)
    except ValueError:
        return []
    seen: dict[str, None] = {}
    for p in parts:
        if p.column is not None:
            seen.setdefault(p.column, None)
    return list(seen)
