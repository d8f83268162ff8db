"""What every msal application bulkmeet makes shares: the authority, a pinned HTTP client, and
the mapping of every msal failure to an ``AuthError`` (final) or a ``Transient`` (retry).

Token providers and the one-off device-code login each own one ``MsalClient``; none of them
subclasses another to borrow set-up. Making a client does no network I/O: msal fetches the OIDC
metadata when its application object is built, and ``app()`` does that on first use.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import msal
import requests

from bulkmeet.auth.credentials import Credential, resolve_ids
from bulkmeet.auth.messages import Context, aad_code, aad_error_message, login_command, network_message, where
from bulkmeet.config import DEFAULT_AUTHORITY_HOST, AuthSettings, Config
from bulkmeet.errors import AuthError, BulkmeetError, ConfigError, UnsafeURLError
from bulkmeet.http import build_session, describe_ca, endpoint, origin, resolve_ca_bundle

_TRANSIENT_ERRORS = {"temporarily_unavailable", "server_error"}


class Transient(Exception):
    """A token request that may well work if tried again shortly."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class AuthorityHttp:
    """The http_client msal uses: one origin only, verified TLS, timeouts, last error kept.

    msal would otherwise follow whatever the OIDC metadata says and would wait forever on a
    stalled connection; and it turns some failures into exceptions that drop the response, so
    the last status, Retry-After and error body are remembered here for the error message.
    """

    def __init__(self, session: requests.Session, origin: str, timeout: tuple[float, float],
                 owned: bool = True):
        self._session = session
        self._owned = owned  # a session lent by the caller (shared with Graph) stays open
        self._origin = origin
        self._timeout = timeout
        self.last_status: int | None = None
        self.last_retry_after: float | None = None
        self.last_error_body: str | None = None

    def _check(self, url: str) -> None:
        """Parsed by the same rules (and parser) as the request itself: http.origin."""
        try:
            target = origin(url, "the sign-in service's URL")
        except UnsafeURLError:
            target = None
        if target != self._origin:
            raise AuthError(
                f"The sign-in service at {self._origin} sent bulkmeet to another host "
                f"({target or 'a URL bulkmeet cannot check'}); refusing to send credentials "
                "there: check authority_host in [auth]."
            )

    def _remember(self, resp: requests.Response) -> requests.Response:
        self.last_status = resp.status_code
        self.last_retry_after = None
        self.last_error_body = None
        if resp.status_code >= 400:
            self.last_error_body = resp.text[:4000]
            retry_after = resp.headers.get("Retry-After")
            if retry_after:
                try:
                    self.last_retry_after = max(0.0, float(retry_after))
                except ValueError:
                    self.last_retry_after = None
        return resp

    def forget(self) -> None:
        self.last_status = self.last_retry_after = self.last_error_body = None

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        self._check(url)
        kwargs.setdefault("timeout", self._timeout)
        return self._remember(self._session.get(url, **kwargs))

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        self._check(url)
        kwargs.setdefault("timeout", self._timeout)
        return self._remember(self._session.post(url, **kwargs))

    def close(self) -> None:
        if self._owned:
            self._session.close()


def authority_host(auth: AuthSettings, config_path: Path | None) -> str:
    """[auth] authority_host, checked: https (msal refuses http), scheme and host only."""
    raw = (auth.authority_host or DEFAULT_AUTHORITY_HOST).strip()
    ep = endpoint(raw, f"{where(config_path)}: [auth] authority_host")
    host = ep.url
    if ep.scheme != "https":
        raise ConfigError(
            f"{where(config_path)}: [auth] authority_host '{host}' must be https: msal refuses "
            "plain http even on loopback (the bulkmeet emulator serves https; trust its CA with "
            "ca_bundle in [graph])."
        )
    if ep.path:
        raise ConfigError(
            f"{where(config_path)}: [auth] authority_host '{host}' must be only scheme and host "
            "(e.g. https://login.microsoftonline.com); the tenant goes in tenant_id."
        )
    return ep.url


def check_ca_bundle(ca_bundle: str | None, config_path: Path | None) -> None:
    """A missing CA file would otherwise surface as a bare OSError on the first request."""
    resolved = resolve_ca_bundle(ca_bundle)
    if isinstance(resolved, str) and not os.path.isfile(resolved):
        named = "ca_bundle in [graph]" if ca_bundle else describe_ca(None)
        raise ConfigError(f"{where(config_path)}: the CA bundle {resolved} ({named}) does not "
                          "exist: point it at a PEM file with your organisation's CA certificates.")


class MsalClient:
    """The authority, ids and pinned HTTP client behind one msal application, made on first use.

    ``context`` is what error messages may name; owners add to it with ``dataclasses.replace``
    (where the credential or the token cache is).
    """

    def __init__(self, config: Config, http_session: requests.Session | None = None) -> None:
        auth = config.auth
        self.tenant, self.client_id = resolve_ids(auth, config_path=config.path)
        self.authority_host = authority_host(auth, config.path)
        self.authority = f"{self.authority_host}/{self.tenant}"
        # Only the public cloud may be asked: msal must never ask login.microsoftonline.com
        # about an emulator or a private authority.
        self.instance_discovery = (
            None if self.authority_host.lower() == DEFAULT_AUTHORITY_HOST else False
        )
        check_ca_bundle(config.graph.ca_bundle, config.path)
        session = http_session or build_session(config.graph.ca_bundle)
        self.http = AuthorityHttp(
            session, origin(self.authority_host, "[auth] authority_host"),
            (config.graph.connect_timeout, config.graph.read_timeout),
            owned=http_session is None,
        )
        # msal's memory of recent token-endpoint errors (see forget_errors).
        self.http_cache: dict[str, Any] = {}
        self.context = Context(
            tenant=self.tenant, client=self.client_id, authority=self.authority_host,
            ca=describe_ca(config.graph.ca_bundle), login=login_command(config),
        )
        self._make: Callable[[], msal.ClientApplication] | None = None
        self._app: msal.ClientApplication | None = None

    def with_context(self, **changes: str) -> MsalClient:
        self.context = replace(self.context, **changes)
        return self

    def confidential(self, credential: Credential, cache: msal.TokenCache) -> MsalClient:
        """Client credentials (secret or certificate); never probe IMDS or regional hosts."""
        self._make = lambda: msal.ConfidentialClientApplication(
            self.client_id, client_credential=credential.for_msal(), authority=self.authority,
            token_cache=cache, http_client=self.http, http_cache=self.http_cache,
            instance_discovery=self.instance_discovery, azure_region=False)
        return self

    def public(self, cache: msal.TokenCache) -> MsalClient:
        """A public client (device code, refresh tokens) over ``cache``."""
        self._make = lambda: msal.PublicClientApplication(
            self.client_id, authority=self.authority, token_cache=cache, http_client=self.http,
            http_cache=self.http_cache, instance_discovery=self.instance_discovery)
        return self

    def app(self) -> msal.ClientApplication:
        """msal fetches the OIDC metadata when the app is made: on first use, not in build."""
        if self._app is None:
            if self._make is None:  # pragma: no cover - a programming error
                raise RuntimeError("MsalClient used before confidential() or public()")
            self._app = self._make()
        return self._app

    def short_ids(self) -> str:
        return f"app {self.client_id[:8]}… in tenant {self.tenant[:8]}…"

    def forget_errors(self) -> None:
        """Drop msal's memory of recent token-endpoint errors before a deliberate retry.

        msal replays a 5xx/429 for its throttle window (5 s for apps, 60 s for public clients) and
        a 400 for 60 s; our retries already wait and honour Retry-After, so a replay would only
        turn a recovered service into a failure.
        """
        self.http_cache.clear()

    def close(self) -> None:
        """Release the HTTP connections (unless the session was lent)."""
        self.http.close()

    def call(self, call: Callable[[], dict[str, Any] | None]) -> dict[str, Any]:
        """One msal call with every failure turned into AuthError or Transient."""
        ctx = self.context
        self.http.forget()
        try:
            result = call()
        except BulkmeetError:
            raise
        except requests.exceptions.SSLError as exc:
            raise AuthError(network_message(exc, ctx)) from None
        except requests.exceptions.RequestException as exc:  # connection, timeout, proxy...
            raise Transient(network_message(exc, ctx)) from None
        except OSError as exc:  # e.g. the CA bundle vanished since start-up
            raise AuthError(f"bulkmeet could not talk to the sign-in service {ctx.authority} "
                            f"({exc.strerror or exc}): check ca_bundle in [graph].") from None
        except msal.exceptions.MsalServiceError:
            status = self.http.last_status
            raise Transient(f"The sign-in service {ctx.authority} had a temporary failure "
                            f"(HTTP {status or '5xx'}).", self.http.last_retry_after) from None
        except (ValueError, KeyError) as exc:
            raise self._unusable_answer(exc) from None
        if result is None:
            return {}
        if "access_token" in result or "user_code" in result:
            return result
        status = self.http.last_status
        if status == 429 or (status or 0) >= 500 or result.get("error") in _TRANSIENT_ERRORS:
            raise Transient(f"The sign-in service {ctx.authority} is busy or failing "
                            f"(HTTP {status or '?'}, {result.get('error')}).",
                            self.http.last_retry_after)
        raise AuthError(aad_error_message(result, ctx))

    def _unusable_answer(self, exc: BaseException) -> Exception:
        """msal raises ValueError for a metadata 4xx (unknown tenant) or a non-JSON answer."""
        ctx = self.context
        status = self.http.last_status
        body = self.http.last_error_body or ""
        if status is not None and (status == 429 or status >= 500):
            return Transient(f"The sign-in service {ctx.authority} had a temporary failure "
                             f"(HTTP {status}).", self.http.last_retry_after)
        try:
            parsed = json.loads(body) if body else {}
        except ValueError:
            parsed = {}
        if isinstance(parsed, dict) and (parsed.get("error") or aad_code(parsed)):
            return AuthError(aad_error_message(parsed, ctx))
        if status is not None and 400 <= status < 500:
            return AuthError(
                f"The sign-in service {ctx.authority} knows no tenant '{ctx.tenant}' (HTTP {status}): "
                "set tenant_id in [auth] to the Directory (tenant) ID from the app's Overview page, "
                "and check authority_host."
            )
        return AuthError(
            f"The sign-in service {ctx.authority} gave an answer bulkmeet cannot use "
            f"({type(exc).__name__}): check authority_host in [auth]."
        )
