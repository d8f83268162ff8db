"""The app's credential: a certificate (PEM or PFX) or a client secret, found and checked.

Found in the order a careful admin expects (certificate, then a secret from the environment or a
file, never from the config file), and every way it can be wrong is a ``ConfigError`` naming the
file or variable and what to do. The values never appear in a repr or a message. The tenant and
client ids are resolved here too: they come from the same places (``[auth]`` or azure-identity's
environment variables).
"""
from __future__ import annotations

import logging
import os
import re
import shlex
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from bulkmeet import ids
from bulkmeet.auth.messages import where
from bulkmeet.config import AuthSettings
from bulkmeet.errors import ConfigError

log = logging.getLogger(__name__)

# The names azure-identity's EnvironmentCredential reads, so one set of variables serves both.
ENV_TENANT_ID = "AZURE_TENANT_ID"
ENV_CLIENT_ID = "AZURE_CLIENT_ID"
ENV_CLIENT_SECRET = "AZURE_CLIENT_SECRET"
ENV_CERT_PATH = "AZURE_CLIENT_CERTIFICATE_PATH"
ENV_CERT_PASSWORD = "AZURE_CLIENT_CERTIFICATE_PASSWORD"

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\s.*?-----END \1-----", re.DOTALL)


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


def resolve_path(value: str, base_dir: Path | None) -> Path:
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
    shown_where = where(config_path)
    tenant = (auth.tenant_id or "").strip() or _env(environ, ENV_TENANT_ID)
    client = (auth.client_id or "").strip() or _env(environ, ENV_CLIENT_ID)
    if not tenant:
        raise ConfigError(
            f"{shown_where}: no tenant id: set tenant_id in [auth] (or the environment variable "
            f"{ENV_TENANT_ID}) to the Directory (tenant) ID from the app registration's Overview page."
        )
    if not client:
        raise ConfigError(
            f"{shown_where}: no client id: set client_id in [auth] (or the environment variable "
            f"{ENV_CLIENT_ID}) to the Application (client) ID from the app registration's Overview page."
        )
    from_config = bool((auth.tenant_id or "").strip())
    problem = ids.tenant_error("[auth] tenant_id" if from_config else ENV_TENANT_ID, tenant,
                               delegated=auth.mode == "delegated")
    if problem:
        raise ConfigError(f"{shown_where}: {problem}")
    from_config = bool((auth.client_id or "").strip())
    problem = ids.client_id_error("[auth] client_id" if from_config else ENV_CLIENT_ID, client)
    if problem:
        raise ConfigError(f"{shown_where}: {problem}")
    return ids.normalise_tenant(tenant), ids.bare_guid(client) or client


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
        key, cert = _load_pfx(p, data, pw, password_source)
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


def _load_pfx(
    p: Path, data: bytes, pw: bytes | None, password_source: str | None
) -> tuple[Any, x509.Certificate]:
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
    return key, cert


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
        cert_path = resolve_path(auth.certificate_path, base)
    elif _env(environ, ENV_CERT_PATH):
        cert_path = Path(os.path.expanduser(_env(environ, ENV_CERT_PATH) or ""))
    if cert_path is not None:
        password: str | None = None
        source: str | None = None
        if auth.certificate_password_env:
            if auth.certificate_password_env not in environ:
                raise ConfigError(
                    f"{where(config_path)}: [auth] certificate_password_env names the environment "
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
        return _secret_from_file(resolve_path(auth.client_secret_file, base))
    own = auth.client_secret_env or "BULKMEET_CLIENT_SECRET"
    raise ConfigError(
        f"{where(config_path)}: no credential for the app: set the environment variable {own} "
        f"(or {ENV_CLIENT_SECRET}) to the client secret's Value, or set certificate_path in [auth] "
        f"(or {ENV_CERT_PATH}) to a PEM/PFX certificate, or client_secret_file in [auth]."
    )
