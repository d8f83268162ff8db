"""Cell text rules shared by the writer and the reader: formula neutralising, and its inverse.

bulkmeet's output sheet is opened by people with Excel and fed back to bulkmeet as the next
input. So one rule decides both directions, here, and they stay exact inverses:

* ``neutralise(text)`` puts a ``'`` before text a spreadsheet would run as a formula: text that
  starts with ``=``, ``+``, ``-``, ``@``, tab or CR (OWASP's CSV-injection list), such as
  ``=HYPERLINK(...)``, ``+cmd|' /C calc'!A0``, ``-2+3`` or ``@SUM(A1)``.
* ``unneutralise(text)`` removes exactly that ``'`` again, so that
  ``unneutralise(neutralise(s)) == s`` for every string (a property test checks it).

Not touched, because there is nothing to run and people must be able to read them:

* plain numbers such as ``-5``, ``+3.25``, ``1e5`` (Excel stores the text anyway);
* dialable phone numbers in international form, ``+1 425-555-0100``, ``+44 (20) 7946 0958``:
  a ``+``, then 7 to 15 digits (E.164's most) in groups separated by one space, ``-`` or ``.``,
  one group optionally in brackets. No letters, no second ``+``, no ``|``, ``!`` or ``(`` before
  a digit group, so no function or DDE call can hide in one.

Text that itself starts with ``'`` is quoted once more when removing one ``'`` would change it
(``'=x`` is written ``''=x``); that is what makes the pair exact inverses.

``column_letter`` names a column as Excel does (``A``, ``Z``, ``AA``) for messages about CSV and
.xlsx files alike, without importing openpyxl for a CSV run.
"""
from __future__ import annotations

import re

__all__ = ["FORMULA_STARTS", "column_letter", "is_formula_like", "is_phone_number", "neutralise",
           "printable", "unneutralise"]

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?")
_PHONE = re.compile(r"\+\d+(?:[ .-]?(?:\(\d+\)|\d+))*")
_PHONE_DIGITS = (7, 15)


def column_letter(index: int) -> str:
    """``0`` -> ``A``, ``25`` -> ``Z``, ``26`` -> ``AA`` (0-based, as the readers count)."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def is_phone_number(text: str) -> bool:
    """``+1 425-555-0100``: an international number as Graph and people write it (see above)."""
    if not _PHONE.fullmatch(text) or text.count("(") > 1:
        return False
    digits = sum(ch.isdigit() for ch in text)
    return _PHONE_DIGITS[0] <= digits <= _PHONE_DIGITS[1]


def is_formula_like(text: str) -> bool:
    """Would a spreadsheet evaluate this text if it were typed or opened from a CSV?"""
    return (text[:1] in FORMULA_STARTS and not _PLAIN_NUMBER.fullmatch(text)
            and not is_phone_number(text))


def _needs_quote(text: str) -> bool:
    # Text starting with ' needs one more when the reader would otherwise strip its first '.
    while text[:1] == QUOTE:
        text = text[1:]
    return is_formula_like(text)


def neutralise(text: str) -> str:
    """Prefix ``'`` to text a spreadsheet would evaluate; numbers and phone numbers stay as is."""
    return QUOTE + text if text and _needs_quote(text) else text


def unneutralise(text: str) -> str:
    """The inverse of ``neutralise``: drop the ``'`` it added, and only that."""
    if text[:1] == QUOTE and _needs_quote(text[1:]):
        return text[1:]
    return text


# --- showing values on a terminal --------------------------------------------------------------

# C0 and C1 control characters but tab (harmless, and shown as typed), DEL, and the Unicode
# marks that reorder or hide text on screen (bidirectional overrides and isolates, line and
# paragraph separators, zero-width no-break space). CR and LF are escaped: a CR lets the rest
# of a message overwrite its start, and one problem is one line.
_UNPRINTABLE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """Text with control characters written as ``\\x1b`` etc.: safe to print on a terminal.

    A cell holding an escape sequence (``ESC ] ... BEL`` retitles a terminal, others move the
    cursor or hide text) must never reach the screen raw through an error message or log line.
    """
    return _UNPRINTABLE.sub(_escape, text)
