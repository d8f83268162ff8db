"""bulkmeet's HTTP/1.1 client against a scripted server on loopback: framing, keep-alive, stale
connections, hostile answers. (The emulator tests drive it over real TLS on every run; this file
covers what a well-behaved emulator never sends.)"""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from bulkmeet.graph import CONNECTION, TIMEOUT, HttpGraph
from bulkmeet.http11 import Http11Pool, ProtocolError

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


@dataclass
class Seen:
    request: bytes
    connection: int


@dataclass
class ScriptedServer:
    """Answers each request with ``script(n, seen)``: (bytes to send, close the connection after).
    ``None`` bytes: close at once without answering."""

    script: Callable[[int, Seen], tuple[bytes | None, bool]]
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn, self.connections), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, rest = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(rest) < length:
                    rest += conn.recv(65536)
                request, buf = head + b"\r\n\r\n" + rest[:length], rest[length:]
                seen = Seen(request, number)
                self.seen.append(seen)
                answer, close = self.script(len(self.seen), seen)
                if answer is None:
                    return
                conn.sendall(answer)
                if close:
                    return

    def pool(self, read_timeout: float = 5.0) -> Http11Pool:
        return Http11Pool("http", "127.0.0.1", self.port, context=None, connect_timeout=5.0,
                          read_timeout=read_timeout)

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def serve():
    servers: list[ScriptedServer] = []

    def start(script):
        server = ScriptedServer(script)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


class NoTokens:
    delegated = False

    def token(self) -> str:
        return "tok"

    def invalidate(self, token: str) -> None:
        pass


def test_the_request_is_one_well_formed_http11_message(serve):
    server = serve(lambda n, seen: (OK, False))
    answer = server.pool().request("POST", "/v1.0/x", {"Accept": "application/json"}, b'{"a":1}')
    assert (answer.status, answer.body) == (200, b"{}")
    assert server.seen[0].request == (
        b"POST /v1.0/x HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: application/json\r\n"
        b"Content-Length: 7\r\n\r\n{\"a\":1}" % server.port)


def test_keep_alive_sends_many_requests_on_one_connection(serve):
    server = serve(lambda n, seen: (OK, False))
    pool = server.pool()
    for _ in range(5):
        assert pool.request("GET", "/", {}).status == 200
    assert server.connections == 1


def test_connection_close_is_honoured(serve):
    close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
    server = serve(lambda n, seen: (close, True))
    pool = server.pool()
    assert [pool.request("GET", "/", {}).body for _ in range(3)] == [b"{}"] * 3
    assert server.connections == 3


def test_a_chunked_body_with_extensions_and_trailers_is_joined(serve):
    chunked = (b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"4;name=value\r\n{\"id\r\n6\r\n\":\"m1\"\r\n1\r\n}\r\n0\r\nX-Trailer: t\r\n\r\n")
    server = serve(lambda n, seen: (chunked, False))
    pool = server.pool()
    assert pool.request("POST", "/", {}, b"{}").body == b'{"id":"m1"}'
    assert pool.request("POST", "/", {}, b"{}").body == b'{"id":"m1"}'  # framing kept in step
    assert server.connections == 1


def test_a_body_without_length_is_read_to_the_close(serve):
    server = serve(lambda n, seen: (b"HTTP/1.1 200 OK\r\n\r\n{\"x\": 1}", True))
    pool = server.pool()
    assert pool.request("GET", "/", {}).body == b'{"x": 1}'
    assert pool.request("GET", "/", {}).body == b'{"x": 1}'
    assert server.connections == 2


def test_interim_1xx_answers_are_skipped_and_no_body_statuses_read_none(serve):
    answers = [b"HTTP/1.1 100 Continue\r\n\r\n" + OK,
               b"HTTP/1.1 204 No Content\r\nrequest-id: r\r\n\r\n", OK]
    server = serve(lambda n, seen: (answers[n - 1], False))
    pool = server.pool()
    assert pool.request("POST", "/", {}, b"{}").status == 200
    empty = pool.request("DELETE", "/", {})
    assert (empty.status, empty.body, empty.headers) == (204, b"", {"request-id": "r"})
    assert pool.request("GET", "/", {}).status == 200  # the 204 left nothing unread behind
    assert server.connections == 1


def test_repeated_and_folded_headers_are_kept(serve):
    answer = (b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nx-ms-a: 1\r\nx-ms-a: 2\r\n"
              b"x-ms-b: one\r\n  two\r\nContent-Length: 0\r\n\r\n")
    server = serve(lambda n, seen: (answer, False))
    got = server.pool().request("GET", "/", {})
    assert got.headers == {"Retry-After": "3", "x-ms-a": "1, 2", "x-ms-b": "one two",
                           "Content-Length": "0"}


def test_an_idle_connection_the_server_closed_is_replaced_before_use(serve):
    server = serve(lambda n, seen: (OK, n == 1))  # closes after the first answer, unannounced
    pool = server.pool()
    assert pool.request("GET", "/", {}).status == 200
    time.sleep(0.2)  # the server's FIN arrives while the connection sits in the pool
    assert pool.request("GET", "/", {}).status == 200
    assert server.connections == 2
    assert len(server.seen) == 2  # noticed before sending: nothing sent twice


def test_a_reused_connection_dropped_before_the_answer_is_tried_once_more(serve):
    server = serve(lambda n, seen: (None if n == 2 else OK, False))  # drops the 2nd request
    pool = server.pool()
    assert pool.request("GET", "/a", {}).status == 200
    assert pool.request("GET", "/b", {}).status == 200
    assert [s.request.split(b" ")[1] for s in server.seen] == [b"/a", b"/b", b"/b"]
    assert [s.connection for s in server.seen] == [1, 1, 2]


def test_a_fresh_connection_dropped_before_the_answer_is_a_connection_failure(serve):
    server = serve(lambda n, seen: (None, False))
    graph = HttpGraph(f"http://127.0.0.1:{server.port}", "v1.0", NoTokens())
    got = graph.get_user("ada@school.example")
    assert (got.status, got.failure) == (None, CONNECTION)
    assert len(server.seen) == 1  # not sent again: the runner decides about retries


@pytest.mark.parametrize("answer", [
    b"SPDY/3 200 OK\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\n" + b"x-h: v\r\n" * 101 + b"\r\n",
    b"HTTP/1.1 200 OK\r\nx-long: " + b"v" * 70_000 + b"\r\n\r\n",
], ids=["not-http", "bad-status", "bad-header", "bad-length", "short-body", "bad-chunk",
        "too-many-headers", "long-header"])
def test_a_malformed_answer_is_a_protocol_error_and_a_connection_failure(serve, answer):
    server = serve(lambda n, seen: (answer, True))
    with pytest.raises(ProtocolError):
        server.pool().request("GET", "/", {})
    got = HttpGraph(f"http://127.0.0.1:{server.port}", "v1.0", NoTokens()).get_user("a@b.example")
    assert (got.status, got.failure) == (None, CONNECTION)


def test_a_silent_server_is_a_timeout(serve):
    server = serve(lambda n, seen: (b"", False))  # reads the request, never answers
    graph = HttpGraph(f"http://127.0.0.1:{server.port}", "v1.0", NoTokens(), timeout=(5.0, 0.3))
    got = graph.get_user("ada@school.example")
    assert (got.status, got.failure) == (None, TIMEOUT)


def test_a_header_cannot_smuggle_a_second_line(serve):
    server = serve(lambda n, seen: (OK, False))
    with pytest.raises(ValueError, match="line break"):
        server.pool().request("GET", "/", {"client-request-id": "x\r\nX-Evil: 1"})
    assert server.seen == []


def test_graph_answers_keep_status_headers_and_json(serve):
    body = b'{"error":{"code":"TooManyRequests","message":""}}'
    answer = (b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nrequest-id: r-1\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    server = serve(lambda n, seen: (answer, False))
    got = HttpGraph(f"http://127.0.0.1:{server.port}", "v1.0", NoTokens()).create_or_get(
        "0f0e0d0c-0b0a-0908-0706-050403020100", {"externalId": "e"})
    assert (got.status, got.retry_after, got.request_id, got.error_code) == (
        429, 7.0, "r-1", "TooManyRequests")
    request = server.seen[0].request
    assert request.startswith(b"POST /v1.0/users/0f0e0d0c-0b0a-0908-0706-050403020100/"
                              b"onlineMeetings/createOrGet HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Bearer tok\r\n" in request
    assert request.endswith(b'\r\n\r\n{"externalId":"e"}')


def test_through_an_https_proxy_graph_calls_tunnel_with_connect_and_no_token(serve, monkeypatch):
    """The proxy path (urllib3's ProxyManager): the proxy, on loopback here, is asked to CONNECT
    to Graph's host and sees no bearer token; its refusal is a connection failure."""
    server = serve(lambda n, seen: (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", True))
    for name in ("NO_PROXY", "no_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{server.port}")
    graph = HttpGraph("https://graph.microsoft.com", "v1.0", NoTokens())
    got = graph.get_user("ada@school.example")
    assert (got.status, got.failure) == (None, CONNECTION)
    (seen,) = server.seen
    assert seen.request.startswith(b"CONNECT graph.microsoft.com:443 HTTP/1.")
    assert b"tok" not in seen.request and b"Authorization" not in seen.request
