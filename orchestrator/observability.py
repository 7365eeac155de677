"""Metrics and logs for the systems that watch pipelines: Prometheus and JSON log lines.

**Metrics** are computed from the ledger, not kept in process memory: every ``heal run``
is a short process, and the ledger already holds every run, attempt and remediation, so
the counters stay right across restarts and machines. After each run,
:func:`after_run` rewrites ``heal_<pipeline>.prom`` in ``$HEAL_METRICS_DIR`` (point
node-exporter's ``--collector.textfile.directory`` at it) and, with
``$HEAL_PUSHGATEWAY_URL``, pushes the same text to a Pushgateway. :func:`metrics_server`
answers ``GET /metrics`` for a scraper (``heal report --serve-metrics PORT``).
``examples/grafana-dashboard.json`` charts these series:

* ``heal_runs_total{pipeline,status}``
* ``heal_rows_total{pipeline,kind}`` (read, loaded, quarantined, duplicates)
* ``heal_quarantined_rows_total{pipeline,reason}``
* ``heal_step_duration_seconds{pipeline,step}`` (histogram of every attempt)
* ``heal_remediations_total{pipeline,skill,outcome}`` (healed, failed)
* ``heal_open_incidents{pipeline,failure_class}``
* ``heal_last_run_timestamp_seconds{pipeline}``, ``heal_last_run_status{pipeline,status}``,
  ``heal_last_run_rows{pipeline,kind}``

**Logs** are one JSON object per line (:class:`JsonFormatter`) with ``run_id`` and
``pipeline`` on every line the run writes; :func:`configure_logging` installs it on the
``heal`` logger. Writing metrics never fails a run: an unwritable directory or a dead
Pushgateway is logged as a warning.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote

from orchestrator.alerts import redact
from orchestrator.ledger import Ledger
from tools.sinks import open_sink
from tools.verdict import Verdict

if TYPE_CHECKING:
    from orchestrator.run import RunResult

__all__ = [
    "DURATION_BUCKETS",
    "JsonFormatter",
    "after_run",
    "configure_logging",
    "log_attempt",
    "ledger_metrics",
    "log_run_start",
    "metrics_server",
    "metrics_text",
    "push_metrics",
    "write_textfile",
]

#: Histogram buckets of ``heal_step_duration_seconds`` (upper bounds in seconds).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
STATUSES = ("success", "healed", "partial_failure", "escalated")
_LOG = logging.getLogger("heal.run")
# A library logs; the application decides where to (configure_logging, or its own handlers).
# Without this, warnings would reach stderr through logging's last-resort handler.
logging.getLogger("heal").addHandler(logging.NullHandler())

# --- logs -------------------------------------------------------------------------------------

_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, run_id, pipeline, then any extras.

    Text values pass through :func:`~orchestrator.alerts.redact`, so a source URL with a
    password or a token in an error message never reaches the log store.
    """

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "run_id": getattr(record, "run_id", None),
            "pipeline": getattr(record, "pipeline", None),
        }
        out |= {k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS and k not in out}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(_redacted(out), default=str, ensure_ascii=False)


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {str(k): _redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(v) for v in value]
    return value


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(stream: IO[str] | None = None, *, level: str = "INFO", json_lines: bool = True) -> logging.Handler:
    """Send the ``heal`` loggers to ``stream`` (stderr), as JSON lines or plain text.

    Returns the handler (remove it with ``logging.getLogger("heal").removeHandler``).
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else _TextFormatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("heal")
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler


def log_run_start(run_id: str, pipeline: str, **fields: Any) -> None:
    _LOG.info("run started", extra={"run_id": run_id, "pipeline": pipeline, "event": "run_started", **fields})


def log_attempt(run_id: str, pipeline: str, *, step: str, attempt: int, verdict: Verdict, delay_s: float = 0.0) -> None:
    """One line per skill attempt: the step, whether it passed, its class and duration."""
    _LOG.log(
        logging.INFO if verdict.passed else logging.WARNING,
        "%s attempt %d %s", step, attempt, "passed" if verdict.passed else f"failed: {verdict.failure_class}",
        extra={"run_id": run_id, "pipeline": pipeline, "event": "attempt", "step": step, "skill": verdict.skill,
               "attempt": attempt, "passed": verdict.passed, "failure_class": verdict.failure_class,
               "duration_ms": verdict.duration_ms, "delay_s": delay_s},
    )


# --- metrics ----------------------------------------------------------------------------------


def _label(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    x = float(value)
    return str(int(x)) if x.is_integer() and abs(x) < 2**53 else repr(x)


def _series(name: str, labels: Mapping[str, Any], value: float) -> str:
    inner = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
    return f"{name}{{{inner}}} {_number(value)}" if inner else f"{name} {_number(value)}"


def metrics_text(ledger: Ledger, *, pipeline: str | None = None) -> str:
    """The Prometheus text exposition of one pipeline's ledger rows (None: every pipeline in it)."""
    where, p = ("AND r.pipeline = ?", (pipeline,)) if pipeline else ("", ())
    q = ledger.sink.query
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str) -> None:
        lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"])

    runs = q("SELECT r.pipeline, r.status, count(*), sum(r.rows_read), sum(r.rows_loaded), sum(r.rows_quarantined), "
             f"sum(r.rows_duplicates) FROM heal.runs r WHERE r.status <> 'running' {where} "
             "GROUP BY r.pipeline, r.status ORDER BY r.pipeline, r.status", p)
    names = sorted({r[0] for r in runs} | ({pipeline} if pipeline else set()))
    family("heal_runs_total", "counter", "Finished runs by final status.")
    for name in names:
        seen = {r[1]: r[2] for r in runs if r[0] == name}
        for status in sorted(set(STATUSES) | set(seen)):
            lines.append(_series("heal_runs_total", {"pipeline": name, "status": status}, seen.get(status, 0)))
    family("heal_rows_total", "counter", "Rows read, loaded, quarantined and removed as exact duplicates.")
    for name in names:
        for i, kind in enumerate(("read", "loaded", "quarantined", "duplicates"), start=3):
            total = sum((r[i] or 0) for r in runs if r[0] == name)
            lines.append(_series("heal_rows_total", {"pipeline": name, "kind": kind}, total))

    reasons: dict[tuple[str, str], int] = {}
    for name, joined, n in q("SELECT r.pipeline, x.reasons, count(*) FROM heal.quarantine x JOIN heal.runs r "
                             f"ON x.run_id = r.run_id WHERE 1 = 1 {where} GROUP BY r.pipeline, x.reasons", p):
        for reason in str(joined or "unknown").split(";"):
            reasons[(name, reason)] = reasons.get((name, reason), 0) + n
    family("heal_quarantined_rows_total", "counter", "Quarantined rows by reason code (a row may have several).")
    for (name, reason), n in sorted(reasons.items()):
        lines.append(_series("heal_quarantined_rows_total", {"pipeline": name, "reason": reason}, n))

    buckets = ", ".join(f"sum(CASE WHEN a.duration_ms <= {b * 1000:g} THEN 1 ELSE 0 END)" for b in DURATION_BUCKETS)
    family("heal_step_duration_seconds", "histogram", "Duration of every skill attempt, by step.")
    for name, step, n, total, *counts in q(
        f"SELECT r.pipeline, a.step, count(*), sum(a.duration_ms), {buckets} FROM heal.attempts a "
        f"JOIN heal.runs r ON a.run_id = r.run_id WHERE 1 = 1 {where} GROUP BY r.pipeline, a.step "
        "ORDER BY r.pipeline, a.step", p):
        labels = {"pipeline": name, "step": step}
        for bound, c in zip(DURATION_BUCKETS, counts):
            lines.append(_series("heal_step_duration_seconds_bucket", labels | {"le": f"{bound:g}"}, c or 0))
        lines.append(_series("heal_step_duration_seconds_bucket", labels | {"le": "+Inf"}, n))
        lines.append(_series("heal_step_duration_seconds_sum", labels, round((total or 0) / 1000, 6)))
        lines.append(_series("heal_step_duration_seconds_count", labels, n))

    family("heal_remediations_total", "counter", "Remediations tried, by skill and outcome (healed or failed).")
    for name, skill, passed, n in q(
        "SELECT r.pipeline, m.skill, m.passed, count(*) FROM heal.remediations m JOIN heal.runs r "
        f"ON m.run_id = r.run_id WHERE 1 = 1 {where} GROUP BY r.pipeline, m.skill, m.passed "
        "ORDER BY r.pipeline, m.skill, m.passed", p):
        labels = {"pipeline": name, "skill": skill, "outcome": "healed" if passed else "failed"}
        lines.append(_series("heal_remediations_total", labels, n))

    family("heal_open_incidents", "gauge", "Open incidents by failure class.")
    for name, fc, n in q(f"SELECT r.pipeline, r.failure_class, count(*) FROM heal.incidents r WHERE r.status = 'open' "
                         f"{where} GROUP BY r.pipeline, r.failure_class ORDER BY r.pipeline, r.failure_class", p):
        lines.append(_series("heal_open_incidents", {"pipeline": name, "failure_class": fc}, n))

    last = q("SELECT r.pipeline, r.status, r.finished_at, r.rows_read, r.rows_loaded, r.rows_quarantined "
             f"FROM heal.runs r WHERE r.status <> 'running' {where} ORDER BY r.started_at DESC", p)
    latest = {row[0]: row for row in reversed(last)}  # the newest row of each pipeline wins
    gauges = (("heal_last_run_timestamp_seconds", "When the last run finished (Unix time)."),
              ("heal_last_run_status", "1 for the last run's status, 0 for the others."),
              ("heal_last_run_rows", "Rows read, loaded and quarantined by the last run."))
    for metric, help_text in gauges if latest else ():
        family(metric, "gauge", help_text)
        for name, status, finished, *rows in (latest[k] for k in sorted(latest)):
            if metric == "heal_last_run_timestamp_seconds":
                stamp = finished.replace(tzinfo=UTC).timestamp() if finished else 0
                lines.append(_series(metric, {"pipeline": name}, stamp))
            elif metric == "heal_last_run_status":
                for s in sorted(set(STATUSES) | {status}):
                    lines.append(_series(metric, {"pipeline": name, "status": s}, int(s == status)))
            else:
                for kind, n in zip(("read", "loaded", "quarantined"), rows):
                    lines.append(_series(metric, {"pipeline": name, "kind": kind}, n or 0))
    return "\n".join(lines) + "\n"


def ledger_metrics(target: str, *, pipeline: str | None = None) -> str:
    """Open the ledger at ``target``, render its metrics, close it (a scrape must not hold a lock)."""
    sink = open_sink(target)
    try:
        return metrics_text(Ledger(sink), pipeline=pipeline)
    finally:
        sink.close()


def write_textfile(text: str, directory: str | Path, *, pipeline: str) -> Path:
    """Atomically (re)write ``heal_<pipeline>.prom`` so the collector never reads half a file."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    stem = "heal_" + re.sub(r"[^A-Za-z0-9_.-]", "_", pipeline)
    target = folder / f"{stem}.prom"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{stem}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
    return target


def push_metrics(text: str, url: str, *, pipeline: str, timeout: float = 5.0) -> None:
    """PUT ``text`` to a Pushgateway under job ``heal``, grouped by pipeline.

    Raises OSError (``urllib.error.URLError`` included) when the gateway cannot be reached.
    """
    target = f"{url.rstrip('/')}/metrics/job/heal/pipeline/{quote(pipeline, safe='')}"
    request = urllib.request.Request(target, data=text.encode("utf-8"), method="PUT",
                                     headers={"Content-Type": "text/plain; version=0.0.4"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read()


def metrics_server(render: Callable[[], str], *, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server answering ``GET /metrics`` with ``render()``; call ``serve_forever()`` to run it.

    ``render`` runs on every scrape (e.g. :func:`ledger_metrics`), so nothing goes stale.
    """

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "only /metrics is served")
                return
            body = render().encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return ThreadingHTTPServer((host, port), Handler)


def after_run(result: RunResult, *, ledger: Ledger, env: Mapping[str, str] | None = None) -> None:
    """Log the run's outcome, then refresh the textfile and/or push, as the environment asks."""
    env = env if env is not None else os.environ
    _LOG.log(
        logging.INFO if result.status in ("success", "healed") else logging.WARNING,
        "run finished: %s", result.summary,
        extra={"run_id": result.run_id, "pipeline": result.pipeline, "event": "run_finished",
               "status": result.status, "counts": dict(result.counts), "remediations": list(result.remediations),
               "incidents": [a["incident_id"] for a in result.alerts]},
    )
    directory, gateway = env.get("HEAL_METRICS_DIR"), env.get("HEAL_PUSHGATEWAY_URL")
    if not directory and not gateway:
        return
    text = metrics_text(ledger, pipeline=result.pipeline)
    where = {"run_id": result.run_id, "pipeline": result.pipeline, "event": "metrics_failed"}
    if directory:
        try:
            write_textfile(text, directory, pipeline=result.pipeline)
        except OSError as exc:  # metrics must never fail a data load
            _LOG.warning("could not write metrics to %s: %s", directory, exc, extra=where)
    if gateway:
        try:
            push_metrics(text, gateway, pipeline=result.pipeline)
        except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError is an OSError; ValueError: bad URL
            _LOG.warning("could not push metrics: %s", exc, extra=where)
