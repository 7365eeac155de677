"""One run per pipeline and date at a time: a lock in the ledger."""

import os
import subprocess
import sys

import pytest

from orchestrator.ledger import Ledger, RunLocked
from orchestrator.run import run_pipeline
from tests.conftest import DAY, REPO, deliver, rows_for
from tools.sinks import open_sink


def test_a_second_run_of_the_same_day_exits_with_a_clear_message(sales, tmp_path):
    deliver(tmp_path / "in", DAY, rows_for(DAY))
    sink = open_sink(sales.target)
    Ledger(sink).acquire_lock("sales", DAY, "other-run")
    with pytest.raises(RunLocked, match="another run \\(other-run, pid"):
        run_pipeline(sales, run_date=DAY, sink=sink)
    assert sink.query("SELECT count(*) FROM heal.runs")[0][0] == 0  # nothing started
    Ledger(sink).release_lock("sales", DAY, "other-run")
    assert run_pipeline(sales, run_date=DAY, sink=sink).status == "success"


def test_a_lock_left_by_a_dead_process_is_taken_over(sales, tmp_path):
    deliver(tmp_path / "in", DAY, rows_for(DAY))
    sink = open_sink(sales.target)
    ledger = Ledger(sink)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    ledger.start_run("crashed-run", pipeline="sales", run_date=DAY, mode="autopilot", source="x")
    import socket

    sink.execute("INSERT INTO heal.locks VALUES (?, ?, ?, ?, ?, now()::TIMESTAMP)",
                 ("sales", DAY, "crashed-run", socket.gethostname(), int(dead.stdout)))
    result = run_pipeline(sales, run_date=DAY, sink=sink)
    assert result.status == "success"
    assert ledger.run("crashed-run").status == "crashed"
    assert sink.query("SELECT count(*) FROM heal.locks")[0][0] == 0


def test_the_lock_is_released_after_every_run_and_other_days_are_free(sales, tmp_path):
    sink = open_sink(sales.target)
    Ledger(sink).acquire_lock("sales", DAY.replace(day=1), "yesterday")
    result = run_pipeline(sales, run_date=DAY, sink=sink, sleep=lambda s: None)  # no file: escalates
    assert result.status == "escalated"
    assert sink.query("SELECT run_id FROM heal.locks")[0][0] == "yesterday"


def test_heal_run_exits_5_while_another_process_holds_the_lock(sales, tmp_path):
    deliver(tmp_path / "in", DAY, rows_for(DAY))
    target = sales.target
    sink = open_sink(target)
    Ledger(sink).acquire_lock("sales", DAY, "held-by-test")  # this process is alive
    sink.close()
    out = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "run", "pipelines/sales.yaml", "--date", str(DAY),
         "--source", str(tmp_path / "in" / f"{DAY}.csv"), "--target", target],
        capture_output=True, text=True, cwd=REPO, timeout=60, env={**os.environ},
    )
    assert out.returncode == 5, out.stderr
    assert "another run (held-by-test" in out.stderr and "Traceback" not in out.stderr


def test_a_duckdb_file_open_in_another_process_is_a_lock_too(sales, tmp_path):
    deliver(tmp_path / "in", DAY, rows_for(DAY))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ok', flush=True); "
                               "time.sleep(30)", sales.target.removeprefix("duckdb:///")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ok"
        out = subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", "run", "pipelines/sales.yaml", "--date", str(DAY),
             "--source", str(tmp_path / "in" / f"{DAY}.csv"), "--target", sales.target],
            capture_output=True, text=True, cwd=REPO, timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert out.returncode == 5, out.stderr
    assert "wait for it to finish" in out.stderr
