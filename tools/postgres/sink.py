"""PostgresSink: the PostgreSQL target, one connection, one transaction per load.

The run stages a delivery as TEMP tables on an in-memory DuckDB connection
(:meth:`PostgresSink.working_connection`); a load streams the staged rows in with COPY
(:mod:`tools.postgres.stream`). Inserts COPY straight into the target inside the load's
transaction; upserts COPY into a TEMP table, then merge by key. A process killed at any point
leaves the target as it was or fully loaded: the server rolls back a transaction whose client
is gone.

Outside :meth:`PostgresSink.transaction` every statement commits on its own, which is what the
ledger wants (each attempt is recorded as it happens). Errors become :class:`TargetError` with
the first line of the server's message and any password scrubbed.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import duckdb
import psycopg
from psycopg.conninfo import conninfo_to_dict

from tools.contract import quote_ident, quote_literal
from tools.postgres.sql import orders_alike, pg_name, pg_type, prepared, transient, unique_index_covers
from tools.postgres.stream import copy_staged
from tools.sinks import (
    HEAL_COLUMNS,
    LoadResult,
    _first_line,
    _split,
    configure_working_connection,
    redact_url,
)
from tools.verdict import ConfigError, TargetError

__all__ = ["PostgresSink"]

#: When a row was loaded: the transaction's start, in UTC like the ledger's timestamps.
_NOW_UTC = "now() AT TIME ZONE 'UTC'"


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
            self._conn().execute(*prepared(sql, params))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._guard("query failed"):
            cur = self._conn().execute(*prepared(sql, params))
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
        """Staged rows whose key is already in ``table``: none when no loaded key falls in the
        staged keys' range, else the staged keys are copied to a PG TEMP table and joined there."""
        if not key or self.table_columns(table) is None or self._outside_loaded_range(staging, table, key[0]):
            return 0
        keys = ", ".join(quote_ident(k) for k in key)
        temp = quote_ident(f"heal_keys_{uuid.uuid4().hex[:12]}")
        on = " AND ".join(f"t.{quote_ident(k)} = s.{quote_ident(k)}" for k in key)
        with self.transaction():
            self.execute(f"CREATE TEMP TABLE {temp} ON COMMIT DROP AS "
                         f"SELECT {keys} FROM {self._qualified(table)} WITH NO DATA")
            self._copy_in(temp, staging, key)
            count = self.query(f"SELECT count(*) FROM {temp} s WHERE EXISTS "
                               f"(SELECT 1 FROM {self._qualified(table)} t WHERE {on})")[0][0]
            self.execute(f"DROP TABLE {temp}")
        return count

    def insert_from(self, staging: str, *, table: str, columns: Sequence[str]) -> int:
        return self._copy_in(self._qualified(table), staging, columns)

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
        target = self._qualified(table)
        replaced: tuple[dict[str, Any], ...] = ()
        updated = 0
        try:
            with self.transaction():
                stamp: datetime = self.query(f"SELECT {_NOW_UTC}")[0][0]
                existing = self.table_columns(table)
                if existing is None:  # a new table: nothing to replace, whatever the mode
                    total = self._create_and_copy(staging, table, columns, key, run_id=run_id, stamp=stamp)
                else:
                    self._add_columns(target, columns, existing)
                    if mode == "upsert" and key:
                        total, updated, replaced = self._upsert(staging, target, names, existing, key,
                                                                run_id=run_id, stamp=stamp)
                    else:
                        tags = [("_heal_run_id", quote_literal(run_id))]
                        if not self._stamps_itself(target):
                            tags.append(("_heal_loaded_at", quote_literal(stamp.isoformat(sep=" "))))
                        total = self._copy_in(target, staging, names, tags=tags)
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
        total = self._copy_in(temp, staging, names)
        self.execute(f"ANALYZE {temp}")
        order = ", ".join(f"t.{quote_ident(k)}" for k in key)
        with self._guard("reading the rows to replace failed"):
            cur = self._conn().execute(f"SELECT t.* FROM {target} t WHERE {matched} ORDER BY {order} LIMIT 100")
            header = [d.name for d in cur.description or ()]
            replaced = tuple(dict(zip(header, row)) for row in cur.fetchall())
        updated = self.query(f"SELECT count(*) FROM {target} t WHERE {matched}")[0][0]
        insert = (f"INSERT INTO {target} ({cols}, {lineage}) SELECT {cols}, ?, ? FROM {temp}")
        if unique_index_covers(self.query, target, key):
            # Replace the whole row, as a delete-then-insert would: columns absent from this
            # delivery become NULL.
            delivered = {pg_name(c) for c in (*names, *(c for c, _ in HEAL_COLUMNS))}
            sets = [f"{quote_ident(c)} = EXCLUDED.{quote_ident(c)}" for c in (*names, *(c for c, _ in HEAL_COLUMNS))
                    if c not in key]
            sets += [f"{quote_ident(c)} = NULL" for c in existing if c not in delivered]
            keys = ", ".join(quote_ident(k) for k in key)
            self.execute(f"{insert} ON CONFLICT ({keys}) DO UPDATE SET {', '.join(sets)}", (run_id, stamp))
        else:
            self.execute(f"DELETE FROM {target} t USING {temp} s WHERE {on}")
            self.execute(insert, (run_id, stamp))
        return total, updated, replaced

    def _create_and_copy(self, staging: str, table: str, columns: Sequence[tuple[str, str]], key: Sequence[str],
                         *, run_id: str, stamp: datetime) -> int:
        """Create the table and fill it, in the load's transaction; returns the rows copied.

        The table ends with a unique index on the key and ``_heal_loaded_at`` defaulting to the
        load time (so later COPYs can leave it out). For its first COPY the lineage columns default
        to this run's values instead, so each row carries only its data; and the unique index is
        built once over the loaded rows, which costs a fraction of updating it row by row."""
        schema, _ = _split(table, "public")
        target = self._qualified(table)
        if not self.query("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = ?", (schema,)):
            self.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
        first = {"_heal_run_id": quote_literal(run_id),
                 "_heal_loaded_at": f"{quote_literal(stamp.isoformat(sep=' '))}::TIMESTAMP"}
        defs = ", ".join(f"{quote_ident(c)} {pg_type(t)}" + (f" DEFAULT {first[c]}" if c in first else "")
                         for c, t in [*columns, *HEAL_COLUMNS])
        self.execute(f"CREATE TABLE {target} ({defs})")
        # Rows written frozen (allowed: the table is new in this (sub)transaction) need no hint
        # bits set by their first reader, nor freezing by a later VACUUM.
        total = self._copy_in(target, staging, [c for c, _ in columns], freeze=True)
        self.execute(f"ALTER TABLE {target} ALTER COLUMN {quote_ident('_heal_run_id')} DROP DEFAULT, "
                     f"ALTER COLUMN {quote_ident('_heal_loaded_at')} SET DEFAULT ({_NOW_UTC})")
        if key:
            self.execute(f"CREATE UNIQUE INDEX ON {target} ({', '.join(quote_ident(k) for k in key)})")
        return total

    def _add_columns(self, target: str, columns: Sequence[tuple[str, str]], existing: list[str]) -> None:
        """Schema evolution: the columns the table lacks arrive nullable, with no default."""
        have = set(existing)
        for name, type_ in [*columns, *HEAL_COLUMNS]:
            if pg_name(name) not in have:
                self.execute(f"ALTER TABLE {target} ADD COLUMN {quote_ident(name)} {pg_type(type_)}")
                have.add(pg_name(name))

    def _outside_loaded_range(self, staging: str, table: str, column: str) -> bool:
        """Whether no loaded row's ``column`` lies between the least and greatest staged value: then
        no staged key can match a loaded one, and key_conflicts needs no copy of the staged keys.
        Only for numbers and dates (see :func:`orders_alike`)."""
        target = self._qualified(table)
        kind = self.query("SELECT format_type(atttypid, atttypmod) FROM pg_catalog.pg_attribute "
                          "WHERE attrelid = to_regclass(?) AND attname = ? AND NOT attisdropped",
                          (target, pg_name(column)))
        col = quote_ident(column)
        staged = str(self.con.sql(f"SELECT {col} FROM {quote_ident(staging)} LIMIT 0").types[0])
        if not kind or not orders_alike(kind[0][0], staged):
            return False
        low, high = self.con.execute(f"SELECT min({col}), max({col}) FROM {quote_ident(staging)}").fetchone()
        if low is None:  # every staged key has a NULL here, and NULL matches nothing
            return True
        cast = kind[0][0]  # from the catalog: a type name such as bigint or numeric(18,2)
        return not self.query(f"SELECT 1 FROM {target} WHERE {col} BETWEEN CAST(? AS {cast}) AND CAST(? AS {cast}) "
                              "LIMIT 1", (low, high))

    def _stamps_itself(self, target: str) -> bool:
        """Whether ``_heal_loaded_at`` has a DEFAULT (ours: the transaction's start time, in UTC). A
        COPY then leaves it out: parsing a timestamp on every row costs a quarter of the COPY."""
        rows = self.query("SELECT atthasdef FROM pg_catalog.pg_attribute WHERE attrelid = to_regclass(?) "
                          "AND attname = '_heal_loaded_at' AND NOT attisdropped", (target,))
        return bool(rows and rows[0][0])

    def _copy_in(self, into: str, staging: str, names: Sequence[str], *,
                 tags: Sequence[tuple[str, str]] = (), freeze: bool = False) -> int:
        with self._guard("COPY failed"):
            return copy_staged(self.con, self._conn(), into=into, staging=staging, names=names, tags=tags,
                               freeze=freeze, scrub=self._scrub)

    def _connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(**self._params, autocommit=True, prepare_threshold=None)
        except psycopg.Error as exc:
            raise TargetError(f"cannot connect to {self.url}: {self._scrub(exc)}",
                              transient=transient(exc)) from None

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
            raise TargetError(f"{what}: {self._scrub(exc)}", transient=transient(exc)) from None
