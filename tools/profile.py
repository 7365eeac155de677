"""Column profiles: the shape of a column's values in one delivery, computed in one SQL pass.

Profiles of loaded deliveries are kept in the ledger (``heal.profiles``) so later runs can
compare against them: a distribution shift (amounts in cents), or which unknown column is
most like a missing contract column.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb

from tools.contract import quote_ident

__all__ = ["NUMERIC_TYPES", "profile_table"]

NUMERIC_TYPES = ("BIGINT", "INTEGER", "DOUBLE", "DECIMAL", "HUGEINT", "SMALLINT", "FLOAT", "REAL")


def profile_table(
    con: duckdb.DuckDBPyConnection, table: str, columns: Sequence[tuple[str, str]]
) -> dict[str, dict[str, Any]]:
    """Per column of ``table``: rows, nulls, distinct (approximate); for numbers also min, max,
    mean, median, p05, p95; for dates min and max. ``columns`` are (name, DuckDB type)."""
    parts: list[str] = []
    layout: list[tuple[str, str, list[str]]] = []
    for name, type_ in columns:
        col = quote_ident(name)
        stats = ["count(*)", f"count(*) - count({col})", f"approx_count_distinct({col})"]
        keys = ["rows", "nulls", "distinct"]
        if type_.upper().startswith(NUMERIC_TYPES):
            x = f"CAST({col} AS DOUBLE)"
            stats += [f"min({x})", f"max({x})", f"avg({x})", f"approx_quantile({x}, 0.5)",
                      f"approx_quantile({x}, 0.05)", f"approx_quantile({x}, 0.95)"]
            keys += ["min", "max", "mean", "median", "p05", "p95"]
            kind = "number"
        elif type_.upper() in ("DATE", "TIMESTAMP"):
            stats += [f"CAST(min({col}) AS VARCHAR)", f"CAST(max({col}) AS VARCHAR)"]
            keys += ["min", "max"]
            kind = "date"
        else:
            stats += [f"avg(length(CAST({col} AS VARCHAR)))"]
            keys += ["mean_length"]
            kind = "text"
        parts += stats
        layout.append((name, kind, keys))
    if not parts:
        return {}
    row = con.execute(f"SELECT {', '.join(parts)} FROM {quote_ident(table)}").fetchone()
    out: dict[str, dict[str, Any]] = {}
    i = 0
    for name, kind, keys in layout:
        values = row[i:i + len(keys)]
        i += len(keys)
        out[name] = {"kind": kind, **{k: (float(v) if isinstance(v, float) else v) for k, v in zip(keys, values)}}
    return out
