"""Loading the mapping config: what is accepted, and the message for what is not."""
from __future__ import annotations

from pathlib import Path

import pytest

from bulkmeet.config import (
    AttendeeColumn,
    ConfigError,
    load_config,
    parse_config,
)
from bulkmeet.errors import ExitStatus
from bulkmeet.templates import parse_template, template_columns

MINIMAL = """\
[mapping]
organizer = "Teacher"
subject = "{Course}: {Title}"
keys = ["CRN", "Date"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bulkmeet.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert err.value.exit_status == ExitStatus.UNUSABLE_INPUT
    message = str(err.value)
    assert message.startswith(str(tmp_path / "bulkmeet.toml") + ": ")
    return message[len(str(tmp_path / "bulkmeet.toml")) + 2:]


def test_minimal_config_takes_the_defaults(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.graph.api_version == "v1.0" and cfg.auth.mode == "app"
    assert cfg.mapping.time_zone == "UTC" and cfg.mapping.date_order == "MDY"
    assert cfg.mapping.keys == ("CRN", "Date")
    assert cfg.run.concurrency == 4


def test_time_zone_at_the_top_or_in_mapping_but_not_two_different(tmp_path):
    assert load_config(write(tmp_path, 'time_zone = "America/Chicago"\n' + MINIMAL)).mapping.time_zone \
        == "America/Chicago"
    assert load_config(write(tmp_path, MINIMAL + 'time_zone = "Europe/Berlin"\n')).mapping.time_zone \
        == "Europe/Berlin"
    message = error(tmp_path, 'time_zone = "America/Chicago"\n' + MINIMAL + 'time_zone = "UTC"\n')
    assert message.startswith('time_zone is set twice')
    assert error(tmp_path, "time_zone = -6\n" + MINIMAL).startswith("time_zone must be a text value")
    message = error(tmp_path, 'time_zone = "America/Chicgo"\n' + MINIMAL)
    assert message == ('time_zone "America/Chicgo" is not an IANA time zone (e.g. "America/Chicago"). '
                       'Did you mean "America/Chicago"?')


def test_attendee_columns_and_roles(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL + 'attendees = ["Students", {column = "TA", role = "Presenter"}]\n'))
    assert cfg.mapping.attendees == (AttendeeColumn("Students"), AttendeeColumn("TA", "presenter"))
    assert "role 'teacher' for column 'TA' is not one of attendee, presenter" in \
        error(tmp_path, MINIMAL + 'attendees = [{column = "TA", role = "teacher"}]\n')
    assert "attendees must be a list of column names" in error(tmp_path, MINIMAL + "attendees = 3\n")


@pytest.mark.parametrize("extra, expected", [
    ("organiser = \"X\"\n", "unknown key 'organiser' in [mapping]. Did you mean 'organizer'?"),
    ("date_order = \"YMD\"\n", "[mapping] date_order must be \"MDY\" (1/12/2027 is January 12) or \"DMY\" "
                                "(1/12/2027 is 1 December); it is \"YMD\"."),
    ("thread_id = \"Chat\"\n", "[mapping] thread_id (chatInfo) works only with the beta API: set "
                               "api_version = \"beta\" in [graph], or remove thread_id."),
    ("start_time = \"Start\"\n", "[mapping] 'start_time' needs 'date' (the column with the day of the "
                                 "class); or map 'start' to a column holding date and time."),
    ("end = \"End\"\n", "[mapping] 'end' needs 'start' too (Graph refuses an end without a start)."),
    ("start = \"S\"\ndate = \"D\"\nstart_time = \"T\"\n",
     "[mapping] use either 'start'/'end' date-time columns or 'date' with 'start_time'/'end_time', not both."),
    ("default_duration_minutes = 60\n", "[mapping] default_duration_minutes needs a start column "
                                        "('start', or 'date' with 'start_time')."),
    ("start = \"S\"\ndefault_duration_minutes = 0\n", "[mapping] default_duration_minutes must be between 1 and 1440."),
    ("default_duration_minutes = \"60\"\n", "[mapping] default_duration_minutes must be a whole number (it is \"60\")."),
    ("external_id = \"Id\"\n", "[mapping] set 'external_id' or 'keys', not both."),
    ("organizer_fixed = \"someone\"\n", "[mapping] set 'organizer' or 'organizer_fixed', not both."),
])
def test_mapping_mistakes(tmp_path, extra, expected):
    assert error(tmp_path, MINIMAL + extra) == expected


def test_subject_and_keys_are_checked(tmp_path):
    assert error(tmp_path, MINIMAL.replace('"{Course}: {Title}"', '"{Course: {Title}"')) == (
        "[mapping] subject \"{Course: {Title}\": '{' at character 1 is never closed "
        "(write {{ for a literal brace).")
    assert error(tmp_path, MINIMAL.replace('"{Course}: {Title}"', '"  "')).startswith("[mapping] 'subject' is required")
    assert error(tmp_path, MINIMAL.replace('keys = ["CRN", "Date"]', "keys = [1]")).startswith(
        "[mapping] keys must be a list of column names")
    assert error(tmp_path, MINIMAL.replace('keys = ["CRN", "Date"]\n', "")).startswith("[mapping] needs 'keys'")


def test_organizer_is_required_for_app_mode_but_not_delegated(tmp_path):
    no_org = MINIMAL.replace('organizer = "Teacher"\n', "")
    assert error(tmp_path, no_org).startswith("[mapping] needs 'organizer' (a column) or 'organizer_fixed'")
    assert load_config(write(tmp_path, '[auth]\nmode = "delegated"\n' + no_org)).delegated
    fixed = no_org + 'organizer_fixed = "Ada@School.example"\n'
    assert load_config(write(tmp_path, fixed)).mapping.organizer_fixed == "Ada@School.example"
    assert "is neither an e-mail address (UPN) nor an Entra object ID" in error(
        tmp_path, no_org + 'organizer_fixed = "Ada"\n')


def test_secrets_are_refused_without_echoing_them(tmp_path):
    message = error(tmp_path, '[auth]\nclient_secret = "hunter2-very-secret"\n' + MINIMAL)
    assert "hunter2" not in message
    assert message.startswith("[auth] 'client_secret' looks like a secret, and secrets never go in the config file")
    assert "hunter2" not in error(tmp_path, 'password = "hunter2"\n' + MINIMAL)
    message = error(tmp_path, '[auth]\nclient_secret_env = "hunter2~secret"\n' + MINIMAL)
    assert "hunter2" not in message and "NAME of an environment variable" in message


@pytest.mark.parametrize("section, expected", [
    ('[graph]\napi_version = "v2"\n', '[graph] api_version must be "v1.0" or "beta" (it is "v2").'),
    ('[graph]\nbase_url = "http://graph.example.com"\n',
     "[graph] base_url 'http://graph.example.com' must be an https:// URL (plain http is allowed only "
     "for a loopback address such as 127.0.0.1)."),
    ('[graph]\nread_timeout = 0\n', "[graph] read_timeout must be a number of seconds more than 0 "
                                    "and at most 3600 (it is 0); for example read_timeout = 60."),
    ('[graph]\nresolve_upns = "yes"\n', '[graph] resolve_upns must be true or false (it is "yes").'),
    ('[auth]\nmode = "user"\n', '[auth] mode must be "app" or "delegated" (it is "user").'),
    ('[auth]\nclient_id = "my-app"\n', '[auth] client_id "my-app" is not a GUID: use the Application '
                                       "(client) ID from the app registration's Overview page (not the "
                                       "secret, not the object ID)."),
    ('[auth]\ntenant_id = "contoso tenant"\n', "[auth] tenant_id (the value given is not shown: it may "
     "be a secret) is neither a GUID nor a domain such as contoso.onmicrosoft.com: use the Directory "
     "(tenant) ID GUID from the app registration's Overview page, or the tenant's domain "
     "(contoso.onmicrosoft.com)."),
    ('[auth]\ntenant_id = "contoso.onmicrosoft.c"\n', '[auth] tenant_id "contoso.onmicrosoft.c" '
     "is neither a GUID nor a domain such as contoso.onmicrosoft.com: use the Directory (tenant) ID "
     "GUID from the app registration's Overview page, or the tenant's domain "
     "(contoso.onmicrosoft.com)."),
    ('[auth]\ntenant_id = "common"\n', '[auth] tenant_id "common" lets personal Microsoft accounts sign '
     "in, which bulkmeet does not support: use the Directory (tenant) ID GUID from the app "
     "registration's Overview page, or the tenant's domain (contoso.onmicrosoft.com) (or "
     '"organizations" with mode = "delegated").'),
    ('[auth]\ntenant_id = "organizations"\n', '[auth] tenant_id "organizations" works only when a person '
     'signs in (mode = "delegated"); an app signs in to its own tenant: use the Directory (tenant) ID '
     "GUID from the app registration's Overview page, or the tenant's domain (contoso.onmicrosoft.com)."),
    ('[run]\nconcurrency = 0\n', "[run] concurrency must be at least 1."),
    ('[run]\nconcurrency = 2.5\n', "[run] concurrency must be a whole number (it is 2.5)."),
    ('[run]\nconcurency = 2\n', "unknown key 'concurency' in [run]. Did you mean 'concurrency'?"),
    ('[graf]\n', "unknown section or key 'graf'. Did you mean [graph]?"),
    ('graph = 3\n', "[graph] must be a table (a [graph] header with keys under it)."),
])
def test_other_sections(tmp_path, section, expected):
    assert error(tmp_path, section + MINIMAL) == expected


def test_loopback_http_and_numbers_are_accepted(tmp_path):
    cfg = load_config(write(tmp_path, '[graph]\nbase_url = "http://127.0.0.1:8443/"\nconnect_timeout = 3\n'
                                      '[auth]\ntenant_id = "contoso.onmicrosoft.com"\n'
                                      'client_id = "210EBC0A-C674-5B7A-866F-C2CC1251EC0A"\n' + MINIMAL))
    assert cfg.graph.base_url == "http://127.0.0.1:8443/" and cfg.graph.connect_timeout == 3.0


def test_tenants_by_domain_and_organizations_for_a_person(tmp_path):
    for tenant in ("school.example", "contoso.onmicrosoft.com", "{AB124DA5-DB7B-5A4A-908B-9F2538C5D372}"):
        assert load_config(write(tmp_path, f'[auth]\ntenant_id = "{tenant}"\n' + MINIMAL)).auth.tenant_id \
            == tenant
    cfg = load_config(write(tmp_path, '[auth]\nmode = "delegated"\ntenant_id = "organizations"\n' + MINIMAL))
    assert cfg.delegated and cfg.auth.tenant_id == "organizations"


# Plain http is for loopback only, and what is checked must be what the HTTP client connects to:
# urllib3 ends the host at a backslash where urllib.parse does not (issue 12, item 5).
HOSTILE_URLS = [
    ("http://127.0.0.5\\@127.0.0.1:8443",
     "'http://127.0.0.5\\@127.0.0.1:8443' contains a backslash: URL parsers disagree about where its "
     "host ends; write the URL with forward slashes only."),
    ("http://graph.example.com\\@127.0.0.1",
     "'http://graph.example.com\\@127.0.0.1' contains a backslash: URL parsers disagree about where "
     "its host ends; write the URL with forward slashes only."),
    ("http://ops:hunter2@127.0.0.1:8443",
     "must not contain a user name or password before the host (user@...): remove it; bulkmeet "
     "never sends credentials in a URL."),
    ("https://graph.microsoft.com@evil.example",
     "must not contain a user name or password before the host (user@...): remove it; bulkmeet "
     "never sends credentials in a URL."),
    ("http://127.0.0.%31:8443",
     "'http://127.0.0.%31:8443' has a percent-encoded host: write the host name plainly (e.g. "
     "127.0.0.1)."),
    ("http://[fe80::1%25eth0]:8443",
     "'http://[fe80::1%25eth0]:8443' names an IPv6 zone (%...): zones are not supported; use [::1] "
     "or a global address."),
    ("http://localhost.:8443",
     "'http://localhost.:8443': the host 'localhost.' ends with a dot: remove it."),
    ("http://127.1:8443",
     "'http://127.1:8443': the host '127.1' is not a valid IP address: write four numbers from 0 to "
     "255, e.g. 127.0.0.1."),
    ("http://2130706433/",
     "'http://2130706433/': the host '2130706433' is not a valid IP address: write four numbers from "
     "0 to 255, e.g. 127.0.0.1."),
    ("http://127.0.0.1#@evil.example/",
     "'http://127.0.0.1#...' must not have a ?query or #fragment (not shown: it may hold a key): "
     "remove it."),
    ("https://127.0.0.1:9/?sig=s3cr3t",
     "'https://127.0.0.1:9/?...' must not have a ?query or #fragment (not shown: it may hold a key): "
     "remove it."),
    ("ftp://ops:hunter2@127.0.0.1/x?code=s3cr3t",
     "'ftp://...@127.0.0.1/x?...' must be an https:// URL (plain http is allowed only for a loopback "
     "address such as 127.0.0.1)."),
    ("http://ops:hunter2\\@127.0.0.1",
     "'http://...@127.0.0.1' contains a backslash: URL parsers disagree about where its host ends; "
     "write the URL with forward slashes only."),
    ("https://graph.microsoft.com:0",
     "'https://graph.microsoft.com:0' has an invalid port: use a number from 1 to 65535, or leave the "
     "port out."),
    ("https://grаph.microsoft.com",  # a Cyrillic 'а'
     "'https://grаph.microsoft.com': the host has non-ASCII characters: write it in its xn-- form "
     "(xn--grph-63d.microsoft.com)."),
    ("http://127.0.0.1\x1b]0;owned\x07:8443",
     "'http://127.0.0.1\\x1b]0;owned\\x07:8443' contains a space or control character: remove it."),
    ("http://[::ffff:192.0.2.1]:8443",
     "'http://[::ffff:192.0.2.1]:8443' must be an https:// URL (plain http is allowed only for a "
     "loopback address such as 127.0.0.1)."),
]


@pytest.mark.parametrize("url,expected", HOSTILE_URLS, ids=[u for u, _ in HOSTILE_URLS])
def test_hostile_base_urls_are_refused_with_exact_text(tmp_path, url, expected):
    toml_url = url.replace("\\", "\\\\").replace("\x1b", "\\u001b").replace("\x07", "\\u0007")
    message = error(tmp_path, f'[graph]\nbase_url = "{toml_url}"\n' + MINIMAL)
    assert message == f"[graph] base_url {expected}"
    assert "hunter2" not in message and "s3cr3t" not in message


def test_a_key_in_the_authority_hosts_query_is_not_echoed(tmp_path):
    message = error(tmp_path, '[auth]\nauthority_host = "https://127.0.0.1:9?code=s3cr3t#x"\n'
                    + MINIMAL)
    assert message == ("[auth] authority_host 'https://127.0.0.1:9?...' must not have a ?query or "
                       "#fragment (not shown: it may hold a key): remove it.")


def test_hostile_authority_host_is_refused_the_same_way(tmp_path):
    message = error(tmp_path, '[auth]\nauthority_host = "https://login.example.com\\\\@127.0.0.1"\n'
                    + MINIMAL)
    assert message == ("[auth] authority_host 'https://login.example.com\\@127.0.0.1' contains a "
                       "backslash: URL parsers disagree about where its host ends; write the URL "
                       "with forward slashes only.")


def test_file_problems(tmp_path):
    with pytest.raises(ConfigError, match="config file not found .create one with `bulkmeet init SCHEDULE`"):
        load_config(tmp_path / "missing.toml")
    assert error(tmp_path, "[mapping\n").startswith("not valid TOML: ")
    path = tmp_path / "bulkmeet.toml"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())  # Notepad's BOM is fine
    assert load_config(path).mapping.organizer == "Teacher"
    path.write_bytes(MINIMAL.replace("Teacher", "Lehrer\u00e9").encode("cp1252"))
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(path)


def test_parse_config_without_a_file_names_config():
    with pytest.raises(ConfigError, match=r"^config: \[mapping\] 'subject' is required"):
        parse_config({"mapping": {"organizer": "T", "keys": ["K"]}})


def test_templates():
    assert template_columns("{Course Code} {Section}: {Title} {Course Code} {Date:%b %d} {{x}}") == [
        "Course Code", "Section", "Title", "Date"]
    assert template_columns("{Room: Building:}") == ["Room: Building"]
    for bad in ("{Course", "Course}", "{}", "{ :%b}"):
        with pytest.raises(ValueError):
            parse_template(bad)


def test_mapped_columns_lists_every_column_once_per_use(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL + 'date = "Date"\nstart_time = "Start"\nattendees = ["Students"]\n'))
    assert cfg.mapping.mapped_columns() == [
        ("organizer", "Teacher"), ("date", "Date"), ("start_time", "Start"), ("subject", "Course"),
        ("subject", "Title"), ("attendees", "Students"), ("keys", "CRN"), ("keys", "Date")]
