"""A proposed repair as data, and its application to TEMP staging tables (never to the target).

Every name and value the model sends is checked against the contract and the staged delivery,
then reaches SQL only through ``quote_ident`` / ``quote_literal`` or a bound parameter.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import duckdb

from tools.contract import Column, Contract, parse_sql, quote_ident, quote_literal
from tools.mapping import apply_mapping
from tools.rules import data_columns
from tools.verdict import InputError

__all__ = ["Candidate", "build", "check_date_format", "check_mapping", "check_null_token", "masked"]

MASK = "***"
_ISO = {"date": "%Y-%m-%d", "timestamp": "%Y-%m-%d %H:%M:%S"}


@dataclass
class Candidate:
    """The repair under test. Each proposal replaces (mapping, a column's format) or adds (a null
    token) its part and stays, verified or not, so proposals compose; all of it is checked."""

    mapping: dict[str, str] = field(default_factory=dict)
    null_tokens: dict[str, str] = field(default_factory=dict)  # token → the column it was seen in
    date_formats: dict[str, str] = field(default_factory=dict)  # contract column → strptime format

    def to_dict(self) -> dict[str, Any]:
        return {"mapping": self.mapping, "null_tokens": self.null_tokens, "date_formats": self.date_formats}


def build(con: duckdb.DuckDBPyConnection, table: str, contract: Contract, candidate: Candidate, *,
          temp_name: Callable[[str], str]) -> tuple[Contract, str]:
    """The candidate applied: (contract with its null tokens, the TEMP table holding the rows)."""
    if candidate.mapping:
        renamed = [candidate.mapping.get(c, c) for c in data_columns(con, table)]
        add = [c.name for c in contract.columns if not c.required and c.name not in renamed]
        out = temp_name("mapped")
        apply_mapping(con, table, out, mapping=candidate.mapping, add_columns=add)
        table = out
    present = data_columns(con, table)
    formats = {c: f for c, f in candidate.date_formats.items() if c in present}
    if formats:
        out = temp_name("dated")
        exprs = ", ".join(
            f"coalesce(strftime(try_strptime(trim({quote_ident(c)}), {quote_literal(f)}), "
            f"{quote_literal(_ISO[contract.column(c).type])}), {quote_ident(c)}) AS {quote_ident(c)}"
            for c, f in formats.items()
        )
        con.execute(f"CREATE OR REPLACE TEMP TABLE {quote_ident(out)} AS "
                    f"SELECT * REPLACE ({exprs}) FROM {quote_ident(table)}")
        table = out
    if candidate.null_tokens:
        contract = replace(contract, null_tokens=tuple(dict.fromkeys((*contract.null_tokens, *candidate.null_tokens))))
    return contract, table


def check_mapping(mapping: object, *, delivered: list[str], contract: Contract) -> dict[str, str]:
    """The renames in ``mapping``, or InputError saying what is wrong with it."""
    if not isinstance(mapping, dict) or not mapping or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
        raise InputError("mapping: give {delivered column: contract column} as strings")
    unknown = sorted(k for k in mapping if k not in delivered)
    foreign = sorted(v for v in mapping.values() if v not in contract.names)
    twice = sorted({v for v in mapping.values() if list(mapping.values()).count(v) > 1})
    if unknown or foreign or twice:
        raise InputError(f"mapping refused: not delivered {unknown}, not contract columns {foreign}, "
                         f"mapped twice {twice}")
    return {k: v for k, v in mapping.items() if k != v}


def check_null_token(con: duckdb.DuckDBPyConnection, table: str, column: Column, token: str,
                     contract: Contract) -> None:
    """A null token must occur in the column and must not be a valid value of its type."""
    if not token or token in contract.null_tokens:
        raise InputError(f"{token!r} is empty or already a null token")
    _present(con, table, column.name)
    seen = con.execute(f"SELECT count(*) FROM {quote_ident(table)} WHERE trim({quote_ident(column.name)}) = ?",
                       [token]).fetchone()[0]
    if not seen:
        raise InputError(f"{token!r} does not occur in {column.name!r}")
    if column.type != "text" and con.execute(f"SELECT {parse_sql(quote_literal(token), column)} IS NOT NULL").fetchone()[0]:
        raise InputError(f"{token!r} is a valid {column.type} value: it cannot mean 'no value'")


def check_date_format(con: duckdb.DuckDBPyConnection, table: str, column: Column, fmt: str) -> None:
    """A date format must be a strptime format that parses at least one value of the column."""
    if column.type not in _ISO or "%" not in fmt:
        raise InputError(f"{column.name!r} is a {column.type} column or {fmt!r} is not a strptime format")
    _present(con, table, column.name)
    try:
        parsed = con.execute(
            f"SELECT count(*) FROM {quote_ident(table)} "
            f"WHERE try_strptime(trim({quote_ident(column.name)}), {quote_literal(fmt)}) IS NOT NULL"
        ).fetchone()[0]
    except duckdb.Error as exc:
        raise InputError(f"{fmt!r} is not a format DuckDB's strptime reads: {str(exc).splitlines()[0]}") from None
    if not parsed:
        raise InputError(f"no value of {column.name!r} parses with {fmt!r}")


def masked(data: Any, hidden: set[str]) -> Any:
    """JSON-ready ``data`` with values of the ``hidden`` columns replaced, wherever they appear."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("column") in hidden and "value" in node:
                return {**node, "value": MASK}
            return {k: (MASK if k in hidden else walk(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(json.loads(json.dumps(data, default=str)))


def _present(con: duckdb.DuckDBPyConnection, table: str, column: str) -> None:
    if column not in data_columns(con, table):
        raise InputError(f"{column!r} is not in the delivery yet: propose the mapping first")
