"""The command line. It parses arguments, sets up logging and signals, and calls the library.

Exit statuses: ``bulkmeet.errors.ExitStatus`` (shown by `bulkmeet --help` and in the README).
"""
from __future__ import annotations

import logging
import logging.handlers
import os
import signal
import sys
import threading
from contextlib import nullcontext
from pathlib import Path

import click

from bulkmeet import __version__
from bulkmeet.cells import printable
from bulkmeet.config import Config, load_config
from bulkmeet.errors import BulkmeetError, ConfigError, ExitStatus, InputError, exit_status_help
from bulkmeet.paths import check_readable_file, check_run_paths

log = logging.getLogger("bulkmeet")

EXIT_HELP = exit_status_help()  # generated from ExitStatus, the one home of that text


class _PrintableFormatter(logging.Formatter):
    """Terminal lines with control characters escaped (a cell's ESC sequence stays inert)."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


def _setup_logging(quiet: bool, log_file: str | None) -> None:
    root = logging.getLogger("bulkmeet")
    root.handlers.clear()
    root.setLevel(logging.DEBUG)  # details (e.g. a bug's traceback) go to the log file only
    root.propagate = False
    handler = logging.StreamHandler(sys.stderr)
    tty = sys.stderr.isatty()
    handler.setFormatter(_PrintableFormatter("%(message)s" if tty else
                                             "%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.WARNING if quiet else logging.INFO)
    root.addHandler(handler)
    if log_file:
        path = Path(os.path.expanduser(log_file))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = logging.handlers.RotatingFileHandler(path, maxBytes=5_000_000, backupCount=5,
                                                      encoding="utf-8")
        except OSError as exc:
            root.removeHandler(handler)
            raise InputError(f"Cannot write the log file {path} ({exc.strerror or exc}): make "
                             "its folder writable, or choose another file with --log-file (or "
                             "[run] log_file).") from None
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        fh.setLevel(logging.DEBUG)
        root.addHandler(fh)


def _config_path(schedule: Path, config: str | None) -> Path:
    if config:
        return Path(config)
    beside = schedule.parent / "bulkmeet.toml"
    if beside.exists():
        return beside
    here = Path("bulkmeet.toml")
    if here.exists():
        return here
    raise ConfigError(
        f"No config given and no bulkmeet.toml beside {schedule} or in this folder: pass "
        f"--config FILE, or create one with `bulkmeet init {schedule}`.")


def _schedule(path: str) -> Path:
    p = Path(path)
    check_readable_file(p, "schedule file")  # a FIFO would hang the run for ever
    return p


def _maybe_emulator(use: bool, schedule: Path, cfg: Config, directory: str | None = None):
    if directory and not use:
        raise ConfigError("--directory is for --emulator runs: add --emulator, or leave "
                          "--directory out to use the real tenant.")
    if not use:
        return nullcontext(cfg)
    from bulkmeet.embedded import embedded_emulator, state_path

    log.info("starting the embedded emulator (state kept in %s)", state_path(schedule))
    return embedded_emulator(schedule, cfg, Path(directory) if directory else None)


class _Stopper:
    """First SIGINT/SIGTERM: stop taking rows, finish in-flight ones, write everything.
    Second: leave at once (every finished row is already in the journal)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._old: dict[int, object] = {}

    def __enter__(self) -> _Stopper:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.event.is_set():
            sys.stderr.write("bulkmeet: stopped at once; finished rows are in the journal.\n")
            sys.stderr.flush()
            os._exit(ExitStatus.INTERRUPTED)
        self.event.set()
        log.warning("%s received: finishing requests in flight, then writing the output "
                    "(send it again to stop at once)", signal.Signals(signum).name)

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)  # type: ignore[arg-type]


class _Commands(click.Group):
    """Loads `bulkmeet emulator` only when asked for: a nightly run never pays for its imports."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), "emulator"})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name == "emulator":
            from bulkmeet.emulator.command import emulator

            return emulator
        return super().get_command(ctx, name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=EXIT_HELP)
@click.version_option(__version__, prog_name="bulkmeet")
def cli() -> None:
    """Create Microsoft Teams meetings in bulk from a class schedule (CSV or Excel)."""


@cli.command(epilog=EXIT_HELP)
@click.argument("schedule", type=click.Path(dir_okay=False))
@click.option("--config", "-c", "config_path", metavar="FILE",
              help="Mapping config (TOML). Default: bulkmeet.toml beside the schedule.")
@click.option("--output", "-o", metavar="FILE",
              help="Output sheet (.xlsx or .csv). Default: NAME.results.xlsx beside the schedule.")
@click.option("--sheet", metavar="NAME", help="Worksheet to read (xlsx). Default: the first.")
@click.option("--concurrency", type=click.IntRange(1, 64), metavar="N",
              help="Requests in flight to start with (default from config, else 4); bulkmeet "
                   "adapts it to Graph's answers, up to [run] max_concurrency (default 32).")
@click.option("--dry-run", is_flag=True,
              help="Plan and validate every row and write the output with the request each row "
                   "would send; call nothing.")
@click.option("--full", "mode", flag_value="full",
              help="Send every row again, even those done before (safe: createOrGet is idempotent).")
@click.option("--retry-failed", "mode", flag_value="retry-failed",
              help="Send only rows that failed in earlier runs.")
@click.option("--cancel-removed", is_flag=True,
              help="Cancel (delete) the meetings of rows that left the sheet; without it they "
                   "are reported as orphaned. Also [sync] cancel_removed = true.")
@click.option("--max-cancel", type=click.IntRange(0), metavar="N",
              help="Allow up to N cancels this once, past the safety limit ([sync] "
                   "max_cancel_percent / max_cancel_count); implies --cancel-removed.")
@click.option("--journal", metavar="FILE",
              help="Journal of results. Default: NAME.journal.sqlite beside the schedule.")
@click.option("--emulator", is_flag=True,
              help="Start the embedded Graph emulator and run against it (demo, no Azure needed).")
@click.option("--directory", "directory", metavar="FILE", type=click.Path(dir_okay=False),
              help="With --emulator: your own tenant (users, app, access policy) in the "
                   "emulator's directory format, instead of the demo tenant.")
@click.option("--quiet", "-q", is_flag=True, help="Only warnings, errors and the summary line.")
@click.option("--log-file", metavar="FILE", help="Also log to FILE (rotated at 5 MB, 5 kept).")
@click.option("--summary-json", metavar="FILE", help="Write the run summary as JSON (monitoring).")
@click.option("--calendar", "calendars", metavar="DIR",
              help=".ics calendars, one per organizer and per section. Default: [publish] "
                   "calendars, else NAME.calendars beside the output.")
@click.option("--handouts", metavar="DIR",
              help="A workbook per organizer and mail-merge.csv. Default: [publish] handouts, "
                   "else NAME.handouts beside the output.")
@click.option("--report", "run_report", metavar="FILE",
              help="The one-page HTML run report. Default: NAME.results.html beside the output.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar (default: only on a terminal).")
@click.pass_context
def run(ctx: click.Context, schedule: str, config_path: str | None, output: str | None,
        sheet: str | None, concurrency: int | None, dry_run: bool, mode: str | None,
        cancel_removed: bool, max_cancel: int | None,
        journal: str | None, emulator: bool, directory: str | None, quiet: bool,
        log_file: str | None, summary_json: str | None, calendars: str | None,
        handouts: str | None, run_report: str | None, progress: bool | None) -> int:
    """Create or find one Teams meeting per row of SCHEDULE and write the output sheet."""
    from dataclasses import replace

    from bulkmeet.pipeline import NORMAL, RunOptions, run_import, write_targets
    from bulkmeet.progress import for_stream

    sched = _schedule(schedule)
    cfg = load_config(_config_path(sched, config_path))
    options = RunOptions(
        schedule=sched, config=cfg, output=Path(output) if output else None, sheet=sheet,
        concurrency=concurrency, dry_run=dry_run, mode=mode or NORMAL,
        journal=Path(journal) if journal else None,
        summary_json=Path(summary_json) if summary_json else None,
        argv=tuple(sys.argv[1:]), cancel_removed=cancel_removed, max_cancel=max_cancel,
        calendars=Path(calendars) if calendars else None,
        handouts=Path(handouts) if handouts else None,
        report=Path(run_report) if run_report else None,
    )
    # Before the log file is opened (it could be the schedule itself) and before any meeting.
    check_run_paths(sched, write_targets(options, log_file or cfg.run.log_file))
    _setup_logging(quiet, log_file or cfg.run.log_file)
    with _maybe_emulator(emulator and not dry_run, sched, cfg, None if dry_run else directory
                         ) as cfg, _Stopper() as stopper:
        options = replace(options, config=cfg)
        result = run_import(options, stop=stopper.event,
                            progress=for_stream(sys.stderr, enabled=progress))
    for note in result.summary.notes:
        log.warning("%s", note)
    click.echo(result.summary.line())
    if not quiet:  # --quiet: warnings, errors and the summary line only (cron mail)
        click.echo(f"Output: {result.output}")
        if result.published is not None:
            for label, path in result.published.paths():
                click.echo(f"{label}: {path}")
    return result.exit_status


@cli.command(epilog=EXIT_HELP)
@click.argument("schedule", type=click.Path(dir_okay=False))
@click.option("--config", "-c", "config_path", metavar="FILE", help="Mapping config (TOML).")
@click.option("--sheet", metavar="NAME", help="Worksheet to read (xlsx).")
@click.option("--emulator", is_flag=True,
              help="Also look the organizers up in the embedded emulator's directory; rows whose "
                   "organizer is not there are invalid.")
@click.option("--directory", "directory", metavar="FILE", type=click.Path(dir_okay=False),
              help="With --emulator: your own tenant in the emulator's directory format.")
def validate(schedule: str, config_path: str | None, sheet: str | None, emulator: bool,
             directory: str | None) -> int:
    """Check every row of SCHEDULE without sending anything; list problems by row and column."""
    from bulkmeet.pipeline import check_organizers, validate_schedule
    from bulkmeet.validation import summarise

    sched = _schedule(schedule)
    cfg = load_config(_config_path(sched, config_path))
    _setup_logging(True, None)
    the_sheet, the_plan, outcomes = validate_schedule(sched, cfg, sheet)
    with _maybe_emulator(emulator, sched, cfg, directory) as ecfg:
        checked = summarise(len(the_sheet.rows), the_plan, outcomes,
                            (lambda p: check_organizers(p, ecfg)) if emulator else None)
    for row, message in checked.problems:
        click.echo(printable(f"{sched}: row {row}: {message}"))  # cells may hold escape codes
    click.echo(checked.line())
    return ExitStatus.ROWS_FAILED if checked.problems else ExitStatus.OK


@cli.command("plan", epilog=EXIT_HELP)
@click.argument("schedule", type=click.Path(dir_okay=False))
@click.option("--config", "-c", "config_path", metavar="FILE", help="Mapping config (TOML).")
@click.option("--sheet", metavar="NAME", help="Worksheet to read (xlsx).")
@click.option("--output", "-o", metavar="FILE",
              help="Plan sheet (.xlsx or .csv). Default: NAME.plan.xlsx beside the schedule.")
@click.option("--journal", metavar="FILE",
              help="Journal to compare with. Default: NAME.journal.sqlite beside the schedule.")
@click.option("--cancel-removed", is_flag=True, help="Plan as `run --cancel-removed` would.")
@click.option("--max-cancel", type=click.IntRange(0), metavar="N",
              help="Plan as `run --max-cancel N` would.")
def plan_command(schedule: str, config_path: str | None, sheet: str | None, output: str | None,
                 journal: str | None, cancel_removed: bool, max_cancel: int | None) -> int:
    """Show what `run` would create, update and cancel, per organizer; send nothing."""
    from bulkmeet.preview import preview

    sched = _schedule(schedule)
    cfg = load_config(_config_path(sched, config_path))
    check_run_paths(sched, {"the plan sheet": (Path(output) if output else None, "--output")})
    _setup_logging(True, None)
    result = preview(sched, cfg, sheet_name=sheet, journal_path=Path(journal) if journal else None,
                     output=Path(output) if output else None, cancel_removed=cancel_removed,
                     max_cancel=max_cancel)
    for line in result.table():
        click.echo(printable(line))
    click.echo(result.line())
    if result.cancel_reason and result.totals["orphaned"]:
        click.echo(f"Nothing would be cancelled: {result.cancel_reason}.")
    click.echo(f"Plan sheet: {result.output}")
    return result.exit_status


@cli.command(epilog=EXIT_HELP)
@click.argument("schedule", type=click.Path(dir_okay=False))
@click.option("--config", "-c", "config_path", metavar="FILE", help="Mapping config (TOML).")
@click.option("--sheet", metavar="NAME", help="Worksheet to read (xlsx).")
@click.option("--journal", metavar="FILE",
              help="Journal to check. Default: NAME.journal.sqlite beside the schedule.")
@click.option("--concurrency", type=click.IntRange(1, 64), metavar="N",
              help="Requests in flight at most (default from config, else 4).")
@click.option("--repair", is_flag=True,
              help="Make each missing meeting again from its sheet row (new join link).")
@click.option("--emulator", is_flag=True, help="Check against the embedded emulator (demo).")
@click.option("--directory", "directory", metavar="FILE", type=click.Path(dir_okay=False),
              help="With --emulator: your own tenant in the emulator's directory format (the "
                   "one `run --emulator --directory` used).")
def verify(schedule: str, config_path: str | None, sheet: str | None, journal: str | None,
           concurrency: int | None, repair: bool, emulator: bool, directory: str | None) -> int:
    """GET every meeting the journal of SCHEDULE holds; report (or --repair) the missing."""
    from bulkmeet.verify import verify_schedule

    sched = _schedule(schedule)
    cfg = load_config(_config_path(sched, config_path))
    _setup_logging(True, None)
    with _maybe_emulator(emulator, sched, cfg, directory) as ecfg, _Stopper() as stopper:
        result = verify_schedule(sched, ecfg, journal=Path(journal) if journal else None,
                                 sheet=sheet, concurrency=concurrency, repair=repair,
                                 stop=stopper.event)
    for row, message in result.missing + result.unchecked:
        where = f"row {row}: " if row else ""
        click.echo(printable(f"{sched}: {where}{message}"))
    click.echo(result.line())
    if result.missing and not repair:
        click.echo(f"The next `bulkmeet run` makes the missing meetings again (they get new join "
                   f"links); or run `bulkmeet verify {schedule} --repair` to make them now, then "
                   "`bulkmeet run` to rewrite the output sheet.")
    elif result.recreated:
        click.echo("Run `bulkmeet run` again to write the new join links into the output sheet.")
    return result.exit_status


@cli.command()
@click.argument("schedule", type=click.Path(dir_okay=False))
@click.option("--output", "-o", metavar="FILE",
              help="Where to write the config. Default: bulkmeet.toml beside the schedule.")
@click.option("--force", is_flag=True, help="Overwrite an existing config.")
def init(schedule: str, output: str | None, force: bool) -> int:
    """Write a starter config for SCHEDULE, guessing the column mapping from its headers."""
    from bulkmeet.starter import write_starter_config

    sched = _schedule(schedule)
    check_run_paths(sched, {"the config": (Path(output) if output else None, "--output")})
    path = write_starter_config(sched, Path(output) if output else None, force=force)
    click.echo(f"Wrote {path}: check every line marked TODO, then run "
               f"`bulkmeet validate {schedule} --config {path}`.")
    return ExitStatus.OK


@cli.command()
@click.option("--config", "-c", "config_path", metavar="FILE", default="bulkmeet.toml",
              show_default=True, help="Config with [auth] mode = \"delegated\".")
def login(config_path: str) -> int:
    """Sign in once as yourself (device code); later runs, cron included, reuse the token."""
    from bulkmeet.auth import login as do_login

    user = do_login(load_config(config_path), echo=lambda m: click.echo(m, err=True))
    click.echo(f"Signed in as {user}.")
    return ExitStatus.OK


@cli.command()
@click.option("--config", "-c", "config_path", metavar="FILE", default="bulkmeet.toml",
              show_default=True, help="Config whose token cache to remove.")
def logout(config_path: str) -> int:
    """Forget the signed-in user's tokens (removes the token cache file)."""
    from bulkmeet.auth import logout as do_logout

    removed = do_logout(load_config(config_path))
    click.echo(f"Removed {removed}." if removed else "Nothing to remove: not signed in.")
    return ExitStatus.OK


def _log_crash_to_files(exc: BaseException) -> None:
    """The traceback goes to the log file (if any), never to the terminal or cron mail."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "internal error", (),
                            (type(exc), exc, exc.__traceback__))
    for handler in log.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def main(argv: list[str] | None = None) -> None:
    """Entry point: every exception becomes one message and one exit status, here only."""
    try:
        status = cli.main(args=argv, prog_name="bulkmeet", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("bulkmeet: aborted.", err=True)
        status = ExitStatus.INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        status = ExitStatus.UNUSABLE_INPUT
    except BulkmeetError as exc:
        click.echo(f"bulkmeet: error: {printable(str(exc))}", err=True)
        status = exc.exit_status
    except KeyboardInterrupt:
        click.echo("bulkmeet: interrupted.", err=True)
        status = ExitStatus.INTERRUPTED
    except Exception as exc:  # a bug: never a traceback on the user's screen
        _log_crash_to_files(exc)
        click.echo(f"bulkmeet: internal error ({type(exc).__name__}). This is a bug; please "
                   "report it with the log file (--log-file).", err=True)
        status = ExitStatus.INTERNAL_ERROR
    sys.exit(int(status or 0))
