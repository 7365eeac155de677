"""Fault injection: every fault class of a clean sales delivery, run through the whole reference
pipeline, ends exactly as its expected.json says: status, counts, alert, the target rows and the
quarantine row by row, with conservation and no traceback."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.chaos import FAULTS, check_variant, load_variant, write_variants
from orchestrator.cli import main
from orchestrator.demo import write_sales_csv
from orchestrator.pipeline import load_pipeline
from tools.verdict import ConfigError

REPO = Path(__file__).resolve().parent.parent
SALES = load_pipeline(REPO / "pipelines" / "sales.yaml")


def clean_rows(n: int = 40) -> list[list[str]]:
    """Sales rows over a month (so some days are past 12), two amounts past 1000."""
    rng = random.Random(3)
    rows = []
    for i in range(n):
        day = dt.date(2026, 11, 1) + dt.timedelta(days=i % 28)
        amount = {5: "1234.50", 17: "2500.00"}.get(i, f"{rng.uniform(1, 500):.2f}")
        rows.append([str(i + 1), day.isoformat(), amount, f"{rng.choice('NSEW')}-{rng.randint(1, 9999):04d}"])
    return rows


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("chaos")
    write_variants(write_sales_csv(root / "clean.csv", clean_rows()), root / "out", contract=SALES.contract)
    return root / "out"


# The sales contract has no optional column, so that fault is run against its own contract below.
SALES_FAULTS = [name for name, _, _ in FAULTS if name != "missing_optional"]


def test_only_the_optional_column_fault_needs_another_contract(corpus):
    assert json.loads((corpus / "manifest.json").read_text())["skipped"].keys() == {"missing_optional"}


@pytest.mark.parametrize("fault", SALES_FAULTS)
def test_each_fault_ends_exactly_as_the_policies_say(corpus, fault, tmp_path):
    problems, result = check_variant(SALES, corpus / fault, workdir=tmp_path)
    assert not problems, "\n".join(problems)
    c = result.counts
    assert result.conserved and c["read"] == c["loaded"] + c["quarantined"] + c["duplicates"] + c["held"]


def test_the_corpus_covers_every_fault_class_and_states_each_outcome(corpus):
    manifest = json.loads((corpus / "manifest.json").read_text())
    written = {v["name"] for v in manifest["variants"]}
    assert written | set(manifest["skipped"]) == {name for name, _, _ in FAULTS}
    assert len(written) >= 50
    statuses = {v["status"] for v in manifest["variants"]}
    assert statuses == {"success", "healed", "partial_failure", "escalated"}
    nulls = load_variant(corpus / "null_tokens")
    assert nulls.status == "partial_failure" and nulls.alert and nulls.failure_class == "null_critical"
    assert [r for _, r in nulls.quarantined][:2] == [("null_critical:date",), ("null_critical:amount",)]
    cut = load_variant(corpus / "truncated_last_line")
    assert cut.quarantined == ((40, ("truncated_line", "null_critical:product_id")),)
    assert len(cut.loaded) == 39 and cut.columns == ("sale_id", "date", "amount", "product_id")
    dup = load_variant(corpus / "exact_duplicates")
    assert (dup.status, dup.rows_read, len(dup.loaded), dup.duplicates) == ("healed", 44, 40, 4)
    assert load_variant(corpus / "new_column").columns[-1] == "channel"
    assert load_variant(corpus / "cents").prior == ("prior/delivery.csv",)


def test_a_wrong_expectation_is_reported_row_by_row(corpus, tmp_path):
    folder = tmp_path / "decimal_comma"
    folder.mkdir()
    for f in (corpus / "decimal_comma").iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    expected = json.loads((folder / "expected.json").read_text())
    expected["loaded"][0][2] = "999.99"
    expected["quarantined"] = [[3, ["null_critical:amount"]]]
    (folder / "expected.json").write_text(json.dumps(expected))
    problems, _ = check_variant(SALES, folder, workdir=tmp_path)
    assert any("target rows differ" in p and "999.99" in p for p in problems)
    assert any(p.startswith("quarantine []") and "expected [(3, " in p for p in problems)
    assert any("counts" in p for p in problems)


def test_a_delivery_that_is_not_clean_is_refused(tmp_path):
    rows = clean_rows(5)
    rows[2][2] = ""
    with pytest.raises(ConfigError, match="row 3 is not clean"):
        write_variants(write_sales_csv(tmp_path / "c.csv", rows), tmp_path / "out", contract=SALES.contract)
    renamed = write_sales_csv(tmp_path / "r.csv", clean_rows(5), header=["id", "date", "amount", "product_id"])
    with pytest.raises(ConfigError, match="not the contract's"):
        write_variants(renamed, tmp_path / "out", contract=SALES.contract)


def test_heal_chaos_writes_and_checks_variants(tmp_path):
    clean = write_sales_csv(tmp_path / "clean.csv", clean_rows(20))
    runner = CliRunner()
    args = ["chaos", str(clean), str(tmp_path / "out"), "--pipeline", str(REPO / "pipelines" / "sales.yaml")]
    result = runner.invoke(main, [*args, "--only", "clean", "--only", "semicolon", "--check"])
    assert result.exit_code == 0, result.output
    assert "ok  clean" in result.output and "ok  semicolon" in result.output
    assert (tmp_path / "out" / "semicolon" / "expected.json").is_file()
    listed = runner.invoke(main, [*args, "--only", "cents", "--json"])
    assert listed.exit_code == 0 and json.loads(listed.output)["status"] == "escalated"
    bad = runner.invoke(main, [*args, "--only", "no_such_fault"])
    assert bad.exit_code == 2 and "unknown fault" in bad.output


def test_an_optional_column_missing_or_null_tokens_in_it_load_as_null(tmp_path):
    from dataclasses import replace

    from tools.contract import Column

    contract = replace(SALES.contract, columns=(*SALES.contract.columns, Column("note", "text", required=False)))
    pipeline = replace(SALES, contract=contract)
    rows = [[*r, f"n{i}"] for i, r in enumerate(clean_rows(20))]
    clean = write_sales_csv(tmp_path / "clean.csv", rows, header=[*SALES.contract.names, "note"])
    variants = write_variants(clean, tmp_path / "out", contract=contract, only=["missing_optional", "null_tokens"])
    assert [(v.name, v.status) for v in variants] == [("missing_optional", "success"), ("null_tokens", "success")]
    assert {r[-1] for r in variants[0].loaded} == {None}
    assert sum(r[-1] is None for r in variants[1].loaded) == 6 and not variants[1].quarantined
    for v in variants:
        problems, _ = check_variant(pipeline, tmp_path / "out" / v.name, workdir=tmp_path)
        assert not problems, "\n".join(problems)
