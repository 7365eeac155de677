"""Column profiles: the shape of a column's values in one delivery, computed in one SQL query.

Profiles of loaded deliveries are kept in the ledger (``heal.profiles``) so later runs can
compare against them: a distribution shift (amounts in cents), or which unknown column is
most like a missing contract column.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb

from tools.contract import quote_ident

__all__ = ["NUMERIC_TYPES", "QUANTILE_SAMPLE", "profile_table", "quantile_sample_sql"]

NUMERIC_TYPES = ("BIGINT", "INTEGER", "DOUBLE", "DECIMAL", "HUGEINT", "SMALLINT", "FLOAT", "REAL")
_QUANTILES = "median, p05, p95"  # one list-valued statistic, split into three keys

#: Quantiles are taken over about this many rows at most: on millions of rows the t-digests are
#: most of a profile's cost, and half a million rows place p05..p95 within the digest's own error.
QUANTILE_SAMPLE = 500_000


def quantile_sample_sql(rows: int, position: str) -> str | None:
    """SQL true for about :data:`QUANTILE_SAMPLE` of ``rows`` rows, picked by a hash of
    ``position`` (SQL telling rows apart, such as ``_row`` or ``rowid``: a hash of the values
    would keep or drop every copy of a repeated row together); None when every row fits."""
    every = rows // QUANTILE_SAMPLE
    return f"hash({position}) % {every} = 0" if every > 1 else None


def profile_table(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: Sequence[tuple[str, str]],
    *,
    where: str = "",
    params: Sequence[Any] = (),
    position: str | None = None,
    rows: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Per column of ``table``: rows, nulls, distinct (approximate); for numbers also min, max,
    mean, median, p05, p95; for dates min and max. ``columns`` are (name, DuckDB type).

    ``table`` is a name (quoted here) or an already quoted ``schema.table``; ``where`` (SQL
    with ``?`` for ``params``) keeps only some rows, such as those one run loaded. Given a
    ``position`` (see :func:`quantile_sample_sql`), the quantiles of more than
    :data:`QUANTILE_SAMPLE` rows are read from a sample; ``rows``, when known, spares a count."""
    relation = table if table.startswith('"') else quote_ident(table)
    filtered = f" WHERE {where}" if where else ""
    sample = None
    if position is not None:
        if rows is None:
            rows = con.execute(f"SELECT count(*) FROM {relation}{filtered}", list(params)).fetchone()[0]
        sample = quantile_sample_sql(rows, position)
    sampled = f" FILTER (WHERE {sample})" if sample else ""
    parts: list[str] = []
    layout: list[tuple[str, str, list[str]]] = []
    for name, type_ in columns:
        col = quote_ident(name)
        stats = ["count(*)", f"count(*) - count({col})", f"approx_count_distinct({col})"]
        keys = ["rows", "nulls", "distinct"]
        if type_.upper().startswith(NUMERIC_TYPES):
            x = f"CAST({col} AS DOUBLE)"
            # One digest for the three quantiles: three separate approx_quantile calls build the
            # same t-digest three times (most of the profile's cost on millions of rows).
            stats += [f"min({x})", f"max({x})", f"avg({x})", f"approx_quantile({x}, [0.5, 0.05, 0.95]){sampled}"]
            keys += ["min", "max", "mean", _QUANTILES]
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
    row = con.execute(f"SELECT {', '.join(parts)} FROM {relation}{filtered}", list(params)).fetchone()
    out: dict[str, dict[str, Any]] = {}
    i = 0
    for name, kind, keys in layout:
        values = row[i:i + len(keys)]
        i += len(keys)
        stats_of: dict[str, Any] = {}
        for k, v in zip(keys, values):
            if k == _QUANTILES:
                stats_of.update(zip(("median", "p05", "p95"), v or (None, None, None)))
            else:
                stats_of[k] = v
        out[name] = {"kind": kind, **{k: (float(v) if isinstance(v, float) else v) for k, v in stats_of.items()}}
    return out
