"""tools.profile.profile_table: one query over a table's rows, the same statistics per column;
quantiles of large tables from a sample of positions."""

from __future__ import annotations

import duckdb
import pytest

from tools.profile import profile_table


def test_numbers_get_their_three_quantiles_from_one_digest_as_from_three():
    con = duckdb.connect()
    con.execute("SET threads = 1")  # approximate quantiles are exact-repeatable on one thread
    con.execute("CREATE TABLE t AS SELECT (i * 7919 % 10007) / 100 AS amount, DATE '2026-11-01' + (i % 5)::INT AS day, "
                "'sku-' || (i % 37) AS sku FROM range(20000) r(i)")
    got = profile_table(con, "t", [("amount", "DECIMAL(18,2)"), ("day", "DATE"), ("sku", "VARCHAR")])
    x = "CAST(amount AS DOUBLE)"
    median, p05, p95 = con.execute(f"SELECT approx_quantile({x}, 0.5), approx_quantile({x}, 0.05), "
                                   f"approx_quantile({x}, 0.95) FROM t").fetchone()
    assert got["amount"] == {"kind": "number", "rows": 20000, "nulls": 0, "distinct": got["amount"]["distinct"],
                             "min": 0.0, "max": 100.06, "mean": got["amount"]["mean"],
                             "median": median, "p05": p05, "p95": p95}
    assert got["day"] == {"kind": "date", "rows": 20000, "nulls": 0, "distinct": 5, "min": "2026-11-01",
                          "max": "2026-11-05"}
    assert got["sku"]["kind"] == "text" and got["sku"]["nulls"] == 0 and list(got["sku"]) == [
        "kind", "rows", "nulls", "distinct", "mean_length"]


def test_a_column_of_nulls_or_no_rows_has_no_quantiles():
    con = duckdb.connect()
    for sql in ("SELECT NULL::BIGINT AS n FROM range(3)", "SELECT 1::BIGINT AS n LIMIT 0"):
        con.execute(f"CREATE OR REPLACE TABLE t AS {sql}")
        got = profile_table(con, "t", [("n", "BIGINT")])["n"]
        assert (got["median"], got["p05"], got["p95"], got["min"]) == (None, None, None, None)


@pytest.mark.parametrize("rows_sql", [
    "SELECT i AS id, (i * 7919 % 100003) / 10 AS amount FROM range(100000) r(i)",
    "SELECT 1 AS id, [10.0, 20.0, 20.0, 20.0, 40.0][i % 5 + 1] AS amount FROM range(100000) r(i)",  # 3 rows, repeated
], ids=["distinct-rows", "three-rows-repeated"])
def test_large_tables_take_quantiles_from_a_sample_of_positions(monkeypatch, rows_sql):
    import tools.profile

    monkeypatch.setattr(tools.profile, "QUANTILE_SAMPLE", 2_000)  # 100k rows: every 50th row by position
    con = duckdb.connect()
    con.execute("SET threads = 1")  # approximate quantiles are exact-repeatable on one thread
    con.execute(f"CREATE TABLE t AS {rows_sql}")
    columns = [("id", "BIGINT"), ("amount", "DECIMAL(18,1)")]
    got = profile_table(con, "t", columns, position="rowid")["amount"]
    assert profile_table(con, "t", columns, position="rowid", rows=100_000)["amount"] == got
    low, high = con.execute("SELECT min(amount::DOUBLE), max(amount::DOUBLE) FROM t").fetchone()
    exact = con.execute("SELECT quantile_cont(amount::DOUBLE, [0.5, 0.05, 0.95]) FROM t").fetchone()[0]
    for key, want in zip(("median", "p05", "p95"), exact):
        assert abs(got[key] - want) <= (high - low) / 100  # within 1% of the range
    assert (got["rows"], got["min"], got["max"]) == (100000, low, high)  # the rest still reads every row
    sampled = "FROM t WHERE hash(rowid) % 50 = 0"
    assert 1_500 < con.execute(f"SELECT count(*) {sampled}").fetchone()[0] < 2_500
    assert con.execute(f"SELECT approx_quantile(amount::DOUBLE, [0.5, 0.05, 0.95]) {sampled}").fetchone()[0] == \
        [got["median"], got["p05"], got["p95"]]
