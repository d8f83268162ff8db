"""The shipped samples: current with their generator, consistent with each other and the directory."""
from __future__ import annotations

import importlib.util
import json
import zipfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bulkmeet.config import load_config
from bulkmeet.plan import plan_rows
from bulkmeet.sheets import read_sheet

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
NOW = datetime(2027, 1, 15, tzinfo=UTC)


@pytest.fixture(scope="module")
def directory() -> dict:
    return json.loads((SAMPLES / "directory.json").read_text())["tenants"][0]


@pytest.fixture(scope="module")
def plans():
    cfg = load_config(SAMPLES / "bulkmeet.toml")
    return {suffix: plan_rows(read_sheet(SAMPLES / f"schedule{suffix}"), cfg, now=NOW)
            for suffix in (".xlsx", ".csv")}


def test_committed_samples_are_what_the_generator_writes(tmp_path):
    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES / "make_samples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    module.main(["make_samples.py", str(tmp_path)])
    stale = "is stale: run python samples/make_samples.py"
    assert (tmp_path / "schedule.csv").read_bytes() == (SAMPLES / "schedule.csv").read_bytes(), f"schedule.csv {stale}"
    # compare the workbook's parts, not the compressed bytes (zlib versions differ)
    fresh, shipped = (zipfile.ZipFile(p / "schedule.xlsx") for p in (tmp_path, SAMPLES))
    assert fresh.namelist() == shipped.namelist(), f"schedule.xlsx {stale}"
    for name in fresh.namelist():
        assert fresh.read(name) == shipped.read(name), f"schedule.xlsx ({name}) {stale}"


def test_config_loads_and_matches_the_demo_directory(directory):
    cfg = load_config(SAMPLES / "bulkmeet.toml")
    app = directory["apps"][0]
    assert (cfg.auth.mode, cfg.auth.tenant_id, cfg.auth.client_id) == ("app", directory["id"], app["clientId"])
    assert cfg.auth.client_secret_env == "BULKMEET_CLIENT_SECRET"
    assert cfg.mapping.keys == ("CRN", "Date") and cfg.mapping.time_zone == "America/Chicago"
    text = (SAMPLES / "bulkmeet.toml").read_text()
    assert app["secret"] not in text


def test_csv_and_xlsx_plan_to_identical_requests(plans):
    xlsx, csv = plans[".xlsx"], plans[".csv"]
    assert xlsx.requests == csv.requests
    assert xlsx.duplicates == csv.duplicates
    assert [(i.row, i.column, i.external_id) for i in xlsx.invalid] == \
        [(i.row, i.column, i.external_id) for i in csv.invalid]


def test_sample_schedule_has_what_the_demo_needs(plans, directory):
    plan = plans[".xlsx"]
    assert plan.total >= 40
    users = {u["userPrincipalName"]: u for u in directory["users"]}
    organizers = Counter(r.organizer for r in plan.requests)
    assert len(organizers) >= 5 and set(organizers) <= set(users)
    assert organizers["barbara.liskov@school.example"] >= 1  # no access policy: 403 in the demo
    assert organizers["frances.allen@school.example"] == 1  # unlicensed: 404 in the demo
    assert users["frances.allen@school.example"].get("licensed") is False
    for req in plan.requests:
        assert req.attendees and all(a.upn in users for a in req.attendees)
    assert any(a.role == "presenter" for r in plan.requests for a in r.attendees)
    # the four deliberately broken rows and the pasted duplicate
    assert [(i.column, i.message.split(" ")[0]) for i in plan.invalid] == [
        ("Start Time", '"25:00"'), ("End Time", "13:00"), ("Instructor Email", '"grace.hopper.school.example"'),
        ("Instructor Email", "missing;")]
    assert [(d.row, d.first_row) for d in plan.duplicates] == [(5, 3)]


def test_sample_term_crosses_the_dst_change(plans):
    ada = [r for r in plans[".csv"].requests if r.organizer == "ada.lovelace@school.example"]
    hours = {r.start.date().isoformat(): r.start.hour for r in ada}  # 9:00 AM Chicago in UTC
    assert hours["2027-03-08"] == 15 and hours["2027-03-15"] == 14
    assert all(r.end is not None and r.end > r.start for r in plans[".csv"].requests)
