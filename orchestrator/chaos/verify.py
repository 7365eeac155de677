"""Run a pipeline over one variant in a fresh DuckDB target and list every difference from
what ``expected.json`` states: status, counts, conservation, the alert, the target rows and
the quarantine, row by row."""

from __future__ import annotations

import datetime as dt
import random
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from orchestrator.chaos.outcome import canonical, load_variant
from orchestrator.ledger import Ledger
from orchestrator.pipeline import Pipeline, Source
from tools.contract import quote_ident
from tools.sinks import open_sink

__all__ = ["RUN_DATE", "check_variant"]

#: The date a variant is run on; its priors run on the days just before.
RUN_DATE = dt.date(2026, 11, 30)


def _run(spec: Pipeline, day: dt.date) -> Any:
    from orchestrator.run import run_pipeline  # deferred: run imports much of the orchestrator

    return run_pipeline(spec, run_date=day, sleep=lambda _s: None, rng=random.Random(0))


def check_variant(
    pipeline: Pipeline,
    folder: str | Path,
    *,
    workdir: str | Path | None = None,
    run: Callable[[Pipeline, dt.date], Any] = _run,
) -> tuple[list[str], Any]:
    """Run ``pipeline`` (priors first) over the variant in ``folder``; return (problems, result).

    The target is a new DuckDB file in ``workdir``; alerts go to a file next to it.
    """
    folder = Path(folder)
    variant = load_variant(folder)
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="heal-chaos-"))
    target = f"duckdb:///{work / f'{variant.name}.duckdb'}"
    base = replace(pipeline, target=target, alerts=({"type": "file", "path": str(work / f"{variant.name}.alerts")},))
    for i, prior in enumerate(variant.prior):
        done = run(replace(base, source=Source(uri=str(folder / prior), min_bytes=1)),
                   RUN_DATE - dt.timedelta(days=len(variant.prior) - i))
        if done.status not in ("success", "healed"):
            return [f"prior delivery {prior} ended {done.status}: {done.summary}"], done
    fallback = str(folder / variant.fallback) if variant.fallback else None
    result = run(replace(base, source=Source(uri=str(folder / variant.path), fallback=fallback, min_bytes=1)),
                 RUN_DATE)
    escalated = variant.status == "escalated"
    want = {"read": variant.rows_read, "loaded": 0 if escalated else len(variant.loaded),
            "quarantined": len(variant.quarantined), "duplicates": variant.duplicates,
            "held": variant.rows_read if escalated else 0}
    problems = []
    if result.status != variant.status:
        problems.append(f"status {result.status}, expected {variant.status}: {result.summary}")
    if dict(result.counts) != want:
        problems.append(f"counts {dict(result.counts)}, expected {want}")
    if not result.conserved:
        problems.append("conservation does not hold")
    alert = result.alerts[0]["failure_class"] if result.alerts else None
    if bool(alert) != variant.alert:
        problems.append(f"alert {alert!r}, expected {'an alert' if variant.alert else 'none'}")
    elif alert and variant.failure_class and alert != variant.failure_class:
        problems.append(f"alert for {alert}, expected {variant.failure_class}")
    sink = open_sink(target)
    try:
        problems += _compare_rows(sink, pipeline, variant, result.run_id)
    finally:
        sink.close()
    return problems, result


def _compare_rows(sink: Any, pipeline: Pipeline, variant: Any, run_id: str) -> list[str]:
    table = pipeline.contract.table
    have = sink.table_columns(table) or []
    problems = []
    if variant.loaded and [c for c in variant.columns if c not in have]:
        return [f"the target has columns {have}, expected {list(variant.columns)}"]
    types = {c.name: c for c in pipeline.contract.columns}
    got: list = []
    if have:
        cols = ", ".join(quote_ident(c) for c in variant.columns if c in have)
        got = sink.query(f"SELECT {cols} FROM main.{quote_ident(table)} WHERE _heal_run_id = ?", (run_id,))
    rows = sorted((tuple(canonical(v, types[c]) if c in types else v for c, v in zip(variant.columns, r))
                   for r in got), key=repr)
    if rows != list(variant.loaded):
        extra = [r for r in rows if r not in variant.loaded][:3]
        lost = [r for r in variant.loaded if r not in rows][:3]
        problems.append(f"target rows differ: {len(rows)} loaded, {len(variant.loaded)} expected; "
                        f"unexpected {extra}; missing {lost}")
    held = [(q["row_number"], tuple(q["reasons"])) for q in Ledger(sink).quarantined(run_id)]
    if held != list(variant.quarantined):
        problems.append(f"quarantine {held[:5]}..., expected {list(variant.quarantined)[:5]}...")
    return problems
