"""``python -m bench --pg``: 5M rows through the pipeline into PostgreSQL vs a bare COPY of the file.

Both run as whole processes against a scratch database created on the given server (and
dropped afterwards), so nothing in the named database is touched. Target: the pipeline at
least 70% of the bare COPY's throughput. The result goes to stdout and bench/RESULTS-pg.md.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from bench.generate import generate
from bench.measure import run_measured
from bench.report import versions
from bench.suite import PIPELINE, REPO, SCRIPTS, counts_from_verdict

__all__ = ["run_pg"]

TARGET_SHARE = 0.70


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _recreate(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')


def _drop(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _run_counts(url: str, stdout: str) -> dict:
    result = json.loads(stdout.strip().splitlines()[-1])
    with psycopg.connect(url) as con:
        row = con.execute(
            "SELECT verdict FROM heal.attempts WHERE run_id = %s AND step = 'validate-quality' ORDER BY seq DESC LIMIT 1",
            [result["run_id"]],
        ).fetchone()
        loaded = con.execute("SELECT count(*) FROM sales").fetchone()[0]
        steps: dict[str, float] = {}
        for step, v in con.execute("SELECT step, verdict FROM heal.attempts WHERE run_id = %s", [result["run_id"]]):
            v = v if isinstance(v, dict) else json.loads(v)
            steps[step] = steps.get(step, 0.0) + float(v.get("duration_ms") or 0.0) / 1000
    verdict = row[0] if isinstance(row[0], dict) else json.loads(row[0])
    return {**counts_from_verdict(verdict), "quarantined": result["rows_quarantined"],
            "rows_loaded": result["rows_loaded"], "in_target": loaded, "status": result["status"], "steps": steps}


def _median_steps(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each step's median duration over the runs that reached it."""
    names = {name for run in runs for name in run}
    return {name: statistics.median(run[name] for run in runs if name in run) for name in names}


def run_pg(rows: int, *, url: str, repeat: int, seed: int, data: Path, say: Callable[[str], object]) -> int:
    """Time the bare COPY and ``heal run`` into PostgreSQL, ``repeat`` times each, round robin."""
    started = time.perf_counter()
    delivery = generate(rows, seed=seed, directory=data)
    expected = delivery.expected
    name = f"heal_bench_{uuid.uuid4().hex[:8]}"
    target = _with_database(url, name)
    heal = str(Path(sys.executable).with_name("heal"))
    env = dict(os.environ)
    walls: dict[str, list[float]] = {"bare COPY": [], "heal run": []}
    rss: dict[str, list[float]] = {"bare COPY": [], "heal run": []}
    problems: list[str] = []
    steps: list[dict[str, float]] = []
    say(f"bench --pg: {rows:,} rows ({delivery.bytes / 2**20:.0f} MiB) into a scratch database {name} on "
        f"{urlsplit(url).hostname}:{urlsplit(url).port}")
    try:
        for i in range(repeat):
            for what in ("bare COPY", "heal run") if i % 2 == 0 else ("heal run", "bare COPY"):
                _recreate(url, name)
                if what == "bare COPY":
                    argv = [sys.executable, str(SCRIPTS / "pg_copy.py"), str(delivery.path), "--url", target]
                else:
                    argv = [heal, "run", str(PIPELINE), "--source", str(delivery.path), "--target", target, "--json"]
                m = run_measured(argv, cwd=REPO, env=env)
                if what == "bare COPY":
                    ok = m.returncode == 0 and json.loads(m.stdout)["rows"] == rows
                    why = "" if ok else f"exit {m.returncode}: {m.stderr[-300:]}"
                else:
                    ok, why = m.returncode == 3, f"exit {m.returncode}: {m.stderr[-300:]}"
                    if ok:
                        got = _run_counts(target, m.stdout)
                        steps.append(got["steps"])
                        wrong = [k for k in ("rows", "duplicate_keys", "out_of_range") if got[k] != expected[k]]
                        if wrong or got["quarantined"] != expected["quarantined"] or \
                                got["in_target"] != rows - expected["quarantined"]:
                            ok, why = False, f"disagrees: {got}"
                if not ok:
                    problems.append(f"{what}: {why}")
                walls[what].append(m.wall_s)
                rss[what].append(m.peak_rss_mib)
                say(f"   run {i + 1}/{repeat}  {what:<10} {m.wall_s:8.2f} s {m.peak_rss_mib:8.0f} MiB {'' if ok else why[:200]}")
    finally:
        _drop(url, name)
    bare, run = statistics.median(walls["bare COPY"]), statistics.median(walls["heal run"])
    share = bare / run
    lines = [
        "# PostgreSQL: the pipeline vs a bare COPY",
        "",
        f"Generated by `python -m bench --pg` on {time.strftime('%Y-%m-%d %H:%M')} in "
        f"{(time.perf_counter() - started) / 60:.1f} min: {rows:,} rows ({delivery.bytes / 2**20:.0f} MiB CSV), "
        f"{repeat} runs each, medians, whole processes, a fresh scratch database per run.",
        "",
        "| contestant | median wall s | peak MiB | rows/s |",
        "|---|---:|---:|---:|",
        f"| bare psycopg COPY (typed table, no checks) | {bare:.2f} | {statistics.median(rss['bare COPY']):.0f} | {rows / bare:,.0f} |",
        f"| heal run (validate, quarantine, transform, load, ledger) | {run:.2f} | {statistics.median(rss['heal run']):.0f} | {rows / run:,.0f} |",
        "",
        f"Target: the pipeline at least {TARGET_SHARE:.0%} of the bare COPY's throughput. Measured: {share:.0%} "
        f"({'met' if share >= TARGET_SHARE and not problems else 'missed'}).",
        "",
        *(f"- problem: {p}" for p in problems),
        *(["Where heal run spends its time (each step's own duration, median of the runs): "
           + ", ".join(f"{k} {v:.2f} s" for k, v in sorted(_median_steps(steps).items(), key=lambda kv: -kv[1]))
           + "; the rest is interpreter start, the ledger and the commit. The load alone (load-target: "
           f"COPY, unique index, proofs, ledger rows and profile, in one transaction) runs at "
           f"{bare / _median_steps(steps).get('load-target', float('inf')):.0%} of the bare COPY's throughput.", ""]
          if steps else []),
        f"Versions: {', '.join(f'{k} {v}' for k, v in versions().items())}.",
        "",
    ]
    text = "\n".join(lines)
    say("\n" + text)
    (Path(__file__).resolve().parent / "RESULTS-pg.md").write_text(text)
    return 1 if problems else 0
