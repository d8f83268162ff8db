"""Builders for the real files the tests use: directories, schedules, configs, certificates.

Test modules share helpers through this module (and fixtures through conftest.py), never by
importing one another.
"""
from __future__ import annotations

import csv
import hashlib
import json
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

SECRET_ENV = "BULKMEET_TEST_SECRET"


def fixed_id(name: str) -> str:
    """A stable GUID for a name: xdist workers must collect identical parametrized test ids."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"bulkmeet-tests/{name}"))


# -- certificates (self-signed, made with `cryptography`) -------------------------------------


def make_key_and_cert(cn: str = "bulkmeet test", *, days: int = 365, key: Any = None) -> tuple[Any, Any]:
    """(private key, self-signed certificate); RSA 2048 unless ``key`` is given (e.g. an EC key)."""
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return key, cert


def key_pem(key: Any, password: str | None = None, traditional: bool = False) -> bytes:
    enc = (serialization.BestAvailableEncryption(password.encode()) if password
           else serialization.NoEncryption())
    fmt = serialization.PrivateFormat.TraditionalOpenSSL if traditional else serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, fmt, enc)


def cert_pem(cert: Any) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_pem(path: Path, key: Any, cert: Any, password: str | None = None,
              cert_first: bool = False) -> Path:
    parts = [key_pem(key, password), cert_pem(cert)]
    path.write_bytes(b"".join(reversed(parts) if cert_first else parts))
    path.chmod(0o600)
    return path


def write_pfx(path: Path, key: Any, cert: Any, password: str | None) -> Path:
    enc = (serialization.BestAvailableEncryption(password.encode()) if password
           else serialization.NoEncryption())
    path.write_bytes(pkcs12.serialize_key_and_certificates(b"bulkmeet", key, cert, None, enc))
    return path


def sha1_hex(cert: Any) -> str:
    """The certificate's SHA-1 thumbprint, upper-case, computed independently of bulkmeet."""
    return hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()  # noqa: S324


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


@dataclass(frozen=True)
class Tenant:
    directory_path: Path
    tenant_id: str
    client_id: str
    secret: str
    teachers: tuple[tuple[str, str], ...]  # (upn, object id); the last has no access policy
    students: tuple[str, ...]


def make_tenant(path: Path, *, teachers: int = 4, policy: str = "all-but-last") -> Tenant:
    tenant_id = str(uuid.uuid4())
    client_id = str(uuid.uuid4())
    secret = "s3cr3t-" + secrets.token_urlsafe(24)
    people = tuple((f"teacher{i}@test.example", str(uuid.uuid4())) for i in range(teachers))
    students = tuple(f"student{i}@students.test.example" for i in range(6))
    users = [{"id": oid, "userPrincipalName": upn} for upn, oid in people]
    users += [{"id": str(uuid.uuid4()), "userPrincipalName": s} for s in students]
    access = "global" if policy == "global" else [oid for _, oid in people[:-1]]
    directory = {"tenants": [{"id": tenant_id, "users": users, "apps": [{
        "clientId": client_id, "secret": secret, "certificatePem": None,
        "roles": ["OnlineMeetings.ReadWrite.All", "User.Read.All"], "accessPolicy": access,
        "publicClient": True, "delegatedScopes": ["OnlineMeetings.ReadWrite", "User.Read"]}]}]}
    path.write_text(json.dumps(directory, indent=2))
    return Tenant(path, tenant_id, client_id, secret, people, students)


HEADER = ["CRN", "Course", "Title", "Teacher", "Date", "Start", "End", "Students"]


def schedule_rows(tenant: Tenant, n: int, *, teachers: int | None = None,
                  first: date = date(2027, 3, 1)) -> list[list[str]]:
    """n valid rows spread over the first `teachers` teachers (default: all with a policy)."""
    usable = tenant.teachers[: teachers or len(tenant.teachers) - 1]
    rows = []
    for i in range(n):
        upn = usable[i % len(usable)][0]
        day = first + timedelta(days=i // 8)
        hour = 8 + i % 8
        rows.append([f"{10000 + i:05d}", f"CS{100 + i % 7}", f"Lecture {i}", upn,
                     day.isoformat(), f"{hour:02d}:00", f"{hour:02d}:50",
                     ";".join(tenant.students[i % 3: i % 3 + 2])])
    return rows


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_xlsx(path: Path, rows: list[list[object]], header: list[str] = HEADER) -> Path:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "Schedule"
    ws.append(header)
    for r in rows:
        ws.append(r)
    wb.save(path)
    return path


def write_config(path: Path, tenant: Tenant, base_url: str, ca_path: str | Path, *,
                 extra_graph: str = "", extra_run: str = "") -> Path:
    path.write_text(f"""\
[graph]
base_url = "{base_url}"
ca_bundle = "{ca_path}"
connect_timeout = 5
read_timeout = 5
{extra_graph}

[auth]
tenant_id = "{tenant.tenant_id}"
client_id = "{tenant.client_id}"
authority_host = "{base_url}"
client_secret_env = "{SECRET_ENV}"

[mapping]
organizer = "Teacher"
subject = "{{Course}}: {{Title}}"
date = "Date"
start_time = "Start"
end_time = "End"
time_zone = "America/Chicago"
attendees = ["Students"]
keys = ["CRN", "Date"]

[run]
concurrency = 8
{extra_run}
""")
    return path


def setup_run(tmp_path: Path, tenant: Tenant, emulator: Any, n: int = 24, fmt: str = "xlsx",
              **cfg: str) -> tuple[Path, Path, list[list[str]]]:
    """(schedule, config, rows): n valid rows in a schedule and a config for the emulator."""
    rows = schedule_rows(tenant, n)
    writer = write_xlsx if fmt == "xlsx" else write_csv
    schedule = writer(tmp_path / f"schedule.{fmt}", rows)
    config = write_config(tmp_path / "bulkmeet.toml", tenant, emulator.base_url,
                          emulator.ca_path, **cfg)
    return schedule, config, rows


def create_calls(emulator: Any) -> int:
    """createOrGet requests the emulator has answered so far."""
    stats = emulator.stats()
    return sum(sum(v.values()) for k, v in stats["by_path"].items() if "createOrGet" in k)


def read_output(path: Path) -> list[dict[str, object]]:
    """Rows of an output sheet (xlsx or csv) as dicts, read back independently of bulkmeet."""
    if path.suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as f:
            return list(csv.DictReader(f))
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True)
    ws = wb.worksheets[0]
    rows = list(ws.iter_rows(values_only=True))
    header = [str(h) for h in rows[0]]
    # write-only sheets have no <dimension>: read-only rows stop at their last non-empty cell
    return [dict(zip(header, (*r, *[None] * (len(header) - len(r))), strict=True))
            for r in rows[1:]]


@contextmanager
def read_only(path: Path) -> Iterator[Path]:
    """Make ``path`` unwritable for this process, root included (chattr +i), and undo it after.

    Root ignores file modes, so as root the immutable attribute is the only honest read-only file;
    where chattr is not available the test is skipped with the reason.
    """
    import os
    import subprocess

    import pytest

    if os.geteuid() != 0:
        path.chmod(0o444)
        try:
            yield path
        finally:
            path.chmod(0o644)
        return
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("cannot make a file read-only for root here (no chattr)")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)
