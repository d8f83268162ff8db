"""Hostile input, conformance-suite style: one table row per malformed or hostile input, driving
the real CLI on real files, with the exit status and a fragment of the message it must give.

Most cases use `bulkmeet validate` (nothing is sent, so a run would add nothing); the ones about
what a run writes use `bulkmeet run --emulator`. A case may write any files it needs into its
folder; ``{dir}`` in an argument is that folder. No test here may print a traceback or echo a
control character raw: every case checks that too.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bulkmeet.errors import ExitStatus
from tests import helpers
from tests.helpers import CliResult

OK, ROWS, INPUT, WRITE, LOCKED = (ExitStatus.OK, ExitStatus.ROWS_FAILED, ExitStatus.UNUSABLE_INPUT,
                                  ExitStatus.WRITE_FAILED, ExitStatus.LOCKED)

HEADER = "CRN,Course,Title,Teacher,Date,Start,End"
TEACHER = "ada.lovelace@school.example"  # in the embedded emulator's demo tenant, with a policy
GOOD = f"10001,CS 101,Intro,{TEACHER},3/1/2027,9:00 AM,10:00 AM"
GOOD2 = f"10002,CS 102,Data,{TEACHER},3/2/2027,9:00 AM,10:00 AM"
CONFIG = """\
time_zone = "America/Chicago"

[graph]
base_url = "https://graph.microsoft.com"
read_timeout = 30

[auth]
tenant_id = "ab124da5-db7b-5a4a-908b-9f2538c5d372"
client_id = "210ebc0a-c674-5b7a-866f-c2cc1251ec0a"

[mapping]
organizer = "Teacher"
subject = "{Course}: {Title}"
date = "Date"
start_time = "Start"
end_time = "End"
keys = ["CRN", "Date"]
"""
CONFIG_START = CONFIG.replace('date = "Date"\nstart_time = "Start"\nend_time = "End"\n',
                              'start = "Start"\n').replace('["CRN", "Date"]', '["CRN", "Start"]')


def csv_text(*rows: str, header: str = HEADER) -> bytes:
    return ("\n".join((header, *rows)) + "\n").encode()


def xlsx_bytes(rows: list[list[object]], *, title_first: str | None = None,
               merge: str | None = None, chart_first: bool = False) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        from openpyxl import Workbook

        wb = Workbook()
        ws = wb.active
        ws.title = "Schedule"
        if title_first:
            ws.append([title_first])
            ws.append([])
        for r in rows:
            ws.append(r)
        if merge:
            ws.merge_cells(merge)
        if chart_first:
            from openpyxl.chart import BarChart, Reference

            chart = BarChart()
            chart.add_data(Reference(ws, min_col=1, min_row=1, max_row=2))
            wb.create_chartsheet("Chart", 0).add_chart(chart)
        wb.save(path)
    return build


def _xlsx_rows(*extra: list[object]) -> list[list[object]]:
    return [HEADER.split(","), GOOD.split(","), *extra]


def damaged(change: Callable[[str, bytes], bytes | None]) -> Callable[[Path], None]:
    """A real workbook with one part of the zip replaced (or dropped, when change gives None)."""
    def build(path: Path) -> None:
        xlsx_bytes(_xlsx_rows())(path.with_suffix(".orig.xlsx"))
        src = zipfile.ZipFile(path.with_suffix(".orig.xlsx"))
        with zipfile.ZipFile(path, "w") as out:
            for info in src.infolist():
                data = change(info.filename, src.read(info.filename))
                if data is not None:
                    out.writestr(info.filename, data)
    return build


def fifo(path: Path) -> None:
    os.mkfifo(path)


@dataclass(frozen=True)
class Case:
    id: str
    files: dict[str, bytes | str | Callable[[Path], None]]
    args: tuple[str, ...]
    code: int
    fragments: tuple[str, ...]
    config: str = CONFIG
    absent: tuple[str, ...] = ()  # text that must not appear in the output
    subprocess: bool = False  # for inputs that could hang an in-process run (FIFOs)
    files_after: dict[str, bool] = field(default_factory=dict)  # name -> must exist


S = "{dir}/s.csv"
V = ("validate", S, "--config", "{dir}/bulkmeet.toml")


def R(*extra: str, schedule: str = S) -> tuple[str, ...]:  # noqa: N802 - reads like the command
    return ("run", schedule, "--config", "{dir}/bulkmeet.toml", "--emulator", "-q", *extra)


CASES = [
    # --- 1: dates beyond the calendar are one invalid row, not a crash ---------------------------
    Case("date-9999-chicago", {"s.csv": csv_text(
        GOOD, f"10002,CS 1,Intro,{TEACHER},12/31/9999,11:00 PM,11:30 PM")}, V, ROWS,
        ("row 3: Start: 9999-12-31 23:00 is outside the dates bulkmeet can convert to UTC",
         "2 rows: 1 ready to send, 1 invalid")),
    Case("date-0001-berlin", {"s.csv": csv_text(
        f"1,CS 1,Intro,{TEACHER},0001-01-01 00:30", f"2,CS 1,Intro,{TEACHER},2027-03-01 09:00",
        header="CRN,Course,Title,Teacher,Start")}, V, ROWS,
        ("row 2: Start: 0001-01-01 00:30 is outside the dates", "1 ready to send"),
        config=CONFIG_START.replace("America/Chicago", "Europe/Berlin")),
    Case("date-9999-offset", {"s.csv": csv_text(
        f"1,CS 1,Intro,{TEACHER},9999-12-31T23:30-01:00", header="CRN,Course,Title,Teacher,Start")},
        V, ROWS, ("9999-12-31 23:30-01:00 is outside the dates",), config=CONFIG_START),
    Case("date-9999-run", {"s.csv": csv_text(
        GOOD, f"10002,CS 1,Intro,{TEACHER},12/31/9999,11:00 PM,11:30 PM")}, R(), ROWS,
        ("2 rows: 1 created, 0 existing, 0 failed, 1 invalid",)),
    Case("date-impossible", {"s.csv": csv_text(f"1,CS 1,Intro,{TEACHER},2/30/2027,9:00,10:00")},
         V, ROWS, ("\"2/30/2027\" is not a date in month/day/year order",)),
    Case("dst-gap", {"s.csv": csv_text(f"1,CS 1,Intro,{TEACHER},3/14/2027,2:30 AM,3:30 AM")},
         V, ROWS, ("does not exist in America/Chicago",)),
    Case("date-serial-beyond-9999", {"s.xlsx": xlsx_bytes(_xlsx_rows(
        ["10002", "CS 102", "Data", TEACHER, 99_999_999, "9:00", "10:00"]))},
        ("validate", "{dir}/s.xlsx", "--config", "{dir}/bulkmeet.toml"), ROWS,
        ("row 3: Date: \"99999999\" is not a date", "1 ready to send"), absent=("UserWarning",)),
    # --- 2: formulas without a saved value ---------------------------------------------------------
    Case("formula-no-cached-value", {"s.xlsx": xlsx_bytes(_xlsx_rows(
        ["10002", "CS 102", "=CONCAT(\"Da\",\"ta\")", TEACHER, "3/2/2027", "9:00", "10:00"]))},
        ("validate", "{dir}/s.xlsx", "--config", "{dir}/bulkmeet.toml"), ROWS,
        ("row 3: Title: holds a formula (cell C3) with no saved result",
         "open the file in Excel and save it (or export values only)", "1 ready to send")),
    Case("formula-in-unused-column", {"s.xlsx": xlsx_bytes([
        [*HEADER.split(","), "Notes"], [*GOOD.split(","), "=1+1"]])},
        ("validate", "{dir}/s.xlsx", "--config", "{dir}/bulkmeet.toml"), OK,
        ("1 rows: 1 ready to send, 0 invalid",)),
    # --- 3: write targets that are the input or each other ---------------------------------------
    Case("output-is-input", {"s.csv": csv_text(GOOD)}, R("--output", S), INPUT,
         ("The output sheet {dir}/s.csv is the schedule itself", "Choose another file with "
          "--output"), files_after={"s.journal.sqlite": False}),
    Case("output-is-input-dotdot", {"s.csv": csv_text(GOOD), "sub/x": b""},
         R("--output", "{dir}/sub/../s.csv"), INPUT, ("is the schedule itself",)),
    Case("output-is-input-symlink", {"s.csv": csv_text(GOOD), "link.csv": "->s.csv"},
         R("--output", "{dir}/link.csv"), INPUT, ("is the schedule itself ({dir}/s.csv)",)),
    Case("output-is-workbook-input", {"s.xlsx": xlsx_bytes(_xlsx_rows())},
         R("--output", "{dir}/s.xlsx", schedule="{dir}/s.xlsx"), INPUT,
         ("is the schedule itself",)),
    Case("journal-is-output", {"s.csv": csv_text(GOOD)},
         R("--journal", "{dir}/o.xlsx", "--output", "{dir}/o.xlsx"), INPUT,
         ("The output sheet (--output) and the journal (--journal or [run] journal) are the "
          "same file",)),
    Case("journal-is-input", {"s.csv": csv_text(GOOD)}, R("--journal", S), INPUT,
         ("The journal {dir}/s.csv is the schedule itself",)),
    Case("log-is-input", {"s.csv": csv_text(GOOD)}, R("--log-file", S), INPUT,
         ("The log file {dir}/s.csv is the schedule itself",)),
    Case("summary-is-output", {"s.csv": csv_text(GOOD)},
         R("--summary-json", "{dir}/s.results.xlsx"), INPUT, ("are the same file",)),
    # --- 4, 6, 7, 13: CSV structure and encodings -------------------------------------------------
    Case("quote-unbalanced-mid", {"s.csv": csv_text(
        f"1,CS 1,\"Intro,{TEACHER},3/1/2027,9:00,10:00", GOOD, GOOD2)}, V, INPUT,
        ("s.csv: line 2: the quote (\") that opens the value in column C is not closed",)),
    Case("quote-unbalanced-last-line", {"s.csv": csv_text(GOOD, "10002,CS 1,\"Intro")}, V, INPUT,
         ("line 3: the quote", "up to the end of the file")),
    Case("quote-legit-multiline", {"s.csv": csv_text(
        f"1,CS 1,\"Intro\nto it\",{TEACHER},3/1/2027,9:00,10:00", GOOD2)}, V, OK,
        ("2 rows: 2 ready to send",)),
    Case("mixed-encodings", {"s.csv": csv_text(GOOD) + f"2,CS 1,Résumé,{TEACHER},3/2/2027,9:00,"
                             "10:00\n".encode("cp1252") + "3,CS 1,Café,x\n".encode()}, V, INPUT,
         ("line 3 is not UTF-8 (byte 0xE9), but other lines are",)),
    Case("cp1252-whole-file", {"s.csv": csv_text(GOOD).replace(b"Intro", "Café".encode("cp1252"))},
         V, OK, ("1 ready to send",)),
    Case("neither-encoding", {"s.csv": csv_text(GOOD).replace(b"Intro", b"In\x81tro")}, V, INPUT,
         ("line 2 (byte 0x81 at position 16) is neither UTF-8 nor Windows-1252",)),
    Case("utf16-bom", {"s.csv": csv_text(GOOD).decode().encode("utf-16")}, V, INPUT,
         ("this looks like UTF-16 text",)),
    Case("utf16-le-no-bom", {"s.csv": csv_text(GOOD).decode().encode("utf-16-le")}, V, INPUT,
         ("this looks like UTF-16 text (Excel's 'Unicode Text')",), absent=("\\x00",)),
    Case("utf16-be-no-bom", {"s.csv": csv_text(GOOD).decode().encode("utf-16-be")}, V, INPUT,
         ("this looks like UTF-16 text",)),
    Case("huge-cell-in-subject", {"s.csv": csv_text(GOOD.replace("Intro", "x" * 200_000), GOOD2)},
         V, ROWS, ("row 2: the subject is 200008 characters long", "1 ready to send")),
    Case("huge-cell-unused", {"s.csv": csv_text(GOOD + "," + "y" * 140_000,
                                                header=HEADER + ",Notes")}, V, OK,
         ("1 rows: 1 ready to send",)),
    Case("title-row-csv", {"s.csv": b"Spring 2027 schedule\n\n" + csv_text(GOOD, GOOD2)}, V, OK,
         ("2 rows: 2 ready to send",)),
    Case("title-row-xlsx", {"s.xlsx": xlsx_bytes(_xlsx_rows(), title_first="Spring 2027")},
         ("validate", "{dir}/s.xlsx", "--config", "{dir}/bulkmeet.toml"), OK, ("1 ready",)),
    Case("merged-cells", {"s.xlsx": xlsx_bytes(_xlsx_rows(
        ["10002", "CS 102", "Data", None, "3/2/2027", "9:00", "10:00"]), merge="D2:D3")},
        ("validate", "{dir}/s.xlsx", "--config", "{dir}/bulkmeet.toml"), ROWS,
        ("row 3: Teacher: is part of the merged cells D2:D3, so only D2 holds the value",
         "unmerge the cells")),
    Case("empty-file", {"s.csv": b""}, V, INPUT, ("the sheet is empty",)),
    Case("header-only", {"s.csv": csv_text()}, V, INPUT, ("no rows with classes below them",)),
    Case("duplicate-columns", {"s.csv": csv_text(GOOD + ",x", header=HEADER + ",title")}, V,
         INPUT, ("two columns are named 'title'",)),
    Case("missing-column", {"s.csv": csv_text("1,x", header="CRN,Course")}, V, INPUT,
         ("which the sheet does not have",)),
    Case("xls-extension", {"s.xls": b"whatever"},
         ("validate", "{dir}/s.xls", "--config", "{dir}/bulkmeet.toml"), INPUT,
         ("save it as .xlsx",)),
    Case("workbook-named-csv", {"s.csv": xlsx_bytes(_xlsx_rows())}, V, INPUT,
         ("this is an Excel workbook with a .csv name",)),
    # --- 8: damaged workbooks, chart sheets, settings ---------------------------------------------
    Case("xlsx-truncated", {"s.xlsx": lambda p: (xlsx_bytes(_xlsx_rows())(p),
                                                  p.write_bytes(p.read_bytes()[:900]))},
         ("validate", "{dir}/s.xlsx", "--config", "{dir}/bulkmeet.toml"), INPUT,
         ("not a readable Excel workbook",)),
    Case("xlsx-bad-sheet-xml", {"s.xlsx": damaged(
        lambda n, d: b"<worksheet><sheetData><row" if n == "xl/worksheets/sheet1.xml" else d)},
        ("validate", "{dir}/s.xlsx", "--config", "{dir}/bulkmeet.toml"), INPUT,
        ("s.xlsx: not a readable Excel workbook", "open it in Excel and save it again")),
    Case("xlsx-bad-styles", {"s.xlsx": damaged(
        lambda n, d: b"<styleSheet><<" if n == "xl/styles.xml" else d)},
        ("validate", "{dir}/s.xlsx", "--config", "{dir}/bulkmeet.toml"), INPUT,
        ("not a readable Excel workbook",)),
    Case("xlsx-bad-workbook-xml", {"s.xlsx": damaged(
        lambda n, d: b"garbage" if n == "xl/workbook.xml" else d)},
        ("validate", "{dir}/s.xlsx", "--config", "{dir}/bulkmeet.toml"), INPUT,
        ("not a readable Excel workbook",)),
    Case("xlsx-no-workbook-part", {"s.xlsx": damaged(
        lambda n, d: None if n == "xl/workbook.xml" else d)},
        ("validate", "{dir}/s.xlsx", "--config", "{dir}/bulkmeet.toml"), INPUT,
        ("not a readable Excel workbook",)),
    Case("xlsx-zip-header-only", {"s.xlsx": b"PK\x03\x04" + b"x" * 100},
         ("validate", "{dir}/s.xlsx", "--config", "{dir}/bulkmeet.toml"), INPUT,
         ("not a readable Excel workbook",)),
    Case("chart-sheet-first", {"s.xlsx": xlsx_bytes(_xlsx_rows(), chart_first=True)},
         ("validate", "{dir}/s.xlsx", "--config", "{dir}/bulkmeet.toml"), OK, ("1 ready",)),
    Case("chart-sheet-chosen", {"s.xlsx": xlsx_bytes(_xlsx_rows(), chart_first=True)},
         ("validate", "{dir}/s.xlsx", "--config", "{dir}/bulkmeet.toml", "--sheet", "Chart"),
         INPUT, ("'Chart' is a chart sheet, not a worksheet with rows",)),
    Case("read-timeout-inf", {"s.csv": csv_text(GOOD)}, V, INPUT,
         ("[graph] read_timeout must be a number of seconds more than 0 and at most 3600 (it is "
          "inf)",), config=CONFIG.replace("read_timeout = 30", "read_timeout = inf")),
    Case("read-timeout-nan", {"s.csv": csv_text(GOOD)}, V, INPUT, ("(it is nan)",),
         config=CONFIG.replace("read_timeout = 30", "read_timeout = nan")),
    Case("time-zone-after-section", {"s.csv": csv_text(GOOD)}, V, INPUT,
         ("unknown key 'time_zone' in [auth]", "move that line up"),
         config=CONFIG.replace('time_zone = "America/Chicago"\n', "").replace(
             "[auth]\n", '[auth]\ntime_zone = "America/Chicago"\n')),
    Case("log-file-unwritable", {"s.csv": csv_text(GOOD), "blocker": b"a file"},
         R("--log-file", "{dir}/blocker/bulkmeet.log"), INPUT,
         ("Cannot use {dir}/blocker/bulkmeet.log as the log file (Not a directory)",)),
    Case("summary-json-folder", {"s.csv": csv_text(GOOD), "reports/x": b""},
         R("--summary-json", "{dir}/reports"), INPUT,
         ("{dir}/reports is a folder, so it cannot be the summary JSON",),
         files_after={"s.journal.sqlite": False}),
    Case("output-device", {"s.csv": csv_text(GOOD)}, R("--output", "/dev/full"), INPUT,
         ("/dev/full is a device, so it cannot be the output sheet",)),
    # --- 14: control characters -------------------------------------------------------------------
    Case("nul-in-subject", {"s.csv": csv_text(GOOD.replace("Intro", "In\x00tro"))}, V, ROWS,
         ("Title: \"In\\x00tro\" contains the control character U+0000 at position 3",)),
    Case("osc-in-subject", {"s.csv": csv_text(GOOD.replace("Intro", "\x1b]0;owned\x07Intro"))},
         V, ROWS, ("\"\\x1b]0;owned\\x07Intro\" contains the control character U+001B",)),
    Case("bel-in-teacher", {"s.csv": csv_text(GOOD.replace("ada.", "ada\x07."))}, V, ROWS,
         ("\"ada\\x07.lovelace@school.example\" is neither an e-mail address",)),
    Case("esc-in-header", {"s.csv": csv_text(GOOD + ",x", header=HEADER + ",\x1b[2J")}, V, OK,
         ("1 ready",)),
    Case("control-chars-not-sent", {"s.csv": csv_text(
        GOOD.replace("Intro", "In\x07tro"), GOOD2)}, R(), ROWS,
        ("2 rows: 1 created, 0 existing, 0 failed, 1 invalid",)),
    # --- 15: not a regular file -------------------------------------------------------------------
    Case("fifo-schedule", {"s.csv": fifo}, V, INPUT,
         ("s.csv: is a FIFO (named pipe), not a schedule file",), subprocess=True),
    Case("fifo-config", {"s.csv": csv_text(GOOD), "c.toml": fifo},
         ("validate", S, "--config", "{dir}/c.toml"), INPUT, ("is not a regular file",),
         subprocess=True),
    Case("fifo-run", {"s.csv": fifo}, R(), INPUT, ("is a FIFO",), subprocess=True),
    Case("schedule-missing", {}, V, INPUT, ("schedule file not found",)),
    # --- more of the same families: what must keep working, and the plain refusals --------------
    Case("output-bad-suffix", {"s.csv": csv_text(GOOD)}, R("--output", "{dir}/out.txt"), INPUT,
         ("the name must end in .xlsx or .csv",), files_after={"s.journal.sqlite": False}),
    Case("plan-output-is-input", {"s.csv": csv_text(GOOD)},
         ("plan", S, "--config", "{dir}/bulkmeet.toml", "--output", S), INPUT,
         ("The plan sheet {dir}/s.csv is the schedule itself",)),
    Case("init-output-is-input", {"s.csv": csv_text(GOOD)},
         ("init", S, "--output", S, "--force"), INPUT, ("The config {dir}/s.csv is the schedule",)),
    Case("utf8-bom", {"s.csv": b"\xef\xbb\xbf" + csv_text(GOOD)}, V, OK, ("1 ready",)),
    Case("crlf-lines", {"s.csv": csv_text(GOOD, GOOD2).replace(b"\n", b"\r\n")}, V, OK,
         ("2 rows: 2 ready",)),
    Case("semicolons", {"s.csv": csv_text(GOOD.replace(",", ";"), header=HEADER.replace(",", ";"))},
         V, OK, ("1 ready",)),
    Case("stray-column", {"s.csv": csv_text(GOOD + ",extra")}, V, INPUT,
         ("column H has a value in row 2 but no name in the header row (1)",)),
    Case("no-such-sheet", {"s.xlsx": xlsx_bytes(_xlsx_rows())},
         ("validate", "{dir}/s.xlsx", "--config", "{dir}/bulkmeet.toml", "--sheet", "Fall"),
         INPUT, ("there is no worksheet named 'Fall'; the workbook has: 'Schedule'",)),
    Case("time-25", {"s.csv": csv_text(GOOD.replace("9:00 AM", "25:00"))}, V, ROWS,
         ("Start: \"25:00\" is not a time",)),
    Case("end-before-start", {"s.csv": csv_text(GOOD.replace("10:00 AM", "8:00 AM"))}, V, ROWS,
         ("the end must be after the start",)),
    Case("config-not-toml", {"s.csv": csv_text(GOOD)}, V, INPUT, ("not valid TOML",),
         config="[mapping\n"),
    Case("config-utf16", {"s.csv": csv_text(GOOD), "c.toml": CONFIG.encode("utf-16")},
         ("validate", S, "--config", "{dir}/c.toml"), INPUT, ("not UTF-8 text",)),
    Case("config-secret", {"s.csv": csv_text(GOOD)}, V, INPUT, ("looks like a secret",),
         config=CONFIG.replace("[auth]\n", '[auth]\nclient_secret = "hunter2"\n'),
         absent=("hunter2",)),
    Case("config-folder", {"s.csv": csv_text(GOOD), "cfgdir/x": b""},
         ("validate", S, "--config", "{dir}/cfgdir"), INPUT, ("is a folder, not a config file",)),
    Case("schedule-folder", {"s.csv/x": b""}, V, INPUT, ("is a directory",)),
    Case("binary-as-csv", {"s.csv": bytes(range(256)) * 4}, V, INPUT,
         ("s.csv: line 2 (byte 0x81 at position 119) is neither UTF-8 nor Windows-1252",)),
    Case("esc-in-external-id", {"s.csv": csv_text(GOOD + ",id\x1b[31m", header=HEADER + ",Ext")},
         V, ROWS, ("contains a control character",),
         config=CONFIG.replace('keys = ["CRN", "Date"]', 'external_id = "Ext"')),
]


def _write_files(folder: Path, files: dict[str, bytes | str | Callable[[Path], None]],
                 config: str) -> None:
    (folder / "bulkmeet.toml").write_text(config)
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(path)
        elif isinstance(content, str) and content.startswith("->"):
            path.symlink_to(content[2:])
        elif isinstance(content, str):
            path.write_text(content)
        else:
            path.write_bytes(content)


def _run_subprocess(args: list[str]) -> CliResult:
    done = subprocess.run([sys.executable, "-m", "bulkmeet", *args], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    return CliResult(done.returncode, done.stdout, done.stderr)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, tmp_path: Path, run_cli) -> None:
    _write_files(tmp_path, case.files, case.config)
    args = [a.replace("{dir}", str(tmp_path)) for a in case.args]
    result = _run_subprocess(args) if case.subprocess else run_cli(*args)
    text = result.out + result.err
    assert result.code == case.code, text
    for fragment in case.fragments:
        assert fragment.replace("{dir}", str(tmp_path)) in text, text
    for fragment in case.absent:
        assert fragment not in text, text
    assert "Traceback" not in text and "Exception ignored" not in text
    assert "internal error" not in text
    assert not any(ch in text for ch in "\x00\x07\x1b"), "a control character reached the terminal"
    for name, exists in case.files_after.items():
        assert (tmp_path / name).exists() == exists, name


# --- what a run writes when the disk or the journal fail (items 9, 16) -----------------------------

def _limited_run(folder: Path, limit: int, config: Path, *args: str) -> CliResult:
    """`bulkmeet run` in a child process with RLIMIT_FSIZE: the kernel refuses to grow any file
    past ``limit`` bytes (EFBIG), as a full disk refuses (ENOSPC); Python ignores SIGXFSZ. The
    emulator (the tenant) runs in this process, so only bulkmeet's own files are limited."""
    return _limited_cli(limit, "run", str(folder / "s.csv"), "--config", str(config), "-q", *args)


def _limited_cli(limit: int, *argv: str) -> CliResult:
    """`bulkmeet ARGV` in a child process whose files cannot grow past ``limit`` bytes."""
    script = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
        from bulkmeet.cli import main
        main(sys.argv[1:])
    """)
    done = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL, env=os.environ.copy())
    return CliResult(done.returncode, done.stdout, done.stderr)


def test_a_full_disk_under_the_embedded_emulators_state_is_exit_6_not_an_internal_error(
        tmp_path: Path) -> None:
    # The embedded emulator compacts its state file (keys, CA: some KiB) before anything is
    # sent; with 2 KB allowed that is the first write to fail.
    _write_files(tmp_path, {"s.csv": csv_text(GOOD)}, CONFIG)
    state = tmp_path / "s.emulator-state.json"
    result = _limited_cli(2000, *[a.replace("{dir}", str(tmp_path)) for a in R()])
    assert result.code == WRITE, result.out + result.err
    assert result.err == (
        f"bulkmeet: error: Cannot write the emulator state file {state} (File too large). Free "
        "disk space or fix the folder's permissions, then run again: the meetings the emulator "
        "confirmed are in its state file and journal.\n")
    assert not state.exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture
def limited(tmp_path: Path, tenant, emulator, secret_env):
    """(folder, config) for a run against the test emulator."""
    config = helpers.write_config(tmp_path / "bulkmeet.toml", tenant, emulator.base_url,
                                  emulator.ca_path)
    return tmp_path, config, tenant


def test_a_journal_that_cannot_be_created_is_exit_6_and_nothing_is_sent(limited, emulator
                                                                         ) -> None:
    folder, config, tenant = limited
    helpers.write_csv(folder / "s.csv", helpers.schedule_rows(tenant, 3))
    result = _limited_run(folder, 2048, config, "--journal", str(folder / "j" / "new.sqlite"))
    assert result.code == WRITE, result.err
    assert "Cannot use the journal" in result.err and "Traceback" not in result.err
    assert emulator.meetings() == []


def test_a_journal_that_fills_up_mid_run_still_gets_an_output_sheet(limited, emulator) -> None:
    # 120 rows: the journal's WAL outgrows 160 KiB after some dozens of results, while the
    # output sheet (about 60 KiB as CSV) still fits.
    folder, config, tenant = limited
    helpers.write_csv(folder / "s.csv", helpers.schedule_rows(tenant, 120))
    result = _limited_run(folder, 160 * 1024, config, "--output", str(folder / "out.csv"))
    assert result.code == WRITE, result.out + result.err
    assert "Cannot write to the journal" in result.err
    assert f"are in the output sheet {folder}/out.csv" in result.err
    assert "Traceback" not in result.err and "Exception ignored" not in result.err
    text = (folder / "out.csv").read_text(encoding="utf-8-sig")
    made = {m["joinWebUrl"] for m in emulator.meetings()}
    assert made and all(url in text for url in made)  # every meeting made has its link
    assert ",pending," in text


def test_a_full_disk_while_writing_the_xlsx_is_exit_6_with_one_clean_message(limited,
                                                                             emulator) -> None:
    # Random notes that do not compress make the output sheet (about 4 MB of openpyxl scratch
    # XML) far larger than the journal (about 1 MB of WAL at its peak), so a 2 MiB limit hits
    # the output first.
    import random
    import string

    folder, config, tenant = limited
    rng = random.Random(12)
    rows = [r + ["".join(rng.choices(string.ascii_letters, k=10000)) for _ in range(10)]
            for r in helpers.schedule_rows(tenant, 40)]
    helpers.write_csv(folder / "s.csv", rows, helpers.HEADER + [f"Note {i}" for i in range(10)])
    result = _limited_run(folder, 2 * 1024 * 1024, config)
    assert result.code == WRITE, result.out + result.err
    assert f"Cannot write the output sheet {folder}/s.results.xlsx (File too large)" in result.err
    assert "nothing is lost" in result.err
    assert "Traceback" not in result.err and "Exception ignored" not in result.err
    assert len(emulator.meetings()) == 40  # the meetings were made and are in the journal
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture
def read_only_journal(tmp_path: Path):
    path = tmp_path / "s.journal.sqlite"
    path.write_bytes(b"")
    with helpers.read_only(path):
        yield path


def test_a_read_only_journal_is_exit_6_as_the_readme_says(read_only_journal: Path, run_cli) -> None:
    folder = read_only_journal.parent
    _write_files(folder, {"s.csv": csv_text(GOOD)}, CONFIG)
    result = run_cli(*[a.replace("{dir}", str(folder)) for a in R()])
    assert result.code == WRITE, result.err
    assert f"Cannot write the journal {read_only_journal}" in result.err
    assert "is not writable" in result.err


def test_disk_full_while_saving_the_xlsx_prints_no_ignored_exceptions(tmp_path: Path) -> None:
    # /dev/full is a real device: every write fails with ENOSPC, as on a full disk.
    script = textwrap.dedent("""
        from pathlib import Path
        from bulkmeet import report
        from bulkmeet.models import Sheet, SheetRow
        rows = tuple(SheetRow(i + 2, {"A": f"value {i} " * 5}) for i in range(3000))
        sheet = Sheet(Path("s.xlsx"), None, ("A",), rows)
        summary = report.RunSummary("s", "o", "", "", 3000, 0, 0, 0, 0, 0)
        lines = report._lines(sheet, {})
        with open("/dev/full", "wb", buffering=0) as handle:
            try:
                report._write_xlsx(handle, sheet, report.output_columns(sheet),
                                   report._rows(sheet, lines, False), summary, len(lines))
            except OSError as exc:
                print("refused:", exc.strerror)
        import gc; gc.collect()
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.stdout.strip() == "refused: No space left on device"
    assert done.stderr == ""  # no "Exception ignored in ... Traceback" blocks for cron mail


# --- 11: temporary files --------------------------------------------------------------------------

def test_stale_temp_files_of_ours_are_removed_by_the_next_run(tmp_path: Path, run_cli) -> None:
    _write_files(tmp_path, {"s.csv": csv_text(GOOD)}, CONFIG)
    stale = tmp_path / ".s.results.xlsx.abcd1234.tmp"
    scratch = tmp_path / ".s.results.xlsx.wxyz5678.xml.tmp"
    fresh = tmp_path / ".s.results.xlsx.fresh123.tmp"  # another writer's, seconds old: kept
    theirs = tmp_path / ".notes.txt.abcd1234.tmp"  # not ours: never touched
    for path in (stale, scratch, fresh, theirs):
        path.write_bytes(b"x")
    old = time.time() - 3600
    for path in (stale, scratch, theirs):
        os.utime(path, (old, old))
    result = run_cli(*[a.replace("{dir}", str(tmp_path)) for a in R()])
    assert result.code == OK, result.err
    assert not stale.exists() and not scratch.exists()
    assert fresh.exists() and theirs.exists()


class _Spy:
    """A cell value whose text is asked for mid-write: it looks at where the scratch files are."""
    seen: list[list[str]] = []

    def __init__(self, folder: Path, tmp: Path) -> None:
        self.folder, self.tmp = folder, tmp

    def __str__(self) -> str:
        _Spy.seen.append(sorted(p.name for p in self.folder.iterdir())
                         + sorted(p.name for p in self.tmp.iterdir()))
        return "spy"


def test_openpyxl_scratch_files_sit_beside_the_output_not_in_tmp(tmp_path: Path,
                                                                  monkeypatch) -> None:
    import tempfile

    from bulkmeet.models import Sheet, SheetRow
    from bulkmeet.report import RunSummary, write_output

    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))  # the stdlib's, not bulkmeet's
    out = tmp_path / "out"
    out.mkdir()
    sheet = Sheet(tmp_path / "s.xlsx", None, ("A",), (SheetRow(2, {"A": _Spy(out, system_tmp)}),))
    write_output(out / "r.xlsx", sheet, {}, RunSummary("s", "o", "", "", 1, 0, 0, 0, 0, 0))
    during = _Spy.seen[-1]
    assert any(n.startswith(".r.xlsx.") and n.endswith(".xml.tmp") for n in during), during
    assert not any(n.startswith("openpyxl") for n in during), during
    assert sorted(p.name for p in out.iterdir()) == ["r.xlsx"]


# --- 17: the overlap lock covers the output too ---------------------------------------------------

def test_two_runs_on_one_schedule_with_different_journals_cannot_race(tmp_path: Path,
                                                                       run_cli) -> None:
    from bulkmeet.paths import lock_output

    _write_files(tmp_path, {"s.csv": csv_text(GOOD)}, CONFIG)
    with lock_output(tmp_path / "s.results.xlsx", str(tmp_path / "s.csv")):  # run 1, mid-way
        result = run_cli(*[a.replace("{dir}", str(tmp_path))
                           for a in R("--journal", "{dir}/other.journal.sqlite")])
    assert result.code == LOCKED, result.err
    assert "Another bulkmeet run is already working on" in result.err
    assert not (tmp_path / "other.journal.sqlite").exists()


def test_the_table_is_broad() -> None:
    assert len(CASES) >= 50
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.code for c in CASES} >= {OK, ROWS, INPUT}
