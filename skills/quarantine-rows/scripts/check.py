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
from tools.contract import Contract, load_contract, parse_sql, quote_ident, quote_literal
from tools.readers import read_delivery
from tools.rules import data_columns, key_conflicts_sql, row_rules
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
    delivered = data_columns(con, table)
    rules = row_rules(contract, delivered)
    t = quote_ident(table)
    # A row the reader could not parse carries the reader's own code (e.g. truncated_line).
    reasons = [
        "_error" if r.reason == "malformed_row" else f"CASE WHEN {r.predicate} THEN {quote_literal(r.reason)} END"
        for r in rules
    ]
    breaks = [f"({r.predicate})" for r in rules]
    conflicts = key_conflicts_sql(table, contract, delivered)
    if conflicts:
        # The conflicting keys, found once; every version of each is held.
        con.execute(f"CREATE OR REPLACE TEMP TABLE heal_conflict_keys AS {conflicts}")
        key_tuple = ", ".join(
            parse_sql(quote_ident(k), contract.column(k), contract.null_tokens) for k in contract.key
        )
        keys = ", ".join(quote_ident(k) for k in contract.key)
        conflict = f"(_error IS NULL AND ({key_tuple}) IN (SELECT ({keys}) FROM heal_conflict_keys))"
        reasons.append(f"CASE WHEN {conflict} THEN 'duplicate_key_conflict' END")
        breaks.append(conflict)
    any_break = " OR ".join(breaks) or "false"
    row_json = "to_json({" + ", ".join(f"{quote_literal(c)}: {quote_ident(c)}" for c in delivered) + "})"
    # Reasons and JSON are built only for the rows that break something (few), in one pass.
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {quote_ident(quarantine_table)} AS "
        f"SELECT _row AS row_number, concat_ws(';', {', '.join(reasons)}) AS reasons, "
        f"CAST({row_json} AS VARCHAR) AS row_data FROM {t} WHERE {any_break}"
    )
    # The clean rows are a view: no copy of a large delivery.
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {quote_ident(out_table)} AS SELECT * FROM {t} "
        f"WHERE _row NOT IN (SELECT row_number FROM {quote_ident(quarantine_table)})"
    )
    held, total = con.execute(
        f"SELECT (SELECT count(*) FROM {quote_ident(quarantine_table)}), (SELECT count(*) FROM {t})"
    ).fetchone()
    clean = total - held
    by_reason = dict(con.execute(
        f"SELECT reason, count(*) FROM (SELECT unnest(string_split(reasons, ';')) AS reason "
        f"FROM {quote_ident(quarantine_table)}) GROUP BY reason ORDER BY reason"
    ).fetchall())
    # The repair must pass the rules it repairs: re-count every rule on the clean rows.
    still_bad = con.execute(
        f"SELECT count(*) FROM {quote_ident(out_table)} WHERE {any_break}"
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
