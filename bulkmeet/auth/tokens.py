"""Graph access tokens for many worker threads, and the check that a token can make meetings.

``TokenProvider`` is a single-flight token holder: sixteen workers on a cold start cause one
token request; a token is refreshed *ahead* of its expiry by one worker while the others keep
using the valid one; tokens far shorter than msal's five-minute "expired" window still work; a
failed fetch is reported to the workers queued behind it instead of being repeated by each.
Subclasses make one msal call (``_acquire``) through their ``MsalClient``.
"""
from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msal
import requests

from bulkmeet.auth.client import MsalClient, Transient
from bulkmeet.auth.credentials import CertificateCredential, Credential
from bulkmeet.config import Config
from bulkmeet.errors import AuthError, BulkmeetError

log = logging.getLogger(__name__)

# Graph's resource is always graph.microsoft.com, whatever base_url the requests go to (the
# emulator accepts that audience too).
GRAPH_RESOURCE = "https://graph.microsoft.com"
APP_SCOPES: tuple[str, ...] = (f"{GRAPH_RESOURCE}/.default",)
DELEGATED_SCOPES: tuple[str, ...] = (
    f"{GRAPH_RESOURCE}/OnlineMeetings.ReadWrite",
    f"{GRAPH_RESOURCE}/User.Read",
)

# Retrying a token request that failed for a passing reason (network, 429, 5xx).
RETRY_DELAYS: tuple[float, ...] = (2.0, 8.0)
MAX_RETRY_AFTER = 60.0  # a longer Retry-After means "come back later", not "wait in a cron job"
REFRESH_FAILURE_BACKOFF = 5.0  # after a failed early refresh, keep the old token this long


@dataclass(frozen=True)
class _Held:
    """A token plus when to start refreshing it and when to stop handing it out (monotonic)."""

    token: str = field(repr=False)
    refresh_at: float
    usable_until: float


def _margins(lifetime: float) -> tuple[float, float]:
    """(refresh margin, hard margin) before expiry, relative to the lifetime.

    An hour-long token is refreshed 5 minutes before it expires and handed out until 1 minute
    before; a 20 s token at 5 s and 2 s. The hard margin covers a request in flight and a server
    whose clock or ``exp`` rounding differs by a second.
    """
    hard = min(60.0, max(2.0, lifetime / 10))
    refresh = min(300.0, max(hard + 1.0, lifetime / 4))
    return refresh, hard


class TokenProvider(ABC):
    """Hands out a valid Graph token to many threads; see the module docstring for the why."""

    delegated: bool = False

    def __init__(
        self,
        client: MsalClient,
        *,
        retry_delays: Sequence[float] = RETRY_DELAYS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._held: _Held | None = None
        self._retry_not_before = 0.0
        self._failed: tuple[float, str] | None = None  # (until, message) of the last failed fetch
        self._after_failure = False
        self._force_fresh = False
        self._retry_delays = tuple(retry_delays)
        self._clock = clock
        self._sleep = sleep

    # -- the contract ------------------------------------------------------------------------

    def token(self) -> str:
        """A token with comfortably long to live; thread-safe and single-flight."""
        held = self._held
        now = self._clock()
        if held is not None and now < held.refresh_at:
            return held.token
        if held is not None and now < held.usable_until:
            return self._refresh_ahead(held, now)
        with self._lock:
            held = self._held
            now = self._clock()
            if held is not None and now < held.usable_until:
                return held.token
            failed = self._failed
            if failed is not None and now < failed[0]:
                # Workers queued behind a failed fetch get its answer, not a fetch each.
                raise AuthError(failed[1])
            try:
                self._held = self._fetch(fresh=held is not None or self._force_fresh)
            except AuthError as exc:
                self._failed = (self._clock() + REFRESH_FAILURE_BACKOFF, str(exc))
                raise
            self._failed = None
            return self._held.token

    def _refresh_ahead(self, held: _Held, now: float) -> str:
        """Refresh window: one thread refreshes, the others keep using the still-valid token."""
        if not self._lock.acquire(blocking=False):
            return held.token
        try:
            if self._held is not held and self._held is not None:
                return self._held.token
            if now < self._retry_not_before:
                return held.token
            try:
                self._held = self._fetch(fresh=True, attempts=1)
            except BulkmeetError as exc:
                self._retry_not_before = now + REFRESH_FAILURE_BACKOFF
                self._after_failure = True
                log.warning("Could not refresh the access token ahead of its expiry (%s); still "
                            "using the current one for up to %.0f s.", exc, held.usable_until - now)
                return held.token
            return self._held.token
        finally:
            self._lock.release()

    def invalidate(self, token: str) -> None:
        """Graph said 401 for this token: the next token() fetches a new one (once, not per caller)."""
        with self._lock:
            if self._held is not None and self._held.token == token:
                self._held = None
                self._force_fresh = True

    @abstractmethod
    def describe(self) -> str:
        """Who bulkmeet acts as, for logs and the run summary; never a secret."""

    def close(self) -> None:
        """Release the HTTP connections (the provider is unusable afterwards)."""
        self._client.close()

    # -- for subclasses ----------------------------------------------------------------------

    @abstractmethod
    def _acquire(self, fresh: bool) -> dict[str, Any]:
        """One msal call; returns msal's result dict (may raise requests/msal exceptions)."""

    def _secrets(self) -> tuple[str, ...]:
        return ()

    def _redact(self, text: str) -> str:
        for secret in self._secrets():
            if secret and len(secret) >= 4:
                text = text.replace(secret, "[redacted]")
        held = self._held
        if held is not None:
            text = text.replace(held.token, "[token]")
        return text

    def _fetch(self, fresh: bool, attempts: int | None = None) -> _Held:
        """Get a new token from msal, retrying passing failures; AuthError otherwise."""
        max_attempts = attempts or (len(self._retry_delays) + 1)
        attempt = 0
        while True:
            attempt += 1
            if self._after_failure:
                self._client.forget_errors()
            started = self._clock()
            try:
                result = self._client.call(lambda: self._acquire(fresh))
                held = self._hold(result, started)
            except Transient as exc:
                self._after_failure = True
                wait = self._retry_delays[min(attempt - 1, len(self._retry_delays) - 1)] \
                    if self._retry_delays else 0.0
                if exc.retry_after is not None:
                    if exc.retry_after > MAX_RETRY_AFTER:
                        raise AuthError(self._redact(
                            f"{exc.message} The sign-in service asked bulkmeet to wait "
                            f"{exc.retry_after:.0f} s; try again later.")) from None
                    wait = max(wait, exc.retry_after)
                if attempt >= max_attempts:
                    tries = f" (tried {attempt} times)" if attempt > 1 else ""
                    raise AuthError(self._redact(exc.message.rstrip(".") + tries + ".")) from None
                log.warning("%s Retrying in %.0f s.", self._redact(exc.message), wait)
                self._sleep(wait)
                continue
            except AuthError as exc:
                self._after_failure = True
                raise AuthError(self._redact(str(exc))) from None
            self._after_failure = False
            self._force_fresh = False
            self._retry_not_before = 0.0
            return held

    def _hold(self, result: Mapping[str, Any], started: float) -> _Held:
        token = result.get("access_token")
        if not token:
            raise AuthError(f"The sign-in service {self._client.context.authority} returned no access token: "
                            "check authority_host in [auth].")
        try:
            lifetime = max(0.0, float(result.get("expires_in") or 0))
        except (TypeError, ValueError):
            lifetime = 0.0
        refresh, hard = _margins(lifetime)
        expires = started + lifetime
        log.debug("Got an access token (%s), valid %.0f s, from %s.", self.describe(), lifetime,
                  result.get("token_source", "the sign-in service"))
        return _Held(str(token), refresh_at=expires - refresh, usable_until=expires - hard)


class AppTokenProvider(TokenProvider):
    """Client credentials (secret or certificate): tokens for /users/{organizerId}/..."""

    delegated = False

    def __init__(self, config: Config, credential: Credential,
                 http_session: requests.Session | None = None, **options: Any):
        if isinstance(credential, CertificateCredential):
            source, thumbprint = f"certificate file {credential.path}", credential.thumbprint
        else:
            source, thumbprint = credential.source, "(none)"
        self._token_cache = msal.TokenCache()
        client = MsalClient(config, http_session).with_context(source=source, thumbprint=thumbprint)
        super().__init__(client.confidential(credential, self._token_cache), **options)
        self._credential = credential

    def describe(self) -> str:
        return f"{self._client.short_ids()} with {self._credential.describe()}"

    def _secrets(self) -> tuple[str, ...]:
        return self._credential.secrets()

    def _acquire(self, fresh: bool) -> dict[str, Any]:
        app = self._client.app()
        # We hold the token ourselves; msal's copy would be served back after an invalidate().
        for at in list(self._token_cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
            self._token_cache.remove_at(at)
        return app.acquire_token_for_client(list(APP_SCOPES))


# Application permission (app mode) and delegated scope that let bulkmeet create meetings.
APP_ROLE = "OnlineMeetings.ReadWrite.All"
DELEGATED_SCOPE = "OnlineMeetings.ReadWrite"


def check_permissions(token: str, *, delegated: bool) -> None:
    """Fail before the first row when the token cannot create meetings at all (exit 3).

    Without this, a missing admin consent shows up as the same 403 on every row. The token is
    read, not verified: Graph verifies it; this only looks for the role or scope it carries.
    """
    import jwt  # only a run needs it, not --dry-run or validate

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return  # not a JWT we can read: let Graph decide
    if delegated:
        scopes = str(claims.get("scp", "")).split()
        if DELEGATED_SCOPE not in scopes and APP_ROLE not in scopes:
            raise AuthError(
                "Your sign-in has no OnlineMeetings.ReadWrite permission: add that delegated "
                "permission to the app registration, grant consent, then run `bulkmeet login` again.")
        return
    roles = claims.get("roles") or []
    if APP_ROLE not in roles:
        raise AuthError(
            "The app's token has no OnlineMeetings.ReadWrite.All role: in the Azure portal open the "
            "app registration > API permissions, add Microsoft Graph > Application permissions > "
            "OnlineMeetings.ReadWrite.All, and click 'Grant admin consent'.")
