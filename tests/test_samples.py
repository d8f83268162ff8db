"""The shipped samples: current with their generator, consistent with each other and the directory."""
from __future__ import annotations

import importlib.util
import json
import zipfile
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

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


# --- the registrar-export sample (samples/registrar/) --------------------------------------------

REGISTRAR = SAMPLES / "registrar"


def test_committed_registrar_sample_is_what_the_generator_writes(tmp_path):
    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES / "make_samples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    module.main(["make_samples.py", str(tmp_path)])
    for name in ("export.csv", "staff.csv", "terms.csv"):
        assert (tmp_path / "registrar" / name).read_bytes() == (REGISTRAR / name).read_bytes(), \
            f"registrar/{name} is stale: run python samples/make_samples.py"


@pytest.fixture(scope="module")
def registrar_plan():
    cfg = load_config(REGISTRAR / "bulkmeet.toml")
    return cfg, plan_rows(read_sheet(REGISTRAR / "export.csv"), cfg, now=NOW)


def test_registrar_sample_has_every_shape_and_plans_as_the_readme_says(registrar_plan, directory):
    cfg, plan = registrar_plan
    assert cfg.pattern is not None and cfg.pattern.meetings == "session"
    assert len(plan.requests) == 254
    assert [(i.row, i.column) for i in plan.invalid] == [(14, "Instructor"), (15, "Instructor")]
    assert [s.row for s in plan.skipped] == [11, 12, 13]
    policy = set(directory["apps"][0]["accessPolicy"])
    ids = {u["userPrincipalName"]: u["id"] for u in directory["users"]}
    assert {ids[r.organizer] for r in plan.requests} <= policy  # every valid meeting can be made
    subjects = {r.subject for r in plan.requests}
    assert "ACCT 4350-001: Atg Measurement & Disclosure" in subjects
    assert "BIOL 1406-002: Biology for Science Majors I" in subjects
    by_row = Counter(r.row for r in plan.requests)
    assert by_row[6] == by_row[7]  # CHEM 1411: two blocks a day, same days
    cal1 = [r for r in plan.requests if r.row == 2]  # MWF, part 1
    days = [r.start.astimezone(ZoneInfo("America/Chicago")).date() for r in cal1 if r.start]
    assert not [d for d in days if date(2027, 3, 15) <= d <= date(2027, 3, 19)]  # spring break
    assert date(2027, 4, 2) not in days  # Good Friday closure
    hours = {r.start.hour for r in cal1 if r.start}
    assert hours == {14, 15}  # 9:00 AM CST and CDT: the term crosses the DST switch
    assert all(r.session >= 1 for r in plan.requests)
    coorganizers = [a for r in plan.requests if r.row == 3 for a in r.attendees]
    assert {(a.upn, a.role) for a in coorganizers} == {("grace.hopper@school.example", "coorganizer")}
