"""`bulkmeet init SCHEDULE`: a commented starter config whose mapping is guessed from the sheet.

The guesses look at the header names (ignoring case, spaces and punctuation) and, to tell an
"Instructor" column of names from one of e-mail addresses, or a "Start" column of times from one
of full date-times, at the first values below them. Every guessed line says which column it came
from; anything that could not be guessed is marked TODO. The file loads with ``load_config`` as
written, so ``bulkmeet validate`` can point at what is still wrong.
"""
from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from bulkmeet import times
from bulkmeet.atomic import atomic_write_bytes
from bulkmeet.config import EMAIL_RE, GUID_RE
from bulkmeet.errors import ConfigError
from bulkmeet.models import Sheet
from bulkmeet.sheets import read_sheet

SAMPLE_ROWS = 50

_ORGANIZER = [r"(instructor|teacher|faculty|professor|lecturer|organi[sz]er|host|owner)"
              r"( (e ?mail|upn|address|e ?mail address|id|object id|login))?",
              r".*\b(instructor|teacher|faculty|professor|lecturer|organi[sz]er)\b.*"]
_ATTENDEES = [r"(students?|attendees?|participants?|invitees?|learners?|members?|guests?)"
              r"( (e ?mails?|upns?|list|addresses))?",
              r".*\b(students?|attendees?|participants?|invitees?|learners?)\b.*"]
_PRESENTERS = [r"(tas?|teaching assistants?|presenters?|co ?teachers?|assistants?|co ?presenters?"
               r"|co ?instructors?)( (e ?mails?|upns?))?",
               r".*\b(ta|tas|presenters?|assistants?)\b.*"]
_DATE = [r"((class|meeting|session|course|lecture|event) )?date", r".*\bdate\b.*", r"day"]
_START = [r"(start|starts|begin|begins|from)( (time|date ?time|at))?",
          r"(time )?(start|begin)", r".*\b(start|begin)s?\b.*", r"time"]
_END = [r"(end|ends|finish|finishes|until|to)( (time|date ?time|at))?", r"(time )?(end|finish)",
        r".*\b(end|finish)(es|s)?\b.*"]
_SUBJECT = [r"(subject|meeting (title|name|subject)|event( (name|title))?|session (title|name))"]
_COURSE = [r"(course|course code|course id|subject code|class|catalog|catalog number|course number"
           r"|course no|module|module code)"]
_SECTION = [r"(section|sec|section number|section no|section code|group)"]
_TITLE = [r"(title|course title|course name|class title|class name|name|topic|description"
          r"|module name|session title|descr|long title|course descr|long descr)"]
_ID = [r"(crn|class nbr|class number|class no|section id|course reference number|class id"
       r"|course section id|session id|meeting id|event id|id|reference)"]
_THREAD = [r"(thread|thread id|chat thread|chat thread id|teams chat|chat id)"]


def _norm(name: str) -> str:
    return " ".join(re.sub(r"[^0-9a-z]+", " ", name.casefold()).split())


class _Columns:
    """The sheet's columns with a sample of values each, and which are already taken."""

    def __init__(self, sheet: Sheet) -> None:
        self.names = list(sheet.columns)
        self.used: set[str] = set()
        self.sample: dict[str, list[Any]] = {c: [] for c in self.names}
        for row in sheet.rows[:SAMPLE_ROWS]:
            for c in self.names:
                v = row.values.get(c)
                if v is not None:
                    self.sample[c].append(v)

    def find(self, patterns: Sequence[str], accept: Callable[[list[Any]], bool] | None = None,
             take: bool = True) -> str | None:
        for pattern in patterns:
            rx = re.compile(rf"^(?:{pattern})$")
            for c in self.names:
                if c in self.used or not rx.match(_norm(c)):
                    continue
                if accept is not None and self.sample[c] and not accept(self.sample[c]):
                    continue
                if take:
                    self.used.add(c)
                return c
        return None


def _mostly(values: list[Any], test: Callable[[Any], bool]) -> bool:
    return sum(1 for v in values if test(v)) * 2 >= len(values)


def _is_address(v: Any) -> bool:
    return isinstance(v, str) and bool(EMAIL_RE.match(v.strip()) or GUID_RE.match(v.strip()))


def _is_address_list(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    entries = [e.strip() for e in re.split(r"[;,]", v) if e.strip()]
    return bool(entries) and all("@" in e for e in entries)


def _ok(fn: Callable[[Any], Any]) -> Callable[[Any], bool]:
    def test(v: Any) -> bool:
        try:
            fn(v)
        except times.TimeValueError:
            return False
        return True
    return test


def _is_date(v: Any) -> bool:
    if isinstance(v, datetime):
        return v.time() == time(0)
    return isinstance(v, date) or (isinstance(v, str) and any(
        _ok(functools.partial(times.parse_date, date_order=order))(v) for order in ("MDY", "DMY")))


def _is_time(v: Any) -> bool:
    if isinstance(v, (time, timedelta)):
        return True
    if isinstance(v, datetime):
        return v.date() <= date(1900, 1, 1)
    return isinstance(v, str) and _ok(times.parse_time)(v)


def _is_datetime(v: Any) -> bool:
    if isinstance(v, datetime):
        return v.time() != time(0) and v.date() > date(1900, 1, 1)
    return isinstance(v, str) and any(
        _ok(functools.partial(times.parse_datetime, date_order=order))(v) for order in ("MDY", "DMY"))


def _guess_date_order(values: list[Any]) -> str | None:
    """"DMY" or "MDY" when some text date settles it (13/1/2027 is day-first), else None."""
    votes = set()
    for v in values:
        if isinstance(v, str):
            m = re.match(r"^\s*(\d{1,2})[/.-](\d{1,2})[/.-](\d{2}|\d{4})\b", v)
            if m:
                a, b = int(m[1]), int(m[2])
                if a > 12 >= b:
                    votes.add("DMY")
                elif b > 12 >= a:
                    votes.add("MDY")
    return votes.pop() if len(votes) == 1 else None


def local_zone_name() -> str | None:
    """This computer's IANA zone name, if it can be told: TZ, /etc/timezone, /etc/localtime."""
    from zoneinfo import ZoneInfo

    candidates = []
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz:
        candidates.append(tz)
    try:
        candidates.append(Path("/etc/timezone").read_text().strip())
    except OSError:
        pass
    try:
        target = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    except OSError:  # pragma: no cover
        pass
    for name in candidates:
        if not name or name.startswith("/"):
            continue
        try:
            ZoneInfo(name)
        except Exception:
            continue
        return name
    return None


def _q(text: str) -> str:
    """A TOML basic string."""
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _field(column: str) -> str:
    """A subject-template field for a column (a colon in the name needs a trailing colon)."""
    return "{" + column + (":" if ":" in column else "") + "}"


def _toml_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(_q(i) for i in items) + "]"


# Cells of rows that are not scheduled classes, in a time or days column of a registrar export.
ARRANGED = re.compile(r"^(arr|arranged|tba|tbd|to be (arranged|announced|determined)|n/?a|none|-+)$", re.I)


def scheduled(values: list[Any]) -> list[Any]:
    """``values`` without ARRANGED/TBA-style cells (in one real export, 1,374 of 1,775 rows)."""
    return [v for v in values if not (isinstance(v, str) and ARRANGED.match(" ".join(v.split())))]


def _department_codes(values: list[Any]) -> bool:
    """Short upper-case codes repeated across rows (ACCT, BIOL): a department, not a title."""
    texts = [v for v in values if isinstance(v, str)]
    return bool(texts) and all(len(v) <= 6 and v.isupper() for v in texts) and \
        len(set(texts)) * 2 <= max(len(texts), 2)


def _head(sheet: Sheet, mode: str) -> list[str]:
    """The comment block, time zone, [graph] and [auth]: the same for every kind of sheet."""
    zone = local_zone_name()
    zone_todo = ("# TODO: the IANA time zone of the dates and times in the sheet (this is this computer's)."
                 if zone else
                 "# TODO: the IANA time zone of the dates and times in the sheet, e.g. \"America/Chicago\".")
    return [
        f"# bulkmeet config for {sheet.path.name}, written by `bulkmeet init`.",
        "# The column mapping below is a guess from the sheet's headers: check every line marked TODO,",
        f"# then run:  bulkmeet validate {sheet.path.name} --config THIS_FILE",
        "# Columns in the sheet: " + ", ".join(sheet.columns),
        "",
        zone_todo,
        f"time_zone = {_q(zone or 'UTC')}",
        "",
        "[graph]",
        "# \"v1.0\", or \"beta\" (needed only for thread_id / chatInfo).",
        "api_version = \"v1.0\"",
        "# base_url = \"https://graph.microsoft.com\"",
        "# ca_bundle = \"/path/to/ca-bundle.pem\"   # only behind a TLS-inspecting proxy",
        "",
        "[auth]",
        "# \"app\": meetings for each row's organizer (needs OnlineMeetings.ReadWrite.All, User.Read.All",
        "# and an application access policy); \"delegated\": meetings as yourself after `bulkmeet login`.",
        f"mode = {_q(mode)}",
        "# TODO: Directory (tenant) ID from the app registration's Overview page in the Azure portal.",
        "tenant_id = \"\"",
        "# TODO: Application (client) ID from the same page.",
        "client_id = \"\"",
        "# NAME of the environment variable holding the client secret (never the secret itself).",
        "client_secret_env = \"BULKMEET_CLIENT_SECRET\"",
        "# certificate_path = \"/etc/bulkmeet/app.pem\"   # instead of a secret",
        "",
    ]


@dataclass(frozen=True)
class _Guess:
    """What ``starter_config`` guessed from the headers and first values of a one-row-per-meeting
    sheet; every field is a column name (or None when nothing fitted)."""

    organizer: str | None
    full_start: str | None
    full_end: str | None
    day: str | None
    start_time: str | None
    end_time: str | None
    attendees: tuple[tuple[str, str], ...]
    thread: str | None
    subject: str
    keys: tuple[str, ...]
    date_order: str | None


def starter_config(sheet: Sheet) -> str:
    """TOML text with comments, the mapping guessed from the sheet's headers and first values."""
    from bulkmeet.starter_patterns import registrar_starter

    registrar = registrar_starter(sheet)
    if registrar is not None:  # weekly patterns (a days column): a registrar export
        return registrar
    guess = _guess(sheet)
    lines: list[str] = []
    lines.extend(_head(sheet, "app" if guess.organizer else "delegated"))
    lines.append("[mapping]")
    lines.extend(_organizer_lines(guess))
    lines.append("# Subject template: column names in braces, e.g. \"{Course} {Section}: {Title}\".")
    lines.append(f"subject = {_q(guess.subject)}")
    lines.extend(_when_lines(guess))
    lines.extend(_attendee_and_key_lines(guess))
    lines.append("")
    lines.extend(RUN_SYNC_AND_SETTINGS)
    return "\n".join(lines) + "\n"


def _guess(sheet: Sheet) -> _Guess:
    cols = _Columns(sheet)
    organizer = cols.find(_ORGANIZER, lambda vs: _mostly(vs, _is_address))
    if organizer is None:  # any column of addresses that is not students/TAs
        organizer = next((c for c in cols.names if c not in cols.used and cols.sample[c]
                          and _mostly(cols.sample[c], _is_address)
                          and not re.search(r"student|attendee|participant|\bta\b|assistant", _norm(c))),
                         None)
        if organizer:
            cols.used.add(organizer)
    full_start = cols.find(_START, lambda vs: _mostly(vs, _is_datetime))
    full_end = cols.find(_END, lambda vs: _mostly(vs, _is_datetime)) if full_start else None
    day = start_time = end_time = None
    if not full_start:
        day = cols.find(_DATE, lambda vs: _mostly(vs, _is_date))
        start_time = cols.find(_START, lambda vs: _mostly(scheduled(vs) or vs, _is_time))
        end_time = cols.find(_END, lambda vs: _mostly(scheduled(vs) or vs, _is_time)) if start_time else None
    attendees = [(c, "attendee") for c in [cols.find(_ATTENDEES, lambda vs: _mostly(vs, _is_address_list))] if c]
    presenter = cols.find(_PRESENTERS, lambda vs: _mostly(vs, _is_address_list))
    if presenter:
        attendees.append((presenter, "presenter"))
    thread = cols.find(_THREAD)
    subject = _guess_subject(sheet, cols)
    ident = cols.find(_ID, take=False)
    when_key = day or full_start
    if ident:
        keys = [ident] + ([when_key] if when_key else [])
    else:
        keys = [c for c in (cols.find(_COURSE, take=False), cols.find(_SECTION, take=False), when_key)
                if c] or [sheet.columns[0]]
    date_order = _guess_date_order(cols.sample[when_key]) if when_key else None
    return _Guess(organizer, full_start, full_end, day, start_time, end_time, tuple(attendees),
                  thread, subject, tuple(keys), date_order)


def _guess_subject(sheet: Sheet, cols: _Columns) -> str:
    subject_col = cols.find(_SUBJECT, take=False)
    if subject_col and _department_codes(cols.sample[subject_col]):
        subject_col = None  # a registrar's "Subject" is the department (ACCT): never the title alone
    course = cols.find(_COURSE, take=False)
    section = cols.find(_SECTION, take=False)
    title = cols.find(_TITLE, take=False)
    usable = [c for c in cols.names if "{" not in c and "}" not in c]
    if subject_col and subject_col in usable:
        return _field(subject_col)
    head = " ".join(_field(c) for c in (course, section) if c and c in usable)
    subject = f"{head}: {_field(title)}" if head and title in usable else head or (
        _field(title) if title in usable else "")
    if not subject:
        first_text = next((c for c in usable if c not in cols.used), usable[0] if usable else None)
        subject = _field(first_text) if first_text else "Class meeting"
    return subject


def _organizer_lines(g: _Guess) -> list[str]:
    if g.organizer:
        return [f"# Organizer of each meeting: e-mail/UPN or Entra object ID (guessed: column "
                f"'{g.organizer}').", f"organizer = {_q(g.organizer)}"]
    return ["# TODO: no organizer column found, so this file uses mode = \"delegated\" (meetings as",
            "# yourself). For app mode name the column with each organizer's e-mail or object ID:",
            "# organizer = \"Instructor Email\""]


def _when_lines(g: _Guess) -> list[str]:
    lines: list[str] = []
    add = lines.append
    if g.full_start:
        add("# When (guessed): full date-time columns.")
        add(f"start = {_q(g.full_start)}")
        if g.full_end:
            add(f"end = {_q(g.full_end)}")
        else:
            add("# end = \"End\"   # TODO if the sheet has one; else the meeting lasts default_duration_minutes")
    elif g.day and g.start_time:
        add("# When (guessed): a date column and start/end time columns.")
        add(f"date = {_q(g.day)}")
        add(f"start_time = {_q(g.start_time)}")
        if g.end_time:
            add(f"end_time = {_q(g.end_time)}")
        else:
            add("# end_time = \"End Time\"   # TODO if the sheet has one")
    elif g.start_time:
        # Times without dates: never a config that starts every meeting "now". This column does
        # not exist, so `bulkmeet validate` stops (exit 2) and names it until it is filled in.
        add("# TODO: the sheet has class times but no date column. Name the column with each class's")
        add("# date here; or, for weekly patterns (a days column such as MWF), use [pattern] and [term]")
        add("# instead (README \"Registrar exports\").")
        add("date = \"TODO: the date column\"")
        add(f"start_time = {_q(g.start_time)}")
        if g.end_time:
            add(f"end_time = {_q(g.end_time)}")
    else:
        add("# TODO: no date/time columns found, so meetings start when they are created and last an")
        add("# hour. Map them with date + start_time + end_time, or start + end:")
        add("# date = \"Date\"")
        add("# start_time = \"Start Time\"")
        add("# end_time = \"End Time\"")
    if g.day or g.full_start:
        if g.date_order:
            add(f"# Dates like 1/12/2027 in this sheet are {'day' if g.date_order == 'DMY' else 'month'}-first.")
        else:
            add("# How to read 1/12/2027: \"MDY\" = January 12 (US), \"DMY\" = 1 December.")
        add(f"date_order = {_q(g.date_order or 'MDY')}")
    add("# default_duration_minutes = 60   # length of a meeting whose end cell is empty")
    return lines


def _attendee_and_key_lines(g: _Guess) -> list[str]:
    lines: list[str] = []
    add = lines.append
    if g.attendees:
        add("# Attendee columns: addresses separated by ; or , (guessed).")
        items = [(_q(c) if role == "attendee" else f"{{ column = {_q(c)}, role = {_q(role)} }}")
                 for c, role in g.attendees]
        add(f"attendees = [{', '.join(items)}]")
    else:
        add("# attendees = [\"Students\", { column = \"TA\", role = \"presenter\" }]")
    if g.thread:
        add("# Teams chat to attach (needs api_version = \"beta\" in [graph]):")
        add(f"# thread_id = {_q(g.thread)}")
    add("# The externalId that makes re-runs safe comes from these columns plus the organizer.")
    add("# TODO: name what identifies one class session (section id and day); leave out what may")
    add("# change (time, room, title, students), or every change makes a new meeting.")
    add(f"keys = {_toml_list(list(g.keys))}")
    return lines


# Written commented out, so a new user finds them (README "Keeping Teams in step with the sheet").
SYNC_AND_SETTINGS = (
    "",
    "# Removed rows: their meetings are reported as \"orphaned\" (exit 7) until you cancel them with",
    "# --cancel-removed, or set cancel_removed = true. Nothing is cancelled when more than the",
    "# limits below would go in one run (exit 8; --max-cancel N allows it once).",
    "# [sync]",
    "# cancel_removed = false",
    "# max_cancel_percent = 10",
    "# max_cancel_count = 25",
    "",
    "# Meeting options for every meeting (Teams defaults when unset); PATCHed after creation and",
    "# whenever they change. Per-row columns: [mapping] settings = { allowMeetingChat = \"Chat\" }.",
    "# [settings]",
    "# lobbyBypassSettings.scope = \"organization\"   # organizer, organization, everyone, invited, ...",
    "# allowedPresenters = \"organizer\"              # everyone, organization, roleIsPresenter, organizer",
    "# allowMeetingChat = \"enabled\"                 # enabled, disabled, limited",
    "# recordAutomatically = false",
    "# allowRecording = true",
    "# allowTranscription = true",
    "# isEntryExitAnnounced = false",
    "# allowAttendeeToEnableCamera = true",
    "# allowAttendeeToEnableMic = true",
)

# The end of every starter config, whichever shape of sheet it was written for.
RUN_SYNC_AND_SETTINGS = (
    "[run]",
    "concurrency = 4",
    "# journal = \"/var/lib/bulkmeet/term.journal.sqlite\"   # default: beside the schedule",
    "# log_file = \"/var/log/bulkmeet/bulkmeet.log\"",
    *SYNC_AND_SETTINGS,
)


def write_starter_config(schedule: Path, out: Path | None = None, *, force: bool = False) -> Path:
    """Write the starter config (default: bulkmeet.toml beside the schedule) and return its path.

    An existing file is never overwritten without ``force``: it may hold hours of someone's edits.
    """
    schedule = Path(schedule)
    out = Path(out) if out is not None else schedule.parent / "bulkmeet.toml"
    if out.exists() and not force:
        raise ConfigError(f"{out}: already exists; bulkmeet init does not overwrite a config. "
                          "Use --force to replace it, or --output to write somewhere else.")
    if out.is_dir():
        raise ConfigError(f"{out}: is a folder; give a file name with --output.")
    text = starter_config(read_sheet(schedule))
    data = text.encode("utf-8")
    try:
        if force:
            atomic_write_bytes(out, data)
        else:
            with open(out, "xb") as fh:  # "x": never clobber a file created meanwhile
                fh.write(data)
    except FileExistsError:
        raise ConfigError(f"{out}: already exists; use --force to replace it.") from None
    except OSError as exc:
        raise ConfigError(f"{out}: cannot write the config ({exc.strerror}).") from None
    return out
