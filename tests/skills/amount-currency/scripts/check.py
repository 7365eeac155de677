"""Find amounts that arrive with a trailing currency code (``12.50 EUR``) instead of a number.

Usage:
    python skills/amount-currency/scripts/check.py delivery.csv
    python skills/amount-currency/scripts/check.py delivery.csv --column total --json

Exit codes: 0 pass, 1 fail (type_drift), 2 could not run.
"""

from __future__ import annotations

import argparse
import sys

import duckdb

from tools.context import StepContext
from tools.contract import quote_ident
from tools.readers import read_delivery
from tools.verdict import Criterion, HealError, Stopwatch, Verdict, could_not_run, finish

SKILL = "amount-currency"
CLASSES = {"amounts_plain": "type_drift"}
SAMPLE = 20
CODED = r"^[-+]?[0-9][0-9.,]*\s*([A-Z]{3})$"


def offending_rows(con: duckdb.DuckDBPyConnection, table: str, *, column: str = "amount") -> list[int]:
    """Row numbers (``_row``, sorted) whose amount ends in a currency code."""
    return [r[0] for r in con.execute(
        f"SELECT _row FROM {quote_ident(table)} WHERE regexp_matches(trim({quote_ident(column)}), ?) ORDER BY _row",
        [CODED],
    ).fetchall()]


def check(con: duckdb.DuckDBPyConnection, table: str, *, column: str = "amount") -> Verdict:
    """Judge the delivery staged in ``table``; never prints, never changes the data."""
    clock = Stopwatch()
    columns = [r[0] for r in con.execute(f"DESCRIBE {quote_ident(table)}").fetchall()]
    if column not in columns:
        criteria = [Criterion("amounts_plain", True, f"no {column} column", None,
                              "nothing to check; validate-schema reports missing columns")]
        return Verdict.from_criteria(SKILL, criteria, failure_classes=CLASSES, duration_ms=clock.ms())
    bad = offending_rows(con, table, column=column)
    codes = sorted({r[0] for r in con.execute(
        f"SELECT regexp_extract(trim({quote_ident(column)}), ?, 1) FROM {quote_ident(table)} "
        f"WHERE regexp_matches(trim({quote_ident(column)}), ?)", [CODED, CODED]).fetchall()})
    criteria = [Criterion("amounts_plain", not bad, len(bad), 0,
                          f"{len(bad)} amounts carry a currency code ({', '.join(codes)}): load nothing, "
                          "ask which currency the plain amounts are in" if bad else "",
                          samples=tuple(bad[:SAMPLE]))]
    return Verdict.from_criteria(SKILL, criteria, failure_classes=CLASSES,
                                 metrics={"rows_coded": len(bad), "codes": codes}, duration_ms=clock.ms())


def run_step(ctx: StepContext) -> Verdict:
    table = ctx.table
    if table is None:  # placed before validate-schema: stage the fetched file first
        if ctx.delivery_path is None:
            raise HealError(f"{SKILL} needs a fetched delivery: put it after fetch-file")
        table = read_delivery(ctx.con, ctx.delivery_path, table="amount_currency_input").table
    return check(ctx.con, table, column=ctx.params.get("column", "amount"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=SKILL, description=__doc__.splitlines()[0])
    parser.add_argument("path", help="the delivery file (CSV, JSON Lines, JSON, Parquet; compressed is fine)")
    parser.add_argument("--column", default="amount", help="the amount column (default: amount)")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON verdict on stdout")
    args = parser.parse_args(argv)
    try:
        con = duckdb.connect()
        delivery = read_delivery(con, args.path)
        verdict = check(con, delivery.table, column=args.column)
    except HealError as exc:
        return could_not_run(SKILL, exc)
    return finish(verdict, as_json=args.json, next_step="load nothing; ask which currency the plain amounts are in")


if __name__ == "__main__":
    sys.exit(main())
