"""Access tokens, ID tokens and client assertions, shaped like the Microsoft identity platform's.

Tokens are real RS256 JWTs signed with a key published in the JWKS, so a client that decodes or
verifies them sees what it would see from Entra ID. Verification on the Graph side is cached per
token string (signature checks cost ~50 us; the emulator must answer thousands of calls a
second) but expiry is checked on every use.
"""
from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bulkmeet.emulator.directory import App, Tenant, User

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_AUDIENCES = (GRAPH_RESOURCE, GRAPH_APP_ID, GRAPH_RESOURCE + "/")
ASSERTION_ALGORITHMS = ["RS256", "PS256"]
_CACHE_MAX = 20_000


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _uint_b64(n: int) -> str:
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def service_principal_id(tenant_id: str, client_id: str) -> str:
    """A stable object id for an app's service principal in a tenant (the ``oid`` of app tokens)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{tenant_id}:{client_id}"))


class TokenRejected(Exception):
    """Graph refuses the bearer token; ``str()`` is the message Graph would give."""


@dataclass(frozen=True)
class Principal:
    """Who a verified access token speaks for."""

    tenant_id: str
    app_id: str
    exp: float
    roles: frozenset[str]
    scopes: frozenset[str]  # delegated scp, lower-cased
    user_id: str | None  # oid of the signed-in user (delegated tokens only)

    @property
    def delegated(self) -> bool:
        return self.user_id is not None


class TokenService:
    """Issues and checks tokens; ``now`` is the emulator's clock, so tests can age tokens."""

    def __init__(self, signing_key_pem: bytes | None = None,
                 now: Callable[[], float] = time.time) -> None:
        self._now = now
        if signing_key_pem:
            key = serialization.load_pem_private_key(signing_key_pem, password=None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ValueError("the saved token-signing key is not an RSA key")
        else:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._key = key
        self._public = key.public_key()
        der = self._public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = b64url(hashlib.sha1(der).digest())  # noqa: S324 - a key id, not security
        self._cache: dict[str, Principal] = {}
        self._lock = threading.Lock()

    def signing_key_pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def jwks(self, issuer: str | None = None) -> dict[str, Any]:
        nums = self._public.public_numbers()
        key: dict[str, Any] = {
            "kty": "RSA", "use": "sig", "kid": self.kid, "x5t": self.kid, "alg": "RS256",
            "n": _uint_b64(nums.n), "e": _uint_b64(nums.e),
        }
        if issuer:
            key["issuer"] = issuer
        return {"keys": [key]}

    # ------------------------------------------------------------------ issuing

    def _sign(self, claims: Mapping[str, Any]) -> str:
        return jwt.encode(dict(claims), self._key, algorithm="RS256",
                          headers={"kid": self.kid, "x5t": self.kid, "typ": "JWT"})

    def _base(self, tenant: Tenant, app: App, lifetime_s: float, audience: str) -> dict[str, Any]:
        now = int(self._now())
        return {
            "aud": audience,
            "iss": f"https://sts.windows.net/{tenant.id}/",
            "iat": now,
            "nbf": now - 300,  # Entra ID backdates nbf by five minutes
            "exp": now + int(lifetime_s),
            "appid": app.client_id,
            "app_displayname": app.display_name,
            "tid": tenant.id,
            "uti": b64url(uuid.uuid4().bytes)[:22],
            "ver": "1.0",
        }

    def app_token(self, tenant: Tenant, app: App, lifetime_s: float, *, appidacr: str = "1",
                  audience: str = GRAPH_RESOURCE, roles: Iterable[str] | None = None) -> str:
        claims = self._base(tenant, app, lifetime_s, audience)
        sp = service_principal_id(tenant.id, app.client_id)
        claims.update({"appidacr": appidacr, "idp": claims["iss"], "idtyp": "app",
                       "oid": sp, "sub": sp})
        granted = sorted(app.roles if roles is None else roles)
        if granted:  # Entra ID leaves the claim out when nothing is granted
            claims["roles"] = granted
        return self._sign(claims)

    def user_token(self, tenant: Tenant, app: App, user: User, scopes: Iterable[str],
                   lifetime_s: float, *, audience: str = GRAPH_RESOURCE) -> str:
        claims = self._base(tenant, app, lifetime_s, audience)
        claims.update({
            "acr": "1", "amr": ["pwd"], "appidacr": "0", "idtyp": "user",
            "name": user.display_name or user.user_principal_name,
            "oid": user.id, "scp": " ".join(scopes),
            "sub": b64url(hashlib.sha256(f"{user.id}:{app.client_id}".encode()).digest())[:43],
            "unique_name": user.user_principal_name, "upn": user.user_principal_name,
        })
        return self._sign(claims)

    def id_token(self, tenant: Tenant, app: App, user: User, issuer: str,
                 lifetime_s: float = 3600) -> str:
        now = int(self._now())
        return self._sign({
            "aud": app.client_id, "iss": issuer, "iat": now, "nbf": now,
            "exp": now + int(max(lifetime_s, 300)),
            "name": user.display_name or user.user_principal_name, "oid": user.id,
            "preferred_username": user.user_principal_name,
            "sub": b64url(hashlib.sha256(f"{user.id}:{app.client_id}".encode()).digest())[:43],
            "tid": tenant.id, "ver": "2.0",
        })

    # ------------------------------------------------------------------ verifying

    def verify_access_token(self, token: str, now: float) -> Principal:
        """The principal of a Graph bearer token, or ``TokenRejected`` with Graph's message."""
        cached = self._cache.get(token)
        if cached is not None:
            if cached.exp <= now:
                raise TokenRejected("Lifetime validation failed, the token is expired.")
            return cached
        if token.count(".") != 2:
            raise TokenRejected("IDX14100: JWT is not well formed, there are no dots (.).")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected("IDX14100: JWT is not well formed.") from None
        if header.get("kid") != self.kid or header.get("alg") != "RS256":
            raise TokenRejected(
                "IDX10503: Signature validation failed. The token's kid is not in the signing keys."
            )
        try:  # times are checked below against the emulator's clock, not the machine's
            claims = jwt.decode(
                token, self._public, algorithms=["RS256"], audience=list(GRAPH_AUDIENCES),
                options={"require": ["exp", "iat", "tid", "appid"], "verify_exp": False,
                         "verify_iat": False, "verify_nbf": False},
            )
        except jwt.InvalidAudienceError:
            raise TokenRejected("Access token validation failure. Invalid audience.") from None
        except jwt.InvalidSignatureError:
            raise TokenRejected("IDX10511: Signature validation failed.") from None
        except jwt.PyJWTError:
            raise TokenRejected("Access token validation failure.") from None
        try:
            exp, nbf = float(claims["exp"]), float(claims.get("nbf", claims["iat"]))
        except (TypeError, ValueError):
            raise TokenRejected("Access token validation failure.") from None
        if exp <= now:
            raise TokenRejected("Lifetime validation failed, the token is expired.")
        if nbf > now + 300:
            raise TokenRejected("Lifetime validation failed, the token is not yet valid.")
        scp = claims.get("scp")
        user_id = claims.get("oid") if scp is not None else None
        principal = Principal(
            tenant_id=str(claims["tid"]).lower(),
            app_id=str(claims["appid"]).lower(),
            exp=exp,
            roles=frozenset(claims.get("roles") or ()),
            scopes=frozenset(s.lower() for s in (scp or "").split()),
            user_id=str(user_id).lower() if user_id else None,
        )
        with self._lock:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[token] = principal
        return principal


class AssertionRejected(Exception):
    """A client assertion Entra ID would refuse; ``code`` is the AADSTS number."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def verify_client_assertion(assertion: str, app: App, token_endpoints: Iterable[str],
                            now: float) -> str:
    """Check a certificate-signed client assertion; returns the algorithm used.

    The checks are Entra ID's: the header names a registered certificate by ``x5t`` (SHA-1, with
    RS256) or ``x5t#S256`` (SHA-256, with PS256), the signature verifies with that certificate,
    ``aud`` is this token endpoint, ``iss`` and ``sub`` are the client id, and it has not expired.
    """
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        raise AssertionRejected(
            700027, "Client assertion contains an invalid signature or is not a well-formed JWT."
        ) from None
    alg = header.get("alg")
    if alg not in ASSERTION_ALGORITHMS:
        raise AssertionRejected(
            700027, f"Client assertion uses the unsupported signing algorithm '{alg}'."
        )
    cert = app.certificate_by_header(header)
    if cert is None:
        raise AssertionRejected(
            700027,
            "The certificate with identifier used to sign the client assertion is not registered "
            f"on application. [Reason - The key was not found., Thumbprint of key used by client: "
            f"'{header.get('x5t#S256') or header.get('x5t') or '(none)'}']",
        )
    try:
        claims = jwt.decode(
            assertion, cert.public_key, algorithms=[alg], audience=list(token_endpoints),
            options={"require": ["exp", "aud", "iss", "sub"]}, leeway=60,
        )
    except jwt.ExpiredSignatureError:
        raise AssertionRejected(700024, "Client assertion is not within its valid time range.") from None
    except jwt.InvalidAudienceError:
        raise AssertionRejected(
            700212, "No matching federated identity record found for presented assertion "
            "audience; the client assertion's aud must be the token endpoint."
        ) from None
    except jwt.InvalidSignatureError:
        raise AssertionRejected(700027, "Client assertion failed signature validation.") from None
    except jwt.PyJWTError as exc:
        raise AssertionRejected(700027, f"Client assertion is not valid ({exc}).") from None
    if str(claims.get("iss", "")).lower() != app.client_id or str(claims.get("sub", "")).lower() != app.client_id:
        raise AssertionRejected(
            700021, "Client assertion application identifier doesn't match 'client_id' parameter."
        )
    return alg


def client_info(user: User, tenant: Tenant) -> str:
    return b64url(json.dumps({"uid": user.id, "utid": tenant.id}).encode())
