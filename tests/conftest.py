"""Fixtures shared by the end-to-end tests: a tenant directory, a running emulator, schedules.

The environment is cleaned of variables that would change what bulkmeet does (this machine sets
REQUESTS_CA_BUNDLE; a developer may have AZURE_* set) so that every test states what it relies on.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import helpers

_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "BULKMEET_CLIENT_SECRET", "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
        "AZURE_CLIENT_CERTIFICATE_PASSWORD", helpers.SECRET_ENV, "TQDM_DISABLE", "MSAL_FORCE_REGION")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in _ENV:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def tenant(tmp_path: Path) -> helpers.Tenant:
    return helpers.make_tenant(tmp_path / "directory.json")


@pytest.fixture
def emulator(tenant: helpers.Tenant):
    from bulkmeet.emulator import Emulator, EmulatorOptions

    with Emulator(EmulatorOptions(directory=tenant.directory_path, seed=7)) as emu:
        yield emu


@pytest.fixture
def secret_env(monkeypatch, tenant: helpers.Tenant) -> str:
    monkeypatch.setenv(helpers.SECRET_ENV, tenant.secret)
    return tenant.secret


@pytest.fixture
def run_cli(capsys):
    """Run `bulkmeet ARGS` in this process through the real entry point (exit-code mapping included)."""

    def invoke(*args: str | os.PathLike[str]) -> helpers.CliResult:
        from bulkmeet.cli import main

        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return helpers.CliResult(code, out, err)

    return invoke
