"""tools.postgres.PostgresSink against a real PostgreSQL, then the autopilot end to end on it.

Each test gets its own database (CREATE DATABASE heal_test_<random>, dropped afterwards), so the
``heal`` ledger schema and the target tables never collide. Skipped when PostgreSQL is unreachable.
"""

from __future__ import annotations

import datetime as dt
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from orchestrator.demo import sales_rows, write_sales_csv
from orchestrator.ledger import Ledger
from orchestrator.pipeline import Pipeline, load_pipeline
from orchestrator.run import run_pipeline
from tools.postgres import PostgresSink, pg_type, to_pyformat
from tools.sinks import DuckDBSink, load_and_verify, open_sink
from tools.verdict import TargetError

REPO = Path(__file__).resolve().parent.parent
DAY = dt.date(2026, 11, 2)
SALES = [("sale_id", "BIGINT"), ("date", "DATE"), ("amount", "DECIMAL(18,2)"), ("product_id", "VARCHAR")]


@pytest.fixture
def db(pg_url: str) -> Iterator[psycopg.Connection]:
    """A second, independent connection: what it sees is what was committed."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def sink(pg_url: str) -> Iterator[PostgresSink]:
    s = PostgresSink(pg_url)
    yield s
    s.close()


def stage(sink: PostgresSink | DuckDBSink, sql: str, name: str = "st") -> str:
    sink.working_connection().execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
    return name


def sales_stage(first: int, count: int, *, bump: str = "0") -> str:
    return (f"SELECT i::BIGINT AS sale_id, DATE '2026-11-02' + (i % 3)::INTEGER AS date, "
            f"(i + 0.25 + {bump})::DECIMAL(18,2) AS amount, 'N-' || i AS product_id "
            f"FROM range({first}, {first + count}) r(i)")


# --- placeholders and types -----------------------------------------------------------------

def test_question_marks_become_placeholders_only_outside_quotes_and_percent_is_escaped():
    sql = "SELECT '?', \"a?%\", ? , '100%' || ? -- why?\n/* ? */ $$?$$ $t$?$t$ E'\\'?' 5 % 2"
    assert to_pyformat(sql) == (
        "SELECT '?', \"a?%%\", %s , '100%%' || %s -- why?\n/* ? */ $$?$$ $t$?$t$ E'\\'?' 5 %% 2")


def test_query_with_question_marks_and_percent_in_literals(sink):
    row = sink.query("SELECT '?' AS q, ? AS a, '100%' AS p, ? || '%' AS b, 7 % 4 AS m", ("x", "y"))
    assert row == [("?", "x", "100%", "y%", 3)]
    assert sink.query("SELECT '%s?'") == [("%s?",)]  # no parameters: the text goes as it is


def test_duckdb_types_map_to_postgres_types():
    assert [pg_type(t) for t in ("BIGINT", "INTEGER", "DECIMAL(18,2)", "DOUBLE", "VARCHAR", "DATE",
                                 "TIMESTAMP", "BOOLEAN")] == [
        "BIGINT", "INTEGER", "NUMERIC(18,2)", "DOUBLE PRECISION", "TEXT", "DATE", "TIMESTAMP", "BOOLEAN"]
    with pytest.raises(TargetError, match="no PostgreSQL column type"):
        pg_type("INTEGER[]")


# --- load, upsert, conflicts ------------------------------------------------------------------

TRICKY = """SELECT * FROM (VALUES
    (1, 7, 1.25::DECIMAL(18,2), 0.1::DOUBLE, 'plain', DATE '2026-11-02', TIMESTAMP '2026-11-02 10:11:12.345678', true),
    (2, NULL, NULL, 1e300::DOUBLE, '', NULL, NULL, false),
    (3, -1, -0.01::DECIMAL(18,2), 'inf'::DOUBLE, 'a,b "quoted" and
a newline\r\n', DATE '1999-12-31', TIMESTAMP '2000-01-01 00:00:00', NULL),
    (4, 0, 9999999999999999.99::DECIMAL(18,2), (1/3)::DOUBLE, '\\.', DATE '2026-02-28', NULL, true),
    (5, 2147483647, 0::DECIMAL(18,2), NULL, '  ünïcødé ✓ \\N NULL  ', NULL, NULL, NULL),
    (6, NULL, NULL, -0.0::DOUBLE, NULL, NULL, NULL, NULL)
) v(id, qty, price, ratio, note, day, stamp, flag)"""
TRICKY_COLUMNS = [("id", "INTEGER"), ("qty", "INTEGER"), ("price", "DECIMAL(18,2)"), ("ratio", "DOUBLE"),
                  ("note", "VARCHAR"), ("day", "DATE"), ("stamp", "TIMESTAMP"), ("flag", "BOOLEAN")]


def test_load_creates_a_typed_table_and_every_value_round_trips(sink, db):
    sink.working_connection().execute(f"CREATE TEMP TABLE st AS SELECT id::BIGINT AS id, * EXCLUDE (id) FROM ({TRICKY})")
    columns = [("id", "BIGINT"), *TRICKY_COLUMNS[1:]]
    result = sink.load("st", table="tricky", columns=columns, key=["id"], mode="insert", run_id="run-1")
    assert (result.inserted, result.updated, result.replaced) == (6, 0, ())
    types = db.execute("SELECT column_name, format_type(atttypid, atttypmod) FROM information_schema.columns c "
                       "JOIN pg_attribute a ON a.attrelid = 'public.tricky'::regclass AND a.attname = c.column_name "
                       "WHERE table_name = 'tricky' ORDER BY ordinal_position").fetchall()
    assert types == [("id", "bigint"), ("qty", "integer"), ("price", "numeric(18,2)"), ("ratio", "double precision"),
                     ("note", "text"), ("day", "date"), ("stamp", "timestamp without time zone"), ("flag", "boolean"),
                     ("_heal_run_id", "text"), ("_heal_loaded_at", "timestamp without time zone")]
    names = ", ".join(c for c, _ in columns)
    got = db.execute(f"SELECT {names} FROM tricky ORDER BY id").fetchall()
    want = sink.working_connection().execute(f"SELECT {names} FROM st ORDER BY id").fetchall()
    assert got == want  # NULL vs '' kept apart, quotes, newlines, "\." and unicode intact
    assert db.execute("SELECT DISTINCT _heal_run_id FROM tricky").fetchall() == [("run-1",)]
    unique = db.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'tricky'").fetchall()
    assert len(unique) == 1 and "UNIQUE" in unique[0][0] and "(id)" in unique[0][0]


def test_upsert_replaces_rows_by_key_and_returns_the_old_versions(sink, db):
    sink.load(stage(sink, sales_stage(1, 5)), table="sales", columns=SALES, key=["sale_id"], mode="insert", run_id="r1")
    stage(sink, f"{sales_stage(4, 3, bump='100')}")  # keys 4, 5 again (new amounts) and a new key 6
    result = sink.load("st", table="sales", columns=SALES, key=["sale_id"], mode="upsert", run_id="r2")
    assert (result.inserted, result.updated) == (1, 2)
    assert [(r["sale_id"], r["amount"], r["_heal_run_id"]) for r in result.replaced] == [
        (4, Decimal("4.25"), "r1"), (5, Decimal("5.25"), "r1")]
    rows = db.execute("SELECT sale_id, amount, _heal_run_id FROM sales ORDER BY sale_id").fetchall()
    assert rows == [(1, Decimal("1.25"), "r1"), (2, Decimal("2.25"), "r1"), (3, Decimal("3.25"), "r1"),
                    (4, Decimal("104.25"), "r2"), (5, Decimal("105.25"), "r2"), (6, Decimal("106.25"), "r2")]


def test_upsert_on_a_table_without_a_unique_index_deletes_then_inserts(sink, db):
    db.execute("CREATE TABLE sales (sale_id BIGINT, date DATE, amount NUMERIC(18,2), product_id TEXT)")
    db.execute("INSERT INTO sales VALUES (1, '2026-11-01', 1.00, 'old'), (2, '2026-11-01', 2.00, 'old')")
    result = sink.load(stage(sink, sales_stage(2, 2, bump="50")), table="sales", columns=SALES, key=["sale_id"],
                       mode="upsert", run_id="r2")
    assert (result.inserted, result.updated) == (1, 1)
    assert result.replaced[0]["product_id"] == "old"
    assert db.execute("SELECT sale_id, amount, product_id, _heal_run_id FROM sales ORDER BY 1").fetchall() == [
        (1, Decimal("1.00"), "old", None), (2, Decimal("52.25"), "N-2", "r2"), (3, Decimal("53.25"), "N-3", "r2")]


def test_the_same_loads_leave_postgres_and_duckdb_with_the_same_rows(sink, tmp_path):
    """Insert, schema evolution, then an upsert whose rows lack the new column: both targets agree."""
    duck = DuckDBSink(tmp_path / "t.duckdb")
    extra = [*SALES, ("channel", "VARCHAR")]
    steps = [
        (sales_stage(1, 4), SALES, "insert"),
        (f"SELECT *, 'web' AS channel FROM ({sales_stage(5, 3)})", extra, "insert"),
        (sales_stage(3, 4, bump="0.5"), SALES, "upsert"),  # keys 3..6: 5 and 6 lose their channel
    ]
    try:
        for n, (sql, columns, mode) in enumerate(steps):
            for target in (sink, duck):
                stage(target, sql)
                done = load_and_verify(target, "st", table="sales", columns=columns, key=["sale_id"], mode=mode,
                                       run_id=f"r{n}")
                assert done.rows_tagged == done.rows_sent
        query = "SELECT sale_id, date, amount, product_id, channel, _heal_run_id FROM {} ORDER BY sale_id"
        assert sink.query(query.format("sales")) == duck.query(query.format("sales"))
        assert sink.query("SELECT sale_id FROM sales WHERE channel IS NOT NULL") == [(7,)]
    finally:
        duck.close()


def test_key_conflicts_counts_staged_rows_whose_key_is_already_loaded(sink):
    stage(sink, sales_stage(1, 5))
    assert sink.key_conflicts("st", table="sales", key=["sale_id"]) == 0  # no table yet
    sink.load("st", table="sales", columns=SALES, key=["sale_id"], mode="insert", run_id="r1")
    stage(sink, sales_stage(4, 10))
    assert sink.key_conflicts("st", table="sales", key=["sale_id"]) == 2
    assert sink.key_conflicts("st", table="sales", key=["sale_id", "date"]) == 2
    assert sink.key_conflicts("st", table="sales", key=[]) == 0
    assert sink.query("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'heal_keys_%'") == [(0,)]


def test_key_conflicts_skips_copying_the_keys_only_when_no_loaded_key_is_in_the_staged_range(sink, db):
    sink.load(stage(sink, sales_stage(100, 10)), table="sales", columns=SALES, key=["sale_id"], mode="insert",
              run_id="r1")
    cases = [
        (sales_stage(200, 50), ["sale_id"], 0),  # above every loaded key: proven by one range probe
        (sales_stage(1, 50), ["sale_id"], 0),  # below them
        (sales_stage(50, 200), ["sale_id"], 10),  # around them: the keys are copied and joined
        ("SELECT NULL::BIGINT AS sale_id, DATE '2026-11-02' AS date", ["sale_id"], 0),  # NULL matches nothing
        ("SELECT 105::VARCHAR AS sale_id, DATE '2026-11-02' AS date", ["sale_id"], 1),  # text vs bigint: no probe
        ("SELECT 105::BIGINT AS sale_id, DATE '2026-11-05' AS date", ["date", "sale_id"], 0),  # a date, no overlap
        ("SELECT 105::BIGINT AS sale_id, DATE '2026-11-02' AS date", ["date", "sale_id"], 1),
        ("SELECT 105::BIGINT AS sale_id, DATE '2026-11-03' AS date", ["date", "sale_id"], 0),
        ("SELECT 105::BIGINT AS sale_id, 'N-105' AS product_id", ["product_id"], 1),  # text: collations may differ
    ]
    for sql, key, want in cases:
        stage(sink, sql)
        assert sink.key_conflicts("st", table="sales", key=key) == want, (sql, key)
    assert sink.query("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'heal_keys_%'") == [(0,)]


def test_a_new_table_gets_its_index_after_the_copy_and_our_lineage_defaults_after_the_first_run(sink, db):
    before = sink.working_connection().execute("SELECT current_setting('async_threads')").fetchone()
    sink.load(stage(sink, sales_stage(1, 1000)), table="sales", columns=SALES, key=["sale_id"], mode="upsert",
              run_id="r1")
    assert sink.working_connection().execute("SELECT current_setting('async_threads')").fetchone() == before
    defaults = dict(db.execute(
        "SELECT a.attname, pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a LEFT JOIN pg_attrdef d "
        "ON d.adrelid = a.attrelid AND d.adnum = a.attnum WHERE a.attrelid = 'public.sales'::regclass "
        "AND a.attname LIKE '\\_heal%'").fetchall())
    assert defaults["_heal_run_id"] is None and "now()" in defaults["_heal_loaded_at"]
    assert db.execute("SELECT count(*) FROM pg_index WHERE indrelid = 'public.sales'::regclass "
                      "AND indisunique AND indisvalid").fetchone() == (1,)
    sink.load(stage(sink, sales_stage(1001, 10)), table="sales", columns=SALES, key=["sale_id"], mode="insert",
              run_id="r2")
    got = db.execute("SELECT _heal_run_id, count(*), count(DISTINCT _heal_loaded_at) FROM sales GROUP BY 1 "
                     "ORDER BY 1").fetchall()
    assert got == [("r1", 1000, 1), ("r2", 10, 1)]
    first, second = db.execute("SELECT min(_heal_loaded_at), max(_heal_loaded_at) FROM sales").fetchone()
    assert first < second


def test_duplicate_staged_keys_never_reach_a_new_table(sink, db):
    stage(sink, f"SELECT * FROM ({sales_stage(1, 5)}) UNION ALL SELECT * FROM ({sales_stage(3, 1)})")
    with pytest.raises(TargetError, match="could not create unique index"):
        sink.load("st", table="sales", columns=SALES, key=["sale_id"], mode="insert", run_id="r1")
    assert db.execute("SELECT to_regclass('public.sales')").fetchone() == (None,)


def test_a_load_nested_in_an_outer_transaction_creates_and_fills_its_table_in_a_savepoint(sink, db):
    with sink.transaction():
        sink.execute("CREATE TABLE other (x INT)")
        sink.load(stage(sink, sales_stage(1, 50)), table="sales", columns=SALES, key=["sale_id"], mode="insert",
                  run_id="r1")
        assert db.execute("SELECT to_regclass('public.sales')").fetchone() == (None,)  # not committed yet
    assert db.execute("SELECT count(*) FROM sales").fetchone() == (50,)


def test_verify_counts_duplicate_keys_of_this_run_with_or_without_a_unique_index(sink, db):
    # Two NULL keys group together (as GROUP BY does), though the unique index lets both in.
    nulls = "SELECT NULL::BIGINT AS sale_id, DATE '2026-11-02' AS date, 1.5::DECIMAL(18,2) AS amount, 'x' AS product_id"
    stage(sink, f"{nulls} UNION ALL {nulls} UNION ALL SELECT * FROM ({sales_stage(1, 3)})")
    with pytest.raises(TargetError, match="5 rows tagged for 5 sent, 1 duplicate keys; rolled back"):
        load_and_verify(sink, "st", table="sales", columns=SALES, key=["sale_id"], mode="insert", run_id="r1")
    # No unique index: a key loaded by an earlier run and again by this one is caught, and
    # rolled back; a duplicate no row of this run takes part in is the earlier run's business.
    db.execute("CREATE TABLE sales (sale_id BIGINT, date DATE, amount NUMERIC(18,2), product_id TEXT)")
    db.execute("INSERT INTO sales VALUES (1, '2026-11-01', 1, 'old'), (1, '2026-11-01', 1, 'old')")
    done = load_and_verify(sink, stage(sink, sales_stage(10, 3)), table="sales", columns=SALES, key=["sale_id"],
                           mode="insert", run_id="r2")
    assert (done.rows_tagged, done.duplicate_keys) == (3, 0)
    with pytest.raises(TargetError, match="2 rows tagged for 2 sent, 1 duplicate keys; rolled back"):
        load_and_verify(sink, stage(sink, sales_stage(12, 2)), table="sales", columns=SALES, key=["sale_id"],
                        mode="insert", run_id="r3")
    assert db.execute("SELECT count(*) FROM sales").fetchone() == (5,)


def test_insert_from_copies_staged_rows_into_an_existing_table(sink, db):
    db.execute("CREATE TABLE notes (n BIGINT, body TEXT, extra TEXT)")
    stage(sink, "SELECT i AS n, 'note ' || i AS body FROM range(1000) r(i)")
    assert sink.insert_from("st", table="notes", columns=["n", "body"]) == 1000
    assert db.execute("SELECT count(*), count(extra), sum(n) FROM notes").fetchone() == (1000, 0, 499500)
    # One text column: a lone "\." line would end a CSV COPY early unless every value is quoted.
    db.execute("CREATE TABLE lines (body TEXT)")
    stage(sink, "SELECT * FROM (VALUES ('a'), ('\\.'), (''), (NULL), ('b')) v(body)")
    assert sink.insert_from("st", table="lines", columns=["body"]) == 5
    assert set(db.execute("SELECT body FROM lines").fetchall()) == {("a",), ("\\.",), ("",), (None,), ("b",)}
    # Several columns: values are quoted only where CSV needs it; "\." first on a line is still data.
    db.execute("CREATE TABLE pairs (body TEXT, n INT)")
    stage(sink, "SELECT * FROM (VALUES ('\\.', 1), ('\\.', NULL), ('', 2), (NULL, 3), ('a,\"b\"\n\\.\n', 4)) v(body, n)")
    assert sink.insert_from("st", table="pairs", columns=["body", "n"]) == 5
    assert sorted(db.execute("SELECT n, body FROM pairs").fetchall(), key=str) == sorted(
        [(1, "\\."), (None, "\\."), (2, ""), (3, None), (4, 'a,"b"\n\\.\n')], key=str)


def test_schema_evolution_adds_new_columns_nullable(sink, db):
    long_name = "a_vendor_column_name_much_longer_than_the_sixty_three_bytes_postgres_keeps"
    sink.load(stage(sink, sales_stage(1, 2)), table="sales", columns=SALES, key=["sale_id"], mode="insert", run_id="r1")
    for n, first in enumerate((3, 5)):  # the second load finds the (clipped) long column already there
        stage(sink, f"SELECT *, 'web' AS channel, 'x' AS {long_name} FROM ({sales_stage(first, 2)})")
        sink.load("st", table="sales", columns=[*SALES, ("channel", "VARCHAR"), (long_name, "VARCHAR")],
                  key=["sale_id"], mode="insert", run_id=f"r{n + 2}")
    assert sink.table_columns("sales")[4:] == ["_heal_run_id", "_heal_loaded_at", "channel", long_name[:63]]
    assert db.execute("SELECT sale_id, channel FROM sales ORDER BY 1").fetchall() == [
        (1, None), (2, None), (3, "web"), (4, "web"), (5, "web"), (6, "web")]


def test_a_load_stamps_its_rows_with_one_utc_time_with_or_without_our_default(sink, db):
    db.execute("CREATE TABLE theirs (sale_id BIGINT, date DATE, amount NUMERIC(18,2), product_id TEXT)")
    db.execute("INSERT INTO theirs VALUES (0, '2026-11-01', 1, 'old')")
    for table in ("ours", "theirs"):  # ours: created with a DEFAULT, so the COPY leaves the column out
        sink.load(stage(sink, sales_stage(1, 500)), table=table, columns=SALES, key=["sale_id"], mode="insert",
                  run_id="r1")
    now = db.execute("SELECT now() AT TIME ZONE 'UTC'").fetchone()[0]
    for table in ("ours", "theirs"):
        stamps = db.execute(f"SELECT DISTINCT _heal_loaded_at FROM {table} WHERE _heal_run_id = 'r1'").fetchall()
        assert len(stamps) == 1 and abs((now - stamps[0][0]).total_seconds()) < 60
    assert db.execute("SELECT _heal_run_id, _heal_loaded_at FROM theirs WHERE sale_id = 0").fetchone() == (None, None)


def test_hostile_identifiers_are_data(sink, db):
    db.execute("CREATE TABLE victim (x INT)")
    hostile = ['amount"; DROP TABLE victim; --', "what?", "100%s", "Mixed Case", "a;b", "ünï"]
    select = ", ".join(f"'{i}' AS \"{name.replace(chr(34), chr(34) * 2)}\"" for i, name in enumerate(hostile))
    stage(sink, f"SELECT *, {select} FROM ({sales_stage(1, 3)})")
    columns = [*SALES, *((name, "VARCHAR") for name in hostile)]
    table = 'odd"schema.we"ird; DROP TABLE victim; --'
    for mode in ("insert", "upsert"):
        load_and_verify(sink, "st", table=table, columns=columns, key=["sale_id", "what?"], mode=mode, run_id=mode)
    assert sink.key_conflicts("st", table=table, key=["sale_id", "what?"]) == 3
    assert sink.table_columns(table)[:len(columns)] == [c for c, _ in columns]
    got = db.execute('SELECT "amount""; DROP TABLE victim; --", "100%s", "ünï", _heal_run_id '
                     'FROM "odd""schema"."we""ird; DROP TABLE victim; --" ORDER BY sale_id').fetchall()
    assert got == [("0", "2", "5", "upsert")] * 3
    assert db.execute("SELECT count(*) FROM victim").fetchone() == (0,)


# --- transactions and failures --------------------------------------------------------------

def test_a_failing_after_callback_rolls_back_the_load_and_its_ledger_writes(sink, db):
    sink.load(stage(sink, sales_stage(1, 3)), table="sales", columns=SALES, key=["sale_id"], mode="insert", run_id="r1")
    Ledger(sink)
    stage(sink, f"SELECT *, 'new' AS channel FROM ({sales_stage(4, 3)})")

    def record_then_fail() -> None:
        sink.execute("INSERT INTO heal.deliveries VALUES (?, ?, ?, ?, ?)", ("sales", "fp", "r2", 3, dt.datetime.now()))
        raise TargetError("conservation failed")

    with pytest.raises(TargetError, match="conservation failed"):
        sink.load("st", table="sales", columns=[*SALES, ("channel", "VARCHAR")], key=["sale_id"], mode="insert",
                  run_id="r2", after=record_then_fail)
    assert db.execute("SELECT count(*) FROM sales").fetchone() == (3,)
    assert "channel" not in sink.table_columns("sales")  # the ALTER TABLE rolled back too
    assert db.execute("SELECT count(*) FROM heal.deliveries").fetchone() == (0,)


def test_after_runs_inside_the_load_transaction_and_commits_with_it(sink, db):
    ledger = Ledger(sink)
    stage(sink, "SELECT 'r1' AS run_id, 'sales' AS pipeline, 7::BIGINT AS row_number, 'null_critical' AS reasons, "
                "'{}' AS row_data", name="quarantine_out")
    seen_inside: list[tuple[int, int]] = []

    def commit_hook() -> None:
        ledger.record_delivery(pipeline="sales", fingerprint="fp", run_id="r1", rows_loaded=3)
        sink.insert_from("quarantine_out", table="heal.quarantine",
                         columns=["run_id", "pipeline", "row_number", "reasons", "row_data"])
        outside = db.execute("SELECT (SELECT count(*) FROM heal.deliveries), "
                             "(SELECT count(*) FROM pg_tables WHERE tablename = 'sales')").fetchone()
        seen_inside.append(outside)

    sink.load(stage(sink, sales_stage(1, 3)), table="sales", columns=SALES, key=["sale_id"], mode="insert",
              run_id="r1", after=commit_hook)
    assert seen_inside == [(0, 0)]  # another connection saw nothing before COMMIT
    assert ledger.loaded_fingerprints("sales") == {"fp"}
    assert ledger.quarantined("r1") == [{"row_number": 7, "reasons": ["null_critical"], "row": {}}]
    assert db.execute("SELECT count(*) FROM sales").fetchone() == (3,)


def test_a_database_error_mid_load_rolls_back_and_becomes_a_target_error(sink, db):
    sink.load(stage(sink, sales_stage(1, 3)), table="sales", columns=SALES, key=["sale_id"], mode="insert", run_id="r1")
    # A key already loaded, in insert mode: the unique index refuses the COPY.
    with pytest.raises(TargetError, match="duplicate key value") as err:
        sink.load(stage(sink, sales_stage(3, 5)), table="sales", columns=SALES, key=["sale_id"], mode="insert",
                  run_id="r2")
    assert "\n" not in str(err.value) and "DETAIL" not in str(err.value)
    # A value the target column's type cannot hold, after a column was added in the same transaction.
    stage(sink, "SELECT 9::BIGINT AS sale_id, DATE '2026-11-02' AS date, 'lots' AS amount, 'N-9' AS product_id, "
                "'web' AS channel")
    with pytest.raises(TargetError, match="invalid input syntax for type numeric"):
        sink.load("st", table="sales", columns=[*SALES[:2], ("amount", "VARCHAR"), SALES[3], ("channel", "VARCHAR")],
                  key=["sale_id"], mode="upsert", run_id="r3")
    assert db.execute("SELECT sale_id, _heal_run_id FROM sales ORDER BY 1").fetchall() == [(1, "r1"), (2, "r1"), (3, "r1")]
    assert "channel" not in sink.table_columns("sales")
    assert sink.query("SELECT count(*) FROM sales") == [(3,)]  # the connection is usable again


def test_statements_outside_a_transaction_commit_at_once_and_nested_blocks_are_savepoints(sink, db):
    sink.execute("CREATE TABLE t (x INT)")
    sink.execute("INSERT INTO t VALUES (?)", (1,))
    assert db.execute("SELECT x FROM t").fetchall() == [(1,)]
    with sink.transaction():
        sink.execute("INSERT INTO t VALUES (?)", (2,))
        with pytest.raises(TargetError), sink.transaction():
            sink.execute("INSERT INTO t VALUES (?)", (3,))
            sink.execute("INSERT INTO t VALUES (?)", ("not a number",))
        assert db.execute("SELECT count(*) FROM t").fetchone() == (1,)
    assert db.execute("SELECT x FROM t ORDER BY x").fetchall() == [(1,), (2,)]


def test_the_password_never_reaches_the_url_attribute_or_an_error(pg_url, monkeypatch):
    secret = "pw_s3cret_value"
    parts = urlsplit(pg_url)

    def url(port: object) -> str:
        return parts._replace(netloc=f"{parts.username}:{secret}@{parts.hostname}:{port}").geturl()

    with_password = url(parts.port or 5432)
    sink = open_sink(with_password)  # trust authentication: any password connects
    try:
        assert secret not in sink.url and secret not in repr(sink) and ":***@" in sink.url
        with pytest.raises(TargetError) as err:
            sink.query(f"SELECT {secret}")  # the server echoes the name back
        assert secret not in str(err.value) and '"***"' in str(err.value)
    finally:
        sink.close()
    for bad in (url("notaport"), url(1)):  # a URL libpq rejects, a port nobody listens on
        with pytest.raises(TargetError) as err:
            PostgresSink(bad)
        assert secret not in str(err.value)
    monkeypatch.setenv("PGPASSWORD", "pw_from_environment")
    sink = PostgresSink(pg_url)
    try:
        with pytest.raises(TargetError) as err:
            sink.query("SELECT pw_from_environment")
        assert "pw_from_environment" not in str(err.value)
    finally:
        sink.close()


def test_the_ledger_schema_is_created_in_postgres(sink, db):
    ledger = Ledger(sink)
    Ledger(sink)  # idempotent
    ledger.start_run("r1", pipeline="sales", run_date=DAY, mode="autopilot", source="in.csv")
    ledger.finish_run("r1", status="success", fingerprint="fp", counts={"read": 2, "loaded": 2}, conserved=True,
                      summary="100% loaded?")
    assert [(r.run_id, r.status, r.rows_loaded, r.summary) for r in ledger.runs()] == [
        ("r1", "success", 2, "100% loaded?")]
    tables = {r[0] for r in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'heal'")}
    assert tables >= {"runs", "attempts", "remediations", "quarantine", "deliveries", "schema_mappings", "incidents"}


# --- end to end: the autopilot on PostgreSQL ---------------------------------------------------

def sales_pipeline(tmp_path: Path, url: str) -> Pipeline:
    return load_pipeline(REPO / "pipelines" / "sales.yaml").with_overrides(
        source=str(tmp_path / "in" / "{date}.csv"), target=url)


def deliver(tmp_path: Path, day: dt.date, rows: list[list[str]], header: list[str] | None = None) -> Path:
    return write_sales_csv(tmp_path / "in" / f"{day}.csv", rows, **({"header": header} if header else {}))


def test_autopilot_week_on_postgres(tmp_path, pg_url, db):
    pipeline = sales_pipeline(tmp_path, pg_url)
    days = [DAY + dt.timedelta(days=i) for i in range(4)]
    rng = random.Random(3)
    day1 = sales_rows(days[0], 1, 100, rng)
    deliver(tmp_path, days[0], day1)
    first = run_pipeline(pipeline, run_date=days[0])
    assert (first.status, first.counts["loaded"]) == ("success", 100)
    got = db.execute("SELECT sale_id, date::text, amount::text, product_id FROM sales ORDER BY sale_id").fetchall()
    assert [[str(r[0]), *r[1:]] for r in got] == day1

    nulls = sales_rows(days[1], 101, 100, rng)
    for i in (0, 40, 80):
        nulls[i][2] = ""
    deliver(tmp_path, days[1], nulls)
    second = run_pipeline(pipeline, run_date=days[1])
    assert (second.status, second.counts["loaded"], second.counts["quarantined"]) == ("partial_failure", 97, 3)
    quarantined = db.execute("SELECT row_number, reasons FROM heal.quarantine WHERE run_id = %s ORDER BY 1",
                             (second.run_id,)).fetchall()
    assert len(quarantined) == 3 and all("amount" in reasons for _, reasons in quarantined)

    corrections = [[r[0], r[1], "4321.00", r[3]] for r in day1[:10]]
    deliver(tmp_path, days[2], sales_rows(days[2], 201, 90, rng) + corrections)
    third = run_pipeline(pipeline, run_date=days[2])
    assert third.status == "healed" and "upsert-load" in third.remediations
    assert db.execute("SELECT count(*), count(DISTINCT sale_id) FROM sales").fetchone() == (287, 287)
    assert db.execute("SELECT amount FROM sales WHERE sale_id <= 10").fetchall() == [(Decimal("4321.00"),)] * 10

    (tmp_path / "in" / f"{days[3]}.csv").write_bytes((tmp_path / "in" / f"{days[0]}.csv").read_bytes())
    fourth = run_pipeline(pipeline, run_date=days[3])
    assert (fourth.status, fourth.counts["loaded"]) == ("escalated", 0)
    assert db.execute("SELECT count(*) FROM sales").fetchone() == (287,)

    runs = db.execute("SELECT run_id, status, rows_loaded, conserved FROM heal.runs ORDER BY run_date").fetchall()
    assert runs == [(first.run_id, "success", 100, True), (second.run_id, "partial_failure", 97, True),
                    (third.run_id, "healed", 100, True), (fourth.run_id, "escalated", 0, True)]
    steps = db.execute("SELECT step, passed, failure_class FROM heal.attempts WHERE run_id = %s ORDER BY seq",
                       (third.run_id,)).fetchall()
    assert ("load-target", False, "load_conflict") in steps and ("upsert-load", True, None) in steps
    assert db.execute("SELECT count(*) FROM heal.deliveries").fetchone() == (3,)


@pytest.mark.parametrize("sample", [None, 100], ids=["every-row", "sampled"])
def test_a_loaded_run_leaves_column_profiles_in_postgres(tmp_path, pg_url, db, monkeypatch, sample):
    import tools.profile

    if sample:
        monkeypatch.setattr(tools.profile, "QUANTILE_SAMPLE", sample)  # 800 rows: every 8th, by key
    pipeline = sales_pipeline(tmp_path, pg_url)
    rows = sales_rows(DAY, 1, 800, random.Random(5))
    deliver(tmp_path, DAY, rows)
    result = run_pipeline(pipeline, run_date=DAY)
    sink = open_sink(pg_url)
    try:
        amount = Ledger(sink).profiles("sales", before=DAY + dt.timedelta(days=1))[0]["columns"]["amount"]
    finally:
        sink.close()
    values = sorted(float(r[2]) for r in rows)
    assert (result.status, amount["rows"], amount["min"], amount["max"]) == ("success", 800, values[0], values[-1])
    spread = values[-1] - values[0]
    for key, at in (("median", 0.5), ("p05", 0.05), ("p95", 0.95)):
        assert abs(amount[key] - values[int(at * 799)]) < spread / 10, key


def test_autopilot_keeps_a_hostile_extra_column_as_data(tmp_path, pg_url, db):
    hostile = 'x"; DROP TABLE sales; --'
    rows = sales_rows(DAY, 1, 20, random.Random(5))
    deliver(tmp_path, DAY, [[*r, f"v{i}"] for i, r in enumerate(rows)],
            header=["sale_id", "date", "amount", "product_id", hostile])
    result = run_pipeline(sales_pipeline(tmp_path, pg_url), run_date=DAY)
    assert result.status in ("success", "healed") and result.counts["loaded"] == 20
    got = db.execute('SELECT sale_id, "x""; DROP TABLE sales; --" FROM sales ORDER BY sale_id').fetchall()
    assert got == [(int(r[0]), f"v{i}") for i, r in enumerate(rows)]


def _backends(db: psycopg.Connection, dbname: str) -> list[tuple[int, str, str]]:
    return db.execute("SELECT pid, state, query FROM pg_stat_activity WHERE datname = %s AND application_name = 'heal' "
                      "AND pid <> pg_backend_pid()", (dbname,)).fetchall()


@pytest.mark.slow
def test_kill_9_during_the_copy_leaves_nothing_or_everything_and_a_rerun_loads_exactly_once(tmp_path, pg_url, db):
    rows = 300_000
    deliver(tmp_path, DAY, sales_rows(DAY, 1, rows, random.Random(9)))
    dbname = urlsplit(pg_url).path.lstrip("/")
    command = [sys.executable, "-m", "orchestrator.cli", "run", str(REPO / "pipelines" / "sales.yaml"),
               "--date", DAY.isoformat(), "--source", str(tmp_path / "in" / "{date}.csv"), "--target", pg_url]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed_during = None
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        busy = [q for _, state, q in _backends(db, dbname) if state == "active" and q.lstrip().upper().startswith("COPY")
                and "sales" in q]
        if busy:
            proc.send_signal(signal.SIGKILL)
            killed_during = busy[0]
            break
        time.sleep(0.005)
    proc.wait(timeout=30)
    assert killed_during is not None, f"never saw the load's COPY (exit {proc.returncode}): {proc.stderr.read()!r}"
    while _backends(db, dbname):  # the server notices the dead client and rolls back
        assert time.monotonic() < deadline, "the killed run's backend is still there"
        time.sleep(0.05)
    exists = db.execute("SELECT to_regclass('public.sales') IS NOT NULL").fetchone()[0]
    loaded = db.execute("SELECT count(*) FROM sales").fetchone()[0] if exists else 0
    assert loaded in (0, rows)
    assert db.execute("SELECT count(*) FROM heal.deliveries").fetchone()[0] == (1 if loaded else 0)

    again = run_pipeline(sales_pipeline(tmp_path, pg_url), run_date=DAY)
    assert again.status == ("escalated" if loaded else "success")
    assert db.execute("SELECT count(*), count(DISTINCT sale_id), min(sale_id), max(sale_id) FROM sales").fetchone() == (
        rows, rows, 1, rows)
    assert db.execute("SELECT count(*) FROM heal.deliveries").fetchone() == (1,)
    killed = db.execute("SELECT status FROM heal.runs WHERE run_id <> %s", (again.run_id,)).fetchall()
    assert len(killed) == 1 and killed[0][0] not in ("success", "healed", "partial_failure", "escalated")
