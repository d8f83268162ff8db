"""`--emulator`: run the job against an emulator started inside this process.

So a new user sees the whole job work before they have an Azure app. The emulator keeps its state
beside the schedule (NAME.emulator-state.json), so a second run sees the meetings the first one
made, as a real tenant would. The config's Graph and identity settings are pointed at it and the
demo app's credentials are used; the mapping is the user's own.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from bulkmeet.config import Config

SECRET_ENV = "BULKMEET_EMULATOR_SECRET"
DEMO_DIRECTORY = Path(__file__).parent / "emulator" / "demo_directory.json"


def state_path(schedule: Path) -> Path:
    return schedule.with_name(schedule.stem + ".emulator-state.json")


@contextmanager
def embedded_emulator(schedule: Path, config: Config) -> Iterator[Config]:
    from bulkmeet.emulator import Emulator, EmulatorOptions

    tenant = json.loads(DEMO_DIRECTORY.read_text())["tenants"][0]
    app = tenant["apps"][0]
    with Emulator(EmulatorOptions(state_path=state_path(schedule))) as emu:
        os.environ[SECRET_ENV] = app["secret"]  # this process only; the demo app's emulator secret
        try:
            yield replace(
                config,
                graph=replace(config.graph, base_url=emu.base_url, ca_bundle=str(emu.ca_path)),
                auth=replace(config.auth, mode="app", tenant_id=tenant["id"],
                             client_id=app["clientId"], authority_host=emu.base_url,
                             client_secret_env=SECRET_ENV, client_secret_file=None,
                             certificate_path=None),
            )
        finally:
            os.environ.pop(SECRET_ENV, None)
