"""tools.sinks.load_and_verify on a DuckDB target: what it proves inside the load's transaction.

Rows tagged with the run = rows sent, and no key of this run's rows held twice in the target
(NULL keys grouping together, as in GROUP BY). A failed proof rolls the load back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.sinks import DuckDBSink, load_and_verify
from tools.verdict import TargetError

SALES = [("sale_id", "BIGINT"), ("product_id", "VARCHAR")]


@pytest.fixture
def duck(tmp_path: Path) -> Iterator[DuckDBSink]:
    sink = DuckDBSink(tmp_path / "t.duckdb")
    yield sink
    sink.close()


def load(sink: DuckDBSink, rows: str, *, run_id: str, key: tuple[str, ...] = ("sale_id",), mode: str = "insert",
         columns: list[tuple[str, str]] = SALES):
    sink.working_connection().execute(f"CREATE OR REPLACE TEMP TABLE st AS {rows}")
    return load_and_verify(sink, "st", table="sales", columns=columns, key=key, mode=mode, run_id=run_id)


def keys(*values: object, text: bool = False) -> str:
    """Rows with these sale_ids (NULL for None), one product each."""
    cast = "VARCHAR" if text else "BIGINT"
    rows = ", ".join(f"({'NULL' if v is None else repr(v)}::{cast}, 'p{i}')" for i, v in enumerate(values))
    return f"SELECT * FROM (VALUES {rows}) v(sale_id, product_id)"


def rows_in(sink: DuckDBSink) -> int:
    return sink.query("SELECT count(*) FROM sales")[0][0]


@pytest.mark.parametrize("first, second, dupes", [
    (keys(1, 2, 3), keys(4, 4, 5), 1),  # twice in this run (one integer key: the bitstring proof)
    (keys(1, 2, 3), keys(3, 4), 1),  # already loaded by an earlier run
    (keys(1, 2, 3), keys(None, None, 7), 1),  # NULL keys group together
    (keys(1, None), keys(None, 7), 1),  # ... across runs too
    (keys(1, 2), keys(1, 10**12, 10**12), 2),  # a range too wide for a bitstring: GROUP BY
    (keys("a", "b", text=True), keys("b", "c", "c", text=True), 2),  # text keys
])
def test_a_duplicate_key_of_this_run_rolls_the_load_back(duck, first, second, dupes):
    columns = [("sale_id", "VARCHAR" if "::VARCHAR" in first else "BIGINT"), ("product_id", "VARCHAR")]
    assert load(duck, first, run_id="r1", columns=columns).duplicate_keys == 0
    before = rows_in(duck)
    with pytest.raises(TargetError, match=f"{dupes} duplicate keys; rolled back"):
        load(duck, second, run_id="r2", columns=columns)
    assert rows_in(duck) == before


def test_a_composite_key_is_checked_column_by_column(duck):
    pairs = "SELECT * FROM (VALUES (1, 'a'), (1, 'b'), (2, 'a')) v(sale_id, product_id)"
    assert load(duck, pairs, run_id="r1", key=("sale_id", "product_id")).duplicate_keys == 0
    again = "SELECT * FROM (VALUES (3, 'a'), (1, 'b')) v(sale_id, product_id)"
    with pytest.raises(TargetError, match="1 duplicate keys"):
        load(duck, again, run_id="r2", key=("sale_id", "product_id"))
    assert rows_in(duck) == 3


def test_distinct_keys_and_corrections_verify(duck):
    done = load(duck, keys(*range(1, 1001), None), run_id="r1")
    assert (done.rows_sent, done.rows_tagged, done.duplicate_keys) == (1001, 1001, 0)
    done = load(duck, keys(1000, 1001, 1002), run_id="r2", mode="upsert")  # 1000 replaced, not doubled
    assert (done.result.inserted, done.result.updated, done.duplicate_keys) == (2, 1, 0)
    assert rows_in(duck) == 1003


def test_a_duplicate_no_row_of_this_run_takes_part_in_is_left_to_the_run_that_loaded_it(duck):
    load(duck, keys(1, 2), run_id="r1")
    duck.execute("INSERT INTO sales (sale_id, product_id, _heal_run_id) VALUES (1, 'copy', 'by hand')")
    assert load(duck, keys(5, 6), run_id="r2").duplicate_keys == 0
    assert rows_in(duck) == 5
