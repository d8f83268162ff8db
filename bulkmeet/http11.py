"""A lean HTTP/1.1 client for the calls bulkmeet makes by the thousand: keep-alive, verified TLS.

Why not urllib3 (which requests is built on) for Graph: bench scenario 4 measured the client as
the bottleneck of a fast tenant, and urllib3 over ``http.client`` spent ~0.26 ms of CPU per
createOrGet on one core (0.45 ms with 8 threads contending for the GIL), much of it in
``http.client.parse_headers`` (the ``email`` package's parser, for five headers). This client
does the same exchange in ~0.10 ms (0.11 ms with 8 threads); ``bench/http_clients.py`` prints
requests, urllib3, http.client and this side by side. It does only what bulkmeet's Graph calls need:

- one request at a time per connection, connections kept alive in a small pool (one per worker);
- the request written in one ``sendall`` with Nagle off (see ../shared/design.md: Nagle plus
  delayed ACK costs 40 ms a request);
- a body framed by Content-Length or chunked encoding, or read to the close;
- no redirects, no compression (it asks for none), no proxies: when the environment's proxy
  applies, ``graph.HttpGraph`` uses urllib3's ProxyManager instead.

Errors are the standard library's: ``TimeoutError`` (``socket.timeout``), ``ssl.SSLError``
(``SSLCertVerificationError`` for a certificate that does not verify) and other ``OSError``;
a malformed answer is a ``ProtocolError`` (an ``OSError`` too, so callers treat it as a
connection failure). A connection the server closed while it sat idle is noticed before reuse,
and a reused connection that dies before any byte of the answer is replaced once: every call
bulkmeet makes is idempotent (createOrGet by externalId, GET, PATCH to the same state, DELETE).
"""
from __future__ import annotations

import io
import select
import socket
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass

MAX_LINE = 65_536  # as http.client: a status or header line longer than this is refused
MAX_HEADERS = 100
NO_BODY = frozenset({204, 304})


class ProtocolError(OSError):
    """The peer's answer is not HTTP/1.1 as we can read it (a connection failure to callers)."""


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: status, headers (as sent, duplicates joined with ", "), the whole body."""

    status: int
    headers: dict[str, str]
    body: bytes


class _Connection:
    """One socket and its buffered reader; ``reusable`` is False once the peer said close."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")
        self.reusable = True
        self.used = False

    def dropped(self) -> bool:
        """Readable while idle means the peer closed it (or sent junk): do not reuse."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def close(self) -> None:
        for closer in (self.reader.close, self.sock.close):
            try:
                closer()
            except OSError:
                pass


class Http11Pool:
    """Connections to one origin, at most ``maxsize`` kept idle; safe to share between threads."""

    def __init__(self, scheme: str, host: str, port: int, *, context: ssl.SSLContext | None,
                 connect_timeout: float, read_timeout: float, maxsize: int = 16) -> None:
        self.host = host
        self.port = port
        self.context = context if scheme == "https" else None
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.maxsize = max(1, maxsize)
        default = 443 if scheme == "https" else 80
        shown = f"[{host}]" if ":" in host else host
        self.host_header = shown if port == default else f"{shown}:{port}"
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()

    def request(self, method: str, target: str, headers: Mapping[str, str],
                body: bytes | None = None) -> Answer:
        """Send one request and read the whole answer; raises OSError subclasses (see above)."""
        message = self._head(method, target, headers, body) + (body or b"")
        conn = self._checkout()
        while True:
            reused, conn.used = conn.used, True
            try:
                conn.sock.sendall(message)
                answer = _read_answer(conn, method)
            except (ConnectionError, _EmptyAnswer):
                conn.close()
                if not reused:
                    raise
                conn = self._connect()  # the server closed a kept-alive connection: once more
                continue
            except BaseException:
                conn.close()
                raise
            self._checkin(conn)
            return answer

    def clear(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _head(self, method: str, target: str, headers: Mapping[str, str],
              body: bytes | None) -> bytes:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host_header}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        if any("\r" in line or "\n" in line for line in lines):  # no smuggled header lines
            raise ValueError("a request line or header holds a line break")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _checkout(self) -> _Connection:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._connect()
            if not conn.dropped():
                return conn
            conn.close()

    def _checkin(self, conn: _Connection) -> None:
        if conn.reusable:
            with self._lock:
                if len(self._idle) < self.maxsize:
                    self._idle.append(conn)
                    return
        conn.close()

    def _connect(self) -> _Connection:
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.context is not None:
                sock = self.context.wrap_socket(sock, server_hostname=self.host)
            sock.settimeout(self.read_timeout)
        except BaseException:
            sock.close()
            raise
        return _Connection(sock)


class _EmptyAnswer(ProtocolError):
    """The connection closed before the status line: on a reused connection, send again."""


def _read_answer(conn: _Connection, method: str) -> Answer:
    reader = conn.reader
    while True:
        line = reader.readline(MAX_LINE + 1)
        if not line:
            raise _EmptyAnswer("the server closed the connection without answering")
        version, status = _status_line(line)
        headers = _read_headers(reader)
        if not 100 <= status < 200:
            break  # 1xx (100 Continue, 103 Early Hints) are interim: the answer follows
    lowered = {k.lower(): v for k, v in headers.items()}
    connection = lowered.get("connection", "").lower()
    if connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive"):
        conn.reusable = False
    if method == "HEAD" or status in NO_BODY:
        return Answer(status, headers, b"")
    if "chunked" in lowered.get("transfer-encoding", "").lower():
        return Answer(status, headers, _read_chunked(reader))
    length = lowered.get("content-length")
    if length is None:
        conn.reusable = False
        return Answer(status, headers, reader.read())
    try:
        size = int(length.split(",")[0].strip())
    except ValueError:
        raise ProtocolError(f"Content-Length {length!r} is not a number") from None
    body = reader.read(size)
    if len(body) < size:
        raise ProtocolError(f"the answer ended after {len(body)} of {size} bytes")
    return Answer(status, headers, body)


def _status_line(line: bytes) -> tuple[str, int]:
    if len(line) > MAX_LINE:
        raise ProtocolError("the status line is too long")
    parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit() \
            or len(parts[1]) != 3:
        raise ProtocolError(f"not an HTTP/1.x status line: {line[:80]!r}")
    return parts[0], int(parts[1])


def _read_headers(reader: io.BufferedReader) -> dict[str, str]:
    headers: dict[str, str] = {}
    last = None
    readline = reader.readline
    for _ in range(MAX_HEADERS + 1):
        raw: bytes = readline(MAX_LINE + 1)
        if len(raw) > MAX_LINE:
            raise ProtocolError("a header line is too long")
        if raw in (b"\r\n", b"\n"):
            return headers
        if not raw:
            raise ProtocolError("the connection closed inside the headers")
        text = raw.decode("latin-1").rstrip("\r\n")
        if text[:1] in (" ", "\t") and last is not None:  # obsolete line folding
            headers[last] += " " + text.strip()
            continue
        name, sep, value = text.partition(":")
        if not sep or not name or name != name.strip():
            raise ProtocolError(f"not a header line: {raw[:80]!r}")
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
        last = name
    raise ProtocolError(f"more than {MAX_HEADERS} headers")


def _read_chunked(reader: io.BufferedReader) -> bytes:
    readline, read = reader.readline, reader.read
    parts: list[bytes] = []
    while True:
        line: bytes = readline(MAX_LINE + 1)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size line: {line[:80]!r}") from None
        if size == 0:
            break
        chunk: bytes = read(size)
        if len(chunk) < size or read(2) != b"\r\n":
            raise ProtocolError("the answer ended inside a chunk")
        parts.append(chunk)
    _read_headers(reader)  # trailers, if any, end with an empty line
    return b"".join(parts)
