"""Which URLs may carry a token: one parser (urllib3's, which both HTTP clients use), one rule.

The config tests assert the messages for hostile base URLs; these check what the rule hands to
the clients, and that the sign-in side's "same host only" check cannot be fooled either.
"""
from __future__ import annotations

import pytest
import requests

from bulkmeet.auth.client import AuthorityHttp
from bulkmeet.errors import AuthError, UnsafeURLError
from bulkmeet.graph import HttpGraph
from bulkmeet.http import check_url, endpoint, environ_proxies, origin


@pytest.mark.parametrize("url,expected", [
    ("https://graph.microsoft.com", "https://graph.microsoft.com"),
    ("https://Graph.Microsoft.COM/", "https://graph.microsoft.com"),
    ("HTTPS://graph.microsoft.us:443/", "https://graph.microsoft.us:443"),
    ("http://127.0.0.1:8443/", "http://127.0.0.1:8443"),
    ("http://127.0.0.1:08443", "http://127.0.0.1:8443"),
    ("http://localhost:8080/proxy/graph/", "http://localhost:8080/proxy/graph"),
    ("http://[0:0::1]:8443", "http://[::1]:8443"),
    ("  https://graph.microsoft.com  ", "https://graph.microsoft.com"),  # TOML typing slips
])
def test_accepted_urls_come_back_rebuilt_from_what_was_checked(url, expected):
    assert check_url(url, "base_url") == expected


def test_endpoint_names_host_and_port_as_the_client_connects():
    ep = endpoint("http://[::1]:8443/x/", "base_url")
    assert (ep.scheme, ep.host, ep.port, ep.path, ep.origin, ep.loopback) == \
        ("http", "::1", 8443, "/x", "http://[::1]:8443", True)
    assert endpoint("https://login.microsoftonline.com", "authority").origin == \
        "https://login.microsoftonline.com:443"


def test_the_backslash_bypass_is_refused_where_urllib_parse_would_have_passed_it():
    from urllib.parse import urlsplit

    url = "http://127.0.0.5\\@127.0.0.1:8443"
    assert urlsplit(url).hostname == "127.0.0.1"  # what the old check looked at
    with pytest.raises(UnsafeURLError, match="contains a backslash"):
        check_url(url, "base_url")


@pytest.mark.parametrize("url", [
    "https://login.example.com\\@127.0.0.1:8443/t/oauth2/v2.0/token",  # urllib3: login.example.com
    "https://127.0.0.1:8443@login.example.com/t/oauth2/v2.0/token",  # userinfo, then another host
    "https://127.0.0.1:8443.evil.example/t/oauth2/v2.0/token",
    "https://127.0.0.1%3A8443/t",
    "http://127.0.0.1:8443/t/oauth2/v2.0/token",  # same host, clear text
])
def test_the_sign_in_client_refuses_urls_that_leave_the_authority(url):
    """msal builds its URLs from the OIDC metadata; each is checked before anything is sent."""
    http = AuthorityHttp(requests.Session(), origin("https://127.0.0.1:8443", "authority"), (1, 1))
    with pytest.raises(AuthError) as exc:
        http.post(url, data={"client_secret": "never-sent"})
    assert "refusing to send credentials there: check authority_host in [auth]." in str(exc.value)
    assert "never-sent" not in str(exc.value)
    http.close()


def test_graph_client_uses_the_checked_url_and_refuses_the_bypass():
    class NoTokens:
        delegated = False

        def token(self) -> str:
            raise AssertionError("no request may be made")

        def invalidate(self, token: str) -> None: ...

    graph = HttpGraph("HTTP://127.0.0.1:8443/", "v1.0", NoTokens())
    assert graph.describe() == "http://127.0.0.1:8443/v1.0"
    graph.close()
    with pytest.raises(UnsafeURLError, match="contains a backslash"):
        HttpGraph("http://graph.example.com\\@127.0.0.1:8443", "v1.0", NoTokens())


def test_the_environment_proxy_applies_off_this_machine_only(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.school.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert environ_proxies("https://127.0.0.1:8443/v1.0") == {}
    assert environ_proxies("https://[::1]:8443") == {}
    assert environ_proxies("https://graph.microsoft.com/v1.0")["https"] == \
        "http://proxy.school.example:3128"
    monkeypatch.setenv("NO_PROXY", "graph.microsoft.com")
    assert "https" not in environ_proxies("https://graph.microsoft.com/v1.0")
