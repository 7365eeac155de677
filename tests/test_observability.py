"""Prometheus metrics from the ledger (textfile, Pushgateway, /metrics), the Grafana dashboard that
charts them, and JSON log lines that carry the run id."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import random
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.ledger import Ledger
from orchestrator.observability import (
    DURATION_BUCKETS,
    JsonFormatter,
    configure_logging,
    ledger_metrics,
    metrics_server,
    metrics_text,
)
from orchestrator.run import run_pipeline
from tests.conftest import DAY, deliver, rows_for
from tools.sinks import open_sink

REPO = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("no_proxy")


def run(pipeline, n: int, **extra: Any):
    return run_pipeline(pipeline, run_date=DAY + dt.timedelta(days=n), sleep=lambda s: None,
                        rng=random.Random(0), **extra)


def three_days(sales, tmp_path, env: dict[str, str] | None = None) -> list:
    """A clean day, a healed day (fallback) and a partial failure (3 bad rows)."""
    deliver(tmp_path / "in", DAY, rows_for(DAY))
    second = DAY + dt.timedelta(days=1)
    deliver(tmp_path / "backup", second, rows_for(second, first_id=1001))
    third = DAY + dt.timedelta(days=2)
    rows = rows_for(third, first_id=2001)
    rows[1][2], rows[2][2], rows[3][0] = "", "99999", "x"
    deliver(tmp_path / "in", third, rows)
    return [run(sales, n, env=env or {}) for n in range(3)]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition, parsed by the reference client's parser."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


def test_the_textfile_is_rewritten_after_every_run_and_counts_what_the_ledger_holds(sales, tmp_path):
    folder = tmp_path / "textfile"
    results = three_days(sales, tmp_path, env={"HEAL_METRICS_DIR": str(folder)})
    assert [r.status for r in results] == ["success", "healed", "partial_failure"]
    assert [p.name for p in folder.iterdir()] == ["heal_sales.prom"]  # no temporary file left behind
    found = samples((folder / "heal_sales.prom").read_text())
    assert {s: value(found, "heal_runs_total", pipeline="sales", status=s)
            for s in ("success", "healed", "partial_failure", "escalated")} == {
        "success": 1, "healed": 1, "partial_failure": 1, "escalated": 0}
    assert value(found, "heal_rows_total", pipeline="sales", kind="loaded") == 297
    assert value(found, "heal_rows_total", pipeline="sales", kind="quarantined") == 3
    assert value(found, "heal_quarantined_rows_total", pipeline="sales", reason="out_of_range:amount") == 1
    assert value(found, "heal_remediations_total", pipeline="sales", skill="use-fallback-source",
                 outcome="healed") == 1
    assert value(found, "heal_step_duration_seconds_count", pipeline="sales", step="fetch-file") == 5
    assert value(found, "heal_step_duration_seconds_bucket", pipeline="sales", step="fetch-file", le="+Inf") == 5
    buckets = [value(found, "heal_step_duration_seconds_bucket", pipeline="sales", step="transform", le=f"{b:g}")
               for b in DURATION_BUCKETS]
    assert buckets == sorted(buckets) and buckets[-1] == 3
    assert value(found, "heal_open_incidents", pipeline="sales", failure_class="null_critical") == 1
    assert value(found, "heal_last_run_status", pipeline="sales", status="partial_failure") == 1
    assert value(found, "heal_last_run_rows", pipeline="sales", kind="quarantined") == 3
    stamp = value(found, "heal_last_run_timestamp_seconds", pipeline="sales")
    assert abs(stamp - dt.datetime.now(dt.UTC).timestamp()) < 120


def test_metrics_for_every_pipeline_in_a_ledger_and_label_escaping(sales, tmp_path):
    three_days(sales, tmp_path)
    other = replace(sales, name='odd"name\\x')  # only a file can't hold it; the ledger can
    deliver(tmp_path / "in", DAY + dt.timedelta(days=3), rows_for(DAY, first_id=9000))
    run(other, 3)
    sink = open_sink(sales.target)
    try:
        found = samples(metrics_text(Ledger(sink)))
    finally:
        sink.close()
    assert value(found, "heal_runs_total", pipeline='odd"name\\x', status="success") == 1
    assert value(found, "heal_runs_total", pipeline="sales", status="success") == 1


class Gateway:
    """A Pushgateway stand-in on 127.0.0.1 that records every PUT."""

    def __init__(self, status: int = 200) -> None:
        self.puts: list[tuple[str, str]] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                gateway.puts.append((self.path, body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_metrics_are_pushed_to_a_pushgateway(sales, tmp_path):
    gateway = Gateway()
    try:
        deliver(tmp_path / "in", DAY, rows_for(DAY))
        run(sales, 0, env={"HEAL_PUSHGATEWAY_URL": gateway.url + "/"})
    finally:
        gateway.close()
    [(path, body)] = gateway.puts
    assert path == "/metrics/job/heal/pipeline/sales"
    assert value(samples(body), "heal_runs_total", pipeline="sales", status="success") == 1


def test_a_dead_gateway_or_an_unwritable_folder_never_fails_the_run(sales, tmp_path, caplog):
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    gateway = Gateway(status=500)
    gateway.close()  # nothing listens any more
    deliver(tmp_path / "in", DAY, rows_for(DAY))
    with caplog.at_level(logging.WARNING, logger="heal"):
        result = run(sales, 0, env={"HEAL_METRICS_DIR": str(blocker / "sub"), "HEAL_PUSHGATEWAY_URL": gateway.url})
    assert result.status == "success"
    problems = [r for r in caplog.records if getattr(r, "event", None) == "metrics_failed"]
    assert len(problems) == 2 and all(r.run_id == result.run_id for r in problems)


def test_metrics_server_renders_on_every_scrape_without_holding_the_database(sales, tmp_path):
    deliver(tmp_path / "in", DAY, rows_for(DAY))
    run(sales, 0)
    server = metrics_server(lambda: ledger_metrics(sales.target, pipeline="sales"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
            first = samples(response.read().decode())
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        second_day = DAY + dt.timedelta(days=1)
        deliver(tmp_path / "in", second_day, rows_for(second_day, first_id=500))
        assert run(sales, 1).status == "success"  # the server holds no lock on the ledger
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
            second = samples(response.read().decode())
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{url}/other", timeout=5)
        assert missing.value.code == 404
    finally:
        server.shutdown()
        server.server_close()
    assert value(first, "heal_runs_total", pipeline="sales", status="success") == 1
    assert value(second, "heal_runs_total", pipeline="sales", status="success") == 2


def test_heal_report_serve_metrics(sales, tmp_path):
    deliver(tmp_path / "in", DAY, rows_for(DAY))
    run(sales, 0)
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "report", "--target", sales.target,
                             "--serve-metrics", "0"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stderr.readline()
        port = re.search(r"127\.0\.0\.1:(\d+)/metrics", line)
        assert port, line
        with urllib.request.urlopen(f"http://127.0.0.1:{port.group(1)}/metrics", timeout=10) as response:
            assert value(samples(response.read().decode()), "heal_runs_total", pipeline="sales", status="success") == 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


def test_the_grafana_dashboard_charts_only_metrics_we_export(sales, tmp_path):
    dashboard = json.loads((REPO / "examples" / "grafana-dashboard.json").read_text())
    three_days(sales, tmp_path)
    sink = open_sink(sales.target)
    try:
        exported = {f.name for f in text_string_to_metric_families(metrics_text(Ledger(sink)))}
    finally:
        sink.close()
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {re.sub(r"_(bucket|count|sum)$", "", m) for e in exprs for m in re.findall(r"\bheal_[a-z_]+", e)}
    exported |= {f"{name}_total" for name in exported}  # the parser drops a counter's _total suffix
    assert used and used <= exported, used - exported
    assert {"heal_runs_total", "heal_step_duration_seconds", "heal_remediations_total",
            "heal_quarantined_rows_total", "heal_rows_total"} <= used
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in dashboard["panels"])
    assert all(p["datasource"]["uid"] == "${DS_PROMETHEUS}" for p in dashboard["panels"])
    assert dashboard["templating"]["list"][0]["name"] == "pipeline"


def test_every_log_line_is_json_with_the_run_id(sales, tmp_path):
    stream = io.StringIO()
    handler = configure_logging(stream)
    try:
        deliver(tmp_path / "in", DAY, rows_for(DAY))
        first = run(sales, 0)
        second = run(sales, 1)  # nothing delivered: escalated, so warnings too
    finally:
        logging.getLogger("heal").removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines and all(line["run_id"] in (first.run_id, second.run_id) for line in lines)
    assert all(line["pipeline"] == "sales" and line["ts"].endswith("+00:00") for line in lines)
    mine = [line for line in lines if line["run_id"] == first.run_id]
    assert [line["event"] for line in mine] == ["run_started"] + ["attempt"] * len(first.steps) + ["run_finished"]
    assert mine[-1]["status"] == "success" and mine[-1]["counts"]["loaded"] == 100
    assert [line["step"] for line in mine if line["event"] == "attempt"] == [s["step"] for s in first.steps]
    failed = [line for line in lines if line["run_id"] == second.run_id and line["level"] == "warning"]
    assert failed[0]["failure_class"] == "source_missing" and failed[-1]["status"] == "escalated"


def test_the_json_formatter_keeps_extras_and_exceptions():
    record = logging.LogRecord("heal.x", logging.ERROR, __file__, 1, "boom %s", ("now",), None)
    record.run_id, record.rows = "r1", 5
    try:
        raise ValueError("bad")
    except ValueError:
        record.exc_info = sys.exc_info()
    record.source = "postgresql://loader:hunter2-Pa55@db/sales"
    line = json.loads(JsonFormatter().format(record))
    assert (line["msg"], line["run_id"], line["rows"], line["level"]) == ("boom now", "r1", 5, "error")
    assert "ValueError: bad" in line["exc"] and line["pipeline"] is None
    assert line["source"] == "postgresql://loader:***@db/sales"  # credentials never reach the log store
