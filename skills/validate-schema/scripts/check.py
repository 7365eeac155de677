"""Check that a delivery parses and its columns and types match the contract.

Usage:
    python skills/validate-schema/scripts/check.py sales.csv --contract pipelines/sales.yaml
    python skills/validate-schema/scripts/check.py sales.csv --contract pipelines/sales.yaml --json

Exit codes: 0 pass, 1 fail (see the verdict's failure_class), 2 could not run.
"""

from __future__ import annotations

import argparse
import sys

import duckdb

from tools.context import StepContext
from tools.contract import Contract, load_contract, quote_ident
from tools.readers import Delivery, read_delivery
from tools.rules import TYPE_DRIFT_SHARE, data_columns, unparseable_shares
from tools.verdict import ConfigError, Criterion, HealError, InputError, Stopwatch, Verdict, could_not_run, finish

SKILL = "validate-schema"
CLASSES = {
    "readable": "unreadable",
    "has_rows": "source_too_small",
    "required_columns": "schema_mismatch",
    "optional_columns": "schema_mismatch",
    "types_parse": "type_drift",
}


def check(con: duckdb.DuckDBPyConnection, table: str, *, contract: Contract) -> Verdict:
    clock = Stopwatch()
    delivered = data_columns(con, table)
    present = set(delivered)
    t = quote_ident(table)
    rows = con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
    missing_required = [c.name for c in contract.columns if c.required and c.name not in present]
    missing_optional = [c.name for c in contract.columns if not c.required and c.name not in present]
    unexpected = [c for c in delivered if c not in contract.names]
    shares = unparseable_shares(con, table, contract.columns, contract.null_tokens) if rows else {}
    drifted = {name: round(share, 4) for name, share in shares.items() if share > TYPE_DRIFT_SHARE}
    criteria = [
        Criterion("readable", True, "parsed", "parsed"),
        Criterion("has_rows", rows > 0, rows, ">= 1", "" if rows else "the delivery has a header but no rows: hold it"),
        Criterion(
            "required_columns", not missing_required, missing_required, [],
            f"missing {missing_required}; delivered {delivered}: run repair-schema" if missing_required else "",
        ),
        Criterion(
            # A missing optional column is fine unless an unknown column might be it, renamed.
            "optional_columns", not (missing_optional and unexpected), missing_optional, [],
            f"optional {missing_optional} missing while {unexpected} are unknown: run repair-schema"
            if missing_optional and unexpected else "",
        ),
        Criterion(
            "types_parse", not drifted, drifted, {},
            f"share of unparseable values per column: {drifted}: run repair-schema" if drifted else "",
        ),
    ]
    return Verdict.from_criteria(
        SKILL,
        criteria,
        failure_classes=CLASSES,
        metrics={"rows": rows, "columns": delivered, "unexpected_columns": unexpected},
        artifacts={"table": table},
        duration_ms=clock.ms(),
    )


def unreadable(error: InputError, duration_ms: float = 0.0) -> Verdict:
    """The verdict for a delivery that does not parse at all."""
    return Verdict.from_criteria(
        SKILL,
        [Criterion("readable", False, str(error), "a CSV, JSON Lines, JSON or Parquet table",
                   "the delivery cannot be read: hold it and tell a person")],
        failure_classes=CLASSES,
        duration_ms=duration_ms,
    )


def read_and_check(
    con: duckdb.DuckDBPyConnection, path: str, *, contract: Contract, table: str = "delivery"
) -> Verdict:
    clock = Stopwatch()
    try:
        delivery: Delivery = read_delivery(con, path, table=table, expected_columns=contract.names)
    except InputError as exc:
        return unreadable(exc, clock.ms())
    verdict = check(con, delivery.table, contract=contract)
    read = {
        "format": delivery.format, "encoding": delivery.encoding, "delimiter": delivery.delimiter,
        "header": delivery.header, "skipped_lines": delivery.skipped_lines,
        "notes": [{"rule": n.rule, "rows": n.rows, "detail": n.detail} for n in delivery.notes],
    }
    return Verdict(
        skill=verdict.skill, passed=verdict.passed, criteria=verdict.criteria,
        failure_class=verdict.failure_class, metrics=verdict.metrics,
        artifacts={**verdict.artifacts, "read": read}, duration_ms=round(clock.ms(), 3),
    )


def run_step(ctx: StepContext) -> Verdict:
    if ctx.table is None:
        if ctx.delivery_path is None:
            raise ConfigError("validate-schema needs a fetched delivery: run fetch-file first")
        return read_and_check(ctx.con, ctx.delivery_path, contract=ctx.contract)
    return check(ctx.con, ctx.table, contract=ctx.contract)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=SKILL, description=__doc__.splitlines()[0])
    parser.add_argument("path", help="the delivery file (CSV, JSON Lines, JSON, Parquet; compressed is fine)")
    parser.add_argument("--contract", required=True, help="a pipeline YAML file (its contract: section is used)")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON verdict on stdout")
    args = parser.parse_args(argv)
    try:
        contract = load_contract(args.contract)
        verdict = read_and_check(duckdb.connect(), args.path, contract=contract)
    except HealError as exc:
        return could_not_run(SKILL, exc)
    return finish(verdict, as_json=args.json, next_step="run repair-schema to map the columns, or escalate")


if __name__ == "__main__":
    sys.exit(main())
