"""Turn a finished run into incidents and alerts: tell a person once, with evidence, and
say when it is over.

One incident is open per pipeline and failure class. After each run:

* **Escalated or partially failed** (level 3): open the incident for the run's cause, or
  update the open one. A person is told when the incident is new, or when it was last
  told more than ``escalation.suppress_minutes`` ago (default 240, Alertmanager's
  ``repeat_interval``: an hourly feed re-alerts at most every four hours, a daily feed
  once per run while the failure lasts). Within the window it is updated, not re-sent.
* **Recurring**: a failure class seen in each of the last ``escalation.recurring_runs``
  runs (default 3) alerts with status ``recurring`` even when every run healed it; it is
  then an incident like any other (updated, suppressed, resolved).
* **Resolved**: a run that loaded data (success, healed or partial_failure) and did not
  meet a class resolves that class's open incident; the channels get a resolve event with
  the same ``dedup_key`` (PagerDuty closes its incident), if they were told of it.

An incident counts as told only when a channel accepted the alert (or none is
configured), so a dead webhook is tried again on the next run. Sending never fails a run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from orchestrator.alerts import Alert, Notifier, build_evidence, channels_from_config, send_all
from orchestrator.ledger import Ledger
from orchestrator.pipeline import Pipeline
from tools.contract import quote_ident
from tools.rules import data_columns
from tools.sinks import Sink

if TYPE_CHECKING:
    from orchestrator.run import _State

__all__ = ["DEFAULT_RECURRING_RUNS", "DEFAULT_SUPPRESS_MINUTES", "NEXT_STEPS", "EscalationPolicy", "raise_alerts"]

DEFAULT_RECURRING_RUNS = 3
DEFAULT_SUPPRESS_MINUTES = 240.0
_LOADED = ("success", "healed", "partial_failure")

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


@dataclass(frozen=True)
class EscalationPolicy:
    """The pipeline file's ``escalation:`` settings that decide who is told and when."""

    recurring_runs: int = DEFAULT_RECURRING_RUNS
    suppress_minutes: float = DEFAULT_SUPPRESS_MINUTES

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> EscalationPolicy:
        return cls(
            recurring_runs=int(config.get("recurring_runs", DEFAULT_RECURRING_RUNS)),
            suppress_minutes=float(config.get("suppress_minutes", DEFAULT_SUPPRESS_MINUTES)),
        )


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class _Notify:
    """Open/update incidents and send alerts for one run; channels are built on first use."""

    def __init__(self, pipeline: Pipeline, *, ledger: Ledger, run_id: str, env: Mapping[str, str],
                 policy: EscalationPolicy, now: datetime) -> None:
        self.pipeline, self.ledger, self.run_id, self.env = pipeline, ledger, run_id, env
        self.policy, self.now = policy, now
        self._channels: list[Notifier] | None = None
        self.open = {i["failure_class"]: i for i in ledger.incidents(pipeline=pipeline.name, status="open")}

    def channels(self) -> list[Notifier]:
        if self._channels is None:
            self._channels = channels_from_config(list(self.pipeline.alerts), self.env,
                                                  base_dir=self.pipeline.base_dir)
        return self._channels

    def _send(self, alert: Alert) -> tuple[bool, list[dict[str, Any]]]:
        channels = self.channels()
        deliveries = send_all(alert, channels)
        return (not channels or any(d.ok for d in deliveries)), [d.__dict__ for d in deliveries]

    def trigger(self, *, failure_class: str, status: str, summary: str, evidence: Any) -> dict[str, Any]:
        before = self.open.get(failure_class)
        incident_id, is_new = self.ledger.open_incident(
            pipeline=self.pipeline.name, failure_class=failure_class, run_id=self.run_id, summary=summary,
            evidence=evidence.to_dict(),
        )
        told = before.get("notified_at") if before else None
        due = told is None or self.now - told >= timedelta(minutes=self.policy.suppress_minutes)
        record: dict[str, Any] = {"incident_id": incident_id, "failure_class": failure_class, "status": status,
                                  "new": is_new, "sent": False, "deliveries": [],
                                  "event": "opened" if is_new else "updated (not re-sent)"}
        if due:
            alert = Alert(pipeline=self.pipeline.name, run_id=self.run_id, status=status,
                          failure_class=failure_class, summary=summary, evidence=evidence)
            ok, record["deliveries"] = self._send(alert)
            record["sent"] = ok
            if ok:
                self.ledger.mark_notified(incident_id, at=self.now)
            if not is_new:
                record["event"] = "re-sent" if ok else "updated (sending failed)"
        return record

    def resolve(self, incident: Mapping[str, Any]) -> dict[str, Any]:
        fc = incident["failure_class"]
        self.ledger.resolve_incident(incident["incident_id"], run_id=self.run_id, at=self.now)
        record: dict[str, Any] = {"incident_id": incident["incident_id"], "failure_class": fc, "status": "resolved",
                                  "new": False, "sent": False, "deliveries": [], "event": "resolved"}
        if incident.get("notified_at") is not None:  # nobody was told: nothing to take back
            alert = Alert(pipeline=self.pipeline.name, run_id=self.run_id, status="resolved", failure_class=fc,
                          summary=f"{self.pipeline.name}: {fc} no longer failing (run {self.run_id}); "
                                  f"open since {incident.get('opened_at')}, {incident.get('occurrences')} occurrence(s)")
            record["sent"], record["deliveries"] = self._send(alert)
        return record


def raise_alerts(
    pipeline: Pipeline,
    *,
    ledger: Ledger,
    sink: Sink,
    run_id: str,
    status: str,
    state: _State,
    env: Mapping[str, str] | None = None,
    clock: Callable[[], datetime] = _utcnow,
) -> tuple[list[dict[str, Any]], str | None]:
    """Open, update, re-send or resolve this pipeline's incidents after a finished run.

    Returns one record per incident touched (the run's own cause first) and the id of the
    incident for the run's cause, if any.
    """
    policy = EscalationPolicy.from_config(pipeline.escalation)
    notify = _Notify(pipeline, ledger=ledger, run_id=run_id, env=env if env is not None else os.environ,
                     policy=policy, now=clock())
    records: list[dict[str, Any]] = []
    incident_id: str | None = None
    cause: str | None = None
    if status in ("escalated", "partial_failure"):
        step, verdict, cause = _cause(state)
        evidence = build_evidence(
            failed_criteria=list(verdict.failed_criteria) if verdict else [],
            remediations=[v for s, v in state.verdicts if s in pipeline.steps and pipeline.steps[s].remediation],
            sample_rows=_sample_rows(sink, state),
            sensitive_columns=pipeline.contract.sensitive,
            schema_diff=_schema_diff(pipeline, state) if cause == "schema_mismatch" else None,
            next_step=NEXT_STEPS.get(cause, "inspect the run with heal show " + run_id),
            run_url=f"heal show {run_id}",
            counts=dict(state.counts),
        )
        records.append(notify.trigger(failure_class=cause, status=status, evidence=evidence,
                                      summary=f"{pipeline.name} {status} at {step}: {cause}"))
        incident_id = records[0]["incident_id"]
    recent = ledger.recent_failure_classes(pipeline.name, runs=policy.recurring_runs)
    if len(recent) == policy.recurring_runs:
        for fc in sorted(set.intersection(*(set(r) for r in recent)) - {cause}):
            records.append(notify.trigger(failure_class=fc, status="recurring",
                                          evidence=_recurring_evidence(pipeline, ledger, state, run_id, fc,
                                                                       policy.recurring_runs),
                                          summary=f"{pipeline.name}: {fc} in each of the last "
                                                  f"{policy.recurring_runs} runs"))
    if status in _LOADED:
        seen = {s["failure_class"] for s in state.steps if s.get("failure_class")} | {cause}
        for incident in ledger.incidents(pipeline=pipeline.name, status="open"):
            if incident["failure_class"] not in seen:
                records.append(notify.resolve(incident))
    return records, incident_id


def _recurring_evidence(pipeline: Pipeline, ledger: Ledger, state: _State, run_id: str, fc: str, runs: int) -> Any:
    failed = [c for a in ledger.attempts(run_id) if a["failure_class"] == fc
              for c in a["verdict"]["criteria"] if not c["pass"]]
    return build_evidence(
        failed_criteria=failed[:10],
        remediations=[v for s, v in state.verdicts if s in pipeline.steps and pipeline.steps[s].remediation],
        next_step=f"{NEXT_STEPS.get(fc, 'inspect the runs')}; it happened in {runs} runs in a row "
                  "(healed or not): fix the cause upstream",
        run_url=f"heal show {run_id}",
        counts=dict(state.counts),
    )


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
