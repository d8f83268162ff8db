"""Getting an access token for Graph, from cron or by hand, without ever showing a secret.

msal does the protocol work (client credentials, device code, refresh tokens). This package adds
what a long unattended run needs and msal leaves out, one module per job:

* ``credentials``: one place that finds the credential (certificate first, then a secret from the
  environment or a file, never from the config file) and turns a bad one into a sentence;
* ``messages``: the identity platform's AADSTS errors mapped to one actionable sentence each (the
  code is kept, the trace and correlation ids are not);
* ``client``: the msal client every provider and the login share: it talks to the configured
  authority host only, over verified TLS, with timeouts, so nothing (instance discovery
  included) can leak to another host;
* ``tokens``: a single-flight token holder for many workers, and the check that a token can
  create meetings at all;
* ``delegated``: the organizer's sign-in: the token cache file (0600, atomic, written only when
  changed), login and logout.

``build_token_provider`` does no network I/O: the first ``token()`` contacts the authority, so
``--dry-run`` and ``describe()`` work offline and every sign-in failure surfaces in one place.
The names below are the package's interface; callers import them from ``bulkmeet.auth``.
"""
from __future__ import annotations

from typing import Any

import requests

from bulkmeet.auth.credentials import (
    CertificateCredential,
    Credential,
    SecretCredential,
    find_credential,
    load_certificate,
    resolve_ids,
)
from bulkmeet.auth.delegated import DelegatedTokenProvider, login, logout, token_cache_path
from bulkmeet.auth.messages import Context, aad_error_message, login_command
from bulkmeet.auth.tokens import (
    APP_SCOPES,
    DELEGATED_SCOPES,
    AppTokenProvider,
    TokenProvider,
    check_permissions,
)
from bulkmeet.config import Config

__all__ = [
    "APP_SCOPES",
    "DELEGATED_SCOPES",
    "AppTokenProvider",
    "CertificateCredential",
    "Context",
    "Credential",
    "DelegatedTokenProvider",
    "SecretCredential",
    "TokenProvider",
    "aad_error_message",
    "build_token_provider",
    "check_permissions",
    "find_credential",
    "load_certificate",
    "login",
    "login_command",
    "logout",
    "resolve_ids",
    "token_cache_path",
]


def build_token_provider(
    config: Config, *, http_session: requests.Session | None = None, **options: Any
) -> TokenProvider:
    """The provider for config.auth.mode; no network I/O here (the first token() does it).

    ConfigError (exit 2) for settings that cannot work; AuthError (exit 3) when a delegated run
    has no saved sign-in. ``options`` (retry_delays, clock, sleep) are for tests.
    """
    if config.delegated:
        return DelegatedTokenProvider(config, http_session, **options)
    credential = find_credential(config.auth, config_path=config.path)
    return AppTokenProvider(config, credential, http_session, **options)
