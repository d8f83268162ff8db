"""Meeting options (lobby, presenters, chat, recording...): the names, their values, one parser.

Why a module of its own: createOrGet ignores meeting options, so teachers get Teams' defaults
unless bulkmeet PATCHes them afterwards. The same names are read from the config (``[settings]``,
one value for every meeting), from sheet cells (``[mapping] settings``, one column per option),
and from Graph's answers (to see whether a meeting already has them). One table here keeps those
three in step: an option bulkmeet can write is one it can read back and compare.

Names are Graph's own property names (``allowMeetingChat``), with a dot for a property inside an
object (``lobbyBypassSettings.scope``), so the README and Microsoft's docs use the same words.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "OPTIONS", "OptionError", "Settings", "from_graph", "parse_value", "patch_fragment",
    "show_value",
]

Settings = tuple[tuple[str, Any], ...]  # sorted (name, value) pairs: hashable, comparable


@dataclass(frozen=True)
class Option:
    name: str  # Graph's name, dotted for a nested property
    choices: tuple[str, ...] = ()  # enum values; empty means a boolean

    @property
    def boolean(self) -> bool:
        return not self.choices


OPTIONS: dict[str, Option] = {o.name: o for o in (
    Option("lobbyBypassSettings.scope", ("organizer", "organization",
                                         "organizationAndFederated", "everyone", "invited",
                                         "organizationExcludingGuests")),
    Option("lobbyBypassSettings.isDialInBypassEnabled"),
    Option("allowedPresenters", ("everyone", "organization", "roleIsPresenter", "organizer")),
    Option("allowMeetingChat", ("enabled", "disabled", "limited")),
    Option("isEntryExitAnnounced"),
    Option("recordAutomatically"),
    Option("allowRecording"),
    Option("allowTranscription"),
    Option("allowAttendeeToEnableCamera"),
    Option("allowAttendeeToEnableMic"),
    Option("allowTeamworkReactions"),
)}

_TRUE = ("true", "yes", "y", "1", "on")
_FALSE = ("false", "no", "n", "0", "off")
PRESENTER_ROLES = ("presenter", "producer", "coorganizer")


class OptionError(ValueError):
    """A value an option cannot take; ``str()`` is the sentence without the place it came from."""


def canonical_name(name: str) -> str | None:
    """The option's exact name, matched ignoring case (``allowmeetingchat`` is fine)."""
    folded = name.strip().casefold()
    for known in OPTIONS:
        if known.casefold() == folded:
            return known
    return None


def parse_value(name: str, value: Any) -> Any:
    """A config value or a sheet cell as the option's value; OptionError says what is allowed."""
    option = OPTIONS[name]
    if option.boolean:
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        text = str(value).strip().casefold()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise OptionError(f"\"{value}\" is not true or false (write true/false or yes/no)")
    text = str(value).strip()
    for choice in option.choices:
        if choice.casefold() == text.casefold():
            return choice
    raise OptionError(f"\"{value}\" is not one of {', '.join(option.choices)}")


def show_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "unset" if value is None else str(value)


def from_graph(meeting: Mapping[str, Any]) -> Settings:
    """Every option's current value in a Graph onlineMeeting (None where Graph sent nothing)."""
    out = []
    for name in OPTIONS:
        head, _, tail = name.partition(".")
        value = meeting.get(head)
        if tail:
            value = value.get(tail) if isinstance(value, Mapping) else None
        out.append((name, value))
    return tuple(sorted(out))


def patch_fragment(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The PATCH body part for these options: dotted names become nested objects."""
    body: dict[str, Any] = {}
    for name, value in sorted(settings.items()):
        head, _, tail = name.partition(".")
        if tail:
            body.setdefault(head, {})[tail] = value
        else:
            body[head] = value
    return body


def flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """TOML ``lobbyBypassSettings.scope = "x"`` arrives as a nested table: flatten it."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def parse_config_table(table: Any, where: str) -> Settings:
    """``[settings]``: one value per option for every meeting. Raises ConfigError."""
    from bulkmeet.errors import ConfigError

    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: [settings] must be a table (a [settings] header with keys "
                          "under it).")
    out: dict[str, Any] = {}
    for key, value in flatten(table).items():
        name = _known(key, where, "[settings]")
        try:
            out[name] = parse_value(name, value)
        except OptionError as exc:
            raise ConfigError(f"{where}: [settings] {name}: {exc}.") from None
    return tuple(sorted(out.items()))


def parse_columns(table: Any, where: str) -> tuple[tuple[str, str], ...]:
    """``[mapping] settings = {allowMeetingChat = "Chat"}``: (option, column) pairs."""
    from bulkmeet.errors import ConfigError

    if table is None:
        return ()
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: [mapping] settings must be a table of option = column, "
                          "e.g. settings = {allowMeetingChat = \"Chat\"}.")
    out: dict[str, str] = {}
    for key, column in flatten(table).items():
        name = _known(key, where, "[mapping] settings")
        if not isinstance(column, str) or not column.strip():
            raise ConfigError(f"{where}: [mapping] settings {name} must name a column of the "
                              "sheet, in quotes.")
        out[name] = column.strip()
    return tuple(sorted(out.items()))


def _known(key: str, where: str, section: str) -> str:
    import difflib

    from bulkmeet.errors import ConfigError

    name = canonical_name(key)
    if name is None:
        close = difflib.get_close_matches(key, list(OPTIONS), n=1, cutoff=0.6)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"{where}: {section}: unknown meeting option '{key}'.{hint} bulkmeet "
                          f"sets: {', '.join(OPTIONS)}.")
    return name


def row_settings(values: Mapping[str, Any], columns: Sequence[tuple[str, str]], fixed: Settings,
                 roles: Iterable[str], errors: list[tuple[str | None, str]]) -> Settings:
    """One row's options: the config's, overridden by the row's non-empty option cells.

    Problems go to ``errors`` as (column, sentence), the planner's convention, so a bad cell
    makes its row invalid and names the value as typed.
    """
    out = dict(fixed)
    where: dict[str, str | None] = {}
    for name, column in columns:
        raw = values.get(column)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            continue
        try:
            out[name] = parse_value(name, raw)
            where[name] = column
        except OptionError as exc:
            errors.append((column, str(exc)))
    if out.get("allowedPresenters") == "roleIsPresenter" and \
            not any(role in PRESENTER_ROLES for role in roles):
        errors.append((where.get("allowedPresenters"), (
            "allowedPresenters is \"roleIsPresenter\", but this row has no attendee with the "
            "presenter role, so nobody but the organizer could present: give someone the role "
            "(\"jo@school.edu (presenter)\" in an attendee cell, or an attendee column with "
            "role = \"presenter\"), or use allowedPresenters \"organizer\"")))
    return tuple(sorted(out.items()))
