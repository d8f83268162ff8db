"""The HTML run report: rendered by a real headless Chromium, its DOM and screenshot checked."""
from __future__ import annotations

from datetime import date, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from bulkmeet.runreport import (
    Attention,
    OrganizerLine,
    meetings_per_day,
    render,
    write_run_report,
)
from tests import browser
from tests.test_calendars import CHICAGO, published, term

SUMMARY = {
    "schedule": "/srv/term/fall.csv", "output": "/srv/term/fall.results.xlsx",
    "started": "2027-01-05T06:00:00-06:00", "finished": "2027-01-05T06:01:10-06:00",
    "total_rows": 48, "created": 40, "existing": 2, "failed": 3, "invalid": 3, "duplicate": 0,
    "planned": 0, "pending": 0, "requests_sent": 45, "throttled": 1, "dry_run": False,
    "interrupted": False, "api": "https://graph.microsoft.com/v1.0",
    "line": "48 rows: 40 created, 2 existing, 3 failed, 3 invalid", "notes": [],
}
ADMIN = ('403 Forbidden: No application access policy found for this app. A Teams admin must run '
         'in PowerShell: New-CsApplicationAccessPolicy -Identity bulkmeet-policy -AppIds "abc"; '
         'then Grant-CsApplicationAccessPolicy -PolicyName bulkmeet-policy -Identity "oid-3"')


class _Collect(HTMLParser):
    """data-* attributes and their element text, from Chromium's serialised DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, str] = {}
        self.bars: dict[str, int] = {}
        self.attention: str | None = None
        self.scripts = 0
        self._pending: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if "data-count" in a:
            self._pending = a["data-count"]
        if tag == "rect" and "data-day" in a:
            self.bars[str(a["data-day"])] = int(a["data-n"] or 0)
        if "data-attention" in a:
            self.attention = a["data-attention"]

    def handle_data(self, data: str) -> None:
        if self._pending and data.strip():
            self.counts[self._pending] = data.strip()
            self._pending = None


def page(tmp_path: Path, summary: dict | None = None, **parts) -> Path:
    parts.setdefault("meetings", term())
    parts.setdefault("attention", [
        Attention("blocked organizer", ADMIN, organizer="teacher3@test.example"),
        Attention("invalid", "Start: \"25:00\" is not a time (use 09:00 or 9:00 AM)", row=7),
        Attention("orphaned", "<script>alert(1)</script> row removed from the sheet", row=None,
                  organizer="bob@test.example"),
    ])
    parts.setdefault("organizers", [OrganizerLine("teacher0@test.example", "Ada Lovelace", 2,
                                                  cancelled=1, handout=tmp_path / "h" / "a.xlsx")])
    return write_run_report(tmp_path / "fall.results.html", summary or SUMMARY,
                            time_zone="America/Chicago", **parts)


def test_rendered_dom_numbers_match_the_summary_json(tmp_path: Path) -> None:
    dom = browser.dump_dom(page(tmp_path))
    found = _Collect()
    found.feed(dom)
    assert found.counts == {k: str(SUMMARY[k]) for k in (
        "total_rows", "created", "existing", "failed", "invalid", "requests_sent", "throttled")}
    assert found.attention == "3"
    assert found.bars == {"2027-03-08": 1, "2027-03-09": 1, "2027-03-10": 0, "2027-03-11": 0,
                          "2027-03-12": 0, "2027-03-13": 0, "2027-03-14": 0, "2027-03-15": 1}
    assert found.scripts == 0  # the injected <script> stayed text
    assert "Grant-CsApplicationAccessPolicy -PolicyName bulkmeet-policy" in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom


def test_screenshot_shows_the_page(tmp_path: Path) -> None:
    png = browser.screenshot(page(tmp_path), tmp_path / "report.png")
    image = Image.open(png).convert("RGB")
    assert image.size == (1000, 1100)
    colours = image.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 20  # text, banner, boxes, bars: not a blank page
    white = max(colours)[0] / (image.size[0] * image.size[1])
    assert 0.5 < white < 0.995
    # the warning banner (orange left border) and the chart's blue bars are painted
    pixels = {rgb for _, rgb in colours}
    assert (0xEF, 0x8F, 0x00) in pixels
    assert (0x3F, 0x6F, 0xB5) in pixels


def test_ok_run_says_nothing_needs_a_person(tmp_path: Path) -> None:
    ok = {**SUMMARY, "failed": 0, "invalid": 0, "created": 45, "line": "45 rows: 45 created"}
    html = render(ok, meetings=term(), attention=[], organizers=[])
    assert 'data-state="ok"' in html and "Nothing needs a person" in html
    assert '<p data-attention="0">Nothing.</p>' in html


def test_counts_from_other_statuses_appear_when_present(tmp_path: Path) -> None:
    html = render({**SUMMARY, "updated": 4, "orphaned": 2, "skipped": 0})
    assert '<b data-count="updated">4</b>' in html
    assert '<b data-count="orphaned">2</b>' in html
    assert 'data-count="skipped"' not in html  # zero and not a core count


def test_no_script_and_nothing_fetched(tmp_path: Path) -> None:
    html = page(tmp_path).read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    assert "src=" not in html and "@import" not in html and "url(" not in html
    assert 'href="h/a.xlsx"' in html  # links to the files are relative to the report


def test_interrupted_and_dry_run_banners() -> None:
    assert 'data-state="bad"' in render({**SUMMARY, "interrupted": True})
    assert "Dry run: nothing was sent." in render({**SUMMARY, "dry_run": True})


def test_meetings_per_day_fills_empty_days_and_skips_cancelled() -> None:
    days = meetings_per_day(term())
    assert days[0] == (date(2027, 3, 8), 1)
    assert days[-1] == (date(2027, 3, 15), 1)  # the 22nd is cancelled
    assert len(days) == 8
    assert meetings_per_day([]) == []


def test_long_attention_list_is_cut_with_a_pointer(tmp_path: Path) -> None:
    items = [Attention("invalid", f"problem {i}", row=i) for i in range(2, 400)]
    html = render(SUMMARY, attention=items, attention_limit=50)
    assert html.count("<tr><td>invalid</td>") == 50
    assert "… and 348 more" in html


@pytest.mark.parametrize("n", [1, 120])
def test_chart_scales_to_the_term(n: int) -> None:
    start = datetime(2027, 1, 11, 9, 0, tzinfo=CHICAGO)
    from datetime import timedelta

    meetings = [published(i, start + timedelta(days=i)) for i in range(n)]
    html = render(SUMMARY, meetings=meetings)
    assert html.count("<rect ") == n


def test_a_real_run_report_matches_its_summary_json(tmp_path, tenant, emulator, secret_env,
                                                    run_cli) -> None:
    """The CLI against the emulator: failed (no access policy), invalid and created rows; the
    page Chromium renders says what --summary-json says, and lists the admin command."""
    import json

    from tests import helpers

    rows = helpers.schedule_rows(tenant, 9, teachers=len(tenant.teachers))  # last: no policy
    rows.append(["99999", "CS1", "Bad", tenant.teachers[0][0], "2027-03-01", "25:00", "26:00", ""])
    schedule = helpers.write_csv(tmp_path / "term.csv", rows)
    config = helpers.write_config(tmp_path / "bulkmeet.toml", tenant, emulator.base_url,
                                  emulator.ca_path)
    result = run_cli("run", schedule, "--config", config, "--summary-json", tmp_path / "s.json")
    assert result.code == 1, result.err
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["failed"] and summary["invalid"] == 1 and summary["created"]
    report = tmp_path / "term.results.html"
    assert f"Report: {report}" in result.out
    found = _Collect()
    found.feed(browser.dump_dom(report))
    assert found.counts and all(found.counts[k] == str(summary[k]) for k in found.counts)
    assert {"total_rows", "created", "failed", "invalid"} <= set(found.counts)
    assert sum(found.bars.values()) == summary["created"]
    dom = report.read_text(encoding="utf-8")
    blocked = tenant.teachers[-1][0]
    assert "Grant-CsApplicationAccessPolicy" in dom and blocked in dom
    assert summary["blocked"] == [blocked]  # the report knows it from the summary, not the text
    assert dom.count("blocked organizer") == 1
    assert secret_env not in dom  # the client secret never reaches a report
    png = browser.screenshot(report, tmp_path / "run.png")
    assert len(Image.open(png).convert("RGB").getcolors(1 << 20) or []) > 20
