"""`heal`: parse arguments, call one library function, render text or --json.

Exit codes: 0 success or healed, 2 could not run (bad arguments, bad pipeline file,
target unreachable), 3 partial_failure, 4 escalated, 5 another run of the same pipeline
and date holds the lock.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import click

from orchestrator.ledger import Ledger, RunLocked
from orchestrator.pipeline import load_pipeline
from tools.sinks import open_sink
from tools.verdict import HealError

__all__ = ["main"]


def _fail(exc: HealError) -> None:
    click.echo(f"heal: error: {exc}", err=True)
    sys.exit(2)


def _date(value: str | None) -> dt.date:
    if value is None:
        return dt.date.today()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"expected YYYY-MM-DD, got {value!r}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="heal-pipeline")
def main() -> None:
    """Self-healing data pipelines: run, inspect and extend them.

    A pipeline is a YAML file (see pipelines/sales.yaml). `heal run` walks its graph of
    skills on autopilot, heals known failures, and escalates the rest with evidence.
    """


@main.command()
@click.argument("pipeline", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--date", "run_date", metavar="YYYY-MM-DD", help="Run date; fills {date} in the source. Default: today.")
@click.option("--source", metavar="PATH_OR_URI", help="Read this delivery instead of the pipeline's source (backfills).")
@click.option("--target", metavar="URL", help="Load here instead of the pipeline's target (duckdb:///x.duckdb, postgresql://...).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the run's outcome.")
def run(pipeline: Path, run_date: str | None, source: str | None, target: str | None, as_json: bool) -> None:
    """Run PIPELINE once on autopilot.

    Exit code 0 success/healed, 3 partial_failure, 4 escalated, 2 could not run,
    5 another run of the same pipeline and date is in progress.
    """
    from orchestrator.run import run_pipeline  # deferred: keeps `heal --help` fast

    try:
        spec = load_pipeline(pipeline).with_overrides(source=source, target=target)
        result = run_pipeline(spec, run_date=_date(run_date))
    except RunLocked as exc:
        click.echo(f"heal: {exc}", err=True)
        sys.exit(5)
    except HealError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(result.to_dict(), default=str))
    else:
        click.echo(f"{result.pipeline} {result.run_date} [{result.run_id}]: {result.summary}")
        for step in result.steps:
            mark = "ok  " if step["passed"] else "FAIL"
            extra = f" ({step['failure_class']})" if step["failure_class"] else ""
            wait = f" after {step['delay_s']}s" if step["delay_s"] else ""
            click.echo(f"  {mark} {step['step']} #{step['attempt']}{wait}{extra}")
        for alert in result.alerts:
            state = "opened" if alert["new"] else "updated (not re-sent)"
            click.echo(f"  incident {alert['incident_id']} {state}: {alert['failure_class']}")
    sys.exit(result.exit_code)


@main.command()
@click.argument("pipeline", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the parsed pipeline as JSON.")
def validate(pipeline: Path, as_json: bool) -> None:
    """Check that PIPELINE is a valid pipeline file; errors name the key and line."""
    try:
        spec = load_pipeline(pipeline)
    except HealError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps({
            "name": spec.name, "target": spec.target, "source": spec.source.__dict__,
            "columns": [c.__dict__ for c in spec.contract.columns], "key": list(spec.contract.key),
            "steps": {sid: {"skill": s.skill, "on_pass": s.on_pass, "on_fail": s.on_fail}
                      for sid, s in spec.steps.items()},
        }, default=str))
    else:
        click.echo(f"{pipeline}: ok ({spec.name}: {len(spec.contract.columns)} columns, {len(spec.steps)} steps)")


def _ledger(target: str) -> Ledger:
    return Ledger(open_sink(target))


def _target_of(pipeline: Path | None, target: str | None) -> str:
    if target:
        return target
    if pipeline:
        return load_pipeline(pipeline).target
    raise click.UsageError("give --target URL or --pipeline FILE to say which ledger to read")


@main.command()
@click.option("--pipeline", type=click.Path(dir_okay=False, path_type=Path), help="Read the ledger of this pipeline's target.")
@click.option("--target", metavar="URL", help="Read the ledger in this database.")
@click.option("--limit", default=20, show_default=True, help="How many runs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines, one run each.")
def runs(pipeline: Path | None, target: str | None, limit: int, as_json: bool) -> None:
    """List recent runs, newest first."""
    try:
        ledger = _ledger(_target_of(pipeline, target))
        name = load_pipeline(pipeline).name if pipeline else None
        rows = ledger.runs(pipeline=name, limit=limit)
    except HealError as exc:
        _fail(exc)
    for r in rows:
        if as_json:
            click.echo(json.dumps(r.__dict__, default=str))
        else:
            click.echo(f"{r.run_id}  {r.pipeline:<12} {r.run_date}  {r.status:<16} read {r.rows_read or 0:>7}  "
                       f"loaded {r.rows_loaded or 0:>7}  quarantined {r.rows_quarantined or 0:>5}")


@main.command()
@click.argument("run_id")
@click.option("--pipeline", type=click.Path(dir_okay=False, path_type=Path), help="Read the ledger of this pipeline's target.")
@click.option("--target", metavar="URL", help="Read the ledger in this database.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def show(run_id: str, pipeline: Path | None, target: str | None, as_json: bool) -> None:
    """Show one run (RUN_ID or a unique prefix): steps, verdicts, remediations, quarantine."""
    try:
        ledger = _ledger(_target_of(pipeline, target))
        row = ledger.run(run_id)
        if row is None:
            raise HealError(f"no run {run_id!r} in this ledger (heal runs lists them)")
        detail: dict[str, Any] = {
            "run": row.__dict__,
            "attempts": ledger.attempts(row.run_id),
            "remediations": ledger.remediations(row.run_id),
            "quarantined": ledger.quarantined(row.run_id)[:50],
        }
    except HealError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(detail, default=str))
        return
    click.echo(f"run {row.run_id}  {row.pipeline}  {row.run_date}  {row.status}")
    click.echo(f"  {row.summary}")
    for a in detail["attempts"]:
        v = a["verdict"]
        click.echo(f"  [{a['seq']}] {a['step']} attempt {a['attempt']} level {a['level']}: "
                   f"{'pass' if a['passed'] else 'FAIL ' + str(a['failure_class'])}"
                   + (f" (waited {a['delay_s']}s)" if a["delay_s"] else ""))
        for c in v["criteria"]:
            if not c["pass"]:
                click.echo(f"      {c['id']}: observed {c['observed']!r}, expected {c['expected']!r}. {c['detail']}")
    for q in detail["quarantined"][:10]:
        click.echo(f"  quarantined row {q['row_number']}: {', '.join(q['reasons'])} {q['row']}")


@main.command()
@click.option("--dir", "workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Where to write the demo deliveries and database. Default: a new temporary folder.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per day.")
def demo(workdir: Path | None, as_json: bool) -> None:
    """Run the sales pipeline over a week of demo deliveries, one fault a day."""
    from orchestrator.demo import run_demo  # deferred: only the demo needs it

    try:
        days = run_demo(workdir, echo=None if as_json else click.echo)
    except HealError as exc:
        _fail(exc)
    if as_json:
        for day in days:
            click.echo(json.dumps(day, default=str))
    bad = [d for d in days if d["status"] != d["expected_status"] or not d["conserved"]]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
