"""PostgreSQL's side of the dialect: placeholders, column types, stored names, catalog facts."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from tools.verdict import TargetError

__all__ = ["orders_alike", "pg_name", "pg_type", "prepared", "to_pyformat", "transient", "unique_index_covers"]

#: DuckDB type → PostgreSQL type for target columns (DECIMAL(p,s) and VARCHAR(n) handled apart).
PG_TYPES: dict[str, str] = {
    "BIGINT": "BIGINT", "INTEGER": "INTEGER", "SMALLINT": "SMALLINT", "TINYINT": "SMALLINT",
    "UTINYINT": "SMALLINT", "USMALLINT": "INTEGER", "UINTEGER": "BIGINT", "UBIGINT": "NUMERIC(20,0)",
    "HUGEINT": "NUMERIC(38,0)", "DOUBLE": "DOUBLE PRECISION", "FLOAT": "REAL", "REAL": "REAL",
    "VARCHAR": "TEXT", "TEXT": "TEXT", "DATE": "DATE", "TIMESTAMP": "TIMESTAMP",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ", "TIMESTAMPTZ": "TIMESTAMPTZ", "TIME": "TIME",
    "BOOLEAN": "BOOLEAN", "UUID": "UUID", "INTERVAL": "INTERVAL", "JSON": "JSONB",
}
_DECIMAL = re.compile(r"(?:DECIMAL|NUMERIC)\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)", re.I)
_DUCKDB_INTEGER = re.compile(r"U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?")
#: PostgreSQL clips identifiers to NAMEDATALEN - 1 bytes.
_MAX_IDENT_BYTES = 63

# A ``?`` is a placeholder only outside literals, quoted identifiers and comments; ``%`` is
# escaped everywhere because psycopg reads placeholders through the whole text.
_SQL_TOKENS = re.compile(
    r"""(?P<skip>(?<![\w$])[eE]'(?:[^'\\]|\\.|'')*'     # E'escape string'
       | '(?:[^']|'')*'                                 # 'literal'
       | "(?:[^"]|"")*"                                 # "identifier"
       | \$(?P<tag>(?:[A-Za-z_]\w*)?)\$[\s\S]*?\$(?P=tag)\$  # $tag$ dollar quoted $tag$
       | --[^\n]*                                       # line comment
       | /\*[\s\S]*?\*/)                                # block comment
     | (?P<mark>\?)
     | (?P<pct>%)""",
    re.X,
)


def to_pyformat(sql: str) -> str:
    """``?`` placeholders → psycopg's ``%s``; literal ``%`` → ``%%``; quoted text left as it is."""

    def swap(m: re.Match[str]) -> str:
        if m.group("skip") is not None:
            return m.group("skip").replace("%", "%%")
        return "%s" if m.group("mark") else "%%"

    return _SQL_TOKENS.sub(swap, sql)


def prepared(sql: str, params: Sequence[Any]) -> tuple[str, list[Any] | None]:
    """What psycopg executes: without parameters it sends the text untouched, so only convert
    when there are some."""
    return (to_pyformat(sql), list(params)) if params else (sql, None)


def pg_type(duckdb_type: str) -> str:
    """The PostgreSQL column type for a DuckDB type; TargetError when there is none."""
    name = " ".join(duckdb_type.upper().split())
    if m := _DECIMAL.fullmatch(name):
        return f"NUMERIC({m.group(1)},{m.group(2)})"
    if name in ("DECIMAL", "NUMERIC"):
        return "NUMERIC"
    if name.startswith("VARCHAR("):
        return "TEXT"
    if name not in PG_TYPES:
        raise TargetError(f"no PostgreSQL column type for DuckDB type {duckdb_type}")
    return PG_TYPES[name]


def pg_name(name: str) -> str:
    """The name PostgreSQL stores for identifier ``name`` (clipped at 63 bytes, on a character)."""
    raw = name.encode("utf-8")
    return name if len(raw) <= _MAX_IDENT_BYTES else raw[:_MAX_IDENT_BYTES].decode("utf-8", "ignore")


def orders_alike(pg: str, duckdb_type: str) -> bool:
    """Whether values of a DuckDB column and of a PostgreSQL column (``format_type`` text) compare
    the same way in both: integers and decimals as numbers, dates as dates. Text is left out, as
    collations may differ."""
    if duckdb_type == "DATE":
        return pg == "date"
    if duckdb_type.startswith("DECIMAL("):
        return pg.startswith("numeric")
    return bool(_DUCKDB_INTEGER.fullmatch(duckdb_type)) and (
        pg in ("smallint", "integer", "bigint") or pg.startswith("numeric"))


def unique_index_covers(query: Callable[..., list[tuple[Any, ...]]], target: str, key: Sequence[str]) -> bool:
    """Whether a plain, valid, immediate unique index of ``target`` (a quoted, qualified name) has
    exactly the key's columns: what ON CONFLICT needs, and a proof that no two rows share a key
    without NULLs. ``query`` is :meth:`PostgresSink.query`."""
    attnames = dict(query(
        "SELECT attnum, attname FROM pg_catalog.pg_attribute WHERE attrelid = to_regclass(?) AND attnum > 0",
        (target,)))
    indexes = query(
        "SELECT indnkeyatts, indkey::int2[] FROM pg_catalog.pg_index WHERE indrelid = to_regclass(?) "
        "AND indisunique AND indisvalid AND indimmediate AND indpred IS NULL AND indexprs IS NULL",
        (target,))
    wanted = {pg_name(k) for k in key}
    return any({attnames.get(n) for n in nums[:natts]} == wanted for natts, nums in indexes)


def transient(exc: psycopg.Error) -> bool:
    """A lost connection, a lock not granted in time, a deadlock: a retry may succeed."""
    from psycopg import errors

    return isinstance(exc, (psycopg.OperationalError, errors.LockNotAvailable, errors.QueryCanceled,
                            errors.DeadlockDetected, errors.SerializationFailure, errors.AdminShutdown))
