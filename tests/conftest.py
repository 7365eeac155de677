"""Shared fixtures: every test gets its own DuckDB file and delivery folder under tmp_path."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.demo import sales_rows, write_sales_csv
from orchestrator.pipeline import Pipeline, Source, load_pipeline

REPO = Path(__file__).resolve().parent.parent
DAY = dt.date(2026, 11, 2)

pytest_plugins = ["tests.s3_server"]


class Sleeps(list):
    """A sleep that records the delays it was asked for instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def sales(tmp_path: Path) -> Pipeline:
    """pipelines/sales.yaml reading tmp_path/in/{date}.csv (fallback tmp_path/backup) into tmp_path/t.duckdb."""
    spec = load_pipeline(REPO / "pipelines" / "sales.yaml")
    return replace(
        spec,
        source=Source(uri=str(tmp_path / "in" / "{date}.csv"), fallback=str(tmp_path / "backup" / "{date}.csv"),
                      min_bytes=16),
        target=f"duckdb:///{tmp_path / 't.duckdb'}",
        alerts=({"type": "file", "path": str(tmp_path / "alerts.jsonl")},),
    )


def deliver(folder: Path, day: dt.date, rows: list[list[str]], header: list[str] | None = None) -> Path:
    kwargs = {"header": header} if header else {}
    return write_sales_csv(folder / f"{day}.csv", rows, **kwargs)


def rows_for(day: dt.date, first_id: int = 1, count: int = 100, seed: int = 1) -> list[list[str]]:
    return sales_rows(day, first_id, count, random.Random(seed))
