"""History-based checks: the statistics in tools.history, the validate-history skill, and a run
history in which each detector fires on its day and stays quiet on the others."""

from __future__ import annotations

import datetime as dt
import json
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.ledger import Ledger
from orchestrator.run import run_pipeline
from orchestrator.skills import SkillRegistry
from tests.conftest import DAY, deliver, rows_for
from tools.contract import load_contract
from tools.history import distribution_shift, expected_volume, freshness
from tools.readers import read_delivery
from tools.sinks import open_sink

REPO = Path(__file__).resolve().parent.parent
SKILL = REPO / "skills" / "validate-history"
FIXTURES = SKILL / "fixtures"


def history(values: list[int], *, last: dt.date) -> list[tuple[dt.date, int]]:
    """(date, rows) ending the day before ``last``'s run date, newest first."""
    return [(last - dt.timedelta(days=i + 1), v) for i, v in enumerate(reversed(values))]


SWINGS = [100, 108, 95, 104, 99, 110, 92, 101, 105, 97]  # a normal feed: about ±10% a day
RUN = DAY + dt.timedelta(days=len(SWINGS))


# --- volume ------------------------------------------------------------------------------------


def test_volume_with_little_history_is_the_median_plus_minus_tolerance():
    past = history([100, 102, 98], last=RUN)
    assert expected_volume(119, past, run_date=RUN).passed
    low = expected_volume(79, past, run_date=RUN)
    assert not low.passed and low.method == "tolerance" and low.expected == [80, 120]
    assert "too few runs" in low.detail


def test_volume_stays_quiet_on_a_normal_swing_and_alerts_on_a_60_percent_drop():
    past = history(SWINGS, last=RUN)
    normal = expected_volume(107, past, run_date=RUN)  # 10% above yesterday's 97
    assert normal.passed and normal.method == "robust"
    drop = expected_volume(40, past, run_date=RUN)
    assert not drop.passed and drop.observed == 40
    assert drop.expected[0] > 40 and "-60%" in drop.detail and "confirm with the vendor" in drop.detail


def test_a_steady_feed_still_gets_the_contracts_tolerance():
    past = history([100] * 10, last=RUN)  # MAD 0: the band must not collapse to one value
    assert expected_volume(119, past, run_date=RUN).passed
    assert not expected_volume(79, past, run_date=RUN).passed
    assert expected_volume(79, past, run_date=RUN, tolerance=0.3).passed


def test_weekday_seasonality_once_three_same_weekdays_exist():
    start = dt.date(2026, 10, 5)  # a Monday
    past = [(start + dt.timedelta(days=i), 30 if (start + dt.timedelta(days=i)).weekday() >= 5 else 1000)
            for i in range(28)][::-1]
    saturday = start + dt.timedelta(days=33)
    assert saturday.weekday() == 5
    quiet = expected_volume(31, past, run_date=saturday)
    assert quiet.passed and quiet.method == "seasonal" and "Saturdays" in quiet.detail
    assert not expected_volume(1000, past, run_date=saturday).passed  # a weekday-sized Saturday
    assert not expected_volume(30, past, run_date=saturday + dt.timedelta(days=3)).passed  # a Tuesday
    # Two Saturdays are not enough to call it a pattern: the overall median decides.
    two_weeks = [p for p in past if p[0] >= start + dt.timedelta(days=14)]
    assert expected_volume(31, two_weeks, run_date=saturday).method == "robust"


def test_volume_ignores_runs_outside_the_window_and_repeats_of_a_date():
    past = [(RUN - dt.timedelta(days=1), 100), (RUN - dt.timedelta(days=1), 5), (RUN - dt.timedelta(days=90), 5)]
    finding = expected_volume(100, past, run_date=RUN)
    assert finding.passed and finding.metrics["volume_runs"] == 1
    assert expected_volume(100, [], run_date=RUN).method == "none"
    assert expected_volume(100, [(RUN, 5), (RUN + dt.timedelta(days=1), 5)], run_date=RUN).method == "none"


@settings(max_examples=60, deadline=None)
@given(base=st.integers(50, 1_000_000), swings=st.lists(st.floats(-0.1, 0.1), min_size=5, max_size=30),
       today=st.floats(-0.1, 0.1))
def test_volume_property_normal_swing_quiet_60_percent_drop_loud(base, swings, today):
    past = history([round(base * (1 + s)) for s in swings], last=RUN)
    median = sorted(v for _, v in past)[len(past) // 2]
    assert expected_volume(round(median * (1 + today)), past, run_date=RUN).passed
    assert not expected_volume(round(median * 0.4) - 1, past, run_date=RUN).passed


# --- freshness ---------------------------------------------------------------------------------


def test_freshness():
    run = dt.date(2026, 11, 13)
    assert freshness(dt.date(2026, 11, 3), run_date=run, max_age_days=None).passed  # not configured
    stale = freshness(dt.date(2026, 11, 3), run_date=run, max_age_days=2)
    assert not stale.passed and stale.observed == {"newest": "2026-11-03", "age_days": 10}
    assert stale.expected == {"max_age_days": 2, "newest_on_or_after": "2026-11-11"}
    assert freshness(dt.datetime(2026, 11, 11, 23, 0), run_date=run, max_age_days=2).passed
    assert freshness(None, run_date=run, max_age_days=2).passed


# --- distribution ------------------------------------------------------------------------------


def profiles(n: int, base: float = 250.0, seed: int = 3) -> list[dict]:
    rng = random.Random(seed)
    return [{"amount": {"median": base * rng.uniform(0.9, 1.1), "mean": base * rng.uniform(0.95, 1.05),
                        "p05": base * 0.1 * rng.uniform(0.6, 1.4), "p95": base * 1.9 * rng.uniform(0.97, 1.03)}}
            for _ in range(n)]


def stats(base: float, factor: float = 1.0) -> dict:
    return {"amount": {"median": base * factor, "mean": base * factor, "p05": base * 0.1 * factor,
                       "p95": base * 1.9 * factor}}


def test_amounts_in_cents_are_a_shift_and_a_ten_percent_swing_is_not():
    past = profiles(8)
    assert distribution_shift(stats(250, 1.1), past).passed
    cents = distribution_shift(stats(250, 100), past)
    assert not cents.passed and cents.metrics["shift_z"]["amount"] > 100
    assert "x100" in cents.detail and "unit" in cents.detail
    assert not distribution_shift(stats(250, 0.01), past).passed


def test_distribution_needs_five_earlier_profiles_and_skips_unknown_columns():
    assert distribution_shift(stats(250, 100), profiles(4)).passed
    assert distribution_shift({"other": {"median": 1e9}}, profiles(8)).passed
    constant = [{"amount": {"median": 10.0, "mean": 10.0, "p05": 10.0, "p95": 10.0}}] * 6
    assert distribution_shift({"amount": {"median": 10.4}}, constant).passed
    assert not distribution_shift({"amount": {"median": 15.0}}, constant).passed


@settings(max_examples=60, deadline=None)
@given(base=st.floats(1e-3, 1e7), seed=st.integers(0, 10_000), swing=st.floats(0.9, 1.1))
def test_distribution_property_scale_free(base, seed, swing):
    past = profiles(6, base=base, seed=seed)
    assert distribution_shift(stats(base, swing), past).passed
    assert not distribution_shift(stats(base, 100), past).passed
    assert not distribution_shift(stats(base, 0.01), past).passed


# --- the skill -----------------------------------------------------------------------------------


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SKILL / "scripts" / "check.py"), *args],
                          capture_output=True, text=True, timeout=60)


def test_script_and_in_process_check_agree():
    module = SkillRegistry(REPO / "skills").module("validate-history")
    contract = load_contract(FIXTURES / "contract.yaml")
    volumes, past = module.read_history(FIXTURES / "history.json")
    con = duckdb.connect()
    table = read_delivery(con, FIXTURES / "fail_cents.csv", expected_columns=contract.names).table
    direct = module.check(con, table, contract=contract, run_date=dt.date(2026, 11, 10), volumes=volumes,
                          profiles=past).to_dict()
    out = run_script(str(FIXTURES / "fail_cents.csv"), "--contract", str(FIXTURES / "contract.yaml"),
                     "--date", "2026-11-10", "--history-file", str(FIXTURES / "history.json"), "--json")
    assert out.returncode == 1
    script = json.loads(out.stdout)
    direct.pop("duration_ms"), script.pop("duration_ms")
    assert direct == script
    assert script["failure_class"] == "distribution_shift" and script["metrics"]["volume_method"] == "robust"


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "expected {\"runs\""),
    ('{"runs": [{"run_date": "yesterday", "rows": 5}]}', "expected {\"runs\""),
    ('{"rows": []}', "expected {\"runs\""),
])
def test_a_bad_history_file_is_one_clear_line(tmp_path, content, message):
    bad = tmp_path / "history.json"
    bad.write_text(content)
    out = run_script(str(FIXTURES / "pass_clean.csv"), "--contract", str(FIXTURES / "contract.yaml"),
                     "--date", "2026-11-10", "--history-file", str(bad))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith("validate-history: error: ") and message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_a_date_column_that_is_not_a_date_is_a_config_error():
    out = run_script(str(FIXTURES / "pass_clean.csv"), "--contract", str(FIXTURES / "contract.yaml"),
                     "--date", "2026-11-10", "--date-column", "amount")
    assert out.returncode == 2 and "date_column 'amount'" in out.stderr


def test_a_few_out_of_range_rows_are_not_a_shift_but_most_are(tmp_path):
    contract = load_contract(FIXTURES / "contract.yaml")
    module = SkillRegistry(REPO / "skills").module("validate-history")
    volumes, past = module.read_history(FIXTURES / "history.json")
    day = dt.date(2026, 11, 10)
    rows = rows_for(day, count=30, seed=5)
    for r in rows[:2]:
        r[2] = "9999999"  # two wild values the contract will quarantine
    con = duckdb.connect()
    few = read_delivery(con, deliver(tmp_path, day, rows), table="few", expected_columns=contract.names).table
    assert module.check(con, few, contract=contract, run_date=day, volumes=volumes, profiles=past).passed
    for r in rows:
        r[2] = f"{float(r[2]) * 1000:.2f}" if r[2] != "9999999" else r[2]
    most = read_delivery(con, deliver(tmp_path / "b", day, rows), table="most", expected_columns=contract.names).table
    verdict = module.check(con, most, contract=contract, run_date=day, volumes=volumes, profiles=past)
    assert verdict.failure_class == "distribution_shift"


# --- a run history -------------------------------------------------------------------------------


def test_each_detector_fires_on_its_day_and_stays_quiet_on_normal_days(sales, tmp_path):
    pipeline = replace(sales, contract=replace(sales.contract, freshness_days=2))
    inbox = tmp_path / "in"
    plan: list[tuple[str, int]] = [("normal", n) for n in SWINGS]
    plan += [("normal", 107), ("drop", 40), ("normal", 100), ("stale", 100), ("normal", 100), ("cents", 100),
             ("normal", 100)]
    expected = {"normal": ("success", None), "drop": ("partial_failure", "volume_anomaly"),
                "stale": ("escalated", "freshness"), "cents": ("escalated", "distribution_shift")}
    seen = []
    for i, (kind, count) in enumerate(plan):
        day = DAY + dt.timedelta(days=i)
        rows = rows_for(day - dt.timedelta(days=10) if kind == "stale" else day, first_id=1 + i * 1000,
                        count=count, seed=i)
        if kind == "cents":
            rows = [[r[0], r[1], f"{float(r[2]) * 100:.2f}", r[3]] for r in rows]
        deliver(inbox, day, rows)
        result = run_pipeline(pipeline, run_date=day, sleep=lambda s: None, rng=random.Random(0))
        history_step = next(s for s in result.steps if s["step"] == "validate-history")
        raised = [a["failure_class"] for a in result.alerts if a["status"] != "resolved"]
        seen.append((i, kind, result.status, history_step["failure_class"], raised))
        status, failure = expected[kind]
        assert result.status == status, seen[-1]
        assert history_step["failure_class"] == failure, seen[-1]
        assert raised == ([failure] if failure else []), seen[-1]
        if kind == "drop":
            assert result.counts["loaded"] == 40  # a volume anomaly loads the valid rows
        if kind in ("stale", "cents"):
            assert result.counts["loaded"] == 0 and result.counts["held"] == count
        if kind == "normal" and i > len(SWINGS):  # the day after a fault: its incident is resolved
            assert [a["status"] for a in result.alerts] == ["resolved"], seen[-1]
    ledger = Ledger(open_sink(pipeline.target))
    verdicts = {}
    for run in ledger.runs(pipeline="sales", limit=100):
        for a in ledger.attempts(run.run_id):
            if a["step"] == "validate-history" and not a["passed"]:
                verdicts[a["failure_class"]] = {c["id"]: c for c in a["verdict"]["criteria"]}
    drop = verdicts["volume_anomaly"]["volume_expected"]
    assert drop["observed"] == 40 and drop["expected"][0] > 40
    assert verdicts["freshness"]["fresh"]["observed"] == {"newest": str(DAY + dt.timedelta(days=3)), "age_days": 10}
    cents = verdicts["distribution_shift"]["distribution_stable"]
    assert cents["observed"]["amount"]["median"] > 100 * 100 and "x100" in cents["detail"]
    assert {i["failure_class"]: i["status"] for i in ledger.incidents(pipeline="sales")} == {
        "volume_anomaly": "resolved", "freshness": "resolved", "distribution_shift": "resolved"}


def test_a_large_delivery_takes_its_quantiles_from_a_sample_and_judges_alike(tmp_path, monkeypatch):
    import tools.profile

    contract = load_contract(FIXTURES / "contract.yaml")
    module = SkillRegistry(REPO / "skills").module("validate-history")
    volumes, past = module.read_history(FIXTURES / "history.json")
    day = dt.date(2026, 11, 10)
    rows = rows_for(day, count=6000, seed=7)
    con = duckdb.connect()
    usual = read_delivery(con, deliver(tmp_path, day, rows), table="usual", expected_columns=contract.names).table
    for r in rows:
        r[2] = f"{float(r[2]) * 100:.2f}"
    cents = read_delivery(con, deliver(tmp_path / "b", day, rows), table="cents", expected_columns=contract.names).table

    def judged(table: str) -> tuple[bool, float]:
        verdict = module.check(con, table, contract=contract, run_date=day, volumes=volumes, profiles=past)
        stable = next(c for c in verdict.criteria if c.id == "distribution_stable")
        return stable.passed, verdict.metrics["shift_z"]["amount"]

    exact = judged(usual), judged(cents)
    monkeypatch.setattr(tools.profile, "QUANTILE_SAMPLE", 1_000)  # every 6th row, by hash
    sampled = judged(usual), judged(cents)
    assert [s[0] for s in sampled] == [e[0] for e in exact] == [True, False]
    assert abs(sampled[0][1] - exact[0][1]) < 1.0 and sampled[1][1] > 100
