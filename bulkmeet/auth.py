"""Getting an access token for Graph, from cron or by hand, without ever showing a secret.

msal does the protocol work (client credentials, device code, refresh tokens). This module adds
what a long unattended run needs and msal leaves out:

* one place that finds the credential (certificate first, then a secret from the environment or
  a file, never from the config file) and turns a bad one into a sentence naming what to fix;
* a single-flight token holder: sixteen workers on a cold start cause one token request, a token
  is refreshed *ahead* of its expiry by one worker while the others keep using the valid one, and
  tokens far shorter than msal's five-minute "expired" window still work;
* the identity platform's AADSTS errors mapped to one actionable sentence each (the code is kept,
  the trace and correlation ids are not);
* an HTTP client for msal that talks to the configured authority host only, over verified TLS,
  with timeouts, so nothing (instance discovery included) can leak to another host;
* the delegated token cache written atomically with mode 0600, and only when it changed.

``build_token_provider`` does no network I/O: the first ``token()`` contacts the authority, so
``--dry-run`` and ``describe()`` work offline and every sign-in failure surfaces in one place.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shlex
import stat
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msal
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from bulkmeet.atomic import atomic_write_bytes
from bulkmeet.config import DEFAULT_AUTHORITY_HOST, AuthSettings, Config
from bulkmeet.errors import AuthError, BulkmeetError, ConfigError
from bulkmeet.http import build_session, check_url, resolve_ca_bundle

__all__ = [
    "APP_SCOPES",
    "DELEGATED_SCOPES",
    "AppTokenProvider",
    "CertificateCredential",
    "DelegatedTokenProvider",
    "SecretCredential",
    "TokenProvider",
    "build_token_provider",
    "find_credential",
    "load_certificate",
    "login",
    "logout",
    "resolve_ids",
    "token_cache_path",
]

log = logging.getLogger(__name__)

# Graph's resource is always graph.microsoft.com, whatever base_url the requests go to (the
# emulator accepts that audience too).
GRAPH_RESOURCE = "https://graph.microsoft.com"
APP_SCOPES: tuple[str, ...] = (f"{GRAPH_RESOURCE}/.default",)
DELEGATED_SCOPES: tuple[str, ...] = (
    f"{GRAPH_RESOURCE}/OnlineMeetings.ReadWrite",
    f"{GRAPH_RESOURCE}/User.Read",
)

# The names azure-identity's EnvironmentCredential reads, so one set of variables serves both.
ENV_TENANT_ID = "AZURE_TENANT_ID"
ENV_CLIENT_ID = "AZURE_CLIENT_ID"
ENV_CLIENT_SECRET = "AZURE_CLIENT_SECRET"
ENV_CERT_PATH = "AZURE_CLIENT_CERTIFICATE_PATH"
ENV_CERT_PASSWORD = "AZURE_CLIENT_CERTIFICATE_PASSWORD"

# Retrying a token request that failed for a passing reason (network, 429, 5xx).
RETRY_DELAYS: tuple[float, ...] = (2.0, 8.0)
MAX_RETRY_AFTER = 60.0  # a longer Retry-After means "come back later", not "wait in a cron job"
REFRESH_FAILURE_BACKOFF = 5.0  # after a failed early refresh, keep the old token this long

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\s.*?-----END \1-----", re.DOTALL)
_AADSTS = re.compile(r"AADSTS(\d+)")


# --------------------------------------------------------------------------------------------
# Credentials


@dataclass(frozen=True)
class SecretCredential:
    """A client secret and where it came from; the value never appears in repr or messages."""

    value: str = field(repr=False)
    source: str  # "environment variable BULKMEET_CLIENT_SECRET" | "file /etc/bulkmeet/secret"

    def for_msal(self) -> Any:
        return self.value

    def describe(self) -> str:
        return f"a client secret from {self.source}"

    def secrets(self) -> tuple[str, ...]:
        return (self.value,)


@dataclass(frozen=True)
class CertificateCredential:
    """An RSA key and its certificate, checked to belong together before msal sees them.

    A PEM file is handed to msal as key + SHA-1 thumbprint (RS256, ``x5t``: the thumbprint the
    Azure portal shows); a PFX goes to msal as a path + passphrase (PS256, ``x5t#S256``).
    """

    path: Path
    kind: str  # "pem" | "pfx"
    thumbprint: str  # SHA-1, upper-case hex: what the portal lists under Certificates & secrets
    thumbprint_sha256: str
    subject: str
    not_after: datetime
    key_pem: str | None = field(default=None, repr=False)  # PEM only: the key block as written
    password: str | None = field(default=None, repr=False)
    password_source: str | None = None

    def for_msal(self) -> dict[str, Any]:
        if self.kind == "pfx":
            cred: dict[str, Any] = {"private_key_pfx_path": str(self.path)}
        else:
            cred = {"private_key": self.key_pem, "thumbprint": self.thumbprint}
        if self.password:
            cred["passphrase"] = self.password
        return cred

    def describe(self) -> str:
        return f"a certificate (thumbprint {self.thumbprint}, {self.path})"

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.key_pem, self.password) if s)


Credential = SecretCredential | CertificateCredential


def _env(environ: Mapping[str, str], name: str | None) -> str | None:
    """An environment value, with empty meaning unset (cron files often export VAR=)."""
    if not name:
        return None
    value = environ.get(name)
    return value.strip() if value and value.strip() else None


def _where(config_path: Path | None) -> str:
    return str(config_path) if config_path else "the config"


def _resolve_path(value: str, base_dir: Path | None) -> Path:
    """Config paths are relative to the config file, so cron's working directory does not matter."""
    p = Path(os.path.expanduser(value))
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    return p


def resolve_ids(
    auth: AuthSettings, environ: Mapping[str, str] | None = None, config_path: Path | None = None
) -> tuple[str, str]:
    """(tenant_id, client_id) from [auth], else AZURE_TENANT_ID / AZURE_CLIENT_ID, checked."""
    environ = os.environ if environ is None else environ
    where = _where(config_path)
    tenant = (auth.tenant_id or "").strip() or _env(environ, ENV_TENANT_ID)
    client = (auth.client_id or "").strip() or _env(environ, ENV_CLIENT_ID)
    if not tenant:
        raise ConfigError(
            f"{where}: no tenant id: set tenant_id in [auth] (or the environment variable "
            f"{ENV_TENANT_ID}) to the Directory (tenant) ID from the app registration's Overview page."
        )
    if not client:
        raise ConfigError(
            f"{where}: no client id: set client_id in [auth] (or the environment variable "
            f"{ENV_CLIENT_ID}) to the Application (client) ID from the app registration's Overview page."
        )
    if not (_GUID.match(tenant) or _DOMAIN.match(tenant)):
        raise ConfigError(
            f"{where}: [auth] tenant_id '{tenant}' is neither a GUID nor a domain such as "
            "contoso.onmicrosoft.com: copy the Directory (tenant) ID from the app's Overview page."
        )
    if not _GUID.match(client):
        raise ConfigError(
            f"{where}: [auth] client_id '{client}' is not a GUID: copy the Application (client) ID "
            "from the app registration's Overview page (not the secret, not the object ID)."
        )
    return tenant, client


def _split_pem(data: bytes) -> list[tuple[str, bytes]]:
    return [(m.group(1).decode("ascii"), m.group(0)) for m in _PEM_BLOCK.finditer(data)]


def load_certificate(
    path: str | os.PathLike[str], password: str | None = None, password_source: str | None = None
) -> CertificateCredential:
    """Load a PEM (private key + certificate, in one file) or a PFX/P12, and check the pair.

    Everything wrong with the file is a ConfigError naming the file and what to do; the
    password and key never appear in a message.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"certificate file {p} not found: check certificate_path in [auth] "
                          f"or {ENV_CERT_PATH}.") from None
    except OSError as exc:
        raise ConfigError(f"cannot read certificate file {p} ({exc.strerror}): bulkmeet needs "
                          "read access to it (keep it chmod 600, owned by the account running "
                          "bulkmeet).") from None
    pw = password.encode() if password else None
    if b"-----BEGIN" in data:
        key, cert, key_pem = _load_pem_pair(p, data, pw, password_source)
        kind = "pem"
    else:
        try:
            key, cert, _chain = pkcs12.load_key_and_certificates(data, pw)
        except ValueError:
            if pw is None:
                hint = (f"if it has a password, name the variable holding it in "
                        f"certificate_password_env in [auth] or set {ENV_CERT_PASSWORD}")
            else:
                hint = f"the password from {password_source or 'the environment'} may be wrong"
            raise ConfigError(f"cannot open certificate file {p} as PFX/P12: {hint}; a PEM file "
                              "must hold the private key and the certificate.") from None
        except TypeError:  # pragma: no cover - cryptography raises ValueError for PKCS12 today
            raise ConfigError(f"cannot open certificate file {p}: a password is needed "
                              f"(set {ENV_CERT_PASSWORD}).") from None
        if key is None or cert is None:
            raise ConfigError(f"certificate file {p} must contain both the private key and the "
                              "certificate (export the PFX *with* the private key).")
        key_pem = None
        kind = "pfx"
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"certificate file {p} holds a {type(key).__name__.replace('_', '')} key; "
                          "Microsoft Entra accepts only RSA certificates for app sign-in "
                          "(openssl req -x509 -newkey rsa:2048 ...).")
    if _public_bytes(key.public_key()) != _public_bytes(cert.public_key()):
        raise ConfigError(f"in certificate file {p} the private key does not belong to the "
                          "certificate: put the matching pair in one file.")
    not_after = cert.not_valid_after_utc
    if not_after < datetime.now(UTC):
        log.warning("The certificate in %s expired on %s; Microsoft Entra will reject it. Create "
                    "a new one and upload it to the app registration.", p, not_after.date())
    return CertificateCredential(
        path=p,
        kind=kind,
        thumbprint=cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - Entra's x5t
        thumbprint_sha256=cert.fingerprint(hashes.SHA256()).hex().upper(),
        subject=cert.subject.rfc4514_string(),
        not_after=not_after,
        key_pem=key_pem,
        password=password,
        password_source=password_source,
    )


def _public_bytes(public_key: Any) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def _load_pem_pair(
    p: Path, data: bytes, pw: bytes | None, password_source: str | None
) -> tuple[Any, x509.Certificate, str]:
    blocks = _split_pem(data)
    keys = [b for label, b in blocks if label.endswith("PRIVATE KEY")]
    certs = [b for label, b in blocks if label == "CERTIFICATE"]
    if not keys:
        raise ConfigError(f"certificate file {p} has no private key: bulkmeet needs the key and "
                          "the certificate in one PEM file (cat key.pem cert.pem > bulkmeet.pem).")
    if not certs:
        raise ConfigError(f"certificate file {p} has a private key but no certificate: append "
                          "the certificate (cat key.pem cert.pem > bulkmeet.pem).")
    try:
        key = serialization.load_pem_private_key(keys[0], pw)
    except TypeError:
        if pw is None:
            raise ConfigError(
                f"the private key in {p} is encrypted: name the environment variable holding its "
                f"password in certificate_password_env in [auth], or set {ENV_CERT_PASSWORD}."
            ) from None
        raise ConfigError(f"the private key in {p} is not encrypted, but a password was given "
                          f"in {password_source}: remove it.") from None
    except ValueError:
        if pw is not None:
            raise ConfigError(f"cannot decrypt the private key in {p}: the password from "
                              f"{password_source} is probably wrong.") from None
        raise ConfigError(f"the private key in {p} is not a readable PEM key.") from None
    try:
        loaded = [x509.load_pem_x509_certificate(c) for c in certs]
    except ValueError:
        raise ConfigError(f"a certificate in {p} is not a readable PEM certificate.") from None
    mine = _public_bytes(key.public_key())
    # The first certificate matching the key is ours; the rest are a chain.
    cert = next((c for c in loaded if _public_bytes(c.public_key()) == mine), loaded[0])
    return key, cert, keys[0].decode("ascii")


def _secret_from_file(path: Path) -> SecretCredential:
    try:
        st = path.stat()
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"client secret file {path} not found: check client_secret_file in "
                          "[auth].") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"cannot read client secret file {path} ({reason}).") from None
    value = text.strip()
    if not value:
        raise ConfigError(f"client secret file {path} is empty: put the secret's Value in it.")
    if st.st_mode & 0o077:
        log.warning("Client secret file %s can be read by other users (mode %s): run "
                    "`chmod 600 %s`.", path, stat.filemode(st.st_mode), shlex.quote(str(path)))
    return SecretCredential(value, f"file {path}")


def find_credential(
    auth: AuthSettings,
    environ: Mapping[str, str] | None = None,
    config_path: Path | None = None,
) -> Credential:
    """The app credential, in the order a careful admin expects.

    Certificate ([auth] certificate_path, else AZURE_CLIENT_CERTIFICATE_PATH), else the secret in
    the variable named by client_secret_env (BULKMEET_CLIENT_SECRET), else AZURE_CLIENT_SECRET,
    else [auth] client_secret_file. Never the config file itself.
    """
    environ = os.environ if environ is None else environ
    base = config_path.parent if config_path else None
    cert_path: Path | None = None
    if auth.certificate_path:
        cert_path = _resolve_path(auth.certificate_path, base)
    elif _env(environ, ENV_CERT_PATH):
        cert_path = Path(os.path.expanduser(_env(environ, ENV_CERT_PATH) or ""))
    if cert_path is not None:
        password: str | None = None
        source: str | None = None
        if auth.certificate_password_env:
            if auth.certificate_password_env not in environ:
                raise ConfigError(
                    f"{_where(config_path)}: [auth] certificate_password_env names the environment "
                    f"variable {auth.certificate_password_env}, but it is not set: export it "
                    "(an empty value means no password)."
                )
            password = environ[auth.certificate_password_env] or None
            source = f"environment variable {auth.certificate_password_env}"
        elif ENV_CERT_PASSWORD in environ:
            password = environ[ENV_CERT_PASSWORD] or None
            source = f"environment variable {ENV_CERT_PASSWORD}"
        return load_certificate(cert_path, password, source)
    for name in (auth.client_secret_env, ENV_CLIENT_SECRET):
        value = _env(environ, name)
        if value:
            return SecretCredential(value, f"environment variable {name}")
    if auth.client_secret_file:
        return _secret_from_file(_resolve_path(auth.client_secret_file, base))
    own = auth.client_secret_env or "BULKMEET_CLIENT_SECRET"
    raise ConfigError(
        f"{_where(config_path)}: no credential for the app: set the environment variable {own} "
        f"(or {ENV_CLIENT_SECRET}) to the client secret's Value, or set certificate_path in [auth] "
        f"(or {ENV_CERT_PATH}) to a PEM/PFX certificate, or client_secret_file in [auth]."
    )


# --------------------------------------------------------------------------------------------
# HTTP for msal


class _AuthorityHttp:
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
        if _origin(url) != self._origin:
            raise AuthError(
                f"The sign-in service at {self._origin} sent bulkmeet to another host "
                f"({_origin(url)}); refusing to send credentials there: check authority_host in [auth]."
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


def _origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme, 0)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def _authority_host(auth: AuthSettings, config_path: Path | None) -> str:
    host = check_url((auth.authority_host or DEFAULT_AUTHORITY_HOST).strip(), "[auth] authority_host")
    parts = urlsplit(host)
    if parts.scheme != "https":
        raise ConfigError(
            f"{_where(config_path)}: [auth] authority_host '{host}' must be https: msal refuses "
            "plain http even on loopback (the bulkmeet emulator serves https; trust its CA with "
            "ca_bundle in [graph])."
        )
    if parts.path.strip("/") or parts.query:
        raise ConfigError(
            f"{_where(config_path)}: [auth] authority_host '{host}' must be only scheme and host "
            "(e.g. https://login.microsoftonline.com); the tenant goes in tenant_id."
        )
    return f"{parts.scheme}://{parts.netloc}"


def _check_ca_bundle(ca_bundle: str | None, config_path: Path | None) -> None:
    """A missing CA file would otherwise surface as a bare OSError on the first request."""
    resolved = resolve_ca_bundle(ca_bundle)
    if isinstance(resolved, str) and not os.path.isfile(resolved):
        where = "ca_bundle in [graph]" if ca_bundle else _ca_description(None)
        raise ConfigError(f"{_where(config_path)}: the CA bundle {resolved} ({where}) does not "
                          "exist: point it at a PEM file with your organisation's CA certificates.")


def _ca_description(ca_bundle: str | None) -> str:
    if ca_bundle:
        return f"ca_bundle {ca_bundle}"
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        if os.environ.get(name):
            return f"{name}={os.environ[name]}"
    return "the public CA bundle (certifi)"


# --------------------------------------------------------------------------------------------
# Error messages


@dataclass(frozen=True)
class _Context:
    """What a message may name: ids, hosts, where the credential came from. No secrets."""

    tenant: str
    client: str
    authority: str
    ca: str
    login: str
    source: str = "the environment"
    thumbprint: str = "(unknown)"
    cache: str = ""


_AADSTS_MESSAGES: dict[int, str] = {
    7000215: "The client secret for app {client} is wrong (AADSTS7000215): copy the secret's "
             "Value, not its Secret ID, from the app registration's Certificates & secrets page "
             "into {source}.",
    7000222: "The client secret for app {client} has expired (AADSTS7000222): create a new one "
             "under the app registration's Certificates & secrets and put its Value into {source}.",
    90002: "Tenant '{tenant}' was not found (AADSTS90002): set tenant_id in [auth] (or "
           "AZURE_TENANT_ID) to the Directory (tenant) ID from the app registration's Overview page.",
    900023: "'{tenant}' is not a valid tenant (AADSTS900023): set tenant_id in [auth] (or "
            "AZURE_TENANT_ID) to the Directory (tenant) ID from the app registration's Overview page.",
    700016: "App '{client}' was not found in tenant '{tenant}' (AADSTS700016): check client_id "
            "(Application (client) ID) and tenant_id in [auth], and that an administrator has "
            "granted admin consent in this tenant.",
    7000229: "App '{client}' has no service principal in tenant '{tenant}' (AADSTS7000229): an "
             "administrator must grant admin consent to the app (API permissions, Grant admin consent).",
    700027: "Microsoft Entra rejected the certificate for app {client} (AADSTS700027): upload the "
            "certificate with thumbprint {thumbprint} under the app registration's Certificates & "
            "secrets, and make sure {source} holds its private key.",
    700024: "The signed sign-in request was outside its valid time (AADSTS700024): this "
            "machine's clock is probably wrong; sync it (timedatectl set-ntp true) and retry.",
    7000218: "App '{client}' does not allow device-code sign-in (AADSTS7000218): in the app "
             "registration open Authentication and set 'Allow public client flows' to Yes.",
    7000112: "App '{client}' is disabled in tenant '{tenant}' (AADSTS7000112): ask an "
             "administrator to enable its enterprise application.",
    65001: "App '{client}' has not been granted the Graph permissions it asks for (AADSTS65001): "
           "an administrator must grant admin consent under API permissions, then try again.",
    50034: "That account does not exist in tenant '{tenant}' (AADSTS50034): run `{login}` and "
           "sign in with the organizer's work account.",
    50020: "That account is not a member of tenant '{tenant}' (AADSTS50020): run `{login}` and "
           "sign in with an account of this tenant.",
}
# A saved delegated sign-in that can no longer be refreshed without the person.
_RELOGIN_CODES = {70008, 700082, 700084, 50173, 70043, 50133, 50089, 135011}
_INTERACTION_CODES = {50076, 50079, 50158, 53003, 50097, 50105, 50072}
_SCOPE_CODES = {70011, 1002012, 65005, 500011}
_TRANSIENT_ERRORS = {"temporarily_unavailable", "server_error"}


def _aadsts_code(result: Mapping[str, Any]) -> int | None:
    codes = result.get("error_codes")
    if isinstance(codes, list) and codes:
        try:
            return int(codes[0])
        except (TypeError, ValueError):
            pass
    m = _AADSTS.search(str(result.get("error_description") or ""))
    return int(m.group(1)) if m else None


def _short_description(description: str, limit: int = 160) -> str:
    """The first sentence of an AADSTS description, without trace/correlation ids and timestamps."""
    text = " ".join(description.split())
    text = _AADSTS.sub("", text, count=1).lstrip(": ")
    for marker in (" Trace ID:", " Correlation ID:", " Timestamp:"):
        text = text.split(marker, 1)[0]
    sentence = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0].strip()
    return sentence if len(sentence) <= limit else sentence[: limit - 1].rstrip() + "…"


def aad_error_message(result: Mapping[str, Any], ctx: _Context) -> str:
    """One sentence for an identity-platform error response: what happened, what to do."""
    code = _aadsts_code(result)
    error = str(result.get("error") or "error")
    values = {"tenant": ctx.tenant, "client": ctx.client, "source": ctx.source,
              "thumbprint": ctx.thumbprint, "login": ctx.login}
    if code in _AADSTS_MESSAGES:
        return _AADSTS_MESSAGES[code].format(**values)
    tag = f"AADSTS{code}" if code else error
    if code in _INTERACTION_CODES or error == "interaction_required":
        return (f"Microsoft Entra needs the organizer to sign in again (MFA or a Conditional Access "
                f"policy, {tag}): run `{ctx.login}` once as the organizer.")
    if code in _RELOGIN_CODES or error == "invalid_grant":
        # Any other refusal of a refresh token: only a new sign-in helps.
        return (f"The saved sign-in{_in_cache(ctx)} has expired or was revoked ({tag}): run "
                f"`{ctx.login}` once as the organizer.")
    if code in _SCOPE_CODES:
        return (f"The sign-in service rejected bulkmeet's Graph permissions for app {ctx.client} "
                f"({tag}): add OnlineMeetings permissions under API permissions and grant admin consent.")
    if error in ("authorization_declined", "access_denied"):
        return f"The sign-in was declined in the browser: run `{ctx.login}` again and approve it."
    if error in ("expired_token", "code_expired"):
        return (f"The sign-in code expired before it was used: run `{ctx.login}` again and enter "
                "the code promptly.")
    short = _short_description(str(result.get("error_description") or ""))
    detail = f"{tag}: {short}" if short else tag
    return (f"Microsoft Entra refused the token request for app {ctx.client} in tenant "
            f"{ctx.tenant} ({detail}): check tenant_id, client_id and the credential in [auth].")


def _in_cache(ctx: _Context) -> str:
    return f" in {ctx.cache}" if ctx.cache else ""


def _network_message(exc: BaseException, ctx: _Context) -> str:
    if isinstance(exc, requests.exceptions.SSLError):
        return (f"Cannot verify the TLS certificate of the sign-in service {ctx.authority}: if a "
                "proxy inspects TLS on this network, set ca_bundle in [graph] to your "
                "organisation's CA file (PEM); REQUESTS_CA_BUNDLE applies only when ca_bundle is "
                f"not set (now trusting {ctx.ca}).")
    if isinstance(exc, requests.exceptions.Timeout):
        return (f"The sign-in service {ctx.authority} did not answer in time: check the network "
                "and proxy (HTTPS_PROXY), then retry.")
    return (f"Cannot reach the sign-in service {ctx.authority}: check the network, the proxy "
            "(HTTPS_PROXY/NO_PROXY) and authority_host in [auth].")


class _Transient(Exception):
    """A token request that may well work if tried again shortly."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


# --------------------------------------------------------------------------------------------
# Token providers


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
        *,
        retry_delays: Sequence[float] = RETRY_DELAYS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._lock = threading.Lock()
        self._held: _Held | None = None
        self._retry_not_before = 0.0
        self._failed: tuple[float, str] | None = None  # (until, message) of the last failed fetch
        self._after_failure = False
        self._force_fresh = False
        self._retry_delays = tuple(retry_delays)
        self._clock = clock
        self._sleep = sleep
        self.token_requests = 0  # token requests this provider sent (or tried to send)

    # -- the contract ------------------------------------------------------------------------

    def token(self) -> str:
        """A token with comfortably long to live; thread-safe and single-flight."""
        held = self._held
        now = self._clock()
        if held is not None and now < held.refresh_at:
            return held.token
        if held is not None and now < held.usable_until:
            # Refresh window: one thread refreshes, the others keep using the valid token.
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
                    left = held.usable_until - now
                    self._retry_not_before = now + REFRESH_FAILURE_BACKOFF
                    self._after_failure = True
                    log.warning("Could not refresh the access token ahead of its expiry (%s); "
                                "still using the current one for up to %.0f s.", exc, left)
                    return held.token
                return self._held.token
            finally:
                self._lock.release()
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
        self._http.close()

    # -- for subclasses ----------------------------------------------------------------------

    _http: _AuthorityHttp
    _ctx: _Context

    @abstractmethod
    def _acquire(self, fresh: bool) -> dict[str, Any]:
        """One msal call; returns msal's result dict (may raise requests/msal exceptions)."""

    def _secrets(self) -> tuple[str, ...]:
        return ()

    def _after_acquire(self) -> None:
        """Hook run under the lock after every acquisition (delegated: persist the cache)."""

    def _clear_http_cache(self) -> None:
        """Drop msal's memory of recent token-endpoint errors before a deliberate retry.

        msal replays a 5xx/429 for its throttle window (5 s for apps, 60 s for public clients) and
        a 400 for 60 s; our retries already wait and honour Retry-After, so a replay would only
        turn a recovered service into a failure.
        """
        self._http_cache.clear()

    _http_cache: dict[str, Any]

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
                self._clear_http_cache()
            self._http.forget()
            started = self._clock()
            try:
                self.token_requests += 1
                result = self._mapped(lambda: self._acquire(fresh))
                held = self._hold(result, started)
            except _Transient as exc:
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
            self._after_acquire()
            return held

    def _mapped(self, call: Callable[[], dict[str, Any] | None]) -> dict[str, Any]:
        """One msal call with every failure turned into AuthError or _Transient."""
        ctx = self._ctx
        try:
            result = call()
        except BulkmeetError:
            raise
        except requests.exceptions.SSLError as exc:
            raise AuthError(_network_message(exc, ctx)) from None
        except requests.exceptions.RequestException as exc:  # connection, timeout, proxy...
            raise _Transient(_network_message(exc, ctx)) from None
        except OSError as exc:  # e.g. the CA bundle vanished since start-up
            raise AuthError(f"bulkmeet could not talk to the sign-in service {ctx.authority} "
                            f"({exc.strerror or exc}): check ca_bundle in [graph].") from None
        except msal.exceptions.MsalServiceError:
            status = self._http.last_status
            raise _Transient(f"The sign-in service {ctx.authority} had a temporary failure "
                             f"(HTTP {status or '5xx'}).", self._http.last_retry_after) from None
        except (ValueError, KeyError) as exc:
            raise self._unusable_answer(exc) from None
        if result is None:
            return {}
        if "access_token" in result or "user_code" in result:
            return result
        status = self._http.last_status
        if status == 429 or (status or 0) >= 500 or result.get("error") in _TRANSIENT_ERRORS:
            raise _Transient(f"The sign-in service {ctx.authority} is busy or failing "
                             f"(HTTP {status or '?'}, {result.get('error')}).",
                             self._http.last_retry_after)
        raise AuthError(aad_error_message(result, ctx))

    def _unusable_answer(self, exc: BaseException) -> Exception:
        """msal raises ValueError for a metadata 4xx (unknown tenant) or a non-JSON answer."""
        ctx = self._ctx
        status = self._http.last_status
        body = self._http.last_error_body or ""
        if status is not None and (status == 429 or status >= 500):
            return _Transient(f"The sign-in service {ctx.authority} had a temporary failure "
                              f"(HTTP {status}).", self._http.last_retry_after)
        try:
            parsed = json.loads(body) if body else {}
        except ValueError:
            parsed = {}
        if isinstance(parsed, dict) and (parsed.get("error") or _aadsts_code(parsed)):
            return AuthError(aad_error_message(parsed, ctx))
        if status == 404 or (status is not None and 400 <= status < 500):
            return AuthError(
                f"The sign-in service {ctx.authority} knows no tenant '{ctx.tenant}' (HTTP {status}): "
                "set tenant_id in [auth] to the Directory (tenant) ID from the app's Overview page, "
                "and check authority_host."
            )
        return AuthError(
            f"The sign-in service {ctx.authority} gave an answer bulkmeet cannot use "
            f"({type(exc).__name__}): check authority_host in [auth]."
        )

    def _hold(self, result: Mapping[str, Any], started: float) -> _Held:
        token = result.get("access_token")
        if not token:
            raise AuthError(f"The sign-in service {self._ctx.authority} returned no access token: "
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


class _MsalProvider(TokenProvider):
    """Shared construction: the authority, the pinned HTTP client, the lazily built msal app."""

    def __init__(self, config: Config, http_session: requests.Session | None, **kwargs: Any):
        super().__init__(**kwargs)
        auth = config.auth
        self._config = config
        self._tenant, self._client_id = resolve_ids(auth, config_path=config.path)
        self._authority_host = _authority_host(auth, config.path)
        self._authority = f"{self._authority_host}/{self._tenant}"
        # Only a non-default host needs this, but msal must never ask login.microsoftonline.com
        # about an emulator or a private authority.
        self._instance_discovery = (
            None if self._authority_host.lower() == DEFAULT_AUTHORITY_HOST else False
        )
        _check_ca_bundle(config.graph.ca_bundle, config.path)
        session = http_session or build_session(config.graph.ca_bundle)
        self._http = _AuthorityHttp(
            session, _origin(self._authority_host),
            (config.graph.connect_timeout, config.graph.read_timeout),
            owned=http_session is None,
        )
        self._http_cache = {}
        self._app: msal.ClientApplication | None = None
        self._ctx = _Context(
            tenant=self._tenant, client=self._client_id, authority=self._authority_host,
            ca=_ca_description(config.graph.ca_bundle), login=login_command(config),
        )

    def _app_or_build(self) -> msal.ClientApplication:
        """msal fetches the OIDC metadata when the app is made: do that on first use, not in build."""
        if self._app is None:
            self._app = self._build_app()
        return self._app

    @abstractmethod
    def _build_app(self) -> msal.ClientApplication: ...

    def _short_ids(self) -> str:
        return f"app {self._client_id[:8]}… in tenant {self._tenant[:8]}…"


class AppTokenProvider(_MsalProvider):
    """Client credentials (secret or certificate): tokens for /users/{organizerId}/..."""

    delegated = False

    def __init__(self, config: Config, credential: Credential,
                 http_session: requests.Session | None = None, **kwargs: Any):
        super().__init__(config, http_session, **kwargs)
        self._credential = credential
        self._token_cache = msal.TokenCache()
        if isinstance(credential, CertificateCredential):
            source = f"certificate file {credential.path}"
            thumb = credential.thumbprint
        else:
            source, thumb = credential.source, "(none)"
        self._ctx = _Context(tenant=self._tenant, client=self._client_id,
                             authority=self._authority_host, ca=self._ctx.ca,
                             login=self._ctx.login, source=source, thumbprint=thumb)

    def describe(self) -> str:
        return f"{self._short_ids()} with {self._credential.describe()}"

    def _secrets(self) -> tuple[str, ...]:
        return self._credential.secrets()

    def _build_app(self) -> msal.ClientApplication:
        return msal.ConfidentialClientApplication(
            self._client_id,
            client_credential=self._credential.for_msal(),
            authority=self._authority,
            token_cache=self._token_cache,
            http_client=self._http,
            http_cache=self._http_cache,
            instance_discovery=self._instance_discovery,
            azure_region=False,  # never probe IMDS or regional hosts
        )

    def _acquire(self, fresh: bool) -> dict[str, Any]:
        app = self._app_or_build()
        # We hold the token ourselves; msal's copy would be served back after an invalidate().
        for at in list(self._token_cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
            self._token_cache.remove_at(at)
        return app.acquire_token_for_client(list(APP_SCOPES))


# --------------------------------------------------------------------------------------------
# Delegated: the token cache file, login, logout


def token_cache_path(config: Config) -> Path:
    base = config.path.parent if config.path else None
    return _resolve_path(config.auth.token_cache, base)


def login_command(config: Config) -> str:
    target = shlex.quote(str(config.path)) if config.path else "FILE"
    return f"bulkmeet login --config {target}"


class _CacheFile:
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
            self.cache.deserialize(text)
        except ValueError:
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


def _pick_account(app: msal.ClientApplication, tenant: str) -> dict[str, Any] | None:
    accounts = app.get_accounts()
    if not accounts:
        return None
    for account in accounts:
        if str(account.get("realm", "")).lower() == tenant.lower():
            return account
    return accounts[0]


class DelegatedTokenProvider(_MsalProvider):
    """The signed-in organizer's token (from `bulkmeet login`): requests go to /me/..."""

    delegated = True

    def __init__(self, config: Config, http_session: requests.Session | None = None, **kwargs: Any):
        super().__init__(config, http_session, **kwargs)
        self._file = _CacheFile(token_cache_path(config), self._ctx.login)
        self._ctx = _Context(tenant=self._tenant, client=self._client_id,
                             authority=self._authority_host, ca=self._ctx.ca,
                             login=self._ctx.login, cache=str(self._file.path))
        if not self._file.load():
            raise AuthError(f"Nobody has signed in yet (no token cache at {self._file.path}): run "
                            f"`{self._ctx.login}` once as the organizer.")
        self._username = _cached_username(self._file.cache, self._client_id)
        if self._username is None:
            raise AuthError(f"The token cache {self._file.path} holds no sign-in for app "
                            f"{self._client_id}: run `{self._ctx.login}` once as the organizer.")

    @property
    def username(self) -> str:
        return self._username or ""

    def describe(self) -> str:
        return (f"signed-in user {self._username} (delegated; {self._short_ids()}; token cache "
                f"{self._file.path})")

    def _build_app(self) -> msal.ClientApplication:
        return msal.PublicClientApplication(
            self._client_id,
            authority=self._authority,
            token_cache=self._file.cache,
            http_client=self._http,
            http_cache=self._http_cache,
            instance_discovery=self._instance_discovery,
        )

    def _acquire(self, fresh: bool) -> dict[str, Any]:
        app = self._app_or_build()
        account = _pick_account(app, self._tenant)
        if account is None:
            raise AuthError(f"The token cache {self._file.path} holds no sign-in for app "
                            f"{self._client_id}: run `{self._ctx.login}` once as the organizer.")
        result = app.acquire_token_silent_with_error(
            list(DELEGATED_SCOPES), account, force_refresh=fresh)
        if result is None:
            raise AuthError(f"The token cache {self._file.path} no longer yields a token for "
                            f"{account.get('username')}: run `{self._ctx.login}` once as the organizer.")
        return result

    def _after_acquire(self) -> None:
        try:
            self._file.save()
        except OSError as exc:  # the run can go on with the token in memory
            log.warning("Could not update the token cache %s (%s); the next run may ask for "
                        "`%s`.", self._file.path, exc.strerror, self._ctx.login)


def _cached_username(cache: msal.SerializableTokenCache, client_id: str) -> str | None:
    """The account in a cache that has a refresh token for this app (no network)."""
    rts = list(cache.search(msal.TokenCache.CredentialType.REFRESH_TOKEN,
                            query={"client_id": client_id}))
    homes = {rt.get("home_account_id") for rt in rts}
    for account in cache.search(msal.TokenCache.CredentialType.ACCOUNT):
        if account.get("home_account_id") in homes:
            return str(account.get("username") or "the signed-in user")
    return "the signed-in user" if rts else None


class _LoginSession(_MsalProvider):
    """Carries the shared construction and error mapping for the one-off device-code login."""

    delegated = True

    def __init__(self, config: Config, http_session: requests.Session | None = None):
        super().__init__(config, http_session, retry_delays=())
        self.file = _CacheFile(token_cache_path(config), self._ctx.login)
        self._ctx = _Context(tenant=self._tenant, client=self._client_id,
                             authority=self._authority_host, ca=self._ctx.ca,
                             login=self._ctx.login, cache=str(self.file.path))

    def describe(self) -> str:
        return f"device-code sign-in for {self._short_ids()}"

    def _build_app(self) -> msal.ClientApplication:
        return msal.PublicClientApplication(
            self._client_id,
            authority=self._authority,
            token_cache=self.file.cache,  # a fresh cache: a new login replaces the old one
            http_client=self._http,
            http_cache=self._http_cache,
            instance_discovery=self._instance_discovery,
        )

    def _acquire(self, fresh: bool) -> dict[str, Any]:  # pragma: no cover - not used
        raise NotImplementedError

    def run(self, echo: Callable[[str], None], timeout: float | None) -> dict[str, Any]:
        ctx = self._ctx

        def start() -> dict[str, Any]:
            flow = self._app_or_build().initiate_device_flow(scopes=list(DELEGATED_SCOPES))
            if "user_code" not in flow:
                raise AuthError(aad_error_message(flow, ctx))
            return flow

        flow = self._guard(start)
        echo(str(flow.get("message") or
                 f"To sign in, open {flow.get('verification_uri')} and enter the code "
                 f"{flow['user_code']}."))
        if timeout is not None:
            flow["expires_at"] = min(float(flow.get("expires_at", 0)), time.time() + timeout)

        def poll() -> dict[str, Any]:
            result = self._app_or_build().acquire_token_by_device_flow(flow)
            if result.get("error") in ("authorization_pending", "slow_down"):
                raise AuthError(f"Nobody entered the sign-in code in time: run `{ctx.login}` "
                                "again and enter the code promptly.")
            return result

        return self._guard(poll)

    def _guard(self, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        try:
            return self._mapped(call)
        except AuthError as exc:
            raise AuthError(self._redact(str(exc))) from None
        except _Transient as exc:
            raise AuthError(exc.message + " Try `bulkmeet login` again in a few minutes.") from None


def login(config: Config, *, echo: Callable[[str], None] = print, timeout: float | None = None) -> str:
    """Device-code sign-in: show msal's message, wait for the person, save the cache (0600).

    Returns the signed-in username. A new login replaces whatever the cache held.
    """
    if not config.delegated:
        raise ConfigError(
            f"{_where(config.path)}: `bulkmeet login` is for mode = \"delegated\" in [auth]; with "
            "an app registration (mode = \"app\") bulkmeet signs in by itself with the secret or "
            "certificate."
        )
    session = _LoginSession(config)
    try:
        result = session.run(echo, timeout)
        claims = result.get("id_token_claims") or {}
        username = claims.get("preferred_username") or _cached_username(
            session.file.cache, session._client_id) or "the signed-in user"
        try:
            session.file.save(force=True)
        except OSError as exc:
            raise ConfigError(f"Signed in, but could not save the token cache {session.file.path} "
                              f"({exc.strerror}): set token_cache in [auth] to a writable path "
                              "and run login again.") from None
        log.info("Signed in as %s; token cache %s.", username, session.file.path)
        return str(username)
    finally:
        session.close()


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


# --------------------------------------------------------------------------------------------


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
