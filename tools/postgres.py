"""The PostgreSQL target: rows staged in DuckDB, streamed in with COPY, committed in one transaction.

The run stages a delivery as TEMP tables on an in-memory DuckDB connection
(:meth:`PostgresSink.working_connection`). A load streams the staged rows as CSV through an OS
pipe (DuckDB writes one end, ``COPY ... FROM STDIN`` reads the other), so nothing is held in
Python objects and nothing is written to disk. Inserts COPY straight into the target inside the
load's transaction; upserts COPY into a TEMP table, then merge by key. A process killed at any
point leaves the target as it was or fully loaded: the server rolls back a transaction whose
client is gone.

Outside :meth:`PostgresSink.transaction` every statement commits on its own, which is what the
ledger wants (each attempt is recorded as it happens). Errors become :class:`TargetError` with
the first line of the server's message and any password scrubbed.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import duckdb
import psycopg
from psycopg.conninfo import conninfo_to_dict

from tools.contract import quote_ident, quote_literal
from tools.sinks import (
    HEAL_COLUMNS,
    LoadResult,
    _first_line,
    _split,
    configure_working_connection,
    redact_url,
)
from tools.verdict import ConfigError, TargetError

__all__ = ["PostgresSink", "pg_type", "to_pyformat"]

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
#: PostgreSQL clips identifiers to NAMEDATALEN - 1 bytes.
_MAX_IDENT_BYTES = 63
#: How DuckDB writes the CSV that COPY reads: NULL unquoted and empty, every value quoted, so an
#: empty string stays "" and a lone ``\.`` is never read as COPY's end-of-data marker.
_CSV_OUT = "FORMAT csv, HEADER false, FORCE_QUOTE *, USE_TMP_FILE false"
_CSV_IN = "(FORMAT csv)"
#: When a row was loaded: the transaction's start, in UTC like the ledger's timestamps.
_NOW_UTC = "now() AT TIME ZONE 'UTC'"
_PIPE_CHUNK = 1 << 20

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


def _pg_name(name: str) -> str:
    """The name PostgreSQL stores for identifier ``name`` (clipped at 63 bytes, on a character)."""
    raw = name.encode("utf-8")
    return name if len(raw) <= _MAX_IDENT_BYTES else raw[:_MAX_IDENT_BYTES].decode("utf-8", "ignore")


class PostgresSink:
    """A PostgreSQL database; the run's staging tables live on an in-memory DuckDB connection."""

    dialect = "postgresql"

    def __init__(self, url: str, *, memory_limit: str | None = None, connect_timeout: int = 10) -> None:
        self.url = redact_url(url)
        parts = urlsplit(url)
        # Scrubbed from every error message: the URL's password, raw and decoded, and PGPASSWORD.
        self._secrets = tuple(
            s for s in {parts.password or "", unquote(parts.password or ""), os.environ.get("PGPASSWORD", "")}
            if len(s) >= 3
        )
        try:
            params: dict[str, Any] = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise TargetError(f"invalid PostgreSQL URL {self.url}: {self._scrub(exc)}") from None
        params.setdefault("connect_timeout", connect_timeout)
        # A lock held on the target by someone else must not hang a run: fail (transient) instead.
        params.setdefault("options", f"-c lock_timeout={os.environ.get('HEAL_PG_LOCK_TIMEOUT', '30s')}")
        params.setdefault("application_name", "heal")
        self._params = params
        self._depth = 0  # open transaction() blocks
        self._pg = self._connect()
        self.con = duckdb.connect()
        configure_working_connection(self.con, memory_limit=memory_limit)

    def __repr__(self) -> str:
        return f"PostgresSink({self.url!r})"

    # --- the Sink protocol ------------------------------------------------------------------
    def working_connection(self) -> duckdb.DuckDBPyConnection:
        return self.con

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self._guard("statement failed"):
            self._conn().execute(*_prepared(sql, params))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._guard("query failed"):
            cur = self._conn().execute(*_prepared(sql, params))
            return cur.fetchall() if cur.description else []

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One PostgreSQL transaction; a nested block is a savepoint inside it."""
        conn = self._conn()
        self._depth += 1
        try:
            with self._guard("transaction failed"), conn.transaction():
                yield
        finally:
            self._depth -= 1

    def table_columns(self, table: str) -> list[str] | None:
        rows = self.query(
            "SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = to_regclass(?) "
            "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (self._qualified(table),),
        )
        return [r[0] for r in rows] or None

    def key_conflicts(self, staging: str, *, table: str, key: Sequence[str]) -> int:
        """Staged rows whose key is already in ``table``: the staged keys are copied to a PG TEMP
        table and joined there."""
        if not key or self.table_columns(table) is None:
            return 0
        keys = ", ".join(quote_ident(k) for k in key)
        temp = quote_ident(f"heal_keys_{uuid.uuid4().hex[:12]}")
        on = " AND ".join(f"t.{quote_ident(k)} = s.{quote_ident(k)}" for k in key)
        with self.transaction():
            self.execute(f"CREATE TEMP TABLE {temp} ON COMMIT DROP AS "
                         f"SELECT {keys} FROM {self._qualified(table)} WITH NO DATA")
            self._copy_in(f"COPY {temp} ({keys}) FROM STDIN {_CSV_IN}",
                          f"SELECT {keys} FROM {quote_ident(staging)}")
            count = self.query(f"SELECT count(*) FROM {temp} s WHERE EXISTS "
                               f"(SELECT 1 FROM {self._qualified(table)} t WHERE {on})")[0][0]
            self.execute(f"DROP TABLE {temp}")
        return count

    def insert_from(self, staging: str, *, table: str, columns: Sequence[str]) -> int:
        cols = ", ".join(quote_ident(c) for c in columns)
        return self._copy_in(f"COPY {self._qualified(table)} ({cols}) FROM STDIN {_CSV_IN}",
                             f"SELECT {cols} FROM {quote_ident(staging)}")

    def load(
        self,
        staging: str,
        *,
        table: str,
        columns: Sequence[tuple[str, str]],
        key: Sequence[str],
        mode: str,
        run_id: str,
        after: Callable[[], None] | None = None,
    ) -> LoadResult:
        """Insert (or, with ``mode="upsert"``, replace rows by key) in one transaction, then
        ``after()`` inside it, then COMMIT."""
        if mode not in ("insert", "upsert"):
            raise ConfigError(f"unknown load mode {mode!r}")
        names = [c for c, _ in columns]
        cols = ", ".join(quote_ident(c) for c in names)
        target = self._qualified(table)
        replaced: tuple[dict[str, Any], ...] = ()
        updated = 0
        try:
            with self.transaction():
                existing = self._ensure_table(table, columns, key)
                stamp: datetime = self.query(f"SELECT {_NOW_UTC}")[0][0]
                if mode == "insert" or not key:
                    tags, lineage = quote_literal(run_id), quote_ident("_heal_run_id")
                    if not self._stamps_itself(target):
                        tags += f", {quote_literal(stamp.isoformat(sep=' '))}"
                        lineage += f", {quote_ident('_heal_loaded_at')}"
                    total = self._copy_in(f"COPY {target} ({cols}, {lineage}) FROM STDIN {_CSV_IN}",
                                          f"SELECT {cols}, {tags} FROM {quote_ident(staging)}")
                else:
                    total, updated, replaced = self._upsert(staging, target, names, existing, key,
                                                            run_id=run_id, stamp=stamp)
                if after is not None:
                    after()
        except duckdb.Error as exc:
            raise TargetError(f"load into {table} failed: {self._scrub(exc)}") from None
        return LoadResult(inserted=total - updated, updated=updated, replaced=replaced)

    def close(self) -> None:
        self.con.close()
        if not self._pg.closed:
            self._pg.close()

    # --- internals ---------------------------------------------------------------------------
    def _upsert(self, staging: str, target: str, names: list[str], existing: list[str], key: Sequence[str],
                *, run_id: str, stamp: datetime) -> tuple[int, int, tuple[dict[str, Any], ...]]:
        """COPY into a TEMP table, keep a sample of the rows about to be replaced, then merge:
        ON CONFLICT when a unique index covers the key, else delete-then-insert."""
        cols = ", ".join(quote_ident(c) for c in names)
        lineage = ", ".join(quote_ident(c) for c, _ in HEAL_COLUMNS)
        temp = quote_ident(f"heal_stage_{uuid.uuid4().hex[:12]}")
        on = " AND ".join(f"t.{quote_ident(k)} = s.{quote_ident(k)}" for k in key)
        matched = f"EXISTS (SELECT 1 FROM {temp} s WHERE {on})"
        self.execute(f"CREATE TEMP TABLE {temp} ON COMMIT DROP AS SELECT {cols} FROM {target} WITH NO DATA")
        total = self._copy_in(f"COPY {temp} ({cols}) FROM STDIN {_CSV_IN}",
                              f"SELECT {cols} FROM {quote_ident(staging)}")
        self.execute(f"ANALYZE {temp}")
        order = ", ".join(f"t.{quote_ident(k)}" for k in key)
        with self._guard("reading the rows to replace failed"):
            cur = self._conn().execute(f"SELECT t.* FROM {target} t WHERE {matched} ORDER BY {order} LIMIT 100")
            header = [d.name for d in cur.description or ()]
            replaced = tuple(dict(zip(header, row)) for row in cur.fetchall())
        updated = self.query(f"SELECT count(*) FROM {target} t WHERE {matched}")[0][0]
        insert = (f"INSERT INTO {target} ({cols}, {lineage}) SELECT {cols}, ?, ? FROM {temp}")
        if self._unique_on(target, key):
            # Replace the whole row, as a delete-then-insert would: columns absent from this
            # delivery become NULL.
            delivered = {_pg_name(c) for c in (*names, *(c for c, _ in HEAL_COLUMNS))}
            sets = [f"{quote_ident(c)} = EXCLUDED.{quote_ident(c)}" for c in (*names, *(c for c, _ in HEAL_COLUMNS))
                    if c not in key]
            sets += [f"{quote_ident(c)} = NULL" for c in existing if c not in delivered]
            keys = ", ".join(quote_ident(k) for k in key)
            self.execute(f"{insert} ON CONFLICT ({keys}) DO UPDATE SET {', '.join(sets)}", (run_id, stamp))
        else:
            self.execute(f"DELETE FROM {target} t USING {temp} s WHERE {on}")
            self.execute(insert, (run_id, stamp))
        return total, updated, replaced

    def _ensure_table(self, table: str, columns: Sequence[tuple[str, str]], key: Sequence[str]) -> list[str]:
        """Create the table (with a unique index on the key, and ``_heal_loaded_at`` defaulting to
        the load time) or add the columns it lacks; returns the columns it had before."""
        schema, _ = _split(table, "public")
        target = self._qualified(table)
        existing = self.table_columns(table)
        wanted = [(c, pg_type(t)) for c, t in [*columns, *HEAL_COLUMNS]]
        if existing is None:
            if not self.query("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = ?", (schema,)):
                self.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
            stamped = {"_heal_loaded_at": f" DEFAULT ({_NOW_UTC})"}  # so a COPY can leave it out
            defs = ", ".join(f"{quote_ident(c)} {t}{stamped.get(c, '')}" for c, t in wanted)
            self.execute(f"CREATE TABLE {target} ({defs})")
            if key:
                self.execute(f"CREATE UNIQUE INDEX ON {target} ({', '.join(quote_ident(k) for k in key)})")
            return []
        have = set(existing)
        for name, type_ in wanted:
            if _pg_name(name) not in have:  # schema evolution: new columns arrive nullable, no default
                self.execute(f"ALTER TABLE {target} ADD COLUMN {quote_ident(name)} {type_}")
                have.add(_pg_name(name))
        return existing

    def _stamps_itself(self, target: str) -> bool:
        """Whether ``_heal_loaded_at`` has a DEFAULT (ours: the transaction's start time, in UTC). A
        COPY then leaves it out: parsing a timestamp on every row costs a quarter of the COPY."""
        rows = self.query("SELECT atthasdef FROM pg_catalog.pg_attribute WHERE attrelid = to_regclass(?) "
                          "AND attname = '_heal_loaded_at' AND NOT attisdropped", (target,))
        return bool(rows and rows[0][0])

    def _unique_on(self, target: str, key: Sequence[str]) -> bool:
        """Whether a plain unique index has exactly the key's columns (what ON CONFLICT needs)."""
        attnames = dict(self.query(
            "SELECT attnum, attname FROM pg_catalog.pg_attribute WHERE attrelid = to_regclass(?) AND attnum > 0",
            (target,)))
        indexes = self.query(
            "SELECT indnkeyatts, indkey::int2[] FROM pg_catalog.pg_index WHERE indrelid = to_regclass(?) "
            "AND indisunique AND indisvalid AND indimmediate AND indpred IS NULL AND indexprs IS NULL",
            (target,))
        wanted = {_pg_name(k) for k in key}
        return any({attnames.get(n) for n in nums[:natts]} == wanted for natts, nums in indexes)

    def _copy_in(self, copy_sql: str, select_sql: str) -> int:
        """Stream the rows of DuckDB ``select_sql`` into PostgreSQL ``copy_sql`` (COPY ... FROM
        STDIN, CSV) through an OS pipe; returns the rows copied."""
        read_fd, write_fd = os.pipe()
        failed: list[duckdb.Error] = []

        def produce() -> None:
            try:
                self.con.execute(f"COPY ({select_sql}) TO '/dev/fd/{write_fd}' ({_CSV_OUT})")
            except duckdb.Error as exc:  # the reader raises it; a closed pipe ends up here too
                failed.append(exc)
            finally:
                os.close(write_fd)

        producer = threading.Thread(target=produce, name="heal-copy", daemon=True)
        producer.start()
        try:
            with self._guard("COPY failed"), self._conn().cursor() as cur:
                with cur.copy(copy_sql) as copy:
                    while chunk := os.read(read_fd, _PIPE_CHUNK):
                        copy.write(chunk)
                    producer.join()
                    if failed:
                        raise TargetError(f"reading the staged rows failed: {self._scrub(failed[0])}")
                return cur.rowcount
        finally:
            os.close(read_fd)  # a producer still writing gets EPIPE and stops
            producer.join()

    def _connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(**self._params, autocommit=True, prepare_threshold=None)
        except psycopg.Error as exc:
            raise TargetError(f"cannot connect to {self.url}: {self._scrub(exc)}",
                              transient=_transient(exc)) from None

    def _conn(self) -> psycopg.Connection:
        """The connection; reopened when it was lost between transactions (a server restart)."""
        if (self._pg.closed or self._pg.broken) and self._depth == 0:
            self._pg = self._connect()
        return self._pg

    def _qualified(self, table: str) -> str:
        schema, name = _split(table, "public")
        return f"{quote_ident(schema)}.{quote_ident(name)}"

    def _scrub(self, exc: BaseException) -> str:
        text = _first_line(exc)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as exc:
            raise TargetError(f"{what}: {self._scrub(exc)}", transient=_transient(exc)) from None


def _transient(exc: psycopg.Error) -> bool:
    """A lost connection, a lock not granted in time, a deadlock: a retry may succeed."""
    from psycopg import errors

    return isinstance(exc, (psycopg.OperationalError, errors.LockNotAvailable, errors.QueryCanceled,
                            errors.DeadlockDetected, errors.SerializationFailure, errors.AdminShutdown))


def _prepared(sql: str, params: Sequence[Any]) -> tuple[str, list[Any] | None]:
    # Without parameters psycopg sends the text untouched, so only convert when there are some.
    return (to_pyformat(sql), list(params)) if params else (sql, None)
