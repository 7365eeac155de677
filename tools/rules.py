"""Row-level quality rules as SQL, shared by the checker that counts them
(validate-quality) and the remediation that acts on them (quarantine-rows), so both agree
on exactly which rows break which rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from tools.contract import Column, Contract, is_null_sql, parse_sql, quote_ident

__all__ = [
    "META_COLUMNS",
    "TYPE_DRIFT_SHARE",
    "RowRule",
    "data_columns",
    "key_conflicts_sql",
    "row_rules",
    "unparseable_shares",
]

#: Columns the reader adds to every staged delivery.
META_COLUMNS = ("_row", "_error")

#: Above this share of unparseable values a column has drifted as a whole (repair it);
#: below, the few bad rows are a quality problem (quarantine them).
TYPE_DRIFT_SHARE = 0.5


@dataclass(frozen=True)
class RowRule:
    """One way a row can be bad. ``predicate`` is SQL, true when the row breaks the rule."""

    criterion: str  # the validate-quality criterion it counts towards
    reason: str  # the reason code quarantine writes, e.g. "null_critical:amount"
    predicate: str
    failure_class: str


def data_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """The delivery's own columns of a staged table, in order (without _row/_error)."""
    cur = con.execute(f"SELECT * FROM {quote_ident(table)} LIMIT 0")
    return [d[0] for d in cur.description if d[0] not in META_COLUMNS]


def row_rules(contract: Contract, delivered: Sequence[str]) -> list[RowRule]:
    """The rules that apply to a delivery whose columns are ``delivered``, in report order."""
    present = set(delivered)
    rules = [RowRule("rows_parse", "malformed_row", "_error IS NOT NULL", "malformed_row")]
    critical = {c.name for c in contract.critical}
    for col in contract.columns:
        if col.name not in present:
            if col.name in critical:  # a missing critical column is null in every row
                rules.append(RowRule("no_null_critical", f"null_critical:{col.name}", "true", "null_critical"))
            continue
        ident = quote_ident(col.name)
        if col.name in critical:
            rules.append(RowRule(
                "no_null_critical", f"null_critical:{col.name}",
                is_null_sql(ident, contract.null_tokens), "null_critical",
            ))
        parsed = parse_sql(ident, col, contract.null_tokens)
        if col.type != "text":
            rules.append(RowRule(
                "values_parse", f"unparseable:{col.name}",
                f"(NOT {is_null_sql(ident, contract.null_tokens)} AND {parsed} IS NULL)", "type_drift",
            ))
        bounds = []
        if col.min is not None:
            bounds.append(f"{parsed} < {col.min!r}")
        if col.max is not None:
            bounds.append(f"{parsed} > {col.max!r}")
        if bounds:
            rules.append(RowRule(
                "values_in_range", f"out_of_range:{col.name}", f"({' OR '.join(bounds)})", "out_of_range",
            ))
    return rules


def key_conflicts_sql(table: str, contract: Contract, delivered: Sequence[str]) -> str | None:
    """SQL selecting the parsed keys that appear with different contents in ``table``.

    Exact duplicate rows are not conflicts (transform removes them); rows with a null or
    unparseable key are left to the other rules. None when the contract has no key.
    """
    if not contract.key or not all(k in delivered for k in contract.key):
        return None
    cols = ", ".join(quote_ident(c) for c in delivered)
    keys = ", ".join(
        f"{parse_sql(quote_ident(k), contract.column(k), contract.null_tokens)} AS {quote_ident(k)}"
        for k in contract.key
    )
    not_null = " AND ".join(f"{quote_ident(k)} IS NOT NULL" for k in contract.key)
    key_cols = ", ".join(quote_ident(k) for k in contract.key)
    return (
        f"SELECT {key_cols} FROM (SELECT {keys} FROM (SELECT DISTINCT {cols} FROM {quote_ident(table)} "
        f"WHERE _error IS NULL)) WHERE {not_null} GROUP BY {key_cols} HAVING count(*) > 1"
    )


def unparseable_shares(
    con: duckdb.DuckDBPyConnection, table: str, columns: Sequence[Column], null_tokens: Sequence[str]
) -> dict[str, float]:
    """Per typed column present in ``table``: the share of non-null values that do not parse."""
    present = set(data_columns(con, table))
    typed = [c for c in columns if c.name in present and c.type != "text"]
    if not typed:
        return {}
    tokens = tuple(null_tokens)
    exprs = ", ".join(
        f"count(*) FILTER (WHERE NOT {is_null_sql(quote_ident(c.name), tokens)}), "
        f"count(*) FILTER (WHERE NOT {is_null_sql(quote_ident(c.name), tokens)} "
        f"AND {parse_sql(quote_ident(c.name), c, tokens)} IS NULL)"
        for c in typed
    )
    out = con.execute(f"SELECT {exprs} FROM {quote_ident(table)}").fetchone()
    return {
        c.name: (out[2 * i + 1] / out[2 * i] if out[2 * i] else 0.0)
        for i, c in enumerate(typed)
    }
