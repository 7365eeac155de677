"""Hold back the rows that break the contract, each with its reason codes, and let the clean
rows go on. Writes clean rows and the quarantine as CSV with --out / --quarantine-out.

Usage:
    python skills/quarantine-rows/scripts/check.py sales.csv --contract pipelines/sales.yaml
    python skills/quarantine-rows/scripts/check.py sales.csv --contract pipelines/sales.yaml \
        --out clean.csv --quarantine-out held.csv --json

Reason codes: malformed_row / truncated_line, null_critical:COL, unparseable:COL,
out_of_range:COL, duplicate_key_conflict.
Exit codes: 0 clean rows remain and pass every rule, 1 otherwise, 2 could not run.
"""

from __future__ import annotations

import argparse
import sys

import duckdb

from tools.context import StepContext
from tools.contract import Contract, load_contract, quote_ident, quote_literal
from tools.readers import read_delivery
from tools.rules import data_columns
from tools.typed_rows import conflicting_keys, derive, repeated_rows, typed_rows
from tools.verdict import Criterion, HealError, Stopwatch, Verdict, could_not_run, finish

SKILL = "quarantine-rows"
CLASSES = {"clean_rows_remain": "null_critical", "clean_rows_pass": "null_critical"}


def quarantine(
    con: duckdb.DuckDBPyConnection,
    table: str,
    *,
    contract: Contract,
    out_table: str = "clean",
    quarantine_table: str = "quarantined",
) -> Verdict:
    """Split ``table`` into ``out_table`` (clean) and ``quarantine_table`` (_row, reasons, row_data)."""
    clock = Stopwatch()
    typed = typed_rows(con, table, contract=contract)  # parsed once, shared with the other steps
    base = quote_ident(typed.source)
    # A row the reader could not parse carries the reader's own code (e.g. truncated_line).
    reasons = ["CASE WHEN b._error IS NOT NULL THEN b._error END" if r.reason == "malformed_row" else code
               for r, code in zip(typed.rules, typed.reason_codes())]
    breaks = [typed.breaks()]
    if typed.key:
        # The keys held by rows with different contents, found once; every version of each is held.
        repeated = repeated_rows(con, typed)
        conflicts = conflicting_keys(con, typed, repeated)
        keys = ", ".join(quote_ident(k) for k in typed.key)
        held_keys = ", ".join(f"t.{quote_ident(k)}" for k in typed.key)
        conflict = f"(NOT {typed.breaks('rows_parse')} AND ({{}}) IN (SELECT ({keys}) FROM {quote_ident(conflicts)}))"
        reasons.append(f"CASE WHEN {conflict.format(held_keys)} THEN 'duplicate_key_conflict' END")
        breaks.append(conflict.format(keys))
    any_break = " OR ".join(breaks)
    row_json = "to_json({" + ", ".join(f"{quote_literal(c)}: b.{quote_ident(c)}" for c in typed.delivered) + "})"
    # Reasons and JSON are built only for the rows that break something (few).
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {quote_ident(quarantine_table)} AS "
        f"SELECT b._row AS row_number, concat_ws(';', {', '.join(reasons)}) AS reasons, "
        f"CAST({row_json} AS VARCHAR) AS row_data "
        f"FROM (SELECT * FROM {typed.sql} WHERE {any_break}) t JOIN {base} b ON b._row = t._row"
    )
    # The clean rows are a view: no copy of a large delivery; their typed rows are a view too.
    held_rows = f"SELECT row_number FROM {quote_ident(quarantine_table)}"
    con.execute(f"CREATE OR REPLACE TEMP VIEW {quote_ident(out_table)} AS SELECT * FROM {base} "
                f"WHERE _row NOT IN ({held_rows})")
    derive(con, typed, out_table, without=held_rows, contract=contract)
    held, total = con.execute(
        f"SELECT (SELECT count(*) FROM {quote_ident(quarantine_table)}), (SELECT count(*) FROM {typed.sql})"
    ).fetchone()
    clean = total - held
    by_reason = dict(con.execute(
        f"SELECT reason, count(*) FROM (SELECT unnest(string_split(reasons, ';')) AS reason "
        f"FROM {quote_ident(quarantine_table)}) GROUP BY reason ORDER BY reason"
    ).fetchall())
    # The repair must pass the rules it repairs: re-count every rule on the clean rows.
    still_bad = con.execute(
        f"SELECT count(*) FROM {typed.sql} WHERE ({any_break}) AND _row NOT IN ({held_rows})"
    ).fetchone()[0]
    criteria = [
        Criterion("clean_rows_remain", clean > 0, clean, ">= 1",
                  "" if clean else "every row breaks the contract: hold the delivery and escalate"),
        Criterion("clean_rows_pass", still_bad == 0, still_bad, 0,
                  "" if not still_bad else "clean rows still break a rule: escalate (a bug)"),
    ]
    return Verdict.from_criteria(
        SKILL, criteria, failure_classes=CLASSES,
        metrics={"rows_in": held + clean, "rows_quarantined": held, "rows_clean": clean, "by_reason": by_reason},
        artifacts={"table": out_table, "quarantine_table": quarantine_table},
        duration_ms=clock.ms(),
    )


def run_step(ctx: StepContext) -> Verdict:
    return quarantine(ctx.con, ctx.table, contract=ctx.contract)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=SKILL, description=__doc__.splitlines()[0])
    parser.add_argument("path", help="the delivery file")
    parser.add_argument("--contract", required=True, help="a pipeline YAML file (its contract: section is used)")
    parser.add_argument("--out", help="write the clean rows to this CSV file")
    parser.add_argument("--quarantine-out", help="write the held rows (row_number, reasons, row_data) to this CSV")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON verdict on stdout")
    args = parser.parse_args(argv)
    try:
        contract = load_contract(args.contract)
        con = duckdb.connect()
        delivery = read_delivery(con, args.path, expected_columns=contract.names)
        verdict = quarantine(con, delivery.table, contract=contract)
        if args.out:
            cols = ", ".join(quote_ident(c) for c in data_columns(con, "clean"))
            con.execute(f"COPY (SELECT {cols} FROM clean ORDER BY _row) TO {quote_literal(args.out)} (HEADER)")
        if args.quarantine_out:
            con.execute(
                f"COPY (SELECT * FROM quarantined ORDER BY row_number) TO {quote_literal(args.quarantine_out)} (HEADER)"
            )
    except HealError as exc:
        return could_not_run(SKILL, exc)
    return finish(verdict, as_json=args.json, next_step="escalate: no clean rows to load")


if __name__ == "__main__":
    sys.exit(main())
