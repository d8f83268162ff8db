"""Tenants named as the identity platform allows: by GUID, by a verified domain, or (for a person
signing in) ``organizations`` — end to end through the CLI, real msal, the emulator over HTTPS."""
from __future__ import annotations

import re
import threading

import pytest

from bulkmeet import auth
from bulkmeet.config import load_config
from tests import helpers


def config_for(tmp_path, tenant, emulator, tenant_id: str, *, delegated: bool = False):
    config = helpers.write_config(tmp_path / "bulkmeet.toml", tenant, emulator.base_url,
                                  emulator.ca_path)
    text = config.read_text().replace(f'tenant_id = "{tenant.tenant_id}"', f'tenant_id = "{tenant_id}"')
    if delegated:
        text = text.replace('organizer = "Teacher"\n', "").replace(
            "[auth]\n", f'[auth]\nmode = "delegated"\ntoken_cache = "{tmp_path / "tokens.json"}"\n')
    config.write_text(text)
    return config


def sign_in(emulator, config, upn: str) -> str:
    """`bulkmeet login`'s library call, with the code approved as the person would."""
    def echo(message: str) -> None:
        code = re.search(r"enter the code (\S+)", message).group(1)
        threading.Timer(0.2, emulator.approve_device_code, (code, upn)).start()

    return auth.login(load_config(config), echo=echo, timeout=30)


@pytest.mark.parametrize("domain", ["test.example", "TEST.example"])
def test_app_sign_in_with_the_tenant_named_by_its_domain(tmp_path, tenant, emulator, secret_env,
                                                          run_cli, domain):
    schedule = helpers.write_csv(tmp_path / "s.csv", helpers.schedule_rows(tenant, 3))
    config = config_for(tmp_path, tenant, emulator, domain)
    result = run_cli("run", schedule, "--config", config)
    assert result.code == 0, result.err
    assert len(emulator.meetings()) == 3


@pytest.mark.parametrize("tenant_name", ["organizations", "test.example"])
def test_delegated_sign_in_through_organizations_or_a_domain_then_unattended_runs(
        tmp_path, tenant, emulator, run_cli, tenant_name):
    emulator.configure(device_code_interval_s=1)
    teacher_upn, teacher_id = tenant.teachers[0]
    schedule = helpers.write_csv(tmp_path / "s.csv", helpers.schedule_rows(tenant, 2))
    config = config_for(tmp_path, tenant, emulator, tenant_name, delegated=True)
    assert sign_in(emulator, config, teacher_upn) == teacher_upn

    first = run_cli("run", schedule, "--config", config)
    assert first.code == 0, first.err
    assert {m["organizerId"] for m in emulator.meetings()} == {teacher_id}
    rows = helpers.schedule_rows(tenant, 4)[2:]
    again = run_cli("run", helpers.write_csv(tmp_path / "t.csv", rows), "--config", config)
    assert again.code == 0, again.err  # the next cron run signs in from the cache by itself
    assert len(emulator.meetings()) == 4


def test_organizations_is_refused_for_an_app_before_anything_is_sent(tmp_path, tenant, emulator,
                                                                    secret_env, run_cli):
    schedule = helpers.write_csv(tmp_path / "s.csv", helpers.schedule_rows(tenant, 2))
    config = config_for(tmp_path, tenant, emulator, "organizations")
    result = run_cli("run", schedule, "--config", config)
    assert result.code == 2
    assert (f'{config}: [auth] tenant_id "organizations" works only when a person signs in '
            '(mode = "delegated"); an app signs in to its own tenant:') in result.err
    assert emulator.stats()["requests"] == 0


def test_a_domain_no_tenant_has_is_the_identity_platforms_unknown_tenant(
        tmp_path, tenant, emulator, secret_env, run_cli):
    schedule = helpers.write_csv(tmp_path / "s.csv", helpers.schedule_rows(tenant, 2))
    config = config_for(tmp_path, tenant, emulator, "other-school.example")
    result = run_cli("run", schedule, "--config", config)
    assert result.code == 3
    assert "Tenant 'other-school.example' was not found (AADSTS90002)" in result.err
