"""Map a delivery's header onto the contract's columns, and apply a mapping in DuckDB.

Two stages. :func:`propose_mapping` uses names only and certain knowledge: a mapping
learned on an earlier run, the name once case, spaces and punctuation are ignored, or a
contract synonym. :func:`match_columns` goes on for the contract columns still missing:
each unknown column is scored against each of them by name similarity (or, with no header,
by position) and by its values: do they parse as the column's type, and do they look like
the column's profile learned from earlier loads (``heal.profiles``: value range,
cardinality, text length, dates). A pairing is kept only when it is clearly the best for
both sides; anything closer escalates with the candidates and their scores.

The same ``apply_mapping`` serves the autopilot's own proposals and ones a model makes.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any

import duckdb

from tools.contract import NUMERIC_COLUMN_TYPES, Column, Contract, is_null_sql, quote_ident, quote_literal
from tools.rules import data_columns
from tools.verdict import InputError

__all__ = [
    "ACCEPT",
    "MARGIN",
    "MappingPlan",
    "apply_mapping",
    "learned_renames",
    "match_columns",
    "name_score",
    "normalise",
    "propose_mapping",
    "rename_columns",
]

#: A fuzzy pairing needs at least this score ...
ACCEPT = 0.65
#: ... and must beat every rival (for the contract column and for the delivered one) by this.
MARGIN = 0.1
#: Candidates below this are not worth showing a person.
_SHOW = 0.3
_SAMPLE_ROWS = 20000
_ABBREVIATIONS = {
    "amt": "amount", "qty": "quantity", "no": "number", "num": "number", "nbr": "number", "nr": "number",
    "dt": "date", "desc": "description", "prod": "product", "cust": "customer", "txn": "transaction",
    "tx": "transaction", "trx": "transaction", "ts": "timestamp", "val": "value", "pct": "percent",
}


def normalise(name: str) -> str:
    """Case, whitespace and punctuation do not matter: ``" Sale-ID "`` → ``"saleid"``."""
    return re.sub(r"[^0-9a-z]", "", name.strip().lower())


def _tokens(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name.strip())
    return [_ABBREVIATIONS.get(t, t) for t in re.split(r"[^0-9a-z]+", spaced.lower()) if t]


def name_score(name: str, column: Column) -> float:
    """How alike a delivered name and a contract column's name (or a synonym) are, 0..1.

    1.0 only for a normalised match; 0.85 when every word of the contract name appears in
    the delivered one (``Amount (EUR)`` for ``amount``); else the best of string similarity
    and the share of shared words.
    """
    best = 0.0
    for target in (column.name, *column.synonyms):
        if normalise(name) == normalise(target):
            return 1.0
        have, want = set(_tokens(name)), set(_tokens(target))
        if want and want <= have:
            best = max(best, 0.85)
        elif have and want:
            best = max(best, len(have & want) / len(have | want))
        best = max(best, SequenceMatcher(None, normalise(name), normalise(target)).ratio() * 0.9)
    return round(best, 3)


@dataclass(frozen=True)
class MappingPlan:
    mapping: dict[str, str]  # delivered column → contract column (only the renamed ones)
    rules: dict[str, str]  # delivered column → why ("learned", "normalised", "synonym", "similar", "position")
    ambiguous: dict[str, list[str]] = field(default_factory=dict)  # contract column → candidates
    missing_required: list[str] = field(default_factory=list)
    added_optional: list[str] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)  # delivered columns that stay extra
    scores: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # contract column → scored candidates


def propose_mapping(
    delivered: Sequence[str], contract: Contract, *, learned: Mapping[str, str] | None = None
) -> MappingPlan:
    """The mapping certain from names alone: learned, normalised or synonym matches."""
    learned = learned or {}
    present = set(delivered)
    contract_names = set(contract.names)
    unknown = [c for c in delivered if c not in contract_names]
    missing = [c for c in contract.columns if c.name not in present]
    candidates: dict[str, list[tuple[str, str]]] = {}
    for col in missing:
        found = []
        synonyms = {normalise(s) for s in col.synonyms}
        for src in unknown:
            if learned.get(src) == col.name:
                found.append((src, "learned"))
            elif normalise(src) == normalise(col.name):
                found.append((src, "normalised"))
            elif normalise(src) in synonyms:
                found.append((src, "synonym"))
        candidates[col.name] = found
    # A delivered column claimed by two contract columns is ambiguous for both.
    claims: dict[str, int] = {}
    for found in candidates.values():
        for src, _ in found:
            claims[src] = claims.get(src, 0) + 1
    mapping: dict[str, str] = {}
    rules: dict[str, str] = {}
    ambiguous: dict[str, list[str]] = {}
    for target, found in candidates.items():
        if len(found) == 1 and claims[found[0][0]] == 1:
            src, rule = found[0]
            mapping[src] = target
            rules[src] = rule
        elif found:
            ambiguous[target] = sorted(src for src, _ in found)
    mapped_targets = set(mapping.values())
    still_missing = [c for c in missing if c.name not in mapped_targets]
    return MappingPlan(
        mapping=mapping,
        rules=rules,
        ambiguous=ambiguous,
        missing_required=[c.name for c in still_missing if c.required],
        added_optional=[c.name for c in still_missing if not c.required and c.name not in ambiguous],
        unmapped=[c for c in unknown if c not in mapping],
        scores={t: [{"column": s, "score": 1.0, "why": "exact"} for s in ambiguous[t]] for t in ambiguous},
    )


def learned_renames(delivered: Sequence[str], contract: Contract, learned: Mapping[str, str]) -> dict[str, str]:
    """The learned mappings that apply to this header: source present, target absent, one each."""
    present = set(delivered)
    out: dict[str, str] = {}
    for src, dst in learned.items():
        if src in present and dst in contract.names and dst not in present and dst not in out.values():
            out[src] = dst
    return out


# --- evidence from the values ---------------------------------------------------------------------

_INT = r"[-+]?[0-9]{1,3}([,. '][0-9]{3})+|[-+]?[0-9]+(\.0+)?"
_NUM = r"[-+]?[$€£]?\s*([0-9]+([.,][0-9]+)?|[0-9]{1,3}([,. '][0-9]{3})+([.,][0-9]+)?)\s*[$€£]?"
_DATE = r"[0-9]{1,4}[-/.][0-9]{1,2}[-/.][0-9]{1,4}([ T].*)?|[0-9]{8}"


def _evidence(con: duckdb.DuckDBPyConnection, table: str, sources: Sequence[str],
              tokens: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Per delivered column, on the first rows: how its values parse and what they look like."""
    parts, keys = [], ("n", "int", "num", "date", "bool", "distinct", "length", "p05", "median", "p95", "lo", "hi")
    for src in sources:
        ident = quote_ident(src)
        v = f"trim({ident})"
        ok = f"NOT {is_null_sql(ident, tokens)}"
        number = (f"coalesce(TRY_CAST({v} AS DOUBLE), TRY_CAST(replace(regexp_replace({v}, '[^0-9,.-]', '', 'g'), "
                  f"',', '.') AS DOUBLE))")
        day = f"coalesce(TRY_CAST({v} AS DATE), try_strptime({v}, ['%d/%m/%Y', '%m/%d/%Y', '%d.%m.%Y', '%Y%m%d'])::DATE)"
        parts += [
            f"count(*) FILTER (WHERE {ok})",
            f"count(*) FILTER (WHERE {ok} AND regexp_full_match({v}, {quote_literal(_INT)}))",
            f"count(*) FILTER (WHERE {ok} AND regexp_full_match({v}, {quote_literal(_NUM)}))",
            f"count(*) FILTER (WHERE {ok} AND regexp_full_match({v}, {quote_literal(_DATE)}) AND {day} IS NOT NULL)",
            f"count(*) FILTER (WHERE {ok} AND lower({v}) IN ('true', 'false', 't', 'f', 'yes', 'no', '0', '1'))",
            f"approx_count_distinct({ident}) FILTER (WHERE {ok})",
            f"avg(length({ident})) FILTER (WHERE {ok})",
            f"approx_quantile({number}, 0.05) FILTER (WHERE {ok})",
            f"approx_quantile({number}, 0.5) FILTER (WHERE {ok})",
            f"approx_quantile({number}, 0.95) FILTER (WHERE {ok})",
            f"min({day}) FILTER (WHERE {ok})",
            f"max({day}) FILTER (WHERE {ok})",
        ]
    if not parts:
        return {}
    row = con.execute(
        f"SELECT {', '.join(parts)} FROM {quote_ident(table)} WHERE _row <= {_SAMPLE_ROWS}"
    ).fetchone()
    out = {}
    for i, src in enumerate(sources):
        out[src] = dict(zip(keys, row[i * len(keys):(i + 1) * len(keys)]))
    return out


def _type_fit(ev: Mapping[str, Any], column: Column) -> float:
    n = ev["n"] or 0
    if not n:
        return 0.0
    if column.type == "text":  # any value is text, but numbers or dates throughout are weak evidence of it
        return 0.5 if max(ev["num"], ev["date"]) >= 0.9 * n else 1.0
    share = {"bigint": ev["int"], "integer": ev["int"], "decimal": ev["num"], "double": ev["num"],
             "date": ev["date"], "timestamp": ev["date"], "boolean": ev["bool"]}.get(column.type, n)
    return share / n


def _range_fit(ev: Mapping[str, Any], column: Column) -> float:
    """Without history: do the values fall inside the contract's min/max?"""
    if column.type not in NUMERIC_COLUMN_TYPES or ev["median"] is None:
        return 1.0
    lo = column.min if column.min is not None else -math.inf
    hi = column.max if column.max is not None else math.inf
    if lo <= ev["p05"] and ev["p95"] <= hi:
        return 1.0
    return 0.5 if lo <= ev["median"] <= hi else 0.0


def _usual(history: Sequence[Mapping[str, Any]], column: str) -> dict[str, Any] | None:
    """The column's profile over earlier loads: the median of each statistic."""
    profiles = [p["columns"][column] for p in history if isinstance(p.get("columns", {}).get(column), Mapping)]
    if not profiles:
        return None
    out: dict[str, Any] = {"kind": profiles[0].get("kind")}
    for key in ("median", "p05", "p95", "mean_length", "rows", "distinct"):
        values = [float(p[key]) for p in profiles if isinstance(p.get(key), int | float)]
        out[key] = statistics.median(values) if values else None
    out["min"] = min((str(p["min"]) for p in profiles if p.get("min") is not None), default=None)
    out["max"] = max((str(p["max"]) for p in profiles if p.get("max") is not None), default=None)
    return out


def _history_fit(ev: Mapping[str, Any], column: Column, usual: Mapping[str, Any], *, key: bool) -> float:
    """Do the values look like the column's profile from earlier loads? 0..1."""
    n = ev["n"] or 0
    unique = bool(n) and (ev["distinct"] or 0) >= 0.9 * n
    was_unique = bool(usual.get("rows")) and (usual.get("distinct") or 0) >= 0.9 * usual["rows"]
    if key:  # keys move on from delivery to delivery: judge uniqueness, not range
        return 1.0 if unique and was_unique else 0.3
    kind = usual.get("kind")
    if kind == "number" and ev["median"] is not None and usual.get("median"):
        ratio = abs(ev["median"]) / abs(usual["median"]) if usual["median"] else 0.0
        return max(0.0, 1.0 - abs(math.log10(ratio))) if ratio > 0 else 0.0
    if kind == "date" and ev["lo"] is not None and usual.get("min"):
        lo, hi = str(ev["lo"]), str(ev["hi"])
        return 1.0 if hi >= str(usual["min"])[:10] and lo[:4] >= str(int(str(usual["min"])[:4]) - 1) else 0.3
    if kind == "text" and ev["length"] and usual.get("mean_length"):
        a, b = float(ev["length"]), float(usual["mean_length"])
        return min(a, b) / max(a, b)
    return 0.5


def match_columns(
    con: duckdb.DuckDBPyConnection,
    table: str,
    contract: Contract,
    *,
    learned: Mapping[str, str] | None = None,
    history: Sequence[Mapping[str, Any]] = (),
    headerless: bool = False,
) -> MappingPlan:
    """:func:`propose_mapping`, then score the contract columns still missing against the
    unknown columns by name (or position, ``headerless``) and by their values."""
    delivered = data_columns(con, table)
    plan = propose_mapping(delivered, contract, learned=learned)
    mapped = set(plan.mapping.values()) | set(plan.ambiguous)
    taken = set(plan.mapping) | {s for srcs in plan.ambiguous.values() for s in srcs}
    targets = [c for c in contract.columns if c.name not in delivered and c.name not in mapped]
    sources = [s for s in plan.unmapped if s not in taken]
    if not targets or not sources:
        return plan
    evidence = _evidence(con, table, sources, contract.null_tokens)
    order = {c.name: i for i, c in enumerate(contract.columns)}
    scored: dict[tuple[str, str], dict[str, Any]] = {}
    for col in targets:
        usual = _usual(history, col.name)
        for src in sources:
            ev = evidence[src]
            if headerless:
                name = 1.0 if delivered.index(src) == order[col.name] else 0.0
            else:
                name = name_score(src, col)
            fit = _type_fit(ev, col)
            if usual is not None:
                profile = _history_fit(ev, col, usual, key=col.name in contract.key)
                score = fit * max(name, (name + 2 * profile) / 3)
            else:
                profile = _range_fit(ev, col)
                score = fit * name * (0.8 + 0.2 * profile)
            scored[(src, col.name)] = {"column": src, "score": round(score, 3), "name": round(name, 3),
                                       "type_fit": round(fit, 3), "profile": round(profile, 3),
                                       "history": usual is not None}
    mapping, rules = dict(plan.mapping), dict(plan.rules)
    ambiguous = dict(plan.ambiguous)
    free_src, free_dst = set(sources), {c.name for c in targets}
    for (src, dst), s in sorted(scored.items(), key=lambda kv: (-kv[1]["score"], kv[0])):
        if src not in free_src or dst not in free_dst or s["score"] < _SHOW:
            continue
        rivals = [o["score"] for (a, b), o in scored.items()
                  if (a, b) != (src, dst) and ((b == dst and a in free_src) or (a == src and b in free_dst))]
        if s["score"] >= ACCEPT and s["score"] - max(rivals, default=0.0) >= MARGIN:
            mapping[src], rules[src] = dst, "position" if headerless else "similar"
            free_src.discard(src)
            free_dst.discard(dst)
        elif s["score"] >= ACCEPT:
            close = sorted({a for (a, b), o in scored.items() if b == dst and a in free_src
                            and o["score"] >= s["score"] - MARGIN})
            ambiguous[dst] = close
            free_dst.discard(dst)
    scores = dict(plan.scores)
    for col in targets:
        ranked = sorted((o for (a, b), o in scored.items() if b == col.name), key=lambda o: -o["score"])
        scores[col.name] = [o for o in ranked if o["score"] >= _SHOW][:3] or ranked[:1]
    missing = [c for c in contract.columns if c.name not in delivered and c.name not in mapping.values()]
    return MappingPlan(
        mapping=mapping,
        rules=rules,
        ambiguous=ambiguous,
        missing_required=[c.name for c in missing if c.required],
        added_optional=[c.name for c in missing if not c.required and c.name not in ambiguous],
        unmapped=[c for c in delivered if c not in contract.names and c not in mapping],
        scores=scores,
    )


def rename_columns(con: duckdb.DuckDBPyConnection, table: str, mapping: Mapping[str, str]) -> None:
    """Rename columns of ``table`` in place (metadata only: no copy of the rows)."""
    delivered = data_columns(con, table)
    renamed = [mapping.get(c, c) for c in delivered]
    if [s for s in mapping if s not in delivered] or len(set(map(str.lower, renamed))) < len(renamed):
        raise InputError(f"cannot rename {dict(mapping)} in {delivered}")
    t = quote_ident(table)
    steps = [(src, f"__heal_rename_{i}") for i, src in enumerate(mapping)]
    for src, tmp in steps:  # two phases, so a swap (a→b, b→a) works
        con.execute(f"ALTER TABLE {t} RENAME COLUMN {quote_ident(src)} TO {quote_ident(tmp)}")
    for src, tmp in steps:
        con.execute(f"ALTER TABLE {t} RENAME COLUMN {quote_ident(tmp)} TO {quote_ident(mapping[src])}")


def apply_mapping(
    con: duckdb.DuckDBPyConnection,
    table: str,
    out_table: str,
    *,
    mapping: Mapping[str, str],
    add_columns: Sequence[str] = (),
) -> list[str]:
    """Write ``out_table``: ``table`` with columns renamed per ``mapping`` and ``add_columns``
    added as NULL. Returns the new column list. Raises InputError for a mapping that names a
    column the table does not have or maps two columns onto one name.
    """
    delivered = data_columns(con, table)
    unknown = [src for src in mapping if src not in delivered]
    if unknown:
        raise InputError(f"mapping names columns the delivery does not have: {unknown}")
    renamed = [mapping.get(c, c) for c in delivered]
    clash = sorted({n for n in renamed if renamed.count(n) > 1} | (set(add_columns) & set(renamed)))
    if clash:
        raise InputError(f"mapping gives two columns the same name: {clash}")
    select = [f"{quote_ident(src)} AS {quote_ident(dst)}" for src, dst in zip(delivered, renamed)]
    select += [f"CAST(NULL AS VARCHAR) AS {quote_ident(name)}" for name in add_columns]
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {quote_ident(out_table)} AS "
        f"SELECT {', '.join(select)}, _row, _error FROM {quote_ident(table)}"
    )
    return [*renamed, *add_columns]
