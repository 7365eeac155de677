"""PostgreSQL faults during runs: the connection killed mid-load, a lock held on the target
table. Afterwards the target is exact and the next run finishes the work (issue 9)."""

import random
import threading
import time
from dataclasses import replace
from urllib.parse import quote

import psycopg
import pytest

from orchestrator.pipeline import Source
from orchestrator.run import run_pipeline
from tests.conftest import DAY, deliver, rows_for


def pipeline_for(sales, tmp_path, url):
    steps = dict(sales.steps)
    load = steps["load-target"]
    steps["load-target"] = replace(load, retry=replace(load.retry, attempts=3, base_delay=0.01))
    return replace(sales, source=Source(uri=str(tmp_path / "in" / "{date}.csv"), min_bytes=16),
                   target=url, steps=steps, alerts=())


def counts(url):
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*), count(DISTINCT sale_id) FROM public.sales").fetchone()


def test_a_connection_killed_mid_copy_is_retried_and_the_target_is_exact(sales, tmp_path, pg_url):
    deliver(tmp_path / "in", DAY, rows_for(DAY, count=300_000))
    pipeline = pipeline_for(sales, tmp_path, pg_url)
    killed = []

    def killer():
        dbname = pg_url.rsplit("/", 1)[1]
        with psycopg.connect(pg_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not killed:
                rows = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = 'heal' "
                    "AND query ILIKE 'COPY%%sales%%' AND state = 'active'", (dbname,)).fetchall()
                for (pid,) in rows:
                    conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
                    killed.append(pid)
                time.sleep(0.005)

    thread = threading.Thread(target=killer)
    thread.start()
    result = run_pipeline(pipeline, run_date=DAY, sleep=lambda s: None, rng=random.Random(0))
    thread.join()
    assert killed, "the COPY was never seen: the test did not inject its fault"
    loads = [s for s in result.steps if s["step"] == "load-target"]
    assert loads[0]["failure_class"] == "transient" and loads[-1]["passed"]
    assert result.status == "healed"
    assert counts(pg_url) == (300_000, 300_000)


def test_a_lock_held_on_the_target_fails_the_load_cleanly_then_the_next_run_loads(sales, tmp_path, pg_url):
    deliver(tmp_path / "in", DAY, rows_for(DAY, count=100))
    url = pg_url + "?options=" + quote("-c lock_timeout=300ms")
    first_day = replace(pipeline_for(sales, tmp_path, url))
    assert run_pipeline(first_day, run_date=DAY).status == "success"
    day2 = DAY.replace(day=DAY.day + 1)
    deliver(tmp_path / "in", day2, rows_for(day2, first_id=1000, count=100))
    with psycopg.connect(pg_url) as holder:
        holder.execute("LOCK TABLE public.sales IN ACCESS EXCLUSIVE MODE")  # held until the block ends
        result = run_pipeline(first_day, run_date=day2, sleep=lambda s: None)
        holder.rollback()
    assert result.status == "escalated"
    assert {s["failure_class"] for s in result.steps if not s["passed"]} == {"transient"}
    assert counts(pg_url) == (100, 100)  # nothing half-loaded
    again = run_pipeline(first_day, run_date=day2)
    assert again.status == "success"
    assert counts(pg_url) == (200, 200)


@pytest.fixture(autouse=True)
def _fast(monkeypatch):
    monkeypatch.setenv("HEAL_PG_LOCK_TIMEOUT", "5s")
