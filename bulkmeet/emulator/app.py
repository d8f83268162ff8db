"""The emulator as a Python object: lifecycle, routing, stats, admin endpoints, state.

Tests start one in-process (``with Emulator(EmulatorOptions()) as emu: ...``); the CLI and the
benchmarks run the same object in its own process (``bulkmeet emulator``). The services (Graph,
identity) get a narrow ``Context`` (clock, settings, counters, persistence) built before them,
never this object.
"""
from __future__ import annotations

import json
import shutil
import socket
import sys
import tempfile
import threading
import traceback
import uuid
from pathlib import Path
from typing import Any

from bulkmeet.emulator.context import Clock, Context, NoPersist, Settings, Stats
from bulkmeet.emulator.directory import Directory, load_directory
from bulkmeet.emulator.faults import FAULT_KINDS, Chaos
from bulkmeet.emulator.graph import GraphService
from bulkmeet.emulator.httpd import HTTPSServer, Request, Response
from bulkmeet.emulator.identity import DEVICE_CODE_LIFETIME_S, IdentityService
from bulkmeet.emulator.oidc import device_login_page
from bulkmeet.emulator.options import (
    EmulatorOptions,
    check_bool,
    check_fault_rate,
    check_loopback,
    check_policy_code,
    check_positive,
    check_rate,
    parse_latency,
)
from bulkmeet.emulator.state import (
    STATE_VERSION,
    Journal,
    StateFileError,
    StateWriteError,
    cannot_write,
    journal_path,
    load_state,
    write_file,
)
from bulkmeet.emulator.throttle import Throttle, ThrottleOptions
from bulkmeet.emulator.tls import (
    CA_CERT_NAME,
    CertificateAuthority,
    issue_server_certificate,
    load_or_create_ca,
    server_context,
)
from bulkmeet.emulator.tokens import GRAPH_RESOURCE, TokenService

__all__ = ["Emulator", "EmulatorOptions", "check_loopback", "free_port_hint", "parse_latency"]

_UNSET: Any = ...
THROTTLE_KEYS = ("rate_limit", "burst", "per_organizer_rate", "early_penalty_s",
                 "ratelimit_headers", "meeting_cap", "cap_error")
CONFIG_KEYS = frozenset({"latency_ms", "fault_rate", "token_lifetime_s", "stall_s", "seed",
                         "device_code_interval_s", "device_code_lifetime_s", "helpful_errors",
                         "policy_error_code", *THROTTLE_KEYS})


def _throttle_options(rate_limit: Any, burst: Any, per_organizer_rate: Any, early_penalty_s: Any,
                      ratelimit_headers: Any, meeting_cap: Any, cap_error: Any) -> ThrottleOptions:
    return ThrottleOptions(rate=check_rate(rate_limit), burst=check_rate(burst, "burst"),
                           per_organizer_rate=check_rate(per_organizer_rate, "per-organizer rate"),
                           early_penalty_s=early_penalty_s,
                           ratelimit_headers=check_bool(ratelimit_headers, "ratelimit headers"),
                           meeting_cap=meeting_cap, cap_error=str(cap_error)).checked()


def _checked_knobs(options: EmulatorOptions) -> tuple[tuple[float, float], float, Throttle]:
    """Every option checked before anything is built: (latency, fault rate, throttle)."""
    if not 0 <= int(options.port) <= 65535:
        raise ValueError(f"port {options.port} must be between 0 and 65535.")
    latency = parse_latency(options.latency_ms)
    fault_rate = check_fault_rate(options.fault_rate)
    throttle = Throttle(_throttle_options(**{k: getattr(options, k) for k in THROTTLE_KEYS}))
    check_positive(options.token_lifetime_s, "token lifetime")
    check_positive(options.stall_s, "stall seconds")
    check_bool(options.helpful_errors, "helpful errors")
    check_policy_code(options.policy_error_code)
    return latency, fault_rate, throttle


class Emulator:
    """Microsoft Graph (onlineMeetings, users, $batch) + identity platform, on loopback HTTPS."""

    def __init__(self, options: EmulatorOptions = EmulatorOptions()) -> None:
        self.options = options
        self.host = check_loopback(options.host)
        latency, fault_rate, throttle = _checked_knobs(options)
        self.directory: Directory = load_directory(options.directory)
        state_path = Path(options.state_path) if options.state_path else None
        saved = load_state(state_path) if state_path else {}

        self.clock = Clock()
        self.clock.advance(options.clock_offset_s)
        self._seed = options.seed
        self._stop_event = threading.Event()
        self._journal: Journal | None = Journal(journal_path(state_path)) if state_path else None
        self._server: HTTPSServer | None = None
        self._stopped = False
        self._base_url = ""
        try:
            saved_ca = self._restore(saved, throttle, Chaos(fault_rate, latency, options.seed))
        except (KeyError, TypeError, ValueError, AttributeError, AssertionError):
            if self._journal is not None:
                self._journal.close()
            raise StateFileError(
                f"{options.state_path}: the emulator state file is damaged; delete it to start "
                "with an empty tenant, or pass another --state file."
            ) from None
        self._temp_dir: Path | None = None
        if options.ca_dir is not None:
            self._ca = load_or_create_ca(Path(options.ca_dir))
            self.ca_path = Path(options.ca_dir) / CA_CERT_NAME
        else:
            self._ca = saved_ca or load_or_create_ca(None)
            self._temp_dir = Path(tempfile.mkdtemp(prefix="bulkmeet-emulator-"))
            self.ca_path = self._temp_dir / CA_CERT_NAME
            write_file(self.ca_path, self._ca.cert_pem, mode=0o644)

    def _restore(self, saved: dict[str, Any], throttle: Throttle, chaos: Chaos
                 ) -> CertificateAuthority | None:
        """Build the services around the saved state; returns the saved CA, if one is kept.

        Anything malformed in ``saved`` raises here (KeyError, TypeError, ...): a damaged file.
        """
        options = self.options
        key_pem = saved.get("signingKeyPem")
        self.tokens = TokenService(key_pem.encode() if key_pem else None, self.clock.time)
        self.ctx = Context(
            clock=self.clock,
            settings=Settings(int(options.token_lifetime_s), float(options.stall_s),
                              int(options.device_code_interval_s), float(DEVICE_CODE_LIFETIME_S),
                              options.helpful_errors),
            stats=Stats(self.clock), stop=self._stop_event, base_url=lambda: self.base_url,
            persist=self._journal or NoPersist())
        self.graph = GraphService(self.ctx, self.directory, self.tokens, throttle, chaos,
                                  options.seed, options.policy_error_code)
        self.identity = IdentityService(self.ctx, self.directory, self.tokens)
        saved_ca = saved.get("ca") if options.ca_dir is None else None
        ca = None
        if saved_ca:
            ca = CertificateAuthority(saved_ca["certPem"].encode(), saved_ca["keyPem"].encode())
            _ = ca.cert, ca.key  # parse now: a damaged state file fails here
        self.graph.import_state(saved.get("meetings", []))
        self.identity.import_state(saved)
        return ca

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
        if self.options.state_path:
            try:
                self.save_state()  # compact what was loaded, keep the keys from the first moment
            except StateWriteError:
                self._discard()  # what was loaded stays on disk as it was
                raise
        cert, key = issue_server_certificate(self._ca, self.host)
        context = server_context(cert, key)
        self._server = HTTPSServer(self.host, int(self.options.port), context, self,
                                   on_error=self._report_error)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._base_url = f"https://{host}:{self._server.port}"
        self._server.start()
        return self

    @staticmethod
    def _report_error(exc: BaseException) -> None:
        """A bug in the emulator: one line on stderr (where it happened), and keep serving.

        A journal the disk refuses is no bug: its own sentence (the client got a 500).
        """
        if isinstance(exc, StateWriteError):
            print(f"bulkmeet emulator: {exc}", file=sys.stderr, flush=True)
            return
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
        if self._journal is not None:
            try:
                self.save_state()
                self._journal.close(remove=True)
            except OSError as exc:  # the journal still holds every change: nothing is lost
                print(f"bulkmeet emulator: {exc}", file=sys.stderr, flush=True)
                self._journal.close()
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)

    def _discard(self) -> None:
        """Give back the journal and the temporary folder without saving (a failed start)."""
        self._stopped = True
        if self._journal is not None:
            self._journal.close()
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ state

    def save_state(self) -> None:
        """Compact: write everything to the snapshot atomically, then empty the journal.

        Meetings are spliced in as the bytes they are stored as, so saving 100,000 of them
        costs a file write, not a re-encoding. A crash between the two steps only replays
        changes the snapshot already has (replaying is idempotent).
        """
        path = self.options.state_path
        if not path:
            return
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
        try:
            write_file(Path(path), blob)
        except OSError as exc:
            raise cannot_write(Path(path), "the emulator state file", exc) from None
        if self._journal is not None:
            self._journal.truncate()

    # ------------------------------------------------------------------ public API

    def stats(self) -> dict[str, Any]:
        out = self.ctx.stats.snapshot(FAULT_KINDS)
        out["meetings"] = self.graph.count()
        out["journal_fsyncs"] = self._journal.fsyncs if self._journal else 0
        t = self.graph.throttle.options
        chaos = self.graph.chaos
        s = self.ctx.settings
        out["config"] = {
            "latency_ms": list(chaos.latency_ms), "rate_limit": t.rate, "burst": t.burst,
            "per_organizer_rate": t.per_organizer_rate, "early_penalty_s": t.early_penalty_s,
            "ratelimit_headers": t.ratelimit_headers, "meeting_cap": t.meeting_cap,
            "cap_error": t.cap_error, "fault_rate": chaos.fault_rate, "seed": self._seed,
            "token_lifetime_s": s.token_lifetime_s, "stall_s": s.stall_s,
            "helpful_errors": s.helpful_errors, "policy_error_code": self.graph.policy_code,
            "clock_offset_s": self.clock.offset,
        }
        return out

    def meetings(self) -> list[dict[str, Any]]:
        return [r.listing() for r in self.graph.records()]

    def reset(self) -> None:
        """Forget meetings, device codes, counters and throttling; re-seed the fault sequence.

        Tokens and refresh tokens stay valid, so clients need not sign in again.
        """
        self.ctx.persist.sync(self.ctx.persist.write({"op": "reset"}))
        self.graph.reset(self._seed)
        self.identity.reset()
        self.graph.chaos.reseed(self._seed)
        self.ctx.stats.reset()

    def advance_clock(self, seconds: float) -> float:
        """Move emulated time forward (tokens age, Retry-After windows pass); returns the offset."""
        return self.clock.advance(seconds)

    def configure(self, *, latency_ms: Any = None, fault_rate: float | None = None,
                  token_lifetime_s: int | None = None, stall_s: float | None = None,
                  seed: int | None = None, device_code_interval_s: int | None = None,
                  device_code_lifetime_s: float | None = None, helpful_errors: bool | None = None,
                  policy_error_code: str | None = None, **throttle: Any) -> None:
        """Change knobs while running; ``rate_limit=None`` switches throttling off.

        Throttle knobs: ``rate_limit``, ``burst``, ``per_organizer_rate``, ``early_penalty_s``,
        ``ratelimit_headers``, ``meeting_cap`` (None = off), ``cap_error``. ``seed`` restarts the
        fault sequence; ``device_code_lifetime_s`` (default 900) applies to codes issued later.
        """
        # Validate everything first, so a bad value changes nothing.
        unknown = sorted(set(throttle) - set(THROTTLE_KEYS))
        if unknown:
            raise TypeError(f"unknown setting(s) {', '.join(unknown)}")
        lat = parse_latency(latency_ms) if latency_ms is not None else None
        faults = check_fault_rate(fault_rate) if fault_rate is not None else None
        new_throttle = None
        if throttle:
            now = self.graph.throttle.options
            current = {"rate_limit": now.rate, **{k: getattr(now, k) for k in THROTTLE_KEYS[1:]}}
            current.update(throttle)
            new_throttle = _throttle_options(**current)
        if token_lifetime_s is not None:
            check_positive(token_lifetime_s, "token lifetime")
        if stall_s is not None:
            check_positive(stall_s, "stall seconds")
        if device_code_interval_s is not None:
            check_positive(device_code_interval_s, "device code interval")
        if device_code_lifetime_s is not None and (
                isinstance(device_code_lifetime_s, bool)
                or not isinstance(device_code_lifetime_s, (int, float)) or device_code_lifetime_s < 0):
            raise ValueError(f"device code lifetime {device_code_lifetime_s!r} must be seconds >= 0.")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed {seed!r} must be an integer.")
        if helpful_errors is not None:
            check_bool(helpful_errors, "helpful errors")
        if policy_error_code is not None:
            check_policy_code(policy_error_code)
        self._apply(lat, faults, new_throttle, token_lifetime_s, stall_s, seed,
                    device_code_interval_s, device_code_lifetime_s, helpful_errors, policy_error_code)

    def _apply(self, lat: Any, faults: Any, throttle: ThrottleOptions | None, token_lifetime_s: Any,
               stall_s: Any, seed: Any, interval: Any, lifetime: Any, helpful: Any,
               policy_code: Any) -> None:
        chaos, s = self.graph.chaos, self.ctx.settings
        if lat is not None:
            chaos.latency_ms = lat
        if faults is not None:
            chaos.fault_rate = faults
        if throttle is not None:
            self.graph.throttle.reset(throttle, counts=False)
        if token_lifetime_s is not None:
            s.token_lifetime_s = int(token_lifetime_s)
        if stall_s is not None:
            s.stall_s = float(stall_s)
        if interval is not None:
            s.device_code_interval_s = int(interval)
        if lifetime is not None:
            s.device_code_lifetime_s = float(lifetime)
        if helpful is not None:
            s.helpful_errors = helpful
        if policy_code is not None:
            self.graph.policy_code = policy_code
        if seed is not None:
            self._seed = seed
            chaos.reseed(seed)

    def approve_device_code(self, user_code: str, user: str) -> None:
        """Approve a device-code sign-in as ``user`` (UPN or object id), as a person would."""
        self.identity.approve(user_code, user)

    def deny_device_code(self, user_code: str, error: str = "authorization_declined") -> None:
        """The next poll for this code gets ``error`` (authorization_declined,
        bad_verification_code or expired_token)."""
        self.identity.deny(user_code, error)

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
        lifetime = self.ctx.settings.token_lifetime_s if lifetime_s is None else lifetime_s
        if user is not None:
            who = tenant.find_user(user)
            if who is None:
                raise ValueError(f"user {user} is not in tenant {tenant.id}")
            granted = app.delegated_scopes if scopes is None else scopes
            return self.tokens.user_token(tenant, app, who, granted, lifetime, audience=audience)
        return self.tokens.app_token(tenant, app, lifetime, audience=audience, roles=roles)

    # ------------------------------------------------------------------ HTTP entry (httpd.App)

    def handle(self, request: Request) -> Response:
        self.ctx.stats.enter()
        request.request_id = str(uuid.uuid4())
        request.client_request_id = request.headers.get("client-request-id") or str(uuid.uuid4())
        path = request.path
        if path.startswith(("/v1.0/", "/beta/")):
            segs = request.segments()
            return self.graph.handle(request, segs[0], segs[1:])
        if path.startswith("/_emulator/"):
            request.stat_key = ""
            from bulkmeet.emulator.admin import handle_admin

            return handle_admin(self, request)
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
        self.ctx.stats.leave(request.stat_key or None, label)


def free_port_hint(host: str, port: int) -> str:
    """A sentence for 'address in use' that names the port."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return f"port {port} on {host} is already in use (another emulator?); pick another --port or 0."
    except OSError:
        return f"cannot listen on {host}:{port}."
