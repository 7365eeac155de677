"""``read_delivery``: one file, folder or glob → one DuckDB table of VARCHAR columns.

Each part is sniffed from bounded samples (``probe``, ``dialect``), staged to UTF-8 only
when DuckDB cannot read it as is, then appended by one DuckDB statement (``load``).
Parts with different headers are unioned by name, after each part's header is mapped onto
the contract when a ``column_map`` is given; ``_row`` numbers data rows 1..N across parts in
file order, and trailing footer lines are deleted after they are verified.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path

import duckdb

from tools.readers import load
from tools.readers.dialect import Dialect, Tail, scan_tail, sniff_dialect, unique_names
from tools.readers.probe import NOT_TABULAR, Probe, probe, read_text_head, read_text_tail, stage, work_dir
from tools.readers.result import Delivery, DeliveryPart, ReadNote
from tools.verdict import InputError, StagingError

__all__ = ["read_delivery"]

_MARKER = ("_", ".")  # _SUCCESS, _committed_*, .crc, .DS_Store: never data
_ENCODING_LABEL = {"utf-8-sig": "utf-8", "utf-16-le": "utf-16", "utf-16-be": "utf-16"}


@dataclass
class _Part:
    """One file of a delivery, as planned before anything is loaded."""

    source: Path
    probe: Probe
    path: Path  # what DuckDB reads: the source, or a staged UTF-8 copy
    format: str = "csv"
    encoding: str = "utf-8"
    dialect: Dialect | None = None
    tail: Tail = field(default_factory=Tail)
    names: tuple[str, ...] = ()  # columns as the part delivers them (keys for JSON)
    targets: tuple[str, ...] = ()  # the table columns they land in
    notes: list[ReadNote] = field(default_factory=list)
    skipped: int = 0
    rows: int = 0


def _natural(p: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(p))]


def _resolve(path: str | Path) -> tuple[list[Path], list[ReadNote]]:
    text = str(path)
    if "://" in text:
        raise InputError(f"{text}: read_delivery reads local files; fetch the delivery first")
    p = Path(text).expanduser()
    if p.is_file():
        if p.stat().st_size == 0:
            raise InputError(f"{p}: file is empty (0 bytes)")
        return [p], []
    if p.is_dir():
        found = [f for f in p.rglob("*") if f.is_file()]
        markers = [f for f in found if any(s.startswith(_MARKER) for s in f.relative_to(p).parts)]
    elif any(ch in text for ch in "*?["):
        found = [Path(f) for f in glob.glob(text, recursive=True) if Path(f).is_file()]
        if not found:
            raise InputError(f"{text}: no file matches")
        markers = [f for f in found if f.name.startswith(_MARKER)]
    else:
        raise InputError(f"{text}: file not found")
    rest = [f for f in found if f not in markers]
    empty = [f for f in rest if f.stat().st_size == 0]
    files = sorted((f for f in rest if f not in empty), key=_natural)
    if not files:
        if empty:
            raise InputError(f"{text}: file is empty (0 bytes): all {len(empty)} parts")
        raise InputError(f"{text}: no data files (only markers such as _SUCCESS)" if markers else f"{text}: no files")
    notes = []
    if markers:
        notes.append(ReadNote("skip_marker", 0, ", ".join(sorted(f.name for f in markers))[:200]))
    if empty:
        notes.append(ReadNote("skip_empty_part", 0, ", ".join(sorted(f.name for f in empty))[:200]))
    if len(files) > 1:
        notes.append(ReadNote("multi_part", 0, f"{len(files)} files"))
    return files, notes


def _text_format(head: str) -> str:
    s = head.lstrip()
    if s.startswith("["):  # but not a "[id],[name]" header (SQL Server exports)
        nxt = s[1:].lstrip()[:1]
        return "json" if nxt and nxt in '{[]"-0123456789' else "csv"
    if not s.startswith("{"):
        return "csv"
    first = s.split("\n", 1)[0].strip()
    if first.startswith('{"') or first == "{}":
        return "jsonl"
    if first == "{":
        raise InputError("a single JSON object is not a table: expected JSON Lines or an array of objects")
    return "csv"


def _stage(part: _Part, codec: str, directory: Path, temps: list[Path]) -> None:
    staged, cut = stage(part.source, compression=part.probe.compression, codec=codec, directory=directory)
    temps.append(staged)
    part.path = staged
    if cut and not part.probe.stream_cut:
        part.notes.append(ReadNote("truncated_stream", 0, f"the {part.probe.compression} stream ends early"))


def _fallback(part: _Part, directory: Path, temps: list[Path]) -> bool:
    """Invalid UTF-8 past the sample: restage, reading stray bytes as cp1252. False if done already."""
    if part.encoding != "utf-8":
        return False
    _stage(part, "utf-8+cp1252", directory, temps)
    part.encoding = "utf-8+cp1252"
    part.notes.append(ReadNote("encoding:utf-8+cp1252", 0, "invalid UTF-8 bytes read as cp1252"))
    return True


def _plan(
    con: duckdb.DuckDBPyConnection, source: Path, *, expected: Sequence[str] | None, directory: Path, temps: list[Path]
) -> _Part:
    part = _Part(source=source, probe=probe(source), path=source)
    pr = part.probe
    if pr.compression:
        part.notes.append(ReadNote(pr.compression))
    if pr.stream_cut:
        part.notes.append(ReadNote("truncated_stream", 0, f"the {pr.compression} stream ends early"))
    if pr.container == "parquet":
        part.format = "parquet"
        part.notes.append(ReadNote("parquet"))
        if pr.compression:
            _stage(part, "binary", directory, temps)
        try:
            part.names = tuple(load.parquet_names(con, part.path))
        except duckdb.Error as err:  # PAR1 at the start, but not a Parquet file after all
            _raise_if_staging(err)
            raise InputError(f"not valid Parquet: {_first_line(err)}") from None
        return part
    part.encoding = _ENCODING_LABEL.get(pr.codec, pr.codec)
    if pr.codec == "utf-8-sig":
        part.notes.append(ReadNote("utf8_bom"))
    elif pr.codec != "utf-8":
        part.notes.append(ReadNote(f"encoding:{part.encoding}", 0, "transcoded to UTF-8"))
    if pr.compression or pr.codec not in ("utf-8", "utf-8-sig"):
        _stage(part, pr.codec, directory, temps)
    head, complete = read_text_head(part.path)
    part.format = _text_format(head)
    if part.format in ("jsonl", "json"):
        part.notes.append(ReadNote("jsonl" if part.format == "jsonl" else "json_array"))
        newline = "\r\n" if "\r\n" in head else "\n"
        while True:
            try:
                part.names = tuple(load.json_keys(con, part.path, fmt=part.format, newline=newline))
                if not part.names and load.json_rows(con, part.path, fmt=part.format, newline=newline):
                    raise InputError(f"{NOT_TABULAR}: the JSON holds no objects")
                return part
            except duckdb.Error as err:
                _raise_if_staging(err)
                if "unicode" not in str(err).lower() or not _fallback(part, directory, temps):
                    raise InputError(f"not valid {_FORMAT_NAME[part.format]}: {_first_line(err)}") from None
    part.dialect = sniff_dialect(head, complete=complete, expected_columns=expected)
    part.notes.extend(part.dialect.notes)
    part.names = part.dialect.names
    part.skipped = part.dialect.skip_lines
    if complete:
        part.tail = scan_tail(head[part.dialect.data_start :], part.dialect, from_data_start=True)
    else:
        tail, valid = read_text_tail(part.path)
        if not valid and _fallback(part, directory, temps):
            tail, _ = read_text_tail(part.path)
        part.tail = scan_tail(tail, part.dialect, from_data_start=False)
        if part.tail.quoted_newlines and not part.dialect.quoted_newlines:
            part.dialect = replace(part.dialect, quoted_newlines=True)  # read serially from the start
    return part


_FORMAT_NAME = {"csv": "CSV", "jsonl": "JSON Lines", "json": "JSON", "parquet": "Parquet"}


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__


def _map_parts(parts: list[_Part], column_map: Callable[[Sequence[str]], Mapping[str, str]]) -> None:
    """Parts whose headers differ: map each header onto the contract before the union."""
    headed = [p for p in parts if p.dialect is None or p.dialect.header]
    if len({frozenset(n.lower() for n in p.names) for p in headed}) < 2:
        return
    for part in headed:
        mapping = {src: dst for src, dst in column_map(part.names).items() if src in part.names and src != dst}
        if mapping:
            part.names = tuple(mapping.get(n, n) for n in part.names)
            shown = ", ".join(f"{s} -> {d}" for s, d in mapping.items())
            part.notes.append(ReadNote("part_columns_mapped", 0, shown[:200]))


def _assign_targets(
    parts: list[_Part], column_map: Callable[[Sequence[str]], Mapping[str, str]] | None = None
) -> list[str]:
    """Union the parts' columns by name (case-insensitive, as DuckDB); first spelling wins."""
    if column_map is not None and len(parts) > 1:
        _map_parts(parts, column_map)
    union: list[str] = []
    index: dict[str, int] = {}
    headed = next((p for p in parts if p.dialect is not None and p.dialect.header), None)
    for part in parts:
        raw = part.names
        d = part.dialect
        if d is not None and not d.header and headed not in (None, part) and len(raw) == len(headed.names):
            raw = headed.names  # a split file whose later parts repeat no header: map by position
            part.notes.append(ReadNote("no_header", 0, f"columns mapped by position to {headed.source.name}"))
        names, name_notes = unique_names(raw)
        part.notes.extend(name_notes)
        targets = []
        for name in names:
            key = name.lower()
            if key not in index:
                index[key] = len(union)
                union.append(name)
            elif union[index[key]] != name:
                part.notes.append(ReadNote("header_case_differs", 0, f"{name!r} read into {union[index[key]]!r}"))
            targets.append(union[index[key]])
        part.targets = tuple(targets)
    return union


def _order_note(part: _Part, expected: Sequence[str]) -> None:
    """A header whose known columns come in another order than the contract's: read by name, noted."""
    d = part.dialect
    if d is not None and not d.header:
        return
    want = [c.lower() for c in expected]
    got = [t.lower() for t in part.targets if t.lower() in want]
    if got != [w for w in want if w in got]:
        part.notes.append(ReadNote("column_order", 0, "columns arrive in another order than the contract: "
                                   "matched by name"))


def _finish_csv(con: duckdb.DuckDBPyConnection, table: str, part: _Part, *, offset: int, n: int) -> int:
    """Delete verified footer rows, mark a cut last row; return how many rows were deleted."""
    tail, d = part.tail, part.dialect
    assert d is not None
    blank = tail.empty_lines
    deleted = 0
    if tail.drop:
        lo = offset + max(0, n - len(tail.drop))
        first = load.ident(part.targets[0])
        got = con.execute(f"SELECT {first} FROM {load.ident(table)} WHERE _row > ? ORDER BY _row", [lo]).fetchall()
        if [g[0] for g in got] == [r.fields[0] for r in tail.drop]:
            con.execute(f"DELETE FROM {load.ident(table)} WHERE _row > ?", [lo])
            deleted = len(tail.drop)
            blank += tail.blank_rows
            if tail.footers:
                shown = [d.delimiter.join(r.fields)[:60] for r in tail.drop if any(f.strip() for f in r.fields)]
                part.notes.append(ReadNote("skip_footer", tail.footers, " | ".join(shown)[:200]))
        else:
            part.notes.append(ReadNote("footer_kept", len(tail.drop), "trailing lines differ from what DuckDB read"))
    if blank:
        part.notes.append(ReadNote("skip_blank", blank, "trailing blank lines"))
    part.skipped += blank + tail.footers * bool(deleted)
    if tail.truncated is not None and n > 0:
        fields = list(tail.truncated.fields[: d.width])
        fields += [None] * (d.width - len(fields))
        sets = ", ".join(f"{load.ident(t)} = ?" for t in part.targets)
        con.execute(
            f"UPDATE {load.ident(table)} SET {sets}, _error = 'truncated_line' WHERE _row = ?",
            [*fields, offset + n],
        )
        why = "unterminated quote at end of file" if tail.truncated.open_quote else "fewer fields than the header"
        part.notes.append(ReadNote("truncated_last_line", 1, why))
    return deleted


def _load(
    con: duckdb.DuckDBPyConnection, table: str, part: _Part, *, offset: int, directory: Path, temps: list[Path]
) -> int:
    """Append one part; return the data rows it added."""
    while True:
        try:
            if part.format == "parquet":
                return load.insert_parquet(con, table, part.path, names=part.names, targets=part.targets, offset=offset)
            if part.format in ("jsonl", "json"):
                n = load.insert_json(
                    con, table, part.path, fmt=part.format, keys=part.names, targets=part.targets, offset=offset
                )
                if part.format == "jsonl":
                    cut = con.execute(
                        f"UPDATE {load.ident(table)} SET _error = 'truncated_line' "
                        "WHERE _row = ? AND _error = 'invalid_json'",
                        [offset + n],
                    ).fetchone()
                    if cut and cut[0]:
                        part.notes.append(ReadNote("truncated_last_line", 1, "the last line is not complete JSON"))
                return n
            assert part.dialect is not None
            n = load.insert_csv(con, table, part.path, part.dialect, targets=part.targets, offset=offset)
            return n - _finish_csv(con, table, part, offset=offset, n=n)
        except duckdb.Error as err:
            _raise_if_staging(err)
            if "unicode" in str(err).lower() and _fallback(part, directory, temps):
                if part.dialect is not None:
                    part.tail = scan_tail(read_text_tail(part.path)[0], part.dialect, from_data_start=False)
                continue
            raise InputError(f"cannot read as {_FORMAT_NAME[part.format]}: {_first_line(err)}") from None


def _raise_if_staging(err: duckdb.Error) -> None:
    """Memory or temp disk ran out: say so (a retry with more room may help), not "unreadable"."""
    text = str(err)
    if isinstance(err, duckdb.OutOfMemoryException) or (
            isinstance(err, duckdb.IOException) and ("space" in text.lower() or "temp" in text.lower())):
        raise StagingError(f"staging ran out of memory or disk while reading: {_first_line(err)} "
                           "(raise HEAL_MEMORY_LIMIT or free HEAL_TEMP_DIR)") from None


def _error_notes(con: duckdb.DuckDBPyConnection, table: str) -> list[ReadNote]:
    rows = con.execute(
        f"SELECT _error, count(*) FROM {load.ident(table)} WHERE _error IS NOT NULL GROUP BY 1 ORDER BY 1"
    ).fetchall()
    what = {
        "wrong_field_count": "rows with too many or too few fields",
        "invalid_json": "lines that are not a JSON object",
    }
    return [ReadNote(code, int(count), what[code]) for code, count in rows if code in what]


def read_delivery(
    con: duckdb.DuckDBPyConnection,
    path: str | Path,
    *,
    table: str = "delivery",
    expected_columns: Sequence[str] | None = None,
    temp: bool = True,
    column_map: Callable[[Sequence[str]], Mapping[str, str]] | None = None,
) -> Delivery:
    """Read a delivery (file, folder or glob) into ``table``: its columns as VARCHAR, plus
    ``_row`` (1-based, stable) and ``_error`` (NULL, ``wrong_field_count``, ``truncated_line``,
    ``invalid_json``). Raise :class:`InputError` (one line) when it cannot be read at all.

    ``column_map(header) -> {delivered: contract}`` maps each part's header before the union,
    for deliveries whose parts have different headers (each part is repaired first).
    """
    files, notes = _resolve(path)
    directory = work_dir(con)
    temps: list[Path] = []
    order = con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()
    created = False
    try:
        parts = []
        for f in files:
            try:
                parts.append(_plan(con, f, expected=expected_columns, directory=directory, temps=temps))
            except InputError as err:
                raise InputError(f"{f}: {err}") from None
        columns = _assign_targets(parts, column_map)
        for part in parts if expected_columns else ():
            _order_note(part, expected_columns)
        if order and not order[0]:
            con.execute("SET preserve_insertion_order = true")  # _row follows file order
        cols = ", ".join([*(f"{load.ident(c)} VARCHAR" for c in columns), '"_row" BIGINT', '"_error" VARCHAR'])
        con.execute(f"CREATE OR REPLACE {'TEMP ' if temp else ''}TABLE {load.ident(table)} ({cols})")
        created = True
        offset = 0
        for part in parts:
            try:
                part.rows = _load(con, table, part, offset=offset, directory=directory, temps=temps)
                offset += part.rows
            except InputError as err:
                raise InputError(f"{part.source}: {err}") from None
        errors = _error_notes(con, table)
        created = False
    finally:
        if created:
            with suppress(duckdb.Error):
                con.execute(f"DROP TABLE IF EXISTS {load.ident(table)}")
        if order and not order[0]:
            con.execute("SET preserve_insertion_order = false")
        for t in temps:
            t.unlink(missing_ok=True)
    many = len(parts) > 1
    for part in parts:
        notes.extend(
            ReadNote(n.rule, n.rows, f"{part.source.name}: {n.detail}".rstrip(": ") if many else n.detail)
            for n in part.notes
        )
    notes.extend(errors)
    first = parts[0]
    return Delivery(
        table=table,
        columns=tuple(columns),
        rows=offset,
        format=first.format,
        encoding=first.encoding,
        delimiter=first.dialect.delimiter if first.dialect else None,
        header=all(p.dialect is None or p.dialect.header for p in parts),
        notes=tuple(notes),
        skipped_lines=sum(p.skipped for p in parts),
        parts=tuple(DeliveryPart(p.source.name, p.rows, p.targets) for p in parts),
    )
