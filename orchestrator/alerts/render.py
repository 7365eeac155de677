"""The alert as text: the headline, section lines and row table every channel shows."""

from __future__ import annotations

import json
from typing import Any

from orchestrator.alerts.evidence import Alert
from orchestrator.alerts.redaction import clean

__all__ = ["fmt", "headline", "render_text", "section_lines", "table"]

_LABEL = {"escalated": "Escalated", "partial_failure": "Partial failure", "recurring": "Recurring failure",
          "resolved": "Resolved"}


def fmt(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def table(rows: list[dict[str, Any]], width: int = 24) -> str:
    cols = list(dict.fromkeys(str(k) for r in rows for k in r))
    cells = [[fmt("null" if r.get(c) is None else r.get(c), width) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    lines = [cols, *cells]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def section_lines(a: dict[str, Any]) -> dict[str, list[str]]:
    """The per-section text lines every channel shows, from a cleaned alert dict."""
    ev = a["evidence"]
    return {
        "counts": [" · ".join(f"{k} {v}" for k, v in ev["counts"].items())] if ev["counts"] else [],
        "failed": [
            f"{c.get('id')}: observed {fmt(c.get('observed'))}, expected {fmt(c.get('expected'))}"
            + (f" — {c['detail']}" if c.get("detail") else "")
            for c in ev["failed_criteria"]
        ],
        "tried": [
            f"{r.get('skill')} ({r.get('failure_class') or '-'}): "
            + {True: "passed", False: "failed"}.get(r.get("pass"), str(r.get("outcome", "?")))
            + (f" — {r['detail']}" if r.get("detail") else "")
            for r in ev["remediations"]
        ],
    }


def headline(a: dict[str, Any]) -> str:
    return f"heal: {_LABEL[a['status']]} in {a['pipeline']} — {a['failure_class']}"


def render_text(alert: Alert) -> str:
    """The plain-text alert: what failed, what was tried, sample rows, the next step."""
    a = clean(alert.to_dict())
    ev, parts = a["evidence"], section_lines(a)
    out = [f"{headline(a)} [{a['severity']}]", a["summary"], f"run {a['run_id']} · {a['dedup_key']}"]
    if parts["counts"]:
        out.append("counts: " + parts["counts"][0])
    for title, key in (("What failed", "failed"), ("What was tried", "tried")):
        if parts[key]:
            out += [f"{title}:"] + [f"  - {line}" for line in parts[key]]
    if ev["schema_diff"]:
        out.append("Schema diff: " + fmt(ev["schema_diff"], 1000))
    if ev["sample_rows"]:
        out += [f"Sample rows ({len(ev['sample_rows'])}):"] + ["  " + x for x in table(ev["sample_rows"]).splitlines()]
    if ev["next_step"]:
        out.append("Next step: " + ev["next_step"])
    if ev["run_url"]:
        out.append("Report: " + ev["run_url"])
    return "\n".join(out)

