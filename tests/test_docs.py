"""The README says what the code does: exit statuses and commands are checked against the code.

Modelled on sqlite-utils' tests/test_docs.py: documentation that drifts from the code is a bug an
ops user pays for, so the drift fails the build.
"""
from __future__ import annotations

import re
from pathlib import Path

from bulkmeet.cli import cli
from bulkmeet.errors import ExitStatus, exit_status_help

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    level = heading.split(" ")[0]
    rest = text[start + len(heading):]
    end = re.search(rf"^#{{1,{len(level)}}} ", rest, re.M)
    return rest[: end.start()] if end else rest


def test_readme_exit_status_table_matches_exit_status() -> None:
    table = _section(README, "### Exit status")
    rows = re.findall(r"^\| (\d+) \| (.+?) \| (.+?) \|$", table, re.M)
    documented = [(int(code), meaning, action) for code, meaning, action in rows]
    expected = [(int(s), s.meaning, s.action) for s in ExitStatus]
    assert documented == expected


def test_help_epilog_lists_every_exit_status() -> None:
    text = exit_status_help()
    for status in ExitStatus:
        assert f"  {status.value:<2} {status.meaning}" in text


def test_every_command_is_documented_in_the_readme() -> None:
    commands = _section(README, "## Commands")
    for name, command in cli.commands.items():
        if command.hidden:
            continue
        assert f"bulkmeet {name}" in commands, f"`bulkmeet {name}` is not in the README's Commands"


def test_contributing_module_map_names_every_module() -> None:
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    start = text.index("## Module map")
    end = text.index("## ", start + 5)
    module_map = text[start:end]
    package = ROOT / "bulkmeet"
    missing = [str(path.relative_to(package)) for path in sorted(package.rglob("*.py"))
               if not path.name.startswith("__") and f" {path.name} " not in module_map
               and f" {path.name}\n" not in module_map]
    assert missing == [], f"CONTRIBUTING.md's module map leaves out {missing}"


def test_every_summary_json_key_is_documented() -> None:
    from dataclasses import fields

    from bulkmeet.report import RunSummary

    table = README[README.index("Or read the `--summary-json` file."):README.index("## The emulator")]
    documented = set(re.findall(r"`([a-z_]+)`", "\n".join(
        line.split("|")[1] for line in table.splitlines() if line.startswith("| `"))))
    assert {f.name for f in fields(RunSummary)} == documented
