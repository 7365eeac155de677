"""The contestants: how each is started as a process and how its output becomes the counts.

Every contestant reports :data:`bench.generate.COUNT_NAMES` (the floors only ``rows``).
heal-pipeline's two contestants print their own JSON (a verdict, a run result); the run's
counts are read back from the validate-quality verdict it recorded in the ledger.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

__all__ = ["CONTESTANTS", "Contestant", "Job", "counts_from_verdict", "missing_modules"]

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent / "contestants"
PIPELINE = REPO / "pipelines" / "sales.yaml"


@dataclass(frozen=True)
class Job:
    """One run of one contestant on one delivery."""

    path: Path
    rows: int
    min_rows: int
    max_rows: int
    workdir: Path
    python: str = sys.executable

    @property
    def target(self) -> Path:
        return self.workdir / "target.duckdb"


@dataclass(frozen=True)
class Contestant:
    name: str
    kind: str  # "floor" (reads or loads, checks nothing), "peer", "heal"
    what: str
    argv: Callable[[Job], list[str]]
    counts: Callable[[str, Job], dict[str, int]]
    exit_codes: tuple[int, ...] = (0,)
    needs: tuple[str, ...] = ()  # modules that must be importable
    fresh_target: bool = False  # delete Job.target before each run

    def missing(self) -> list[str]:
        return missing_modules(self.needs)


def missing_modules(names: tuple[str, ...]) -> list[str]:
    return [n for n in names if importlib.util.find_spec(n) is None]


def _script(name: str) -> Callable[[Job], list[str]]:
    def argv(job: Job) -> list[str]:
        return [job.python, str(SCRIPTS / f"{name}.py"), str(job.path), "--min-rows", str(job.min_rows),
                "--max-rows", str(job.max_rows), "--out", str(job.target)]

    return argv


def _json_counts(stdout: str, job: Job) -> dict[str, int]:
    return json.loads(stdout.strip().splitlines()[-1])


def counts_from_verdict(verdict: dict) -> dict[str, int]:
    """validate-quality's verdict as the shared counts."""
    by_id = {c["id"]: c for c in verdict["criteria"]}

    def observed(criterion: str, reason: str) -> int:
        value = by_id[criterion]["observed"]
        return int(value.get(reason, 0)) if isinstance(value, dict) else int(value or 0)

    return {
        "rows": int(verdict["metrics"]["rows"]),
        **{f"null_{c}": observed("no_null_critical", f"null_critical:{c}")
           for c in ("sale_id", "date", "amount", "product_id")},
        "duplicate_keys": int(by_id["key_unique"]["observed"]),
        "out_of_range": observed("values_in_range", "out_of_range:amount"),
        "volume_ok": bool(by_id["volume_within_tolerance"]["pass"]),
        "unparseable": sum(observed("values_parse", f"unparseable:{c}") for c in ("sale_id", "date", "amount")),
        "malformed": observed("rows_parse", "malformed_row"),
        "duration_ms": float(verdict.get("duration_ms") or 0.0),
    }


def _vq_argv(job: Job) -> list[str]:
    # One delivery of the expected size as history: the volume check is the row-count bound.
    return [job.python, str(REPO / "skills" / "validate-quality" / "scripts" / "check.py"), str(job.path),
            "--contract", str(PIPELINE), "--history", str(job.rows), "--json"]


def _vq_counts(stdout: str, job: Job) -> dict[str, int]:
    return counts_from_verdict(json.loads(stdout))


def _heal(job: Job) -> list[str]:
    return [str(Path(job.python).with_name("heal")), "run", str(PIPELINE), "--source", str(job.path),
            "--target", f"duckdb:///{job.target}", "--json"]


def _run_counts(stdout: str, job: Job) -> dict[str, int]:
    """The run's own report, plus the counts of the validate-quality verdict in its ledger."""
    result = json.loads(stdout.strip().splitlines()[-1])
    con = duckdb.connect(str(job.target), read_only=True)
    try:
        attempts = con.execute(
            "SELECT step, verdict FROM heal.attempts WHERE run_id = ? ORDER BY seq", [result["run_id"]]
        ).fetchall()
    finally:
        con.close()
    verdicts = [(step, json.loads(v) if isinstance(v, str) else v) for step, v in attempts]
    counts = counts_from_verdict([v for step, v in verdicts if step == "validate-quality"][-1])
    steps_ms: dict[str, float] = {}
    for step, v in verdicts:
        steps_ms[step] = steps_ms.get(step, 0.0) + float(v.get("duration_ms") or 0.0)
    counts["steps_ms"] = steps_ms
    counts.update(
        rows_read=result["rows_read"], rows_loaded=result["rows_loaded"],
        quarantined=result["rows_quarantined"], conserved=bool(result["conserved"]),
    )
    counts["volume_ok"] = job.min_rows <= counts["rows"] <= job.max_rows  # a fresh ledger has no history
    return counts


CONTESTANTS: tuple[Contestant, ...] = (
    Contestant("duckdb-scan", "floor", "DuckDB: SELECT count(*) FROM read_csv(file)",
               _script("duckdb_scan"), _json_counts, needs=("duckdb",)),
    Contestant("duckdb-load", "floor", "DuckDB: CREATE TABLE AS SELECT * FROM read_csv(file), into a database file",
               _script("duckdb_load"), _json_counts, needs=("duckdb",), fresh_target=True),
    Contestant("duckdb-sql", "peer", "one hand-written DuckDB query with the four checks",
               _script("duckdb_sql"), _json_counts, needs=("duckdb",)),
    Contestant("pandas", "peer", "the reference: pandas read_csv, isna, is_unique, to_numeric().between, len",
               _script("pandas_ref"), _json_counts, needs=("pandas",)),
    Contestant("pandera", "peer", "pandera DataFrameSchema over the pandas frame, lazy validation",
               _script("pandera_check"), _json_counts, needs=("pandas", "pandera")),
    Contestant("great-expectations", "peer", "Great Expectations suite over the pandas frame (ephemeral context)",
               _script("ge_check"), _json_counts, needs=("pandas", "great_expectations")),
    Contestant("soda-core", "peer", "Soda Core 4 data contract on DuckDB (a view over read_csv)",
               _script("soda_check"), _json_counts, needs=("soda_core", "soda_duckdb")),
    Contestant("polars", "peer", "polars lazy scan_csv, the four checks in one select",
               _script("polars_check"), _json_counts, needs=("polars",)),
    Contestant("heal validate-quality", "heal",
               "python skills/validate-quality/scripts/check.py FILE --contract pipelines/sales.yaml --json",
               _vq_argv, _vq_counts, exit_codes=(0, 1)),
    Contestant("heal run", "heal",
               "heal run pipelines/sales.yaml --source FILE --target duckdb:///... (the whole autopilot)",
               _heal, _run_counts, exit_codes=(0, 3), fresh_target=True),
)
