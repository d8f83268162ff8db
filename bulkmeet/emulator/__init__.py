"""A Microsoft Graph + identity platform emulator for onlineMeetings, on loopback HTTPS.

Graph is not reachable from CI or from this machine, so everything bulkmeet tests, demos and
benchmarks runs against this emulator. It shares nothing with the client side of bulkmeet but
the API contract (``shared/spec``), so it cannot hide the client's mistakes.
"""
from __future__ import annotations

from bulkmeet.emulator.app import Emulator
from bulkmeet.emulator.directory import (
    DEMO_DIRECTORY,
    App,
    Directory,
    DirectoryError,
    Tenant,
    User,
    load_directory,
)
from bulkmeet.emulator.options import EmulatorOptions

__all__ = [
    "DEMO_DIRECTORY", "App", "Directory", "DirectoryError", "Emulator", "EmulatorOptions",
    "Tenant", "User", "load_directory",
]
