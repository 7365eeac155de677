"""The HTML page of `heal report`: one self-contained file, plots drawn as inline SVG.

No scripts, fonts or stylesheets are fetched: the page opens from a mail attachment or a
CI artifact as it is. Every value from the ledger is escaped. Each plot is an ``<svg>``
with a ``<title>``; every bar and point has its own ``<title>`` as a tooltip.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.report.build import Report

__all__ = ["PLOTS", "render_html"]

#: The plot titles, in page order (tests and readers look for them).
PLOTS = ("Runs per day by status", "Latency percentiles per step", "Remediation timeline",
         "Quarantined rows by reason")
COLORS = {"success": "#2e7d32", "healed": "#1565c0", "partial_failure": "#ef6c00", "escalated": "#c62828",
          "p50": "#90caf9", "p90": "#1e88e5", "p99": "#0d47a1", "pass": "#2e7d32", "fail": "#c62828",
          "bar": "#6d4c41", "axis": "#555", "grid": "#e0e0e0"}
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#212121;margin:24px auto;max-width:1040px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.muted{color:#757575}.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:220px}
.card b{font-size:16px}table{border-collapse:collapse;margin:6px 0 14px}
td,th{border-bottom:1px solid #eee;padding:3px 10px;text-align:left}th{background:#fafafa}
td.n{text-align:right;font-variant-numeric:tabular-nums}.warn{color:#c62828}.ok{color:#2e7d32}
svg{display:block;margin:4px 0 8px;font:11px system-ui,sans-serif}
"""


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _svg(title: str, width: int, height: int, body: list[str]) -> str:
    key = title.lower().replace(" ", "-")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" id="plot-{key}" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-labelledby="{key}-title">'
            f'<title id="{key}-title">{_e(title)}</title>' + "".join(body) + "</svg>")


def _empty(title: str, text: str) -> str:
    return _svg(title, 960, 60, [f'<text x="10" y="34" fill="{COLORS["axis"]}">{_e(text)}</text>'])


def _legend(items: Sequence[str], x: float, y: float) -> list[str]:
    out = []
    for i, name in enumerate(items):
        out.append(f'<rect x="{x + i * 130}" y="{y}" width="10" height="10" fill="{COLORS[name]}"/>'
                   f'<text x="{x + i * 130 + 14}" y="{y + 9}">{_e(name)}</text>')
    return out


def _runs_per_day(days: Sequence[dict[str, Any]], statuses: Sequence[str]) -> str:
    title = PLOTS[0]
    if not days:
        return _empty(title, "no runs in this period")
    width, height, left, top, bottom = 960, 280, 40, 30, 40
    plot_w, plot_h = width - left - 10, height - top - bottom
    peak = max(sum(d[s] for s in statuses) for d in days) or 1
    band = plot_w / len(days)
    body = _legend(statuses, left, 6)
    for tick in sorted({0, peak // 2, peak}):
        y = top + plot_h * (1 - tick / peak)
        body.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="{COLORS["grid"]}"/>'
                    f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>')
    step = max(1, len(days) // 12)
    for i, d in enumerate(days):
        x, base = left + i * band, top + plot_h
        for s in statuses:
            if not d[s]:
                continue
            h = plot_h * d[s] / peak
            base -= h
            body.append(f'<rect class="bar" x="{x + band * 0.1:.1f}" y="{base:.1f}" width="{band * 0.8:.1f}" '
                        f'height="{h:.1f}" fill="{COLORS[s]}"><title>{_e(d["date"])}: {d[s]} {_e(s)}</title></rect>')
        if i % step == 0:
            body.append(f'<text x="{x + band / 2:.1f}" y="{height - bottom + 16}" text-anchor="middle">'
                        f'{_e(d["date"][5:])}</text>')
    return _svg(title, width, height, body)


def _latency(latency: Sequence[dict[str, Any]]) -> str:
    title = PLOTS[1]
    if not latency:
        return _empty(title, "no attempts in this period")
    keys = ("p50", "p90", "p99")
    width, left, row = 960, 150, 42
    height = 34 + row * len(latency)
    peak = max(x["p99_ms"] for x in latency) or 1.0
    plot_w = width - left - 90
    body = _legend(keys, left, 6)
    for i, x in enumerate(latency):
        y = 30 + i * row
        body.append(f'<text x="{left - 8}" y="{y + 20}" text-anchor="end">{_e(x["step"])}</text>')
        for j, k in enumerate(keys):
            w = max(1.0, plot_w * x[f"{k}_ms"] / peak)
            body.append(f'<rect class="bar" x="{left}" y="{y + 4 + j * 11}" width="{w:.1f}" height="10" '
                        f'fill="{COLORS[k]}"><title>{_e(x["step"])} {k}: {x[f"{k}_ms"]:g} ms '
                        f'({x["count"]} attempts)</title></rect>')
        body.append(f'<text x="{left + plot_w * x["p99_ms"] / peak + 6:.1f}" y="{y + 33}">'
                    f'p99 {x["p99_ms"]:.1f} ms</text>')
    return _svg(title, width, height, body)


def _timeline(events: Sequence[dict[str, Any]]) -> str:
    title = PLOTS[2]
    if not events:
        return _empty(title, "no remediations in this period")
    skills = sorted({e["skill"] for e in events})
    times = [datetime.fromisoformat(e["at"]) for e in events]
    start, span = min(times), (max(times) - min(times)).total_seconds() or 1.0
    width, left, lane = 960, 170, 34
    height = 62 + lane * len(skills)
    plot_w = width - left - 30
    body = _legend(("pass", "fail"), left, 6)
    for i, skill in enumerate(skills):
        y = 40 + i * lane + lane / 2
        body.append(f'<line x1="{left}" x2="{width - 20}" y1="{y}" y2="{y}" stroke="{COLORS["grid"]}"/>'
                    f'<text x="{left - 8}" y="{y + 4}" text-anchor="end">{_e(skill)}</text>')
    for e, t in zip(events, times):
        x = left + plot_w * (t - start).total_seconds() / span
        y = 40 + skills.index(e["skill"]) * lane + lane / 2
        color = COLORS["pass" if e["passed"] else "fail"]
        body.append(f'<circle class="event" cx="{x:.1f}" cy="{y}" r="6" fill="{color}" fill-opacity="0.75">'
                    f'<title>{_e(e["at"][:19])} {_e(e["pipeline"])} {_e(e["skill"])} '
                    f'({_e(e["failure_class"] or "-")}): {"healed" if e["passed"] else "failed"}, '
                    f'run {_e(e["run_id"])}</title></circle>')
    body.append(f'<text x="{left}" y="{height - 4}">{_e(str(start)[:19])} UTC</text>'
                f'<text x="{width - 20}" y="{height - 4}" text-anchor="end">{_e(str(max(times))[:19])} UTC</text>')
    return _svg(title, width, height, body)


def _quarantine(reasons: Sequence[dict[str, Any]]) -> str:
    title = PLOTS[3]
    if not reasons:
        return _empty(title, "no quarantined rows in this period")
    shown = list(reasons[:20])
    width, left, row = 960, 260, 24
    height = 16 + row * len(shown)
    peak = max(r["rows"] for r in shown) or 1
    plot_w = width - left - 80
    body = []
    for i, r in enumerate(shown):
        y, w = 8 + i * row, max(1.0, plot_w * r["rows"] / peak)
        body.append(f'<text x="{left - 8}" y="{y + 14}" text-anchor="end">{_e(r["reason"][:40])}</text>'
                    f'<rect class="bar" x="{left}" y="{y + 2}" width="{w:.1f}" height="16" fill="{COLORS["bar"]}">'
                    f'<title>{_e(r["reason"])}: {r["rows"]} rows</title></rect>'
                    f'<text x="{left + w + 6:.1f}" y="{y + 14}">{r["rows"]}</text>')
    return _svg(title, width, height, body)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    if not rows:
        return '<p class="muted">none</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    cells = "".join("<tr>" + "".join(
        f'<td class="n">{v}</td>' if isinstance(v, (int, float)) else f"<td>{_e(v)}</td>" for v in r) + "</tr>"
        for r in rows)
    return f"<table><tr>{head}</tr>{cells}</table>"


def _pipeline_section(p: dict[str, Any]) -> str:
    parts = [f"<h3>{_e(p['pipeline'])}</h3>"]
    notes = [f'<li class="ok">{_e(x["skill"])} healed all {x["tries"]} times it ran</li>' for x in p["always_succeed"]]
    notes += [f'<li class="warn">{_e(x["failure_class"])} recurred in {x["longest_streak"]} consecutive runs'
              f'{" (ongoing)" if x["ongoing"] else ""}</li>' for x in p["recurring"]]
    if notes:
        parts.append("<ul>" + "".join(notes) + "</ul>")
    parts.append(_table(("failure class", "runs", "share"),
                        [(x["failure_class"], x["runs"], f"{x['share']:.0%}") for x in p["failure_classes"]]))
    parts.append(_table(("remediation", "healed", "tries", "success rate"),
                        [(x["skill"], x["healed"], x["tries"], f"{x['rate']:.0%}") for x in p["remediations"]]))
    parts.append(_table(("escalated run", "run date", "summary"),
                        [(r["run_id"], r["run_date"], (r["summary"] or "")[:200]) for r in p["escalated"]]))
    return "".join(parts)


def render_html(report: Report) -> str:
    """One self-contained HTML page: summary cards, the four plots, the failure patterns."""
    statuses = ("success", "healed", "partial_failure", "escalated")
    cards = []
    for p in report.pipelines:
        ok = p["by_status"].get("success", 0) + p["by_status"].get("healed", 0)
        heal = f"median {p['time_to_heal_s']['median']:g}s" if p["time_to_heal_s"] else "-"
        cards.append(f'<div class="card"><b>{_e(p["pipeline"])}</b><br>{p["runs"]} runs, '
                     f'{ok / p["runs"]:.0%} success or healed<br>{p["escalated_runs"]} escalated, '
                     f'{len(p["incidents"]["open"])} incidents open<br>{p["rows"]["loaded"]} rows loaded, '
                     f'{p["rows"]["quarantined"]} quarantined<br>time to heal: {heal}</div>')
    since = f" since {_e(report.since)}" if report.since else ""
    body = [
        f"<h1>heal report{since}</h1>",
        f'<p class="muted">generated {_e(report.generated_at)} from the ledger</p>',
        '<div class="cards">' + "".join(cards) + "</div>" if cards else '<p class="muted">no finished runs</p>',
        f"<h2>{PLOTS[0]}</h2>", _runs_per_day(report.days, statuses),
        f"<h2>{PLOTS[1]}</h2>", _latency(report.latency),
        f"<h2>{PLOTS[2]}</h2>", _timeline(report.timeline),
        f"<h2>{PLOTS[3]}</h2>", _quarantine(report.quarantine),
        "<h2>Failure patterns</h2>", *(_pipeline_section(p) for p in report.pipelines),
    ]
    return ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>heal report{since}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
