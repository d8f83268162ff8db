"""Delegated mode: the organizer signs in once (`bulkmeet login`), cron runs reuse the sign-in.

The msal token cache is the sign-in: it is kept in a file readable by its owner only (0600,
tightened if someone loosened it), replaced atomically, and written only when msal changed it,
so a run that used the cached access token leaves the file untouched.
"""
from __future__ import annotations

import json
import logging
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msal
import requests

from bulkmeet.atomic import atomic_write_bytes
from bulkmeet.auth.client import MsalClient, Transient
from bulkmeet.auth.credentials import resolve_path
from bulkmeet.auth.messages import aad_error_message, where
from bulkmeet.auth.tokens import DELEGATED_SCOPES, TokenProvider
from bulkmeet.config import Config
from bulkmeet.errors import AuthError, ConfigError

log = logging.getLogger(__name__)


def token_cache_path(config: Config) -> Path:
    base = config.path.parent if config.path else None
    return resolve_path(config.auth.token_cache, base)


class CacheFile:
    """The msal token cache on disk: owner-only, replaced atomically, written only when changed."""

    def __init__(self, path: Path, login: str):
        self.path = path
        self._login = login
        self.cache = msal.SerializableTokenCache()

    def load(self) -> bool:
        """Read the file if there is one; tighten its mode if someone loosened it."""
        try:
            st = self.path.stat()
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise AuthError(f"Cannot read the token cache {self.path} ({exc.strerror}): run "
                            f"`{self._login}` as the user that runs bulkmeet.") from None
        if st.st_mode & 0o077:
            try:
                os.chmod(self.path, 0o600)
                log.warning("Token cache %s was readable by other users (mode %s); bulkmeet set "
                            "it back to 600.", self.path, stat.filemode(st.st_mode))
            except OSError:
                log.warning("Token cache %s is readable by other users (mode %s): run `chmod 600 "
                            "%s`.", self.path, stat.filemode(st.st_mode), self.path)
        try:
            _check_shape(json.loads(text) if text.strip() else {})
            self.cache.deserialize(text)
        except (ValueError, RecursionError):
            raise AuthError(f"The token cache {self.path} is damaged: run `{self._login}` again.") from None
        return True

    def save(self, *, force: bool = False) -> bool:
        """Write the cache if msal changed it; returns whether it wrote."""
        if not (force or self.cache.has_state_changed):
            return False
        data = self.cache.serialize().encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write_bytes(self.path, data, mode=0o600)
        self.cache.has_state_changed = False
        return True


# msal's cache file: {section: {key: {field: string or null}}}. The fields msal reads without
# looking (by section), the sections whose entries name their own type, and the fields it reads
# as whole seconds with int().
_REQUIRED = {
    "AccessToken": ("credential_type", "secret", "target", "expires_on"),
    "RefreshToken": ("credential_type", "secret"),
    "IdToken": ("credential_type",),
    "Account": ("authority_type",),
    "AppMetadata": (),
}
_TYPED = ("AccessToken", "RefreshToken", "IdToken")
_SECONDS = ("cached_at", "expires_on", "extended_expires_on", "refresh_on",
            "last_modification_time")


def _check_shape(data: object) -> None:
    """ValueError unless ``data`` is shaped like the cache msal writes.

    msal trusts the file it wrote: a cache that is JSON of another shape (``[]``, an entry that
    is a string, a token that is a number, expires_on "soon") fails deep inside msal as an
    AttributeError, AssertionError, KeyError or ValueError, which would read as a bulkmeet bug or
    as the sign-in service's fault. Checked here, it is what it is: a damaged cache, fixed by
    signing in again. Only what msal itself writes is required, so a real cache always passes.
    """
    if not isinstance(data, dict):
        raise ValueError("not an object")
    for section, required in _REQUIRED.items():
        entries = data.get(section, {})
        if not isinstance(entries, dict):
            raise ValueError(section)
        for entry in entries.values():
            if not isinstance(entry, dict) or not all(
                    isinstance(k, str) and (v is None or isinstance(v, str))
                    for k, v in entry.items()):
                raise ValueError(section)
            if any(entry.get(field) is None for field in required):
                raise ValueError(section)
            if section in _TYPED and entry["credential_type"] != section:
                raise ValueError(section)
            if not all(_seconds(entry[field]) for field in _SECONDS if field in entry):
                raise ValueError(section)


def _seconds(value: str | None) -> bool:
    """What msal's int() reads as a time: ASCII digits (null is not: int(None) fails too)."""
    return value is not None and value.strip().isascii() and value.strip().isdigit()


def cached_username(cache: msal.SerializableTokenCache, client_id: str) -> str | None:
    """The account in a cache that has a refresh token for this app (no network)."""
    rts = list(cache.search(msal.TokenCache.CredentialType.REFRESH_TOKEN,
                            query={"client_id": client_id}))
    homes = {rt.get("home_account_id") for rt in rts}
    for account in cache.search(msal.TokenCache.CredentialType.ACCOUNT):
        if account.get("home_account_id") in homes:
            return str(account.get("username") or "the signed-in user")
    return "the signed-in user" if rts else None


def _pick_account(app: msal.ClientApplication, tenant: str) -> dict[str, Any] | None:
    """The cached account of this tenant, else the first one (a domain or "organizations" as
    tenant_id never equals the account's realm, which is the tenant GUID)."""
    accounts = app.get_accounts()
    if not accounts:
        return None
    for account in accounts:
        if str(account.get("realm", "")).lower() == tenant.lower():
            return account
    return accounts[0]


class DelegatedTokenProvider(TokenProvider):
    """The signed-in organizer's token (from `bulkmeet login`): requests go to /me/..."""

    delegated = True

    def __init__(self, config: Config, http_session: requests.Session | None = None, **options: Any):
        client = MsalClient(config, http_session)
        self._file = CacheFile(token_cache_path(config), client.context.login)
        client.with_context(cache=str(self._file.path))
        super().__init__(client.public(self._file.cache), **options)
        login = client.context.login
        if not self._file.load():
            raise AuthError(f"Nobody has signed in yet (no token cache at {self._file.path}): run "
                            f"`{login}` once as the organizer.")
        self._username = cached_username(self._file.cache, client.client_id)
        if self._username is None:
            raise AuthError(f"The token cache {self._file.path} holds no sign-in for app "
                            f"{client.client_id}: run `{login}` once as the organizer.")

    @property
    def username(self) -> str:
        return self._username or ""

    def describe(self) -> str:
        return (f"signed-in user {self._username} (delegated; {self._client.short_ids()}; token "
                f"cache {self._file.path})")

    def _acquire(self, fresh: bool) -> dict[str, Any]:
        client = self._client
        app = client.app()
        account = _pick_account(app, client.tenant)
        login = client.context.login
        if account is None:
            raise AuthError(f"The token cache {self._file.path} holds no sign-in for app "
                            f"{client.client_id}: run `{login}` once as the organizer.")
        result = app.acquire_token_silent_with_error(
            list(DELEGATED_SCOPES), account, force_refresh=fresh)
        if result is None:
            raise AuthError(f"The token cache {self._file.path} no longer yields a token for "
                            f"{account.get('username')}: run `{login}` once as the organizer.")
        self._save_cache()
        return result

    def _save_cache(self) -> None:
        """A redeemed refresh token is replaced by a new one: keep it for the next run."""
        try:
            self._file.save()
        except OSError as exc:  # the run can go on with the token in memory
            log.warning("Could not update the token cache %s (%s); the next run may ask for "
                        "`%s`.", self._file.path, exc.strerror, self._client.context.login)


# -- login / logout ---------------------------------------------------------------------------


def _device_code_sign_in(client: MsalClient, echo: Callable[[str], None],
                         timeout: float | None) -> dict[str, Any]:
    """Show msal's device-code message, then wait for the person (at most ``timeout`` s)."""
    ctx = client.context

    def start() -> dict[str, Any]:
        flow = client.app().initiate_device_flow(scopes=list(DELEGATED_SCOPES))
        if "user_code" not in flow:
            raise AuthError(aad_error_message(flow, ctx))
        return flow

    flow = _once(client, start)
    echo(str(flow.get("message") or
             f"To sign in, open {flow.get('verification_uri')} and enter the code "
             f"{flow['user_code']}."))
    if timeout is not None:
        flow["expires_at"] = min(float(flow.get("expires_at", 0)), time.time() + timeout)

    def poll() -> dict[str, Any]:
        result = client.app().acquire_token_by_device_flow(flow)
        if result.get("error") in ("authorization_pending", "slow_down"):
            raise AuthError(f"Nobody entered the sign-in code in time: run `{ctx.login}` "
                            "again and enter the code promptly.")
        return result

    return _once(client, poll)


def _once(client: MsalClient, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A person is waiting: no retries; a passing failure says to try again shortly."""
    try:
        return client.call(call)
    except Transient as exc:
        raise AuthError(exc.message + " Try `bulkmeet login` again in a few minutes.") from None


def login(config: Config, *, echo: Callable[[str], None] = print, timeout: float | None = None) -> str:
    """Device-code sign-in: show msal's message, wait for the person, save the cache (0600).

    Returns the signed-in username. A new login replaces whatever the cache held.
    """
    if not config.delegated:
        raise ConfigError(
            f"{where(config.path)}: `bulkmeet login` is for mode = \"delegated\" in [auth]; with "
            "an app registration (mode = \"app\") bulkmeet signs in by itself with the secret or "
            "certificate."
        )
    client = MsalClient(config)
    file = CacheFile(token_cache_path(config), client.context.login)  # fresh: replaces the old
    client.with_context(cache=str(file.path)).public(file.cache)
    try:
        result = _device_code_sign_in(client, echo, timeout)
        claims = result.get("id_token_claims") or {}
        username = claims.get("preferred_username") or cached_username(
            file.cache, client.client_id) or "the signed-in user"
        try:
            file.save(force=True)
        except OSError as exc:
            raise ConfigError(f"Signed in, but could not save the token cache {file.path} "
                              f"({exc.strerror}): set token_cache in [auth] to a writable path "
                              "and run login again.") from None
        log.info("Signed in as %s; token cache %s.", username, file.path)
        return str(username)
    finally:
        client.close()


def logout(config: Config) -> Path | None:
    """Forget the saved sign-in; returns the cache file if there was one."""
    path = token_cache_path(config)
    try:
        path.unlink()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"Cannot remove the token cache {path} ({exc.strerror}).") from None
    return path
