"""DuckDB statements that append one sniffed part to the delivery table.

DuckDB does the heavy work in one pass per part: ``read_csv`` with every option set
explicitly (``auto_detect=false``, so it never samples again), ``read_json_objects`` or
``read_parquet``; ``row_number() OVER ()`` numbers rows in file order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb

from tools.readers.dialect import Dialect

__all__ = [
    "NULL_SENTINEL",
    "ident",
    "insert_csv",
    "insert_json",
    "insert_parquet",
    "json_keys",
    "json_rows",
    "literal",
    "parquet_names",
]

#: Passed as ``nullstr`` so an empty field reads as '' and NULL means "field missing".
NULL_SENTINEL = "\uffff\ufffeheal-null\ufffe\uffff"
_NEWLINE_SQL = {"\n": "\\n", "\r\n": "\\r\\n", "\r": "\\r"}
_UNIT_SEPARATOR = "\x1f"  # never raw inside valid JSON, so a JSON line never splits on it


def ident(name: str) -> str:
    """A quoted SQL identifier, whatever the name holds."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _read_csv(
    path: Path,
    *,
    columns: Sequence[str],
    header: bool,
    skip: int,
    delim: str,
    quote: str,
    escape: str,
    newline: str,
    parallel: bool,
) -> str:
    declared = ", ".join(f"{literal(c)}: 'VARCHAR'" for c in [*columns, "cx"])
    return (
        f"read_csv({literal(str(path))}, columns={{{declared}}}, header={str(header).lower()}, "
        f"skip={skip}, delim={literal(delim)}, quote={literal(quote)}, escape={literal(escape)}, "
        f"new_line={literal(_NEWLINE_SQL[newline])}, auto_detect=false, strict_mode=false, "
        f"null_padding=true, allow_quoted_nulls=false, nullstr={literal(NULL_SENTINEL)}, "
        f"parallel={str(parallel).lower()})"
    )


def _insert(table: str, targets: Sequence[str]) -> str:
    cols = ", ".join([*(ident(t) for t in targets), '"_row"', '"_error"'])
    return f"INSERT INTO {ident(table)} ({cols}) "


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


def insert_csv(
    con: duckdb.DuckDBPyConnection, table: str, path: Path, dialect: Dialect, *, targets: Sequence[str], offset: int
) -> int:
    """Append a CSV part; a record with too many or too few fields gets ``wrong_field_count``.

    Columns are declared as ``c0..c<n-1>`` plus an overflow ``cx`` with null padding, so a
    NULL in the last column means a short record and a value in ``cx`` a long one.
    """
    # row_number() OVER () keeps this statement on one thread (DuckDB's streaming window is not
    # parallel), yet it is the cheapest file-order number: read_csv (DuckDB 2.0) has no row-number
    # column, and numbering afterwards from rowid (UPDATE, ADD COLUMN ... DEFAULT nextval) took
    # longer and kept ~20 bytes a row of undo memory.
    width = dialect.width
    values = ", ".join(f"c{i}" for i in range(width))
    check = f"CASE WHEN cx IS NOT NULL OR c{width - 1} IS NULL THEN 'wrong_field_count' END"
    parallel = not dialect.quoted_newlines
    while True:
        source = _read_csv(
            path,
            columns=[f"c{i}" for i in range(width)],
            header=dialect.header,
            skip=dialect.skip_lines,
            delim=dialect.delimiter,
            quote=dialect.quote,
            escape=dialect.escape,
            newline=dialect.newline,
            parallel=parallel,
        )
        sql = _insert(table, targets) + f"SELECT {values}, row_number() OVER () + {offset}, {check} FROM {source}"
        try:
            return _count(con, sql)
        except duckdb.Error as err:
            # A quoted line break past the sample: the parallel scanner refuses null padding.
            if not parallel or "parallel" not in str(err):
                raise
            parallel = False


def _lines(path: Path, newline: str, *, numbered: bool = True) -> str:
    """Each non-blank line of a JSON Lines file, as ``line, cx`` plus its 1-based ordinal ``rn``.

    ``numbered=False`` leaves ``rn`` out: ``row_number() OVER ()`` runs on one thread.
    """
    source = _read_csv(
        path,
        columns=["line"],
        header=False,
        skip=0,
        delim=_UNIT_SEPARATOR,
        quote="",
        escape="",
        newline=newline,
        parallel=True,
    )
    # A line that starts with "{" is not blank: only other lines pay for trim() (a copy of the line).
    filled = "CASE WHEN starts_with(line, '{') THEN true ELSE coalesce(trim(line), '') <> '' END"
    lines = f"(SELECT line, cx FROM {source} WHERE {filled})"
    return f"(SELECT line, cx, row_number() OVER () AS rn FROM {lines})" if numbered else lines


def _objects(path: Path, fmt: str, newline: str, *, numbered: bool = True) -> str:
    """Rows ``line, rn, is_obj`` (``rn`` only if ``numbered``) for a JSON Lines file or a JSON array."""
    rn = "rn, " if numbered else ""
    if fmt == "jsonl":
        src = _lines(path, newline, numbered=numbered)
        # Valid JSON that starts with "{" is an object: one parse instead of json_valid + json_type.
        valid = (
            "CASE WHEN cx IS NOT NULL THEN false WHEN starts_with(line, '{') THEN json_valid(line) "
            "WHEN json_valid(line) THEN json_type(line) = 'OBJECT' ELSE false END"
        )
    else:
        number = ", row_number() OVER () AS rn" if numbered else ""
        src = f"(SELECT json AS line{number} FROM read_json_objects({literal(str(path))}, format='array'))"
        valid = "coalesce(json_type(line) = 'OBJECT', false)"
    return f"(SELECT line, {rn}{valid} AS is_obj FROM {src})"


def json_keys(con: duckdb.DuckDBPyConnection, path: Path, *, fmt: str, newline: str = "\n") -> list[str]:
    """Every key of every object, in order of first appearance.

    Usually every object has the same keys in the same order: one parallel pass without row
    numbers shows that (it stops at the first object that differs), and the keys are that
    list. Otherwise a second pass orders every key by the row and position it first appears at.
    """
    objects = _objects(path, fmt, newline, numbered=False)
    first = con.execute(f"SELECT json_keys(line) FROM {objects} WHERE is_obj LIMIT 1").fetchone()
    if first is None:
        return []
    if con.execute(f"SELECT 1 FROM {objects} WHERE is_obj AND json_keys(line) <> ? LIMIT 1", [first[0]]).fetchone() is None:
        return list(dict.fromkeys(first[0]))  # a key repeated inside an object counts once
    sql = (
        "SELECT k FROM (SELECT rn, unnest(json_keys(line)) AS k, "
        "unnest(range(len(json_keys(line)))) AS pos "
        f"FROM {_objects(path, fmt, newline)} WHERE is_obj) GROUP BY k ORDER BY min(rn * 1000000 + pos)"
    )
    return [r[0] for r in con.execute(sql).fetchall()]


def json_rows(con: duckdb.DuckDBPyConnection, path: Path, *, fmt: str, newline: str = "\n") -> int:
    """How many non-blank lines (JSON Lines) or elements (array) there are."""
    return _count(con, f"SELECT count(*) FROM {_objects(path, fmt, newline, numbered=False)}")


def _pointer(key: str) -> str:
    return literal("/" + key.replace("~", "~0").replace("/", "~1"))


def insert_json(
    con: duckdb.DuckDBPyConnection,
    table: str,
    path: Path,
    *,
    fmt: str,
    keys: Sequence[str],
    targets: Sequence[str],
    offset: int,
    newline: str = "\n",
) -> int:
    """Append JSON objects; values are their JSON text (strings unquoted); a bad line gets ``invalid_json``."""
    if keys:
        paths = "[" + ", ".join(_pointer(k) for k in keys) + "]"
        extract = f", CASE WHEN is_obj THEN json_extract_string(line, {paths}) END AS v"
        values = "".join(f"v[{i + 1}], " for i in range(len(keys)))
    else:
        extract = values = ""
    sql = (
        _insert(table, targets)
        + f"SELECT {values}rn + {offset}, CASE WHEN NOT is_obj THEN 'invalid_json' END "
        + f"FROM (SELECT rn, is_obj{extract} FROM {_objects(path, fmt, newline)})"
    )
    return _count(con, sql)


def parquet_names(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    """Column names of a Parquet file, in file order."""
    return [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({literal(str(path))})").fetchall()]


def insert_parquet(
    con: duckdb.DuckDBPyConnection, table: str, path: Path, *, names: Sequence[str], targets: Sequence[str], offset: int
) -> int:
    """Append a Parquet part with every column cast to VARCHAR."""
    values = "".join(f"CAST({ident(n)} AS VARCHAR), " for n in names)
    sql = (
        _insert(table, targets)
        + f"SELECT {values}row_number() OVER () + {offset}, NULL FROM read_parquet({literal(str(path))})"
    )
    return _count(con, sql)
