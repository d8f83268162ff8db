"""Fixtures for the emulator's conformance tests (the helpers they use: ``helpers.py``).

One emulator serves a module where tests do not disturb each other; tests that change knobs
(faults, rate limits, state) start their own.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bulkmeet.emulator import Emulator, EmulatorOptions
from tests.emulator.helpers import Api, CertPair, directory_data, make_cert


@pytest.fixture(scope="session")
def certs() -> dict[str, CertPair]:
    return {"registered": make_cert("registered"), "stranger": make_cert("not registered")}


@pytest.fixture(scope="session")
def directory_file(tmp_path_factory, certs) -> Path:
    path = tmp_path_factory.mktemp("directory") / "directory.json"
    path.write_text(json.dumps(directory_data(certs), indent=1))
    return path


@pytest.fixture(scope="module")
def emu(directory_file: Path):
    with Emulator(EmulatorOptions(directory=directory_file, stall_s=0.3,
                                  device_code_interval_s=1)) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def api(emu: Emulator):
    client = Api(emu)
    yield client
    client.close()


@pytest.fixture
def start(directory_file: Path):
    """Start emulators with the given options; all are stopped after the test."""
    running: list[tuple[Emulator, Api]] = []

    def _start(**options) -> tuple[Emulator, Api]:
        emu = Emulator(EmulatorOptions(directory=directory_file, **options)).start()
        api = Api(emu)
        running.append((emu, api))
        return emu, api

    yield _start
    for emu, api in running:
        api.close()
        emu.stop()
