"""A small, fast HTTPS/1.1 server: one thread per connection, keep-alive, no Nagle.

Why not ``http.server``: its header parsing goes through the e-mail parser and it does the TLS
handshake in the accept loop (one slow client then blocks every other). This server parses just
what the emulator needs, writes each response with a single ``sendall`` (TCP_NODELAY, so no 40 ms
Nagle/delayed-ACK stalls), and can drop or stall a response on purpose. ``stop()`` shuts every
open socket down, so threads blocked in a read or a deliberate stall end at once.
"""
from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Protocol
from urllib.parse import unquote

MAX_LINE = 65536
MAX_HEADERS = 100
MAX_BODY = 4 * 1024 * 1024
HANDSHAKE_TIMEOUT_S = 10.0

_REASONS = {s.value: s.phrase for s in HTTPStatus}
_PLAIN_HTTP_PREFIXES = (b"GET ", b"POST", b"PUT ", b"PATC", b"DELE", b"HEAD", b"OPTI")


class Request:
    __slots__ = ("method", "target", "path", "query", "headers", "body", "request_id",
                 "client_request_id", "stat_key")

    def __init__(self, method: str, target: str, headers: dict[str, str], body: bytes) -> None:
        self.method = method
        self.target = target
        path, _, query = target.partition("?")
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.request_id = ""
        self.client_request_id = ""
        self.stat_key = ""  # normalised "METHOD /path/{id}" for the stats

    def segments(self) -> list[str]:
        return [unquote(s) for s in self.path.split("/")[1:]]


class Response:
    __slots__ = ("status", "body", "headers", "content_type", "drop", "close")

    def __init__(self, status: int, body: bytes = b"", headers: list[tuple[str, str]] | None = None,
                 content_type: str | None = "application/json") -> None:
        self.status = status
        self.body = body
        self.headers = headers if headers is not None else []
        self.content_type = content_type if body or status not in (204, 304) else None
        self.drop = False  # close the connection without answering (an injected fault)
        self.close = False


class App(Protocol):
    def handle(self, request: Request) -> Response: ...
    def finished(self, request: Request, response: Response | None, label: str) -> None: ...


class _DateCache:
    """The Date header changes once a second; formatting it per request is measurable."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def get(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._value = formatdate(now, usegmt=True).encode()
            self._second = now
        return self._value


class HTTPSServer:
    def __init__(self, host: str, port: int, context: ssl.SSLContext, app: App,
                 on_error: Callable[[BaseException], None] | None = None) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server((host, port), family=family, backlog=1024)
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._context = context
        self._app = app
        self._on_error = on_error
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"emulator-accept-{self.port}", daemon=True
        )
        self._date = _DateCache()

    def start(self) -> None:
        self._accept_thread.start()

    @property
    def stopping(self) -> threading.Event:
        return self._stopping

    def stop(self, timeout: float = 0.5) -> None:
        self._stopping.set()
        try:  # wakes accept() at once on Linux; elsewhere the 0.2 s accept timeout does
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._accept_thread.join(timeout)
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            sockets = list(self._sockets)
            threads = list(self._threads)
        for sock in sockets:
            _shutdown(sock)
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))

    # ------------------------------------------------------------------ connections

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except (TimeoutError, BlockingIOError):
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                time.sleep(0.01)  # e.g. EMFILE: do not spin
                continue
            t = threading.Thread(target=self._connection, args=(conn,), daemon=True,
                                 name="emulator-conn")
            with self._lock:
                self._sockets.add(conn)
                self._threads.add(t)
            t.start()

    def _forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
            self._threads.discard(threading.current_thread())

    def _connection(self, raw: socket.socket) -> None:
        sock: socket.socket = raw
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            raw.settimeout(HANDSHAKE_TIMEOUT_S)
            if self._plain_http(raw):
                return
            sock = self._context.wrap_socket(raw, server_side=True)
            with self._lock:
                self._sockets.discard(raw)
                self._sockets.add(sock)
            if self._stopping.is_set():
                return
            sock.settimeout(None)
            self._serve(sock)
        except (OSError, ssl.SSLError, ValueError):
            pass
        except BaseException as exc:  # noqa: BLE001 - a server thread must not die loudly
            if self._on_error:
                self._on_error(exc)
        finally:
            self._forget(sock)
            self._forget(raw)
            _shutdown(sock)
            try:
                sock.close()
            except OSError:
                pass

    def _plain_http(self, raw: socket.socket) -> bool:
        """Answer a plain-HTTP request with a readable hint instead of a TLS error."""
        try:
            head = raw.recv(4, socket.MSG_PEEK)
        except OSError:
            return True
        if head[:4] not in _PLAIN_HTTP_PREFIXES:
            return not head
        body = (b"This is the bulkmeet emulator; it speaks HTTPS only. Use https:// and trust "
                b"its CA certificate (see --ca-out).\n")
        raw.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        return True

    def _serve(self, sock: socket.socket) -> None:
        rfile = sock.makefile("rb", buffering=65536)
        app = self._app
        stopping = self._stopping
        try:
            while not stopping.is_set():
                parsed = self._read_request(rfile, sock)
                if parsed is None:
                    return
                request, keep_alive = parsed
                response: Response | None = None
                try:
                    response = app.handle(request)
                except Exception as exc:  # noqa: BLE001 - answer 500, keep serving
                    if self._on_error:
                        self._on_error(exc)
                    response = Response(500, b'{"error":{"code":"InternalServerError",'
                                             b'"message":"The emulator failed; see its log."}}')
                if response.drop or stopping.is_set():
                    app.finished(request, response, "dropped")
                    return
                close = response.close or not keep_alive
                # Counted before it is sent: a client that reads the stats right after its answer
                # sees its request, and one that has gone away meanwhile is counted too.
                app.finished(request, response, str(response.status))
                sock.sendall(self._serialize(response, close))
                if close:
                    return
        finally:
            rfile.close()

    def _read_request(self, rfile, sock: socket.socket) -> tuple[Request, bool] | None:
        """One request off the connection; None when the client has gone (or was refused)."""
        try:
            line = _request_line(rfile)
            if line is None:
                return None
            method, target, version = line
            headers = _headers(rfile)
            conn_hdr = headers.get("connection", "").lower()
            if version == b"HTTP/1.1":
                keep_alive = "close" not in conn_hdr
            else:
                keep_alive = "keep-alive" in conn_hdr
            if headers.get("expect", "").lower() == "100-continue":
                sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = _body(rfile, headers)
        except _Refused as refused:
            self._reject(sock, refused.status, refused.message)
            return None
        if body is None:
            return None
        return Request(method, target, headers, body), keep_alive

    def _reject(self, sock: socket.socket, status: int, message: str) -> None:
        body = json.dumps({"error": {"code": "BadRequest", "message": message}}).encode()
        response = Response(status, body)
        try:
            sock.sendall(self._serialize(response, True))
        except OSError:
            pass

    def _serialize(self, response: Response, close: bool) -> bytes:
        status = response.status
        out = [b"HTTP/1.1 %d %s\r\nDate: %s\r\n" % (
            status, _REASONS.get(status, "Unknown").encode(), self._date.get())]
        if response.content_type:
            out.append(b"Content-Type: %s\r\n" % response.content_type.encode())
        for name, value in response.headers:
            out.append(f"{name}: {value}\r\n".encode("latin-1"))
        if close:
            out.append(b"Connection: close\r\n")
        out.append(b"Content-Length: %d\r\n\r\n" % len(response.body))
        out.append(response.body)
        return b"".join(out)


class _Refused(Exception):
    """A request the server answers with ``status`` and closes (malformed, too large)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _request_line(rfile) -> tuple[str, str, bytes] | None:
    """(method, target, version); None at the end of the connection."""
    line = rfile.readline(MAX_LINE + 1)
    while line in (b"\r\n", b"\n"):  # tolerate stray CRLF between requests (RFC 9112 2.2)
        line = rfile.readline(MAX_LINE + 1)
    if not line:
        return None
    if len(line) > MAX_LINE:
        raise _Refused(414, "Request line too long.")
    parts = line.split()
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise _Refused(400, "Malformed request line.")
    return parts[0].decode("latin-1"), parts[1].decode("latin-1"), parts[2]


def _headers(rfile) -> dict[str, str]:
    """Lower-case names; repeated headers joined with ", " (RFC 9110 5.3)."""
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        h = rfile.readline(MAX_LINE + 1)
        if h in (b"\r\n", b"\n", b""):
            return headers
        name, sep, value = h.partition(b":")
        if not sep:
            raise _Refused(400, "Malformed header line.")
        key = name.strip().lower().decode("latin-1")
        val = value.strip().decode("latin-1")
        headers[key] = f"{headers[key]}, {val}" if key in headers else val
    raise _Refused(431, "Too many headers.")


def _body(rfile, headers: dict[str, str]) -> bytes | None:
    """The body (chunked or Content-Length); None when the client went away mid-body."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return _chunked_body(rfile)
    if "content-length" not in headers:
        return b""
    try:
        length = int(headers["content-length"])
    except ValueError:
        raise _Refused(400, "Bad Content-Length.") from None
    if length < 0 or length > MAX_BODY:
        raise _Refused(413, "Request body too large.")
    if not length:
        return b""
    body = rfile.read(length)
    return body if len(body) == length else None


def _chunked_body(rfile) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        size_line = rfile.readline(MAX_LINE + 1)
        try:
            size = int(size_line.split(b";")[0].strip(), 16)
        except ValueError:
            raise _Refused(400, "Malformed chunked body.") from None
        if size == 0:
            while rfile.readline(MAX_LINE + 1) not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        total += size
        if total > MAX_BODY:
            raise _Refused(413, "Request body too large.")
        chunks.append(rfile.read(size))
        rfile.readline(MAX_LINE + 1)


def _shutdown(sock: socket.socket) -> None:
    """Wake any thread blocked on this socket; works on SSL sockets without a TLS close."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass
