"""Every module imports on its own in a fresh interpreter, so the layering stays acyclic.

A circular import often works by luck when modules happen to load in a friendly order (as in the
test session) and fails when a user's first import is a different module: importing each module
first, alone, is the test (pip-tools' tests/test_circular_imports.py does the same).
"""
from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import bulkmeet


def _modules() -> list[str]:
    found = [bulkmeet.__name__]
    for info in pkgutil.walk_packages(bulkmeet.__path__, prefix=f"{bulkmeet.__name__}."):
        if not info.name.endswith("__main__"):
            found.append(info.name)
    return sorted(found)


MODULES = _modules()


def test_the_walk_finds_the_package() -> None:
    assert "bulkmeet.cli" in MODULES and "bulkmeet.emulator.app" in MODULES


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_alone(module: str) -> None:
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
