"""The one-page run report: an HTML file beside the results, for the person who reads the cron mail.

It answers, in this order: did it work (a coloured banner and the counts), what needs a person
(organizers Graph refused with the admin command that fixes it, invalid and failed rows, meetings
whose rows are gone), who got what (one line per organizer, linking their handout and calendar),
and when (a bar chart of meetings per day across the term, where a missing week or a doubled day
shows at a glance).

Made to be opened from a mail attachment: one self-contained file, inline CSS and an inline SVG
chart, no JavaScript, no fonts or images fetched from anywhere. Every count carries a
``data-count`` attribute naming its ``--summary-json`` key, so a test (and a curious operator)
can check that the page says what the JSON says. Every value is HTML-escaped; nothing secret is
ever in the inputs (the summary, the meetings' public join details, row errors).
"""
from __future__ import annotations

import html
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from bulkmeet import __version__
from bulkmeet.calendars import write_for_people
from bulkmeet.models import PublishedMeeting

__all__ = ["Attention", "OrganizerLine", "COUNT_KEYS", "render", "write_run_report",
           "meetings_per_day", "default_report_path"]

# Summary keys shown as counts, in this order, when the summary has them (others' statuses, such
# as updated or skipped, appear as soon as the summary carries them). The first ones always show.
COUNT_KEYS = ("total_rows", "created", "existing", "updated", "unchanged", "failed", "invalid",
              "duplicate", "skipped", "shared", "orphaned", "cancelled", "planned", "pending",
              "requests_sent", "throttled")
_ALWAYS = ("total_rows", "created", "existing", "failed", "invalid")
_LABELS = {"total_rows": "rows", "requests_sent": "requests sent", "throttled": "throttled (429)",
           "shared": "sharing a section's meeting"}
_BAD = ("failed", "invalid", "duplicate", "orphaned", "pending")
CHART_MAX_DAYS = 400  # a longer span is drawn from its first 400 days, and says so


@dataclass(frozen=True)
class Attention:
    """One thing a person has to do something about."""

    kind: str  # "blocked organizer" | "invalid" | "failed" | "duplicate" | "orphaned" | "note"
    message: str
    row: int | None = None
    organizer: str | None = None


@dataclass(frozen=True)
class OrganizerLine:
    organizer: str
    name: str
    meetings: int  # live meetings (not cancelled)
    failed: int = 0
    cancelled: int = 0
    first: datetime | None = None
    last: datetime | None = None
    handout: Path | None = None
    calendar: Path | None = None


def default_report_path(output: Path) -> Path:
    """``term.results.xlsx`` -> ``term.results.html``, beside it."""
    return Path(output).with_suffix(".html")


def meetings_per_day(meetings: Sequence[PublishedMeeting]) -> list[tuple[date, int]]:
    """Every day from the first meeting to the last (empty days included), with its count."""
    days = Counter(m.start.date() for m in meetings if m.start is not None and not m.cancelled)
    if not days:
        return []
    first, last = min(days), max(days)
    span = min((last - first).days, CHART_MAX_DAYS - 1)
    return [(first + timedelta(days=i), days.get(first + timedelta(days=i), 0))
            for i in range(span + 1)]


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _chart(per_day: list[tuple[date, int]]) -> str:
    if not per_day:
        return "<p class=muted>No meetings with a start time: nothing to chart.</p>"
    width, height, left, bottom, top = 760, 180, 36, 28, 12
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = max(count for _, count in per_day) or 1
    step = plot_w / len(per_day)
    bar = min(max(step * 0.8, 1.0), 24.0)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-labelledby="chart-title">',
             '<title id="chart-title">Meetings per day</title>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 8}" y2="{top + plot_h}" '
             'stroke="#888"/>',
             f'<text x="{left - 4}" y="{top + 8}" text-anchor="end" class="axis">{peak}</text>',
             f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" class="axis">0</text>']
    label_every = 7 if len(per_day) > 21 else 1
    if len(per_day) > 140:
        label_every = 28
    for i, (day, count) in enumerate(per_day):
        x = left + i * step
        h = plot_h * count / peak
        weekend = day.weekday() >= 5
        parts.append(
            f'<rect class="bar{" weekend" if weekend else ""}" x="{x:.1f}" y="{top + plot_h - h:.1f}" '
            f'width="{bar:.1f}" height="{h:.1f}" data-day="{day.isoformat()}" data-n="{count}">'
            f'<title>{day:%a %Y-%m-%d}: {count} meeting{"" if count == 1 else "s"}</title></rect>')
        if i % label_every == 0:
            parts.append(f'<text x="{x:.1f}" y="{height - 10}" class="axis">{day:%b %d}</text>')
    parts.append("</svg>")
    return "".join(parts)


_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:24px;color:#222;
max-width:1000px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.banner{padding:12px 16px;border-radius:6px;font-size:16px;margin:12px 0}
.ok{background:#e3f4e6;border-left:6px solid #2e7d32} .warn{background:#fff4e0;border-left:6px solid #ef8f00}
.bad{background:#fde7e9;border-left:6px solid #c62828}
.counts{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0}
.count{border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:90px;text-align:center}
.count b{display:block;font-size:24px} .count.alert b{color:#c62828}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eee;vertical-align:top}
th{background:#f5f5f5} td.n,th.n{text-align:right} code{font-size:12px;overflow-wrap:anywhere}
.muted{color:#777} .bar{fill:#3f6fb5} .bar.weekend{fill:#9bb3d9} .axis{font-size:11px;fill:#555}
"""


def _counts(summary: Mapping[str, Any]) -> str:
    cells = []
    for key in COUNT_KEYS:
        value = summary.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            continue
        if key not in _ALWAYS and not value:
            continue
        alert = " alert" if key in _BAD and value else ""
        cells.append(f'<div class="count{alert}"><b data-count="{_e(key)}">{value}</b>'
                     f'{_e(_LABELS.get(key, key))}</div>')
    return f'<div class="counts">{"".join(cells)}</div>'


def _banner(summary: Mapping[str, Any], attention: Sequence[Attention]) -> str:
    if summary.get("interrupted"):
        kind, text = "bad", "Interrupted: run bulkmeet again to finish."
    elif any(summary.get(k) for k in ("failed", "invalid", "duplicate", "pending")):
        kind, text = "warn", "Finished, but some rows need a person (below)."
    elif attention:
        kind, text = "warn", "Every row has a meeting; some things need a person (below)."
    else:
        kind, text = "ok", "Every row has a meeting. Nothing needs a person."
    if summary.get("dry_run"):
        kind, text = "ok", "Dry run: nothing was sent."
    return (f'<div class="banner {kind}" data-state="{kind}"><b>{_e(text)}</b><br>'
            f'<span data-line>{_e(summary.get("line", ""))}</span></div>')


def _attention(items: Sequence[Attention], limit: int) -> str:
    if not items:
        return '<p data-attention="0">Nothing.</p>'
    rows = []
    for item in items[:limit]:
        rows.append(f"<tr><td>{_e(item.kind)}</td><td>{_e(item.row) if item.row else ''}</td>"
                    f"<td>{_e(item.organizer or '')}</td><td><code>{_e(item.message)}</code></td></tr>")
    more = ""
    if len(items) > limit:
        more = (f'<p class=muted>… and {len(items) - limit} more: see the error column of the '
                "results sheet.</p>")
    return (f'<table data-attention="{len(items)}"><tr><th>What</th><th>Row</th><th>Organizer</th>'
            f'<th>Details and the fix</th></tr>{"".join(rows)}</table>{more}')


def _href(path: Path | None, base: Path, text: str) -> str:
    if path is None:
        return ""
    try:
        rel = os.path.relpath(path, base)
    except ValueError:  # another drive on Windows
        rel = str(path)
    return f'<a href="{_e(Path(rel).as_posix())}">{_e(text)}</a>'


def _when(value: datetime | None) -> str:
    return value.strftime("%a %Y-%m-%d %H:%M") if value else ""


def _organizers(lines: Sequence[OrganizerLine], base: Path) -> str:
    if not lines:
        return "<p class=muted>No organizer has meetings in this run.</p>"
    rows = []
    for o in lines:
        who = _e(o.name) if o.name == o.organizer else f"{_e(o.name)}<br><span class=muted>{_e(o.organizer)}</span>"
        rows.append(
            f'<tr data-organizer="{_e(o.organizer)}"><td>{who}</td><td class=n data-meetings>{o.meetings}</td>'
            f"<td class=n>{o.failed or ''}</td><td class=n>{o.cancelled or ''}</td>"
            f"<td>{_e(_when(o.first))}</td><td>{_e(_when(o.last))}</td>"
            f"<td>{_href(o.handout, base, 'handout')} {_href(o.calendar, base, 'calendar')}</td></tr>")
    return ("<table><tr><th>Organizer</th><th class=n>Meetings</th><th class=n>Failed</th><th class=n>Cancelled</th>"
            f"<th>First class</th><th>Last class</th><th>Files</th></tr>{''.join(rows)}</table>")


def render(summary: Mapping[str, Any], *, meetings: Sequence[PublishedMeeting] = (),
           attention: Sequence[Attention] = (), organizers: Sequence[OrganizerLine] = (),
           time_zone: str = "UTC", base: Path = Path("."), files: Mapping[str, Path] | None = None,
           attention_limit: int = 200) -> str:
    """The whole page as text. ``base`` is the report's folder (links are relative to it)."""
    per_day = meetings_per_day(meetings)
    span = ""
    if per_day:
        span = (f"{per_day[0][0]:%a %Y-%m-%d} to {per_day[-1][0]:%a %Y-%m-%d}, times in "
                f"{_e(time_zone)}")
    links = " · ".join(_href(p, base, label) for label, p in (files or {}).items())
    when = f"{summary.get('started', '')} to {summary.get('finished', '')}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>bulkmeet run: {_e(Path(str(summary.get("schedule", ""))).name)}</title>
<style>{_CSS}</style></head>
<body>
<h1>bulkmeet run report</h1>
<div class=muted>{_e(summary.get("schedule", ""))} · {_e(when)} · {_e(summary.get("api", ""))}</div>
{_banner(summary, attention)}
{_counts(summary)}
<div>{links}</div>
<h2>Needs a person</h2>
{_attention(attention, attention_limit)}
<h2>Organizers</h2>
{_organizers(organizers, base)}
<h2>Meetings per day</h2>
<div class=muted>{span}</div>
{_chart(per_day)}
<p class=muted>bulkmeet {_e(__version__)}. This page needs no network and no scripts.</p>
</body></html>
"""


def write_run_report(path: Path, summary: Mapping[str, Any], **parts: Any) -> Path:
    """Render and write the page atomically; ``parts`` are ``render``'s keyword arguments."""
    path = Path(path)
    text = render(summary, base=path.parent, **parts).encode("utf-8")

    write_for_people(path, text, what="the run report",
                     advice="")
    return path
