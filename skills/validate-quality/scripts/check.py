"""Check a delivery's rows against the contract: nulls, keys, ranges, parsing, volume.

Usage:
    python skills/validate-quality/scripts/check.py sales.csv --contract pipelines/sales.yaml
    python skills/validate-quality/scripts/check.py sales.csv --contract pipelines/sales.yaml \
        --history 1000,980,1010 --json

Exit codes: 0 pass, 1 fail (see the verdict's failure_class), 2 could not run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import duckdb

from tools.contract import Contract, load_contract, quote_ident, quote_literal
from tools.readers import read_delivery
from tools.readers.dialect import scan_tail, sniff_dialect, unique_names
from tools.readers.load import NULL_SENTINEL
from tools.readers.probe import probe, read_text_head, read_text_tail
from tools.rules import RowScan, breaks_sql, count_breaches, row_scan
from tools.sinks import configure_working_connection
from tools.typed_rows import conflicting_keys, exact_duplicates, repeated_rows, rule_counts, typed_rows
from tools.verdict import Criterion, HealError, InputError, Stopwatch, Verdict, could_not_run, finish

if TYPE_CHECKING:  # a script run by hand need not import the orchestrator's context
    from tools.context import StepContext

SKILL = "validate-quality"
CLASSES = {
    "rows_parse": "malformed_row",
    "no_null_critical": "null_critical",
    "values_parse": "type_drift",
    "values_in_range": "out_of_range",
    "key_unique": "duplicate_key",
    "volume_within_tolerance": "volume_anomaly",
}
DETAILS = {
    "rows_parse": "rows the reader could not parse fully: quarantine them",
    "no_null_critical": "critical columns have nulls: quarantine those rows",
    "values_parse": "values do not parse as the contract type: quarantine those rows",
    "values_in_range": "values outside the contract range: quarantine those rows",
    "key_unique": "keys with different contents: quarantine every version",
    "volume_within_tolerance": "row count far from history: load, then tell a person",
}
ROW_CRITERIA = ("rows_parse", "no_null_critical", "values_parse", "values_in_range")
SAMPLE = 20
_BUFFER = 4 * 1024 * 1024  # bytes per read_csv buffer: bounds the scan's memory on 2 threads
_SCAN_MEMORY = "64MB"  # DuckDB's limit while the file streams through (the script's default is 128MB)
_BUCKET_BITS = 6  # integer keys are first counted per block of 64 consecutive values
_ROWS, _CANDIDATES, _PAIRS, _EXACT, _CONFLICTS = ("rows", "candidates", "pairs", "exact", "conflicts")
_SCRATCH = "heal_vq_scratch"


class _Source(NamedTuple):
    """A CSV file read in place (a run by hand; a staged delivery is judged by :func:`check`)."""

    relation: str  # SQL relation: the delivered columns and _error
    delivered: tuple[str, ...]
    numbered: str  # the same rows with _row, streamed in file order


def check(
    con: duckdb.DuckDBPyConnection,
    table: str,
    *,
    contract: Contract,
    history: Sequence[int] = (),
) -> Verdict:
    """Count every rule breach over the staged ``table``; ``history`` is recent row counts.

    Reads the typed rows the other steps share (:mod:`tools.typed_rows`): the rule masks give
    the counts and samples, and only rows that may have a twin are compared by their text.
    """
    clock = Stopwatch()
    typed = typed_rows(con, table, contract=contract)
    rows, per_rule = rule_counts(con, typed)
    masks = ", ".join(quote_ident(m) for m in typed.masks)
    # The failing rows (few, normally) are picked out once; each criterion's samples come from them.
    con.execute(f"CREATE OR REPLACE TEMP TABLE heal_vq_failing AS SELECT _row, {masks} FROM {typed.sql} "
                f"WHERE {typed.breaks()}")
    criteria = []
    for criterion in ROW_CRITERIA:
        breaking = {r.reason: per_rule[r.reason] for r in typed.rules if r.criterion == criterion and per_rule[r.reason]}
        samples = [r[0] for r in con.execute(
            f"SELECT _row FROM heal_vq_failing WHERE {typed.breaks(criterion)} ORDER BY _row LIMIT {SAMPLE}"
        ).fetchall()] if breaking else []
        criteria.append(Criterion(id=criterion, passed=not breaking, observed=breaking or 0, expected=0,
                                  detail=DETAILS[criterion] if breaking else "", samples=tuple(samples)))
    con.execute("DROP TABLE heal_vq_failing")
    repeated = repeated_rows(con, typed)
    duplicates = exact_duplicates(con, repeated)
    conflicts, key_samples = 0, []
    if typed.key:
        held = quote_ident(conflicting_keys(con, typed, repeated, out="heal_vq_conflicts"))
        conflicts = con.execute(f"SELECT count(*) FROM {held}").fetchone()[0]
        found = con.execute(f"SELECT * FROM {held} ORDER BY ALL LIMIT {SAMPLE}").fetchall()
        key_samples = [r[0] if len(r) == 1 else list(r) for r in found]
    criteria.append(Criterion(
        id="key_unique", passed=conflicts == 0, observed=conflicts, expected=0,
        detail=DETAILS["key_unique"] if conflicts else "", samples=tuple(key_samples),
    ))
    criteria.append(_volume(rows, history, contract.volume_tolerance))
    return Verdict.from_criteria(
        SKILL, criteria, failure_classes=CLASSES,
        metrics={"rows": rows, "exact_duplicates": duplicates, "breaches": per_rule},
        duration_ms=clock.ms(),
    )


def _judge(
    con: duckdb.DuckDBPyConnection,
    source: _Source,
    *,
    contract: Contract,
    history: Sequence[int],
    scan_memory: str | None = None,
) -> Verdict:
    """One pass judges every row into a small table (parsed key, row hash, rule bits); the
    counts, the key check and the samples are then read from that table, not the rows.

    The working tables live in a scratch database file, compressed, so that a large
    delivery's per-row table costs little memory; the file is deleted at the end.
    ``scan_memory`` bounds DuckDB during the streaming pass only (the later steps may need
    more, e.g. to compare many duplicate rows); it is lifted if the pass runs out.
    """
    clock = Stopwatch()
    scan = row_scan(contract, source.delivered, source.relation, hash_bits=32)
    assert scan.rules[0].criterion == "rows_parse"  # bit 0: the row is malformed
    scratch = _scratch_path(con)
    con.execute(f"ATTACH {quote_literal(str(scratch))} AS {_SCRATCH}")
    t = _Tables(_SCRATCH)
    try:
        _stream(con, f"{t.create(_ROWS)} AS {scan.sql}", memory=scan_memory)
        rows, per_rule, per_criterion = count_breaches(con, t.rows, scan.rules, scan.masks)
        conflicting_keys, key_samples, exact_duplicates = _key_check(con, scan, t, contract=contract, source=source)
        criteria = []
        for criterion in ROW_CRITERIA:
            breaking = {r.reason: per_rule[r.reason] for r in scan.rules if r.criterion == criterion and per_rule[r.reason]}
            criteria.append(Criterion(
                id=criterion,
                passed=not breaking,
                observed=breaking or 0,
                expected=0,
                detail=DETAILS[criterion] if breaking else "",
                samples=tuple(_row_samples(con, scan, t, criterion, per_criterion[criterion],
                                           contract=contract, source=source)) if breaking else (),
            ))
    finally:
        con.execute(f"DETACH {_SCRATCH}")
        for leftover in (scratch, scratch.with_name(scratch.name + ".wal")):
            leftover.unlink(missing_ok=True)
    criteria.append(Criterion(
        id="key_unique",
        passed=conflicting_keys == 0,
        observed=conflicting_keys,
        expected=0,
        detail=DETAILS["key_unique"] if conflicting_keys else "",
        samples=tuple(key_samples),
    ))
    criteria.append(_volume(rows, history, contract.volume_tolerance))
    return Verdict.from_criteria(
        SKILL,
        criteria,
        failure_classes=CLASSES,
        metrics={"rows": rows, "exact_duplicates": exact_duplicates, "breaches": per_rule},
        duration_ms=clock.ms(),
    )


def _stream(con: duckdb.DuckDBPyConnection, sql: str, *, memory: str | None) -> None:
    """Run a streaming statement under a tighter memory limit; retry under the usual one if short."""
    if memory is None:
        con.execute(sql)
        return
    usual = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    con.execute(f"SET memory_limit = {quote_literal(memory)}")
    try:
        con.execute(sql)
    except duckdb.OutOfMemoryException:
        con.execute(f"SET memory_limit = {quote_literal(usual)}")
        con.execute(sql)
    finally:
        con.execute(f"SET memory_limit = {quote_literal(usual)}")


class _Tables:
    """The working tables' names in the scratch database, as created and as referenced."""

    def __init__(self, database: str) -> None:
        self.create = lambda name: f"CREATE OR REPLACE TABLE {database}.{name}"
        self.rows, self.candidates, self.pairs, self.exact, self.conflicts = (
            f"{database}.{n}" for n in (_ROWS, _CANDIDATES, _PAIRS, _EXACT, _CONFLICTS)
        )


def _scratch_path(con: duckdb.DuckDBPyConnection) -> Path:
    """A new file name in DuckDB's temp folder (when absolute), else the system's."""
    setting = con.execute("SELECT current_setting('temp_directory')").fetchone()[0]
    folder = Path(setting) if setting and Path(setting).is_absolute() else Path(tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="heal-vq-", suffix=".duckdb", dir=folder)
    os.close(fd)
    Path(name).unlink()  # DuckDB creates it
    return Path(name)


def _key_check(
    con: duckdb.DuckDBPyConnection, scan: RowScan, t: _Tables, *, contract: Contract, source: _Source
) -> tuple[int, list[object], int]:
    """(keys with different contents, the first 20 of them, exact duplicate rows).

    Rows are told apart by a 32-bit hash, and rows that share a key and a hash are then
    compared value by value, so the answer is exact. An integer key is first
    counted per block of 64 values (with a mask of the values seen): only the rows of blocks
    where a value repeats are grouped by key, which keeps memory small on large deliveries.
    """
    keys = [quote_ident(k) for k in scan.keys]
    h = quote_ident(scan.hash)
    ok = f"({quote_ident(scan.masks[0])} & 1) = 0"
    group = ", ".join([*keys, h])
    rows = t.rows
    if len(keys) == 1 and contract.column(contract.key[0]).type in ("bigint", "integer"):
        k = keys[0]
        con.execute(
            f"{t.create(_CANDIDATES)} AS SELECT {k} >> {_BUCKET_BITS} AS b FROM {t.rows} "
            f"WHERE {k} IS NOT NULL GROUP BY b "
            f"HAVING count(*) > bit_count(bit_or(1::UBIGINT << ({k} & 63)::INTEGER))"
        )
        rows = f"(SELECT * FROM {t.rows} WHERE {k} IS NULL OR {k} >> {_BUCKET_BITS} IN (SELECT b FROM {t.candidates}))"
    con.execute(
        f"{t.create(_PAIRS)} AS SELECT {group}, count(*) AS n, "
        f"count(*) FILTER (WHERE {ok}) AS n_ok FROM {rows} GROUP BY {group}"
    )
    duplicates, claims = con.execute(
        f"SELECT coalesce(sum(n - 1), 0), count(*) FILTER (WHERE n > 1) FROM {t.pairs}"
    ).fetchone()
    versions = "1"
    if claims:  # rows that share a key and a hash: count how many different rows they are
        _compare_values(con, scan, t, contract=contract, source=source)
        duplicates -= con.execute(f"SELECT coalesce(sum(d - 1), 0) FROM {t.exact}").fetchone()[0]
        versions = "coalesce(d_ok, 1)"
    if not keys:
        return 0, [], int(duplicates)
    joined = f"{t.pairs} LEFT JOIN {t.exact} USING ({group})" if claims else t.pairs
    not_null = " AND ".join(f"{k} IS NOT NULL" for k in keys)
    con.execute(
        f"{t.create(_CONFLICTS)} AS SELECT {', '.join(keys)} FROM {joined} "
        f"WHERE n_ok > 0 AND {not_null} GROUP BY {', '.join(keys)} HAVING count(*) > 1 OR max({versions}) > 1"
    )
    count = con.execute(f"SELECT count(*) FROM {t.conflicts}").fetchone()[0]
    found = con.execute(f"SELECT * FROM {t.conflicts} ORDER BY ALL LIMIT {SAMPLE}").fetchall()
    return int(count), [r[0] if len(r) == 1 else list(r) for r in found], int(duplicates)


def _compare_values(
    con: duckdb.DuckDBPyConnection, scan: RowScan, t: _Tables, *, contract: Contract, source: _Source
) -> None:
    """For each (key, hash) held by several rows: how many different rows, and ok rows, it holds."""
    full = row_scan(contract, source.delivered, source.relation, extra=source.delivered, hash_bits=32)
    values = "struct_pack(" + ", ".join(
        f"{quote_ident(f'c{i}')} := {quote_ident(c)}" for i, c in enumerate(source.delivered)
    ) + ")"
    keys = [quote_ident(k) for k in scan.keys]
    h = quote_ident(scan.hash)
    rows = (
        f"SELECT {''.join(f'{quote_ident(a)} AS {b}, ' for a, b in zip(full.keys, keys))}"
        f"{quote_ident(full.hash)} AS {h}, ({quote_ident(full.masks[0])} & 1) = 0 AS __heal_ok, "
        f"{values} AS __heal_values FROM ({full.sql})"
    )
    match = " AND ".join([*(f"r.{k} IS NOT DISTINCT FROM p.{k}" for k in keys), f"r.{h} = p.{h}"])
    group = ", ".join([*(f"r.{k}" for k in keys), f"r.{h}"])
    con.execute(
        f"{t.create(_EXACT)} AS SELECT {group}, count(DISTINCT r.__heal_values) AS d, "
        f"count(DISTINCT r.__heal_values) FILTER (WHERE r.__heal_ok) AS d_ok "
        f"FROM ({rows}) r SEMI JOIN (SELECT * FROM {t.pairs} WHERE n > 1) p ON {match} GROUP BY {group}"
    )


def _row_samples(con: duckdb.DuckDBPyConnection, scan: RowScan, t: _Tables, criterion: str, breaking: int, *,
                 contract: Contract, source: _Source) -> list[int]:
    """The first rows, in file order, that break ``criterion`` (which ``breaking`` rows do)."""
    # A file read in place has no row numbers: number the rows as they stream, and stop at the
    # last sample (the 20th, or the 3rd of 3 bad rows rather than at the end of the file).
    numbered = row_scan(contract, source.delivered, f"({source.numbered})", extra=("_row",))
    order = con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()[0]
    con.execute("SET preserve_insertion_order = true")
    try:
        found = con.execute(
            f"SELECT _row FROM ({numbered.sql}) WHERE {breaks_sql(numbered.rules, numbered.masks, criterion)} LIMIT {min(SAMPLE, breaking)}"
        ).fetchall()
    finally:
        con.execute(f"SET preserve_insertion_order = {str(bool(order)).lower()}")
    return sorted(r[0] for r in found)


def csv_in_place(path: str, expected_columns: Sequence[str]) -> _Source | None:
    """A delivery that is one plain UTF-8 CSV file with nothing to repair at its end, read in
    place by one ``read_csv`` with the reader's sniffed options; None for anything else
    (compressed, another encoding or format, several files, footers, a cut last line), which
    ``read_delivery`` stages instead. Reading in place saves writing the rows to a table.
    """
    p = Path(path)
    if "://" in path or not p.is_file() or p.stat().st_size == 0:
        return None
    try:
        sniffed = probe(p)
        if sniffed.compression or sniffed.container != "text" or sniffed.codec not in ("utf-8", "utf-8-sig"):
            return None
        head, complete = read_text_head(p)
        if head.lstrip().startswith(("[", "{")):
            return None
        dialect = sniff_dialect(head, complete=complete, expected_columns=expected_columns)
        if complete:
            tail = scan_tail(head[dialect.data_start:], dialect, from_data_start=True)
        else:
            text, valid = read_text_tail(p)
            if not valid:
                return None
            tail = scan_tail(text, dialect, from_data_start=False)
    except InputError:
        return None  # read_delivery says what is wrong
    if tail.drop or tail.truncated is not None:
        return None
    names, _ = unique_names(dialect.names)
    width = len(names)
    declared = ", ".join(f"{quote_literal(f'c{i}')}: 'VARCHAR'" for i in range(width)) + ", 'cx': 'VARCHAR'"
    newline = {"\n": "\\n", "\r\n": "\\r\\n", "\r": "\\r"}[dialect.newline]
    parallel = not (dialect.quoted_newlines or tail.quoted_newlines)
    reader = (
        f"read_csv({quote_literal(str(p))}, columns={{{declared}}}, header={str(dialect.header).lower()}, "
        f"skip={dialect.skip_lines}, delim={quote_literal(dialect.delimiter)}, quote={quote_literal(dialect.quote)}, "
        f"escape={quote_literal(dialect.escape)}, new_line={quote_literal(newline)}, auto_detect=false, "
        f"strict_mode=false, null_padding=true, allow_quoted_nulls=false, nullstr={quote_literal(NULL_SENTINEL)}, "
        f"parallel={str(parallel).lower()}, buffer_size={_BUFFER})"
    )
    columns = ", ".join(f"c{i} AS {quote_ident(n)}" for i, n in enumerate(names))
    error = f"CASE WHEN cx IS NOT NULL OR c{width - 1} IS NULL THEN 'wrong_field_count' END AS _error"
    relation = f"(SELECT {columns}, {error} FROM {reader})"
    return _Source(relation, tuple(names),
                   numbered=f"SELECT row_number() OVER () AS _row, * FROM {relation}")


def _volume(rows: int, history: Sequence[int], tolerance: float) -> Criterion:
    if not history:
        return Criterion("volume_within_tolerance", True, rows, None, "no history yet: nothing to compare")
    ordered = sorted(history)  # the median, as statistics.median computes it (a lighter import)
    mid = len(ordered) // 2
    median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    low, high = median * (1 - tolerance), median * (1 + tolerance)
    ok = low <= rows <= high
    return Criterion(
        id="volume_within_tolerance",
        passed=ok,
        observed=rows,
        expected=[round(low), round(high)],
        detail="" if ok else f"{rows} rows vs a median of {median:g} over {len(history)} runs: {DETAILS['volume_within_tolerance']}",
    )


def run_step(ctx: StepContext) -> Verdict:
    return check(ctx.con, ctx.table, contract=ctx.contract, history=ctx.history.volumes[: ctx.contract.volume_window])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="validate-quality", description=__doc__.splitlines()[0])
    parser.add_argument("path", help="the delivery file (CSV, JSON Lines, JSON, Parquet; compressed is fine)")
    parser.add_argument("--contract", required=True, help="a pipeline YAML file (its contract: section is used)")
    parser.add_argument("--history", default="", help="comma-separated row counts of recent deliveries")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON verdict on stdout")
    args = parser.parse_args(argv)
    try:
        contract = load_contract(args.contract)
        history = [int(x) for x in args.history.split(",") if x.strip()]
        con = duckdb.connect()
        configure_working_connection(con, memory_limit=os.environ.get("HEAL_MEMORY_LIMIT", "128MB"))
        con.execute("SET enable_progress_bar = false")
        # DuckDB 2.0 would push TRY_CAST into read_csv as a strict type and fail on bad values.
        con.execute("SET disabled_optimizers = 'type_pushdown'")
        verdict = None
        source = csv_in_place(args.path, contract.names)
        if source is not None:
            try:
                verdict = _judge(con, source, contract=contract, history=history,
                                 scan_memory=None if "HEAL_MEMORY_LIMIT" in os.environ else _SCAN_MEMORY)
            except duckdb.Error:
                verdict = None  # e.g. bad UTF-8 deep in the file: the reader repairs it
        if verdict is None:
            delivery = read_delivery(con, args.path, expected_columns=contract.names)
            verdict = check(con, delivery.table, contract=contract, history=history)
    except HealError as exc:
        return could_not_run(SKILL, exc)
    except ValueError:
        return could_not_run(SKILL, HealError("--history takes whole numbers separated by commas"))
    return finish(verdict, as_json=args.json, next_step="run quarantine-rows to hold back the failing rows")


if __name__ == "__main__":
    sys.exit(main())
