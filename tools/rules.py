"""Row-level quality rules as SQL, shared by the checker that counts them
(validate-quality) and the remediation that acts on them (quarantine-rows), so both agree
on exactly which rows break which rule.

:func:`row_scan` judges every row in one pass and stays cheap on large deliveries: a row
whose values all cast straight to their types (no trimming, no null token, in range) is
passed by one short test; only the few other rows are judged by each rule's own predicate.
The short test is exact, not a heuristic (see :func:`row_scan`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from tools.contract import Column, Contract, is_null_sql, parse_sql, quote_ident, quote_literal, sql_type

__all__ = [
    "MASK_BITS",
    "META_COLUMNS",
    "TYPE_DRIFT_SHARE",
    "RowRule",
    "RowScan",
    "breaks_sql",
    "count_breaches",
    "data_columns",
    "fast_value_sql",
    "fresh_name",
    "mask_bits",
    "mask_sql",
    "mask_type",
    "plain_text_sql",
    "row_rules",
    "row_scan",
    "scientific_sql",
    "token_may_cast",
    "typed_sql",
    "unparseable_shares",
]

#: Columns the reader adds to every staged delivery.
META_COLUMNS = ("_row", "_error")


#: Above this share of unparseable values a column has drifted as a whole (repair it);
#: below, the few bad rows are a quality problem (quarantine them).
TYPE_DRIFT_SHARE = 0.5


@dataclass(frozen=True)
class RowRule:
    """One way a row can be bad. ``predicate`` is SQL, true when the row breaks the rule."""

    criterion: str  # the validate-quality criterion it counts towards
    reason: str  # the reason code quarantine writes, e.g. "null_critical:amount"
    predicate: str
    failure_class: str


def data_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """The delivery's own columns of a staged table, in order (without _row/_error)."""
    cur = con.execute(f"SELECT * FROM {quote_ident(table)} LIMIT 0")
    return [d[0] for d in cur.description if d[0] not in META_COLUMNS]


def row_rules(contract: Contract, delivered: Sequence[str]) -> list[RowRule]:
    """The rules that apply to a delivery whose columns are ``delivered``, in report order.

    Each predicate first tries the column's cheap untrimmed cast (see :func:`row_scan`) and
    falls back to the contract's own definition only where that cast does not settle it.
    """
    present = set(delivered)
    rules = [RowRule("rows_parse", "malformed_row", "_error IS NOT NULL", "malformed_row")]
    critical = {c.name for c in contract.critical}
    casts_tokens = token_may_cast(contract.null_tokens)
    for col in contract.columns:
        if col.name not in present:
            if col.name in critical:  # a missing critical column is null in every row
                rules.append(RowRule("no_null_critical", f"null_critical:{col.name}", "true", "null_critical"))
            continue
        ident = quote_ident(col.name)
        fast = None if casts_tokens else fast_value_sql(ident, col)
        settled = f"{fast} IS NOT NULL" if fast else None  # the value is there and parses
        if col.type == "text":
            settled = plain_text_sql(ident, contract.null_tokens)
        if col.name in critical:
            rules.append(RowRule(
                "no_null_critical", f"null_critical:{col.name}",
                _guarded(settled, "false", is_null_sql(ident, contract.null_tokens)), "null_critical",
            ))
        parsed = parse_sql(ident, col, contract.null_tokens)
        if col.type != "text":
            rules.append(RowRule(
                "values_parse", f"unparseable:{col.name}",
                _guarded(settled, "false", f"(NOT {is_null_sql(ident, contract.null_tokens)} AND {parsed} IS NULL)"),
                "type_drift",
            ))
        bounds, fast_bounds = [], []
        if col.min is not None:
            bounds.append(f"{parsed} < {col.min!r}")
            fast_bounds.append(f"{fast} < {col.min!r}")
        if col.max is not None:
            bounds.append(f"{parsed} > {col.max!r}")
            fast_bounds.append(f"{fast} > {col.max!r}")
        if bounds:
            rules.append(RowRule(
                "values_in_range", f"out_of_range:{col.name}",
                _guarded(settled if fast else None, f"({' OR '.join(fast_bounds)})", f"({' OR '.join(bounds)})"),
                "out_of_range",
            ))
    return rules


def typed_sql(ident: str, column: Column, null_tokens: Sequence[str]) -> str:
    """``parse_sql`` with the cheap untrimmed cast tried first (same values, fewer trims)."""
    tokens = tuple(null_tokens)
    slow = parse_sql(ident, column, tokens)
    fast = None if token_may_cast(tokens) else fast_value_sql(ident, column)
    return slow if fast is None else f"(CASE WHEN {fast} IS NOT NULL THEN {fast} ELSE {slow} END)"


def _guarded(settled: str | None, then: str, otherwise: str) -> str:
    """``then`` where the cheap test ``settled`` holds, else the contract's own predicate."""
    return otherwise if settled is None else f"(CASE WHEN {settled} THEN {then} ELSE {otherwise} END)"


def scientific_sql(ident: str, tokens: Sequence[str]) -> str:
    """True for text that is a number in scientific notation once trimmed (and no null token):
    read as a number, noted by the drift planner. Only text holding an ``e`` is matched."""
    return (f"(CASE WHEN contains({ident}, 'e') OR contains({ident}, 'E') THEN "
            f"regexp_full_match(trim({ident}), '[-+]?[0-9.]+[eE][-+]?[0-9]+') "
            f"AND NOT {is_null_sql(ident, tuple(tokens))} ELSE false END)")


def plain_text_sql(ident: str, tokens: Sequence[str]) -> str:
    """True for text that ``trim`` leaves alone and that is no null token, so not null.

    Printable ASCII with no space at either end: ``trim`` strips only Unicode space
    separators, which such text cannot start or end with.
    """
    return (f"({ident} IS NOT NULL AND strlen({ident}) = length({ident}) AND {ident} >= '!' "
            f"AND NOT suffix({ident}, ' ') AND NOT {_in(ident, tokens)})")


def unparseable_shares(
    con: duckdb.DuckDBPyConnection, table: str, columns: Sequence[Column], null_tokens: Sequence[str]
) -> dict[str, float]:
    """Per typed column present in ``table``: the share of non-null values that do not parse."""
    present = set(data_columns(con, table))
    typed = [c for c in columns if c.name in present and c.type != "text"]
    if not typed:
        return {}
    tokens = tuple(null_tokens)
    exprs = ", ".join(
        f"count(*) FILTER (WHERE NOT {is_null_sql(quote_ident(c.name), tokens)}), "
        f"count(*) FILTER (WHERE NOT {is_null_sql(quote_ident(c.name), tokens)} "
        f"AND {parse_sql(quote_ident(c.name), c, tokens)} IS NULL)"
        for c in typed
    )
    out = con.execute(f"SELECT {exprs} FROM {quote_ident(table)}").fetchone()
    return {
        c.name: (out[2 * i + 1] / out[2 * i] if out[2 * i] else 0.0)
        for i, c in enumerate(typed)
    }


# -- one pass over every row ------------------------------------------------------------------

#: Words a cast to a number, date or boolean may accept although they hold no digit.
_CAST_WORDS = frozenset({
    "inf", "infinity", "nan", "epoch", "true", "false", "t", "f", "yes", "no", "y", "n", "on", "off",
})
#: Rules per mask column: bit ``i % 63`` of mask ``i // 63`` is set when rule ``i`` breaks.
MASK_BITS = 63


@dataclass(frozen=True)
class RowScan:
    """One pass over a relation that judges every row.

    ``sql`` selects, per row: the parsed key columns (``keys``, in contract key order), a
    hash of the row (``hash``: equal rows hash equal; rows that hash equal may still differ,
    e.g. ``12.5`` and ``12.50``, and must be compared), the rule bit masks (``masks``: bit
    ``i % 63`` of mask ``i // 63`` is set when ``rules[i]`` breaks), then ``extra``.
    """

    sql: str
    rules: tuple[RowRule, ...]
    keys: tuple[str, ...]
    hash: str
    masks: tuple[str, ...]


def _clean_tokens(tokens: Sequence[str]) -> tuple[str, ...]:
    """Null tokens equal to their own trim: ``x IN`` these implies ``trim(x) IN`` the tokens."""
    return tuple(t for t in tokens if t == t.strip())


def token_may_cast(tokens: Sequence[str]) -> bool:
    """Whether a cast to a number, date or boolean could accept some null token."""
    for t in tokens:
        word = t.strip().lower().lstrip("+-")
        if re.search(r"\d", t) or word in _CAST_WORDS:
            return True
    return False


def _in(expr: str, tokens: Sequence[str]) -> str:
    if not tokens:
        return "false"
    return f"{expr} IN ({', '.join(quote_literal(t) for t in tokens)})"


def fast_value_sql(ident: str, col: Column) -> str | None:
    """The column's typed value, read without trimming; NULL when that read is not enough.

    Where this is not NULL it equals ``parse_sql``: the casts skip ASCII spaces themselves
    and fail on the other characters ``trim`` strips, so the untrimmed cast succeeds only
    where trimming would not change the result.
    """
    if col.type in ("bigint", "integer"):
        d = f"TRY_CAST({ident} AS DOUBLE)"
        return f"(CASE WHEN {d} = round({d}) THEN TRY_CAST({d} AS {sql_type(col.type)}) END)"
    if col.type == "boolean":
        return (
            f"(CASE lower({ident}) WHEN 'true' THEN true WHEN 't' THEN true WHEN 'yes' THEN true "
            f"WHEN '1' THEN true WHEN 'false' THEN false WHEN 'f' THEN false WHEN 'no' THEN false "
            f"WHEN '0' THEN false END)"
        )
    if col.type == "text":
        return None
    return f"TRY_CAST({ident} AS {sql_type(col.type)})"


def mask_type(bits: int) -> str:
    """The smallest signed integer type that holds ``bits`` flag bits."""
    return next(t for n, t in ((7, "TINYINT"), (15, "SMALLINT"), (31, "INTEGER")) if bits <= n) if bits <= 31 else "BIGINT"


def mask_sql(rules: Sequence[RowRule]) -> str:
    """SQL for one mask: bit ``i`` set when ``rules[i]`` (at most :data:`MASK_BITS`) breaks."""
    return " | ".join(f"CASE WHEN {r.predicate} THEN {1 << i} ELSE 0 END" for i, r in enumerate(rules)) or "0"


def mask_bits(rules: Sequence[RowRule], masks: Sequence[str], criterion: str | None = None,
              reason: str | None = None) -> list[tuple[str, int]]:
    """(mask column, bits) of the rules of ``criterion`` (or with ``reason``; all rules when neither)."""
    found = []
    for j, mask in enumerate(masks):
        bits = sum(1 << (i - MASK_BITS * j) for i, r in enumerate(rules)
                   if i // MASK_BITS == j and (criterion is None or r.criterion == criterion)
                   and (reason is None or r.reason == reason))
        if bits:
            found.append((mask, bits))
    return found


def breaks_sql(rules: Sequence[RowRule], masks: Sequence[str], criterion: str | None = None,
               reason: str | None = None) -> str:
    """SQL true when a row breaks some rule (of ``criterion``, or with ``reason``, when given)."""
    parts = [f"({quote_ident(m)} & {b}) <> 0" for m, b in mask_bits(rules, masks, criterion, reason)]
    return "(" + (" OR ".join(parts) or "false") + ")"


def count_breaches(con: duckdb.DuckDBPyConnection, relation: str, rules: Sequence[RowRule],
                   masks: Sequence[str]) -> tuple[int, dict[str, int], dict[str, int]]:
    """(rows of ``relation``, rows breaking each rule by reason code, rows breaking each criterion)."""
    per_rule = {r.reason: 0 for r in rules}
    per_criterion = {r.criterion: 0 for r in rules}
    rows = 0
    listed = ", ".join(quote_ident(m) for m in masks)
    for *values, n in con.execute(f"SELECT {listed}, count(*) FROM {relation} GROUP BY ALL").fetchall():
        rows += n
        broken = [r for i, r in enumerate(rules) if values[i // MASK_BITS] >> (i % MASK_BITS) & 1]
        for rule in broken:
            per_rule[rule.reason] += n
        for criterion in {r.criterion for r in broken}:
            per_criterion[criterion] += n
    return rows, per_rule, per_criterion


def fresh_name(base: str, taken: set[str]) -> str:
    """``base``, with underscores added until it is not in ``taken`` (which it then joins)."""
    name = base
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def row_scan(
    contract: Contract, delivered: Sequence[str], source: str, *, extra: Sequence[str] = (), hash_bits: int = 64
) -> RowScan:
    """Judge every row of ``source`` (a relation with the delivered columns and ``_error``).

    A row passes the short test when ``_error`` is NULL and every column a rule reads casts
    untrimmed to a non-null value in range (a critical text column: printable ASCII with
    no space at either end, and not a null token). For such a row no rule can break: no
    null token casts to the column's type (else the short test is off for that column),
    and where the untrimmed cast succeeds it equals the trimmed one (:func:`fast_value_sql`).
    Every other row is judged by the rules' own predicates, so the counts are exactly those
    of ``row_rules``. ``extra`` names more source columns to pass through (e.g. ``_row``);
    ``hash_bits=32`` keeps a 32-bit row hash (a smaller table; equal hashes need a recheck).
    """
    rules = row_rules(contract, delivered)
    present = set(delivered)
    taken = set(delivered) | set(META_COLUMNS) | set(extra)
    tokens = contract.null_tokens
    clean = _clean_tokens(tokens)
    casts_tokens = token_may_cast(tokens)
    critical = {c.name for c in contract.critical}
    values: dict[str, str] = {}  # column -> name of its fast value in the inner projection
    inner: list[str] = []
    ok: list[str] = ["_error IS NULL"]
    ruled = {r.reason.split(":", 1)[1] for r in rules if ":" in r.reason}
    for col in contract.columns:
        if col.name not in present:
            if col.name in critical:
                ok.append("false")  # null in every row: each row is judged by the rules
            continue
        if col.name not in ruled:
            continue
        ident = quote_ident(col.name)
        fast = None if casts_tokens else fast_value_sql(ident, col)
        if col.type == "text":
            if col.min is not None or col.max is not None:
                ok.append("false")
            elif col.name in critical:
                ok.append(plain_text_sql(ident, tokens))
            continue
        if fast is None:
            ok.append("false")
            continue
        name = fresh_name(f"__heal_v_{len(values)}", taken)
        values[col.name] = name
        inner.append(f"{fast} AS {quote_ident(name)}")
        v = quote_ident(name)
        bounds = []
        if col.min is not None:
            bounds.append(f"{v} < {col.min!r}")
        if col.max is not None:
            bounds.append(f"{v} > {col.max!r}")
        good = f"{v} IS NOT NULL" + (f" AND NOT ({' OR '.join(bounds)})" if bounds else "")
        if col.name in critical:
            ok.append(f"({good})")
        else:  # a null is no breach in an optional column
            ok.append(f"(({good}) OR {ident} IS NULL OR {_in(ident, clean)})")
    ok_name = fresh_name("__heal_ok", taken)
    hash_name = fresh_name("__heal_h", taken)
    masks = []
    for start in range(0, max(len(rules), 1), MASK_BITS):
        part = rules[start : start + MASK_BITS]
        masks.append((fresh_name(f"__heal_m{start // MASK_BITS}", taken), mask_sql(part)))
    keys = []
    key_exprs = []
    if contract.key and all(k in present for k in contract.key):
        for k in contract.key:
            col = contract.column(k)
            slow = parse_sql(quote_ident(k), col, tokens)
            name = fresh_name(f"__heal_k_{len(keys)}", taken)
            keys.append(name)
            expr = f"CASE WHEN {quote_ident(ok_name)} THEN {quote_ident(values[k])} ELSE {slow} END" if k in values else slow
            key_exprs.append(f"{expr} AS {quote_ident(name)}")
    if delivered:
        # Rows that pass the short test hash their typed values (cheaper than their text);
        # the others hash their text. Equal rows always hash equal, which is all a hash
        # promises: rows that hash equal must still be compared value by value.
        text = f"hash({', '.join(quote_ident(c) for c in delivered)})"
        typed = f"hash({', '.join(quote_ident(values.get(c, c)) for c in delivered)})"
        row_hash = text if typed == text else f"(CASE WHEN {quote_ident(ok_name)} THEN {typed} ELSE {text} END)"
    else:
        row_hash = "0::UBIGINT"
    if hash_bits == 32:
        row_hash = f"({row_hash} & 4294967295)::UINTEGER"
    outer = [
        *key_exprs,
        f"{row_hash} AS {quote_ident(hash_name)}",
        *(f"(CASE WHEN {quote_ident(ok_name)} THEN 0 ELSE {bits} END)::{mask_type(len(rules) - 63 * j)} "
          f"AS {quote_ident(name)}" for j, (name, bits) in enumerate(masks)),
        *(quote_ident(e) for e in extra),
    ]
    staged = f"SELECT *{''.join(', ' + x for x in inner)} FROM {source}"
    judged = f"SELECT *, ({' AND '.join(ok)}) AS {quote_ident(ok_name)} FROM ({staged})"
    return RowScan(
        sql=f"SELECT {', '.join(outer)} FROM ({judged})",
        rules=tuple(rules),
        keys=tuple(keys),
        hash=hash_name,
        masks=tuple(name for name, _ in masks),
    )
