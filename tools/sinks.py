"""Targets a run loads into, chosen by URL scheme, behind one small protocol.

A sink owns one connection to the target database. The run stages a delivery in DuckDB
(the sink's :meth:`Sink.working_connection`), then :meth:`Sink.load` moves it into the target
in one transaction, together with whatever the ledger must record atomically with it
(the ``after`` callback runs inside that transaction, before the commit).

The ledger lives in the same database (schema ``heal``) and speaks SQL through
:meth:`Sink.execute` / :meth:`Sink.query` with ``?`` placeholders.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import duckdb

from tools.contract import quote_ident
from tools.verdict import ConfigError, Criterion, RunLocked, TargetError

__all__ = [
    "HEAL_COLUMNS",
    "DuckDBSink",
    "LoadResult",
    "VerifiedLoad",
    "Sink",
    "LOAD_CLASSES",
    "configure_working_connection",
    "load_criteria",
    "stage_file",
    "default_schema",
    "load_and_verify",
    "open_sink",
    "qualified_name",
    "redact_url",
]

#: Lineage columns every target row carries: which run wrote it, and when.
HEAL_COLUMNS: tuple[tuple[str, str], ...] = (("_heal_run_id", "VARCHAR"), ("_heal_loaded_at", "TIMESTAMP"))


@dataclass(frozen=True)
class LoadResult:
    inserted: int
    updated: int
    replaced: tuple[dict[str, Any], ...] = ()  # old versions of updated rows (capped sample)


class Sink(Protocol):
    url: str  # safe to print: credentials redacted
    dialect: str  # "duckdb" | "postgresql"

    def working_connection(self) -> duckdb.DuckDBPyConnection: ...
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...
    def transaction(self) -> contextlib.AbstractContextManager[None]: ...
    def table_columns(self, table: str) -> list[str] | None: ...
    def key_conflicts(self, staging: str, *, table: str, key: Sequence[str]) -> int: ...
    def insert_from(self, staging: str, *, table: str, columns: Sequence[str]) -> int: ...
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
    ) -> LoadResult: ...
    def close(self) -> None: ...


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


def configure_working_connection(con: duckdb.DuckDBPyConnection, *, memory_limit: str | None = None) -> None:
    """Bound DuckDB's memory so large deliveries spill to disk instead of growing the process, and
    keep it quiet."""
    limit = memory_limit or os.environ.get("HEAL_MEMORY_LIMIT", "512MB")
    con.execute(f"SET memory_limit = '{limit}'")
    # A query past two seconds would draw a progress bar on stdout, into `heal run --json`'s output.
    con.execute("SET enable_progress_bar = false")
    con.execute("SET preserve_insertion_order = false")
    spill = Path(os.environ.get("HEAL_TEMP_DIR") or tempfile.gettempdir()) / "heal-spill"
    con.execute(f"SET temp_directory = '{spill.as_posix()}'")


class DuckDBSink:
    """A DuckDB file: staging tables are TEMP tables on the same connection."""

    dialect = "duckdb"

    def __init__(self, path: str | Path, *, memory_limit: str | None = None) -> None:
        self.path = Path(path)
        self.url = f"duckdb:///{self.path}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(self.path))
        except duckdb.Error as exc:
            if "lock" in str(exc).lower():  # DuckDB lets one process write a file at a time
                raise RunLocked(f"another process has {self.path} open ({_first_line(exc)}); "
                                "wait for it to finish") from None
            raise TargetError(f"cannot open DuckDB target {self.path}: {_first_line(exc)}") from None
        configure_working_connection(self.con, memory_limit=memory_limit)

    def working_connection(self) -> duckdb.DuckDBPyConnection:
        return self.con

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.con.execute(sql, list(params))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, list(params)).fetchall()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def table_columns(self, table: str) -> list[str] | None:
        schema, name = _split(table)
        rows = self.query(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? AND table_catalog = current_database() "
            "ORDER BY ordinal_position",
            (schema, name),
        )
        return [r[0] for r in rows] or None

    def key_conflicts(self, staging: str, *, table: str, key: Sequence[str]) -> int:
        if not key or self.table_columns(table) is None:
            return 0
        on = " AND ".join(f"t.{quote_ident(k)} = s.{quote_ident(k)}" for k in key)
        sql = f"SELECT count(*) FROM {quote_ident(staging)} s WHERE EXISTS (SELECT 1 FROM {_qualified(table)} t WHERE {on})"
        return self.query(sql)[0][0]

    def insert_from(self, staging: str, *, table: str, columns: Sequence[str]) -> int:
        cols = ", ".join(quote_ident(c) for c in columns)
        self.execute(f"INSERT INTO {_qualified(table)} ({cols}) SELECT {cols} FROM {quote_ident(staging)}")
        return self.query(f"SELECT count(*) FROM {quote_ident(staging)}")[0][0]

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
        """Insert (or, with ``mode="upsert"``, replace rows by key) in one transaction."""
        names = [c for c, _ in columns]
        cols = ", ".join(quote_ident(c) for c in names)
        lineage = ", ".join(quote_ident(c) for c, _ in HEAL_COLUMNS)
        target = _qualified(table)
        try:
            with self.transaction():
                self._ensure_table(table, columns)
                replaced: tuple[dict[str, Any], ...] = ()
                updated = 0
                if mode == "upsert" and key:
                    on = " AND ".join(f"t.{quote_ident(k)} = s.{quote_ident(k)}" for k in key)
                    matched = f"EXISTS (SELECT 1 FROM {quote_ident(staging)} s WHERE {on})"
                    cur = self.con.execute(f"SELECT * FROM {target} t WHERE {matched} LIMIT 100")
                    header = [d[0] for d in cur.description]
                    replaced = tuple(dict(zip(header, row)) for row in cur.fetchall())
                    updated = self.query(f"SELECT count(*) FROM {target} t WHERE {matched}")[0][0]
                    self.execute(f"DELETE FROM {target} t WHERE {matched}")
                elif mode != "insert":
                    raise ConfigError(f"unknown load mode {mode!r}")
                self.execute(
                    f"INSERT INTO {target} ({cols}, {lineage}) "
                    f"SELECT {cols}, ?, now()::TIMESTAMP FROM {quote_ident(staging)}",
                    (run_id,),
                )
                total = self.query(f"SELECT count(*) FROM {quote_ident(staging)}")[0][0]
                if after is not None:
                    after()
        except duckdb.Error as exc:
            raise TargetError(f"load into {table} failed: {_first_line(exc)}") from None
        return LoadResult(inserted=total - updated, updated=updated, replaced=replaced)

    def _ensure_table(self, table: str, columns: Sequence[tuple[str, str]]) -> None:
        existing = self.table_columns(table)
        schema, _ = _split(table)
        self.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
        if existing is None:
            defs = ", ".join(f"{quote_ident(c)} {t}" for c, t in [*columns, *HEAL_COLUMNS])
            self.execute(f"CREATE TABLE {_qualified(table)} ({defs})")
            return
        for name, type_ in columns:
            if name not in existing:  # schema evolution: new columns arrive nullable
                self.execute(f"ALTER TABLE {_qualified(table)} ADD COLUMN {quote_ident(name)} {type_}")

    def close(self) -> None:
        self.con.close()


def open_sink(url: str, *, base_dir: Path | None = None) -> Sink:
    """The sink for a target URL: ``duckdb:///path.duckdb`` or ``postgresql://...``."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme == "duckdb":
        raw = url[len("duckdb://"):]
        # duckdb:///rel/path is relative; duckdb:////abs/path is absolute.
        path = Path(raw[1:] if raw.startswith("/") else raw)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        return DuckDBSink(path)
    if scheme in ("postgresql", "postgres"):
        from tools.postgres import PostgresSink  # deferred: psycopg only when used

        return PostgresSink(url)
    raise ConfigError(f"unsupported target {redact_url(url)!r}: use duckdb:///file.duckdb or postgresql://...")


@dataclass(frozen=True)
class VerifiedLoad:
    result: LoadResult
    rows_sent: int
    rows_tagged: int  # target rows carrying this run's id, counted inside the transaction
    duplicate_keys: int  # keys held more than once in the target, inside the transaction


def load_and_verify(
    sink: Sink,
    staging: str,
    *,
    table: str,
    columns: Sequence[tuple[str, str]],
    key: Sequence[str],
    mode: str,
    run_id: str,
    after: Callable[[], None] | None = None,
) -> VerifiedLoad:
    """Load, then check inside the same transaction that the target holds exactly the rows
    sent and a unique key; roll back (TargetError) when it does not."""
    checked: dict[str, int] = {}
    target = _qualified(table, default_schema(sink.dialect))

    def verify_then_record() -> None:
        sent = checked["sent"]
        nulls = " OR ".join(f"{quote_ident(k)} IS NULL" for k in key) or "false"
        tagged, null_keyed = sink.query(
            f"SELECT count(*), count(*) FILTER (WHERE {nulls}) FROM {target} WHERE _heal_run_id = ?", (run_id,))[0]
        dupes = _duplicate_keys(sink, target, key, run_id=run_id, null_keyed=null_keyed) if key else 0
        checked.update(tagged=tagged, dupes=dupes)
        if tagged != sent or dupes:
            raise TargetError(
                f"load into {table} did not verify: {tagged} rows tagged for {sent} sent, "
                f"{dupes} duplicate keys; rolled back"
            )
        if after is not None:
            after()

    con = sink.working_connection()
    checked["sent"] = con.execute(f"SELECT count(*) FROM {quote_ident(staging)}").fetchone()[0]
    result = sink.load(staging, table=table, columns=columns, key=key, mode=mode, run_id=run_id,
                       after=verify_then_record)
    return VerifiedLoad(result, checked["sent"], checked["tagged"], checked["dupes"])


#: The widest key range (in values) whose uniqueness DuckDB proves with one bitstring (16 MiB).
_BITSTRING_RANGE = 1 << 27
_BITSTRING_TYPES = ("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "UINTEGER", "USMALLINT", "UTINYINT")


def _duplicate_keys(sink: Sink, target: str, key: Sequence[str], *, run_id: str, null_keyed: int) -> int:
    """Keys held more than once in the target, among the keys of this run's rows (a key no row of
    this run holds was verified by the run that loaded it). NULLs group together, as in GROUP BY.

    The exact count is a join and a GROUP BY over the target; it runs only when a cheaper proof
    fails: in PostgreSQL, a unique index on the key (NULL keys aside); in DuckDB, this run's keys
    distinct among themselves and held by no other row."""
    if sink.dialect == "postgresql" and not null_keyed:
        from tools.postgres import unique_index_covers  # deferred: psycopg only when used

        if unique_index_covers(sink.query, target, key):
            return 0
    if sink.dialect == "duckdb" and _unique_in_duckdb(sink, target, key, run_id=run_id, null_keyed=null_keyed):
        return 0
    cols = ", ".join(quote_ident(k) for k in key)
    same = " AND ".join(f"m.{quote_ident(k)} = t.{quote_ident(k)}" for k in key)
    nulls = " OR ".join(f"t.{quote_ident(k)} IS NULL" for k in key)
    rows = f"SELECT {cols}, _heal_run_id FROM {target} t"  # rows with a key of this run, or a NULL in it
    return sink.query(
        f"SELECT count(*) FROM (SELECT {cols} FROM ("
        f"{rows} WHERE EXISTS (SELECT 1 FROM {target} m WHERE m._heal_run_id = ? AND {same}) "
        f"UNION ALL {rows} WHERE {nulls}) u "
        f"GROUP BY {cols} HAVING count(*) > 1 AND bool_or(_heal_run_id = ?)) d",
        (run_id, run_id),
    )[0][0]


def _unique_in_duckdb(sink: Sink, target: str, key: Sequence[str], *, run_id: str, null_keyed: int) -> bool:
    """Whether no key of this run's rows is held by two rows, proven cheaply in DuckDB: this run's
    keys are distinct among themselves, and no other row holds one of them (NULL matching NULL)."""
    mine = f"FROM {target} WHERE _heal_run_id = ?"
    first = quote_ident(key[0])
    kind, low, high, valued, rows = sink.query(
        f"SELECT typeof(min({first})), min({first}), max({first}), count({first}), count(*) {mine}", (run_id,))[0]
    if low is None and len(key) == 1:
        distinct = null_keyed <= 1
    elif len(key) == 1 and null_keyed <= 1 and kind in _BITSTRING_TYPES and high - low < _BITSTRING_RANGE:
        # Each distinct value sets one bit of a bitstring over the range, so the values are
        # distinct when the bits set equal the values: one pass, no hash table.
        bits = sink.query(f"SELECT bit_count(bitstring_agg({first}, {int(low)}, {int(high)})) {mine}", (run_id,))
        distinct = bits[0][0] == valued
    else:
        cols = ", ".join(quote_ident(k) for k in key)
        distinct = not sink.query(f"SELECT 1 {mine} GROUP BY {cols} HAVING count(*) > 1 LIMIT 1", (run_id,))
    if not distinct:
        return False
    # Other rows whose first key column is in this run's range, or NULL when one of this run's is:
    # none (zone maps skip most row groups), so none can hold a key of this run.
    near, params = (["false"], []) if low is None else ([f"{first} BETWEEN ? AND ?"], [low, high])
    if valued < rows:
        near.append(f"{first} IS NULL")
    others = f"FROM {target} t WHERE t._heal_run_id IS DISTINCT FROM ?"
    if not sink.query(f"SELECT 1 {others} AND ({' OR '.join(near)}) LIMIT 1", (run_id, *params)):
        return True
    same = " AND ".join(f"m.{quote_ident(k)} IS NOT DISTINCT FROM t.{quote_ident(k)}" for k in key)
    return not sink.query(f"SELECT 1 {others} AND EXISTS (SELECT 1 FROM {target} m WHERE m._heal_run_id = ? "
                          f"AND {same}) LIMIT 1", (run_id, run_id))


def qualified_name(table: str, dialect: str) -> str:
    """``schema.table`` quoted, with the dialect's default schema when ``table`` names none."""
    return _qualified(table, default_schema(dialect))


def default_schema(dialect: str) -> str:
    """The schema an unqualified table name lives in: ``main`` in DuckDB, ``public`` in PostgreSQL."""
    return "public" if dialect == "postgresql" else "main"


LOAD_CLASSES = {"target_available": "transient", "all_rows_in": "load_failed"}


def load_criteria(
    sink: Sink,
    staging: str,
    *,
    table: str,
    columns: Sequence[tuple[str, str]],
    key: Sequence[str],
    mode: str,
    run_id: str,
    after: Callable[[], None] | None = None,
) -> tuple[list[Criterion], VerifiedLoad | None]:
    """Load and verify, as the criteria load-target and upsert-load report (see LOAD_CLASSES):
    ``target_available`` fails when a retry may help, ``all_rows_in`` when the load rolled back."""
    try:
        done = load_and_verify(sink, staging, table=table, columns=columns, key=key, mode=mode,
                               run_id=run_id, after=after)
    except TargetError as exc:
        if exc.transient:  # a lost connection or a lock not granted: nothing loaded, a retry may work
            return [Criterion("target_available", False, str(exc), "the target accepts the load",
                              "retry with backoff; nothing was loaded")], None
        return [Criterion("target_available", True, "yes", "yes"),
                Criterion("all_rows_in", False, str(exc), "every row, in one transaction",
                          "nothing was loaded: the transaction rolled back")], None
    return [Criterion("target_available", True, "yes", "yes"),
            Criterion("all_rows_in", True, done.rows_tagged, done.rows_sent)], done


def stage_file(sink: Sink, path: str, *, types: dict[str, str], table: str = "to_load") -> tuple[str, list[tuple[str, str]]]:
    """Read a file of rows to load (a checker run by hand) into the sink's staging area.

    Returns the staging table and its columns typed per ``types`` (others stay text)."""
    from tools.readers import read_delivery  # deferred: only the scripts need it

    delivery = read_delivery(sink.working_connection(), path, table=table)
    return delivery.table, [(c, types.get(c, "VARCHAR")) for c in delivery.columns]


def _split(table: str, default: str = "main") -> tuple[str, str]:
    schema, _, name = table.rpartition(".")
    return (schema or default, name)


def _qualified(table: str, default: str = "main") -> str:
    schema, name = _split(table, default)
    return f"{quote_ident(schema)}.{quote_ident(name)}"


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
