"""What the orchestrator hands a skill's ``run_step``: the run's state, one step at a time.

Each ``skills/<name>/scripts/check.py`` has a ``run_step(ctx) -> Verdict`` that takes its
slice of this context and calls the skill's own ``check()``. A skill reports state changes
only through its verdict's ``artifacts`` (e.g. ``{"table": "clean"}``); the orchestrator
reads them and builds the next context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from tools.contract import Contract
from tools.sinks import Sink

__all__ = ["History", "SourceSpec", "StepContext"]


@dataclass(frozen=True)
class SourceSpec:
    """Where the delivery comes from, with ``{date}`` already filled in."""

    uri: str
    fallback: str | None = None
    checksum: str | None = None
    min_bytes: int = 1
    timeout_s: float = 10.0


@dataclass(frozen=True)
class History:
    """What earlier runs taught, read from the ledger before the run starts."""

    volumes: tuple[int, ...] = ()  # rows read by recent loaded runs, newest first
    fingerprints: frozenset[str] = frozenset()  # content already loaded
    mappings: dict[str, str] = field(default_factory=dict)  # learned column mappings
    # (run_date, rows read) of loaded runs in the trailing window before this run date, newest first
    volumes_by_date: tuple[tuple[date, int], ...] = ()
    # column profiles of loaded runs before this run date, newest first: {"run_id", "run_date", "columns"}
    profiles: tuple[dict[str, Any], ...] = ()
    # per contract column, type-drift rules applied or confirmed earlier, newest first (tools.coercion)
    coercions: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class StepContext:
    con: duckdb.DuckDBPyConnection
    contract: Contract
    run_id: str
    pipeline: str
    run_date: date
    workdir: Path
    source: SourceSpec
    params: dict[str, Any] = field(default_factory=dict)
    table: str | None = None  # the staged delivery, once read
    delivery_path: str | None = None  # the fetched file, once fetched
    sink: Sink | None = None
    history: History = History()
    read: dict[str, Any] | None = None  # what the reader reported (format, notes, parts), once read
    on_commit: Callable[[], None] | None = None  # ledger writes that must commit with the load
