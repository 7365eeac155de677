"""Check that a delivery parses and its columns and types match the contract.

Usage:
    python skills/validate-schema/scripts/check.py sales.csv --contract pipelines/sales.yaml
    python skills/validate-schema/scripts/check.py sales.csv --contract pipelines/sales.yaml --json

Exit codes: 0 pass, 1 fail (see the verdict's failure_class), 2 could not run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb

from tools.coercion import DriftPlan, plan_drift
from tools.context import StepContext
from tools.contract import Contract, load_contract, quote_ident
from tools.mapping import propose_mapping
from tools.readers import Delivery, read_delivery
from tools.rules import TYPE_DRIFT_SHARE, data_columns
from tools.typed_rows import discard, typed_rows
from tools.verdict import ConfigError, Criterion, HealError, InputError, Stopwatch, Verdict, could_not_run, finish

SKILL = "validate-schema"
CLASSES = {
    "readable": "unreadable",
    "has_rows": "source_too_small",
    "required_columns": "schema_mismatch",
    "optional_columns": "schema_mismatch",
    "types_parse": "type_drift",
    "units_consistent": "distribution_shift",
}
_PARTS_SHOWN = 50


def _part_gaps(parts: Sequence[Mapping[str, Any]], contract: Contract, present: set[str]) -> dict[str, list[str]]:
    """Required columns the union has but some part lacks (its rows would be all null there)."""
    if len(parts) < 2:
        return {}
    required = [c.name for c in contract.columns if c.required and c.name in present]
    gaps = {p["file"]: [c for c in required if c not in p["columns"]] for p in parts}
    return {f: cols for f, cols in gaps.items() if cols}


def _evolution(extras: Sequence[str], contract: Contract, known: Sequence[str] | None) -> list[dict[str, Any]]:
    """New columns the contract does not name: kept (added to the target, nullable) or dropped."""
    action = contract.extra_columns
    new = [c for c in extras if known is None or c not in known] if action == "keep" else list(extras)
    what = "added to the target as a nullable text column" if action == "keep" else "dropped per contract"
    return [{"column": c, "rule": f"new_column:{action}", "rows": 0, "detail": what, "repair": True} for c in new]


def _drift_criteria(plan: DriftPlan, shares: Mapping[str, float]) -> list[Criterion]:
    drifted = {c: s for c, s in shares.items() if s > TYPE_DRIFT_SHARE}
    typed = [a for a in plan.ambiguous if a.failure_class == "type_drift"]
    units = [a for a in plan.ambiguous if a.failure_class == "distribution_shift"]
    repairable = sorted({f"{c.column}: {c.rule}" for c in plan.rewrites})
    ok = not (drifted or typed or repairable)
    if repairable or typed:
        detail = f"type drift ({', '.join(repairable + [a.kind + ' in ' + a.column for a in typed])}): run repair-schema"
    else:
        detail = f"share of unparseable values per column: {drifted}: run repair-schema" if drifted else ""
    observed: Any = {"unparseable": drifted, "rules": repairable, "ambiguous": [a.to_dict() for a in typed]}
    return [
        Criterion("types_parse", ok, observed if not ok else {}, {}, detail),
        Criterion("units_consistent", not units, [a.to_dict() for a in units], [],
                  "; ".join(a.detail for a in units)),
    ]


def check(
    con: duckdb.DuckDBPyConnection,
    table: str,
    *,
    contract: Contract,
    learned: Mapping[str, Sequence[str]] | None = None,
    profiles: Sequence[Mapping[str, Any]] = (),
    parts: Sequence[Mapping[str, Any]] = (),
    target_columns: Sequence[str] | None = None,
    share_typed: bool = True,
) -> Verdict:
    """Judge the staged ``table``. ``learned`` and ``profiles`` (from the ledger) settle drift the
    values alone cannot; ``parts`` are the reader's per-file columns; ``target_columns`` say
    which extra columns the target already has. ``share_typed`` types the rows now for the
    later steps to reuse (a pipeline); a check run alone reads the text once instead."""
    clock = Stopwatch()
    delivered = data_columns(con, table)
    present = set(delivered)
    rows = con.execute(f"SELECT count(*) FROM {quote_ident(table)}").fetchone()[0]
    missing_required = [c.name for c in contract.columns if c.required and c.name not in present]
    missing_optional = [c.name for c in contract.columns if not c.required and c.name not in present]
    unexpected = [c for c in delivered if c not in contract.names]
    gaps = _part_gaps(parts, contract, present)
    pairs = [(c.name, c) for c in contract.columns if c.name in present]
    # Typed now rather than in validate-history: the drift planner counts what it needs from the
    # typed values, and the later steps find the same typed rows. Not when required columns are
    # missing: repair-schema will stage a renamed table, typed afresh.
    shared = share_typed and rows and pairs and not (missing_required or gaps)
    typed = typed_rows(con, table, contract=contract) if shared else None
    plan = plan_drift(con, table, pairs, null_tokens=contract.null_tokens, learned=learned, history=profiles,
                      typed=typed) if rows else DriftPlan()
    required_detail = ""
    if missing_required:
        required_detail = f"missing {missing_required}; delivered {delivered}: run repair-schema"
    elif gaps:
        required_detail = f"parts lack required columns {gaps}: run repair-schema (it holds such a delivery)"
    criteria = [
        Criterion("readable", True, "parsed", "parsed"),
        Criterion("has_rows", rows > 0, rows, ">= 1", "" if rows else "the delivery has a header but no rows: hold it"),
        Criterion("required_columns", not (missing_required or gaps), missing_required or gaps, [], required_detail),
        Criterion(
            # A missing optional column is fine unless an unknown column might be it, renamed.
            "optional_columns", not (missing_optional and unexpected), missing_optional, [],
            f"optional {missing_optional} missing while {unexpected} are unknown: run repair-schema"
            if missing_optional and unexpected else "",
        ),
        *_drift_criteria(plan, plan.unparseable),
    ]
    if typed is not None and not all(c.passed for c in criteria):
        discard(con, typed)  # repair-schema stages a new table, typed afresh: free this one now
    coercions = [c.to_dict() for c in plan.notes]
    if not (missing_required or gaps):
        coercions += _evolution(unexpected, contract, target_columns)
    return Verdict.from_criteria(
        SKILL,
        criteria,
        failure_classes=CLASSES,
        metrics={"rows": rows, "columns": delivered, "unexpected_columns": unexpected},
        artifacts={"table": table, "coercions": coercions,
                   "drift": {"rules": [c.to_dict() for c in plan.rewrites],
                             "ambiguous": [a.to_dict() for a in plan.ambiguous]}},
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
    con: duckdb.DuckDBPyConnection,
    path: str,
    *,
    contract: Contract,
    table: str = "delivery",
    mappings: Mapping[str, str] | None = None,
    learned: Mapping[str, Sequence[str]] | None = None,
    profiles: Sequence[Mapping[str, Any]] = (),
    target_columns: Sequence[str] | None = None,
    share_typed: bool = True,
) -> Verdict:
    """Read ``path`` and :func:`check` it.

    Parts of a multi-file delivery whose headers differ are each mapped onto the contract first
    (column ``mappings`` learned on earlier runs, normalised and synonym names), then unioned.
    A single header is left as delivered: repair-schema maps it, visibly, as a remediation.
    """
    clock = Stopwatch()
    per_part: dict[str, str] = {}

    def map_part(names: Sequence[str]) -> Mapping[str, str]:
        found = propose_mapping(names, contract, learned=mappings).mapping
        per_part.update(found)
        return found

    try:
        delivery: Delivery = read_delivery(con, path, table=table, expected_columns=contract.names,
                                           column_map=map_part)
    except InputError as exc:
        return unreadable(exc, clock.ms())
    parts = [{"file": p.file, "rows": p.rows, "columns": list(p.columns)} for p in delivery.parts]
    verdict = check(con, delivery.table, contract=contract, learned=learned, profiles=profiles, parts=parts,
                    target_columns=target_columns, share_typed=share_typed)
    read = {
        "format": delivery.format, "encoding": delivery.encoding, "delimiter": delivery.delimiter,
        "header": delivery.header, "skipped_lines": delivery.skipped_lines,
        "notes": [{"rule": n.rule, "rows": n.rows, "detail": n.detail} for n in delivery.notes],
        "parts": parts[:_PARTS_SHOWN],
    }
    extra: dict[str, Any] = {"read": read}
    if per_part:
        extra |= {"mapping": per_part, "rules": dict.fromkeys(per_part, "part_header")}
    return Verdict(
        skill=verdict.skill, passed=verdict.passed, criteria=verdict.criteria,
        failure_class=verdict.failure_class, metrics=verdict.metrics,
        artifacts={**verdict.artifacts, **extra}, duration_ms=round(clock.ms(), 3),
    )


def run_step(ctx: StepContext) -> Verdict:
    known = ctx.sink.table_columns(ctx.contract.table) if ctx.sink is not None else None
    history = {"learned": ctx.history.coercions, "profiles": ctx.history.profiles, "target_columns": known}
    if ctx.table is None:
        if ctx.delivery_path is None:
            raise ConfigError("validate-schema needs a fetched delivery: run fetch-file first")
        return read_and_check(ctx.con, ctx.delivery_path, contract=ctx.contract, mappings=ctx.history.mappings,
                              **history)
    return check(ctx.con, ctx.table, contract=ctx.contract, **history)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=SKILL, description=__doc__.splitlines()[0])
    parser.add_argument("path", help="the delivery file (CSV, JSON Lines, JSON, Parquet; compressed is fine)")
    parser.add_argument("--contract", required=True, help="a pipeline YAML file (its contract: section is used)")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON verdict on stdout")
    args = parser.parse_args(argv)
    try:
        contract = load_contract(args.contract)
        verdict = read_and_check(duckdb.connect(), args.path, contract=contract, share_typed=False)
    except HealError as exc:
        return could_not_run(SKILL, exc)
    return finish(verdict, as_json=args.json, next_step="run repair-schema to map the columns, or escalate")


if __name__ == "__main__":
    sys.exit(main())
