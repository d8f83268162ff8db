"""HTTP plumbing shared by the Graph client and authentication.

One place decides which CA bundle is trusted and which URLs may carry a token, so that the
``REQUESTS_CA_BUNDLE`` pitfall (requests lets it override ``Session.verify``) is handled once.
"""
from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies

from bulkmeet.errors import UnsafeURLError


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(url: str, what: str) -> str:
    """Refuse URLs that would send tokens in clear text off this machine.

    https anywhere; plain http only to a loopback address (a local emulator or proxy).
    """
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url.rstrip("/")
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return url.rstrip("/")
    raise UnsafeURLError(
        f"{what} '{url}' must be an https:// URL (plain http is allowed only for a loopback "
        "address such as 127.0.0.1)."
    )


def environ_proxies(url: str) -> dict[str, str]:
    """The environment's proxies (HTTPS_PROXY, NO_PROXY) for this URL's host; never for loopback."""
    parts = urlsplit(url)
    if is_loopback_host(parts.hostname):
        return {}
    return get_environ_proxies(f"{parts.scheme}://{parts.netloc}")


def resolve_ca_bundle(configured: str | None) -> str | bool:
    """The CA bundle to verify TLS with: the config's, else REQUESTS_CA_BUNDLE, else certifi.

    Verification is never switched off: the return value is a path or True.
    """
    if configured:
        return os.path.expanduser(configured)
    env = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    return env or True


class VerifyingSession(requests.Session):
    """A Session whose ``verify`` the environment cannot override, with a pool sized to the work.

    With ``trust_env`` on, requests merges REQUESTS_CA_BUNDLE over ``Session.verify`` and re-reads
    the proxy settings from the environment on every call (a quarter of the client's CPU at
    1,000 requests/s). So ``trust_env`` is off, and the environment's proxies (HTTPS_PROXY,
    NO_PROXY) are looked up once per host and passed explicitly; ``verify`` is always ours.
    """

    def __init__(self, ca_bundle: str | bool, pool_size: int = 10) -> None:
        super().__init__()
        self.trust_env = False
        self.verify = ca_bundle
        self._proxies_by_host: dict[str, dict[str, str]] = {}
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(pool_size, 1), max_retries=0)
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def _proxies_for(self, url: str) -> dict[str, str]:
        parts = urlsplit(url)
        key = f"{parts.scheme}://{parts.netloc}"
        proxies = self._proxies_by_host.get(key)
        if proxies is None:
            proxies = self._proxies_by_host[key] = environ_proxies(key)
        return proxies

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        kwargs["verify"] = self.verify
        if kwargs.get("proxies") is None:
            kwargs["proxies"] = self._proxies_for(url)
        return super().request(method, url, *args, **kwargs)


def build_session(ca_bundle: str | None, pool_size: int = 10) -> requests.Session:
    return VerifyingSession(resolve_ca_bundle(ca_bundle), pool_size)
