"""``bulkmeet emulator``: run the Graph + identity emulator until SIGTERM/SIGINT.

Scripts wait for ``--ready-file`` (JSON with base_url, ca_path and pid, written atomically once
the server listens) instead of parsing output; people read the banner.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from bulkmeet.emulator.app import Emulator, EmulatorOptions, free_port_hint, parse_latency
from bulkmeet.emulator.directory import DEMO_DIRECTORY, DirectoryError
from bulkmeet.emulator.state import StateWriteError, write_file


class _OneLineErrors(click.Command):
    """Bad options end in one clear line and exit status 2, not a usage screen."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            _fail(ctx, exc.format_message())
            raise  # pragma: no cover - _fail exits


def _fail(ctx: click.Context, message: str) -> None:
    click.echo(f"bulkmeet emulator: error: {message}", err=True)
    ctx.exit(2)


def _describe_policy(policy: Any) -> str:
    if policy is None:
        return "no access policy (app-token createOrGet gets 403)"
    if policy == "global":
        return "access policy: global"
    return f"access policy: {len(policy)} user(s)"


@click.command(
    "emulator", cls=_OneLineErrors,
    help="Run a local Microsoft Graph + identity emulator (HTTPS on loopback) for tests and demos.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port; 0 picks a free one (see the first output line or --ready-file).")
@click.option("--directory", "directory", type=click.Path(dir_okay=False, path_type=Path),
              help="Directory JSON (tenants, users, apps, access policies). Default: the built-in demo.")
@click.option("--latency-ms", metavar="MIN[-MAX]", help="Delay before each Graph answer, fixed or uniform.")
@click.option("--rate-limit", type=float, metavar="R",
              help="Hidden limit: requests/second per (tenant, app); above it 429 + Retry-After only.")
@click.option("--burst", type=click.FloatRange(0, min_open=True), metavar="N",
              help="Token-bucket size for --rate-limit (default: one second's worth).")
@click.option("--per-organizer-rate", type=click.FloatRange(0, min_open=True), metavar="R",
              help="Also limit requests/second per (tenant, app, organizer).")
@click.option("--early-penalty", type=click.FloatRange(0), default=0.0, metavar="SECONDS",
              help="A client back before Retry-After gets its window pushed out this much more.")
@click.option("--ratelimit-headers", is_flag=True,
              help="Send RateLimit-* on meeting calls (SharePoint-style, past 80% of the budget).")
@click.option("--meeting-cap", type=click.IntRange(0), default=2000, show_default=True, metavar="N",
              help="Meetings per organizer per calendar month; 0 = no cap.")
@click.option("--cap-error", type=click.Choice(["429", "403"]), default="429", show_default=True,
              help="Answer at the cap (not documented by Microsoft): 429 without Retry-After, or 403.")
@click.option("--policy-error-code", type=click.Choice(["random", "Forbidden", "General"]),
              default="random", show_default=True,
              help="Code of the access-policy 403 (both are seen in the wild; random = seeded mix).")
@click.option("--helpful-errors", is_flag=True,
              help="Explain errors in their messages (default: Graph's terse 'An error has occurred.').")
@click.option("--fault-rate", type=click.FloatRange(0, 1), default=0.0,
              help="Probability of an injected fault (429/5xx/drop/stall) per Graph request.")
@click.option("--seed", type=int, help="Seed for faults, latency and meeting values (reproducible runs).")
@click.option("--ca-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the CA certificate here; clients trust it (graph.ca_bundle).")
@click.option("--state", "state", type=click.Path(dir_okay=False, path_type=Path),
              help="Keep meetings, device codes and keys in this file across restarts.")
@click.option("--token-lifetime", type=click.IntRange(1), default=3600, show_default=True,
              metavar="SECONDS", help="Access-token lifetime.")
@click.option("--stall-seconds", type=click.FloatRange(0, min_open=True), default=35.0,
              show_default=True, help="How long a 'stall' fault holds its response.")
@click.option("--device-code-interval", type=click.IntRange(1), default=5, show_default=True,
              help="Polling interval (s) the device-code endpoint asks clients for.")
@click.option("--ready-file", type=click.Path(dir_okay=False, path_type=Path),
              help='Once listening, write {"base_url", "ca_path", "pid"} here (atomically).')
@click.pass_context
def emulator(ctx: click.Context, host: str, port: int, directory: Path | None,
             latency_ms: str | None, rate_limit: float | None, burst: float | None,
             per_organizer_rate: float | None, early_penalty: float, ratelimit_headers: bool,
             meeting_cap: int, cap_error: str, policy_error_code: str, helpful_errors: bool,
             fault_rate: float, seed: int | None, ca_out: Path | None, state: Path | None, token_lifetime: int,
             stall_seconds: float, device_code_interval: int, ready_file: Path | None) -> None:
    try:
        latency = parse_latency(latency_ms) if latency_ms else (0.0, 0.0)
        if rate_limit is not None and rate_limit <= 0:
            raise ValueError(f"--rate-limit {rate_limit} must be above 0 (leave it out for no limit).")
        options = EmulatorOptions(
            host=host, port=port, directory=directory, latency_ms=latency, rate_limit=rate_limit,
            burst=burst, per_organizer_rate=per_organizer_rate, early_penalty_s=early_penalty,
            ratelimit_headers=ratelimit_headers, meeting_cap=meeting_cap or None,
            cap_error=cap_error, policy_error_code=policy_error_code, helpful_errors=helpful_errors,
            fault_rate=fault_rate, seed=seed, state_path=state, token_lifetime_s=token_lifetime,
            stall_s=stall_seconds, device_code_interval_s=device_code_interval,
        )
        emu = Emulator(options)
    except (ValueError, DirectoryError, StateWriteError) as exc:
        _fail(ctx, str(exc))
        return
    try:
        emu.start()
    except StateWriteError as exc:  # --state on a full disk: not a port problem
        _fail(ctx, str(exc))
        return
    except OSError:
        emu.stop()  # removes its temporary CA folder
        _fail(ctx, free_port_hint(emu.host, port))
        return

    stop = threading.Event()
    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
        except ValueError:  # not the main thread (embedded use): rely on KeyboardInterrupt
            pass
    try:
        _announce(emu, ca_out, directory, state, ready_file)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        emu.stop()
        _fail(ctx, f"cannot write {exc.filename}: {exc.strerror}.")
    finally:
        emu.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo(f"bulkmeet emulator stopped ({emu.graph.count()} meetings"
               + (f", saved to {state}" if state else ", not kept: no --state") + ").", err=True)


def _announce(emu: Emulator, ca_out: Path | None, directory: Path | None, state: Path | None,
              ready_file: Path | None) -> None:
    """The CA copy for clients, the banner for people, then the ready file for scripts."""
    ca_path = emu.ca_path
    if ca_out is not None:
        write_file(ca_out, emu.ca_path.read_bytes(), mode=0o644)
        ca_path = ca_out
    click.echo(f"bulkmeet emulator listening on {emu.base_url}")
    sys.stdout.flush()
    _banner(emu, ca_path, directory, state)
    if ready_file is not None:
        payload = {"base_url": emu.base_url, "ca_path": str(Path(ca_path).resolve()),
                   "pid": os.getpid()}
        write_file(ready_file, json.dumps(payload).encode(), mode=0o644)


def _banner(emu: Emulator, ca_path: Path, directory: Path | None, state: Path | None) -> None:
    d = emu.directory
    source = directory if directory is not None else f"built-in demo ({DEMO_DIRECTORY})"
    lines = [f"  directory: {source}"]
    for tenant in d.tenants:
        lines.append(f"  tenant {tenant.id} ({tenant.display_name}): {len(tenant.users)} users")
        for app in tenant.apps:
            creds = [c for c, on in (("secret", app.secret), ("certificate", app.certificates),
                                      ("public client", app.public_client)) if on]
            lines.append(f"    app {app.client_id} ({app.display_name}): "
                         f"{', '.join(creds) or 'no credentials'}; roles "
                         f"{', '.join(sorted(app.roles)) or 'none'}; {_describe_policy(app.access_policy)}")
    lines.append(f"  CA certificate: {ca_path}  (clients verify TLS against it)")
    lines.append(f"  identity: {emu.base_url}/<tenant id>   Graph: {emu.base_url}/v1.0 and /beta")
    if state:
        lines.append(f"  state: {state} ({emu.graph.count()} meetings loaded)")
    s = emu.stats()["config"]
    knobs = []
    if s["rate_limit"]:
        knobs.append(f"hidden rate limit {s['rate_limit']:g}/s per app")
    if s["per_organizer_rate"]:
        knobs.append(f"{s['per_organizer_rate']:g}/s per organizer")
    if s["ratelimit_headers"]:
        knobs.append("RateLimit-* headers past 80%")
    if s["helpful_errors"]:
        knobs.append("helpful error messages")
    if s["fault_rate"]:
        knobs.append(f"fault rate {s['fault_rate']:g}")
    if s["latency_ms"][1]:
        knobs.append("latency {:g}-{:g} ms".format(*s["latency_ms"]))
    if s["seed"] is not None:
        knobs.append(f"seed {s['seed']}")
    if knobs:
        lines.append("  " + "; ".join(knobs))
    lines.append("  stop with Ctrl+C or SIGTERM")
    click.echo("\n".join(lines))
    sys.stdout.flush()
