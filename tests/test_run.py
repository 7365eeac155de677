"""The autopilot end to end on DuckDB: routing, retries, remediations, ledger, conservation."""

import datetime as dt
import json
import random

import duckdb
import pytest

from orchestrator.ledger import Ledger
from orchestrator.run import run_pipeline
from tests.conftest import DAY, deliver, rows_for
from tools.sinks import open_sink


def target_rows(pipeline, sql="SELECT count(*) FROM main.sales"):
    con = duckdb.connect(pipeline.target.removeprefix("duckdb:///"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def ledger_of(pipeline):
    return Ledger(open_sink(pipeline.target))


def run(pipeline, day=DAY, sleeps=None):
    return run_pipeline(pipeline, run_date=day, sleep=sleeps if sleeps is not None else (lambda s: None),
                        rng=random.Random(0))


def test_clean_delivery_is_success(sales, tmp_path):
    deliver(tmp_path / "in", DAY, rows_for(DAY, count=100))
    result = run(sales)
    assert result.status == "success"
    assert result.exit_code == 0
    assert result.counts == {"read": 100, "loaded": 100, "quarantined": 0, "duplicates": 0, "held": 0}
    assert result.conserved
    assert [s["step"] for s in result.steps] == [
        "fetch-file", "validate-schema", "validate-history", "validate-quality", "transform", "load-target",
        "health-check"]
    rows = target_rows(sales, "SELECT count(*), count(DISTINCT sale_id), sum(tax_amount) > 0, "
                              "count(*) FILTER (WHERE region IN ('north','south','east','west')) FROM main.sales")
    assert rows == [(100, 100, True, 100)]


def test_every_attempt_is_in_the_ledger_with_a_valid_verdict(sales, tmp_path):
    deliver(tmp_path / "in", DAY, rows_for(DAY))
    result = run(sales)
    attempts = ledger_of(sales).attempts(result.run_id)
    assert [a["step"] for a in attempts] == [s["step"] for s in result.steps]
    from tools.verdict import validate_verdict

    for a in attempts:
        validate_verdict(a["verdict"])
    run_row = ledger_of(sales).run(result.run_id)
    assert (run_row.status, run_row.rows_read, run_row.rows_loaded, run_row.conserved) == ("success", 100, 100, True)


def test_renamed_column_is_repaired_and_the_mapping_learned(sales, tmp_path):
    deliver(tmp_path / "in", DAY, rows_for(DAY), header=["sale_id", "date", "sale_amount", "product_id"])
    result = run(sales)
    assert result.status == "healed"
    assert "repair-schema" in result.remediations
    assert ledger_of(sales).mappings("sales") == {"sale_amount": "amount"}
    assert target_rows(sales, "SELECT count(*) FROM main.sales WHERE amount IS NOT NULL") == [(100,)]


def test_missing_required_column_is_held_and_escalated(sales, tmp_path):
    rows = [r[:2] + r[3:] for r in rows_for(DAY)]
    deliver(tmp_path / "in", DAY, rows, header=["sale_id", "date", "product_id"])
    result = run(sales)
    assert result.status == "escalated" and result.exit_code == 4
    assert result.counts["loaded"] == 0 and result.counts["held"] == 100
    incidents = ledger_of(sales).incidents(pipeline="sales")
    assert incidents[0]["failure_class"] == "schema_mismatch"
    evidence = incidents[0]["evidence"]
    assert evidence["schema_diff"]["missing"] == ["amount"]
    assert evidence["failed_criteria"] and evidence["sample_rows"]


def test_bad_rows_are_quarantined_with_reasons_and_the_rest_load(sales, tmp_path):
    rows = rows_for(DAY, count=100)
    rows[3][2] = ""
    rows[7][2] = "25000"
    rows[9][0] = "abc"
    deliver(tmp_path / "in", DAY, rows)
    result = run(sales)
    assert result.status == "partial_failure" and result.exit_code == 3
    assert result.counts == {"read": 100, "loaded": 97, "quarantined": 3, "duplicates": 0, "held": 0}
    held = ledger_of(sales).quarantined(result.run_id)
    assert [(q["row_number"], q["reasons"]) for q in held] == [
        (4, ["null_critical:amount"]), (8, ["out_of_range:amount"]), (10, ["unparseable:sale_id"])]
    assert held[0]["row"]["sale_id"] == rows[3][0]
    assert result.alerts and result.alerts[0]["failure_class"] == "null_critical"
    alert_lines = (tmp_path / "alerts.jsonl").read_text().splitlines()
    assert json.loads(alert_lines[0])["status"] == "partial_failure"


def test_conflicting_versions_of_a_key_are_all_quarantined(sales, tmp_path):
    rows = rows_for(DAY, count=50)
    rows.append([rows[0][0], rows[0][1], "1.23", rows[0][3]])
    deliver(tmp_path / "in", DAY, rows)
    result = run(sales)
    assert result.status == "partial_failure"
    held = ledger_of(sales).quarantined(result.run_id)
    assert [q["reasons"] for q in held] == [["duplicate_key_conflict"], ["duplicate_key_conflict"]]
    assert result.counts["loaded"] == 49


def test_exact_duplicates_are_removed_and_counted(sales, tmp_path):
    rows = rows_for(DAY, count=50)
    deliver(tmp_path / "in", DAY, rows + rows[:5])
    result = run(sales)
    assert result.status == "healed"
    assert result.counts == {"read": 55, "loaded": 50, "quarantined": 0, "duplicates": 5, "held": 0}


def test_keys_loaded_earlier_are_upserted_as_corrections(sales, tmp_path):
    deliver(tmp_path / "in", DAY, rows_for(DAY, first_id=1, count=100))
    run(sales)
    day2 = DAY + dt.timedelta(days=1)
    corrections = [[r[0], r[1], "4242.00", r[3]] for r in rows_for(DAY, first_id=1, count=10, seed=9)]
    deliver(tmp_path / "in", day2, rows_for(day2, first_id=101, count=90) + corrections)
    result = run(sales, day=day2)
    assert result.status == "healed"
    assert "upsert-load" in result.remediations
    assert target_rows(sales, "SELECT count(*), count(DISTINCT sale_id) FROM main.sales") == [(190, 190)]
    assert target_rows(sales, "SELECT count(*) FROM main.sales WHERE amount = 4242") == [(10,)]
    remediation = [r for r in ledger_of(sales).remediations(result.run_id) if r["skill"] == "upsert-load"][0]
    assert remediation["detail"]["artifacts"]["replaced_total"] == 10
    assert len(remediation["detail"]["artifacts"]["replaced"]) == 10


def test_missing_file_retries_with_backoff_then_uses_the_fallback(sales, tmp_path, sleeps):
    deliver(tmp_path / "backup", DAY, rows_for(DAY))
    result = run(sales, sleeps=sleeps)
    assert result.status == "healed"
    fetches = [s for s in result.steps if s["step"] == "fetch-file"]
    assert [s["attempt"] for s in fetches] == [1, 2, 3]
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0] > 0
    attempts = ledger_of(sales).attempts(result.run_id)
    assert [a["delay_s"] for a in attempts[:3]] == [0.0, round(sleeps[0], 3), round(sleeps[1], 3)]
    assert "use-fallback-source" in result.remediations


def test_no_source_and_no_fallback_escalates(sales, tmp_path):
    result = run(sales)
    assert result.status == "escalated"
    assert result.alerts[0]["failure_class"] == "source_missing"


def test_a_re_delivered_file_loads_nothing_new(sales, tmp_path):
    first = deliver(tmp_path / "in", DAY, rows_for(DAY))
    run(sales)
    day2 = DAY + dt.timedelta(days=1)
    (tmp_path / "in" / f"{day2}.csv").write_bytes(first.read_bytes())
    result = run(sales, day=day2)
    assert result.status == "escalated"
    assert result.alerts[0]["failure_class"] == "duplicate_delivery"
    assert target_rows(sales) == [(100,)]


def test_volume_anomaly_loads_and_alerts(sales, tmp_path):
    for i in range(3):
        day = DAY + dt.timedelta(days=i)
        deliver(tmp_path / "in", day, rows_for(day, first_id=1 + i * 1000, count=100, seed=i))
        assert run(sales, day=day).status == "success"
    day = DAY + dt.timedelta(days=3)
    deliver(tmp_path / "in", day, rows_for(day, first_id=5000, count=40))
    result = run(sales, day=day)
    assert result.status == "partial_failure"
    assert result.counts["loaded"] == 40
    assert result.alerts[0]["failure_class"] == "volume_anomaly"


def test_an_open_incident_is_updated_not_re_sent(sales, tmp_path):
    run(sales)
    second = run(sales, day=DAY + dt.timedelta(days=1))
    assert second.alerts[0]["new"] is False
    incidents = ledger_of(sales).incidents(pipeline="sales")
    assert len(incidents) == 1 and incidents[0]["occurrences"] == 2
    assert len((tmp_path / "alerts.jsonl").read_text().splitlines()) == 1


def test_a_learned_mapping_heals_the_next_run_too(sales, tmp_path):
    header = ["id", "date", "sale_amount", "product_id"]
    pipeline = sales
    deliver(tmp_path / "in", DAY, rows_for(DAY), header=header)
    first = run(pipeline)
    assert first.status == "escalated"  # "id" is not a known name for sale_id
    ledger_of(pipeline).save_mappings("sales", {"id": "sale_id"}, rule="confirmed", run_id="by-hand")
    day2 = DAY + dt.timedelta(days=1)
    deliver(tmp_path / "in", day2, rows_for(day2, first_id=500), header=header)
    second = run(pipeline, day=day2)
    assert second.status == "healed"


@pytest.mark.parametrize("content", [b"", b"\x00\x01\x02" * 100])
def test_empty_or_binary_delivery_never_crashes(sales, tmp_path, content):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / f"{DAY}.csv").write_bytes(content)
    result = run(sales)
    assert result.status == "escalated"
    assert result.counts["loaded"] == 0


@pytest.mark.parametrize("sample", [None, 50], ids=["every-row", "sampled"])
def test_loaded_runs_leave_column_profiles_for_later_runs(sales, tmp_path, monkeypatch, sample):
    import tools.profile

    if sample:
        monkeypatch.setattr(tools.profile, "QUANTILE_SAMPLE", sample)  # 200 rows: every 4th, by rowid
    deliver(tmp_path / "in", DAY, rows_for(DAY, count=200))
    result = run(sales)
    profiles = ledger_of(sales).profiles("sales")
    assert [p["run_id"] for p in profiles] == [result.run_id]
    amount = profiles[0]["columns"]["amount"]
    assert amount["kind"] == "number" and amount["rows"] == 200 and 1 <= amount["median"] <= 500
    assert profiles[0]["columns"]["date"]["max"] == str(DAY)
