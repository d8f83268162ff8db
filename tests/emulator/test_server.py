"""The HTTP layer: TLS trust, keep-alive, body framing, stats, concurrency, lifecycle."""
from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
from urllib.parse import urlsplit

import pytest
import requests

from bulkmeet.emulator import Emulator, EmulatorOptions
from tests.emulator.helpers import ADA, ALAN, TENANT, Api


def connection(emu: Emulator) -> http.client.HTTPSConnection:
    parts = urlsplit(emu.base_url)
    ctx = ssl.create_default_context(cafile=str(emu.ca_path))
    return http.client.HTTPSConnection(parts.hostname, parts.port, context=ctx, timeout=10)


def test_certificate_is_valid_for_loopback_names_only_with_the_emulator_ca(emu):
    port = urlsplit(emu.base_url).port
    ctx = ssl.create_default_context(cafile=str(emu.ca_path))
    for name in ("127.0.0.1", "localhost"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=name) as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
    with pytest.raises(requests.exceptions.SSLError):  # the system store does not trust it
        requests.get(emu.base_url + "/_emulator/health", verify=True, timeout=5)


def test_keep_alive_serves_many_requests_on_one_connection(emu, api):
    conn = connection(emu)
    token = api.app_token()
    socks = set()
    for i in range(5):
        conn.request("POST", f"/v1.0/users/{ADA}/onlineMeetings/createOrGet",
                     body=json.dumps({"externalId": f"ka-{i}"}),
                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        r = conn.getresponse()
        body = r.read()
        assert r.status == 201 and len(body) == int(r.getheader("Content-Length"))
        assert (r.getheader("Connection") or "").lower() != "close"
        socks.add(id(conn.sock))
    assert len(socks) == 1
    conn.close()


def test_chunked_body_and_expect_continue(emu, api):
    conn = connection(emu)
    body = json.dumps({"externalId": "chunky", "subject": "x" * 3000}).encode()
    conn.request("POST", f"/v1.0/users/{ADA}/onlineMeetings/createOrGet", body=iter([body[:100], body[100:]]),
                 headers={"Authorization": f"Bearer {api.app_token()}", "Content-Type": "application/json",
                          "Expect": "100-continue"}, encode_chunked=True)
    r = conn.getresponse()
    assert r.status == 201 and json.loads(r.read())["externalId"] == "chunky"
    conn.close()


def test_plain_http_gets_a_readable_hint(emu):
    port = urlsplit(emu.base_url).port
    r = requests.get(f"http://127.0.0.1:{port}/_emulator/health", timeout=5)
    assert r.status_code == 400 and "HTTPS" in r.text


def test_malformed_request_line_is_400(emu):
    port = urlsplit(emu.base_url).port
    ctx = ssl.create_default_context(cafile=str(emu.ca_path))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"NONSENSE\r\n\r\n")
            assert tls.recv(100).startswith(b"HTTP/1.1 400 ")


def test_stats_normalise_paths_and_count_graph_and_identity_only(directory_file):
    with Emulator(EmulatorOptions(directory=directory_file)) as emu:
        api = Api(emu)
        api.create(ADA)
        api.create(ALAN)
        api.create(ALAN, {"colour": 1})
        api.request("GET", f"/{TENANT}/v2.0/.well-known/openid-configuration")
        api.request("GET", "/_emulator/meetings")
        stats = api.request("GET", "/_emulator/stats").json()
        assert stats == dict(stats, meetings=2, created=2, token_requests=1)
        assert stats["by_path"]["POST /v1.0/users/{id}/onlineMeetings/createOrGet"] == {"201": 2, "400": 1}
        assert stats["by_path"]["POST /{tenant}/oauth2/v2.0/token"] == {"200": 1}
        assert stats["by_path"]["GET /{tenant}/v2.0/.well-known/openid-configuration"] == {"200": 1}
        assert stats["requests"] == 5 and stats["by_status"] == {"200": 2, "201": 2, "400": 1}
        assert not any("_emulator" in key for key in stats["by_path"])
        assert stats == dict(stats, throttled=0, in_flight_peak=stats["in_flight_peak"])
        assert emu.stats()["by_path"] == stats["by_path"]
        api.close()


def test_in_flight_peak_counts_concurrent_requests(directory_file):
    # Half a second of latency per call: four calls started together overlap.
    with Emulator(EmulatorOptions(directory=directory_file, latency_ms=(500.0, 500.0))) as emu:
        api = Api(emu)
        token = api.app_token()
        barrier = threading.Barrier(4)
        statuses: list[int] = []

        def call(i: int) -> None:
            s = Api(emu)
            barrier.wait()
            statuses.append(s.create(ADA, {"externalId": f"par-{i}"}, token=token).status_code)
            s.close()

        threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert statuses == [201] * 4
        assert emu.stats()["in_flight_peak"] >= 2
        api.close()


def test_lifecycle_guards(directory_file):
    emu = Emulator(EmulatorOptions(directory=directory_file))
    with pytest.raises(RuntimeError):
        _ = emu.base_url
    with emu:
        with pytest.raises(RuntimeError):
            emu.start()
    emu.stop()  # idempotent
