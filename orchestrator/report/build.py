"""Failure patterns from the ledger, and their text form.

:func:`build_report` reads the ledger once per table (runs, attempts, remediations,
quarantine, incidents) with portable SQL and works the patterns out in Python: the most
common failure classes per pipeline, each remediation's success rate, time to heal,
escalated runs, remediations that always succeed and failures that recur.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from orchestrator.ledger import Ledger

__all__ = ["STATUSES", "Report", "build_report", "render_text"]

STATUSES = ("success", "healed", "partial_failure", "escalated")


@dataclass(frozen=True)
class Report:
    """Everything `heal report` shows; ``to_dict()`` is the ``--json`` form."""

    generated_at: str
    since: str | None
    pipelines: tuple[dict[str, Any], ...]
    days: tuple[dict[str, Any], ...]  # per run_date: runs per status
    latency: tuple[dict[str, Any], ...]  # per step: count, p50/p90/p99/max in ms
    timeline: tuple[dict[str, Any], ...]  # remediation events, oldest first
    quarantine: tuple[dict[str, Any], ...]  # reason → rows, most first

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (``values`` sorted, not empty)."""
    pos = (len(values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def _where(pipeline: str | None, since: date | None, alias: str = "r") -> tuple[str, list[Any]]:
    clauses, params = [f"{alias}.status <> 'running'"], []
    if pipeline:
        clauses.append(f"{alias}.pipeline = ?")
        params.append(pipeline)
    if since:
        clauses.append(f"{alias}.run_date >= ?")
        params.append(since)
    return " AND ".join(clauses), params


def build_report(
    ledger: Ledger,
    *,
    pipeline: str | None = None,
    since: date | None = None,
    recurring_runs: int = 3,
    min_tries: int = 3,
) -> Report:
    """Failure patterns and plot data from the ledger (one pipeline, or all in it).

    ``recurring_runs``: a failure class seen in that many consecutive runs recurs.
    ``min_tries``: a remediation "always succeeds" only after that many tries.
    """
    q = ledger.sink.query
    where, params = _where(pipeline, since)
    runs = q("SELECT r.run_id, r.pipeline, r.run_date, r.status, r.rows_read, r.rows_loaded, r.rows_quarantined, "
             f"r.rows_duplicates, r.summary FROM heal.runs r WHERE {where} ORDER BY r.started_at, r.run_id", params)
    attempts = q("SELECT a.run_id, a.seq, a.step, a.attempt, a.level, a.passed, a.failure_class, a.started_at, "
                 f"a.duration_ms FROM heal.attempts a JOIN heal.runs r ON a.run_id = r.run_id WHERE {where} "
                 "ORDER BY a.run_id, a.seq", params)
    remediations = q("SELECT m.created_at, r.pipeline, m.run_id, m.skill, m.failure_class, m.passed "
                     f"FROM heal.remediations m JOIN heal.runs r ON m.run_id = r.run_id WHERE {where} "
                     "ORDER BY m.created_at, m.run_id, m.seq", params)
    quarantined = q(f"SELECT x.reasons, count(*) FROM heal.quarantine x JOIN heal.runs r ON x.run_id = r.run_id "
                    f"WHERE {where} GROUP BY x.reasons", params)
    inc_where, inc_params = ("WHERE pipeline = ?", [pipeline]) if pipeline else ("", [])
    incidents = q("SELECT pipeline, failure_class, status, opened_at, resolved_at FROM heal.incidents "
                  f"{inc_where} ORDER BY opened_at", inc_params)

    by_run: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for a in attempts:
        by_run[a[0]].append(a)
    per_pipeline = []
    for name in sorted({r[1] for r in runs}):
        mine = [r for r in runs if r[1] == name]
        per_pipeline.append(_pipeline_patterns(
            name, mine, by_run, [m for m in remediations if m[1] == name],
            [i for i in incidents if i[0] == name], recurring_runs=recurring_runs, min_tries=min_tries,
        ))

    days: dict[str, Counter[str]] = defaultdict(Counter)
    for r in runs:
        days[str(r[2])][r[3]] += 1
    durations: dict[str, list[float]] = defaultdict(list)
    for a in attempts:
        durations[a[2]].append(float(a[8] or 0.0))
    latency = []
    for step, values in sorted(durations.items()):
        values.sort()
        latency.append({"step": step, "count": len(values), "p50_ms": round(_percentile(values, 0.5), 3),
                        "p90_ms": round(_percentile(values, 0.9), 3), "p99_ms": round(_percentile(values, 0.99), 3),
                        "max_ms": round(values[-1], 3)})
    reasons: Counter[str] = Counter()
    for joined, n in quarantined:
        for reason in str(joined or "unknown").split(";"):
            reasons[reason] += n
    return Report(
        generated_at=datetime.now(UTC).replace(microsecond=0).isoformat(),
        since=since.isoformat() if since else None,
        pipelines=tuple(per_pipeline),
        days=tuple({"date": d, **{s: c.get(s, 0) for s in STATUSES}} for d, c in sorted(days.items())),
        latency=tuple(latency),
        timeline=tuple({"at": str(at), "pipeline": p, "run_id": rid, "skill": sk, "failure_class": fc,
                        "passed": bool(ok)} for at, p, rid, sk, fc, ok in remediations),
        quarantine=tuple({"reason": k, "rows": v} for k, v in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
    )


def _pipeline_patterns(name: str, runs: list[tuple[Any, ...]], by_run: dict[str, list[tuple[Any, ...]]],
                       remediations: list[tuple[Any, ...]], incidents: list[tuple[Any, ...]], *,
                       recurring_runs: int, min_tries: int) -> dict[str, Any]:
    statuses = Counter(r[3] for r in runs)
    classes_per_run = [{a[6] for a in by_run.get(r[0], []) if a[6]} for r in runs]
    seen = Counter(fc for classes in classes_per_run for fc in classes)
    tries: dict[str, list[bool]] = defaultdict(list)
    for m in remediations:
        tries[m[3]].append(bool(m[5]))
    rates = [{"skill": s, "tries": len(v), "healed": sum(v), "rate": round(sum(v) / len(v), 3)}
             for s, v in sorted(tries.items())]
    heal_times = [t for r in runs if r[3] != "escalated" and (t := _time_to_heal(by_run.get(r[0], []))) is not None]
    recurring = []
    for fc in sorted(seen):
        streak = best = 0
        for classes in classes_per_run:
            streak = streak + 1 if fc in classes else 0
            best = max(best, streak)
        if best >= recurring_runs:
            recurring.append({"failure_class": fc, "longest_streak": best, "ongoing": streak >= recurring_runs})
    resolved = [(i[4] - i[3]).total_seconds() for i in incidents if i[2] == "resolved" and i[3] and i[4]]
    escalated = [r for r in runs if r[3] == "escalated"]
    return {
        "pipeline": name,
        "runs": len(runs),
        "by_status": {s: statuses.get(s, 0) for s in sorted(set(STATUSES) | set(statuses))},
        "rows": {k: sum(int(r[i] or 0) for r in runs)
                 for i, k in ((4, "read"), (5, "loaded"), (6, "quarantined"), (7, "duplicates"))},
        "failure_classes": [{"failure_class": fc, "runs": n, "share": round(n / len(runs), 3)}
                            for fc, n in sorted(seen.items(), key=lambda kv: (-kv[1], kv[0]))],
        "remediations": rates,
        "time_to_heal_s": _summary_of(heal_times),
        "escalated_runs": len(escalated),
        "escalated": [{"run_id": r[0], "run_date": str(r[2]), "summary": r[8]} for r in escalated[-10:]],
        "always_succeed": [{"skill": x["skill"], "tries": x["tries"]} for x in rates
                           if x["tries"] >= min_tries and x["healed"] == x["tries"]],
        "recurring": recurring,
        "incidents": {"open": sorted(i[1] for i in incidents if i[2] == "open"), "resolved": len(resolved),
                      "time_to_resolve_s": _summary_of(resolved)},
    }


def _time_to_heal(attempts: list[tuple[Any, ...]]) -> float | None:
    """Seconds from a run's first failed attempt to the end of the attempt that fixed it
    (the last passing remediation or retry), or None when nothing was healed."""
    failed = next((a for a in attempts if not a[5]), None)
    fixes = [a for a in attempts if a[5] and (a[4] == 2 or a[3] > 1)]
    if failed is None or not fixes or fixes[-1][1] < failed[1] or not failed[7] or not fixes[-1][7]:
        return None
    end = fixes[-1][7] + timedelta(milliseconds=float(fixes[-1][8] or 0.0))
    return max(0.0, (end - failed[7]).total_seconds())


def _summary_of(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    values = sorted(values)
    return {"count": len(values), "median": round(statistics.median(values), 3),
            "p95": round(_percentile(values, 0.95), 3), "max": round(values[-1], 3)}


def _seconds(summary: dict[str, float] | None) -> str:
    if not summary:
        return "-"
    return f"median {summary['median']:g}s, p95 {summary['p95']:g}s, max {summary['max']:g}s ({summary['count']})"


def render_text(report: Report) -> str:
    """The report for a terminal: one block per pipeline, then what stands out."""
    out = [f"heal report{' since ' + report.since if report.since else ''} (generated {report.generated_at})"]
    if not report.pipelines:
        return out[0] + "\nno finished runs in this ledger" + (" for that period" if report.since else "")
    for p in report.pipelines:
        status = ", ".join(f"{s} {n}" for s, n in p["by_status"].items() if n)
        rows = p["rows"]
        out += ["", f"{p['pipeline']}: {p['runs']} runs ({status})",
                f"  rows: read {rows['read']}, loaded {rows['loaded']}, quarantined {rows['quarantined']}, "
                f"duplicates removed {rows['duplicates']}",
                f"  runs escalated: {p['escalated_runs']}",
                f"  time to heal: {_seconds(p['time_to_heal_s'])}"]
        if p["failure_classes"]:
            out.append("  most common failure classes (runs that met each):")
            out += [f"    {x['failure_class']:<20} {x['runs']:>4}  {x['share']:.0%}" for x in p["failure_classes"][:8]]
        if p["remediations"]:
            out.append("  remediation success rate:")
            out += [f"    {x['skill']:<20} {x['healed']:>4}/{x['tries']:<4} {x['rate']:.0%}" for x in p["remediations"]]
        for x in p["always_succeed"]:
            out.append(f"  * {x['skill']} healed all {x['tries']} times it ran: trust it, or fix the cause upstream")
        for x in p["recurring"]:
            now = "ongoing" if x["ongoing"] else "ended"
            out.append(f"  ! {x['failure_class']} recurred in {x['longest_streak']} consecutive runs ({now})")
        inc = p["incidents"]
        which = f" ({', '.join(inc['open'])})" if inc["open"] else ""
        out.append(f"  incidents: {len(inc['open'])} open{which}, {inc['resolved']} resolved; "
                   f"time to resolve: {_seconds(inc['time_to_resolve_s'])}")
        for r in p["escalated"][-3:]:
            out.append(f"    escalated {r['run_date']} {r['run_id']}: {(r['summary'] or '')[:160]}")
    if report.quarantine:
        out += ["", "quarantined rows by reason:"]
        out += [f"  {x['reason']:<32} {x['rows']:>7}" for x in report.quarantine[:10]]
    return "\n".join(out)
