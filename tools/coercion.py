"""Type drift: decide per column, from the data, how drifted text becomes the contract's type.

A delivery is staged as text (:mod:`tools.readers`). A first pass counts, per column, the
values that do not parse (from the typed rows of :mod:`tools.typed_rows` when the pipeline
built them, else one scan of the text). When a typed column does not parse,
:func:`plan_drift` looks at every value of that column in a second pass and picks one rule
the whole column agrees on: currency symbols, thousands separators and a decimal comma,
amounts in cents, or a date format (``MM/DD/YYYY``, ``DD/MM/YYYY``, ``DD.MM.YYYY``,
``YYYYMMDD``). Day/month order and decimal separators are inferred from the values; when
the values cannot tell (every date has both parts at most 12, every number reads the same
either way), a rule learned on an earlier run decides, or the plan reports the ambiguity
with its candidates and the delivery escalates. Nothing is guessed silently.

:func:`rewrite_sql` turns a plan into one SQL expression per column that yields canonical
text (``-1234.50``, ``2026-11-02``), so the rewritten table parses with
:func:`tools.contract.parse_sql` and the rest of the graph is unchanged. Values no rule
reads stay as they were and are quarantined downstream as unparseable.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb

from tools.contract import NUMERIC_COLUMN_TYPES, Column, is_null_sql, parse_sql, quote_ident, quote_literal
from tools.rules import (  # row_scan's exact shortcut, and the scientific-notation test typed_rows notes
    fast_value_sql,
    plain_text_sql,
    scientific_sql,
    token_may_cast,
)
from tools.typed_rows import TypedRows

__all__ = ["CENTS_RATIO", "Ambiguity", "Coercion", "DriftPlan", "plan_drift", "rewrite_sql"]

_DATES = ("date", "timestamp")
_SYM = "(?:[$€£¥₹]|USD|EUR|GBP|CHF|JPY)"
#: Thousands separators by number style: a decimal dot, a decimal comma, whole numbers.
_SEPS = {"dot": ", '\u00a0\u202f", "comma": ". '\u00a0\u202f", "int": ",. '\u00a0\u202f"}
#: Characters whose presence means the value is rewritten, by style.
_CHANGED = {**_SEPS, "comma": "," + _SEPS["comma"]}
_BODY = {
    "dot": f"[0-9]{{1,3}}(?:[{_SEPS['dot']}][0-9]{{3}})+(?:\\.[0-9]+)?|[0-9]+(?:\\.[0-9]+)?|\\.[0-9]+",
    "comma": f"[0-9]{{1,3}}(?:[{_SEPS['comma']}][0-9]{{3}})+(?:,[0-9]+)?|[0-9]+(?:,[0-9]+)?|,[0-9]+",
    "int": f"[0-9]{{1,3}}(?:[{_SEPS['int']}][0-9]{{3}})+|[0-9]+",
}
_STYLE_RULE = {"dot": "thousands_separator", "comma": "decimal_comma", "int": "thousands_separator"}
_WHOLE = "[-+]?[0-9]+"
_TIME = "(?:[ T][0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:\\.[0-9]+)?)?)?"
_FAMILIES = {"/": "([0-9]{1,2})/([0-9]{1,2})/[0-9]{4}", "-": "([0-9]{1,2})-([0-9]{1,2})-[0-9]{4}",
             ".": "([0-9]{1,2})\\.([0-9]{1,2})\\.[0-9]{4}"}
_COMPACT = "[0-9]{8}"
_ISO = {"date": "%Y-%m-%d", "timestamp": "%Y-%m-%d %H:%M:%S"}
#: Ratio of a whole-number column's median to its usual median that reads as "in cents".
CENTS_RATIO = (30.0, 300.0)


@dataclass(frozen=True)
class Coercion:
    """One coercion of one column: the rule and how many values it changed (or read as is).

    ``repair`` is false for values the contract's own rules read as they are (null tokens,
    scientific notation): recorded, but the delivery did not need healing for them.
    """

    column: str
    rule: str
    rows: int
    detail: str = ""
    repair: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "rule": self.rule, "rows": self.rows, "detail": self.detail,
                "repair": self.repair}


@dataclass(frozen=True)
class Ambiguity:
    """A column whose values admit more than one rule: hold the delivery, show the candidates."""

    column: str
    kind: str  # day_month_order | decimal_separator | unit
    candidates: dict[str, float]
    detail: str
    failure_class: str = "type_drift"

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "kind": self.kind, "candidates": self.candidates, "detail": self.detail,
                "failure_class": self.failure_class}


@dataclass(frozen=True)
class _Rewrite:
    """How one column's text is rewritten: a number style, cents, and/or date formats."""

    style: str | None = None  # dot | comma | int
    currency: bool = False
    cents: bool = False
    dates: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (regex, strptime formats) in order


@dataclass(frozen=True)
class DriftPlan:
    """What :func:`plan_drift` found, keyed by the column's name in the staged table."""

    rewrites: tuple[Coercion, ...] = ()  # applied by rewriting the text
    notes: tuple[Coercion, ...] = ()  # read as they are: null tokens, scientific notation
    ambiguous: tuple[Ambiguity, ...] = ()
    unparseable: dict[str, float] = field(default_factory=dict)  # share per column before any rule
    _how: dict[str, tuple[Column, _Rewrite]] = field(default_factory=dict)

    @property
    def columns(self) -> tuple[str, ...]:
        """The staged columns :func:`rewrite_sql` changes."""
        return tuple(self._how)


def _q(pattern: str) -> str:
    """A regex (or format) as a SQL literal: patterns hold quotes and backslashes."""
    return quote_literal(pattern)


def _v(source: str) -> str:
    return f"trim({quote_ident(source)})"


def _number_re(style: str, currency: bool) -> str:
    body = _BODY[style]
    if not currency:
        return f"([-+]?)({body})"
    return f"{_SYM}?\\s*([-+]?)\\s*{_SYM}?\\s*({body})\\s*{_SYM}?"


def _first_pass(con: duckdb.DuckDBPyConnection, table: str, columns: Sequence[tuple[str, Column]],
                tokens: tuple[str, ...]) -> list[dict[str, int]]:
    """One scan: per column, values, non-empty null tokens, and for typed columns the values that
    do not parse, are in scientific notation, or (decimal) are whole numbers.

    Cheap on large deliveries, and exact: a value that casts untrimmed to its type, when no null
    token can cast (text: printable ASCII with no space at either end, no token), is a value, no
    token, and parses (see :func:`tools.rules.typed_sql`), so only the other values are trimmed
    and judged by the contract's own predicates. ``trim`` strips only spaces, so the untrimmed
    text holds an ``e`` or a ``.`` exactly when the trimmed text does.
    """
    parts: list[str] = []
    layout: list[list[str]] = []
    listed = ", ".join(quote_literal(t) for t in tokens if t.strip()) or "NULL"
    casts_tokens = token_may_cast(tokens)
    inner: list[str] = []
    for i, (src, col) in enumerate(columns):
        ident = quote_ident(src)
        if col.type == "text":
            settled = plain_text_sql(ident, tokens)
        else:
            fast = None if casts_tokens else fast_value_sql(ident, col)
            settled = "false" if fast is None else f"{fast} IS NOT NULL"
        inner.append(f"{ident} AS r{i}, {settled} AS ok{i}")
        r, v, ok = f"r{i}", f"trim(r{i})", f"ok{i}"
        null = is_null_sql(r, tokens)
        keys = ["n", "tokens"]
        parts += [f"count(*) FILTER (WHERE CASE WHEN {ok} THEN true ELSE NOT {null} END)",
                  f"count(*) FILTER (WHERE CASE WHEN {ok} THEN false ELSE {v} IN ({listed}) END)"]
        if col.type != "text":
            keys.append("bad")
            parts.append(f"count(*) FILTER (WHERE CASE WHEN {ok} THEN false "
                         f"ELSE NOT {null} AND {parse_sql(r, col, tokens)} IS NULL END)")
        if col.type in NUMERIC_COLUMN_TYPES:
            keys.append("sci")
            parts.append(f"count(*) FILTER (WHERE {scientific_sql(r, tokens)})")
        if col.type == "decimal":
            keys.append("whole")
            parts.append(_whole_sql(r, null))
        layout.append(keys)
    if not parts:
        return []
    sql = f"SELECT {', '.join(parts)} FROM (SELECT {', '.join(inner)} FROM {quote_ident(table)})"
    row = con.execute(sql).fetchone()
    out, i = [], 0
    for keys in layout:
        out.append(dict(zip(keys, row[i:i + len(keys)])))
        i += len(keys)
    return out


def _whole_sql(r: str, null: str) -> str:
    """Values written as whole numbers (a null token such as ``-999`` is no value)."""
    return (f"count(*) FILTER (WHERE CASE WHEN contains({r}, '.') OR contains({r}, ',') THEN false "
            f"ELSE regexp_full_match(trim({r}), {_q(_WHOLE)}) AND NOT {null} END)")


def _first_pass_typed(con: duckdb.DuckDBPyConnection, typed: TypedRows, columns: Sequence[tuple[str, Column]],
                      tokens: tuple[str, ...]) -> list[dict[str, int | None]]:
    """:func:`_first_pass`'s counts read off the delivery's typed rows, without the text.

    A typed value is exactly ``parse_sql``, so where it is not NULL the text is a value, no
    token, and parses; the rule masks mark the values that do not parse, and the typing pass
    noted null tokens and scientific notation (:meth:`TypedRows.note_bits`). ``whole``
    (decimal) is counted on the text only when :func:`plan_drift` reads it (two or more values,
    all parse, none with a fraction: a value with a fraction was never written as a whole
    number); otherwise it is None. ``typed`` must type ``table`` under these ``tokens``.
    """
    if not columns:
        return []
    t, notes = typed.sql, quote_ident(typed.notes or "")
    parts: list[str] = []
    for src, col in columns:
        v = quote_ident(src)
        token, sci = typed.note_bits(src)
        unparsed = " OR ".join(f"({quote_ident(m)} & {b}) <> 0" for m, b in typed.bits(reason=f"unparseable:{src}"))
        parts += [f"count({v})", f"count(*) FILTER (WHERE {unparsed or 'false'})",
                  f"count(*) FILTER (WHERE ({notes} & {token}) <> 0)", f"count(*) FILTER (WHERE ({notes} & {sci}) <> 0)",
                  f"count(*) FILTER (WHERE {v} <> trunc({v}))" if col.type == "decimal" else "0"]
    got = con.execute(f"SELECT {', '.join(parts)} FROM {t}").fetchone()
    out: list[dict[str, int | None]] = []
    for i, (src, col) in enumerate(columns):
        parsed, unparsed, token_count, sci_count, fractions = got[5 * i:5 * i + 5]
        first: dict[str, int | None] = {"n": parsed + unparsed, "tokens": token_count}
        if col.type != "text":
            first["bad"] = unparsed
        if col.type in NUMERIC_COLUMN_TYPES:
            first["sci"] = sci_count
        if col.type == "decimal":  # plan_drift reads it only for a column of two or more values that all parse
            raw = quote_ident(src)
            first["whole"] = None if fractions or unparsed or first["n"] < 2 else con.execute(
                f"SELECT {_whole_sql(raw, is_null_sql(raw, tokens))} FROM {quote_ident(typed.source)}").fetchone()[0]
        out.append(first)
    return out


def _contains_any(v: str, chars: str) -> str:
    return "(" + " OR ".join(f"contains({v}, {quote_literal(c)})" for c in chars) + ")"


def _matches(v: str, style: str) -> str:
    """SQL: ``v`` is a number in ``style``, with a currency symbol or code if it has one (``m``)."""
    return (f"CASE WHEN m THEN regexp_full_match({v}, {_q(_number_re(style, True))}) "
            f"ELSE regexp_full_match({v}, {_q(_number_re(style, False))}) END")


def _learned_order(rules: Sequence[str], sep: str) -> str | None:
    """``dmy``/``mdy`` from a learned rule: ours (``date:DD/MM/YYYY``) or a strptime format."""
    for rule in rules:
        text = rule.removeprefix("date:").removeprefix("date_format:")
        if text.startswith(("DD", "%d")):
            return "dmy"
        if text.startswith(("MM", "%m")):
            return "mdy"
    return None


def _learned_formats(rules: Sequence[str]) -> list[str]:
    return [r.removeprefix("date_format:") for r in rules if r.startswith("date_format:%")]


def _plan_number(con: duckdb.DuckDBPyConnection, table: str, source: str, col: Column,
                 learned: Sequence[str]) -> tuple[_Rewrite | None, list[Coercion], Ambiguity | None]:
    styles = ["int"] if col.type in ("bigint", "integer") else ["dot", "comma"]
    flags = ", ".join(f"{_matches('v', style)} AS is_{style}" for style in styles)
    sql = []
    for style in styles:
        sql += [f"count(*) FILTER (WHERE is_{style})", f"count(*) FILTER (WHERE is_{style} AND m)",
                f"count(*) FILTER (WHERE is_{style} AND {_contains_any('b', _CHANGED[style])})"]
    both = "is_dot AND is_comma AND regexp_matches(v, '[0-9][.,][0-9]{3}$')" if len(styles) == 2 else "false"
    sql.append(f"count(*) FILTER (WHERE CASE WHEN {'is_dot AND is_comma' if len(styles) == 2 else 'false'} "
               f"THEN {both} ELSE false END)")
    got = con.execute(
        f"SELECT {', '.join(sql)} FROM (SELECT v, m, {flags}, CASE WHEN m THEN "
        f"trim(regexp_replace(v, {_q(_SYM)}, '', 'g')) ELSE v END AS b FROM (SELECT v, "
        f"regexp_matches(v, {_q(_SYM)}) AS m FROM (SELECT {_v(source)} AS v FROM {quote_ident(table)}) WHERE v <> ''))"
    ).fetchone()
    stats = {s: got[3 * i:3 * i + 3] for i, s in enumerate(styles)}
    covered = {s: c for s, (c, _, _) in stats.items()}
    if col.type in ("bigint", "integer"):
        style = "int"
    elif covered["dot"] == covered["comma"] and got[-1]:
        order = next((r for r in learned if r in ("decimal_comma", "thousands_separator")), None)
        if order is None:
            detail = (f"{source}: {got[-1]} values such as 1,234 or 1.234 read as different numbers with a decimal "
                      "dot or a decimal comma, and no value tells which: confirm the decimal separator")
            candidates = {"thousands_separator": covered["dot"], "decimal_comma": covered["comma"]}
            return None, [], Ambiguity(col.name, "decimal_separator", candidates, detail)
        style = "comma" if order == "decimal_comma" else "dot"
    else:
        style = "comma" if covered["comma"] > covered["dot"] else "dot"
    _, currency, separated = stats[style]
    done = []
    if currency:
        done.append(Coercion(col.name, "currency", currency, "currency symbols and codes removed"))
    if separated:
        what = "decimal comma read as a dot" if style == "comma" else "thousands separators removed"
        done.append(Coercion(col.name, _STYLE_RULE[style], separated, what))
    if not done:
        return None, [], None
    return _Rewrite(style=style, currency=bool(currency)), done, None


def _plan_cents(con: duckdb.DuckDBPyConnection, table: str, source: str, col: Column, first: dict[str, int],
                learned: Sequence[str], history: Sequence[Mapping[str, Any]]) -> tuple[_Rewrite | None, list[Coercion],
                                                                                     Ambiguity | None]:
    unit = next((r for r in learned if r in ("cents", "unit:cents", "units", "unit:units")), None)
    if unit in ("cents", "unit:cents"):
        return _Rewrite(cents=True), [Coercion(col.name, "cents", first["n"], "whole numbers read as cents (learned)")], None
    if unit is not None:
        return None, [], None
    v = f"TRY_CAST({_v(source)} AS DOUBLE)"
    bounds = [f"{x} < {col.min!r}" for x in (v, f"{v} / 100") if col.min is not None]
    bounds = [*bounds, *(f"{x} > {col.max!r}" for x in (v, f"{v} / 100") if col.max is not None)]
    now = " OR ".join(b for b in bounds if "/ 100" not in b) or "false"
    cents = " OR ".join(b for b in bounds if "/ 100" in b) or "false"
    median, out_now, out_cents = con.execute(
        f"SELECT approx_quantile({v}, 0.5), count(*) FILTER (WHERE {now}), count(*) FILTER (WHERE {cents}) "
        f"FROM {quote_ident(table)}"
    ).fetchone()
    past = [float(p["columns"][col.name]["median"]) for p in history
            if isinstance(p.get("columns", {}).get(col.name), Mapping) and p["columns"][col.name].get("median") is not None]
    if past and median is not None:
        usual = statistics.median(past)
        ratio = median / usual if usual else 0.0
        if not CENTS_RATIO[0] <= ratio <= CENTS_RATIO[1]:
            return None, [], None  # the same unit as before (or a shift validate-history judges)
        detail = (f"{source}: every value is a whole number and the median {median:g} is {ratio:.0f}x the usual "
                  f"{usual:g}: amounts in cents? Hold the delivery and confirm the unit")
        return None, [], Ambiguity(col.name, "unit", {"cents": round(ratio, 2), "units": 1.0}, detail,
                                   "distribution_shift")
    if out_now and not out_cents:
        detail = (f"{source}: every value is a whole number; {out_now} are outside {col.min}..{col.max} as they "
                  "are and none would be in cents; no history to tell: confirm the unit")
        return None, [], Ambiguity(col.name, "unit", {"cents": first["n"], "units": first["n"] - out_now}, detail,
                                   "distribution_shift")
    return None, [], None


def _date_formats(sep: str, order: str, col: Column) -> tuple[str, ...]:
    day = f"%d{sep}%m{sep}%Y" if order == "dmy" else f"%m{sep}%d{sep}%Y"
    if col.type == "date":
        return (day,)
    return tuple(f"{day}{t}" for t in (" %H:%M:%S", " %H:%M", "T%H:%M:%S", "T%H:%M", ""))


def _plan_dates(con: duckdb.DuckDBPyConnection, table: str, source: str, col: Column,
                learned: Sequence[str]) -> tuple[_Rewrite | None, list[Coercion], Ambiguity | None]:
    v = _v(source)
    time = _TIME if col.type == "timestamp" else ""
    sql = []
    for fam in _FAMILIES.values():
        full = f"{fam}{time}"
        first, second = (f"TRY_CAST(regexp_extract(v, {_q('^' + fam)}, {i}) AS INT)" for i in (1, 2))
        sql += [f"count(*) FILTER (WHERE regexp_full_match(v, {_q(full)}))",  # below: only one order reads it
                f"count(*) FILTER (WHERE regexp_full_match(v, {_q(full)}) AND {first} > 12 AND {second} <= 12)",
                f"count(*) FILTER (WHERE regexp_full_match(v, {_q(full)}) AND {second} > 12 AND {first} <= 12)"]
    sql.append(f"count(*) FILTER (WHERE regexp_full_match(v, {_q(_COMPACT)}) AND try_strptime(v, '%Y%m%d') IS NOT NULL)")
    formats = _learned_formats(learned)
    known = _q("|".join([*(f"{fam}{time}" for fam in _FAMILIES.values()), _COMPACT]))
    sql += [f"count(*) FILTER (WHERE TRY_CAST(v AS {col.sql_type}) IS NULL AND try_strptime(v, {quote_literal(f)}) "
            f"IS NOT NULL AND NOT regexp_full_match(v, {known}))" for f in formats]
    got = con.execute(f"SELECT {', '.join(sql)} FROM (SELECT {v} AS v FROM {quote_ident(table)})").fetchone()
    dates: list[tuple[str, tuple[str, ...]]] = []
    done: list[Coercion] = []
    for i, (sep, fam) in enumerate(_FAMILIES.items()):
        n, first_big, second_big = got[3 * i:3 * i + 3]
        if not n:
            continue
        name = {"dmy": f"date:DD{sep}MM{sep}YYYY", "mdy": f"date:MM{sep}DD{sep}YYYY"}
        if first_big and second_big:
            detail = (f"{source}: {first_big} values read only day-first and {second_big} only month-first: "
                      "the day/month order differs between rows; ask the vendor")
            return None, [], Ambiguity(col.name, "day_month_order", {name["dmy"]: first_big, name["mdy"]: second_big},
                                       detail)
        how = "inferred from the data"
        order = "dmy" if first_big else "mdy" if second_big else None
        if order is None:
            order, how = _learned_order(learned, sep), "learned on an earlier run"
        if order is None and sep == ".":
            order, how = "dmy", "by convention (no value tells; DD.MM.YYYY is day-first)"
        if order is None:
            detail = (f"{source}: every one of {n} dates like 03{sep}04{sep}2026 has day and month at most 12, so "
                      "the order cannot be inferred; confirm it (heal.learned_rules date_format) or ask the vendor")
            return None, [], Ambiguity(col.name, "day_month_order", {name["dmy"]: n, name["mdy"]: n}, detail)
        dates.append((f"{fam}{time}", _date_formats(sep, order, col)))
        done.append(Coercion(col.name, name[order], n, f"day/month order {how}"))
    compact = got[3 * len(_FAMILIES)]
    if compact:
        dates.append((_COMPACT, ("%Y%m%d",)))
        done.append(Coercion(col.name, "date:YYYYMMDD", compact, "compact dates"))
    for fmt, n in zip(formats, got[3 * len(_FAMILIES) + 1:]):
        if n:
            dates.append((".*", (fmt,)))
            done.append(Coercion(col.name, f"date_format:{fmt}", n, "a date format learned on an earlier run"))
    return (_Rewrite(dates=tuple(dates)) if dates else None), done, None


def plan_drift(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: Sequence[tuple[str, Column]],
    *,
    null_tokens: Sequence[str],
    learned: Mapping[str, Sequence[str]] | None = None,
    history: Sequence[Mapping[str, Any]] = (),
    typed: TypedRows | None = None,
) -> DriftPlan:
    """Decide, per ``(staged column, contract column)``, how its text becomes the contract type.

    ``learned`` maps a contract column to rules confirmed on earlier runs, newest first
    (``date:DD/MM/YYYY``, ``date_format:%d/%m/%Y``, ``decimal_comma``, ``cents``, ``units``);
    they break ties the data cannot. ``history`` is ``heal.profiles`` of earlier loaded runs.
    ``typed`` (:func:`tools.typed_rows.typed_rows` of ``table``), when given, spares most of a
    pass over the text: the later steps read the same typed rows.
    """
    learned = learned or {}
    tokens = tuple(null_tokens)
    if typed is not None and typed.notes and typed.source == table \
            and all(src == col.name and src in typed.typed for src, col in columns):
        firsts = _first_pass_typed(con, typed, columns, tokens)
    else:
        firsts = _first_pass(con, table, columns, tokens)
    rewrites: list[Coercion] = []
    notes: list[Coercion] = []
    ambiguous: list[Ambiguity] = []
    how: dict[str, tuple[Column, _Rewrite]] = {}
    shares: dict[str, float] = {}
    for (source, col), first in zip(columns, firsts):
        if first["tokens"]:
            notes.append(Coercion(col.name, "null_token", first["tokens"], "null tokens read as no value", False))
        if first.get("sci"):
            notes.append(Coercion(col.name, "scientific", first["sci"], "scientific notation read as numbers", False))
        if col.type == "text":
            continue
        shares[source] = round(first["bad"] / first["n"], 4) if first["n"] else 0.0
        rules = tuple(learned.get(col.name, ()))
        plan: tuple[_Rewrite | None, list[Coercion], Ambiguity | None] = (None, [], None)
        if first["bad"] and col.type in NUMERIC_COLUMN_TYPES:
            plan = _plan_number(con, table, source, col, rules)
        elif first["bad"] and col.type in _DATES:
            plan = _plan_dates(con, table, source, col, rules)
        elif col.type == "decimal" and first["n"] >= 2 and first.get("whole") == first["n"]:
            plan = _plan_cents(con, table, source, col, first, rules, history)
        rewrite, done, ambiguity = plan
        if ambiguity is not None:
            ambiguous.append(ambiguity)
        if rewrite is not None:
            how[source] = (col, rewrite)
            rewrites += done
    return DriftPlan(tuple(rewrites), tuple(notes), tuple(ambiguous), shares, how)


def _number_sql(v: str, original: str, rewrite: _Rewrite) -> str:
    assert rewrite.style is not None
    whens = f"WHEN regexp_full_match({v}, {_q(_number_re(rewrite.style, False))}) THEN {_unseparated(v, rewrite.style)}"
    if rewrite.currency:
        money = _q("^" + _number_re(rewrite.style, True) + "$")
        sign, body = f"regexp_extract({v}, {money}, 1)", f"regexp_extract({v}, {money}, 2)"
        whens = (f"WHEN regexp_matches({v}, {_q(_SYM)}) AND regexp_full_match({v}, {money}) "
                 f"THEN {sign} || {_unseparated(body, rewrite.style)} {whens}")
    return f"CASE {whens} ELSE {original} END"


def _unseparated(expr: str, style: str) -> str:
    """Thousands separators dropped, a decimal comma made a dot (replace() beats a regex on millions)."""
    for char in _SEPS[style]:
        expr = f"replace({expr}, {quote_literal(char)}, '')"
    return f"replace({expr}, ',', '.')" if style == "comma" else expr


def rewrite_sql(plan: DriftPlan, source: str) -> str:
    """SQL giving the canonical text of staged column ``source`` (itself when the plan leaves it)."""
    original = quote_ident(source)
    if source not in plan._how:
        return original
    col, rewrite = plan._how[source]
    v = _v(source)
    if rewrite.cents:
        return (f"CASE WHEN regexp_full_match({v}, {_q(_WHOLE)}) "
                f"THEN CAST(CAST({v} AS DECIMAL(38,0)) * 0.01 AS VARCHAR) ELSE {original} END")
    if rewrite.style:
        return _number_sql(v, original, rewrite)
    whens = []
    for regex, formats in rewrite.dates:
        listed = "[" + ", ".join(quote_literal(f) for f in formats) + "]"
        guard = "true" if regex == ".*" else f"regexp_full_match({v}, {_q(regex)})"
        whens.append(f"WHEN TRY_CAST({v} AS {col.sql_type}) IS NULL AND {guard} AND try_strptime({v}, {listed}) "
                     f"IS NOT NULL THEN strftime(try_strptime({v}, {listed}), {_q(_ISO[col.type])})")
    return f"CASE {' '.join(whens)} ELSE {original} END"
