"""Repair a delivery's schema: map renamed, re-cased or headerless columns onto the contract
(names, then values against the column profiles learned from earlier runs), rewrite drifted
values (currency, separators, decimal comma, dates, cents) as canonical text, add missing
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
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb

from tools.coercion import plan_drift, rewrite_sql
from tools.context import StepContext
from tools.contract import Contract, load_contract, quote_ident, quote_literal
from tools.mapping import match_columns, propose_mapping
from tools.readers import read_delivery
from tools.rules import TYPE_DRIFT_SHARE, data_columns, unparseable_shares
from tools.verdict import Criterion, HealError, Stopwatch, Verdict, could_not_run, finish

SKILL = "repair-schema"
CLASSES = {
    "unambiguous": "schema_mismatch",
    "required_mapped": "schema_mismatch",
    "coercions_unambiguous": "type_drift",
    "units_consistent": "distribution_shift",
    "types_parse": "type_drift",
}


def _part_gaps(parts: Sequence[Mapping[str, Any]], mapping: Mapping[str, str], contract: Contract) -> dict[str, list]:
    """Required columns a part of a multi-file delivery still lacks after mapping."""
    if len(parts) < 2:
        return {}
    required = [c.name for c in contract.columns if c.required]
    gaps = {}
    for part in parts:
        have = {mapping.get(c, c) for c in part["columns"]}
        if lacking := [c for c in required if c not in have]:
            gaps[part["file"]] = lacking
    return gaps


def repair(
    con: duckdb.DuckDBPyConnection,
    table: str,
    *,
    contract: Contract,
    learned: Mapping[str, str] | None = None,
    out_table: str = "delivery_mapped",
    profiles: Sequence[Mapping[str, Any]] = (),
    coercions: Mapping[str, Sequence[str]] | None = None,
    headerless: bool = False,
    parts: Sequence[Mapping[str, Any]] = (),
) -> Verdict:
    """Map, coerce and re-check ``table`` into ``out_table``. ``learned`` are column mappings,
    ``coercions`` type-drift rules and ``profiles`` column profiles from earlier runs."""
    clock = Stopwatch()
    delivered = data_columns(con, table)
    plan = match_columns(con, table, contract, learned=learned, history=profiles, headerless=headerless)
    gaps = _part_gaps(parts, plan.mapping, contract)
    missing = plan.missing_required or gaps
    criteria = [
        Criterion(
            "unambiguous", not plan.ambiguous, {t: plan.scores.get(t, c) for t, c in plan.ambiguous.items()}, {},
            f"more than one column could be {sorted(plan.ambiguous)}: escalate with the candidates and scores"
            if plan.ambiguous else "",
        ),
        Criterion(
            "required_mapped", not missing, missing, [],
            f"no delivered column matches {missing} (delivered {delivered}; best candidates "
            f"{ {t: plan.scores.get(t, []) for t in plan.missing_required} }): hold and escalate" if missing else "",
        ),
    ]
    artifacts: dict[str, Any] = {
        "mapping": plan.mapping, "rules": plan.rules, "added": plan.added_optional, "unmapped": plan.unmapped,
        "scores": plan.scores,
    }
    metrics: dict[str, Any] = {"renamed": len(plan.mapping), "added": len(plan.added_optional)}
    if not plan.ambiguous and not missing:
        names = {c.name for c in contract.columns}
        pairs = [(src, contract.column(plan.mapping.get(src, src))) for src in delivered
                 if plan.mapping.get(src, src) in names]
        drift = plan_drift(con, table, pairs, null_tokens=contract.null_tokens, learned=coercions, history=profiles)
        select = [f"{rewrite_sql(drift, src)} AS {quote_ident(plan.mapping.get(src, src))}" for src in delivered]
        select += [f"CAST(NULL AS VARCHAR) AS {quote_ident(name)}" for name in plan.added_optional]
        con.execute(f"CREATE OR REPLACE TEMP TABLE {quote_ident(out_table)} AS "
                    f"SELECT {', '.join(select)}, _row, _error FROM {quote_ident(table)}")
        # Re-count only the rewritten columns; the others are as the plan found them.
        rewritten = [contract.column(plan.mapping.get(s, s)) for s in drift.columns]
        shares = {plan.mapping.get(s, s): v for s, v in drift.unparseable.items()}
        shares |= unparseable_shares(con, out_table, rewritten, contract.null_tokens) if rewritten else {}
        drifted = {k: round(v, 4) for k, v in shares.items() if v > TYPE_DRIFT_SHARE}
        typed = [a for a in drift.ambiguous if a.failure_class == "type_drift"]
        units = [a for a in drift.ambiguous if a.failure_class == "distribution_shift"]
        criteria += [
            Criterion("coercions_unambiguous", not typed, [a.to_dict() for a in typed], [],
                      "; ".join(a.detail for a in typed), samples=tuple(_samples(con, table, [a.column for a in typed],
                                                                                 plan.mapping))),
            Criterion("units_consistent", not units, [a.to_dict() for a in units], [],
                      "; ".join(a.detail for a in units)),
            Criterion(
                "types_parse", not drifted, drifted, {},
                f"no repair rule makes {sorted(drifted)} parse: escalate with samples" if drifted else "",
                samples=tuple(_samples(con, out_table, sorted(drifted))),
            ),
        ]
        artifacts |= {"table": out_table, "coercions": [c.to_dict() for c in drift.rewrites]}
        metrics["coerced"] = sum(c.rows for c in drift.rewrites)
    return Verdict.from_criteria(
        SKILL, criteria, failure_classes=CLASSES, metrics=metrics, artifacts=artifacts, duration_ms=clock.ms(),
    )


def _samples(con: duckdb.DuckDBPyConnection, table: str, columns: list[str],
             mapping: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    source = {v: k for k, v in (mapping or {}).items()}
    out = []
    for name in columns[:5]:
        ident = quote_ident(source.get(name, name))
        rows = con.execute(
            f"SELECT DISTINCT {ident} FROM {quote_ident(table)} WHERE {ident} IS NOT NULL ORDER BY 1 LIMIT 3"
        ).fetchall()
        out += [{"column": name, "value": r[0]} for r in rows]
    return out


def run_step(ctx: StepContext) -> Verdict:
    read = ctx.read or {}
    return repair(ctx.con, ctx.table, contract=ctx.contract, learned=ctx.history.mappings,
                  profiles=ctx.history.profiles, coercions=ctx.history.coercions,
                  headerless=read.get("header") is False, parts=read.get("parts", ()))


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
        delivery = read_delivery(con, args.path, expected_columns=contract.names,
                                 column_map=lambda names: propose_mapping(names, contract).mapping)
        parts = [{"file": p.file, "rows": p.rows, "columns": list(p.columns)} for p in delivery.parts]
        verdict = repair(con, delivery.table, contract=contract, headerless=not delivery.header, parts=parts)
        if args.out and verdict.passed:
            cols = ", ".join(quote_ident(c) for c in data_columns(con, "delivery_mapped"))
            con.execute(
                f"COPY (SELECT {cols} FROM delivery_mapped ORDER BY _row) TO {quote_literal(args.out)} (HEADER)"
            )
    except HealError as exc:
        return could_not_run(SKILL, exc)
    return finish(verdict, as_json=args.json, next_step="escalate: a person must confirm the mapping or the rule")


if __name__ == "__main__":
    sys.exit(main())
