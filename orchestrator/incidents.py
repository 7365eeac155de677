"""Turn a finished run into an incident and alerts: once per open incident, with evidence.

An escalated or partially failed run opens an incident (or updates the open one for the
same pipeline and failure class, which is then not re-sent) and sends an alert with the
evidence a person needs: failed criteria with observed vs expected, remediations tried,
a schema diff, masked sample rows and the next step.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from orchestrator.alerts import Alert, build_evidence, channels_from_config, send_all
from orchestrator.ledger import Ledger
from orchestrator.pipeline import Pipeline
from tools.contract import quote_ident
from tools.rules import data_columns
from tools.sinks import Sink

if TYPE_CHECKING:
    from orchestrator.run import _State

__all__ = ["NEXT_STEPS", "raise_alerts"]

#: What a person should do next, by failure class.
NEXT_STEPS: dict[str, str] = {
    "source_missing": "check that the vendor delivered today's file (and the fallback location), then re-run",
    "source_too_small": "ask the vendor for a complete file, then re-run with --source",
    "checksum_mismatch": "the file changed in transit or was replaced: ask the vendor to re-send it",
    "unreadable": "open the file: it is not a table; ask the vendor to re-send it",
    "schema_mismatch": "confirm the column mapping (heal show RUN_ID) or update the contract, then re-run",
    "type_drift": "add a repair rule or fix the contract type, then re-run",
    "null_critical": "review the quarantined rows (heal show RUN_ID) and ask the vendor for corrections",
    "duplicate_key": "one key arrived with different contents: ask the vendor which version is right",
    "out_of_range": "review the quarantined rows; correct the contract range if it is wrong",
    "malformed_row": "the file was cut or has broken lines: ask the vendor to re-send it",
    "volume_anomaly": "the row count is far from normal: confirm with the vendor that the file is complete",
    "freshness": "the data is old: ask the vendor for today's delivery",
    "distribution_shift": "values moved far from history (e.g. cents instead of units): confirm the unit",
    "duplicate_delivery": "this file was already loaded: nothing to do unless the vendor meant to send new data",
    "load_conflict": "keys already loaded: confirm whether this is a correction",
    "load_failed": "the load rolled back: check the target database, then re-run",
    "health_failed": "the target looks wrong after the load: inspect it before downstream jobs run",
    "transient": "a temporary error outlasted the retries: check the source or target service, then re-run",
}


def raise_alerts(
    pipeline: Pipeline,
    *,
    ledger: Ledger,
    sink: Sink,
    run_id: str,
    status: str,
    state: _State,
    env: Mapping[str, str] | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Open or update the incident for a run that needs a person, and send its alert."""
    if status not in ("escalated", "partial_failure"):
        return [], None
    step, verdict, failure_class = _cause(state)
    samples = _sample_rows(sink, state)
    evidence = build_evidence(
        failed_criteria=list(verdict.failed_criteria) if verdict else [],
        remediations=[v for s, v in state.verdicts if pipeline.steps[s].remediation],
        sample_rows=samples,
        sensitive_columns=pipeline.contract.sensitive,
        schema_diff=_schema_diff(pipeline, state) if failure_class == "schema_mismatch" else None,
        next_step=NEXT_STEPS.get(failure_class, "inspect the run with heal show " + run_id),
        run_url=f"heal show {run_id}",
        counts=dict(state.counts),
    )
    summary = f"{pipeline.name} {status} at {step}: {failure_class}"
    incident_id, is_new = ledger.open_incident(
        pipeline=pipeline.name, failure_class=failure_class, run_id=run_id, summary=summary,
        evidence=evidence.to_dict(),
    )
    record: dict[str, Any] = {"incident_id": incident_id, "failure_class": failure_class, "status": status,
                              "new": is_new, "deliveries": []}
    if is_new:
        alert = Alert(pipeline=pipeline.name, run_id=run_id, status=status, failure_class=failure_class,
                      summary=summary, evidence=evidence)
        channels = channels_from_config(list(pipeline.alerts), env if env is not None else os.environ,
                                        base_dir=pipeline.base_dir)
        record["deliveries"] = [d.__dict__ for d in send_all(alert, channels)]
    return [record], incident_id


def _cause(state: _State) -> tuple[str, Any, str]:
    if state.escalation is not None:
        return state.escalation
    if state.warnings:
        step, verdict = state.warnings[0]
        return step, verdict, verdict.failure_class or "volume_anomaly"
    for step, verdict in state.verdicts:
        if not verdict.passed:
            return step, verdict, verdict.failure_class or "transient"
    return "run", None, "transient"


def _sample_rows(sink: Sink, state: _State) -> list[dict[str, Any]]:
    con = sink.working_connection()
    if state.quarantine_table:
        rows = con.execute(
            f'SELECT row_number, reasons, row_data FROM "{state.quarantine_table}" ORDER BY row_number LIMIT 5'
        ).fetchall()
        return [{"_row": n, "_reasons": r, **json.loads(d)} for n, r, d in rows]
    if state.table:
        cols = ", ".join(quote_ident(c) for c in data_columns(con, state.table))
        staged = "_row" in [d[0] for d in con.execute(f"SELECT * FROM {quote_ident(state.table)} LIMIT 0").description]
        cur = con.execute(f"SELECT {cols} FROM {quote_ident(state.table)} {'ORDER BY _row' if staged else ''} LIMIT 5")
        header = [d[0] for d in cur.description]
        return [dict(zip(header, r)) for r in cur.fetchall()]
    return []


def _schema_diff(pipeline: Pipeline, state: _State) -> dict[str, Any]:
    delivered: list[str] = []
    for _, verdict in state.verdicts:
        if verdict.skill == "validate-schema":
            delivered = list(verdict.metrics.get("columns", delivered))
    expected = list(pipeline.contract.names)
    return {
        "expected": expected,
        "delivered": delivered,
        "missing": [c for c in expected if c not in delivered],
        "unexpected": [c for c in delivered if c not in expected],
        "mapping_tried": dict(state.mapping),
    }
