"""Dates and times as registrars type them, turned into the UTC instants Graph wants.

Values arrive either as real Excel cells (``datetime``, ``date``, ``time``, ``timedelta`` from the
reader) or as text. Text forms accepted (case-insensitive, surrounding spaces ignored):

* dates: ``2027-02-01`` and ``2027/02/01`` (always year-month-day); ``2/1/2027``, ``2-1-2027``,
  ``2.1.2027`` and two-digit years ``2/1/27`` (read as 20YY), whose order is the config's
  ``date_order``: "MDY" (the default, US registrar exports: February 1) or "DMY" (2 January);
  month names in English: ``1-Feb-2027``, ``1 Feb 2027``, ``Feb 1, 2027``, ``February 1st 2027``,
  with an optional weekday in front (``Mon, Feb 1, 2027``).
  A value that is impossible in the configured order (``13/1/2027`` with MDY) is an error, never
  silently read the other way round: one sheet with two orders would give wrong dates.
* times: 24-hour ``09:00``, ``9:00``, ``21:30:15``; 12-hour ``9:00 AM``, ``9am``, ``12:30 p.m.``
  (``12 AM`` is midnight, ``12 PM`` noon). A bare ``9`` is refused: 9 in the morning or evening?
* date-times: ISO 8601 (``2027-02-01T09:00``, ``2027-02-01 09:00:00``, with ``Z`` or ``+01:00``)
  and any date form above followed by a time form (``2/1/2027 9:00 AM``). An offset in the text
  is honoured; without one the time is local to the config's time zone.

Excel cells: a date cell is a ``datetime`` at midnight; a time cell is a ``time`` (times stored
with Excel's 1899-12-30 zero date, or as a duration, are read as the time of day). Sub-second
noise from Excel's float storage is rounded to the nearest second.

Daylight saving time (``to_utc``), following what calendar programs do (RFC 5545, 3.3.5) where it is
safe, and refusing where a guess would move a class:

* a local time that happens twice (the fall-back hour, 1:30 AM on the first Sunday of November in
  America/Chicago) is read as its **first** occurrence, i.e. still on daylight time;
* a local time that does not exist (the spring-forward gap, 2:30 AM on the second Sunday of March)
  is an **error** for the row, naming the gap: such a time is a typo, and calendar programs that
  "fix" it silently move the meeting by an hour.

Parsing results are cached: a term's schedule repeats the same few dates and times thousands of
times, so 100,000 rows cost a few thousand real parses.
"""
from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

from bulkmeet.cells import printable

UTC = UTC

DATE_HINT = "use 2027-02-01 or 2/1/2027"
TIME_HINT = "use 09:00 or 9:00 AM"
DATETIME_HINT = "use 2027-02-01 09:00 or 2/1/2027 9:00 AM"


class TimeValueError(ValueError):
    """A value that is not a usable date or time; ``str()`` is a sentence fragment for the user,
    starting with the value, e.g. ``"25:00" is not a time (use 09:00 or 9:00 AM)``."""


class NonexistentTimeError(TimeValueError):
    """A local time inside a spring-forward gap."""


class OutOfRangeError(TimeValueError):
    """A value whose UTC instant falls outside years 1..9999 (Python's datetime range)."""


_MONTHS = {
    "jan": 1, "january": 1, "feb": 2, "february": 2, "mar": 3, "march": 3, "apr": 4, "april": 4,
    "may": 5, "jun": 6, "june": 6, "jul": 7, "july": 7, "aug": 8, "august": 8, "sep": 9,
    "sept": 9, "september": 9, "oct": 10, "october": 10, "nov": 11, "november": 11, "dec": 12,
    "december": 12,
}
_WEEKDAY = r"(?:(?:mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)(?:day|nesday|sday|rsday|urday)?\.?,?\s+)?"
_MONTH = r"(?P<mon>[a-z]{3,9})\.?"
_DATE_ISO = re.compile(r"^(?P<y>\d{4})[-/.](?P<a>\d{1,2})[-/.](?P<b>\d{1,2})$")
_DATE_NUM = re.compile(r"^(?P<a>\d{1,2})(?P<sep>[-/.])(?P<b>\d{1,2})(?P=sep)(?P<y>\d{4}|\d{2})$")
_DATE_DMONY = re.compile(_WEEKDAY + r"(?P<d>\d{1,2})(?:st|nd|rd|th)?[\s-]+" + _MONTH
                         + r",?[\s-]+(?P<y>\d{4}|\d{2})$", re.I)
_DATE_MONDY = re.compile(_WEEKDAY + _MONTH + r"[\s-]+(?P<d>\d{1,2})(?:st|nd|rd|th)?,?[\s-]+"
                         r"(?P<y>\d{4})$", re.I)
_TIME_24 = re.compile(r"^(?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2})(?:\.(?P<f>\d{1,6}))?)?$")
_TIME_12 = re.compile(r"^(?P<h>\d{1,2})(?::(?P<m>\d{2})(?::(?P<s>\d{2}))?)?\s*(?P<ap>[ap])\.?\s*m\.?$",
                      re.I)
_TIME_TEXT = r"\d{1,2}(?::\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?(?:\s*[ap]\.?\s*m\.?)?"
_DATETIME = re.compile(r"^(?P<date>.+?)(?:\s*T\s*|\s*,\s*|\s+(?:at\s+)?)(?P<time>" + _TIME_TEXT
                       + r")\s*(?P<tz>Z|UTC|GMT|[+-]\d{2}:?\d{2})?$", re.I)
_ISO_START = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


SHOWN_CHARS = 80  # a longer value is cut in messages (one cell may hold 100,000 characters)


def show(value: object) -> str:
    """A value quoted for an error message, as the user would recognise it in the sheet.

    Control characters are escaped (``\\x1b``): a message is printed on a terminal, and a cell
    holding an escape sequence must not drive it. Very long text is cut, with its length.
    """
    if isinstance(value, str):
        if len(value) > SHOWN_CHARS:
            return f"\"{printable(value[:SHOWN_CHARS])}…\" ({len(value):,} characters)"
        return f"\"{printable(value)}\""
    if isinstance(value, datetime):
        if value.tzinfo is None and value.time() == time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="minutes" if value.second == 0 else "seconds")
    if isinstance(value, time):
        return value.isoformat(timespec="minutes" if value.second == 0 else "seconds")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _round_second(t: time) -> time:
    if not t.microsecond:
        return t
    whole = datetime.combine(date(2000, 1, 1), t.replace(microsecond=0))
    if t.microsecond >= 500_000:
        whole += timedelta(seconds=1)
    return whole.time().replace(tzinfo=t.tzinfo)


def _year(text: str) -> int:
    y = int(text)
    return 2000 + y if len(text) == 2 else y


def _make_date(y: int, m: int, d: int, raw: str, hint: str = "") -> date:
    try:
        return date(y, m, d)
    except ValueError:
        raise TimeValueError(f"{show(raw)} is not a date{hint} ({DATE_HINT})") from None


@lru_cache(maxsize=4096)
def _date_from_text(text: str, date_order: str) -> date:
    s = " ".join(text.split())
    if not s:
        raise TimeValueError(f"{show(text)} is not a date ({DATE_HINT})")
    m = _DATE_ISO.match(s)
    if m:
        return _make_date(int(m["y"]), int(m["a"]), int(m["b"]), text, " (year-month-day)")
    m = _DATE_NUM.match(s)
    if m:
        a, b = int(m["a"]), int(m["b"])
        month, day = (a, b) if date_order == "MDY" else (b, a)
        try:
            return date(_year(m["y"]), month, day)
        except ValueError:
            pass
        order = "month/day/year" if date_order == "MDY" else "day/month/year"
        other = "DMY" if date_order == "MDY" else "MDY"
        raise TimeValueError(
            f"{show(text)} is not a date in {order} order (the config's date_order is "
            f"\"{date_order}\"; if the sheet writes dates the other way round, set "
            f"date_order = \"{other}\")")
    m = _DATE_DMONY.match(s) or _DATE_MONDY.match(s)
    if m:
        named = _MONTHS.get(m["mon"].lower())
        if named is not None:
            return _make_date(_year(m["y"]), named, int(m["d"]), text)
    raise TimeValueError(f"{show(text)} is not a date ({DATE_HINT})")


@lru_cache(maxsize=4096)
def _time_from_text(text: str) -> time:
    s = " ".join(text.split())
    m = _TIME_24.match(s)
    if m:
        h, mi = int(m["h"]), int(m["m"])
        sec = int(m["s"] or 0)
        frac = int((m["f"] or "0").ljust(6, "0"))
        if h < 24 and mi < 60 and sec < 60:
            return _round_second(time(h, mi, sec, frac))
    m = _TIME_12.match(s)
    if m:
        h, mi, sec = int(m["h"]), int(m["m"] or 0), int(m["s"] or 0)
        if 1 <= h <= 12 and mi < 60 and sec < 60:
            h = h % 12 + (12 if m["ap"].lower() == "p" else 0)
            return time(h, mi, sec)
    raise TimeValueError(f"{show(text)} is not a time ({TIME_HINT})")


def _offset(text: str | None) -> tzinfo | None:
    if not text:
        return None
    t = text.upper()
    if t in ("Z", "UTC", "GMT"):
        return UTC
    sign = -1 if t[0] == "-" else 1
    digits = t[1:].replace(":", "")
    h, m = int(digits[:2]), int(digits[2:])
    if h > 23 or m > 59:
        raise ValueError(text)
    return timezone(sign * timedelta(hours=h, minutes=m))


@lru_cache(maxsize=8192)
def _datetime_from_text(text: str, date_order: str) -> datetime:
    s = " ".join(text.split())
    if _ISO_START.match(s):
        try:
            value = datetime.fromisoformat(s)
            return value.replace(microsecond=0) if value.microsecond else value
        except ValueError:
            pass
    m = _DATETIME.match(s)
    if m:
        try:
            d = _date_from_text(m["date"], date_order)
            t = _time_from_text(m["time"])
            tz = _offset(m["tz"])
        except (TimeValueError, ValueError):
            pass
        else:
            return datetime.combine(d, t, tzinfo=tz)
    try:
        _date_from_text(s, date_order)
    except TimeValueError:
        pass
    else:
        raise TimeValueError(f"{show(text)} has a date but no time of day ({DATETIME_HINT})")
    raise TimeValueError(f"{show(text)} is not a date and time ({DATETIME_HINT})")


def parse_date(value: object, date_order: str = "MDY") -> date:
    """The calendar day of a date cell or text. A date-time's time part is ignored."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return _date_from_text(value, date_order)
    if isinstance(value, time):
        raise TimeValueError(f"{show(value)} is a time, not a date ({DATE_HINT})")
    raise TimeValueError(f"{show(value)} is not a date ({DATE_HINT})")


def parse_time(value: object) -> time:
    """The time of day of a time cell or text (naive; the config's zone applies later)."""
    if isinstance(value, time):
        return _round_second(value.replace(tzinfo=None))
    if isinstance(value, datetime):
        # Excel keeps times as fractions of a day; some files store them as date-times on
        # 1899-12-30, or a date-time cell is mapped as a time: the time of day is what is meant.
        return _round_second(value.time())
    if isinstance(value, timedelta):
        if timedelta(0) <= value < timedelta(days=1):
            return _round_second((datetime(2000, 1, 1) + value).time())
        raise TimeValueError(f"{show(value)} is a duration of more than a day, not a time ({TIME_HINT})")
    if isinstance(value, str):
        return _time_from_text(value)
    if isinstance(value, date):
        raise TimeValueError(f"{show(value)} is a date, not a time ({TIME_HINT})")
    raise TimeValueError(f"{show(value)} is not a time ({TIME_HINT})")


def parse_datetime(value: object, date_order: str = "MDY") -> datetime:
    """A full date and time: naive (local to the config's zone) unless the text has an offset."""
    if isinstance(value, datetime):
        if value.microsecond:
            whole = value.replace(microsecond=0)
            return whole if value.microsecond < 500_000 or whole == datetime.max.replace(
                microsecond=0, tzinfo=whole.tzinfo) else whole + timedelta(seconds=1)
        return value
    if isinstance(value, date):
        return datetime.combine(value, time(0))
    if isinstance(value, str):
        return _datetime_from_text(value, date_order)
    if isinstance(value, (time, timedelta)):
        raise TimeValueError(f"{show(value)} is a time without a date ({DATETIME_HINT})")
    raise TimeValueError(f"{show(value)} is not a date and time ({DATETIME_HINT})")


def parse_time_or_datetime(value: object, date_order: str = "MDY") -> time | datetime:
    """For an end column: a full date-time, or just a time (meaning: on the start's day)."""
    if isinstance(value, (time, timedelta)):
        return parse_time(value)
    if isinstance(value, str):
        try:
            return _datetime_from_text(value, date_order)
        except TimeValueError:
            try:
                return _time_from_text(value)
            except TimeValueError:
                pass
            raise
    return parse_datetime(value, date_order)


def zone(name: str) -> ZoneInfo:
    """ZoneInfo objects are cached by the standard library; this just names the intent."""
    return ZoneInfo(name)


@lru_cache(maxsize=16384)
def to_utc(value: datetime, tz: ZoneInfo) -> datetime:
    """An aware UTC datetime for a sheet value: naive values are wall-clock time in ``tz``.

    Ambiguous wall times (fall back) are their first occurrence; nonexistent ones (spring
    forward) raise ``NonexistentTimeError`` (see the module docstring for why).
    """
    try:
        if value.tzinfo is not None:
            return value.astimezone(UTC)
        aware = value.replace(tzinfo=tz, fold=0)
        utc = aware.astimezone(UTC)
        back = utc.astimezone(tz).replace(tzinfo=None)
    except OverflowError:
        # 9999-12-31 23:00 in Chicago is in the year 10000 in UTC; 0001-01-01 00:30 in Berlin
        # is before year 1. Python's datetime cannot hold either: the row is out of range.
        raise OutOfRangeError(
            f"{show(value)} is outside the dates bulkmeet can convert to UTC (years 1 to "
            f"9999{'' if value.tzinfo else ', in ' + tz.key}); check the year") from None
    if back != value:
        raise NonexistentTimeError(_gap_message(value, tz))
    return utc


def _exists(value: datetime, tz: ZoneInfo) -> bool:
    try:
        return value.replace(tzinfo=tz).astimezone(UTC).astimezone(tz).replace(tzinfo=None) == value
    except OverflowError:
        return True  # at the very ends of the calendar: stop walking


def _gap_message(value: datetime, tz: ZoneInfo) -> str:
    """Name the skipped hour, found by walking minute by minute (only ever on this error path)."""
    start = value.replace(second=0, microsecond=0)
    for _ in range(24 * 60):
        if _exists(start - timedelta(minutes=1), tz):
            break
        start -= timedelta(minutes=1)
    end = value.replace(second=0, microsecond=0)
    for _ in range(24 * 60):
        end += timedelta(minutes=1)
        if _exists(end, tz):
            break
    return (f"{show(value)} does not exist in {tz.key}: that night the clocks jump from "
            f"{start:%H:%M} to {end:%H:%M} (daylight saving time); use a time outside that gap")


def format_local(value: date | time | datetime) -> str:
    """Canonical text for a parsed value: used in externalId keys and subject fields."""
    if isinstance(value, datetime):
        if value.tzinfo is None and value.time() == time(0):
            return value.date().isoformat()
        if value.tzinfo is not None:
            try:
                value = value.astimezone(UTC)
            except OverflowError:  # beyond year 9999 in UTC: keep the offset as typed
                return value.isoformat(timespec="seconds")
            return value.strftime("%Y-%m-%dT%H:%M:%SZ")
        return value.isoformat(timespec="minutes" if value.second == 0 else "seconds")
    if isinstance(value, time):
        return value.isoformat(timespec="minutes" if value.second == 0 else "seconds")
    return value.isoformat()
