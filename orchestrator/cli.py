"""`heal`: parse arguments, call one library function, render text or --json.

Exit codes: 0 success or healed, 2 could not run (bad arguments, bad pipeline file,
target unreachable), 3 partial_failure, 4 escalated, 5 another run of the same pipeline
and date holds the lock.
"""

from __future__ import annotations

import datetime as dt
import json
import os
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
@click.option("--log-json", is_flag=True, envvar="HEAL_LOG_JSON",
              help="Log one JSON object per line (with the run id) on stderr. Env: HEAL_LOG_JSON=1.")
def main(log_json: bool) -> None:
    """Self-healing data pipelines: run, inspect and extend them.

    A pipeline is a YAML file (see pipelines/sales.yaml). `heal run` walks its graph of
    skills on autopilot, heals known failures, and escalates the rest with evidence.
    """
    if log_json:
        from orchestrator.observability import configure_logging

        configure_logging()


@main.command()
@click.argument("pipeline", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--date", "run_date", metavar="YYYY-MM-DD", help="Run date; fills {date} in the source. Default: today.")
@click.option("--source", metavar="PATH_OR_URI", help="Read this delivery instead of the pipeline's source (backfills).")
@click.option("--target", metavar="URL", help="Load here instead of the pipeline's target (duckdb:///x.duckdb, postgresql://...).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the run's outcome.")
@click.option("--agent", "use_agent", is_flag=True,
              help="If the autopilot escalates a failure it cannot heal (schema, types), let Claude propose a "
                   "repair that the checkers verify. Needs ANTHROPIC_API_KEY.")
@click.option("--max-turns", default=12, show_default=True, type=click.IntRange(min=1), metavar="N",
              help="With --agent: most model turns per run.")
@click.option("--budget-usd", default=1.0, show_default=True, type=click.FloatRange(min=0), metavar="USD",
              help="With --agent: most dollars per run.")
def run(pipeline: Path, run_date: str | None, source: str | None, target: str | None, as_json: bool,
        use_agent: bool, max_turns: int, budget_usd: float) -> None:
    """Run PIPELINE once on autopilot (with --agent, Claude takes what the autopilot cannot heal).

    Exit code 0 success/healed, 3 partial_failure, 4 escalated, 2 could not run,
    5 another run of the same pipeline and date is in progress.
    """
    from orchestrator.run import run_pipeline  # deferred: keeps `heal --help` fast

    agent = None
    try:
        spec = load_pipeline(pipeline).with_overrides(source=source, target=target)
        if use_agent:
            from orchestrator.agent import AgentConfig, run_with_agent

            config = AgentConfig(env=dict(os.environ), max_turns=max_turns, max_budget_usd=budget_usd)
            outcome = run_with_agent(spec, run_date=_date(run_date), config=config)
            result, agent = outcome.result, outcome.agent
        else:
            result = run_pipeline(spec, run_date=_date(run_date))
    except RunLocked as exc:
        click.echo(f"heal: {exc}", err=True)
        sys.exit(5)
    except HealError as exc:
        _fail(exc)
    if agent is not None and (agent.outcome == "unavailable" or agent.failed):
        click.echo(f"heal: {agent.detail}", err=True)
    if as_json:
        extra = {"agent": agent.to_dict()} if agent is not None else {}
        click.echo(json.dumps({**result.to_dict(), **extra}, default=str))
    else:
        click.echo(f"{result.pipeline} {result.run_date} [{result.run_id}]: {result.summary}")
        for step in result.steps:
            mark = "ok  " if step["passed"] else "FAIL"
            extra = f" ({step['failure_class']})" if step["failure_class"] else ""
            wait = f" after {step['delay_s']}s" if step["delay_s"] else ""
            click.echo(f"  {mark} {step['step']} #{step['attempt']}{wait}{extra}")
        for alert in result.alerts:
            state = alert.get("event", "opened" if alert["new"] else "updated (not re-sent)")
            click.echo(f"  incident {alert['incident_id']} {state}: {alert['failure_class']}")
        if agent is not None:
            click.echo(f"  agent: {agent.detail}")
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


@main.command()
@click.option("--pipeline", type=click.Path(dir_okay=False, path_type=Path), help="Report on this pipeline (its target's ledger).")
@click.option("--target", metavar="URL", help="Report on every pipeline in the ledger in this database.")
@click.option("--since", metavar="YYYY-MM-DD", help="Only runs dated on or after this day.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a self-contained HTML page with plots to this file.")
@click.option("--serve-metrics", "metrics_port", type=click.IntRange(0, 65535), metavar="PORT",
              help="Then serve Prometheus metrics on 127.0.0.1:PORT/metrics until interrupted.")
def report(pipeline: Path | None, target: str | None, since: str | None, as_json: bool, html_out: Path | None,
           metrics_port: int | None) -> None:
    """Failure patterns, remediation success rates, time to heal; --html adds plots."""
    from orchestrator.observability import ledger_metrics, metrics_server
    from orchestrator.report import build_report, render_html, render_text

    try:
        url = _target_of(pipeline, target)
        spec = load_pipeline(pipeline) if pipeline else None
        name = spec.name if spec else None
        ledger = _ledger(url)
        found = build_report(ledger, pipeline=name, since=_date(since) if since else None,
                             recurring_runs=int(spec.escalation.get("recurring_runs", 3)) if spec else 3)
        ledger.sink.close()  # a metrics server must not hold the database's lock
    except HealError as exc:
        _fail(exc)
    if html_out:
        html_out.write_text(render_html(found), encoding="utf-8")
    click.echo(json.dumps(found.to_dict(), default=str) if as_json else render_text(found))
    if metrics_port is not None:
        server = metrics_server(lambda: ledger_metrics(url, pipeline=name), port=metrics_port)
        click.echo(f"serving metrics on http://127.0.0.1:{server.server_port}/metrics (Ctrl-C stops)", err=True)
        server.serve_forever()


@main.group()
def skill() -> None:
    """Grow and check the skill pack: `new` writes a skill, `lint` checks folders, `test` runs cases."""


@skill.command("new")
@click.argument("description")
@click.option("--from-file", "sample", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A delivery that shows the failure; it becomes the failing fixture.")
@click.option("--name", help="The skill's folder name (kebab-case). Default: from the description.")
@click.option("--template", is_flag=True, help="Write the offline skeleton with a TODO rule; ask no model.")
@click.option("--add-to", "add_to", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Wire the new skill into this pipeline file's steps: (see --after).")
@click.option("--after", metavar="STEP", help="With --add-to: the step it follows. Default: the first step.")
@click.option("--max-iterations", default=5, show_default=True, type=click.IntRange(1, 20),
              help="How many drafts the model may submit before giving up.")
@click.option("--skills-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write the skill here (its test goes to ../tests). Default: $HEAL_SKILLS_DIR or skills/.")
@click.option("--model", help="Model for the drafting agent. Default: the Claude Code default.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: files, notes, diff.")
def skill_new(description: str, sample: Path | None, name: str | None, template: bool, add_to: Path | None,
              after: str | None, max_iterations: int, skills_dir: Path | None, model: str | None,
              as_json: bool) -> None:
    """Write a skill from a one-sentence failure DESCRIPTION: SKILL.md, checker, fixtures, a test.

    With ANTHROPIC_API_KEY set, a model drafts it until the checker fails on the failure and
    passes a healthy delivery, the lint is clean and the generated test passes. Without a key,
    or with --template, it writes an offline skeleton whose TODO rule fails until you write it.
    Exit 0 written (template) or accepted, 1 not accepted, 2 could not run.
    """
    from orchestrator.skillgen import new_skill
    from orchestrator.skills import default_skills_root

    try:
        made = new_skill(description, skills_dir=skills_dir or default_skills_root(), name=name, sample=sample,
                         template=template, add_to=add_to, after=after, max_iterations=max_iterations,
                         model=model, echo=lambda line: click.echo(line, err=as_json))
    except HealError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(made.to_dict()))
    else:
        click.echo(made.diff, nl=False)
        how = "template written" if made.mode == "template" else \
            f"{'accepted' if made.accepted else 'NOT accepted'} after {made.iterations} draft(s)"
        click.echo(f"{made.name}: {how} in {made.path}")
        for note in made.notes:
            click.echo(f"  {note}")
        click.echo(f"next: heal skill test {made.path}; python -m pytest -q {made.test_path}")
    sys.exit(0 if made.accepted or made.mode == "template" else 1)


@skill.command("lint")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--max-lines", default=150, show_default=True,
              help="Warn when a SKILL.md is longer (over 500 lines is always an error).")
@click.option("--no-run", is_flag=True, help="Only read the files: do not import or run the checkers.")
@click.option("--strict", is_flag=True, help="Count warnings as problems.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with every problem.")
def skill_lint(path: Path | None, max_lines: int, no_run: bool, strict: bool, as_json: bool) -> None:
    """Lint skill folders: frontmatter, sections, links, the checker's contract, fixtures.

    PATH is one skill folder or a folder of skills (default: the pack). Exit 0 clean,
    1 problems, 2 could not run.
    """
    from orchestrator.skills import default_skills_root, lint_pack, lint_skill

    target = path or default_skills_root()
    target = target.parent if target.name == "SKILL.md" else target
    try:
        if not target.is_dir():
            raise HealError(f"{target}: no such folder")
        one = (target / "SKILL.md").is_file() or (target / "scripts").is_dir()
        problems = (lint_skill if one else lint_pack)(target, soft_lines=max_lines, run=not no_run)
    except HealError as exc:
        _fail(exc)
    failing = [p for p in problems if strict or p.level == "error"]
    if as_json:
        click.echo(json.dumps({"ok": not failing, "problems": [p.to_dict() for p in problems]}))
    else:
        for problem in problems:
            click.echo(problem.format(relative_to=Path.cwd()))
        click.echo(f"{target}: {len(failing)} problem(s)" if failing else f"{target}: ok", err=bool(failing))
    sys.exit(1 if failing else 0)


@skill.command("test")
@click.argument("name")
@click.option("--skills-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Find NAME here. Default: $HEAL_SKILLS_DIR or skills/.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list: each case, its verdict, its problems.")
def skill_test(name: str, skills_dir: Path | None, as_json: bool) -> None:
    """Run skill NAME's checker on its fixture cases and print each verdict.

    NAME may also be the path of a skill folder. Exit 0 every case as expected, 1 some not,
    2 could not run.
    """
    import tempfile

    from orchestrator.skills import Skill, SkillRegistry, default_skills_root, run_cases

    try:
        folder = Path(name)
        found = Skill(folder.name, folder, "") if (folder / "SKILL.md").is_file() else \
            SkillRegistry(skills_dir or default_skills_root()).get(name)
        with tempfile.TemporaryDirectory(prefix="heal-skill-test-") as tmp:
            results = run_cases(found, tmp_dir=Path(tmp))
    except HealError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps([{"case": r.name, "ok": r.ok, "problems": list(r.problems), "exit_code": r.exit_code,
                                "verdict": r.verdict} for r in results], default=str))
    else:
        for r in results:
            v = r.verdict or {}
            failing = ", ".join(c.get("id", "?") for c in v.get("criteria", []) if not c.get("pass"))
            got = "no verdict" if not v else "PASS" if v.get("pass") else f"FAIL {v.get('failure_class')} ({failing})"
            click.echo(f"{'ok ' if r.ok else 'BAD'} {r.name}: {got}")
            for problem in r.problems:
                click.echo(f"      {problem}")
        click.echo(f"{found.name}: {sum(r.ok for r in results)} of {len(results)} cases as expected")
    sys.exit(0 if results and all(r.ok for r in results) else 1)


@main.command()
@click.argument("clean_file", type=click.Path(exists=True, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--pipeline", type=click.Path(dir_okay=False, path_type=Path), default=Path("pipelines/sales.yaml"),
              show_default=True, help="The pipeline whose contract the clean delivery follows.")
@click.option("--only", multiple=True, metavar="FAULT", help="Write only this fault's variant (repeatable).")
@click.option("--check", is_flag=True, help="Also run the pipeline over each variant (fresh DuckDB targets in "
              "OUT_DIR/<fault>/run) and compare with the expected outcome; exit 1 on any difference.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per variant.")
def chaos(clean_file: Path, out_dir: Path, pipeline: Path, only: tuple[str, ...], check: bool, as_json: bool) -> None:
    """Write a faulty variant of CLEAN_FILE per fault class into OUT_DIR, each with expected.json."""
    from orchestrator.chaos import check_variant, write_variants  # deferred: only chaos needs it

    try:
        spec = load_pipeline(pipeline)
        variants = write_variants(clean_file, out_dir, contract=spec.contract, only=only or None)
    except HealError as exc:
        _fail(exc)
    bad = 0
    for v in variants:
        problems: list[str] = []
        if check:
            work = out_dir / v.name / "run"
            work.mkdir(exist_ok=True)
            try:
                problems, _ = check_variant(spec, out_dir / v.name, workdir=work)
            except HealError as exc:
                problems = [f"could not run: {exc}"]
            bad += bool(problems)
        if as_json:
            click.echo(json.dumps({**v.to_dict(), **({"problems": problems} if check else {})}, default=str))
        else:
            mark = ("ok  " if not problems else "DIFF") if check else "    "
            click.echo(f"{mark}{v.name:<30} {v.status:<16} read {v.rows_read:>5} load {len(v.loaded):>5} "
                       f"quarantine {len(v.quarantined):>3}  {v.fault}")
            for problem in problems:
                click.echo(f"      {problem}")
    if not as_json:
        click.echo(f"{len(variants)} variants in {out_dir} (manifest.json; each folder has expected.json)"
                   + (f"; {bad} differ from the expected outcome" if check else ""))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
