"""After a load: the target holds this run's rows, a sample query runs, the run is recorded.

Usage:
    python skills/health-check/scripts/check.py --target duckdb:///sales.duckdb --table sales --run-id RUN
    python skills/health-check/scripts/check.py --target duckdb:///sales.duckdb --table sales \
        --run-id RUN --expected-rows 1000 --json

Exit codes: 0 healthy, 1 not healthy (health_failed), 2 could not run.
"""

from __future__ import annotations

import argparse
import sys

from tools.context import StepContext
from tools.contract import quote_ident
from tools.sinks import Sink, open_sink
from tools.verdict import Criterion, HealError, Stopwatch, TargetError, Verdict, could_not_run, finish

SKILL = "health-check"
CLASSES = {"target_updated": "health_failed", "sample_query": "health_failed", "run_recorded": "health_failed"}


def check(sink: Sink, *, table: str, run_id: str, expected_rows: int | None = None) -> Verdict:
    clock = Stopwatch()
    schema, _, name = table.rpartition(".")
    target = f"{quote_ident(schema or _default_schema(sink))}.{quote_ident(name)}"
    if sink.table_columns(table) is None:
        criteria = [Criterion("target_updated", False, "no table", table, f"{table} does not exist: escalate")]
        return Verdict.from_criteria(SKILL, criteria, failure_classes=CLASSES, duration_ms=clock.ms())
    tagged = sink.query(f"SELECT count(*) FROM {target} WHERE _heal_run_id = ?", (run_id,))[0][0]
    try:
        sample = sink.query(f"SELECT * FROM {target} LIMIT 5")
        total = sink.query(f"SELECT count(*) FROM {target}")[0][0]
        sample_ok, sample_note = len(sample) > 0 and total >= tagged, f"{total} rows in {table}"
    except TargetError as exc:
        sample_ok, sample_note, total = False, str(exc), None
    recorded = sink.query("SELECT count(*) FROM heal.runs WHERE run_id = ?", (run_id,))[0][0] == 1
    expected = expected_rows if expected_rows is not None else ">= 1"
    updated = tagged == expected_rows if expected_rows is not None else tagged > 0
    criteria = [
        Criterion("target_updated", updated, tagged, expected,
                  "" if updated else "the target does not hold this run's rows: tell a person"),
        Criterion("sample_query", sample_ok, total, ">= rows of this run", "" if sample_ok else sample_note),
        Criterion("run_recorded", recorded, recorded, True,
                  "" if recorded else "the ledger has no row for this run: tell a person"),
    ]
    return Verdict.from_criteria(SKILL, criteria, failure_classes=CLASSES,
                                 metrics={"rows_in_target": total, "rows_this_run": tagged},
                                 duration_ms=clock.ms())


def _default_schema(sink: Sink) -> str:
    return "main" if sink.dialect == "duckdb" else "public"


def run_step(ctx: StepContext) -> Verdict:
    return check(ctx.sink, table=ctx.contract.table, run_id=ctx.run_id,
                 expected_rows=ctx.params.get("expected_rows"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=SKILL, description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="duckdb:///file.duckdb or postgresql://...")
    parser.add_argument("--table", required=True, help="the target table, e.g. sales")
    parser.add_argument("--run-id", required=True, help="the run to check (heal runs lists them)")
    parser.add_argument("--expected-rows", type=int, help="rows the run loaded")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON verdict on stdout")
    args = parser.parse_args(argv)
    try:
        sink = open_sink(args.target)
        verdict = check(sink, table=args.table, run_id=args.run_id, expected_rows=args.expected_rows)
    except HealError as exc:
        return could_not_run(SKILL, exc)
    return finish(verdict, as_json=args.json, next_step="mark the run partial_failure and tell a person")


if __name__ == "__main__":
    sys.exit(main())
