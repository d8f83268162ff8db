"""The emulated tenants: users, app registrations and application access policies.

The directory is a JSON file (``--directory``) so that a test or a demo can describe exactly the
tenant it needs -- an organizer without a policy, an unlicensed teacher, an app whose secret has
expired -- and get Graph's answer for that situation. Loading is strict: a typo in the file would
otherwise show up later as a puzzling 404 or 403 from the emulator.
"""
from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

DEMO_DIRECTORY = Path(__file__).with_name("demo_directory.json")

GLOBAL_POLICY = "global"


class DirectoryError(ValueError):
    """The directory file cannot be used; the message names the file and the entry."""


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class Certificate:
    """A certificate registered on an app; client assertions name it by thumbprint."""

    pem: str
    sha1_b64url: str  # what msal puts in the JWT header "x5t" (RS256 form)
    sha256_b64url: str  # "x5t#S256" (PS256 form)
    public_key: Any = field(repr=False, compare=False)

    @classmethod
    def from_x509(cls, cert: x509.Certificate, pem: str) -> Certificate:
        return cls(
            pem=pem,
            sha1_b64url=_b64url(cert.fingerprint(hashes.SHA1())),  # noqa: S303 - x5t is SHA-1
            sha256_b64url=_b64url(cert.fingerprint(hashes.SHA256())),
            public_key=cert.public_key(),
        )


@dataclass(frozen=True)
class User:
    id: str  # lower-case object id
    user_principal_name: str
    display_name: str | None = None
    licensed: bool = True
    mail: str | None = None


@dataclass(frozen=True)
class App:
    client_id: str  # lower-case
    display_name: str
    secret: str | None = field(default=None, repr=False)
    secret_expired: bool = False
    certificates: tuple[Certificate, ...] = ()
    roles: frozenset[str] = frozenset()
    # "global", a frozenset of user object ids, or None (no policy granted: app-token calls get 403)
    access_policy: str | frozenset[str] | None = None
    public_client: bool = False
    delegated_scopes: tuple[str, ...] = ()

    def policy_allows(self, user_id: str) -> bool:
        policy = self.access_policy
        if policy is None:
            return False
        if policy == GLOBAL_POLICY:
            return True
        return user_id in policy

    def certificate_by_header(self, header: Mapping[str, Any]) -> Certificate | None:
        """The registered certificate a client assertion's x5t / x5t#S256 header points at."""
        s256 = header.get("x5t#S256")
        s1 = header.get("x5t")
        for cert in self.certificates:
            if s256 and _same_thumbprint(s256, cert.sha256_b64url):
                return cert
            if s1 and _same_thumbprint(s1, cert.sha1_b64url):
                return cert
        return None


def _same_thumbprint(given: Any, ours: str) -> bool:
    # Some clients pad the base64url value; msal uses padded urlsafe base64.
    return isinstance(given, str) and given.rstrip("=") == ours


@dataclass(frozen=True)
class Tenant:
    id: str  # lower-case
    display_name: str
    users: tuple[User, ...]
    apps: tuple[App, ...]
    domains: tuple[str, ...] = ()  # verified domains named in the file, lower-case
    _by_id: dict[str, User] = field(init=False, repr=False, compare=False)
    _by_upn: dict[str, User] = field(init=False, repr=False, compare=False)
    _apps: dict[str, App] = field(init=False, repr=False, compare=False)
    upn_domains: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {u.id: u for u in self.users})
        object.__setattr__(self, "_by_upn", {u.user_principal_name.lower(): u for u in self.users})
        object.__setattr__(self, "_apps", {a.client_id: a for a in self.apps})
        object.__setattr__(self, "upn_domains", frozenset(
            u.user_principal_name.rpartition("@")[2].lower() for u in self.users))

    def user_by_id(self, object_id: str) -> User | None:
        return self._by_id.get(object_id.lower())

    def user_by_upn(self, upn: str) -> User | None:
        return self._by_upn.get(upn.lower())

    def find_user(self, id_or_upn: str) -> User | None:
        """Object id or UPN, as ``GET /users/{id | userPrincipalName}`` accepts."""
        return self.user_by_id(id_or_upn) or self.user_by_upn(id_or_upn)

    def app(self, client_id: str) -> App | None:
        return self._apps.get(client_id.lower())


@dataclass(frozen=True)
class Directory:
    tenants: tuple[Tenant, ...]
    source: str  # file the directory came from, for messages and the start-up banner
    _tenants: dict[str, Tenant] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tenants", {t.id: t for t in self.tenants})

    def tenant(self, tenant_id: str) -> Tenant | None:
        return self._tenants.get(tenant_id.lower())

    def tenant_by_name(self, name: str) -> Tenant | None:
        """By id or by a verified domain, as the identity platform accepts either in its URLs."""
        found = self.tenant(name)
        if found is not None:
            return found
        low = name.lower()
        for tenant in self.tenants:
            if low in tenant.domains:
                return tenant
        for tenant in self.tenants:  # the domain of its users' UPNs is verified there too
            if low in tenant.upn_domains:
                return tenant
        return None


# --------------------------------------------------------------------------- loading


def load_directory(path: str | os.PathLike[str] | None = None) -> Directory:
    """Read and check a directory file; ``None`` is the built-in demo directory."""
    p = Path(path) if path is not None else DEMO_DIRECTORY
    try:
        raw = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DirectoryError(f"{p}: directory file not found.") from None
    except OSError as exc:
        raise DirectoryError(f"{p}: cannot read the directory file ({exc.strerror}).") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DirectoryError(
            f"{p}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
        ) from None
    return parse_directory(data, str(p))


def parse_directory(data: Any, source: str = "directory") -> Directory:
    if not isinstance(data, dict) or not isinstance(data.get("tenants"), list) or not data["tenants"]:
        raise DirectoryError(
            f'{source}: expected {{"tenants": [ ... ]}} with at least one tenant.'
        )
    tenants: list[Tenant] = []
    seen: set[str] = set()
    owners: dict[str, str] = {}
    for i, raw in enumerate(data["tenants"]):
        tenant = _tenant(raw, f"{source}: tenants[{i}]")
        if tenant.id in seen:
            raise DirectoryError(f"{source}: tenants[{i}] repeats tenant id '{tenant.id}'.")
        seen.add(tenant.id)
        for domain in tenant.domains:
            if owners.setdefault(domain, tenant.id) != tenant.id:
                raise DirectoryError(f"{source}: tenants[{i}] uses domain '{domain}', which belongs "
                                     f"to tenant {owners[domain]} (a domain is verified in one tenant).")
        tenants.append(tenant)
    return Directory(tuple(tenants), source)


def _str(obj: dict[str, Any], key: str, where: str, *, required: bool = True) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise DirectoryError(f"{where}: '{key}' is required.")
        return None
    if not isinstance(value, str) or not value.strip():
        raise DirectoryError(f"{where}: '{key}' must be a non-empty string, not {value!r}.")
    return value.strip()


def _bool(obj: dict[str, Any], key: str, where: str, default: bool) -> bool:
    value = obj.get(key, default)
    if not isinstance(value, bool):
        raise DirectoryError(f"{where}: '{key}' must be true or false, not {value!r}.")
    return value


def _str_list(obj: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise DirectoryError(f"{where}: '{key}' must be a list of strings.")
    return tuple(v.strip() for v in value)


def _tenant(raw: Any, where: str) -> Tenant:
    if not isinstance(raw, dict):
        raise DirectoryError(f"{where}: each tenant must be a JSON object.")
    tenant_id = _str(raw, "id", where).lower()  # type: ignore[union-attr]
    where = f"{where} (tenant {tenant_id})"
    users: list[User] = []
    ids: set[str] = set()
    upns: set[str] = set()
    raw_users = raw.get("users", [])
    if not isinstance(raw_users, list):
        raise DirectoryError(f"{where}: 'users' must be a list.")
    for j, u in enumerate(raw_users):
        uw = f"{where}: users[{j}]"
        if not isinstance(u, dict):
            raise DirectoryError(f"{uw}: each user must be a JSON object.")
        uid = _str(u, "id", uw).lower()  # type: ignore[union-attr]
        upn = _str(u, "userPrincipalName", uw)
        assert upn is not None
        if "@" not in upn:
            raise DirectoryError(f"{uw}: userPrincipalName '{upn}' must look like name@domain.")
        if uid in ids:
            raise DirectoryError(f"{uw}: user id '{uid}' appears twice.")
        if upn.lower() in upns:
            raise DirectoryError(f"{uw}: userPrincipalName '{upn}' appears twice.")
        ids.add(uid)
        upns.add(upn.lower())
        users.append(User(
            id=uid,
            user_principal_name=upn,
            display_name=_str(u, "displayName", uw, required=False),
            licensed=_bool(u, "licensed", uw, True),
            mail=_str(u, "mail", uw, required=False) or upn,
        ))
    raw_apps = raw.get("apps", [])
    if not isinstance(raw_apps, list):
        raise DirectoryError(f"{where}: 'apps' must be a list.")
    apps: list[App] = []
    client_ids: set[str] = set()
    for j, a in enumerate(raw_apps):
        app = _app(a, f"{where}: apps[{j}]", ids)
        if app.client_id in client_ids:
            raise DirectoryError(f"{where}: apps[{j}] repeats clientId '{app.client_id}'.")
        client_ids.add(app.client_id)
        apps.append(app)
    domains = _str_list(raw, "domains", where)
    for domain in domains:
        if "@" in domain or "." not in domain or "/" in domain:
            raise DirectoryError(f"{where}: domain {domain!r} must look like contoso.onmicrosoft.com.")
    return Tenant(
        id=tenant_id,
        display_name=_str(raw, "displayName", where, required=False) or tenant_id,
        users=tuple(users),
        apps=tuple(apps),
        domains=tuple(d.lower() for d in domains),
    )


def _app(raw: Any, where: str, user_ids: set[str]) -> App:
    if not isinstance(raw, dict):
        raise DirectoryError(f"{where}: each app must be a JSON object.")
    client_id = _str(raw, "clientId", where).lower()  # type: ignore[union-attr]
    where = f"{where} (app {client_id})"
    secret = raw.get("secret")
    if secret is not None and (not isinstance(secret, str) or not secret):
        raise DirectoryError(f"{where}: 'secret' must be a non-empty string or null.")
    certs = _certificates(raw.get("certificatePem"), where)
    policy_raw = raw.get("accessPolicy")
    policy: str | frozenset[str] | None
    if policy_raw is None:
        policy = None
    elif isinstance(policy_raw, str):
        if policy_raw.lower() != GLOBAL_POLICY:
            raise DirectoryError(
                f"{where}: 'accessPolicy' must be \"global\", a list of user object ids, or "
                f"absent; not {policy_raw!r}."
            )
        policy = GLOBAL_POLICY
    elif isinstance(policy_raw, list):
        members = set()
        for item in policy_raw:
            if not isinstance(item, str) or item.lower() not in user_ids:
                raise DirectoryError(
                    f"{where}: 'accessPolicy' lists {item!r}, which is not the object id of a "
                    "user of this tenant (policies are granted to object ids, not UPNs)."
                )
            members.add(item.lower())
        policy = frozenset(members)
    else:
        raise DirectoryError(
            f"{where}: 'accessPolicy' must be \"global\", a list of user object ids, or absent."
        )
    return App(
        client_id=client_id,
        display_name=_str(raw, "displayName", where, required=False) or client_id,
        secret=secret,
        secret_expired=_bool(raw, "secretExpired", where, False),
        certificates=certs,
        roles=frozenset(_str_list(raw, "roles", where)),
        access_policy=policy,
        public_client=_bool(raw, "publicClient", where, False),
        delegated_scopes=_str_list(raw, "delegatedScopes", where),
    )


def _certificates(value: Any, where: str) -> tuple[Certificate, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise DirectoryError(f"{where}: 'certificatePem' must be a PEM string, a list of them, or null.")
    out: list[Certificate] = []
    for item in items:
        try:
            certs = x509.load_pem_x509_certificates(item.encode())
        except ValueError:
            raise DirectoryError(
                f"{where}: 'certificatePem' is not a PEM certificate "
                "(expected -----BEGIN CERTIFICATE----- ...)."
            ) from None
        for cert in certs:
            if not isinstance(cert.public_key(), rsa.RSAPublicKey):
                raise DirectoryError(
                    f"{where}: 'certificatePem' must hold RSA certificates (Entra ID signs client "
                    "assertions with RS256/PS256 only)."
                )
            pem = cert.public_bytes(_pem_encoding()).decode()
            out.append(Certificate.from_x509(cert, pem))
    return tuple(out)


def _pem_encoding() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.PEM
