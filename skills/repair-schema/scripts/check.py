"""Repair a delivery's header: map renamed or re-cased columns onto the contract, add missing
optional columns as null, and say exactly what was done. Writes the repaired rows as CSV
with --out.

Usage:
    python skills/repair-schema/scripts/check.py sales.csv --contract pipelines/sales.yaml
    python skills/repair-schema/scripts/check.py sales.csv --contract pipelines/sales.yaml \
        --out repaired.csv --json

Exit codes: 0 repaired (or nothing to repair), 1 cannot repair safely, 2 could not run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping

import duckdb

from tools.context import StepContext
from tools.contract import Contract, load_contract, quote_ident, quote_literal
from tools.mapping import apply_mapping, propose_mapping
from tools.readers import read_delivery
from tools.rules import TYPE_DRIFT_SHARE, data_columns, unparseable_shares
from tools.verdict import Criterion, HealError, Stopwatch, Verdict, could_not_run, finish

SKILL = "repair-schema"
CLASSES = {
    "unambiguous": "schema_mismatch",
    "required_mapped": "schema_mismatch",
    "types_parse": "type_drift",
}


def repair(
    con: duckdb.DuckDBPyConnection,
    table: str,
    *,
    contract: Contract,
    learned: Mapping[str, str] | None = None,
    out_table: str = "delivery_mapped",
) -> Verdict:
    clock = Stopwatch()
    delivered = data_columns(con, table)
    plan = propose_mapping(delivered, contract, learned=learned)
    criteria = [
        Criterion(
            "unambiguous", not plan.ambiguous, plan.ambiguous, {},
            f"more than one column could be {sorted(plan.ambiguous)}: escalate with the candidates"
            if plan.ambiguous else "",
        ),
        Criterion(
            "required_mapped", not plan.missing_required, plan.missing_required, [],
            f"no delivered column matches {plan.missing_required} (delivered {delivered}): hold and escalate"
            if plan.missing_required else "",
        ),
    ]
    artifacts: dict[str, object] = {
        "mapping": plan.mapping, "rules": plan.rules, "added": plan.added_optional,
        "unmapped": plan.unmapped,
    }
    if not plan.ambiguous and not plan.missing_required:
        apply_mapping(con, table, out_table, mapping=plan.mapping, add_columns=plan.added_optional)
        shares = unparseable_shares(con, out_table, contract.columns, contract.null_tokens)
        drifted = {k: round(v, 4) for k, v in shares.items() if v > TYPE_DRIFT_SHARE}
        criteria.append(Criterion(
            "types_parse", not drifted, drifted, {},
            f"no repair rule makes {sorted(drifted)} parse: escalate with samples" if drifted else "",
            samples=tuple(_samples(con, out_table, sorted(drifted))),
        ))
        artifacts["table"] = out_table
    return Verdict.from_criteria(
        SKILL, criteria, failure_classes=CLASSES,
        metrics={"renamed": len(plan.mapping), "added": len(plan.added_optional)},
        artifacts=artifacts, duration_ms=clock.ms(),
    )


def _samples(con: duckdb.DuckDBPyConnection, table: str, columns: list[str]) -> list[dict[str, str]]:
    out = []
    for name in columns[:5]:
        rows = con.execute(
            f"SELECT DISTINCT {quote_ident(name)} FROM {quote_ident(table)} "
            f"WHERE {quote_ident(name)} IS NOT NULL ORDER BY 1 LIMIT 3"
        ).fetchall()
        out += [{"column": name, "value": r[0]} for r in rows]
    return out


def run_step(ctx: StepContext) -> Verdict:
    return repair(ctx.con, ctx.table, contract=ctx.contract, learned=ctx.history.mappings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=SKILL, description=__doc__.splitlines()[0])
    parser.add_argument("path", help="the delivery file")
    parser.add_argument("--contract", required=True, help="a pipeline YAML file (its contract: section is used)")
    parser.add_argument("--out", help="write the repaired rows to this CSV file")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON verdict on stdout")
    args = parser.parse_args(argv)
    try:
        contract = load_contract(args.contract)
        con = duckdb.connect()
        delivery = read_delivery(con, args.path, expected_columns=contract.names)
        verdict = repair(con, delivery.table, contract=contract)
        if args.out and verdict.passed:
            cols = ", ".join(quote_ident(c) for c in data_columns(con, "delivery_mapped"))
            con.execute(
                f"COPY (SELECT {cols} FROM delivery_mapped ORDER BY _row) TO {quote_literal(args.out)} (HEADER)"
            )
    except HealError as exc:
        return could_not_run(SKILL, exc)
    return finish(verdict, as_json=args.json, next_step="escalate: a person must confirm the mapping")


if __name__ == "__main__":
    sys.exit(main())
