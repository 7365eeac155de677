"""tools.typed_rows: one typing pass whose values and rule masks equal the contract's own SQL."""

from __future__ import annotations

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tools.contract import contract_from_dict, parse_sql, quote_ident
from tools.typed_rows import derive, repeated_rows, typed_rows

CONTRACT = contract_from_dict({
    "table": "sales",
    "key": ["sale_id"],
    "columns": {
        "sale_id": {"type": "bigint", "critical": True},
        "date": {"type": "date", "critical": True},
        "amount": {"type": "decimal", "min": 0.01, "max": 10000, "critical": True},
        "product_id": {"type": "text", "critical": True},
        "note": {"type": "double", "required": False, "min": 0},
    },
})

# Values chosen to sit on the edges of the shortcut: spaces the cast skips or refuses,
# null tokens, numbers that are not integers, scientific notation, words a cast may read.
EDGY = ["", " ", "12", " 12 ", "12.0", "12.5", "1e3", "-1", "0", "N/A", " N/A ", "null", "-", "nan", "inf",
        "2026-11-02", " 2026-11-02", "2026-13-01", "\u00a012", "12\u00a0", "\t7", "0.005", "10000.004",
        "10000.01", "A-1", " A-1", "A-1 ", "é", None]


def _stage(con: duckdb.DuckDBPyConnection, rows: list[tuple]) -> None:
    con.execute("CREATE OR REPLACE TEMP TABLE delivery (sale_id VARCHAR, date VARCHAR, amount VARCHAR, "
                "product_id VARCHAR, note VARCHAR, extra VARCHAR, _row BIGINT, _error VARCHAR)")
    con.executemany("INSERT INTO delivery VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(*r, i + 1, "wrong_field_count" if r[5] == "bad" else None) for i, r in enumerate(rows)])


row = st.tuples(*(st.sampled_from(EDGY) for _ in range(5)), st.sampled_from(["x", "bad", None]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(row, min_size=1, max_size=25))
def test_values_and_masks_equal_the_contract_sql(rows):
    con = duckdb.connect()
    _stage(con, rows)
    typed = typed_rows(con, "delivery", contract=CONTRACT)
    tokens = CONTRACT.null_tokens
    parsed = ", ".join(f"CAST({parse_sql(quote_ident(c), CONTRACT.column(c), tokens)} AS VARCHAR)" for c in typed.typed)
    mine = ", ".join(f"CAST(t.{quote_ident(c)} AS VARCHAR)" for c in typed.typed)
    bits = " | ".join(f"CASE WHEN {r.predicate} THEN {1 << i} ELSE 0 END" for i, r in enumerate(typed.rules))
    expected = f"SELECT _row, [{parsed}]::VARCHAR[] AS v, ({bits}) AS m FROM delivery"
    differ = con.execute(
        f"SELECT e._row, e.v, [{mine}]::VARCHAR[], e.m, t.{quote_ident(typed.masks[0])} "
        f"FROM ({expected}) e JOIN {typed.sql} t USING (_row) "
        f"WHERE e.v IS DISTINCT FROM [{mine}]::VARCHAR[] OR e.m <> t.{quote_ident(typed.masks[0])}"
    ).fetchall()
    assert differ == []
    assert con.execute(f"SELECT count(*) FROM {typed.sql}").fetchone()[0] == len(rows)


def test_the_typed_table_is_found_again_and_rebuilt_when_the_relation_changes():
    con = duckdb.connect()
    _stage(con, [("1", "2026-11-02", "5", "A", None, None)])
    first = typed_rows(con, "delivery", contract=CONTRACT)
    assert typed_rows(con, "delivery", contract=CONTRACT).relation == first.relation
    _stage(con, [("1", "2026-11-02", "5", "A", None, None), ("2", "2026-11-02", "6", "B", None, None)])
    second = typed_rows(con, "delivery", contract=CONTRACT)
    assert second.relation != first.relation
    assert con.execute(f"SELECT count(*) FROM {second.sql}").fetchone()[0] == 2
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()}
    assert first.relation not in tables  # the stale version is dropped, not kept in memory


def test_a_derived_view_reads_the_same_typed_rows():
    con = duckdb.connect()
    _stage(con, [("1", "2026-11-02", "5", "A", None, None), ("2", "", "6", "B", None, None)])
    typed = typed_rows(con, "delivery", contract=CONTRACT)
    con.execute("CREATE TEMP TABLE held AS SELECT 2 AS row_number")
    con.execute("CREATE TEMP VIEW clean AS SELECT * FROM delivery WHERE _row NOT IN (SELECT row_number FROM held)")
    derive(con, typed, "clean", without="SELECT row_number FROM held", contract=CONTRACT)
    clean = typed_rows(con, "clean", contract=CONTRACT)
    assert clean.relation != typed.relation
    assert con.execute(f"SELECT list(_row) FROM {clean.sql}").fetchone()[0] == [1]
    assert "__heal_typed_" in con.execute(
        "SELECT sql FROM duckdb_views() WHERE view_name = ?", [clean.relation]).fetchone()[0]


def test_a_table_without_row_numbers_is_numbered_once():
    con = duckdb.connect()
    con.execute("CREATE TEMP TABLE plain AS SELECT * FROM (VALUES ('1', '2026-11-02', '5', 'A')) "
                "t(sale_id, date, amount, product_id)")
    typed = typed_rows(con, "plain", contract=CONTRACT)
    assert con.execute(f"SELECT _row, sale_id, amount FROM {typed.sql}").fetchall() == [(1, 1, 5)]
    assert typed_rows(con, "plain", contract=CONTRACT).source == typed.source


@pytest.mark.parametrize("key", [["sale_id"], []])
def test_repeated_rows_hold_every_row_that_has_a_twin(key):
    contract = contract_from_dict({**{"table": "t", "columns": {
        "sale_id": {"type": "bigint"}, "product_id": {"type": "text"}}}, **({"key": key} if key else {})})
    con = duckdb.connect()
    con.execute("CREATE TEMP TABLE delivery AS SELECT * FROM (VALUES "
                "('1', 'A', 1, NULL), ('1', 'A', 2, NULL), ('2', 'B', 3, NULL), ('3', 'C', 4, NULL), "
                "('3', 'D', 5, NULL), ('x', 'E', 6, NULL)) t(sale_id, product_id, _row, _error)")
    typed = typed_rows(con, "delivery", contract=contract)
    out = repeated_rows(con, typed)
    held = {r[0] for r in con.execute(f"SELECT _row FROM {out}").fetchall()}
    # With a key: rows sharing a key, and rows whose key does not parse; without: rows sharing a hash.
    assert held == ({1, 2, 4, 5, 6} if key else {1, 2})
