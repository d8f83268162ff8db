"""A TLS certificate that does not verify: one sentence (http.tls_failure_message), never retried.

Two emulators, each with its own CA: sign-in goes to the one the config trusts, Graph to the one
it does not, as when a TLS-inspecting proxy re-signs graph.microsoft.com only. Real HTTPS, real
msal, the real CLI.
"""
from __future__ import annotations

import pytest

from bulkmeet.emulator import Emulator, EmulatorOptions
from tests import helpers


@pytest.fixture
def untrusted_graph(tenant):
    """A second emulator for the same tenant, with a CA nobody told bulkmeet about."""
    with Emulator(EmulatorOptions(directory=tenant.directory_path, seed=8)) as emu:
        yield emu


def tls_sentence(base_url: str, ca: str) -> str:
    return (f"Cannot verify the TLS certificate of Graph at {base_url}: if a proxy inspects TLS on "
            "this network, set ca_bundle in [graph] to your organisation's CA file (PEM); "
            f"REQUESTS_CA_BUNDLE applies only when ca_bundle is not set (now trusting ca_bundle {ca}).")


@pytest.mark.parametrize("organizers", ["upn", "object-id"])
def test_untrusted_graph_certificate_fails_every_row_at_once_with_the_tls_sentence(
        tmp_path, tenant, emulator, untrusted_graph, secret_env, run_cli, organizers):
    rows = helpers.schedule_rows(tenant, 6)
    if organizers == "object-id":  # straight to createOrGet, no GET /users first
        ids = dict(tenant.teachers)
        rows = [r[:3] + [ids[r[3]]] + r[4:] for r in rows]
    schedule = helpers.write_csv(tmp_path / "schedule.csv", rows)
    config = helpers.write_config(tmp_path / "bulkmeet.toml", tenant, emulator.base_url,
                                  emulator.ca_path, extra_run="max_attempts = 2")
    text = config.read_text().replace(f'base_url = "{emulator.base_url}"',
                                      f'base_url = "{untrusted_graph.base_url}"')
    config.write_text(text)

    result = run_cli("run", schedule, "--config", config)

    assert result.code == 1, result.err
    out = helpers.read_output(tmp_path / "schedule.results.xlsx")
    sentence = tls_sentence(untrusted_graph.base_url, emulator.ca_path)
    assert [r["status"] for r in out] == ["failed"] * 6
    assert {r["error"] for r in out} == {sentence}
    assert "attempt(s)" not in result.out + result.err  # not "connection failed after N attempts"
    assert untrusted_graph.stats()["requests"] == 0  # no request got past the handshake
    assert emulator.meetings() == []
    # Sent once each (object ids); with UPNs the one lookup per organizer failed, nothing was sent.
    assert {r["attempts"] for r in out} == ({1} if organizers == "object-id" else {0})


def test_the_sign_in_side_uses_the_same_sentence(tmp_path, tenant, untrusted_graph, emulator,
                                                 secret_env, run_cli):
    rows = helpers.schedule_rows(tenant, 2)
    schedule = helpers.write_csv(tmp_path / "schedule.csv", rows)
    # Trust the first emulator's CA, talk to the second one for everything.
    config = helpers.write_config(tmp_path / "bulkmeet.toml", tenant, untrusted_graph.base_url,
                                  emulator.ca_path)
    result = run_cli("run", schedule, "--config", config)
    assert result.code == 3
    assert (f"Cannot verify the TLS certificate of the sign-in service {untrusted_graph.base_url}: "
            "if a proxy inspects TLS on this network, set ca_bundle in [graph] to your "
            "organisation's CA file (PEM); REQUESTS_CA_BUNDLE applies only when ca_bundle is not "
            f"set (now trusting ca_bundle {emulator.ca_path}).") in result.err
