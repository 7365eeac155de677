"""Check a delivery's rows against the contract: nulls, keys, ranges, parsing, volume.

Usage:
    python skills/validate-quality/scripts/check.py sales.csv --contract pipelines/sales.yaml
    python skills/validate-quality/scripts/check.py sales.csv --contract pipelines/sales.yaml \
        --history 1000,980,1010 --json

Exit codes: 0 pass, 1 fail (see the verdict's failure_class), 2 could not run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence

import duckdb

from tools.context import StepContext
from tools.contract import Contract, load_contract, quote_ident
from tools.readers import read_delivery
from tools.rules import data_columns, key_conflicts_sql, row_rules
from tools.verdict import Criterion, HealError, Stopwatch, Verdict, could_not_run, finish

SKILL = "validate-quality"
CLASSES = {
    "rows_parse": "malformed_row",
    "no_null_critical": "null_critical",
    "values_parse": "type_drift",
    "values_in_range": "out_of_range",
    "key_unique": "duplicate_key",
    "volume_within_tolerance": "volume_anomaly",
}
DETAILS = {
    "rows_parse": "rows the reader could not parse fully: quarantine them",
    "no_null_critical": "critical columns have nulls: quarantine those rows",
    "values_parse": "values do not parse as the contract type: quarantine those rows",
    "values_in_range": "values outside the contract range: quarantine those rows",
    "key_unique": "keys with different contents: quarantine every version",
    "volume_within_tolerance": "row count far from history: load, then tell a person",
}
SAMPLE = 20


def check(
    con: duckdb.DuckDBPyConnection,
    table: str,
    *,
    contract: Contract,
    history: Sequence[int] = (),
) -> Verdict:
    """Count every rule breach in two passes over ``table``; ``history`` is recent row counts."""
    clock = Stopwatch()
    delivered = data_columns(con, table)
    rules = row_rules(contract, delivered)
    t = quote_ident(table)
    counts = con.execute(
        "SELECT count(*)"
        + "".join(f", count(*) FILTER (WHERE {r.predicate})" for r in rules)
        + f" FROM {t}"
    ).fetchone()
    rows, per_rule = counts[0], dict(zip((r.reason for r in rules), counts[1:]))

    conflicts_sql = key_conflicts_sql(table, contract, delivered)
    conflicting_keys = 0
    key_samples: list[object] = []
    if conflicts_sql:
        found = con.execute(f"SELECT * FROM ({conflicts_sql}) ORDER BY ALL LIMIT {SAMPLE + 1}").fetchall()
        conflicting_keys = con.execute(f"SELECT count(*) FROM ({conflicts_sql})").fetchone()[0] if found else 0
        key_samples = [r[0] if len(r) == 1 else list(r) for r in found[:SAMPLE]]
    distinct_rows = con.execute(
        f"SELECT count(*) FROM (SELECT DISTINCT {', '.join(quote_ident(c) for c in delivered)} FROM {t})"
    ).fetchone()[0] if delivered else 0

    criteria = []
    for criterion in ("rows_parse", "no_null_critical", "values_parse", "values_in_range"):
        breaking = {r.reason: per_rule[r.reason] for r in rules if r.criterion == criterion and per_rule[r.reason]}
        samples: list[int] = []
        if breaking:
            preds = " OR ".join(f"({r.predicate})" for r in rules if r.criterion == criterion)
            samples = [x[0] for x in con.execute(
                f"SELECT _row FROM {t} WHERE {preds} ORDER BY _row LIMIT {SAMPLE}"
            ).fetchall()]
        criteria.append(Criterion(
            id=criterion,
            passed=not breaking,
            observed=breaking or 0,
            expected=0,
            detail=DETAILS[criterion] if breaking else "",
            samples=tuple(samples),
        ))
    criteria.append(Criterion(
        id="key_unique",
        passed=conflicting_keys == 0,
        observed=conflicting_keys,
        expected=0,
        detail=DETAILS["key_unique"] if conflicting_keys else "",
        samples=tuple(key_samples),
    ))
    criteria.append(_volume(rows, history, contract.volume_tolerance))
    return Verdict.from_criteria(
        SKILL,
        criteria,
        failure_classes=CLASSES,
        metrics={"rows": rows, "exact_duplicates": rows - distinct_rows, "breaches": per_rule},
        duration_ms=clock.ms(),
    )


def _volume(rows: int, history: Sequence[int], tolerance: float) -> Criterion:
    if not history:
        return Criterion("volume_within_tolerance", True, rows, None, "no history yet: nothing to compare")
    median = statistics.median(history)
    low, high = median * (1 - tolerance), median * (1 + tolerance)
    ok = low <= rows <= high
    return Criterion(
        id="volume_within_tolerance",
        passed=ok,
        observed=rows,
        expected=[round(low), round(high)],
        detail="" if ok else f"{rows} rows vs a median of {median:g} over {len(history)} runs: {DETAILS['volume_within_tolerance']}",
    )


def run_step(ctx: StepContext) -> Verdict:
    return check(ctx.con, ctx.table, contract=ctx.contract, history=ctx.history.volumes[: ctx.contract.volume_window])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="validate-quality", description=__doc__.splitlines()[0])
    parser.add_argument("path", help="the delivery file (CSV, JSON Lines, JSON, Parquet; compressed is fine)")
    parser.add_argument("--contract", required=True, help="a pipeline YAML file (its contract: section is used)")
    parser.add_argument("--history", default="", help="comma-separated row counts of recent deliveries")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON verdict on stdout")
    args = parser.parse_args(argv)
    try:
        contract = load_contract(args.contract)
        history = [int(x) for x in args.history.split(",") if x.strip()]
        con = duckdb.connect()
        delivery = read_delivery(con, args.path, expected_columns=contract.names)
        verdict = check(con, delivery.table, contract=contract, history=history)
    except HealError as exc:
        return could_not_run(SKILL, exc)
    except ValueError:
        return could_not_run(SKILL, HealError("--history takes whole numbers separated by commas"))
    return finish(verdict, as_json=args.json, next_step="run quarantine-rows to hold back the failing rows")


if __name__ == "__main__":
    sys.exit(main())
