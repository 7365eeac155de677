"""Map a delivery's header onto the contract's columns, and apply a mapping in DuckDB.

A mapping is applied only when it is unambiguous: each contract column gets at most one
delivered column and each delivered column feeds at most one contract column. The same
``apply_mapping`` serves the autopilot's own proposals and ones a model makes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import duckdb

from tools.contract import Contract, quote_ident
from tools.rules import data_columns
from tools.verdict import InputError

__all__ = ["MappingPlan", "apply_mapping", "normalise", "propose_mapping"]


def normalise(name: str) -> str:
    """Case, whitespace and punctuation do not matter: ``" Sale-ID "`` → ``"saleid"``."""
    return re.sub(r"[^0-9a-z]", "", name.strip().lower())


@dataclass(frozen=True)
class MappingPlan:
    mapping: dict[str, str]  # delivered column → contract column (only the renamed ones)
    rules: dict[str, str]  # delivered column → why ("learned", "normalised", "synonym")
    ambiguous: dict[str, list[str]] = field(default_factory=dict)  # contract column → candidates
    missing_required: list[str] = field(default_factory=list)
    added_optional: list[str] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)  # delivered columns that stay extra


def propose_mapping(
    delivered: Sequence[str], contract: Contract, *, learned: Mapping[str, str] | None = None
) -> MappingPlan:
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
    )


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
