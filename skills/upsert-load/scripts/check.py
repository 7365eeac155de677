"""Load rows whose keys already exist in the target as corrections: replace the old version
of each key and record old and new, in one transaction.

Usage:
    python skills/upsert-load/scripts/check.py typed.csv --contract pipelines/sales.yaml \
        --target duckdb:///sales.duckdb
    python skills/upsert-load/scripts/check.py typed.csv --contract pipelines/sales.yaml \
        --target postgresql://postgres@127.0.0.1:5432/test --json

Exit codes: 0 loaded and verified, 1 not loaded, 2 could not run.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Callable, Sequence

from tools.context import StepContext
from tools.contract import Contract, load_contract
from tools.sinks import LOAD_CLASSES, Sink, load_criteria, open_sink, stage_file
from tools.verdict import Criterion, HealError, Stopwatch, Verdict, could_not_run, finish

SKILL = "upsert-load"
CLASSES = {"has_key": "load_failed", **LOAD_CLASSES}


def upsert(
    sink: Sink,
    staging: str,
    *,
    contract: Contract,
    columns: Sequence[tuple[str, str]],
    run_id: str,
    on_commit: Callable[[], None] | None = None,
) -> Verdict:
    clock = Stopwatch()
    if not contract.key:
        return Verdict.from_criteria(
            SKILL, [Criterion("has_key", False, [], "a contract key", "upsert needs contract.key: escalate")],
            failure_classes=CLASSES, duration_ms=clock.ms(),
        )
    criteria, done = load_criteria(sink, staging, table=contract.table, columns=columns, key=contract.key,
                                   mode="upsert", run_id=run_id, after=on_commit)
    metrics, artifacts = {}, {}
    if done:
        metrics = {"inserted": done.result.inserted, "updated": done.result.updated, "rows_loaded": done.rows_sent}
        artifacts = {"replaced": [dict(r) for r in done.result.replaced][:20], "replaced_total": done.result.updated}
    return Verdict.from_criteria(
        SKILL, [Criterion("has_key", True, list(contract.key), list(contract.key)), *criteria],
        failure_classes=CLASSES, metrics=metrics, artifacts=artifacts, duration_ms=clock.ms(),
    )


def run_step(ctx: StepContext) -> Verdict:
    columns = [tuple(c) for c in ctx.params["columns"]]
    return upsert(ctx.sink, ctx.table, contract=ctx.contract, columns=columns, run_id=ctx.run_id,
                  on_commit=ctx.on_commit)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=SKILL, description=__doc__.splitlines()[0])
    parser.add_argument("path", help="a file of transformed rows (the transform skill's --out)")
    parser.add_argument("--contract", required=True, help="a pipeline YAML file (its contract: section is used)")
    parser.add_argument("--target", required=True, help="duckdb:///file.duckdb or postgresql://...")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON verdict on stdout")
    args = parser.parse_args(argv)
    try:
        contract = load_contract(args.contract)
        sink = open_sink(args.target)
        table, columns = stage_file(sink, args.path, types={c.name: c.sql_type for c in contract.columns})
        verdict = upsert(sink, table, contract=contract, columns=columns, run_id=f"manual-{uuid.uuid4().hex[:8]}")
    except HealError as exc:
        return could_not_run(SKILL, exc)
    return finish(verdict, as_json=args.json, next_step="escalate with the verdict")


if __name__ == "__main__":
    sys.exit(main())
