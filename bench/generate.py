"""Seeded sales deliveries with realistic faults, written by DuckDB in one pass.

Every value is a pure function of ``(seed, row)`` through splitmix64 written in SQL (UHUGEINT
arithmetic wrapped to 64 bits), so a seed names one file, byte for byte, on any machine and
any DuckDB version. Faults, one per faulty row at most:

* 0.1 % of rows have one empty field (the column picked at random among the four);
* 0.05 % have an out-of-range amount (above 10000, or 0.00 / negative);
* 0.05 % repeat the ``sale_id`` (``100000000 + row``) of an earlier row with a corrected amount
  (a conflicting duplicate key, never an exact duplicate row): at most one per block of 1000
  rows, taken from the same block, so a duplicated key appears exactly twice.

The generator also computes the expected failure counts (see :data:`COUNT_NAMES`) from the
written file, so every contestant is checked against the same truth.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import duckdb

__all__ = ["COUNT_NAMES", "GENERATOR_VERSION", "Delivery", "expected_counts", "generate"]

#: Bump when the rows a seed produces change, so cached files are regenerated.
GENERATOR_VERSION = 3

#: What every contestant reports, and what each count means exactly:
#: ``rows`` data rows (the header excluded); ``null_<col>`` rows whose field is empty;
#: ``duplicate_keys`` distinct non-empty ``sale_id`` values found on more than one row;
#: ``out_of_range`` rows whose amount is present but outside [0.01, 10000]. Not a shared count:
#: ``quarantined`` rows a run must hold back (any of the above, every row of a duplicate key).
COUNT_NAMES = (
    "rows",
    "null_sale_id",
    "null_date",
    "null_amount",
    "null_product_id",
    "duplicate_keys",
    "out_of_range",
)

_MASK = "18446744073709551615"  # 2**64 - 1


def _mix(x: str) -> str:
    """splitmix64 of the UBIGINT expression ``x``, as SQL (no overflow: UHUGEINT, then masked)."""
    z = f"(({x})::UHUGEINT + 11400714819323198485) & {_MASK}"
    z = f"((xor({z}, ({z}) >> 30)) * 13787848793156246361) & {_MASK}"
    z = f"((xor({z}, ({z}) >> 27)) * 10723151780598750443) & {_MASK}"
    return f"(xor({z}, ({z}) >> 31))::UBIGINT"


def _rows_sql(rows: int, seed: int) -> str:
    """The delivery as SQL text columns, in row order."""
    base = f"""
        SELECT i, {_mix(f"i * 1000003 + {seed} * 7919")} AS a FROM range(1, {rows} + 1) t(i)
    """
    draws = f"""
        SELECT i, a, {_mix("a")} AS b FROM ({base})
    """
    # Duplicate keys: at most one per block of 1000 rows (in half the blocks), copying the key
    # of an earlier row of the same block, so every duplicated key appears exactly twice.
    blocks = f"""
        SELECT *, {_mix(f"((i - 1) // 1000) * 2654435761 + {seed} * 104729 + 12345")} AS bh FROM ({draws})
    """
    # fault: 0 none, 1 one empty field, 2 out-of-range amount, 3 duplicate key
    shaped = f"""
        SELECT i, a, b,
            CASE WHEN (bh >> 20) % 2 = 1 AND bh % 1000 >= 1 AND (i - 1) % 1000 = bh % 1000 THEN 3
                 WHEN a % 1000000 < 1000 THEN 1 WHEN a % 1000000 < 1500 THEN 2 ELSE 0 END AS fault,
            (a >> 20) % 4 AS null_col,
            ((i - 1) // 1000) * 1000 + 1 + ((bh >> 24) % greatest(bh % 1000, 1))::BIGINT AS j
        FROM ({blocks})
    """
    # The original row j of a duplicate key: its base values, recomputed from its own draws.
    joined = f"""
        SELECT s.*, {_mix(f"s.j * 1000003 + {seed} * 7919")} AS ja FROM ({shaped}) s
    """
    full = f"""
        SELECT *, {_mix("ja")} AS jb FROM ({joined})
    """

    def date(b: str) -> str:
        return f"strftime(DATE '2026-11-02' - ((({b}) >> 40) % 3)::INTEGER, '%Y-%m-%d')"

    def product(b: str) -> str:
        return (f"substr('NSEW', ((({b}) >> 16) % 4)::INTEGER + 1, 1) || '-' || "
                f"lpad(((({b}) >> 24) % 9999 + 1)::VARCHAR, 4, '0')")

    def cents(b: str) -> str:
        return f"(100 + ({b}) % 49901)::BIGINT"

    def money(c: str) -> str:
        return f"CAST(CAST(({c}) AS DECIMAL(18,0)) / 100 AS DECIMAL(18,2))::VARCHAR"

    out_of_range = (
        f"CASE WHEN b % 2 = 0 THEN {money('1000001 + (b >> 4) % 9000000')} "
        f"WHEN b % 4 = 1 THEN '0.00' ELSE {money('-(1 + ((b >> 4) % 5000)::BIGINT)')} END"
    )
    return f"""
        SELECT
            CASE WHEN fault = 1 AND null_col = 0 THEN '' WHEN fault = 3 THEN (j + 100000000)::VARCHAR
                 ELSE (i + 100000000)::VARCHAR END
                AS sale_id,
            CASE WHEN fault = 1 AND null_col = 1 THEN '' WHEN fault = 3 THEN {date("jb")} ELSE {date("b")} END
                AS date,
            CASE WHEN fault = 1 AND null_col = 2 THEN '' WHEN fault = 2 THEN {out_of_range}
                 WHEN fault = 3 THEN {money(f"{cents('jb')} + (i - j)")} ELSE {money(cents("b"))} END
                AS amount,
            CASE WHEN fault = 1 AND null_col = 3 THEN '' WHEN fault = 3 THEN {product("jb")} ELSE {product("b")} END
                AS product_id
        FROM ({full})
        ORDER BY i
    """


def _read(path: Path) -> str:
    return (
        f"read_csv('{path}', header=true, all_varchar=true, auto_detect=false, "
        "columns={'sale_id': 'VARCHAR', 'date': 'VARCHAR', 'amount': 'VARCHAR', 'product_id': 'VARCHAR'})"
    )


def expected_counts(con: duckdb.DuckDBPyConnection, path: Path) -> dict[str, int]:
    """The counts every contestant must report for the file at ``path`` (see COUNT_NAMES),
    plus ``quarantined``."""
    src = _read(path)
    row = con.execute(f"""
        SELECT count(*),
            count(*) FILTER (WHERE coalesce(sale_id, '') = ''),
            count(*) FILTER (WHERE coalesce(date, '') = ''),
            count(*) FILTER (WHERE coalesce(amount, '') = ''),
            count(*) FILTER (WHERE coalesce(product_id, '') = ''),
            count(*) FILTER (WHERE amount <> '' AND NOT TRY_CAST(amount AS DECIMAL(18,2)) BETWEEN 0.01 AND 10000)
        FROM {src}
    """).fetchone()
    dups = con.execute(f"""
        SELECT count(*) FROM (SELECT sale_id FROM {src} WHERE sale_id <> '' GROUP BY 1 HAVING count(*) > 1)
    """).fetchone()[0]
    names = ("rows", "null_sale_id", "null_date", "null_amount", "null_product_id", "out_of_range")
    counts = dict(zip(names, (int(v) for v in row)))
    counts["duplicate_keys"] = int(dups)
    held = con.execute(f"""
        SELECT count(*) FROM {src}
        WHERE coalesce(sale_id, '') = '' OR coalesce(date, '') = '' OR coalesce(amount, '') = ''
           OR coalesce(product_id, '') = '' OR NOT TRY_CAST(amount AS DECIMAL(18,2)) BETWEEN 0.01 AND 10000
           OR sale_id IN (SELECT sale_id FROM {src} WHERE sale_id <> '' GROUP BY 1 HAVING count(*) > 1)
    """).fetchone()[0]
    return {**{k: counts[k] for k in COUNT_NAMES}, "quarantined": int(held)}


@dataclass(frozen=True)
class Delivery:
    path: Path
    rows: int
    seed: int
    bytes: int
    expected: dict[str, int]


def generate(rows: int, *, seed: int = 42, directory: Path, threads: int | None = None) -> Delivery:
    """Write (or reuse) ``sales-<rows>-s<seed>.csv`` in ``directory`` and its expected counts."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"sales-{rows}-s{seed}.csv"
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file():
        info = json.loads(meta.read_text())
        if info.get("version") == GENERATOR_VERSION and info.get("bytes") == path.stat().st_size:
            return Delivery(path, rows, seed, info["bytes"], info["expected"])
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    part = path.with_name(path.name + ".part")
    con.execute(f"COPY ({_rows_sql(rows, seed)}) TO '{part}' (HEADER, DELIMITER ',', QUOTE '')")
    part.replace(path)
    expected = expected_counts(con, path)
    con.close()
    size = path.stat().st_size
    meta.write_text(json.dumps({"version": GENERATOR_VERSION, "rows": rows, "seed": seed, "bytes": size,
                                "expected": expected}, indent=1))
    return Delivery(path, rows, seed, size, expected)
