"""A staged delivery typed once, in one pass, for every later step to read.

The reader stages a delivery as text (:mod:`tools.readers`). Each step used to parse that
text again with the contract's rules; on a large delivery that parse was most of the
run. :func:`typed_rows` parses it once into a TEMP table holding, per row: ``_row``, every
contract column present as its typed value (exactly :func:`tools.contract.parse_sql`),
the extra columns as text, the rule bit masks of :func:`tools.rules.row_scan` and a row
hash. Later steps find that table again by the relation's identity (its catalog oid, size
and columns) and the contract, so a replaced or renamed relation is typed afresh.

A relation derived by dropping rows of a typed one (the clean rows quarantine-rows leaves)
is registered with :func:`derive` and typed as a view over the same table: no second pass.

Rows that might repeat (:func:`repeated_rows`) are found from typed keys; their text is read
back from the staged relation only for those few rows, so duplicates and conflicting keys
are judged on exactly the delivered text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from tools.contract import NUMERIC_COLUMN_TYPES, Contract, quote_ident, quote_literal
from tools.rules import (
    MASK_BITS,
    META_COLUMNS,
    RowRule,
    breaks_sql,
    count_breaches,
    fresh_name,
    mask_bits,
    mask_sql,
    mask_type,
    plain_text_sql,
    row_rules,
    scientific_sql,
    typed_sql,
)

__all__ = [
    "TypedRows", "conflicting_keys", "derive", "discard", "exact_duplicates", "repeated_rows", "rule_counts",
    "typed_rows",
]

_TAG = "heal-typed:"  # the comment on a typed relation: which relation and contract it types


@dataclass(frozen=True)
class TypedRows:
    """Where the typed rows of a staged relation are, and what their columns mean."""

    relation: str  # the typed table or view (a plain name; quote it)
    source: str  # the staged text relation it types
    delivered: tuple[str, ...]  # the source's data columns, in order
    typed: tuple[str, ...]  # contract columns present, typed, under their own names
    extras: tuple[str, ...]  # delivered columns the contract does not name (text)
    key: tuple[str, ...]  # the contract key, when every key column is present
    rules: tuple[RowRule, ...]
    masks: tuple[str, ...]
    hash: str | None  # without a key: equal rows hash equal; equal hashes must still be compared
    notes: str | None = None  # what the drift planner counts: see note_bits (None past 31 typed columns)

    @property
    def sql(self) -> str:
        return quote_ident(self.relation)

    def note_bits(self, column: str) -> tuple[int, int]:
        """(bit set where the text is a null token other than blank, bit set where it is a number in
        scientific notation) of typed ``column`` in the :attr:`notes` column."""
        i = self.typed.index(column)
        return 1 << (2 * i), 1 << (2 * i + 1)

    def bits(self, criterion: str | None = None, *, reason: str | None = None) -> list[tuple[str, int]]:
        """(mask column, bits) of the rules of ``criterion`` (or with ``reason``; all rules when neither)."""
        return mask_bits(self.rules, self.masks, criterion, reason)

    def breaks(self, criterion: str | None = None, *, reason: str | None = None) -> str:
        """SQL true when a row breaks some rule (of ``criterion``, or with ``reason``, when given)."""
        return breaks_sql(self.rules, self.masks, criterion, reason)

    def reason_codes(self) -> list[str]:
        """One SQL expression per rule: its reason code where the row breaks it, else NULL."""
        return [f"CASE WHEN {self.breaks(reason=r.reason)} THEN {quote_literal(r.reason)} END" for r in self.rules]


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    return [d[0] for d in con.execute(f"SELECT * FROM {quote_ident(relation)} LIMIT 0").description]


def _signature(con: duckdb.DuckDBPyConnection, relation: str, columns: Sequence[str],
               contract: Contract) -> str | None:
    row = con.execute(
        "SELECT table_oid::VARCHAR || ':' || estimated_size::VARCHAR FROM duckdb_tables() "
        "WHERE table_name = ? AND temporary UNION ALL "
        "SELECT view_oid::VARCHAR FROM duckdb_views() WHERE view_name = ? AND temporary",
        [relation, relation],
    ).fetchone()
    if row is None:
        return None  # not a TEMP relation of this connection: type it every time
    text = repr((relation, row[0], list(columns), contract.columns, contract.key, contract.null_tokens,
                 contract.extra_columns))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _find(con: duckdb.DuckDBPyConnection, signature: str) -> str | None:
    row = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE temporary AND comment = ? UNION ALL "
        "SELECT view_name FROM duckdb_views() WHERE temporary AND comment = ?",
        [_TAG + signature, _TAG + signature],
    ).fetchone()
    return row[0] if row else None


def _layout(delivered: Sequence[str], contract: Contract, relation: str, source: str) -> TypedRows:
    """Names of the typed relation's columns (meta names never collide with delivered ones)."""
    present = set(delivered)
    taken = set(delivered) | set(META_COLUMNS)
    rules = tuple(row_rules(contract, delivered))  # the order row_scan's masks use
    masks = tuple(fresh_name(f"__heal_m{j}", taken) for j in range(0, max(len(rules), 1), MASK_BITS))
    key = tuple(contract.key) if contract.key and all(k in present for k in contract.key) else ()
    typed = tuple(c.name for c in contract.columns if c.name in present)
    row_hash = None if key else fresh_name("__heal_h", taken)  # with a key, twins share their key instead
    return TypedRows(
        relation=relation, source=source, delivered=tuple(delivered), typed=typed,
        extras=tuple(c for c in delivered if c not in contract.names),
        key=key, rules=rules, masks=masks, hash=row_hash,
        notes=fresh_name("__heal_n", taken) if 2 * len(typed) <= 62 else None,
    )


def typed_rows(con: duckdb.DuckDBPyConnection, relation: str, *, contract: Contract) -> TypedRows:
    """The typed rows of the staged ``relation`` (built now, or found from an earlier step)."""
    columns = _columns(con, relation)
    delivered = [c for c in columns if c not in META_COLUMNS]
    have = set(columns)
    signature = _signature(con, relation, columns, contract)
    found = _find(con, signature) if signature else None
    staged = relation if {"_row", "_error"} <= have else f"__heal_numbered_{signature or 'x'}"
    if found is not None:
        return _layout(delivered, contract, found, staged)
    name = f"__heal_typed_{signature or 'x'}"
    if staged != relation:  # not staged by the reader: number its rows once
        missing = ", ".join(m for m in ("_row", "_error") if m not in have)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {quote_ident(staged)} AS SELECT * EXCLUDE ({missing}), "
            + ("_row, " if "_row" in have else "row_number() OVER () AS _row, ")
            + ("_error " if "_error" in have else "NULL::VARCHAR AS _error ")
            + f"FROM (SELECT *{''.join(f', NULL AS {m}' for m in ('_row', '_error') if m not in have)} "
            f"FROM {quote_ident(relation)})"
        )
    layout = _layout(delivered, contract, name, staged)
    sql = _typing_sql(contract, layout, staged)
    if signature:
        _drop_stale(con, relation)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {quote_ident(name)} AS {sql}")
    if signature:
        con.execute(f"COMMENT ON TABLE {quote_ident(name)} IS {quote_literal(_TAG + signature)}")
        con.execute(f"COMMENT ON COLUMN {quote_ident(name)}._row IS {quote_literal(relation)}")
    return layout


def rule_counts(con: duckdb.DuckDBPyConnection, rows: TypedRows) -> tuple[int, dict[str, int]]:
    """(rows, how many rows break each rule, by reason code)."""
    total, per_rule, _ = count_breaches(con, rows.sql, rows.rules, rows.masks)
    return total, per_rule


def _typing_sql(contract: Contract, layout: TypedRows, staged: str) -> str:
    """One pass: each value parsed once; rules judged on the parsed values where that settles them.

    A column value that parses (exactly ``parse_sql``) and is in range breaks no rule, and a
    null in an optional column breaks none either. A row whose columns are all settled so is
    passed with mask 0; every other row is judged by each rule's own predicate on the text,
    so the masks are exactly those of ``row_rules``.
    """
    tokens = contract.null_tokens
    clean_tokens = [t for t in tokens if t == t.strip()]  # raw IN these implies trim(raw) IN tokens
    taken = set(layout.delivered) | set(META_COLUMNS) | set(layout.masks) | {layout.hash or '', layout.notes or ''}
    values = {c: fresh_name(f"__heal_t{i}", taken) for i, c in enumerate(layout.typed)}
    ok_name = fresh_name("__heal_ok", taken)
    parsed, ok = [], ["_error IS NULL"]
    ruled = {r.reason.split(":", 1)[1] for r in layout.rules if ":" in r.reason}
    critical = {c.name for c in contract.critical}  # key columns are critical too
    for col in contract.columns:
        raw = quote_ident(col.name)
        if col.name not in values:
            if col.name in critical:
                ok.append("false")  # null in every row: the rules judge each row
            continue
        v = quote_ident(values[col.name])
        value = typed_sql(raw, col, tokens)
        if col.type == "text":  # most text needs no trim to tell it is there
            value = f"(CASE WHEN {plain_text_sql(raw, tokens)} THEN {raw} ELSE {value} END)"
        parsed.append(f"{value} AS {v}")
        if col.name not in ruled:
            continue
        bounds = [f"{v} < {col.min!r}"] * (col.min is not None) + [f"{v} > {col.max!r}"] * (col.max is not None)
        good = f"{v} IS NOT NULL" + (f" AND NOT ({' OR '.join(bounds)})" if bounds else "")
        if col.name not in critical:  # a null is no breach in an optional column
            listed = ", ".join(quote_literal(t) for t in clean_tokens)
            good = f"({good}) OR {raw} IS NULL" + (f" OR {raw} IN ({listed})" if listed else "")
        ok.append(f"({good})")
    masks = []
    for j, mask in enumerate(layout.masks):
        part = layout.rules[j * MASK_BITS:(j + 1) * MASK_BITS]
        masks.append(f"(CASE WHEN {quote_ident(ok_name)} THEN 0 ELSE {mask_sql(part)} END)::{mask_type(len(part))} "
                     f"AS {quote_ident(mask)}")
    outer = ["_row", *(f"{quote_ident(values[c])} AS {quote_ident(c)}" for c in layout.typed),
             *(quote_ident(c) for c in layout.extras), *masks]
    if layout.notes is not None:
        outer.append(f"{_notes_sql(contract, layout, values)} AS {quote_ident(layout.notes)}")
    if layout.hash is not None:
        # Equal rows hash equal, which is all a hash promises: rows that hash equal must be compared.
        text_hash = f"hash({', '.join(quote_ident(c) for c in layout.delivered)})" if layout.delivered else "0::UBIGINT"
        typed_hash = f"hash({', '.join(quote_ident(values.get(c, c)) for c in layout.delivered)})" \
            if layout.delivered else text_hash
        outer.append(f"(CASE WHEN {quote_ident(ok_name)} THEN {typed_hash} ELSE {text_hash} END) "
                     f"AS {quote_ident(layout.hash)}")
    inner = f"SELECT *{''.join(', ' + p for p in parsed)} FROM {quote_ident(staged)}"
    return f"SELECT {', '.join(outer)} FROM (SELECT *, ({' AND '.join(ok)}) AS {quote_ident(ok_name)} FROM ({inner}))"


def _notes_sql(contract: Contract, layout: TypedRows, values: dict[str, str]) -> str:
    """The :attr:`TypedRows.notes` bits: exactly what :mod:`tools.coercion`'s first pass counts.

    A null token leaves the typed value NULL, so only those rows are trimmed; every number's
    text is searched for an ``e``.
    """
    listed = ", ".join(quote_literal(t) for t in contract.null_tokens if t.strip())
    parts = []
    for col in contract.columns:
        if col.name not in values:
            continue
        raw, v = quote_ident(col.name), quote_ident(values[col.name])
        token, sci = layout.note_bits(col.name)
        if listed:
            parts.append(f"CASE WHEN {v} IS NULL THEN (CASE WHEN trim({raw}) IN ({listed}) THEN {token} ELSE 0 END) "
                         "ELSE 0 END")
        if col.type in NUMERIC_COLUMN_TYPES:
            parts.append(f"CASE WHEN {scientific_sql(raw, contract.null_tokens)} THEN {sci} ELSE 0 END")
    return f"({' | '.join(parts) or '0'})::BIGINT"


def _drop_stale(con: duckdb.DuckDBPyConnection, relation: str) -> None:
    """Typed tables of an earlier version of ``relation`` (and views over them) are no longer read."""
    stale = con.execute(
        "SELECT table_name FROM duckdb_columns() WHERE database_name = 'temp' AND column_name = '_row' AND comment = ? "
        "AND starts_with(table_name, '__heal_typed_')",
        [relation],
    ).fetchall()
    for (name,) in stale:
        _drop(con, name)


def _drop(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Drop the typed table ``name``, the views over it and its repeated-rows table."""
    for (view,) in con.execute(
        "SELECT view_name FROM duckdb_views() WHERE temporary AND contains(sql, ?)", [name]
    ).fetchall():
        con.execute(f"DROP VIEW IF EXISTS {quote_ident(view)}")
    con.execute(f"DROP TABLE IF EXISTS {quote_ident(name)}")
    con.execute(f"DROP TABLE IF EXISTS {quote_ident(_repeated_name(name))}")


def discard(con: duckdb.DuckDBPyConnection, rows: TypedRows) -> None:
    """Drop typed rows no step will read (their delivery is being repaired into a new table)."""
    _drop(con, rows.relation)


def derive(con: duckdb.DuckDBPyConnection, rows: TypedRows, view: str, *, without: str, contract: Contract) -> None:
    """Register the typed rows of ``view``: the rows of ``rows.source`` whose ``_row`` is not in
    the SQL query ``without``, so typing ``view`` reads ``rows`` instead of parsing again."""
    columns = _columns(con, view)
    signature = _signature(con, view, columns, contract)
    if signature is None or [c for c in columns if c not in META_COLUMNS] != list(rows.delivered):
        return
    name = f"__heal_typed_{signature}"
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {quote_ident(name)} AS SELECT * FROM {rows.sql} "
        f"WHERE _row NOT IN ({without})"
    )
    con.execute(f"COMMENT ON VIEW {quote_ident(name)} IS {quote_literal(_TAG + signature)}")
    parent = _repeated_name(rows.relation)
    if _exists(con, parent):  # twins among fewer rows are among the parent's twins
        con.execute(f"CREATE OR REPLACE TEMP VIEW {quote_ident(_repeated_name(name))} AS "
                    f"SELECT * FROM {quote_ident(parent)} WHERE _row NOT IN ({without})")


def _repeated_name(typed: str) -> str:
    return f"__heal_repeated_{typed}"


def _exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return con.execute(
        "SELECT count(*) FROM (SELECT table_name AS n FROM duckdb_tables() WHERE temporary "
        "UNION ALL SELECT view_name FROM duckdb_views() WHERE temporary) WHERE n = ?", [name]
    ).fetchone()[0] > 0


def repeated_rows(con: duckdb.DuckDBPyConnection, rows: TypedRows) -> str:
    """A TEMP table (or view) of the rows that may have a twin: ``_row``, the typed key columns,
    whether the row is malformed (``__heal_bad``) and its delivered text (``__heal_text``).

    With a key: rows whose key is NULL or held by another row (identical rows share their
    key). Without one: rows whose hash is shared. An integer key is first counted per block
    of 64 values, which keeps the grouping small on large deliveries. Built once per typed
    relation; a derived relation (:func:`derive`) filters its parent's.
    """
    out = _repeated_name(rows.relation)
    if _exists(con, out):
        return out
    t = rows.sql
    keys = [quote_ident(k) for k in rows.key]
    if keys:
        k = ", ".join(keys)
        single = rows.key[0] if len(rows.key) == 1 else None
        scope = t
        if single is not None and _is_integer(con, rows, single):
            blocks = (f"SELECT {keys[0]} >> 6 AS b FROM {t} WHERE {keys[0]} IS NOT NULL GROUP BY b "
                      f"HAVING count(*) > bit_count(bit_or(1::UBIGINT << ({keys[0]} & 63)::INTEGER))")
            scope = f"(SELECT * FROM {t} WHERE {keys[0]} >> 6 IN ({blocks}))"
        not_null = " AND ".join(f"{x} IS NOT NULL" for x in keys)
        shared = f"SELECT {k} FROM {scope} WHERE {not_null} GROUP BY {k} HAVING count(*) > 1"
        null_key = " OR ".join(f"{x} IS NULL" for x in keys)
        candidates = (f"SELECT _row FROM {t} WHERE {null_key} UNION ALL "
                      f"SELECT _row FROM {scope} SEMI JOIN ({shared}) s USING ({k})")
    else:
        h = quote_ident(rows.hash or "")
        candidates = f"SELECT _row FROM {t} SEMI JOIN (SELECT {h} FROM {t} GROUP BY {h} HAVING count(*) > 1) USING ({h})"
    text = "struct_pack(" + ", ".join(
        f"{quote_ident(f'c{i}')} := s.{quote_ident(c)}" for i, c in enumerate(rows.delivered)
    ) + ")" if rows.delivered else "NULL"
    picked = ", ".join(f"r.{x}" for x in keys)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {quote_ident(out)} AS "
        f"SELECT r._row{', ' + picked if keys else ''}, {rows.breaks('rows_parse')} AS __heal_bad, "
        f"{text} AS __heal_text "
        f"FROM (SELECT * FROM {t} WHERE _row IN ({candidates})) r "
        f"JOIN {quote_ident(rows.source)} s ON s._row = r._row"
    )
    return out


def _is_integer(con: duckdb.DuckDBPyConnection, rows: TypedRows, column: str) -> bool:
    described = con.execute(f"DESCRIBE SELECT {quote_ident(column)} FROM {rows.sql}").fetchall()
    return described[0][1] in ("BIGINT", "INTEGER", "SMALLINT", "TINYINT")


def conflicting_keys(con: duckdb.DuckDBPyConnection, rows: TypedRows, repeated: str, *,
                     out: str = "heal_conflict_keys") -> str:
    """A TEMP table of the keys held by rows with different contents (malformed rows aside).

    ``repeated`` is :func:`repeated_rows`' table. Exact duplicates are no conflict; rows with
    a null or unparseable key are left to the other rules.
    """
    keys = ", ".join(quote_ident(k) for k in rows.key)
    not_null = " AND ".join(f"{quote_ident(k)} IS NOT NULL" for k in rows.key)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {quote_ident(out)} AS SELECT {keys} FROM {quote_ident(repeated)} "
        f"WHERE NOT __heal_bad AND {not_null} GROUP BY {keys} HAVING min(__heal_text) <> max(__heal_text)"
    )
    return out


def exact_duplicates(con: duckdb.DuckDBPyConnection, repeated: str) -> int:
    """How many rows repeat an earlier row exactly (every other row has no twin)."""
    return int(con.execute(
        f"SELECT count(*) - count(DISTINCT __heal_text) FROM {quote_ident(repeated)}"
    ).fetchone()[0])
