"""Shared fixtures: every test gets its own DuckDB file and delivery folder under tmp_path."""

from __future__ import annotations

import datetime as dt
import os
import random
import socket
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from orchestrator.demo import sales_rows, write_sales_csv
from orchestrator.pipeline import Pipeline, Source, load_pipeline

REPO = Path(__file__).resolve().parent.parent
#: The PostgreSQL the tests use; each test that needs one gets its own database in it.
ADMIN_URL = os.environ.get("HEAL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
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


@pytest.fixture(scope="session")
def admin() -> Iterator[Any]:
    """An autocommit connection to the test PostgreSQL (the test skips when it is unreachable)."""
    psycopg = pytest.importorskip("psycopg")
    try:
        conn = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL unreachable at {ADMIN_URL}: {str(exc).splitlines()[0]}")
    yield conn
    conn.close()


@pytest.fixture
def pg_url(admin: Any) -> Iterator[str]:
    """A fresh database for this test only."""
    name = f"heal_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield urlsplit(ADMIN_URL)._replace(path=f"/{name}").geturl()
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib honours proxy variables; servers on 127.0.0.1 must be reached directly."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def rx() -> Iterator[Any]:
    """A real webhook endpoint (tests.http_receiver.Receiver), shut down after the test."""
    from tests.http_receiver import Receiver

    receiver = Receiver()
    yield receiver
    receiver.down()


@pytest.fixture
def dead_url() -> str:
    """A loopback port with nothing listening: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"
