"""The emulator as a Python object: options, lifecycle, routing, stats, admin endpoints, state.

Tests start one in-process (``with Emulator(EmulatorOptions()) as emu: ...``); the CLI and the
benchmarks run the same object in its own process (``bulkmeet emulator``).
"""
from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import sys
import tempfile
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bulkmeet.emulator.directory import Directory, load_directory
from bulkmeet.emulator.faults import FAULT_KINDS, Chaos, RateLimiter
from bulkmeet.emulator.graph import GraphService
from bulkmeet.emulator.httpd import HTTPSServer, Request, Response
from bulkmeet.emulator.identity import DEVICE_CODE_LIFETIME_S, IdentityService, device_login_page
from bulkmeet.emulator.state import STATE_VERSION, atomic_write_bytes, load_state
from bulkmeet.emulator.tls import (
    CA_CERT_NAME,
    CertificateAuthority,
    issue_server_certificate,
    load_or_create_ca,
    server_context,
)
from bulkmeet.emulator.tokens import GRAPH_RESOURCE, TokenService

SAVE_INTERVAL_S = 0.5
_UNSET: Any = ...


@dataclass(frozen=True)
class EmulatorOptions:
    host: str = "127.0.0.1"  # loopback only: the emulator hands out tokens
    port: int = 0  # 0 = ephemeral
    directory: Path | None = None  # None = the built-in demo directory
    latency_ms: tuple[float, float] = (0.0, 0.0)  # uniform min..max delay before Graph answers
    rate_limit: float | None = None  # requests/s per (tenant, app); None = unlimited
    fault_rate: float = 0.0  # probability of an injected fault per Graph request
    seed: int | None = None
    state_path: Path | None = None  # keep meetings, device codes, refresh tokens, keys here
    ca_dir: Path | None = None  # keep/load ca.pem + ca-key.pem here; None = a temp dir
    token_lifetime_s: int = 3600
    stall_s: float = 35.0  # how long a "stall" fault holds the response
    device_code_interval_s: int = 5  # polling interval the devicecode endpoint asks for


def check_loopback(host: str) -> str:
    if host == "localhost":
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise ValueError(f"--host '{host}' is not an IP address; the emulator listens on "
                         "loopback only (127.0.0.1 or ::1).") from None
    if not ip.is_loopback:
        raise ValueError(f"--host '{host}' is not a loopback address; the emulator hands out "
                         "tokens and listens on loopback only (127.0.0.1 or ::1).")
    return str(ip)


def parse_latency(value: Any) -> tuple[float, float]:
    """``50``, ``"10-200"``, ``(10, 200)`` -> (min, max) milliseconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo = hi = float(value)
    elif isinstance(value, str):
        text = value.strip()
        lo_s, sep, hi_s = text.partition("-")
        try:
            lo = float(lo_s)
            hi = float(hi_s) if sep else lo
        except ValueError:
            raise ValueError(f"latency '{value}' must be MIN or MIN-MAX in milliseconds, "
                             "e.g. 20 or 10-200.") from None
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        try:
            lo, hi = float(value[0]), float(value[1])
        except (TypeError, ValueError):
            raise ValueError(f"latency {value!r} must be two numbers (milliseconds).") from None
    else:
        raise ValueError(f"latency {value!r} must be MIN or MIN-MAX in milliseconds.")
    if lo < 0 or hi < lo:
        raise ValueError(f"latency {value!r}: need 0 <= MIN <= MAX (milliseconds).")
    return lo, hi


def _check_rate(rate: Any) -> float | None:
    if rate is None:
        return None
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate <= 0:
        raise ValueError(f"rate limit {rate!r} must be a number of requests/second above 0.")
    return float(rate)


def _check_fault_rate(rate: Any) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise ValueError(f"fault rate {rate!r} must be a probability between 0 and 1.")
    return float(rate)


def _check_positive(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{what} {value!r} must be a number above 0.")
    return value


class _Settings:
    """Knobs that ``configure()`` may change while the emulator runs."""

    def __init__(self, token_lifetime_s: int, stall_s: float, device_code_interval_s: int) -> None:
        self.token_lifetime_s = token_lifetime_s
        self.stall_s = stall_s
        self.device_code_interval_s = device_code_interval_s
        self.device_code_lifetime_s: float = DEVICE_CODE_LIFETIME_S


class _Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = time.time()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests = 0
            self.by_path: dict[str, dict[str, int]] = {}
            self.by_status: dict[str, int] = {}
            self.created = 0
            self.throttled = 0
            self.faults: dict[str, int] = {k: 0 for k in FAULT_KINDS}
            self.faults_after_create = 0
            self.in_flight = getattr(self, "in_flight", 0)
            self.in_flight_peak = self.in_flight
            self.token_requests = 0
            self.tokens_issued = 0

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            if self.in_flight > self.in_flight_peak:
                self.in_flight_peak = self.in_flight

    def leave(self, key: str | None, label: str) -> None:
        with self._lock:
            self.in_flight -= 1
            if key is None:
                return
            self.requests += 1
            per = self.by_path.get(key)
            if per is None:
                per = self.by_path[key] = {}
            per[label] = per.get(label, 0) + 1
            self.by_status[label] = self.by_status.get(label, 0) + 1

    def count_created(self) -> None:
        with self._lock:
            self.created += 1

    def count_throttled(self) -> None:
        with self._lock:
            self.throttled += 1

    def count_fault(self, kind: str, after: bool) -> None:
        with self._lock:
            self.faults[kind] = self.faults.get(kind, 0) + 1
            if after and kind != "stall":
                self.faults_after_create += 1

    def count_token_request(self) -> None:
        with self._lock:
            self.token_requests += 1

    def count_token_issued(self) -> None:
        with self._lock:
            self.tokens_issued += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            throttled = self.throttled
            return {
                "requests": self.requests,
                "by_path": {k: dict(v) for k, v in sorted(self.by_path.items())},
                "by_status": dict(sorted(self.by_status.items())),
                "created": self.created,
                "throttled": throttled + self.faults.get("429", 0),
                "rate_limited": throttled,
                "faults": dict(self.faults),
                "faults_after_create": self.faults_after_create,
                "in_flight": self.in_flight,
                "in_flight_peak": self.in_flight_peak,
                "token_requests": self.token_requests,
                "tokens_issued": self.tokens_issued,
                "uptime_s": round(time.time() - self._started, 3),
            }


class Emulator:
    """Microsoft Graph (onlineMeetings, users) + identity platform, on loopback HTTPS."""

    def __init__(self, options: EmulatorOptions = EmulatorOptions()) -> None:
        self.options = options
        self.host = check_loopback(options.host)
        if not 0 <= int(options.port) <= 65535:
            raise ValueError(f"port {options.port} must be between 0 and 65535.")
        latency = parse_latency(options.latency_ms)
        rate = _check_rate(options.rate_limit)
        fault_rate = _check_fault_rate(options.fault_rate)
        _check_positive(options.token_lifetime_s, "token lifetime")
        _check_positive(options.stall_s, "stall seconds")
        self.directory: Directory = load_directory(options.directory)
        saved = load_state(Path(options.state_path)) if options.state_path else {}

        self._settings = _Settings(int(options.token_lifetime_s), float(options.stall_s),
                                   int(options.device_code_interval_s))
        self._seed = options.seed
        self._stats = _Stats()
        self._limiter = RateLimiter(rate)
        self._chaos = Chaos(fault_rate, latency, options.seed)
        self._stop_event = threading.Event()
        self._dirty = threading.Event()
        self._save_lock = threading.Lock()
        self._server: HTTPSServer | None = None
        self._saver: threading.Thread | None = None
        self._stopped = False
        self._base_url = ""

        self.graph = GraphService(self, options.seed)
        self.identity = IdentityService(self)
        try:
            key_pem = saved.get("signingKeyPem")
            self.tokens = TokenService(key_pem.encode() if key_pem else None)
            saved_ca = saved.get("ca") if options.ca_dir is None else None
            ca = None
            if saved_ca:
                ca = CertificateAuthority(saved_ca["certPem"].encode(), saved_ca["keyPem"].encode())
                ca.cert, ca.key  # noqa: B018 - parse now: a damaged state file fails here
            self.graph.import_state(saved.get("meetings", []))
            self.identity.import_state(saved)
        except (KeyError, TypeError, ValueError, AttributeError, AssertionError):
            raise ValueError(
                f"{options.state_path}: the emulator state file is damaged; delete it to start "
                "with an empty tenant, or pass another --state file."
            ) from None
        self._temp_dir: Path | None = None
        if options.ca_dir is not None:
            self._ca = load_or_create_ca(Path(options.ca_dir))
            self.ca_path = Path(options.ca_dir) / CA_CERT_NAME
        else:
            self._ca = ca or load_or_create_ca(None)
            self._temp_dir = Path(tempfile.mkdtemp(prefix="bulkmeet-emulator-"))
            self.ca_path = self._temp_dir / CA_CERT_NAME
            atomic_write_bytes(self.ca_path, self._ca.cert_pem, mode=0o644)

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        if not self._base_url:
            raise RuntimeError("the emulator is not started; call start() first")
        return self._base_url

    @property
    def port(self) -> int:
        return self._server.port if self._server else 0

    def start(self) -> Emulator:
        if self._server is not None or self._stopped:
            raise RuntimeError("an Emulator object can be started once")
        cert, key = issue_server_certificate(self._ca, self.host)
        context = server_context(cert, key)
        self._server = HTTPSServer(self.host, int(self.options.port), context, self,
                                   on_error=self._report_error)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._base_url = f"https://{host}:{self._server.port}"
        self._server.start()
        if self.options.state_path:
            self._mark_dirty()  # write the keys at once, so a crash still keeps them
            self._saver = threading.Thread(target=self._save_loop, name="emulator-state", daemon=True)
            self._saver.start()
        return self

    @staticmethod
    def _report_error(exc: BaseException) -> None:
        """A bug in the emulator: one line on stderr (where it happened), and keep serving."""
        where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        place = f" at {Path(where.filename).name}:{where.lineno}" if where else ""
        print(f"bulkmeet emulator: internal error{place}: {type(exc).__name__}: {exc}",
              file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._stop_event.set()
        if self._server is not None:
            self._server.stop()
        if self._saver is not None:
            self._saver.join(1.0)
        if self.options.state_path:
            self.save_state()
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ state

    def _mark_dirty(self) -> None:
        if self.options.state_path:
            self._dirty.set()

    def _save_loop(self) -> None:
        wait = SAVE_INTERVAL_S
        while not self._stop_event.wait(wait):
            if self._dirty.is_set():
                began = time.monotonic()
                try:
                    self.save_state()
                except OSError as exc:  # keep serving; the final save at stop() tries again
                    print(f"bulkmeet emulator: cannot save state: {exc}", file=sys.stderr, flush=True)
                # A big state file must not eat the CPU the emulator needs for requests.
                wait = max(SAVE_INTERVAL_S, 10 * (time.monotonic() - began))

    def save_state(self) -> None:
        """Write meetings, pending/approved device codes, refresh tokens and keys atomically.

        Meetings are spliced in as the bytes they are stored as, so saving 100,000 of them
        costs a file write, not a re-encoding.
        """
        path = self.options.state_path
        if not path:
            return
        with self._save_lock:
            self._dirty.clear()
            data: dict[str, Any] = {
                "version": STATE_VERSION,
                "signingKeyPem": self.tokens.signing_key_pem().decode(),
            }
            data.update(self.identity.export_state())
            if self.options.ca_dir is None:
                data["ca"] = {"certPem": self._ca.cert_pem.decode(), "keyPem": self._ca.key_pem.decode()}
            head = json.dumps(data, indent=1, sort_keys=True).encode()
            meetings = b",\n".join(r.state_bytes() for r in self.graph.records())
            blob = head[:-1].rstrip() + b',\n "meetings": [\n' + meetings + b"\n]}\n"
            atomic_write_bytes(Path(path), blob)

    # ------------------------------------------------------------------ public API

    def stats(self) -> dict[str, Any]:
        out = self._stats.snapshot()
        out["meetings"] = self.graph.count()
        out["config"] = {
            "latency_ms": list(self._chaos.latency_ms), "rate_limit": self._limiter.rate,
            "fault_rate": self._chaos.fault_rate, "seed": self._seed,
            "token_lifetime_s": self._settings.token_lifetime_s, "stall_s": self._settings.stall_s,
        }
        return out

    def meetings(self) -> list[dict[str, Any]]:
        return [r.listing() for r in self.graph.records()]

    def reset(self) -> None:
        """Forget meetings, device codes, counters and throttling; re-seed the fault sequence.

        Tokens and refresh tokens stay valid, so clients need not sign in again.
        """
        self.graph.reset(self._seed)
        self.identity.reset()
        self._limiter.reset()
        self._chaos.reseed(self._seed)
        self._stats.reset()
        self._mark_dirty()

    def configure(self, *, latency_ms: Any = None, rate_limit: Any = _UNSET,
                  fault_rate: float | None = None, token_lifetime_s: int | None = None,
                  stall_s: float | None = None, seed: int | None = None,
                  device_code_interval_s: int | None = None,
                  device_code_lifetime_s: float | None = None) -> None:
        """Change knobs while running; ``rate_limit=None`` switches throttling off.

        ``seed`` restarts the fault sequence; ``device_code_lifetime_s`` (default 900) applies to
        codes issued afterwards, so a test can see ``expired_token`` without waiting 15 minutes.
        """
        # Validate everything first, so a bad value changes nothing.
        lat = parse_latency(latency_ms) if latency_ms is not None else None
        rate = _check_rate(rate_limit) if rate_limit is not _UNSET else _UNSET
        faults = _check_fault_rate(fault_rate) if fault_rate is not None else None
        if token_lifetime_s is not None and (isinstance(token_lifetime_s, bool)
                                             or not isinstance(token_lifetime_s, (int, float))):
            raise ValueError(f"token lifetime {token_lifetime_s!r} must be a number of seconds.")
        if stall_s is not None:
            _check_positive(stall_s, "stall seconds")
        if device_code_interval_s is not None:
            _check_positive(device_code_interval_s, "device code interval")
        if device_code_lifetime_s is not None and (
                isinstance(device_code_lifetime_s, bool)
                or not isinstance(device_code_lifetime_s, (int, float)) or device_code_lifetime_s < 0):
            raise ValueError(f"device code lifetime {device_code_lifetime_s!r} must be seconds >= 0.")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed {seed!r} must be an integer.")
        if lat is not None:
            self._chaos.latency_ms = lat
        if rate is not _UNSET:
            self._limiter.reset(rate)
        if faults is not None:
            self._chaos.fault_rate = faults
        if token_lifetime_s is not None:
            self._settings.token_lifetime_s = int(token_lifetime_s)
        if stall_s is not None:
            self._settings.stall_s = float(stall_s)
        if device_code_interval_s is not None:
            self._settings.device_code_interval_s = int(device_code_interval_s)
        if device_code_lifetime_s is not None:
            self._settings.device_code_lifetime_s = float(device_code_lifetime_s)
        if seed is not None:
            self._seed = seed
            self._chaos.reseed(seed)

    def approve_device_code(self, user_code: str, user: str) -> None:
        """Approve a device-code sign-in as ``user`` (UPN or object id), as a person would."""
        self.identity.approve(user_code, user)

    def issue_access_token(self, *, tenant_id: str | None = None, client_id: str | None = None,
                           user: str | None = None, scopes: list[str] | None = None,
                           roles: list[str] | None = None, lifetime_s: float | None = None,
                           audience: str = GRAPH_RESOURCE) -> str:
        """Mint a token directly, for tests (expired ones, other audiences, fewer roles).

        Defaults: the first tenant and its first app; an app token unless ``user`` is given.
        """
        tenant = self.directory.tenant(tenant_id) if tenant_id else self.directory.tenants[0]
        if tenant is None:
            raise ValueError(f"tenant {tenant_id} is not in the directory")
        app = tenant.app(client_id) if client_id else (tenant.apps[0] if tenant.apps else None)
        if app is None:
            raise ValueError(f"app {client_id} is not in tenant {tenant.id}")
        lifetime = self._settings.token_lifetime_s if lifetime_s is None else lifetime_s
        if user is not None:
            who = tenant.find_user(user)
            if who is None:
                raise ValueError(f"user {user} is not in tenant {tenant.id}")
            granted = app.delegated_scopes if scopes is None else scopes
            return self.tokens.user_token(tenant, app, who, granted, lifetime, audience=audience)
        return self.tokens.app_token(tenant, app, lifetime, audience=audience, roles=roles)

    # ------------------------------------------------------------------ HTTP entry (httpd.App)

    def handle(self, request: Request) -> Response:
        self._stats.enter()
        request.request_id = str(uuid.uuid4())
        request.client_request_id = request.headers.get("client-request-id") or str(uuid.uuid4())
        path = request.path
        if path.startswith(("/v1.0/", "/beta/")):
            segs = request.segments()
            return self.graph.handle(request, segs[0], segs[1:])
        if path.startswith("/_emulator/"):
            request.stat_key = ""
            return self._admin(request)
        segs = request.segments()
        if segs and segs[0] == "devicelogin":
            request.stat_key = f"{request.method} /devicelogin"
            return Response(200, device_login_page(self.base_url), content_type="text/html; charset=utf-8")
        if segs and segs[0] and segs[0] not in ("v1.0", "beta"):
            return self.identity.handle(request, segs)
        request.stat_key = f"{request.method} (unknown path)"
        return Response(404, json.dumps({"error": {
            "code": "NotFound", "message": f"No such endpoint: {request.path}",
            "innerError": {"request-id": request.request_id,
                           "client-request-id": request.client_request_id}}}).encode(),
            [("request-id", request.request_id), ("client-request-id", request.client_request_id)])

    def finished(self, request: Request, response: Response | None, label: str) -> None:
        self._stats.leave(request.stat_key or None, label)

    # ------------------------------------------------------------------ admin endpoints

    def _admin(self, request: Request) -> Response:
        route = (request.method, request.path.rstrip("/"))
        try:
            if route == ("GET", "/_emulator/stats"):
                return _json(200, self.stats())
            if route == ("GET", "/_emulator/meetings"):
                return _json(200, self.meetings())
            if route == ("GET", "/_emulator/health"):
                return _json(200, {"ok": True})
            if route == ("POST", "/_emulator/reset"):
                self.reset()
                return _json(200, {"ok": True})
            if route == ("POST", "/_emulator/config"):
                body = _admin_body(request)
                allowed = {"latency_ms", "rate_limit", "fault_rate", "token_lifetime_s", "stall_s",
                           "seed", "device_code_interval_s", "device_code_lifetime_s"}
                unknown = sorted(set(body) - allowed)
                if unknown:
                    raise ValueError(f"unknown setting(s) {', '.join(unknown)}; known: "
                                     f"{', '.join(sorted(allowed))}")
                self.configure(**body)
                return _json(200, self.stats()["config"])
            if route == ("POST", "/_emulator/devicecode/approve"):
                body = _admin_body(request)
                code, user = body.get("user_code"), body.get("user")
                if not isinstance(code, str) or not isinstance(user, str):
                    raise ValueError('send {"user_code": "...", "user": "UPN or object id"}')
                try:
                    self.approve_device_code(code, user)
                except LookupError as exc:
                    return _json(404, {"error": str(exc)})
                return _json(200, {"ok": True})
        except (ValueError, TypeError) as exc:
            return _json(400, {"error": str(exc)})
        return _json(404, {"error": f"no admin endpoint {request.method} {request.path}"})


def _json(status: int, payload: Any) -> Response:
    return Response(status, json.dumps(payload, separators=(",", ":")).encode())


def _admin_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        raise ValueError("the body must be JSON") from None
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def free_port_hint(host: str, port: int) -> str:
    """A sentence for 'address in use' that names the port."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return f"port {port} on {host} is already in use (another emulator?); pick another --port or 0."
    except OSError:
        return f"cannot listen on {host}:{port}."
