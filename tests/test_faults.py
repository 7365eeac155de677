"""Faults injected during runs: the process killed at every step boundary and inside the
load transaction, the staging disk full. Afterwards the target is exact (no duplicates, no
loss), the ledger tells the truth, and the next run finishes the work (issue 9)."""

import datetime as dt
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from orchestrator.graph import REFERENCE_GRAPH
from orchestrator.run import run_pipeline
from tests.conftest import DAY, REPO, deliver, rows_for

RUNNER = textwrap.dedent("""
    import datetime as dt, sys
    from dataclasses import replace
    from pathlib import Path
    from orchestrator.pipeline import Source, load_pipeline
    from orchestrator.run import run_pipeline
    from orchestrator.skills import SkillRegistry
    folder, killer_root = Path(sys.argv[1]), sys.argv[2]
    p = load_pipeline(Path(sys.argv[3]) / "pipelines" / "sales.yaml")
    p = replace(p, source=Source(uri=str(folder / "in" / "{date}.csv"), min_bytes=16),
                target="duckdb:///" + str(folder / "t.duckdb"), alerts=())
    roots = ([Path(killer_root)] if killer_root != "-" else []) + [Path(sys.argv[3]) / "skills"]
    r = run_pipeline(p, run_date=dt.date.fromisoformat(sys.argv[4]), skills=SkillRegistry(*roots),
                     sleep=lambda s: None)
    print(r.status)
""")

KILL_NOW = "import os, signal\n\ndef run_step(ctx):\n    os.kill(os.getpid(), signal.SIGKILL)\n"

# Kill inside the load transaction, after the rows went in and before the commit.
KILL_IN_LOAD = textwrap.dedent("""
    import importlib.util, os, signal, sys
    from pathlib import Path
    from dataclasses import replace
    spec = importlib.util.spec_from_file_location("real_load", Path(sys.argv[3]) / "skills/load-target/scripts/check.py")
    real = importlib.util.module_from_spec(spec); spec.loader.exec_module(real)

    def run_step(ctx):
        def die():
            ctx.on_commit()
            os.kill(os.getpid(), signal.SIGKILL)
        return real.run_step(replace(ctx, on_commit=die))
""")


def killer(root: Path, skill: str, body: str) -> Path:
    folder = root / skill
    (folder / "scripts").mkdir(parents=True)
    (folder / "SKILL.md").write_text(f"---\nname: {skill}\ndescription: Test double. Use when testing.\n---\n")
    (folder / "scripts" / "check.py").write_text(body)
    return root


def run_in_process(folder: Path, killer_root: Path | str, day: dt.date) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", RUNNER, str(folder), str(killer_root), str(REPO), str(day)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)


def target_state(folder: Path):
    con = duckdb.connect(str(folder / "t.duckdb"), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                            "WHERE table_schema = 'main'").fetchall()}
        rows = con.execute("SELECT count(*), count(DISTINCT sale_id) FROM main.sales").fetchone() \
            if "sales" in tables else (0, 0)
        runs = con.execute("SELECT status FROM heal.runs ORDER BY started_at").fetchall()
        deliveries = con.execute("SELECT count(*) FROM heal.deliveries").fetchone()[0]
        return rows, [r[0] for r in runs], deliveries
    finally:
        con.close()


@pytest.mark.parametrize("step", [s for s in REFERENCE_GRAPH if s in (
    "fetch-file", "validate-schema", "validate-history", "validate-quality", "transform", "load-target", "health-check")])
def test_killed_at_a_step_boundary_the_next_run_finishes_exactly_once(step, tmp_path):
    deliver(tmp_path / "in", DAY, rows_for(DAY, count=300))
    first = run_in_process(tmp_path, killer(tmp_path / "kill", step, KILL_NOW), DAY)
    assert first.returncode == -9, first.stderr
    if (tmp_path / "t.duckdb").exists():
        (rows, distinct), runs, _ = target_state(tmp_path)
        assert runs == ["running"]
        assert rows in (0, 300) and rows == distinct
    second = run_in_process(tmp_path, "-", DAY)
    assert second.returncode == 0, second.stderr
    (rows, distinct), runs, deliveries = target_state(tmp_path)
    if step == "health-check":
        # The load committed before the kill: the re-run sees the same content and loads nothing new.
        assert (rows, distinct, deliveries) == (300, 300, 1)
        assert runs == ["crashed", "escalated"]
    else:
        assert (rows, distinct, deliveries) == (300, 300, 1)
        assert runs == ["crashed", "success"]


def test_killed_inside_the_load_transaction_leaves_the_target_as_before(tmp_path):
    deliver(tmp_path / "in", DAY, rows_for(DAY, count=300))
    assert run_in_process(tmp_path, "-", DAY).stdout.strip() == "success"
    day2 = DAY + dt.timedelta(days=1)
    deliver(tmp_path / "in", day2, rows_for(day2, first_id=1000, count=250))
    first = run_in_process(tmp_path, killer(tmp_path / "kill", "load-target", KILL_IN_LOAD), day2)
    assert first.returncode == -9, first.stderr
    (rows, distinct), runs, deliveries = target_state(tmp_path)
    assert (rows, distinct, deliveries) == (300, 300, 1)  # as before the load: nothing half-loaded
    second = run_in_process(tmp_path, "-", day2)
    assert second.stdout.strip() == "success", second.stderr
    (rows, distinct), runs, deliveries = target_state(tmp_path)
    assert (rows, distinct, deliveries) == (550, 550, 2)
    assert runs == ["success", "crashed", "success"]


def test_a_full_staging_disk_fails_cleanly_and_loads_nothing(sales, tmp_path, monkeypatch):
    deliver(tmp_path / "in", DAY, rows_for(DAY, count=200_000))
    monkeypatch.setenv("HEAL_MEMORY_LIMIT", "4MB")
    monkeypatch.setenv("HEAL_TEMP_DIR", str(tmp_path / "spill"))
    from orchestrator.ledger import Ledger
    from tools.sinks import DuckDBSink

    sink = DuckDBSink(sales.target.removeprefix("duckdb:///"))
    sink.con.execute("SET max_temp_directory_size = '64KB'")  # the staging disk is full
    result = run_pipeline(sales, run_date=DAY, sink=sink, sleep=lambda s: None)
    assert result.status == "escalated" and result.counts["loaded"] == 0
    assert sink.query("SELECT count(*) FROM information_schema.tables WHERE table_name = 'sales'")[0][0] == 0
    attempts = Ledger(sink).attempts(result.run_id)
    failed = [c for a in attempts for c in a["verdict"]["criteria"] if not c["pass"]]
    assert any("Memory" in str(c["observed"]) or "space" in str(c["observed"]) for c in failed)
    # Out of room is the machine's problem, not the delivery's: retried as transient, never "unreadable".
    assert {a["verdict"]["failure_class"] for a in attempts if not a["verdict"]["pass"]} == {"transient"}
    sink.con.execute("RESET max_temp_directory_size")
    sink.close()
    monkeypatch.delenv("HEAL_MEMORY_LIMIT")
    again = run_pipeline(sales, run_date=DAY, sleep=lambda s: None)  # space again: the work gets done
    assert again.status == "success" and again.counts["loaded"] == 200_000
