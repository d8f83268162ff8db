"""The mapping config (TOML): how to reach Graph, how to authenticate, and how sheet columns map
to a createOrGet request.

Loaded once into frozen dataclasses; every later step reads those, never the raw TOML. Errors are
``ConfigError`` naming the file and the key.
"""
from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bulkmeet.errors import ConfigError

DEFAULT_GRAPH_URL = "https://graph.microsoft.com"
DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
ROLES = ("attendee", "presenter", "producer", "coorganizer")


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
    attendees: tuple[AttendeeColumn, ...] = ()
    thread_id: str | None = None  # chatInfo.threadId column (beta only)
    external_id: str | None = None  # column holding the externalId
    keys: tuple[str, ...] = ()  # or: derive a UUIDv5 from these columns + organizer

    def mapped_columns(self) -> list[tuple[str, str]]:
        """(config key, column name) for every column the mapping reads, subject fields included."""
        from string import Formatter

        pairs: list[tuple[str, str]] = []
        for key in ("organizer", "start", "end", "date", "start_time", "end_time", "thread_id",
                    "external_id"):
            value = getattr(self, key)
            if value:
                pairs.append((key, value))
        for field_name in [f for _, f, _, _ in Formatter().parse(self.subject) if f]:
            pairs.append(("subject", field_name))
        for a in self.attendees:
            pairs.append(("attendees", a.column))
        for k in self.keys:
            pairs.append(("keys", k))
        return pairs


@dataclass(frozen=True)
class RunSettings:
    concurrency: int = 4
    max_attempts: int = 6  # per row, per run, for transient failures
    journal: str | None = None  # default: beside the schedule, NAME.journal.sqlite
    log_file: str | None = None  # rotating log file; None = stderr only


@dataclass(frozen=True)
class Config:
    path: Path | None
    graph: GraphSettings = field(default_factory=GraphSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    mapping: Mapping = field(default_factory=Mapping)
    run: RunSettings = field(default_factory=RunSettings)

    @property
    def delegated(self) -> bool:
        return self.auth.mode == "delegated"

    def with_overrides(self, **sections: Any) -> "Config":
        """A copy with whole sections or single fields replaced, e.g. for --emulator."""
        return replace(self, **sections)


_SECTIONS = {"graph": GraphSettings, "auth": AuthSettings, "mapping": Mapping, "run": RunSettings}


def _where(path: Path | None) -> str:
    return str(path) if path else "config"


def _build(cls: type, table: dict[str, Any], section: str, path: Path | None) -> Any:
    known = {f for f in cls.__dataclass_fields__}  # type: ignore[attr-defined]
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"{_where(path)}: unknown key '{key}' in [{section}].{hint}")
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:  # pragma: no cover - defensive
        raise ConfigError(f"{_where(path)}: [{section}] {exc}") from None


def _attendees(raw: Any, path: Path | None) -> tuple[AttendeeColumn, ...]:
    if raw is None:
        return ()
    items = [raw] if isinstance(raw, (str, dict)) else list(raw)
    out = []
    for item in items:
        if isinstance(item, str):
            out.append(AttendeeColumn(item))
        elif isinstance(item, dict) and "column" in item:
            role = str(item.get("role", "attendee")).lower()
            if role not in ROLES:
                raise ConfigError(
                    f"{_where(path)}: [mapping] attendees role '{role}' is not one of "
                    f"{', '.join(ROLES)}."
                )
            out.append(AttendeeColumn(str(item["column"]), role))
        else:
            raise ConfigError(
                f"{_where(path)}: [mapping] attendees must be column names or "
                "{column = \"...\", role = \"presenter\"} tables."
            )
    return tuple(out)


def parse_config(data: dict[str, Any], path: Path | None = None) -> Config:
    for key in data:
        if key not in _SECTIONS:
            close = difflib.get_close_matches(key, list(_SECTIONS), n=1)
            hint = f" Did you mean [{close[0]}]?" if close else ""
            raise ConfigError(f"{_where(path)}: unknown section [{key}].{hint}")
    mapping_raw = dict(data.get("mapping", {}))
    attendees = _attendees(mapping_raw.pop("attendees", None), path)
    keys = mapping_raw.pop("keys", ())
    if isinstance(keys, str):
        keys = (keys,)
    mapping = _build(Mapping, mapping_raw, "mapping", path)
    mapping = replace(mapping, attendees=attendees, keys=tuple(str(k) for k in keys))
    cfg = Config(
        path=path,
        graph=_build(GraphSettings, dict(data.get("graph", {})), "graph", path),
        auth=_build(AuthSettings, dict(data.get("auth", {})), "auth", path),
        mapping=mapping,
        run=_build(RunSettings, dict(data.get("run", {})), "run", path),
    )
    validate_config(cfg)
    return cfg


def validate_config(cfg: Config) -> None:
    """Contradictions that make every row fail are config errors, raised before reading rows."""
    where = _where(cfg.path)
    m = cfg.mapping
    if "client_secret" in cfg.auth.__dict__:  # pragma: no cover - not a field, guarded in _build
        raise ConfigError(f"{where}: secrets never go in the config file.")
    if cfg.graph.api_version not in ("v1.0", "beta"):
        raise ConfigError(f"{where}: [graph] api_version must be \"v1.0\" or \"beta\".")
    if cfg.auth.mode not in ("app", "delegated"):
        raise ConfigError(f"{where}: [auth] mode must be \"app\" or \"delegated\".")
    if m.thread_id and cfg.graph.api_version != "beta":
        raise ConfigError(
            f"{where}: [mapping] thread_id (chatInfo) works only with the beta API: "
            "set api_version = \"beta\" in [graph], or remove thread_id."
        )
    if not cfg.delegated and not (m.organizer or m.organizer_fixed):
        raise ConfigError(
            f"{where}: [mapping] needs 'organizer' (a column) or 'organizer_fixed' with an app "
            "token; or set mode = \"delegated\" in [auth] to create meetings as yourself."
        )
    if m.organizer and m.organizer_fixed:
        raise ConfigError(f"{where}: [mapping] set 'organizer' or 'organizer_fixed', not both.")
    if not m.subject.strip():
        raise ConfigError(f"{where}: [mapping] 'subject' is required, e.g. \"{{Course}}: {{Title}}\".")
    if m.external_id and m.keys:
        raise ConfigError(f"{where}: [mapping] set 'external_id' or 'keys', not both.")
    if not (m.external_id or m.keys):
        raise ConfigError(
            f"{where}: [mapping] needs 'keys' (columns that identify one class session, e.g. "
            "[\"CRN\", \"Date\"]) or 'external_id' (a column holding a unique id)."
        )
    if (m.start or m.end) and (m.date or m.start_time or m.end_time):
        raise ConfigError(
            f"{where}: [mapping] use either 'start'/'end' date-time columns or 'date' with "
            "'start_time'/'end_time', not both."
        )
    try:
        ZoneInfo(m.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"{where}: [mapping] time_zone '{m.time_zone}' is not an IANA time zone "
            "(e.g. \"America/Chicago\")."
        ) from None
    if cfg.run.concurrency < 1:
        raise ConfigError(f"{where}: [run] concurrency must be at least 1.")


def load_config(path: str | os.PathLike[str]) -> Config:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found (create one with `bulkmeet init SCHEDULE`).") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the config file ({exc.strerror}).") from None
    try:
        data = tomllib.loads(raw.decode("utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}.") from None
    return parse_config(data, p)
