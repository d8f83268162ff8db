"""`--emulator`: run the job against an emulator started inside this process.

So a new user sees the whole job work before they have an Azure app. The emulator keeps its state
beside the schedule (NAME.emulator-state.json), so a second run sees the meetings the first one
made, as a real tenant would. The config's Graph and identity settings are pointed at it and the
demo app's credentials are used; the mapping is the user's own.

``directory`` (``--directory FILE``) replaces the demo tenant with the user's own, in the
emulator's format (README "The directory file"): their real teachers' UPNs, licences and access
policy, so a real config can be tried end to end on this machine. The tenant is the one with the
config's ``tenant_id`` if the file has it, else the first; the app is the config's ``client_id``
if that app has a secret in the file, else the tenant's first app with a secret. Which directory
a state was made with is noted beside it (NAME.emulator-tenant.json), and a later command with
another one is refused: the emulator would drop the meetings of organizers it does not know.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from bulkmeet.atomic import atomic_write_bytes
from bulkmeet.config import Config
from bulkmeet.errors import InputError

SECRET_ENV = "BULKMEET_EMULATOR_SECRET"
DEMO_DIRECTORY = Path(__file__).parent / "emulator" / "demo_directory.json"
log = logging.getLogger(__name__)


def state_path(schedule: Path) -> Path:
    return schedule.with_name(schedule.stem + ".emulator-state.json")


def tenant_note_path(schedule: Path) -> Path:
    """NAME.emulator-tenant.json: which --directory (or the demo) the state file was made with."""
    return schedule.with_name(schedule.stem + ".emulator-tenant.json")


def _check_same_tenant(schedule: Path, directory: Path | None) -> None:
    """Refuse to start an existing state with another tenant than the one it was made with.

    The state keeps the meetings, not the people: started with another directory (or with the
    demo tenant after a ``--directory`` run), the emulator knows none of their organizers and
    drops their meetings when it saves, so a ``verify`` would report every meeting gone and
    leave them gone. The note (``tenant_note_path``) is written with a new state only
    (``_remember_tenant``), so it names the tenant the state's meetings were made in; a state
    from before notes were kept has none and is not checked.
    """
    note = tenant_note_path(schedule)
    try:
        made_with = json.loads(note.read_text(encoding="utf-8"))["directory"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    if not state_path(schedule).exists() or made_with == _tenant_key(directory):
        return
    then = f"--directory {made_with}" if made_with else "the demo tenant (no --directory)"
    now = f"--directory {_tenant_key(directory)}" if directory else "the demo tenant"
    fix = f"pass --directory {made_with}" if made_with else "leave --directory out"
    raise InputError(
        f"The embedded emulator's state {state_path(schedule)} was made with {then}, but this "
        f"command uses {now}, which does not have the organizers of its meetings (the emulator "
        f"would drop them): {fix}, or delete {state_path(schedule)} and {note} to start afresh.")


def _remember_tenant(schedule: Path, directory: Path | None) -> None:
    note = tenant_note_path(schedule)
    try:
        atomic_write_bytes(note, json.dumps({"directory": _tenant_key(directory)}).encode()
                           + b"\n")
    except OSError as exc:  # only the check of a later run is lost; this one can go on
        log.warning("Could not write %s (%s).", note, exc.strerror)


def _tenant_key(directory: Path | None) -> str | None:
    return str(directory.resolve()) if directory else None


def _tenant_and_app(config: Config, directory: Path | None) -> tuple[str, str, str]:
    """(tenant id, client id, secret) the embedded run signs in with."""
    if directory is None:
        tenant = json.loads(DEMO_DIRECTORY.read_text())["tenants"][0]
        app = tenant["apps"][0]
        return tenant["id"], app["clientId"], app["secret"]
    from bulkmeet.emulator.directory import DirectoryError, load_directory

    try:
        loaded = load_directory(directory)
    except DirectoryError as exc:
        raise InputError(f"--directory: {exc}") from None
    wanted = config.auth.tenant_id.lower()
    tenant_ = next((t for t in loaded.tenants if t.id == wanted), loaded.tenants[0])
    apps = [a for a in tenant_.apps if a.secret and not a.secret_expired]
    app_ = next((a for a in apps if a.client_id == config.auth.client_id.lower()),
                apps[0] if apps else None)
    if app_ is None or app_.secret is None:
        raise InputError(
            f"{directory}: tenant {tenant_.id} has no app with a secret, so the embedded emulator "
            "cannot sign in: add an app with \"secret\", \"roles\": [\"OnlineMeetings.ReadWrite.All\", "
            "\"User.Read.All\"] and an \"accessPolicy\" (README \"The directory file\").")
    return tenant_.id, app_.client_id, app_.secret


@contextmanager
def embedded_emulator(schedule: Path, config: Config, directory: Path | None = None
                      ) -> Iterator[Config]:
    from bulkmeet.emulator import Emulator, EmulatorOptions

    tenant_id, client_id, secret = _tenant_and_app(config, directory)
    options = EmulatorOptions(state_path=state_path(schedule), directory=directory)
    _check_same_tenant(schedule, directory)
    new_state = not state_path(schedule).exists()
    with Emulator(options) as emu:
        if new_state:
            _remember_tenant(schedule, directory)
        os.environ[SECRET_ENV] = secret  # this process only; the emulator app's secret
        try:
            yield replace(
                config,
                graph=replace(config.graph, base_url=emu.base_url, ca_bundle=str(emu.ca_path)),
                auth=replace(config.auth, mode="app", tenant_id=tenant_id,
                             client_id=client_id, authority_host=emu.base_url,
                             client_secret_env=SECRET_ENV, client_secret_file=None,
                             certificate_path=None),
            )
        finally:
            os.environ.pop(SECRET_ENV, None)
