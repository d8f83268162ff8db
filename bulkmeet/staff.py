"""Organizers from a staff directory: instructor names (or staff IDs) in the sheet -> UPNs.

Registrar exports name instructors, not addresses: ``Noonan, J``, ``Noonan, Jane``, several in
one cell (``Noonan, J;Kim, M``), sometimes none. Ops keep a staff list (CSV or XLSX) with a name
or staff ID and each person's UPN. ``[staff]`` in the config names that file and its columns; this
module reads it (with pandas: a directory is a table to index and join, pandas' home ground) and
turns one instructor cell into the organizer (the first person) and the others (attendees with
``others_role``, co-organizer by default).

Matching, after HTML entities, accents, dots and case are ignored:

1. an entry equal to a staff ID is that person;
2. ``Last, First`` matches the directory's last and first name; ``Last, F`` (an initial) matches
   everyone with that last name and first initial; ``First Last`` (no comma) is read as first
   and last name;
3. exactly one person must match: none, or two (``Kim, M`` when there are a Min and a Mark Kim),
   makes the row invalid, naming the name and the directory file, and saying how to fix it.

An empty cell takes ``fallback_organizer`` when set; otherwise the row is invalid.
"""
from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from bulkmeet import text
from bulkmeet.errors import ConfigError, InputError, did_you_mean

_KEYS = ("column", "directory", "upn_column", "name_column", "last_name_column",
         "first_name_column", "id_column", "separator", "others_role", "fallback_organizer")


@dataclass(frozen=True)
class StaffSettings:
    column: str  # the schedule's instructor column
    directory: str  # CSV/XLSX file (absolute, or made so relative to the config)
    upn_column: str
    name_column: str | None = None  # "Last, First" in one column
    last_name_column: str | None = None  # or last and first name in two
    first_name_column: str | None = None
    id_column: str | None = None
    separator: str = ";"
    others_role: str = "coorganizer"
    fallback_organizer: str | None = None


def parse_staff_settings(raw: Any, where: str, base_dir: Path | None) -> StaffSettings:
    """``[staff]`` from TOML; ``ConfigError`` naming the key."""
    from bulkmeet.config import EMAIL_RE, GUID_RE, ROLES  # config imports this module

    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: [staff] must be a table.")
    for key, value in raw.items():
        if key not in _KEYS:
            raise ConfigError(f"{where}: unknown key '{key}' in [staff].{did_you_mean(key, _KEYS)}")
        if not isinstance(value, str):
            raise ConfigError(f"{where}: [staff] {key} must be a text value in quotes.")
    vals = {k: v.strip() for k, v in raw.items() if k != "separator"}
    for key in ("column", "directory", "upn_column"):
        if not vals.get(key):
            raise ConfigError(
                f"{where}: [staff] needs {key}: column (the sheet's instructor column), directory "
                "(the staff file) and upn_column (its column of e-mail addresses/UPNs).")
    if not (vals.get("name_column") or vals.get("last_name_column") or vals.get("id_column")):
        raise ConfigError(f"{where}: [staff] needs name_column (\"Last, First\" names), or "
                          "last_name_column and first_name_column, or id_column (staff IDs).")
    if bool(vals.get("last_name_column")) != bool(vals.get("first_name_column")):
        raise ConfigError(f"{where}: [staff] last_name_column and first_name_column go together.")
    if vals.get("name_column") and vals.get("last_name_column"):
        raise ConfigError(f"{where}: [staff] set name_column or last_name_column/"
                          "first_name_column, not both.")
    role = vals.get("others_role", "coorganizer").lower()
    if role not in ROLES:
        raise ConfigError(f"{where}: [staff] others_role \"{role}\" is not one of {', '.join(ROLES)}.")
    fallback = vals.get("fallback_organizer") or None
    if fallback and not (EMAIL_RE.match(fallback) or GUID_RE.match(fallback)):
        raise ConfigError(f"{where}: [staff] fallback_organizer \"{fallback}\" is neither an "
                          "e-mail address (UPN) nor an Entra object ID.")
    separator = raw.get("separator", ";")
    if not separator or separator.isspace() or separator == ",":
        raise ConfigError(f"{where}: [staff] separator must be a character other than a space or "
                          "a comma (names are written \"Last, First\"), e.g. \";\" or \"/\".")
    directory = Path(vals["directory"]).expanduser()
    if base_dir is not None and not directory.is_absolute():
        directory = base_dir / directory
    return StaffSettings(
        column=vals["column"], directory=str(directory), upn_column=vals["upn_column"],
        name_column=vals.get("name_column") or None,
        last_name_column=vals.get("last_name_column") or None,
        first_name_column=vals.get("first_name_column") or None,
        id_column=vals.get("id_column") or None, separator=separator, others_role=role,
        fallback_organizer=fallback.lower() if fallback else None)


# --- reading CSV/XLSX lookup tables --------------------------------------------------------------

def read_table(path: Path, what: str) -> Any:
    """A pandas DataFrame of a small CSV/XLSX lookup file, every cell text or a date; "" for empty.

    ``dtype=str, keep_default_na=False`` keeps staff IDs like ``00417`` and names like ``NA``
    as typed (pandas' defaults would turn them into 417 and a missing value)."""
    import pandas as pd

    suffix = path.suffix.lower()
    if not path.exists():
        raise InputError(f"{path}: {what} file not found (check the path in the config; relative "
                         "paths are relative to the config file).")
    try:
        if suffix == ".csv":
            try:
                frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig",
                                    sep=None, engine="python")
            except UnicodeDecodeError:
                frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="cp1252",
                                    sep=None, engine="python")
        elif suffix in (".xlsx", ".xlsm"):
            frame = pd.read_excel(path, dtype=object, engine="openpyxl").fillna("")
        else:
            raise InputError(f"{path}: a {what} must be a .csv or .xlsx file.")
    except InputError:
        raise
    except Exception as exc:  # pandas/openpyxl raise many kinds on a damaged file
        raise InputError(f"{path}: the {what} cannot be read ({type(exc).__name__}); save it as "
                         "CSV UTF-8 or .xlsx.") from None
    frame.columns = [" ".join(str(c).split()) for c in frame.columns]
    for col in frame.columns:
        if frame[col].dtype == object:
            frame[col] = frame[col].map(lambda v: v.strip() if isinstance(v, str) else v)
    return frame


# --- names ---------------------------------------------------------------------------------------

@lru_cache(maxsize=16384)
def name_key(value: str) -> str:
    """A name as compared: entities decoded, accents and dots dropped, spaces collapsed, folded."""
    s = unicodedata.normalize("NFKD", text.clean(value))
    s = "".join(ch for ch in s if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[.]", " ", s).split()).casefold()


def split_name(entry: str) -> tuple[str, str]:
    """(last, given) of ``Last, First`` or ``First Last``, both ``name_key``-normalised."""
    if "," in entry:
        last, _, given = entry.partition(",")
        return name_key(last), name_key(given)
    words = name_key(entry).split()
    if len(words) < 2:
        return (words[0] if words else ""), ""
    return words[-1], " ".join(words[:-1])


# A role marker after an instructor's name, as Banner and PeopleSoft print them: "Kim, M (P)"
# (primary), "(S)" (secondary), "(Primary)", "[P]". Not part of the name.
MARKER = re.compile(r"\s*[(\[]\s*(?:p|s|primary|secondary|pi|instructor)\s*[)\]]\s*$", re.I)
PRIMARY = re.compile(r"[(\[]\s*(?:p|primary)\s*[)\]]\s*$", re.I)


@dataclass(frozen=True)
class Person:
    upn: str
    shown: str  # the directory's name, for messages


class StaffDirectory:
    """The staff file indexed by staff ID, by (last, first) and by (last, initial)."""

    def __init__(self, settings: StaffSettings) -> None:
        self.settings = settings
        self.path = Path(settings.directory)
        frame = read_table(self.path, "staff directory")
        self._check_columns(frame)
        self.by_id: dict[str, Person] = {}
        self.by_full: dict[tuple[str, str], list[Person]] = {}
        self.by_initial: dict[tuple[str, str], list[Person]] = {}
        self._index(frame)

    def _check_columns(self, frame: Any) -> None:
        s = self.settings
        wanted = [c for c in (s.upn_column, s.name_column, s.last_name_column,
                              s.first_name_column, s.id_column) if c]
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            cols = ", ".join(map(str, frame.columns))
            close = difflib.get_close_matches(missing[0], list(map(str, frame.columns)), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            if missing[0] == s.name_column and not close:
                hint = _two_column_hint(list(map(str, frame.columns))) or hint
            raise InputError(f"{self.path}: the staff directory has no column '{missing[0]}' "
                             f"(named in [staff] of the config).{hint} Its columns: {cols}.")

    def _index(self, frame: Any) -> None:
        from bulkmeet.config import EMAIL_RE

        s = self.settings
        upns = frame[s.upn_column].astype(str).str.strip().str.lower()
        bad = upns[(upns != "") & ~upns.str.match(EMAIL_RE.pattern)]
        if len(bad):
            line = int(bad.index[0]) + 2
            raise InputError(f"{self.path}: row {line}: {s.upn_column} \"{bad.iloc[0]}\" is not an "
                             "e-mail address (UPN); fix it in the staff directory.")
        if s.id_column:
            ids = frame[s.id_column].astype(str).map(text.fold)
            dup = ids[(ids != "") & ids.duplicated(keep="first")]
            if len(dup):
                earlier = int(ids[ids == dup.iloc[0]].index[0]) + 2
                raise InputError(f"{self.path}: row {int(dup.index[0]) + 2}: staff ID "
                                 f"\"{dup.iloc[0]}\" is also in row {earlier}; staff IDs must be unique.")
            for sid, upn, shown in zip(ids, upns, frame[s.id_column], strict=True):
                if sid and upn:
                    self.by_id[sid] = Person(upn, str(shown))
        if s.name_column:
            names = frame[s.name_column].astype(str)
            pairs = [split_name(n) for n in names]
        elif s.last_name_column and s.first_name_column:
            names = frame[s.last_name_column].astype(str) + ", " + frame[s.first_name_column].astype(str)
            pairs = [(name_key(a), name_key(b)) for a, b in
                     zip(frame[s.last_name_column].astype(str),
                         frame[s.first_name_column].astype(str), strict=True)]
        else:
            return
        for (last, given), upn, shown in zip(pairs, upns, names, strict=True):
            if not last or not upn:
                continue
            person = Person(upn, text.clean(str(shown)))
            first = given.split()[0] if given else ""
            if len(first) > 1:
                self.by_full.setdefault((last, first), []).append(person)
            if first:
                self.by_initial.setdefault((last, first[0]), []).append(person)

    def lookup(self, entry: str) -> Person:
        """The one person an instructor entry names; ``StaffError`` when none or several do."""
        sid = text.fold(entry)
        if sid in self.by_id:
            return self.by_id[sid]
        last, given = split_name(entry)
        first = given.split()[0] if given else ""
        if not last or not first:
            raise StaffError(f"\"{entry}\" is not in the staff directory {self.path.name} (write "
                             "names as \"Last, First\" or \"Last, F\", or use the staff ID)")
        if len(first) > 1:
            found = self.by_full.get((last, first))
            if not found:  # a directory that has only initials for this person
                found = [p for p in self.by_initial.get((last, first[0]), [])
                         if len(split_name(p.shown)[1].split()[0]) == 1]
        else:
            found = self.by_initial.get((last, first), [])
        unique = list({p.upn: p for p in found or []}.values())
        if len(unique) == 1:
            return unique[0]
        if not unique:
            raise StaffError(f"\"{entry}\" is not in the staff directory {self.path}; add them "
                             "(with their UPN) to that file, or correct the name in the sheet")
        shown = "; ".join(f"{p.shown} <{p.upn}>" for p in unique)
        raise StaffError(f"\"{entry}\" matches {len(unique)} people in the staff directory "
                         f"{self.path} ({shown}); write the first name in full or use the staff ID")

    def instructors(self, cell: Any) -> tuple[str | None, tuple[str, ...]]:
        """(organizer UPN, other instructors' UPNs) for one cell; ``StaffError`` on the first bad
        entry. An empty cell gives the fallback organizer (or None)."""
        if cell is None or not isinstance(cell, str) or not text.clean(cell):
            return self.settings.fallback_organizer, ()
        return self._instructors(cell)

    @lru_cache(maxsize=8192)  # noqa: B019 - one directory per run; cells repeat across rows
    def _instructors(self, cell: str) -> tuple[str | None, tuple[str, ...]]:
        entries = [text.clean(e) for e in cell.split(self.settings.separator) if text.clean(e)]
        # Banner marks the primary instructor "(P)", wherever they are listed: they organize.
        marked = [PRIMARY.search(e) is not None for e in entries]
        if sum(marked) == 1:
            first = marked.index(True)
            entries.insert(0, entries.pop(first))
        upns: list[str] = []
        for entry in entries:
            upn = self.lookup(MARKER.sub("", entry).strip() or entry).upn
            if upn not in upns:
                upns.append(upn)
        if not upns:
            return self.settings.fallback_organizer, ()
        return upns[0], tuple(upns[1:])


class StaffError(Exception):
    """One instructor entry the directory cannot resolve; ``str()`` is the message."""


_LAST = re.compile(r"(last|sur|family)\s*_?name|surname|^last$", re.I)
_FIRST = re.compile(r"(first|given|preferred|fore)\s*_?name|^first$", re.I)


def _two_column_hint(columns: list[str]) -> str:
    """For a staff list with the names in two columns (HR exports often have them)."""
    last = next((c for c in columns if _LAST.search(c)), None)
    first = next((c for c in columns if _FIRST.search(c)), None)
    if not last or not first:
        return ""
    return (f" This list has the names in two columns: instead of name_column, write "
            f"last_name_column = \"{last}\" and first_name_column = \"{first}\".")
