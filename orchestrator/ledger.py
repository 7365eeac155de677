"""The run history, in schema ``heal`` of the target database. The only code that reads or
writes it.

Tables (documented for users in README "The ledger"):

* ``heal.runs`` — one row per run: status, the four conservation numbers, fingerprint.
* ``heal.attempts`` — every skill attempt with its full verdict (JSON) and retry delay.
* ``heal.remediations`` — every remediation tried and whether it worked.
* ``heal.quarantine`` — rows held back, with reason codes and the row as JSON.
* ``heal.deliveries`` — content fingerprints of loaded deliveries (idempotency).
* ``heal.schema_mappings`` — learned column mappings, applied on later runs.
* ``heal.learned_rules`` — other repairs a checker verified (null tokens, date formats), applied on later runs.
* ``heal.coercions`` — per loaded delivery, each coercion (column, rule, rows affected): format and type drift healed.
* ``heal.profiles`` — per loaded delivery and column: rows, nulls, distinct, min/max/mean/quantiles.
* ``heal.incidents`` — escalations and alerts, one open incident per pipeline and class.
* ``heal.locks`` — the run holding each (pipeline, run date); a second run exits (RunLocked).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from tools.sinks import Sink
from tools.verdict import RunLocked, Verdict, validate_verdict

__all__ = ["Ledger", "RunLocked", "RunRow", "new_run_id"]

#: A lock older than this is taken over even when its holder cannot be checked (another host).
LOCK_MAX_AGE_HOURS = 6


_DDL = (
    "CREATE SCHEMA IF NOT EXISTS heal",
    """CREATE TABLE IF NOT EXISTS heal.runs (
        run_id TEXT PRIMARY KEY, pipeline TEXT NOT NULL, run_date DATE, mode TEXT,
        status TEXT, started_at TIMESTAMP, finished_at TIMESTAMP, source TEXT, fingerprint TEXT,
        rows_read BIGINT, rows_loaded BIGINT, rows_quarantined BIGINT, rows_duplicates BIGINT,
        conserved BOOLEAN, summary TEXT)""",
    """CREATE TABLE IF NOT EXISTS heal.attempts (
        run_id TEXT NOT NULL, seq INTEGER NOT NULL, step TEXT, skill TEXT, attempt INTEGER,
        level INTEGER, passed BOOLEAN, failure_class TEXT, delay_s DOUBLE PRECISION,
        started_at TIMESTAMP, duration_ms DOUBLE PRECISION, verdict TEXT)""",
    """CREATE TABLE IF NOT EXISTS heal.remediations (
        run_id TEXT NOT NULL, seq INTEGER, step TEXT, skill TEXT, failure_class TEXT,
        passed BOOLEAN, detail TEXT, created_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS heal.quarantine (
        run_id TEXT NOT NULL, pipeline TEXT, row_number BIGINT, reasons TEXT, row_data TEXT)""",
    """CREATE TABLE IF NOT EXISTS heal.deliveries (
        pipeline TEXT NOT NULL, fingerprint TEXT NOT NULL, run_id TEXT, rows_loaded BIGINT,
        loaded_at TIMESTAMP, PRIMARY KEY (pipeline, fingerprint))""",
    """CREATE TABLE IF NOT EXISTS heal.schema_mappings (
        pipeline TEXT NOT NULL, source_column TEXT NOT NULL, target_column TEXT, rule TEXT,
        run_id TEXT, created_at TIMESTAMP, PRIMARY KEY (pipeline, source_column))""",
    """CREATE TABLE IF NOT EXISTS heal.coercions (
        pipeline TEXT NOT NULL, run_id TEXT NOT NULL, column_name TEXT, rule TEXT NOT NULL,
        rows_affected BIGINT, detail TEXT, created_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS heal.learned_rules (
        pipeline TEXT NOT NULL, kind TEXT NOT NULL, column_name TEXT NOT NULL, value TEXT NOT NULL,
        run_id TEXT, created_at TIMESTAMP, PRIMARY KEY (pipeline, kind, column_name, value))""",
    """CREATE TABLE IF NOT EXISTS heal.locks (
        pipeline TEXT NOT NULL, run_date DATE NOT NULL, run_id TEXT, host TEXT, pid BIGINT,
        acquired_at TIMESTAMP, PRIMARY KEY (pipeline, run_date))""",
    """CREATE TABLE IF NOT EXISTS heal.profiles (
        pipeline TEXT NOT NULL, run_id TEXT NOT NULL, run_date DATE, column_name TEXT NOT NULL,
        profile TEXT)""",
    """CREATE TABLE IF NOT EXISTS heal.incidents (
        incident_id TEXT PRIMARY KEY, pipeline TEXT, failure_class TEXT, status TEXT,
        run_id TEXT, opened_at TIMESTAMP, updated_at TIMESTAMP, occurrences INTEGER,
        summary TEXT, evidence TEXT, notified_at TIMESTAMP, resolved_at TIMESTAMP)""",
)
_TABLES = sum(1 for statement in _DDL if statement.startswith("CREATE TABLE"))


def new_run_id(run_date: date) -> str:
    return f"{run_date:%Y%m%d}-{uuid.uuid4().hex[:10]}"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class RunRow:
    run_id: str
    pipeline: str
    run_date: date | None
    mode: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    source: str | None
    fingerprint: str | None
    rows_read: int | None
    rows_loaded: int | None
    rows_quarantined: int | None
    rows_duplicates: int | None
    conserved: bool | None
    summary: str | None


_RUN_COLUMNS = ", ".join(RunRow.__dataclass_fields__)


class Ledger:
    """Run history on a sink's connection. Create once per run or command."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        # Skip the DDL when the ledger exists: a role without CREATE rights can still run.
        present = sink.query(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'heal'"
        )[0][0]
        if present < _TABLES:
            for statement in _DDL:
                sink.execute(statement)

    # --- the run lock: one run per pipeline and date at a time ------------------------------
    def acquire_lock(self, pipeline: str, run_date: date, run_id: str) -> None:
        """Take the (pipeline, run_date) lock or raise RunLocked naming the holder.

        A lock whose holder died (same host, process gone) or that is older than
        LOCK_MAX_AGE_HOURS is taken over, and the run that held it is marked ``crashed``.
        """
        import os
        import socket

        host, pid = socket.gethostname(), os.getpid()
        rows = self.sink.query(
            "SELECT run_id, host, pid, acquired_at FROM heal.locks WHERE pipeline = ? AND run_date = ?",
            (pipeline, run_date),
        )
        if rows:
            holder, holder_host, holder_pid, acquired_at = rows[0]
            alive = holder_host == host and _process_alive(int(holder_pid))
            fresh = acquired_at is not None and (_now() - acquired_at).total_seconds() < LOCK_MAX_AGE_HOURS * 3600
            if alive or (holder_host != host and fresh):
                raise RunLocked(
                    f"another run ({holder}, pid {holder_pid} on {holder_host}, since {acquired_at:%H:%M:%S}) "
                    f"is running {pipeline} for {run_date}; wait for it to finish"
                )
            self.sink.execute("DELETE FROM heal.locks WHERE pipeline = ? AND run_date = ?", (pipeline, run_date))
            self.sink.execute(
                "UPDATE heal.runs SET status = 'crashed', finished_at = ?, summary = 'the process died mid-run; "
                "a later run took over' WHERE run_id = ? AND status = 'running'",
                (_now(), holder),
            )
        try:
            self.sink.execute(
                "INSERT INTO heal.locks VALUES (?, ?, ?, ?, ?, ?)", (pipeline, run_date, run_id, host, pid, _now())
            )
        except Exception:  # each driver signals a taken key its own way: look at the lock instead
            taken = self.sink.query(
                "SELECT run_id FROM heal.locks WHERE pipeline = ? AND run_date = ?", (pipeline, run_date)
            )
            if taken and taken[0][0] != run_id:
                raise RunLocked(f"another run ({taken[0][0]}) took the lock for {pipeline} {run_date} a moment ago; "
                                "wait for it to finish") from None
            raise

    def release_lock(self, pipeline: str, run_date: date, run_id: str) -> None:
        self.sink.execute(
            "DELETE FROM heal.locks WHERE pipeline = ? AND run_date = ? AND run_id = ?", (pipeline, run_date, run_id)
        )

    # --- runs -----------------------------------------------------------------------------
    def start_run(self, run_id: str, *, pipeline: str, run_date: date, mode: str, source: str) -> None:
        self.sink.execute(
            "INSERT INTO heal.runs (run_id, pipeline, run_date, mode, status, started_at, source) "
            "VALUES (?, ?, ?, ?, 'running', ?, ?)",
            (run_id, pipeline, run_date, mode, _now(), source),
        )

    def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        fingerprint: str | None,
        counts: dict[str, int],
        conserved: bool,
        summary: str,
    ) -> None:
        self.sink.execute(
            "UPDATE heal.runs SET status = ?, finished_at = ?, fingerprint = ?, rows_read = ?, "
            "rows_loaded = ?, rows_quarantined = ?, rows_duplicates = ?, conserved = ?, summary = ? "
            "WHERE run_id = ?",
            (status, _now(), fingerprint, counts.get("read", 0), counts.get("loaded", 0),
             counts.get("quarantined", 0), counts.get("duplicates", 0), conserved, summary, run_id),
        )

    def runs(self, *, pipeline: str | None = None, limit: int = 20) -> list[RunRow]:
        where, params = ("WHERE pipeline = ?", [pipeline]) if pipeline else ("", [])
        rows = self.sink.query(
            f"SELECT {_RUN_COLUMNS} FROM heal.runs {where} ORDER BY started_at DESC LIMIT ?",
            (*params, limit),
        )
        return [RunRow(*r) for r in rows]

    def run(self, run_id: str) -> RunRow | None:
        rows = self.sink.query(
            f"SELECT {_RUN_COLUMNS} FROM heal.runs WHERE run_id = ? OR run_id LIKE ? "
            "ORDER BY started_at DESC LIMIT 2",
            (run_id, f"{run_id}%"),
        )
        return RunRow(*rows[0]) if len(rows) == 1 or (rows and rows[0][0] == run_id) else None

    def loaded_counts(self, pipeline: str, *, limit: int) -> list[int]:
        """Rows read by recent runs that loaded something, newest first (volume history)."""
        rows = self.sink.query(
            "SELECT rows_read FROM heal.runs WHERE pipeline = ? AND status IN "
            "('success', 'healed', 'partial_failure') AND rows_loaded > 0 "
            "ORDER BY run_date DESC, started_at DESC LIMIT ?",
            (pipeline, limit),
        )
        return [r[0] for r in rows]

    def volume_history(self, pipeline: str, *, before: date, days: int) -> list[tuple[date, int]]:
        """(run_date, rows read) of loaded runs dated in the ``days`` before ``before``, newest first."""
        since = date.fromordinal(before.toordinal() - days)
        return [(d, n) for d, n in self.sink.query(
            "SELECT run_date, rows_read FROM heal.runs WHERE pipeline = ? AND status IN "
            "('success', 'healed', 'partial_failure') AND rows_loaded > 0 AND run_date < ? AND run_date >= ? "
            "ORDER BY run_date DESC, started_at DESC",
            (pipeline, before, since),
        )]

    # --- attempts and remediations --------------------------------------------------------
    def record_attempt(
        self,
        run_id: str,
        *,
        seq: int,
        step: str,
        attempt: int,
        level: int,
        verdict: Verdict,
        delay_s: float,
        started_at: datetime,
    ) -> None:
        data = verdict.to_dict()
        validate_verdict(json.loads(json.dumps(data, default=str)))
        self.sink.execute(
            "INSERT INTO heal.attempts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, seq, step, verdict.skill, attempt, level, verdict.passed, verdict.failure_class,
             delay_s, started_at, verdict.duration_ms, json.dumps(data, default=str)),
        )

    def record_remediation(self, run_id: str, *, seq: int, step: str, verdict: Verdict, failure_class: str | None) -> None:
        detail = {"artifacts": verdict.artifacts, "metrics": verdict.metrics}
        self.sink.execute(
            "INSERT INTO heal.remediations VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, seq, step, verdict.skill, failure_class, verdict.passed,
             json.dumps(detail, default=str), _now()),
        )

    def attempts(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.sink.query(
            "SELECT seq, step, skill, attempt, level, passed, failure_class, delay_s, duration_ms, verdict "
            "FROM heal.attempts WHERE run_id = ? ORDER BY seq",
            (run_id,),
        )
        keys = ("seq", "step", "skill", "attempt", "level", "passed", "failure_class", "delay_s", "duration_ms", "verdict")
        out = [dict(zip(keys, r)) for r in rows]
        for a in out:
            a["verdict"] = json.loads(a["verdict"])
        return out

    def remediations(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.sink.query(
            "SELECT seq, step, skill, failure_class, passed, detail FROM heal.remediations "
            "WHERE run_id = ? ORDER BY seq",
            (run_id,),
        )
        return [
            {"seq": s, "step": st, "skill": sk, "failure_class": fc, "passed": p, "detail": json.loads(d)}
            for s, st, sk, fc, p, d in rows
        ]

    # --- deliveries (idempotency) -----------------------------------------------------------
    def loaded_fingerprints(self, pipeline: str) -> set[str]:
        rows = self.sink.query("SELECT fingerprint FROM heal.deliveries WHERE pipeline = ?", (pipeline,))
        return {r[0] for r in rows}

    def record_delivery(self, *, pipeline: str, fingerprint: str, run_id: str, rows_loaded: int) -> None:
        """Called inside the load transaction, so a delivery is recorded iff it was loaded."""
        self.sink.execute(
            "INSERT INTO heal.deliveries VALUES (?, ?, ?, ?, ?)",
            (pipeline, fingerprint, run_id, rows_loaded, _now()),
        )

    def quarantined(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.sink.query(
            "SELECT row_number, reasons, row_data FROM heal.quarantine WHERE run_id = ? ORDER BY row_number",
            (run_id,),
        )
        return [{"row_number": n, "reasons": r.split(";"), "row": json.loads(d)} for n, r, d in rows]

    # --- column profiles ------------------------------------------------------------------
    def record_profiles(self, *, pipeline: str, run_id: str, run_date: date, profiles: dict[str, dict[str, Any]]) -> None:
        """Called inside the load transaction: a profile exists iff its delivery was loaded."""
        for column, profile in sorted(profiles.items()):
            self.sink.execute(
                "INSERT INTO heal.profiles VALUES (?, ?, ?, ?, ?)",
                (pipeline, run_id, run_date, column, json.dumps(profile, default=str)),
            )

    def profiles(self, pipeline: str, *, limit: int = 30, before: date | None = None) -> list[dict[str, Any]]:
        """Profiles of the last ``limit`` loaded runs (dated before ``before``, if given), newest first:
        ``[{"run_id", "run_date", "columns": {name: profile}}]``."""
        runs = self.sink.query(
            "SELECT run_id, max(run_date) FROM heal.profiles WHERE pipeline = ? AND run_date < ? GROUP BY run_id "
            "ORDER BY max(run_date) DESC, run_id DESC LIMIT ?",
            (pipeline, before or date.max, limit),
        )
        out = []
        for run_id, run_date in runs:
            rows = self.sink.query(
                "SELECT column_name, profile FROM heal.profiles WHERE run_id = ?", (run_id,)
            )
            out.append({"run_id": run_id, "run_date": run_date, "columns": {c: json.loads(p) for c, p in rows}})
        return out

    # --- learned schema mappings ------------------------------------------------------------
    def mappings(self, pipeline: str) -> dict[str, str]:
        rows = self.sink.query(
            "SELECT source_column, target_column FROM heal.schema_mappings WHERE pipeline = ?",
            (pipeline,),
        )
        return dict(rows)

    def save_mappings(self, pipeline: str, mapping: dict[str, str], *, rule: str, run_id: str) -> None:
        for source, target in sorted(mapping.items()):
            self.sink.execute(
                "DELETE FROM heal.schema_mappings WHERE pipeline = ? AND source_column = ?", (pipeline, source)
            )
            self.sink.execute(
                "INSERT INTO heal.schema_mappings VALUES (?, ?, ?, ?, ?, ?)",
                (pipeline, source, target, rule, run_id, _now()),
            )

    # --- other learned rules (null tokens, date formats) -------------------------------------
    def learned_rules(self, pipeline: str, *, kind: str | None = None) -> list[dict[str, str]]:
        """Verified repairs to apply on later runs: ``[{"kind", "column", "value", "run_id"}]``, oldest first."""
        where, params = ("AND kind = ?", (pipeline, kind)) if kind else ("", (pipeline,))
        rows = self.sink.query(
            f"SELECT kind, column_name, value, run_id FROM heal.learned_rules WHERE pipeline = ? {where} "
            "ORDER BY created_at, kind, column_name, value",
            params,
        )
        return [{"kind": k, "column": c, "value": v, "run_id": r} for k, c, v, r in rows]

    def save_learned_rule(self, pipeline: str, *, kind: str, column: str, value: str, run_id: str) -> None:
        """Record a repair a checker verified (e.g. kind ``null_token`` or ``date_format``)."""
        self.sink.execute(
            "DELETE FROM heal.learned_rules WHERE pipeline = ? AND kind = ? AND column_name = ? AND value = ?",
            (pipeline, kind, column, value),
        )
        self.sink.execute(
            "INSERT INTO heal.learned_rules VALUES (?, ?, ?, ?, ?, ?)", (pipeline, kind, column, value, run_id, _now())
        )

    # --- coercions (format and type drift healed) ----------------------------------------------
    def record_coercions(self, *, pipeline: str, run_id: str, coercions: Sequence[Mapping[str, Any]]) -> None:
        """Called inside the load transaction: ``{"column" (None: the whole file), "rule", "rows", "detail"}``."""
        now = _now()
        for c in coercions:
            self.sink.execute(
                "INSERT INTO heal.coercions VALUES (?, ?, ?, ?, ?, ?, ?)",
                (pipeline, run_id, c.get("column"), c["rule"], int(c.get("rows") or 0), c.get("detail", ""), now),
            )

    def coercions(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.sink.query(
            "SELECT column_name, rule, rows_affected, detail FROM heal.coercions WHERE run_id = ? "
            "ORDER BY column_name NULLS FIRST, rule",
            (run_id,),
        )
        return [{"column": c, "rule": r, "rows": n, "detail": d} for c, r, n, d in rows]

    def learned_coercions(self, pipeline: str) -> dict[str, tuple[str, ...]]:
        """Per column, the type-drift rules that settle an ambiguity, newest first: rules applied to
        loaded deliveries (``date:DD/MM/YYYY``, ``decimal_comma``, ``cents``) and ones a person or the
        agent confirmed in ``heal.learned_rules`` (``date_format:%d/%m/%Y``, ``unit:cents``)."""
        rows = self.sink.query(
            "SELECT column_name, rule, created_at FROM heal.coercions WHERE pipeline = ? AND column_name IS NOT NULL "
            "AND (rule LIKE 'date:%' OR rule IN ('decimal_comma', 'thousands_separator', 'cents')) "
            "UNION ALL SELECT column_name, kind || ':' || value, created_at FROM heal.learned_rules "
            "WHERE pipeline = ? AND kind IN ('date_format', 'unit') ORDER BY 3 DESC, 2",
            (pipeline, pipeline),
        )
        out: dict[str, list[str]] = {}
        for column, rule, _ in rows:
            if rule not in out.setdefault(column, []):
                out[column].append(rule)
        return {c: tuple(r) for c, r in out.items()}

    # --- incidents --------------------------------------------------------------------------
    def open_incident(
        self, *, pipeline: str, failure_class: str, run_id: str, summary: str, evidence: dict[str, Any]
    ) -> tuple[str, bool]:
        """Open an incident, or update the open one for the same pipeline and class.

        Returns (incident_id, is_new).
        """
        rows = self.sink.query(
            "SELECT incident_id FROM heal.incidents WHERE pipeline = ? AND failure_class = ? AND status = 'open'",
            (pipeline, failure_class),
        )
        now = _now()
        payload = json.dumps(evidence, default=str)
        if rows:
            incident_id = rows[0][0]
            self.sink.execute(
                "UPDATE heal.incidents SET run_id = ?, updated_at = ?, occurrences = occurrences + 1, "
                "summary = ?, evidence = ? WHERE incident_id = ?",
                (run_id, now, summary, payload, incident_id),
            )
            return incident_id, False
        incident_id = f"inc-{uuid.uuid4().hex[:10]}"
        self.sink.execute(
            "INSERT INTO heal.incidents (incident_id, pipeline, failure_class, status, run_id, opened_at, "
            "updated_at, occurrences, summary, evidence) VALUES (?, ?, ?, 'open', ?, ?, ?, 1, ?, ?)",
            (incident_id, pipeline, failure_class, run_id, now, now, summary, payload),
        )
        return incident_id, True

    def mark_notified(self, incident_id: str, *, at: datetime) -> None:
        """Record that a person was told (the suppression window counts from here)."""
        self.sink.execute("UPDATE heal.incidents SET notified_at = ? WHERE incident_id = ?", (at, incident_id))

    def resolve_incident(self, incident_id: str, *, run_id: str, at: datetime) -> None:
        self.sink.execute(
            "UPDATE heal.incidents SET status = 'resolved', resolved_at = ?, updated_at = ?, run_id = ? "
            "WHERE incident_id = ? AND status = 'open'",
            (at, at, run_id, incident_id),
        )

    def incidents(self, *, pipeline: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        clauses, params = [], []
        if pipeline:
            clauses.append("pipeline = ?")
            params.append(pipeline)
        if status:
            clauses.append("status = ?")
            params.append(status)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.sink.query(
            "SELECT incident_id, pipeline, failure_class, status, run_id, opened_at, updated_at, "
            f"occurrences, summary, evidence, notified_at, resolved_at FROM heal.incidents {where} ORDER BY opened_at",
            params,
        )
        keys = ("incident_id", "pipeline", "failure_class", "status", "run_id", "opened_at",
                "updated_at", "occurrences", "summary", "evidence", "notified_at", "resolved_at")
        out = [dict(zip(keys, r)) for r in rows]
        for inc in out:
            inc["evidence"] = json.loads(inc["evidence"])
        return out

    def summary(self, *, pipeline: str | None = None) -> list[tuple[Any, ...]]:
        """(pipeline, status, runs, rows_loaded, rows_quarantined) grouped."""
        where, params = ("WHERE pipeline = ?", (pipeline,)) if pipeline else ("", ())
        return self.sink.query(
            "SELECT pipeline, status, count(*), sum(rows_loaded), sum(rows_quarantined) "
            f"FROM heal.runs {where} GROUP BY pipeline, status ORDER BY pipeline, status",
            params,
        )

    def recent_failure_classes(self, pipeline: str, *, runs: int) -> list[list[str]]:
        """Failure classes seen in each of the last ``runs`` finished runs, newest first."""
        ids = [r[0] for r in self.sink.query(
            "SELECT run_id FROM heal.runs WHERE pipeline = ? AND status <> 'running' "
            "ORDER BY started_at DESC LIMIT ?", (pipeline, runs))]
        out = []
        for run_id in ids:
            rows = self.sink.query(
                "SELECT DISTINCT failure_class FROM heal.attempts WHERE run_id = ? AND failure_class IS NOT NULL",
                (run_id,),
            )
            out.append(sorted(r[0] for r in rows))
        return out


def _process_alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
