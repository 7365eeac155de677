"""validate-quality's standalone path (a CSV judged in place, not staged) must give exactly
the verdict of ``check()`` over the staged table: counts, samples, keys and duplicates."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import duckdb
import pytest

from tools.contract import load_contract
from tools.readers import read_delivery

REPO = Path(__file__).resolve().parent.parent
CONTRACT = """
contract:
  table: t
  key: [id]
  columns:
    id: {type: bigint, critical: true}
    day: {type: date, critical: true}
    amount: {type: decimal, min: 0.01, max: 10000, critical: true}
    qty: {type: integer, min: 0, required: false}
    product: {type: text, critical: true}
    note: {type: text, required: false}
"""


@pytest.fixture(scope="module")
def vq():
    spec = importlib.util.spec_from_file_location("vq_in_place", REPO / "skills/validate-quality/scripts/check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows() -> list[list[str]]:
    """A delivery with every kind of breach, some criteria under 20 bad rows, one over."""
    rows = [[str(100 + i), "2026-11-01", f"{i + 1}.25", str(i % 7), f"N-{i}", ""] for i in range(60)]
    rows += [
        [" 200 ", "2026-11-01", "5.00", "1", "S-1", "padded key"],
        ["200.0", "2026-11-01", "5.00", "1", "S-1", "same key, other text: a conflict"],
        ["NULL", "2026-11-01", "5.00", "1", "S-2", "null key"],
        ["NULL", "2026-11-01", "5.00", "1", "S-2", "null key"],
        ["201", "2026-02-30", "5.00", "1", "S-3", "no such day"],
        ["202", "2026-11-01", "-5", "1", "S-4", "out of range"],
        ["203", "2026-11-01", " N/A ", "1", "S-5", "padded null token"],
        ["204", "2026-11-01", "5.00", "1", " ", "blank product"],
        ["205", "2026-11-01", "5.00", "1", "\u00a0NA\u00a0", "token in no-break spaces"],
        ["206", "2026-11-01", "12.5", "1.5", "S-6", "qty not whole"],
        ["206", "2026-11-01", "12.50", "1.5", "S-6", "equal typed values, other text"],
        ["207", "2026-11-01", "7.00", "1e3", "S-7", ""],
        ["207", "2026-11-01", "7.00", "1e3", "S-7", ""],  # an exact duplicate row
        ["208", "2026-11-01", "7.00", "-1", "É-8", "non-ASCII product"],
        ["209", " 2026-11-01 ", "1e2", "", "S-9", "\u00a0"],
        ["100", "2026-11-01", "9.99", "0", "N-0", "conflicts with the first row"],
        ["210", "2026-11-01", "5.00"],  # too few fields
        ["211", "2026-11-01", "5.00", "1", "S-11", "x", "one too many"],
    ]
    rows += [[str(300 + i), "", "1.00", "1", "W-1", "no day"] for i in range(25)]  # over 20: samples capped
    return rows


def _verdict_in_place(vq, path: Path, contract: Path) -> dict:
    out = io.StringIO()
    with redirect_stdout(out):
        vq.main([str(path), "--contract", str(contract), "--history", "120", "--json"])
    verdict = json.loads(out.getvalue())
    verdict.pop("duration_ms")
    return verdict


def _verdict_staged(vq, path: Path, contract: Path) -> dict:
    loaded = load_contract(contract)
    con = duckdb.connect()
    table = read_delivery(con, path, expected_columns=loaded.names).table
    verdict = vq.check(con, table, contract=loaded, history=[120]).to_dict()
    verdict.pop("duration_ms")
    return verdict


@pytest.fixture
def delivery(tmp_path: Path) -> tuple[Path, Path]:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["id", "day", "amount", "qty", "product", "note"])
    writer.writerows(_rows())
    path = tmp_path / "delivery.csv"
    path.write_text(text.getvalue(), encoding="utf-8")
    contract = tmp_path / "contract.yaml"
    contract.write_text(CONTRACT, encoding="utf-8")
    return path, contract


def test_a_csv_judged_in_place_gets_the_verdict_of_the_staged_table(vq, delivery):
    path, contract = delivery
    assert vq.csv_in_place(str(path), load_contract(contract).names) is not None  # the fast path runs
    in_place = _verdict_in_place(vq, path, contract)
    assert in_place == _verdict_staged(vq, path, contract)
    by_id = {c["id"]: c for c in in_place["criteria"]}
    assert in_place["metrics"]["failure_classes"] == [
        "malformed_row", "null_critical", "type_drift", "out_of_range", "duplicate_key"]
    assert len(by_id["no_null_critical"]["samples"]) == 20  # 29 rows break it: the first 20
    assert 0 < len(by_id["values_parse"]["samples"]) < 20  # fewer than 20: every one of them
    assert by_id["key_unique"]["observed"] == 3  # 100, 200 and 206; 207's rows are exact copies
    assert in_place["metrics"]["exact_duplicates"] == 2  # 207's copy and the second NULL-key row


def test_a_memory_cap_too_tight_for_the_file_costs_a_second_try_not_a_different_verdict(vq, delivery, monkeypatch):
    path, contract = delivery
    expected = _verdict_in_place(vq, path, contract)
    monkeypatch.setattr(vq, "_SCAN_MEMORY", "1MB")  # below DuckDB's read buffers: out of memory at once
    assert _verdict_in_place(vq, path, contract) == expected
