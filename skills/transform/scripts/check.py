"""Type the rows per the contract, remove exact duplicate rows, and add tax_amount and region.

Usage:
    python skills/transform/scripts/check.py sales.csv --contract pipelines/sales.yaml
    python skills/transform/scripts/check.py sales.csv --contract pipelines/sales.yaml --out typed.csv --json

The pipeline file's `transform:` section sets `tax_rate` (tax_amount = round(amount * rate, 2))
and `region` (a column whose prefix picks the region, with a default).
Exit codes: 0 pass, 1 fail, 2 could not run.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import duckdb

from tools.context import StepContext
from tools.contract import Contract, load_contract, quote_ident, quote_literal
from tools.readers import read_delivery
from tools.typed_rows import repeated_rows, typed_rows
from tools.verdict import Criterion, HealError, Stopwatch, Verdict, could_not_run, finish

SKILL = "transform"
CLASSES = {"required_columns": "schema_mismatch", "all_values_typed": "type_drift", "tax_amount_computed": "type_drift", "region_assigned": "type_drift"}
_DROPPED = "__heal_transform_dropped"


def transform(
    con: duckdb.DuckDBPyConnection,
    table: str,
    *,
    contract: Contract,
    out_table: str = "transformed",
) -> Verdict:
    """Type, de-duplicate and derive ``table``; count what typing would lose."""
    clock = Stopwatch()
    typed = typed_rows(con, table, contract=contract)  # parsed once, shared with the other steps
    present = set(typed.typed)
    settings: dict[str, Any] = contract.transform
    select: list[str] = []
    columns: list[tuple[str, str]] = []
    for col in contract.columns:
        ident = quote_ident(col.name)
        select.append(ident if col.name in present else f"CAST(NULL AS {col.sql_type}) AS {ident}")
        columns.append((col.name, col.sql_type))
    if contract.extra_columns == "keep":
        select += [quote_ident(c) for c in typed.extras]
        columns += [(c, "VARCHAR") for c in typed.extras]
    derived = []
    amount = settings.get("amount_column", "amount")
    if "tax_rate" in settings and amount in contract.names:
        derived.append(f"round(CAST({quote_ident(amount)} AS DECIMAL(18,2)) * {float(settings['tax_rate'])!r}, 2)"
                       f"::DECIMAL(18,2) AS tax_amount")
        columns.append(("tax_amount", "DECIMAL(18,2)"))
    region = settings.get("region")
    if region:
        whens = " ".join(
            f"WHEN starts_with({quote_ident(region['column'])}, {quote_literal(prefix)}) THEN {quote_literal(name)}"
            for prefix, name in sorted(region["prefixes"].items(), key=lambda kv: -len(kv[0]))
        )
        default = quote_literal(region.get("default", "unknown"))
        derived.append(f"CASE {whens} ELSE {default} END AS region")
        columns.append(("region", "VARCHAR"))
    # Exact duplicate rows (same delivered text) are kept once: the first in file order.
    repeated = quote_ident(repeated_rows(con, typed))
    dropped = quote_ident(f"{_DROPPED}_{out_table}")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {dropped} AS SELECT _row FROM (SELECT _row, row_number() OVER "
        f"(PARTITION BY __heal_text ORDER BY _row) AS n FROM {repeated}) WHERE n > 1"
    )
    kept = f"(SELECT * FROM {typed.sql} WHERE _row NOT IN (SELECT _row FROM {dropped}))"
    out = quote_ident(out_table)
    # A view: the load reads the typed rows once, instead of transform writing them first.
    con.execute(f"DROP TABLE IF EXISTS {out}")
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {out} AS "
        f"SELECT {', '.join(select)}{', ' if derived else ''}{', '.join(derived)} FROM {kept}"
    )
    # A value with text that does not parse would be lost: the same rule validate-quality counts.
    lost = " + ".join(
        f"bit_count({quote_ident(m)} & {bits})::BIGINT" for m, bits in typed.bits("values_parse")
    ) or "0"
    rows_in, unparsed = con.execute(
        f"SELECT (SELECT count(*) FROM {typed.sql}), (SELECT coalesce(sum({lost}), 0) FROM {kept})"
    ).fetchone()
    has_tax = "tax_amount" in dict(columns)
    rows_out, missing_tax, missing_region = con.execute(
        "SELECT count(*), "
        + (f"count(*) FILTER (WHERE tax_amount IS NULL AND {quote_ident(amount)} IS NOT NULL)" if has_tax else "0")
        + ", " + ("count(*) FILTER (WHERE region IS NULL)" if region else "0")
        + f" FROM {out}"
    ).fetchone()
    missing = [c.name for c in contract.columns if c.required and c.name not in present]
    criteria = [
        Criterion("required_columns", not missing, missing, [],
                  f"required columns {missing} are missing: run repair-schema first" if missing else ""),
        Criterion("all_values_typed", unparsed == 0, unparsed, 0,
                  "" if not unparsed else "values lost in typing: quarantine them first (run validate-quality)"),
        Criterion("tax_amount_computed", missing_tax == 0, missing_tax, 0),
        Criterion("region_assigned", missing_region == 0, missing_region, 0),
    ]
    return Verdict.from_criteria(
        SKILL, criteria, failure_classes=CLASSES,
        metrics={"rows_in": rows_in, "rows_out": rows_out, "duplicates_removed": rows_in - rows_out},
        artifacts={"table": out_table, "columns": columns},
        duration_ms=clock.ms(),
    )


def run_step(ctx: StepContext) -> Verdict:
    return transform(ctx.con, ctx.table, contract=ctx.contract)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=SKILL, description=__doc__.splitlines()[0])
    parser.add_argument("path", help="the delivery file (already clean: run quarantine-rows first)")
    parser.add_argument("--contract", required=True, help="a pipeline YAML file (contract: and transform: are used)")
    parser.add_argument("--out", help="write the transformed rows to this CSV file")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON verdict on stdout")
    args = parser.parse_args(argv)
    try:
        contract = load_contract(args.contract)
        con = duckdb.connect()
        delivery = read_delivery(con, args.path, expected_columns=contract.names)
        verdict = transform(con, delivery.table, contract=contract)
        if args.out:
            con.execute(f"COPY (SELECT * FROM transformed ORDER BY ALL) TO {quote_literal(args.out)} (HEADER)")
    except HealError as exc:
        return could_not_run(SKILL, exc)
    return finish(verdict, as_json=args.json, next_step="run validate-quality and quarantine-rows first")


if __name__ == "__main__":
    sys.exit(main())
