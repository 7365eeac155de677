"""`heal demo`: a week of sales deliveries, one fault a day, through the reference pipeline.

Each day states the status the default policies call for, so the demo doubles as a check:
it exits non-zero if any day ends differently or conservation fails.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from orchestrator.ledger import Ledger
from orchestrator.pipeline import Pipeline, Source, load_pipeline
from orchestrator.run import run_pipeline
from tools.sinks import open_sink

__all__ = ["DEMO_DAYS", "run_demo", "sales_rows", "write_sales_csv"]

ROWS_PER_DAY = 1000
FIRST_DAY = dt.date(2026, 11, 2)
HEADER = ["sale_id", "date", "amount", "product_id"]

#: (fault, expected status) per day of the demo week.
DEMO_DAYS: tuple[tuple[str, str], ...] = (
    ("clean delivery", "success"),
    ("column renamed: amount -> sale_amount", "healed"),
    ("nulls and out-of-range amounts in 12 rows", "partial_failure"),
    ("50 corrections of keys loaded on day 1", "healed"),
    ("primary file missing; fallback copy present", "healed"),
    ("day 1's file re-delivered", "escalated"),
    ("20 exact duplicate rows", "healed"),
)


def sales_rows(day: dt.date, first_id: int, count: int, rng: random.Random) -> list[list[str]]:
    """Plausible sales rows: unique ids, the day's date, amounts 1..500, products N/S/E/W-nnnn."""
    return [
        [str(first_id + i), day.isoformat(), f"{rng.uniform(1, 500):.2f}", f"{rng.choice('NSEW')}-{rng.randint(1, 9999):04d}"]
        for i in range(count)
    ]


def write_sales_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _make_week(root: Path, seed: int = 7) -> None:
    rng = random.Random(seed)
    primary, backup = root / "deliveries", root / "backup"
    days = [FIRST_DAY + dt.timedelta(days=i) for i in range(7)]

    def ids(i: int) -> int:
        return i * ROWS_PER_DAY + 1

    day1 = write_sales_csv(primary / f"{days[0]}.csv", sales_rows(days[0], ids(0), ROWS_PER_DAY, rng))
    write_sales_csv(primary / f"{days[1]}.csv", sales_rows(days[1], ids(1), ROWS_PER_DAY, rng),
                    header=["sale_id", "date", "sale_amount", "product_id"])
    rows = sales_rows(days[2], ids(2), ROWS_PER_DAY, rng)
    for i in range(0, 60, 10):
        rows[i][2] = ""  # null critical amount
    for i in range(5, 65, 10):
        rows[i][2] = "25000.00"  # out of range
    write_sales_csv(primary / f"{days[2]}.csv", rows)
    rows = sales_rows(days[3], ids(3), ROWS_PER_DAY - 50, rng)
    corrections = sales_rows(days[0], ids(0), 50, rng)  # same keys as day 1, new amounts
    write_sales_csv(primary / f"{days[3]}.csv", rows + corrections)
    write_sales_csv(backup / f"{days[4]}.csv", sales_rows(days[4], ids(4), ROWS_PER_DAY, rng))
    (primary / f"{days[5]}.csv").write_bytes(day1.read_bytes())
    rows = sales_rows(days[6], ids(6), ROWS_PER_DAY, rng)
    write_sales_csv(primary / f"{days[6]}.csv", rows + [list(r) for r in rows[:20]])


def demo_pipeline(root: Path) -> Pipeline:
    """pipelines/sales.yaml pointed at the demo folder."""
    spec = load_pipeline(Path(__file__).resolve().parent.parent / "pipelines" / "sales.yaml")
    return replace(
        spec,
        source=Source(uri=str(root / "deliveries" / "{date}.csv"), fallback=str(root / "backup" / "{date}.csv"),
                      min_bytes=spec.source.min_bytes),
        target=f"duckdb:///{root / 'sales.duckdb'}",
        alerts=({"type": "file", "path": str(root / "alerts.jsonl")},),
    )


def run_demo(workdir: Path | None = None, *, echo: Callable[[str], Any] | None = print) -> list[dict[str, Any]]:
    """Make the week, run each day, print a line per day and the ledger summary."""
    say = echo or (lambda _line: None)
    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="heal-demo-"))
    for sub in ("deliveries", "backup"):
        shutil.rmtree(root / sub, ignore_errors=True)
    (root / "sales.duckdb").unlink(missing_ok=True)
    _make_week(root)
    pipeline = demo_pipeline(root)
    say(f"heal demo: a week of sales deliveries in {root}")
    say(f"{'date':<11} {'status':<16} {'read':>5} {'loaded':>6} {'quar.':>5} {'dups':>4}  fault → remediations")
    out = []
    for i, (fault, expected) in enumerate(DEMO_DAYS):
        day = FIRST_DAY + dt.timedelta(days=i)
        result = run_pipeline(pipeline, run_date=day)
        c = result.counts
        ok = "" if result.status == expected else f"  (EXPECTED {expected})"
        fixes = ", ".join(result.remediations) or "-"
        say(f"{day!s:<11} {result.status:<16} {c['read']:>5} {c['loaded']:>6} {c['quarantined']:>5} "
            f"{c['duplicates']:>4}  {fault} → {fixes}{ok}")
        out.append({**result.to_dict(), "fault": fault, "expected_status": expected})
    sink = open_sink(pipeline.target)
    try:
        ledger = Ledger(sink)
        say("\nledger summary (heal.runs):")
        for name, status, runs, loaded, quarantined in ledger.summary():
            say(f"  {name}: {runs} {status} run(s), {loaded or 0} rows loaded, {quarantined or 0} quarantined")
        total = sink.query("SELECT count(*) FROM main.sales")[0][0]
        incidents = ledger.incidents()
        say(f"  sales table: {total} rows; incidents: "
            + (", ".join(f"{i['failure_class']} ({i['status']})" for i in incidents) or "none"))
        conserved = all(d["conserved"] for d in out)
        say(f"  conservation (read = loaded + quarantined + duplicates + held) holds every day: {conserved}")
        say(f"\nInspect: heal runs --target duckdb:///{root / 'sales.duckdb'}")
    finally:
        sink.close()
    return out
