"""The HTTP rules every client in bulkmeet shares: which URLs may carry a token, which CAs we trust.

Graph is called with ``http11`` (``graph.HttpGraph``; urllib3 through a proxy), the sign-in
service through a requests Session handed to msal (``auth.client``). A URL two parsers read
differently is how a checker gets fooled: ``http://127.0.0.5\\@127.0.0.1`` is host 127.0.0.1 to
``urllib.parse`` but host 127.0.0.5 to urllib3 (``urllib3.util.parse_url``, which requests uses
too), which would then send the bearer token there in clear. So ``endpoint`` parses a URL once,
strictly, refuses anything the parsers might disagree on (backslashes, ``user@``,
percent-encoded or otherwise odd hosts), checks that urllib3 sees the same host and port, and
hands back a URL rebuilt from the checked parts; ``http11`` connects to exactly that host and
port. Config validation and every client use it; nothing else in bulkmeet splits a URL.

This is also the one home of the CA choice (``resolve_ca_bundle``, ``tls_context``; the
``REQUESTS_CA_BUNDLE`` pitfall: requests lets it override ``Session.verify``) and of the
sentence for a TLS certificate that does not verify.
"""
from __future__ import annotations

import ipaddress
import os
import re
import ssl
import unicodedata
from dataclasses import dataclass

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies

from bulkmeet.errors import UnsafeURLError
from bulkmeet.ids import NOT_SHOWN, shown_id

DEFAULT_PORTS = {"https": 443, "http": 80}
_SPLIT = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$")
_IPV6_AUTHORITY = re.compile(r"^\[([^\]]*)\](?::([0-9]*))?$")
_NAME_AUTHORITY = re.compile(r"^([^:\[\]]*)(?::([0-9]*))?$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_PATH = re.compile(r"^(?:[A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})*$")


@dataclass(frozen=True)
class Endpoint:
    """What a client will connect to for a URL, and the URL rebuilt from exactly that."""

    scheme: str  # "https" | "http"
    host: str  # lower-case; an IPv6 address without brackets
    port: int  # explicit, or the scheme's default
    path: str  # "" or "/..." without a trailing slash
    url: str  # scheme://host[:port]path: every parser reads it as the fields above

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{_bracketed(self.host)}:{self.port}"

    @property
    def loopback(self) -> bool:
        return is_loopback_host(self.host)


def is_loopback_host(host: str | None) -> bool:
    """localhost or a loopback address (127.0.0.0/8, ::1); brackets around IPv6 are allowed."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def endpoint(url: str, what: str) -> Endpoint:
    """Parse ``url`` strictly: scheme, host, port, path; no query or fragment; http only to loopback.

    ``what`` names the setting for the message, e.g. "bulkmeet.toml: [graph] base_url". Every
    refusal is an ``UnsafeURLError`` (a config error, exit 2) saying what to change. The URL is
    echoed only as ``shown_url`` shows it: never its query, fragment or user:password.
    """
    target = _target(url, what)
    if target.query or target.fragment:
        raise UnsafeURLError(f"{what} '{shown_url(url)}' must not have a ?query or #fragment "
                             "(not shown: it may hold a key): remove it.")
    ep = target.endpoint
    if ep.scheme == "http" and not ep.loopback:
        raise UnsafeURLError(f"{what} '{shown_url(url)}' must be an https:// URL (plain http is "
                             "allowed only for a loopback address such as 127.0.0.1).")
    return ep


def check_url(url: str, what: str) -> str:
    """``endpoint(url, what).url``: the checked URL, rebuilt from what will be connected to.

    https anywhere; plain http only to a loopback address (a local emulator or proxy), so a
    token never crosses the network in clear.
    """
    return endpoint(url, what).url


def origin(url: str, what: str) -> str:
    """scheme://host:port that a request to ``url`` connects to (path and query may be anything)."""
    return _target(url, what).endpoint.origin


@dataclass(frozen=True)
class _Target:
    endpoint: Endpoint
    query: str | None
    fragment: str | None


def _target(url: str, what: str) -> _Target:
    raw = url.strip()
    if "\\" in raw:
        raise UnsafeURLError(
            f"{what} '{shown_url(raw)}' contains a backslash: URL parsers disagree about where its "
            "host ends; write the URL with forward slashes only.")
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in raw):
        raise UnsafeURLError(f"{what} '{shown_url(raw)}' contains a space or control character: "
                             "remove it.")
    m = _SPLIT.match(raw)
    if not m:
        raise UnsafeURLError(f"{what} '{shown_url(raw)}' is not a URL: write it as https://HOST "
                             "(plain http only for a loopback address such as 127.0.0.1).")
    scheme, authority, path, query, fragment = m.groups()
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UnsafeURLError(f"{what} '{shown_url(raw)}' must be an https:// URL (plain http is "
                             "allowed only for a loopback address such as 127.0.0.1).")
    if "@" in authority:
        raise UnsafeURLError(f"{what} must not contain a user name or password before the host "
                             "(user@...): remove it; bulkmeet never sends credentials in a URL.")
    host, port_text = _split_authority(authority, raw, what)
    host = _check_host(host, raw, what)
    port = DEFAULT_PORTS[scheme]
    if port_text is not None:
        if not port_text or len(port_text) > 5 or not 1 <= int(port_text) <= 65535:
            raise UnsafeURLError(f"{what} '{shown_url(raw)}' has an invalid port: use a number from "
                                 "1 to 65535, or leave the port out.")
        port = int(port_text)
    if not _PATH.match(path):
        raise UnsafeURLError(f"{what} '{shown_url(raw)}' has characters in its path that must be "
                             "percent-encoded: check the URL.")
    path = path.rstrip("/")
    netloc = _bracketed(host) + (f":{port}" if port_text is not None else "")
    ep = Endpoint(scheme, host, port, path, f"{scheme}://{netloc}{path}")
    _same_for_urllib3(raw, ep, what)
    _same_for_urllib3(ep.url, ep, what)
    return _Target(ep, query[1:] if query else None, fragment[1:] if fragment else None)


def _split_authority(authority: str, raw: str, what: str) -> tuple[str, str | None]:
    if "%" in authority:
        zone = authority.startswith("[") and "%" in authority.split("]", 1)[0]
        raise UnsafeURLError(
            f"{what} '{shown_url(raw)}' names an IPv6 zone (%...): zones are not supported; use "
            "[::1] or a global address." if zone else
            f"{what} '{shown_url(raw)}' has a percent-encoded host: write the host name plainly "
            "(e.g. 127.0.0.1).")
    m = _IPV6_AUTHORITY.match(authority) if authority.startswith("[") else \
        _NAME_AUTHORITY.match(authority)
    if not m:
        raise UnsafeURLError(f"{what} '{shown_url(raw)}' has an unreadable host and port: write it "
                             "as https://HOST or https://HOST:PORT.")
    host, port_text = m.group(1), m.group(2)
    if authority.startswith("["):
        try:
            host = str(ipaddress.IPv6Address(host))
        except ValueError:
            raise UnsafeURLError(f"{what} '{shown_url(raw)}': [{_escaped(host)}] is not a valid "
                                 "IPv6 address.") from None
        return "[" + host + "]", port_text
    return host, port_text


def _check_host(host: str, raw: str, what: str) -> str:
    """A DNS name, a dotted-quad IPv4 address or a bracketed IPv6 address; lower-case."""
    if not host:
        raise UnsafeURLError(f"{what} '{shown_url(raw)}' has no host: write it as https://HOST.")
    if host.startswith("["):
        return host[1:-1]
    if not host.isascii():
        try:
            hint = f" ({host.encode('idna').decode('ascii')})"
        except UnicodeError:
            hint = ""
        raise UnsafeURLError(f"{what} '{shown_url(raw)}': the host has non-ASCII characters: "
                             f"write it in its xn-- form{hint}.")
    name = host.lower()
    if name.endswith("."):
        raise UnsafeURLError(f"{what} '{shown_url(raw)}': the host '{name}' ends with a dot: "
                             "remove it.")
    labels = name.split(".")
    if _NUMERIC_LABEL.match(labels[-1]):
        try:
            return str(ipaddress.IPv4Address(name))
        except ValueError:
            raise UnsafeURLError(f"{what} '{shown_url(raw)}': the host '{name}' is not a valid IP "
                                 "address: write four numbers from 0 to 255, e.g. 127.0.0.1.") from None
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise UnsafeURLError(f"{what} '{shown_url(raw)}': the host '{name}' is not a valid host "
                             "name (letters, digits, '-' and '.' only).")
    return name


def _same_for_urllib3(url: str, ep: Endpoint, what: str) -> None:
    """The clients' own parser must arrive at the host and port we checked."""
    try:
        parsed = urllib3.util.parse_url(url)
    except urllib3.exceptions.LocationParseError:
        parsed = None
    host = (parsed.host or "").strip("[]").lower() if parsed else ""
    if parsed is not None and host and _canonical_host(host) == ep.host and \
            (parsed.port or DEFAULT_PORTS[ep.scheme]) == ep.port and not parsed.auth:
        return
    raise UnsafeURLError(f"{what} '{shown_url(url)}' is ambiguous (URL parsers disagree on its host): "
                         "write it as https://HOST:PORT/PATH.")


def _canonical_host(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def shown_url(url: str) -> str:
    """The one way a URL is shown in a message: scheme://host[:port]/path as typed, no secrets.

    A query or fragment often IS a credential (?sig= of a SAS, ?code= of a function key), so
    it is cut and marked "?..." / "#..."; a user name or password before the host becomes
    "...@" unless it is made of host characters only (``http://127.0.0.5\\@127.0.0.1``, the
    parser trick a message must show). Control characters are escaped so a terminal shows them
    harmlessly.
    """
    text = url.strip()
    cut = min((i for i in (text.find("?"), text.find("#")) if i >= 0), default=len(text))
    head, tail = text[:cut], (text[cut] + "..." if cut < len(text) else "")
    scheme, sep, rest = head.partition("://")
    if sep:
        authority, slash, path = rest.partition("/")
        if "@" in authority:
            user, _, host = authority.rpartition("@")
            if shown_id(user.rstrip("\\")) == NOT_SHOWN:
                authority = "...@" + host
        head = scheme + sep + authority + slash + path
    return _escaped(head + tail)


def _escaped(text: str) -> str:
    """``text`` with control characters escaped so a terminal shows them harmlessly."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
                   for ch in text)


# -- proxies and CAs ------------------------------------------------------------------------


def environ_proxies(url: str) -> dict[str, str]:
    """The environment's proxies (HTTPS_PROXY, NO_PROXY) for this URL's host; never for loopback."""
    ep = _target(url, "URL").endpoint
    if ep.loopback:
        return {}
    return get_environ_proxies(ep.origin)


def resolve_ca_bundle(configured: str | None) -> str | bool:
    """The CA bundle to verify TLS with: the config's, else REQUESTS_CA_BUNDLE, else certifi.

    Verification is never switched off: the return value is a path or True.
    """
    if configured:
        return os.path.expanduser(configured)
    env = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    return env or True


def tls_context(ca: str | bool) -> ssl.SSLContext:
    """A verifying TLS context (chain and host name) for what ``resolve_ca_bundle`` chose: a
    file, a folder of hashed certificates, or True for certifi's bundle (as urllib3 does)."""
    if isinstance(ca, str):
        if os.path.isdir(ca):
            return ssl.create_default_context(capath=ca)
        return ssl.create_default_context(cafile=ca)
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def describe_ca(configured: str | None) -> str:
    """Which CAs bulkmeet trusts, in the words of the setting that chose them (for messages)."""
    if configured:
        return f"ca_bundle {configured}"
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        if os.environ.get(name):
            return f"{name}={os.environ[name]}"
    return "the public CA bundle (certifi)"


def tls_failure_message(service: str, ca: str) -> str:
    """The one sentence for a certificate that does not verify, for Graph and the sign-in service.

    ``service`` is e.g. "the sign-in service https://login.microsoftonline.com"; ``ca`` comes from
    ``describe_ca``. Not transient: retrying cannot help, changing the trusted CAs can.
    """
    return (f"Cannot verify the TLS certificate of {service}: if a proxy inspects TLS on this "
            "network, set ca_bundle in [graph] to your organisation's CA file (PEM); "
            f"REQUESTS_CA_BUNDLE applies only when ca_bundle is not set (now trusting {ca}).")


def is_certificate_failure(exc: BaseException) -> bool:
    """Did TLS fail because the peer's certificate does not verify (unknown CA, wrong host name)?

    Walks the exception chain: urllib3 and requests wrap ``ssl.SSLCertVerificationError``.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ssl.SSLCertVerificationError):
            return True
        todo += [e.__cause__, e.__context__, getattr(e, "reason", None)]
        todo += [a for a in e.args if isinstance(a, BaseException)]
    return False


class VerifyingSession(requests.Session):
    """A Session whose ``verify`` the environment cannot override, with a pool sized to the work.

    With ``trust_env`` on, requests merges REQUESTS_CA_BUNDLE over ``Session.verify`` and re-reads
    the proxy settings from the environment on every call. So ``trust_env`` is off, and the
    environment's proxies (HTTPS_PROXY, NO_PROXY) are looked up once per origin and passed
    explicitly; ``verify`` is always ours.
    """

    def __init__(self, ca_bundle: str | bool, pool_size: int = 10) -> None:
        super().__init__()
        self.trust_env = False
        self.verify = ca_bundle
        self._proxies_by_origin: dict[str, dict[str, str]] = {}
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(pool_size, 1), max_retries=0)
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def _proxies_for(self, url: str) -> dict[str, str]:
        key = origin(url, "URL")
        proxies = self._proxies_by_origin.get(key)
        if proxies is None:
            proxies = self._proxies_by_origin[key] = environ_proxies(url)
        return proxies

    def request(self, method, url, *args, **kwargs):
        kwargs["verify"] = self.verify
        if kwargs.get("proxies") is None:
            kwargs["proxies"] = self._proxies_for(url)
        return super().request(method, url, *args, **kwargs)


def build_session(ca_bundle: str | None, pool_size: int = 10) -> requests.Session:
    """The Session msal talks to the sign-in service through (see ``VerifyingSession``)."""
    return VerifyingSession(resolve_ca_bundle(ca_bundle), pool_size)
