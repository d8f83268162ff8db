"""The mapping config (TOML): how to reach Graph, how to authenticate, and how sheet columns map
to a createOrGet request.

Loaded once into frozen dataclasses; every later step reads those, never the raw TOML. Every
contradiction that would make *every* row fail is caught here, before the schedule is read, as a
``ConfigError`` naming the file, the section and the key. Values of unknown keys are never echoed:
someone may have pasted a secret into the file.

The key-by-key reference is the README section "The mapping config, key by key".
"""
from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bulkmeet import ids, meeting_options
from bulkmeet.errors import BulkmeetError, ConfigError, did_you_mean
from bulkmeet.filters import SkipRule, parse_skip_rules
from bulkmeet.ids import EMAIL_RE, GUID_RE  # the rules live in ids; plan and starter read them here
from bulkmeet.patterns import PatternSettings, parse_pattern_settings
from bulkmeet.staff import StaffSettings, parse_staff_settings
from bulkmeet.templates import parse_template, template_columns
from bulkmeet.terms import TermSettings, parse_term_settings

DEFAULT_GRAPH_URL = "https://graph.microsoft.com"
DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
MAX_TIMEOUT = 3600.0  # seconds; a longer connect or read timeout is a hung cron job
ROLES = ("attendee", "presenter", "producer", "coorganizer")
DATE_ORDERS = ("MDY", "DMY")

_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class GraphSettings:
    base_url: str = DEFAULT_GRAPH_URL
    api_version: str = "v1.0"  # "v1.0" | "beta"
    ca_bundle: str | None = None  # PEM file; None = REQUESTS_CA_BUNDLE if set, else certifi
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    resolve_upns: bool = True  # organizer UPNs -> object ids via GET /users/{upn}?$select=id


@dataclass(frozen=True)
class AuthSettings:
    mode: str = "app"  # "app" (client credentials, /users/{id}/...) | "delegated" (/me/...)
    tenant_id: str = ""
    client_id: str = ""
    authority_host: str = DEFAULT_AUTHORITY_HOST
    # Secret: the value comes from an environment variable or a file, never from the config file.
    client_secret_env: str = "BULKMEET_CLIENT_SECRET"
    client_secret_file: str | None = None
    # Certificate: PEM (private key + certificate) or PFX/P12.
    certificate_path: str | None = None
    certificate_password_env: str | None = None
    # Delegated: msal token cache written by `bulkmeet login`.
    token_cache: str = "~/.config/bulkmeet/token-cache.json"


@dataclass(frozen=True)
class AttendeeColumn:
    column: str
    role: str = "attendee"


@dataclass(frozen=True)
class Mapping:
    """How one sheet row becomes one createOrGet request."""

    organizer: str | None = None  # column holding an object id or UPN
    organizer_fixed: str | None = None  # one organizer (object id or UPN) for every row
    subject: str = ""  # template over columns: "{Course} {Section}: {Title}"
    start: str | None = None  # full date-time column
    end: str | None = None
    date: str | None = None  # date column, combined with start_time / end_time
    start_time: str | None = None
    end_time: str | None = None
    default_duration_minutes: int | None = None  # end = start + this, when no end is given
    time_zone: str = "UTC"  # IANA zone of naive times in the sheet
    date_order: str = "MDY"  # how to read 1/12/2026: "MDY" (US, January 12) or "DMY" (12 January)
    attendees: tuple[AttendeeColumn, ...] = ()
    thread_id: str | None = None  # chatInfo.threadId column (beta only)
    external_id: str | None = None  # column holding the externalId
    keys: tuple[str, ...] = ()  # or: derive a UUIDv5 from these columns + organizer
    settings: tuple[tuple[str, str], ...] = ()  # (meeting option, column): per-row options

    def mapped_columns(self) -> list[tuple[str, str]]:
        """(config key, column name) for every column the mapping reads, subject fields included."""
        pairs: list[tuple[str, str]] = []
        for key in ("organizer", "start", "end", "date", "start_time", "end_time", "thread_id",
                    "external_id"):
            value = getattr(self, key)
            if value:
                pairs.append((key, value))
        for field_name in template_columns(self.subject):
            pairs.append(("subject", field_name))
        for a in self.attendees:
            pairs.append(("attendees", a.column))
        for k in self.keys:
            pairs.append(("keys", k))
        for option, column in self.settings:
            pairs.append((f"settings {option}", column))
        return pairs

    @property
    def has_times(self) -> bool:
        """False when the mapping sends no times at all (Graph then starts the meeting now, 1 h)."""
        return bool(self.start or self.start_time)


@dataclass(frozen=True)
class RunSettings:
    concurrency: int = 4  # requests in flight to start with; the runner adapts from there
    max_concurrency: int = 32  # ... up to this many while Graph answers cleanly
    batch: bool = False  # send createOrGet in JSON $batch requests of up to 20 (not proven on real Graph)
    max_attempts: int = 6  # per row, per run, for transient failures
    journal: str | None = None  # default: beside the schedule, NAME.journal.sqlite
    log_file: str | None = None  # rotating log file; None = stderr only


@dataclass(frozen=True)
class SyncSettings:
    """[sync]: what a run does with meetings whose rows left the sheet (bulkmeet.sync)."""

    cancel_removed: bool = False  # delete them (else: report them as orphaned)
    max_cancel_percent: float = 10.0  # refuse to cancel more than this share of the meetings...
    max_cancel_count: int = 25  # ...or more than this many, in one run (--max-cancel N lifts it)


@dataclass(frozen=True)
class PublishSettings:
    """[publish]: the files for people (bulkmeet.publish): .ics calendars, handouts, run report.

    Folders default to NAME.calendars / NAME.handouts and the report to NAME.results.html, all
    beside the results file; relative paths here are relative to the config's folder.
    """

    enabled: bool = True  # false: no calendars, handouts or report
    calendars: str | None = None  # folder for organizers/*.ics and sections/*.ics
    handouts: str | None = None  # folder for one workbook per organizer + mail-merge.csv
    report: str | None = None  # the HTML run report
    section: tuple[str, ...] = ()  # columns naming a section; default: the keys that are not dates
    organizer_name: str | None = None  # column with the organizer's name, for handouts


@dataclass(frozen=True)
class Config:
    path: Path | None
    graph: GraphSettings = field(default_factory=GraphSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    mapping: Mapping = field(default_factory=Mapping)
    run: RunSettings = field(default_factory=RunSettings)
    # Registrar exports (README "Weekly patterns"): weekly patterns, term dates, staff, skip rules.
    pattern: PatternSettings | None = None
    term: TermSettings | None = None
    staff: StaffSettings | None = None
    skip: tuple[SkipRule, ...] = ()
    sync: SyncSettings = field(default_factory=SyncSettings)
    settings: tuple[tuple[str, Any], ...] = ()  # [settings]: meeting options for every meeting
    publish: PublishSettings = field(default_factory=PublishSettings)

    @property
    def delegated(self) -> bool:
        return self.auth.mode == "delegated"

    def mapped_columns(self) -> list[tuple[str, str]]:
        """(config key, column) for every sheet column the config reads, in every section."""
        pairs = self.mapping.mapped_columns()
        for extra in (self.pattern, self.term):
            if extra is not None:
                pairs += extra.mapped_columns()
        if self.staff is not None:
            pairs.append(("[staff] column", self.staff.column))
        pairs += [(f"[[skip]] rule {r.number}", r.column) for r in self.skip]
        pairs += [("[publish] section", c) for c in self.publish.section]
        if self.publish.organizer_name:
            pairs.append(("[publish] organizer_name", self.publish.organizer_name))
        return pairs

    def with_overrides(self, **sections: Any) -> Config:
        """A copy with whole sections or single fields replaced, e.g. for --emulator."""
        return replace(self, **sections)


_SECTIONS = {"graph": GraphSettings, "auth": AuthSettings, "mapping": Mapping, "run": RunSettings,
             "sync": SyncSettings, "settings": dict, "publish": PublishSettings}
_TOP_LEVEL_KEYS = ("time_zone",)  # plain keys accepted above the first [section]
_REGISTRAR_SECTIONS = ("pattern", "term", "staff", "skip")  # parsed by their own modules


def _where(path: Path | None) -> str:
    return str(path) if path else "config"


def _looks_secret(key: str) -> bool:
    k = key.lower()
    return any(word in k for word in ("secret", "password", "passphrase", "token", "private_key")) \
        and not k.endswith(("_env", "_file", "_path", "cache"))


_TYPE_WORDS = {
    str: "a text value in quotes",
    int: "a whole number",
    float: "a number",
    bool: "true or false",
}


def _expected(annotation: str) -> tuple[tuple[type, ...], bool]:
    """Python types a dataclass field accepts from TOML, and whether it may be left out (None)."""
    optional = "None" in annotation
    base = annotation.replace("| None", "").strip()
    kinds = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}
    return kinds.get(base, (object,)), optional


def _show_toml(value: Any) -> str:
    if isinstance(value, str):
        return f"\"{value}\""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return str(value)


def _check_type(value: Any, annotation: str, where: str, section: str, key: str) -> Any:
    kinds, _optional = _expected(annotation)
    if kinds == (object,):
        return value
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok:
        want = _TYPE_WORDS[kinds[-1]] if len(kinds) == 1 else _TYPE_WORDS[float]
        shown = _show_toml(value)
        raise ConfigError(f"{where}: [{section}] {key} must be {want} (it is {shown}).")
    if kinds == (int, float):
        return float(value)
    return value


def _build(cls: type, table: Any, section: str, path: Path | None) -> Any:
    where = _where(path)
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [{section}] must be a table (a [{section}] header with keys under it).")
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            if _looks_secret(key):
                raise ConfigError(
                    f"{where}: [{section}] '{key}' looks like a secret, and secrets never go in the "
                    "config file: remove it, and put the value in the environment variable named "
                    "by client_secret_env (or a file named by client_secret_file).")
            hint = did_you_mean(key, known)
            if key in _TOP_LEVEL_KEYS:  # TOML puts every key after [graph] into [graph]
                hint = (f" {key} belongs at the top of the file, above the first [section] (or "
                        "under [mapping]): move that line up.")
            raise ConfigError(f"{where}: unknown key '{key}' in [{section}].{hint}")
        kwargs[key] = _check_type(value, str(known[key].type), where, section, key)
    return cls(**kwargs)


def _attendees(raw: Any, path: Path | None) -> tuple[AttendeeColumn, ...]:
    where = _where(path)
    if raw is None:
        return ()
    items = [raw] if isinstance(raw, (str, dict)) else raw if isinstance(raw, list) else None
    if items is None:
        items = [object()]  # falls through to the message below
    out = []
    for item in items:
        if isinstance(item, str) and item.strip():
            out.append(AttendeeColumn(item.strip()))
        elif isinstance(item, dict) and isinstance(item.get("column"), str) and item["column"].strip():
            extra = set(item) - {"column", "role"}
            if extra:
                raise ConfigError(
                    f"{where}: [mapping] attendees entry for '{item['column']}' has unknown "
                    f"key(s) {', '.join(sorted(extra))}; only 'column' and 'role' are allowed.")
            role = str(item.get("role", "attendee")).strip().lower()
            if role not in ROLES:
                raise ConfigError(
                    f"{where}: [mapping] attendees role '{role}' for column '{item['column']}' "
                    f"is not one of {', '.join(ROLES)}."
                )
            out.append(AttendeeColumn(item["column"].strip(), role))
        else:
            raise ConfigError(
                f"{where}: [mapping] attendees must be a list of column names or "
                "{column = \"...\", role = \"presenter\"} tables, e.g. "
                "attendees = [\"Students\", {column = \"TA\", role = \"presenter\"}]."
            )
    return tuple(out)


def _keys(raw: Any, path: Path | None) -> tuple[str, ...]:
    if raw is None:
        return ()
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(k, str) and k.strip() for k in items):
        raise ConfigError(
            f"{_where(path)}: [mapping] keys must be a list of column names, e.g. "
            "keys = [\"CRN\", \"Date\"].")
    out: dict[str, None] = {}
    for k in items:
        out.setdefault(k.strip(), None)
    return tuple(out)


def parse_config(data: dict[str, Any], path: Path | None = None) -> Config:
    where = _where(path)
    for key in data:
        if key in _TOP_LEVEL_KEYS:
            continue
        if key not in _SECTIONS and key not in _REGISTRAR_SECTIONS:
            if _looks_secret(key):
                raise ConfigError(
                    f"{where}: '{key}' looks like a secret, and secrets never go in the config "
                    "file: remove it, and use [auth] client_secret_env instead.")
            close = difflib.get_close_matches(
                key, list(_SECTIONS) + list(_REGISTRAR_SECTIONS) + list(_TOP_LEVEL_KEYS), n=1)
            hint = ""
            if close:
                hint = f" Did you mean '{close[0]}'?" if close[0] in _TOP_LEVEL_KEYS else f" Did you mean [{close[0]}]?"
            raise ConfigError(f"{where}: unknown section or key '{key}'.{hint}")
    raw_mapping = data.get("mapping", {})
    if not isinstance(raw_mapping, dict):
        raise ConfigError(f"{where}: [mapping] must be a table (a [mapping] header with keys under it).")
    mapping_raw = dict(raw_mapping)
    if "time_zone" in data:
        top = data["time_zone"]
        if not isinstance(top, str):
            raise ConfigError(f"{where}: time_zone must be a text value in quotes, e.g. "
                              f"time_zone = \"America/Chicago\" (it is {_show_toml(top)}).")
        if "time_zone" in mapping_raw and mapping_raw["time_zone"] != top:
            raise ConfigError(
                f"{where}: time_zone is set twice, to \"{top}\" at the top and to "
                f"\"{mapping_raw['time_zone']}\" in [mapping]; keep one.")
        mapping_raw["time_zone"] = top
    attendees = _attendees(mapping_raw.pop("attendees", None), path)
    keys = _keys(mapping_raw.pop("keys", None), path)
    option_columns = meeting_options.parse_columns(mapping_raw.pop("settings", None), where)
    mapping = _build(Mapping, mapping_raw, "mapping", path)
    mapping = _tidy_mapping(replace(mapping, attendees=attendees, keys=keys,
                                    settings=option_columns))
    graph = _build(GraphSettings, data.get("graph", {}), "graph", path)
    if graph.ca_bundle:  # like the other paths in the file: relative to the config's folder
        ca = Path(os.path.expanduser(graph.ca_bundle))
        if path is not None and not ca.is_absolute():
            ca = path.parent / ca
        graph = replace(graph, ca_bundle=str(ca))
    cfg = Config(
        path=path,
        graph=graph,
        auth=_build(AuthSettings, data.get("auth", {}), "auth", path),
        mapping=mapping,
        run=_build(RunSettings, data.get("run", {}), "run", path),
        sync=_build(SyncSettings, data.get("sync", {}), "sync", path),
        publish=_publish(data.get("publish", {}), path),
        settings=meeting_options.parse_config_table(data.get("settings", {}), where),
        **_registrar_sections(data, path, mapping.date_order),
    )
    validate_config(cfg)
    return cfg


def _publish(raw: Any, path: Path | None) -> PublishSettings:
    """[publish]: ``section`` is one column or a list; relative paths are the config's folder's."""
    table = dict(raw) if isinstance(raw, dict) else raw
    section = table.pop("section", None) if isinstance(table, dict) else None
    settings = _build(PublishSettings, table, "publish", path)
    if section is not None:
        items = [section] if isinstance(section, str) else section
        if not isinstance(items, list) or not all(isinstance(c, str) and c.strip() for c in items):
            raise ConfigError(f"{_where(path)}: [publish] section must be a column name or a list "
                              "of them, e.g. section = [\"CRN\"].")
        settings = replace(settings, section=tuple(c.strip() for c in items))
    for key in ("calendars", "handouts", "report"):
        value = getattr(settings, key)
        if value and path is not None and not Path(os.path.expanduser(value)).is_absolute():
            settings = replace(settings, **{key: str(path.parent / os.path.expanduser(value))})
    return settings


def _registrar_sections(data: dict[str, Any], path: Path | None, date_order: str) -> dict[str, Any]:
    """[pattern], [term], [staff] and [[skip]], each parsed by the module that uses it."""
    where, base = _where(path), (path.parent if path is not None else None)
    out: dict[str, Any] = {"skip": parse_skip_rules(data.get("skip"), where)}
    if "pattern" in data:
        out["pattern"] = parse_pattern_settings(data["pattern"], where)
    if "term" in data:
        out["term"] = parse_term_settings(data["term"], where, base, date_order)
    if "staff" in data:
        out["staff"] = parse_staff_settings(data["staff"], where, base)
    return out


def _check_registrar(cfg: Config, where: str) -> None:
    """Contradictions between [pattern]/[term]/[staff] and [mapping]."""
    m = cfg.mapping
    if cfg.pattern is not None:
        dated = [k for k in ("start", "end", "date", "start_time", "end_time") if getattr(m, k)]
        if dated:
            raise ConfigError(
                f"{where}: [mapping] {dated[0]} and [pattern] cannot both say when classes meet: "
                "with [pattern] the dates come from [term] and the times from [pattern] "
                "start_time/end_time; remove date/start/end/start_time/end_time from [mapping].")
        if cfg.term is None:
            raise ConfigError(
                f"{where}: [pattern] needs [term] to say which days the term has: first_day and "
                "last_day, or column = \"Part of Term\" with its parts (README \"Term dates\").")
        if not m.keys:
            raise ConfigError(
                f"{where}: [pattern] needs [mapping] keys = [\"CRN\"] (the columns that identify "
                "a section); bulkmeet adds the class day itself.")
    elif cfg.term is not None:
        raise ConfigError(f"{where}: [term] is used only with [pattern] (the days and times "
                          "columns of a weekly pattern); add [pattern] or remove [term].")
    if cfg.staff is not None and (m.organizer or m.organizer_fixed):
        raise ConfigError(f"{where}: organizers come from [staff] or from [mapping] "
                          "organizer/organizer_fixed, not both; remove one.")


def _tidy_mapping(m: Mapping) -> Mapping:
    """Column names are compared after stripping; an empty string means 'not mapped'."""
    changes: dict[str, Any] = {}
    for key in ("organizer", "organizer_fixed", "start", "end", "date", "start_time", "end_time",
                "thread_id", "external_id"):
        value = getattr(m, key)
        if isinstance(value, str):
            changes[key] = value.strip() or None
    changes["time_zone"] = m.time_zone.strip()
    changes["date_order"] = m.date_order.strip().upper()
    return replace(m, **changes)


def validate_config(cfg: Config) -> None:
    """Contradictions that make every row fail are config errors, raised before reading rows.

    One check per concern, in the order a person fixes a config: how to reach Graph and sign in,
    who organizes, what a meeting is called and keyed by, when it is, then how the run behaves.
    """
    where = _where(cfg.path)
    _check_graph_and_auth(cfg, where)
    _check_registrar(cfg, where)
    _check_organizer(cfg, where)
    _check_subject_and_keys(cfg.mapping, where)
    _check_times(cfg.mapping, where)
    _check_run(cfg, where)


def _check_graph_and_auth(cfg: Config, where: str) -> None:
    m = cfg.mapping
    if cfg.graph.api_version not in ("v1.0", "beta"):
        raise ConfigError(f"{where}: [graph] api_version must be \"v1.0\" or \"beta\" "
                          f"(it is \"{cfg.graph.api_version}\").")
    if cfg.auth.mode not in ("app", "delegated"):
        raise ConfigError(f"{where}: [auth] mode must be \"app\" or \"delegated\" "
                          f"(it is \"{cfg.auth.mode}\").")
    _check_urls(cfg, where)
    for key in ("connect_timeout", "read_timeout"):
        seconds = getattr(cfg.graph, key)
        # nan passes "<= 0" and inf means "hang for ever": both refused here, by name.
        if not (0 < seconds <= MAX_TIMEOUT):  # also False for nan
            raise ConfigError(
                f"{where}: [graph] {key} must be a number of seconds more than 0 and at most "
                f"{MAX_TIMEOUT:g} (it is {seconds:g}); for example {key} = 60.")
    problem = cfg.auth.tenant_id.strip() and ids.tenant_error(
        "[auth] tenant_id", cfg.auth.tenant_id, delegated=cfg.delegated)
    problem = problem or (cfg.auth.client_id.strip() and ids.client_id_error(
        "[auth] client_id", cfg.auth.client_id))
    if problem:
        raise ConfigError(f"{where}: {problem}")
    for key in ("client_secret_env", "certificate_password_env"):
        value = getattr(cfg.auth, key)
        if value is not None and not _ENV_NAME_RE.match(value):
            raise ConfigError(
                f"{where}: [auth] {key} must be the NAME of an environment variable (letters, "
                "digits and _), not the secret itself.")
    if m.thread_id and cfg.graph.api_version != "beta":
        raise ConfigError(
            f"{where}: [mapping] thread_id (chatInfo) works only with the beta API: "
            "set api_version = \"beta\" in [graph], or remove thread_id."
        )


def _check_organizer(cfg: Config, where: str) -> None:
    m = cfg.mapping
    if not cfg.delegated and not (m.organizer or m.organizer_fixed or cfg.staff):
        raise ConfigError(
            f"{where}: [mapping] needs 'organizer' (a column) or 'organizer_fixed' with an app "
            "token; or set mode = \"delegated\" in [auth] to create meetings as yourself."
        )
    if m.organizer and m.organizer_fixed:
        raise ConfigError(f"{where}: [mapping] set 'organizer' or 'organizer_fixed', not both.")
    if m.organizer_fixed and not (GUID_RE.match(m.organizer_fixed) or EMAIL_RE.match(m.organizer_fixed)):
        raise ConfigError(
            f"{where}: [mapping] organizer_fixed \"{m.organizer_fixed}\" is neither an e-mail "
            "address (UPN) nor an Entra object ID (a GUID).")


def _check_subject_and_keys(m: Mapping, where: str) -> None:
    if not m.subject.strip():
        raise ConfigError(f"{where}: [mapping] 'subject' is required, e.g. \"{{Course}}: {{Title}}\".")
    try:
        parse_template(m.subject)
    except ValueError as exc:
        raise ConfigError(f"{where}: [mapping] subject \"{m.subject}\": {exc}.") from None
    if m.external_id and m.keys:
        raise ConfigError(f"{where}: [mapping] set 'external_id' or 'keys', not both.")
    if not (m.external_id or m.keys):
        raise ConfigError(
            f"{where}: [mapping] needs 'keys' (columns that identify one class session, e.g. "
            "[\"CRN\", \"Date\"]) or 'external_id' (a column holding a unique id)."
        )


def _check_times(m: Mapping, where: str) -> None:
    if (m.start or m.end) and (m.date or m.start_time or m.end_time):
        raise ConfigError(
            f"{where}: [mapping] use either 'start'/'end' date-time columns or 'date' with "
            "'start_time'/'end_time', not both."
        )
    if m.end and not m.start:
        raise ConfigError(f"{where}: [mapping] 'end' needs 'start' too (Graph refuses an end "
                          "without a start).")
    if (m.date or m.end_time) and not m.start_time:
        raise ConfigError(f"{where}: [mapping] 'date' and 'end_time' need 'start_time' too "
                          "(the column with the time the class starts).")
    if m.start_time and not m.date:
        raise ConfigError(f"{where}: [mapping] 'start_time' needs 'date' (the column with the "
                          "day of the class); or map 'start' to a column holding date and time.")
    if m.default_duration_minutes is not None:
        if not 1 <= m.default_duration_minutes <= 24 * 60:
            raise ConfigError(f"{where}: [mapping] default_duration_minutes must be between 1 "
                              "and 1440.")
        if not m.has_times:
            raise ConfigError(f"{where}: [mapping] default_duration_minutes needs a start "
                              "column ('start', or 'date' with 'start_time').")
    if m.date_order not in DATE_ORDERS:
        raise ConfigError(
            f"{where}: [mapping] date_order must be \"MDY\" (1/12/2027 is January 12) or "
            f"\"DMY\" (1/12/2027 is 1 December); it is \"{m.date_order}\".")
    try:
        ZoneInfo(m.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        close = difflib.get_close_matches(m.time_zone, _zone_names(), n=1)
        hint = f" Did you mean \"{close[0]}\"?" if close else ""
        raise ConfigError(
            f"{where}: time_zone \"{m.time_zone}\" is not an IANA time zone "
            f"(e.g. \"America/Chicago\").{hint}"
        ) from None


def _check_run(cfg: Config, where: str) -> None:
    m = cfg.mapping
    if cfg.run.concurrency < 1:
        raise ConfigError(f"{where}: [run] concurrency must be at least 1.")
    if not 1 <= cfg.run.max_concurrency <= 256:
        raise ConfigError(f"{where}: [run] max_concurrency must be between 1 and 256 (it is "
                          f"{cfg.run.max_concurrency}).")
    if cfg.run.max_attempts < 1:
        raise ConfigError(f"{where}: [run] max_attempts must be at least 1.")
    if not 0 <= cfg.sync.max_cancel_percent <= 100 or cfg.sync.max_cancel_count < 0:
        raise ConfigError(f"{where}: [sync] max_cancel_percent must be between 0 and 100 and "
                          "max_cancel_count at least 0.")
    if dict(cfg.settings).get("allowedPresenters") == "roleIsPresenter" and not m.attendees:
        raise ConfigError(
            f"{where}: [settings] allowedPresenters = \"roleIsPresenter\" lets only attendees "
            "with the presenter role present, but [mapping] has no attendees: add an attendee "
            "column with role = \"presenter\" (e.g. attendees = [{column = \"TA\", role = "
            "\"presenter\"}]), or choose \"organizer\".")


def _zone_names() -> list[str]:
    try:
        from zoneinfo import available_timezones

        return sorted(available_timezones())
    except Exception:  # pragma: no cover - no tz database at all
        return []


def _check_urls(cfg: Config, where: str) -> None:
    from bulkmeet.http import check_url  # imports requests: keep it off the import path

    try:
        check_url(cfg.graph.base_url, f"{where}: [graph] base_url")
        check_url(cfg.auth.authority_host, f"{where}: [auth] authority_host")
    except BulkmeetError:
        raise
    except ValueError as exc:  # pragma: no cover - urlsplit on a malformed port
        raise ConfigError(f"{where}: a URL in [graph]/[auth] is malformed ({exc}).") from None


def load_config(path: str | os.PathLike[str]) -> Config:
    p = Path(path)
    if p.exists() and not p.is_file() and not p.is_dir():  # a FIFO would block read_bytes()
        raise ConfigError(f"{p}: is not a regular file (a FIFO or a device?); give a config "
                          "file with --config.")
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found (create one with `bulkmeet init SCHEDULE`).") from None
    except IsADirectoryError:
        raise ConfigError(f"{p}: is a folder, not a config file.") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the config file ({exc.strerror}).") from None
    try:
        data = tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text; save it as UTF-8.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}.") from None
    return parse_config(data, p)
