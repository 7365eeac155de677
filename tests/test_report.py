"""`heal report` over a real run history: failure patterns, text, JSON, the HTML page rendered in
headless Chromium, and the same report read from a PostgreSQL ledger."""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import main
from orchestrator.ledger import Ledger
from orchestrator.pipeline import Pipeline, Source, load_pipeline
from orchestrator.report import PLOTS, Report, build_report, render_html, render_text
from orchestrator.run import run_pipeline
from tests.conftest import DAY, deliver, rows_for
from tools.sinks import open_sink

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")

#: (what arrives, expected status) per day.
WEEK = (
    ("clean", "success"),
    ("fallback", "healed"),
    ("fallback", "healed"),
    ("fallback", "healed"),
    ("bad rows", "partial_failure"),
    ("nothing", "escalated"),
    ("clean", "success"),
    ("renamed", "healed"),
)


def make_pipeline(root: Path, target: str | None = None) -> Pipeline:
    spec = load_pipeline(REPO / "pipelines" / "sales.yaml")
    return replace(spec, source=Source(uri=str(root / "in" / "{date}.csv"), fallback=str(root / "backup" / "{date}.csv"),
                                       min_bytes=16),
                   target=target or f"duckdb:///{root / 't.duckdb'}", alerts=())


def live_through(pipeline: Pipeline, root: Path, week=WEEK) -> list[str]:
    statuses = []
    for i, (what, _) in enumerate(week):
        day = DAY + dt.timedelta(days=i)
        rows = rows_for(day, first_id=1 + i * 1000, count=100, seed=i)
        if what == "bad rows":
            rows[3][2], rows[7][2], rows[9][2] = "", "25000", "-5"
        if what in ("clean", "bad rows"):
            deliver(root / "in", day, rows)
        elif what == "fallback":
            deliver(root / "backup", day, rows)
        elif what == "renamed":
            deliver(root / "in", day, rows, header=["sale_id", "date", "sale_amount", "product_id"])
        statuses.append(run_pipeline(pipeline, run_date=day, sleep=lambda s: None, rng=random.Random(0)).status)
    return statuses


@pytest.fixture(scope="module")
def week(tmp_path_factory) -> Pipeline:
    root = tmp_path_factory.mktemp("week")
    pipeline = make_pipeline(root)
    assert live_through(pipeline, root) == [s for _, s in WEEK]
    return pipeline


@pytest.fixture
def ledger(week) -> Iterator[Ledger]:
    led = Ledger(open_sink(week.target))
    yield led
    led.sink.close()


def test_failure_patterns(ledger):
    report = build_report(ledger, pipeline="sales")
    [p] = report.pipelines
    assert p["runs"] == 8
    assert p["by_status"] == {"escalated": 1, "healed": 4, "partial_failure": 1, "success": 2}
    assert p["rows"] == {"read": 700, "loaded": 697, "quarantined": 3, "duplicates": 0}
    assert p["failure_classes"][0] == {"failure_class": "source_missing", "runs": 4, "share": 0.5}
    rates = {r["skill"]: (r["healed"], r["tries"]) for r in p["remediations"]}
    assert rates == {"use-fallback-source": (3, 4), "quarantine-rows": (1, 1), "repair-schema": (1, 1)}
    assert p["always_succeed"] == []  # the fallback failed once (day 6), so it does not always work
    assert p["recurring"] == [{"failure_class": "source_missing", "longest_streak": 3, "ongoing": False}]
    assert p["escalated_runs"] == 1 and "source_missing" in p["escalated"][0]["summary"]
    assert p["time_to_heal_s"]["count"] == 5 and p["time_to_heal_s"]["max"] >= p["time_to_heal_s"]["median"] >= 0
    assert p["incidents"]["open"] == [] and p["incidents"]["resolved"] >= 2
    assert [d["date"] for d in report.days] == [str(DAY + dt.timedelta(days=i)) for i in range(8)]
    assert report.days[5] == {"date": str(DAY + dt.timedelta(days=5)), "success": 0, "healed": 0,
                              "partial_failure": 0, "escalated": 1}
    latency = {x["step"]: x for x in report.latency}
    assert latency["validate-history"]["count"] == 7 and latency["fetch-file"]["count"] == 16
    assert all(x["p50_ms"] <= x["p90_ms"] <= x["p99_ms"] <= x["max_ms"] for x in report.latency)
    assert [(e["skill"], e["passed"]) for e in report.timeline][:3] == [("use-fallback-source", True)] * 3
    assert {q["reason"]: q["rows"] for q in report.quarantine} == {
        "null_critical:amount": 1, "out_of_range:amount": 2}


def test_always_succeeds_and_since(ledger):
    strict = build_report(ledger, pipeline="sales", min_tries=1)
    assert [x["skill"] for x in strict.pipelines[0]["always_succeed"]] == ["quarantine-rows", "repair-schema"]
    late = build_report(ledger, since=DAY + dt.timedelta(days=6))
    assert late.since == str(DAY + dt.timedelta(days=6)) and late.pipelines[0]["runs"] == 2
    assert late.pipelines[0]["recurring"] == [] and late.quarantine == ()
    assert build_report(ledger, pipeline="nope").pipelines == ()


def test_text_report_names_the_patterns(ledger):
    text = render_text(build_report(ledger, pipeline="sales", recurring_runs=3, min_tries=1))
    assert "sales: 8 runs (escalated 1, healed 4, partial_failure 1, success 2)" in text
    assert re.search(r"source_missing\s+4\s+50%", text)
    assert re.search(r"use-fallback-source\s+3/4\s+75%", text)
    assert "* repair-schema healed all 1 times it ran" in text
    assert "! source_missing recurred in 3 consecutive runs (ended)" in text
    assert "time to heal: median" in text and "runs escalated: 1" in text
    assert "null_critical:amount" in text


def test_cli_report_json_text_and_html(week, tmp_path):
    runner = CliRunner()
    out = runner.invoke(main, ["report", "--target", week.target, "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["pipelines"][0]["pipeline"] == "sales" and len(data["days"]) == 8
    page = tmp_path / "report.html"
    yaml_file = tmp_path / "sales.yaml"
    yaml_file.write_text((REPO / "pipelines" / "sales.yaml").read_text().replace(
        "target: duckdb:///sales.duckdb", f"target: {week.target}"))
    out = runner.invoke(main, ["report", "--pipeline", str(yaml_file), "--since", str(DAY + dt.timedelta(days=4)),
                               "--html", str(page)])
    assert out.exit_code == 0, out.output
    assert out.output.startswith(f"heal report since {DAY + dt.timedelta(days=4)}") and "sales: 4 runs" in out.output
    assert page.read_text().count("<svg") == 4
    bad = runner.invoke(main, ["report", "--target", week.target, "--since", "last week"])
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output
    nowhere = runner.invoke(main, ["report"])
    assert nowhere.exit_code == 2 and "--target URL or --pipeline FILE" in nowhere.output


def test_an_empty_ledger_reports_so(tmp_path):
    sink = open_sink(f"duckdb:///{tmp_path / 'empty.duckdb'}")
    report = build_report(Ledger(sink))
    assert report.pipelines == () and "no finished runs" in render_text(report)
    html = render_html(report)
    assert html.count("<svg") == 4 and "no runs in this period" in html


def test_html_escapes_everything_from_the_ledger():
    evil = "<script>alert(1)</script>"
    report = Report(generated_at="now", since=None, pipelines=(), days=(), latency=(
        {"step": evil, "count": 1, "p50_ms": 1.0, "p90_ms": 2.0, "p99_ms": 3.0, "max_ms": 3.0},),
        timeline=({"at": "2026-11-02 10:00:00", "pipeline": "p", "run_id": evil, "skill": evil,
                   "failure_class": None, "passed": False},),
        quarantine=({"reason": f"null_critical:{evil}", "rows": 3},))
    html = render_html(report)
    assert "<script" not in html and "&lt;script&gt;" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")  # nothing fetched from anywhere


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium package is not installed (apt-get install chromium)")
def test_the_html_report_renders_in_headless_chromium(ledger, tmp_path):
    report = build_report(ledger, pipeline="sales")
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    shot = artifacts / "heal-report.png"
    shot.unlink(missing_ok=True)
    base = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}"]
    subprocess.run([*base, f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri()],
                   capture_output=True, timeout=90, check=True)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000  # a blank page compresses to a few KB
    dom = subprocess.run([*base, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=90,
                         check=True).stdout
    assert len(re.findall(r"<svg[^>]*class=\"plot\"", dom)) == 4
    for title in PLOTS:
        assert f">{title}</title>" in dom and f"<h2>{title}</h2>" in dom
    assert dom.count('class="bar"') >= 8 + 3 * len(report.latency) + len(report.quarantine)
    assert dom.count('class="event"') == len(report.timeline) == 6


# --- PostgreSQL ----------------------------------------------------------------------------------




def test_report_history_and_incidents_on_a_postgresql_ledger(tmp_path, pg_url):
    from orchestrator.observability import metrics_text

    week = WEEK[:6]
    pipeline = make_pipeline(tmp_path, target=pg_url)
    assert live_through(pipeline, tmp_path, week) == [s for _, s in week]
    sink = open_sink(pg_url)
    try:
        ledger = Ledger(sink)
        assert len(ledger.volume_history("sales", before=DAY + dt.timedelta(days=6), days=56)) == 5
        [p] = build_report(ledger).pipelines
        assert p["by_status"] == {"escalated": 1, "healed": 3, "partial_failure": 1, "success": 1}
        assert p["recurring"][0]["failure_class"] == "source_missing"
        assert [i["failure_class"] for i in ledger.incidents(pipeline="sales", status="open")] == ["null_critical", "source_missing"]
        text = metrics_text(ledger, pipeline="sales")
        assert 'heal_runs_total{pipeline="sales",status="healed"} 3' in text
        assert 'heal_open_incidents{pipeline="sales",failure_class="source_missing"} 1' in text
    finally:
        sink.close()
