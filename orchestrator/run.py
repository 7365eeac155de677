"""The autopilot: walk a pipeline's graph with no model, heal what the graph knows how to heal.

Level 1 retries a step whose failure class its retry policy names; level 2 follows the
graph to a remediation; level 3 escalates: nothing more is loaded, an incident is opened
and a person is told. Every attempt's verdict is written to the ledger before the next
step starts. The load commits together with the ledger rows that must agree with it
(the delivery's fingerprint, the quarantine), after conservation is proven.
"""

from __future__ import annotations

import datetime as dt
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import duckdb

from orchestrator.graph import CONTINUE, DONE, ESCALATE, Step, route
from orchestrator.incidents import raise_alerts
from orchestrator.ledger import Ledger, new_run_id
from orchestrator.observability import after_run, log_attempt, log_run_start
from orchestrator.pipeline import Pipeline
from orchestrator.skills import SkillRegistry
from tools.context import History, SourceSpec, StepContext
from tools.contract import quote_ident
from tools.history import PROFILE_RUNS, WINDOW_DAYS
from tools.profile import profile_table
from tools.sinks import Sink, open_sink, qualified_name, redact_url
from tools.sources import redact_uri, resolve_uri
from tools.verdict import (
    ConfigError,
    Criterion,
    HealError,
    InputError,
    SourceError,
    StagingError,
    TargetError,
    Verdict,
)

__all__ = ["EXIT_CODES", "RunResult", "run_pipeline"]

#: ``heal run`` exit codes by final status (2 means the run could not start).
EXIT_CODES = {"success": 0, "healed": 0, "partial_failure": 3, "escalated": 4}

# Reader notes that only describe a normal file; any other note means the reader repaired drift.
_PLAIN_READ_NOTES = ("delimiter:,", "encoding:utf-8", "csv", "lf", "crlf")


@dataclass(frozen=True)
class RunResult:
    run_id: str
    pipeline: str
    run_date: dt.date
    status: str
    counts: dict[str, int]
    conserved: bool
    remediations: tuple[str, ...]
    alerts: tuple[dict[str, Any], ...]
    incident_id: str | None
    steps: tuple[dict[str, Any], ...]
    summary: str
    target: str

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "run_date": self.run_date.isoformat(),
            "status": self.status,
            "rows_read": self.counts.get("read", 0),
            "rows_loaded": self.counts.get("loaded", 0),
            "rows_quarantined": self.counts.get("quarantined", 0),
            "duplicates_removed": self.counts.get("duplicates", 0),
            "rows_held": self.counts.get("held", 0),
            "conserved": self.conserved,
            "remediations": list(self.remediations),
            "alerts": list(self.alerts),
            "incident_id": self.incident_id,
            "steps": list(self.steps),
            "summary": self.summary,
            "target": self.target,
        }


@dataclass
class _State:
    """What the run knows so far; changed only from verdict artifacts."""

    table: str | None = None
    delivery_path: str | None = None
    fingerprint: str | None = None
    uri: str | None = None
    columns: list[tuple[str, str]] = field(default_factory=list)
    quarantine_table: str | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: {"read": 0, "loaded": 0, "quarantined": 0, "duplicates": 0})
    repaired: list[str] = field(default_factory=list)  # why the run counts as healed
    warnings: list[tuple[str, Verdict]] = field(default_factory=list)  # (step, verdict) routed to continue
    escalation: tuple[str, Verdict, str] | None = None  # (step, verdict, failure_class)
    steps: list[dict[str, Any]] = field(default_factory=list)
    verdicts: list[tuple[str, Verdict]] = field(default_factory=list)
    read: dict[str, Any] | None = None  # the reader's report (artifacts.read of validate-schema)
    coercions: list[dict[str, Any]] = field(default_factory=list)  # type drift repaired, per column

    def absorb(self, verdict: Verdict) -> None:
        a, m = verdict.artifacts, verdict.metrics
        if "table" in a:  # a failing check may still have staged the rows it judged
            self.table = a["table"]
        if "read" in a:
            self.read = a["read"]
            self.counts["read"] = m.get("rows", 0)
            drift = [n["rule"] for n in a["read"].get("notes", []) if n["rule"] not in _PLAIN_READ_NOTES]
            self.repaired += [f"read:{rule}" for rule in drift]
        if not verdict.passed:
            return
        if "delivery_path" in a:
            self.delivery_path, self.fingerprint, self.uri = a["delivery_path"], a.get("fingerprint"), a.get("uri")
        if "columns" in a:
            self.columns = [tuple(c) for c in a["columns"]]
        if "quarantine_table" in a:
            self.quarantine_table = a["quarantine_table"]
            self.counts["quarantined"] = m.get("rows_quarantined", 0)
        if "mapping" in a and a["mapping"]:
            self.mapping.update(a["mapping"])
            self.repaired.append("mapping")
        for c in a.get("coercions", ()):  # each coercion once, whichever step reported it
            if not any((c["column"], c["rule"]) == (x["column"], x["rule"]) for x in self.coercions):
                self.coercions.append(c)
                if c.get("repair", True):  # null tokens and the like are recorded, not healed
                    self.repaired.append(f"coercion:{c['rule']}")
        if "duplicates_removed" in m:
            self.counts["duplicates"] = m["duplicates_removed"]
            if m["duplicates_removed"]:
                self.repaired.append("exact_duplicates")
        if "rows_loaded" in m:
            self.counts["loaded"] = m["rows_loaded"]


def run_pipeline(
    pipeline: Pipeline,
    *,
    run_date: dt.date | None = None,
    sink: Sink | None = None,
    skills: SkillRegistry | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    env: dict[str, str] | None = None,
    mode: str = "autopilot",
    agent: Callable[..., None] | None = None,
) -> RunResult:
    """Run ``pipeline`` once for ``run_date`` on autopilot and return what happened.

    ``agent`` (see :mod:`orchestrator.agent`) is called only when the walk escalates, with the
    live run: ``agent(pipeline, state=, walk=, ledger=, run_id=)``; ``walk(spec, start=,
    max_steps=)`` goes on through the graph from a step. It may clear ``state.escalation``.
    """
    run_date = run_date or dt.date.today()
    rng = rng or random.Random()
    skills = skills or SkillRegistry()
    owns_sink = sink is None
    sink = sink or open_sink(pipeline.target)
    workdir = Path(tempfile.mkdtemp(prefix="heal-run-"))
    locked = False
    try:
        ledger = Ledger(sink)
        run_id = new_run_id(run_date)
        source = replace(
            pipeline.source,
            uri=resolve_uri(pipeline.source.uri, run_date=run_date),
            fallback=resolve_uri(pipeline.source.fallback, run_date=run_date) if pipeline.source.fallback else None,
        )
        history = History(
            volumes=tuple(ledger.loaded_counts(pipeline.name, limit=pipeline.contract.volume_window)),
            fingerprints=frozenset(ledger.loaded_fingerprints(pipeline.name)),
            mappings=ledger.mappings(pipeline.name),
            volumes_by_date=tuple(ledger.volume_history(pipeline.name, before=run_date, days=WINDOW_DAYS)),
            profiles=tuple(ledger.profiles(pipeline.name, limit=PROFILE_RUNS, before=run_date)),
            coercions=ledger.learned_coercions(pipeline.name),
        )
        ledger.acquire_lock(pipeline.name, run_date, run_id)
        locked = True
        ledger.start_run(run_id, pipeline=pipeline.name, run_date=run_date, mode=mode, source=redact_uri(source.uri))
        log_run_start(run_id, pipeline.name, run_date=run_date.isoformat(), mode=mode, source=redact_url(source.uri))
        state = _State()
        learned_tokens = [r["value"] for r in ledger.learned_rules(pipeline.name, kind="null_token")]
        if learned_tokens:  # verified by a checker on an earlier run (orchestrator.agent)
            tokens = tuple(dict.fromkeys((*pipeline.contract.null_tokens, *learned_tokens)))
            pipeline = replace(pipeline, contract=replace(pipeline.contract, null_tokens=tokens))
        walk = partial(_walk, state=state, ledger=ledger, sink=sink, skills=skills, run_id=run_id,
                       run_date=run_date, source=source, history=history, workdir=workdir, sleep=sleep, rng=rng)
        walk(pipeline)
        if agent is not None and state.escalation is not None:
            agent(pipeline, state=state, walk=walk, ledger=ledger, run_id=run_id)
        status, conserved = _finish_counts(state)
        summary = _summary(status, state)
        ledger.finish_run(run_id, status=status, fingerprint=state.fingerprint, counts=state.counts,
                          conserved=conserved, summary=summary)
        alerts, incident_id = raise_alerts(
            pipeline, ledger=ledger, sink=sink, run_id=run_id, status=status, state=state, env=env,
        )
        result = RunResult(
            run_id=run_id, pipeline=pipeline.name, run_date=run_date, status=status,
            counts=dict(state.counts), conserved=conserved,
            remediations=tuple(s["skill"] for s in state.steps if s["remediation"] and s["passed"]),
            alerts=tuple(alerts), incident_id=incident_id, steps=tuple(state.steps),
            summary=summary, target=redact_url(sink.url),
        )
        after_run(result, ledger=ledger, env=env)  # logs the outcome; refreshes Prometheus metrics
        return result
    finally:
        if locked:
            ledger.release_lock(pipeline.name, run_date, run_id)
        shutil.rmtree(workdir, ignore_errors=True)
        if owns_sink:
            sink.close()


def _walk(pipeline: Pipeline, state: _State, *, ledger: Ledger, sink: Sink, skills: SkillRegistry,
          run_id: str, run_date: dt.date, source: SourceSpec, history: History, workdir: Path,
          sleep: Callable[[float], None], rng: random.Random, start: str | None = None,
          max_steps: int | None = None) -> str:
    """Walk from ``start`` (default: the first step); return ``done``, ``escalate``, or the next
    step when ``max_steps`` steps have run."""
    max_visits = int(pipeline.escalation.get("max_visits", 2))
    visits: dict[str, int] = {}
    seq = len(state.steps)
    step_id = start or pipeline.first_step
    while step_id != DONE:
        if max_steps is not None and sum(visits.values()) >= max_steps:
            return step_id
        step = pipeline.steps[step_id]
        visits[step_id] = visits.get(step_id, 0) + 1
        if visits[step_id] > max_visits:
            verdict = _synthetic(step.skill, "visit_cap", f"visited {max_visits} times without passing")
            state.escalation = (step_id, verdict, state.verdicts[-1][1].failure_class or "schema_mismatch")
            return ESCALATE
        attempt, waited, delay = 0, 0.0, 0.0
        while True:
            attempt += 1
            seq += 1
            ctx = _context(pipeline, state, step, run_id=run_id, run_date=run_date, source=source,
                           history=history, workdir=workdir, sink=sink, ledger=ledger)
            started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            verdict = _run_skill(skills, step, ctx)
            level = 2 if step.remediation else 1
            ledger.record_attempt(run_id, seq=seq, step=step.id, attempt=attempt, level=level,
                                  verdict=verdict, delay_s=round(delay, 3), started_at=started)
            log_attempt(run_id, pipeline.name, step=step.id, attempt=attempt, verdict=verdict, delay_s=round(delay, 3))
            state.steps.append({"step": step.id, "skill": step.skill, "attempt": attempt,
                                "passed": verdict.passed, "failure_class": verdict.failure_class,
                                "delay_s": round(delay, 3), "remediation": step.remediation})
            if verdict.passed or not step.retry.should_retry(verdict.failure_class, attempt, waited):
                break
            delay = step.retry.delay(attempt, rng)
            sleep(delay)
            waited += delay
        if attempt > 1 and verdict.passed:
            state.repaired.append(f"retry:{step.id}")
        state.verdicts.append((step.id, verdict))
        if step.remediation:
            ledger.record_remediation(run_id, seq=seq, step=step.id, verdict=verdict,
                                      failure_class=state.verdicts[-2][1].failure_class if len(state.verdicts) > 1 else None)
            if verdict.passed:
                state.repaired.append(f"remediation:{step.skill}")
        state.absorb(verdict)
        decision = route(step, verdict.passed, verdict.failure_classes)
        if decision.target == ESCALATE:
            state.escalation = (step.id, verdict, decision.failure_class or "transient")
            return ESCALATE
        if decision.target == CONTINUE:
            state.warnings.append((step.id, verdict))
            step_id = step.on_pass
        else:
            step_id = decision.target
    return DONE


def _context(pipeline: Pipeline, state: _State, step: Step, *, run_id: str, run_date: dt.date,
             source: SourceSpec, history: History, workdir: Path, sink: Sink, ledger: Ledger) -> StepContext:
    params = dict(step.params)
    on_commit = None
    if step.skill in ("load-target", "upsert-load") or "columns" in params:
        params.setdefault("columns", state.columns)
        on_commit = _commit_hook(pipeline, state, ledger=ledger, sink=sink, run_id=run_id, run_date=run_date)
    params.setdefault("expected_rows", state.counts["loaded"] or None)
    return StepContext(
        con=sink.working_connection(), contract=pipeline.contract, run_id=run_id, pipeline=pipeline.name,
        run_date=run_date, workdir=workdir, source=source, params=params, table=state.table,
        delivery_path=state.delivery_path, sink=sink, history=history, on_commit=on_commit, read=state.read,
    )


def _commit_hook(pipeline: Pipeline, state: _State, *, ledger: Ledger, sink: Sink, run_id: str,
                 run_date: dt.date) -> Callable[[], None]:
    """Ledger writes that commit with the load, after conservation is proven."""

    def commit() -> None:
        con = sink.working_connection()
        sent = con.execute(f'SELECT count(*) FROM "{state.table}"').fetchone()[0]
        c = state.counts
        if c["read"] != sent + c["quarantined"] + c["duplicates"]:
            raise TargetError(
                f"conservation failed: read {c['read']} != loaded {sent} + quarantined {c['quarantined']} "
                f"+ duplicates {c['duplicates']}; nothing loaded"
            )
        if state.fingerprint:
            ledger.record_delivery(pipeline=pipeline.name, fingerprint=state.fingerprint, run_id=run_id, rows_loaded=sent)
        if state.quarantine_table:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE heal_quarantine_out AS SELECT ? AS run_id, ? AS pipeline, "
                f'row_number, reasons, row_data FROM "{state.quarantine_table}"',
                [run_id, pipeline.name],
            )
            sink.insert_from("heal_quarantine_out", table="heal.quarantine",
                             columns=["run_id", "pipeline", "row_number", "reasons", "row_data"])
        if state.mapping:
            ledger.save_mappings(pipeline.name, state.mapping, rule="confirmed", run_id=run_id)
        ledger.record_coercions(pipeline=pipeline.name, run_id=run_id,
                                coercions=[*(state.read or {}).get("notes", ()), *state.coercions])
        ledger.record_profiles(pipeline=pipeline.name, run_id=run_id, run_date=run_date,
                               profiles=_loaded_profiles(sink, pipeline, state, run_id, rows=sent))

    return commit


def _loaded_profiles(sink: Sink, pipeline: Pipeline, state: _State, run_id: str, *,
                     rows: int) -> dict[str, dict[str, Any]]:
    """Profiles of the rows this run loads. A DuckDB target holds them typed and columnar, tagged
    with the run: reading them back costs about half of typing the staged rows again, and its
    rowid picks a quantile sample from a large delivery. For PostgreSQL the staged rows are
    profiled; their key, unique once loaded, picks the sample."""
    con = sink.working_connection()
    if sink.dialect == "duckdb":
        return profile_table(con, qualified_name(pipeline.contract.table, sink.dialect), state.columns,
                             where="_heal_run_id = ?", params=[run_id], position="rowid", rows=rows)
    key = ", ".join(quote_ident(k) for k in pipeline.contract.key) or None
    return profile_table(con, state.table, state.columns, position=key, rows=rows)


def _run_skill(skills: SkillRegistry, step: Step, ctx: StepContext) -> Verdict:
    """Run one step; an error that means "could not run" becomes a failing verdict to route."""
    try:
        return skills.run_step(step.skill, ctx)
    except ConfigError:
        raise
    except SourceError as exc:
        return _synthetic(step.skill, "ran", str(exc), exc.failure_class)
    except InputError as exc:
        return _synthetic(step.skill, "ran", str(exc), "unreadable")
    except TargetError as exc:
        return _synthetic(step.skill, "ran", str(exc), "transient" if exc.transient else "load_failed")
    except StagingError as exc:
        return _synthetic(step.skill, "ran", str(exc), "transient")
    except HealError as exc:
        return _synthetic(step.skill, "ran", str(exc), "transient")
    except (duckdb.OutOfMemoryException, duckdb.IOException) as exc:
        # The staging area ran out of memory or disk: nothing is loaded; say so instead of crashing.
        first = str(exc).strip().splitlines()[0]
        return _synthetic(step.skill, "ran", f"staging ran out of memory or disk: {first} "
                          "(raise HEAL_MEMORY_LIMIT or free HEAL_TEMP_DIR)", "transient")


def _synthetic(skill: str, criterion: str, detail: str, failure_class: str = "health_failed") -> Verdict:
    return Verdict.from_criteria(
        skill, [Criterion(criterion, False, detail, "the step completes", detail)],
        failure_classes={criterion: failure_class},
    )


def _finish_counts(state: _State) -> tuple[str, bool]:
    c = state.counts
    if state.escalation is not None and not c["loaded"]:
        # Held: nothing committed, so nothing was quarantined or de-duplicated either.
        state.counts = {"read": c["read"], "loaded": 0, "quarantined": 0, "duplicates": 0, "held": c["read"]}
        return "escalated", True
    state.counts.setdefault("held", 0)
    conserved = c["read"] == c["loaded"] + c["quarantined"] + c["duplicates"]
    if state.escalation is not None or state.warnings or c["quarantined"] or not conserved:
        return "partial_failure", conserved
    return ("healed" if state.repaired else "success"), conserved


def _summary(status: str, state: _State) -> str:
    c = state.counts
    text = (f"{status}: read {c['read']}, loaded {c['loaded']}, quarantined {c['quarantined']}, "
            f"duplicates removed {c['duplicates']}")
    if c.get("held"):
        text += f", held {c['held']}"
    if state.escalation:
        step, verdict, fc = state.escalation
        failed = "; ".join(f"{x.id}: {x.detail or x.observed}" for x in verdict.failed_criteria)[:300]
        text += f". Escalated at {step} ({fc}): {failed}"
    elif state.warnings:
        text += ". Warnings: " + ", ".join(f"{s} ({v.failure_class})" for s, v in state.warnings)
    return text


def replace_source(pipeline: Pipeline, uri: str) -> Pipeline:
    return replace(pipeline, source=replace(pipeline.source, uri=uri))
