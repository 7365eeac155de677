"""Staged rows into PostgreSQL: DuckDB writes them as CSV into an OS pipe, COPY ... FROM STDIN
reads the other end. Nothing is held in Python objects and nothing is written to disk."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence

import duckdb
import psycopg

from tools.contract import quote_ident
from tools.verdict import TargetError

__all__ = ["copy_staged"]

#: How DuckDB writes the CSV that COPY reads: NULL unquoted and empty, an empty string as "", and
#: quotes only around values that need them (a comma, a quote, a line break).
_CSV_OUT = "FORMAT csv, HEADER false, USE_TMP_FILE false"
#: DuckDB types whose CSV text is never ``\.``: COPY takes a line holding only ``\.`` for its
#: end-of-data marker, which a row of one column of any other type could be, unless quoted.
_PLAIN_TYPES = re.compile(
    r"(U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?|DECIMAL\(\d+,\d+\)|DOUBLE|FLOAT|REAL|DATE|TIME|TIMESTAMP"
    r"|TIMESTAMP WITH TIME ZONE|BOOLEAN|UUID)"
)
_PIPE_CHUNK = 1 << 20


def copy_staged(con: duckdb.DuckDBPyConnection, pg: psycopg.Connection, *, into: str, staging: str,
                names: Sequence[str], tags: Sequence[tuple[str, str]] = (), freeze: bool = False,
                scrub: Callable[[BaseException], str] = str) -> int:
    """COPY the ``names`` columns of DuckDB table ``staging`` (plus ``tags``: pairs of a column and
    a SQL literal, the same for every row) into PostgreSQL table ``into`` (quoted); returns the
    rows copied. ``freeze``: the table is new in this (sub)transaction, so its rows may be written
    frozen. psycopg errors propagate; a failure on the DuckDB side is a TargetError worded by
    ``scrub``."""
    select_sql, options = _csv_rows(con, staging, names, [v for _, v in tags])
    cols = ", ".join(quote_ident(c) for c in [*names, *(c for c, _ in tags)])
    copy_sql = f"COPY {into} ({cols}) FROM STDIN (FORMAT csv{', FREEZE' if freeze else ''})"
    read_fd, write_fd = os.pipe()
    # A 1 MiB pipe rather than 64 KiB: when COPY is the slower end, the producer wakes a
    # sixteenth as often and spends about half the CPU.
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, _PIPE_CHUNK)
    failed: list[duckdb.Error] = []

    def produce() -> None:
        try:
            con.execute(f"COPY ({select_sql}) TO '/dev/fd/{write_fd}' ({options})")
        except duckdb.Error as exc:  # the reader raises it; a closed pipe ends up here too
            failed.append(exc)
        finally:
            os.close(write_fd)

    producer = threading.Thread(target=produce, name="heal-copy", daemon=True)
    with _writes_in_line(con):
        producer.start()
        try:
            with pg.cursor() as cur:
                with cur.copy(copy_sql) as copy:
                    while chunk := os.read(read_fd, _PIPE_CHUNK):
                        copy.write(chunk)
                    producer.join()
                    if failed:
                        raise TargetError(f"reading the staged rows failed: {scrub(failed[0])}")
                return cur.rowcount
        finally:
            os.close(read_fd)  # a producer still writing gets EPIPE and stops
            producer.join()


def _csv_rows(con: duckdb.DuckDBPyConnection, staging: str, names: Sequence[str],
              literals: Sequence[str]) -> tuple[str, str]:
    r"""The DuckDB query for a COPY's rows (the staged ``names``, then constant ``literals``) and
    the options to write it as CSV. A line of several columns always holds a comma, so only a
    single column that may hold text is quoted throughout (a lone ``\.`` would end the COPY)."""
    exprs = [*(quote_ident(c) for c in names), *literals]
    select = f"SELECT {', '.join(exprs)} FROM {quote_ident(staging)}"
    if len(exprs) > 1 or (names and _PLAIN_TYPES.fullmatch(str(con.sql(f"{select} LIMIT 0").types[0]))):
        return select, _CSV_OUT
    return select, f"{_CSV_OUT}, FORCE_QUOTE *"


@contextlib.contextmanager
def _writes_in_line(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """DuckDB (2.x) hands COPY TO's writes to async I/O threads, which wait on a full pipe by
    spinning on sched_yield: CPU taken from the PostgreSQL backend parsing the other end on the
    same machine. Write in line instead, for this COPY only."""
    row = con.execute("SELECT value FROM duckdb_settings() WHERE name = 'async_threads'").fetchone()
    if row is None or row[0] == "0":
        yield
        return
    con.execute("SET async_threads = 0")
    try:
        yield
    finally:
        con.execute(f"SET async_threads = {int(row[0])}")
