"""Check a delivery against the pipeline's history: volume, freshness, value distributions.

Usage:
    python skills/validate-history/scripts/check.py sales.csv --contract pipelines/sales.yaml \
        --date 2026-11-29 --history-file history.json
    python skills/validate-history/scripts/check.py sales.csv --contract pipelines/sales.yaml \
        --date 2026-11-29 --history-file history.json --json

history.json holds earlier loaded runs, any order:
    {"runs": [{"run_date": "2026-11-28", "rows": 1000,
               "profile": {"amount": {"median": 251.0, "mean": 250.2, "p05": 26.1, "p95": 475.3}}}]}

Exit codes: 0 pass, 1 fail (see the verdict's failure_class), 2 could not run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb

from tools.context import StepContext
from tools.contract import NUMERIC_COLUMN_TYPES, Contract, load_contract, quote_ident
from tools.history import SHIFT_STATS, distribution_shift, expected_volume, freshness
from tools.profile import quantile_sample_sql
from tools.readers import read_delivery
from tools.typed_rows import typed_rows
from tools.verdict import ConfigError, HealError, Stopwatch, Verdict, could_not_run, finish

SKILL = "validate-history"
CLASSES = {
    "volume_expected": "volume_anomaly",
    "fresh": "freshness",
    "distribution_stable": "distribution_shift",
}
DATES = ("date", "timestamp")
_QUANTILES = {"median": 0.5, "p05": 0.05, "p95": 0.95}


def _stats_sql(x: str, where: str, sample: str | None) -> list[str]:
    """``avg`` and one ``approx_quantile`` for all the quantiles (one digest, not one per quantile),
    that one over the ``sample`` rows when given (a large delivery: see tools.profile)."""
    filt = f" FILTER (WHERE {where})"
    quantiles = [_QUANTILES[s] for s in SHIFT_STATS if s != "mean"]
    sampled = f" FILTER (WHERE ({where}) AND {sample})" if sample else filt
    return [f"avg({x}){filt}", f"approx_quantile({x}, {quantiles}){sampled}"]


def _stats(values: Sequence[Any]) -> dict[str, float]:
    """The row values of :func:`_stats_sql`, by statistic name."""
    mean, quantiles = values
    named = dict(zip([s for s in SHIFT_STATS if s != "mean"], quantiles or ()))
    return {s: (mean if s == "mean" else named.get(s)) for s in SHIFT_STATS}


def check(
    con: duckdb.DuckDBPyConnection,
    table: str,
    *,
    contract: Contract,
    run_date: dt.date,
    volumes: Sequence[tuple[dt.date | str, int]] = (),
    profiles: Sequence[Mapping[str, Any]] = (),
    date_column: str | None = None,
) -> Verdict:
    """Judge ``table`` against history (two passes over its typed rows: counts, then statistics).

    ``volumes`` are (run_date, rows read) of earlier loaded runs, newest first; ``profiles``
    are ``{"run_date", "columns": {name: profile}}`` of earlier loaded runs, newest first.
    """
    clock = Stopwatch()
    typed = typed_rows(con, table, contract=contract)  # parsed once, shared with the later steps
    delivered = set(typed.typed)
    dated = [c for c in contract.columns if c.type in DATES and c.name in delivered]
    if date_column is not None:
        dated = [c for c in dated if c.name == date_column]
        if not dated:
            raise ConfigError(f"date_column {date_column!r} is not a date or timestamp column of this delivery")
    numeric = [c for c in contract.columns if c.type in NUMERIC_COLUMN_TYPES and c.name in delivered and c.name not in contract.key]
    parts = ["count(*)"] + ([f"max({quote_ident(dated[0].name)})"] if dated else [])
    ranges: dict[str, tuple[str, str]] = {}
    for c in numeric:
        x = f"CAST({quote_ident(c.name)} AS DOUBLE)"
        bounds = [f"{x} >= {c.min!r}"] * (c.min is not None) + [f"{x} <= {c.max!r}"] * (c.max is not None)
        ranges[c.name] = (x, " AND ".join(bounds) or "true")
        parts += [f"count({x})", f"count({x}) FILTER (WHERE {ranges[c.name][1]})"]
    row = list(con.execute(f"SELECT {', '.join(parts)} FROM {typed.sql}").fetchone())
    rows = row.pop(0)
    newest = row.pop(0) if dated else None
    # Values the contract would quarantine are left out, so a few bad rows do not look like a
    # shift; unless most values are out of range, which is the shift itself (amounts in cents).
    chosen: dict[str, str] = {}
    for c in numeric:
        parsed, in_range = row.pop(0), row.pop(0)
        if parsed:
            chosen[c.name] = ranges[c.name][1] if in_range * 2 >= parsed else "true"
    current: dict[str, dict[str, float]] = {}
    if chosen:  # a second pass for the statistics: one digest per column, not two
        sample = quantile_sample_sql(rows, "_row")  # large deliveries: a sample, as heal.profiles takes
        stats = list(con.execute(
            "SELECT " + ", ".join(e for name, where in chosen.items()
                                  for e in _stats_sql(ranges[name][0], where, sample))
            + f" FROM {typed.sql}"
        ).fetchone())
        for i, name in enumerate(chosen):
            current[name] = {s: v for s, v in _stats(stats[2 * i:2 * i + 2]).items() if v is not None}

    volume = expected_volume(rows, volumes, run_date=run_date, tolerance=contract.volume_tolerance)
    fresh = freshness(newest, run_date=run_date, max_age_days=contract.freshness_days)
    shift = distribution_shift(current, [p.get("columns", {}) for p in profiles])
    metrics: dict[str, Any] = {"rows": rows, "date_column": dated[0].name if dated else None}
    for finding in (volume, fresh, shift):
        metrics.update(finding.metrics or {})
    return Verdict.from_criteria(
        SKILL,
        [volume.to_criterion("volume_expected"), fresh.to_criterion("fresh"),
         shift.to_criterion("distribution_stable")],
        failure_classes=CLASSES,
        metrics=metrics,
        duration_ms=clock.ms(),
    )


def run_step(ctx: StepContext) -> Verdict:
    if ctx.table is None:
        raise ConfigError("validate-history needs a staged delivery: route it after validate-schema")
    return check(
        ctx.con, ctx.table, contract=ctx.contract, run_date=ctx.run_date,
        volumes=ctx.history.volumes_by_date, profiles=ctx.history.profiles,
        date_column=ctx.params.get("date_column"),
    )


def read_history(path: str | Path) -> tuple[list[tuple[dt.date, int]], list[dict[str, Any]]]:
    """(volumes, profiles), newest first, from a history JSON file (see the usage above)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        runs = sorted(data["runs"], key=lambda r: str(r["run_date"]), reverse=True)
        volumes = [(dt.date.fromisoformat(str(r["run_date"])), int(r["rows"])) for r in runs]
        profiles = [{"run_date": r["run_date"], "columns": dict(r["profile"])} for r in runs if r.get("profile")]
    except FileNotFoundError:
        raise ConfigError(f"history file not found: {path}") from None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"{path}: expected {{\"runs\": [{{\"run_date\", \"rows\", \"profile\"?}}]}} ({exc})") from None
    return volumes, profiles


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=SKILL, description=__doc__.splitlines()[0])
    parser.add_argument("path", help="the delivery file (CSV, JSON Lines, JSON, Parquet; compressed is fine)")
    parser.add_argument("--contract", required=True, help="a pipeline YAML file (its contract: section is used)")
    parser.add_argument("--date", help="the run date, YYYY-MM-DD (default: today)")
    parser.add_argument("--history-file", help="JSON of earlier loaded runs: volumes and column profiles")
    parser.add_argument("--date-column", help="judge freshness on this column (default: the first date column)")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON verdict on stdout")
    args = parser.parse_args(argv)
    try:
        try:
            run_date = dt.date.fromisoformat(args.date) if args.date else dt.date.today()
        except ValueError:
            raise ConfigError(f"--date expects YYYY-MM-DD, got {args.date!r}") from None
        contract = load_contract(args.contract)
        volumes, profiles = read_history(args.history_file) if args.history_file else ([], [])
        con = duckdb.connect()
        delivery = read_delivery(con, args.path, expected_columns=contract.names)
        verdict = check(con, delivery.table, contract=contract, run_date=run_date, volumes=volumes,
                        profiles=profiles, date_column=args.date_column)
    except HealError as exc:
        return could_not_run(SKILL, exc)
    return finish(verdict, as_json=args.json,
                  next_step="volume: load and tell a person; stale or shifted: hold the delivery and escalate")


if __name__ == "__main__":
    sys.exit(main())
