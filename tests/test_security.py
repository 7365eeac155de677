"""Each protection, with a test that fails if it is removed (issue 9)."""

import datetime as dt
import json

import duckdb
import pytest

from orchestrator.ledger import Ledger
from orchestrator.run import run_pipeline
from tests.conftest import DAY, deliver, rows_for
from tools.sinks import open_sink
from tools.sources import resolve_uri
from tools.verdict import ConfigError

HOSTILE = 'x"; DROP TABLE sales; --'


def test_a_hostile_header_is_data_not_sql(sales, tmp_path):
    deliver(tmp_path / "in", DAY, rows_for(DAY, count=20))
    run_pipeline(sales, run_date=DAY)
    day2 = DAY + dt.timedelta(days=1)
    rows = [r + ["1; DELETE FROM sales"] for r in rows_for(day2, first_id=100, count=20)]
    deliver(tmp_path / "in", day2, rows, header=["sale_id", "date", "amount", "product_id", HOSTILE])
    result = run_pipeline(sales, run_date=day2)
    assert result.status in ("success", "healed")
    con = duckdb.connect(sales.target.removeprefix("duckdb:///"), read_only=True)
    assert con.execute("SELECT count(*) FROM main.sales").fetchone()[0] == 40
    cols = [d[0] for d in con.execute("SELECT * FROM main.sales LIMIT 0").description]
    assert HOSTILE in cols
    assert con.execute(f'SELECT count(*) FROM main.sales WHERE "{HOSTILE.replace(chr(34), chr(34) * 2)}" '
                       "= '1; DELETE FROM sales'").fetchone()[0] == 20


@pytest.mark.parametrize("template", ["data/{date}/../../etc/passwd", "../outside/{date}.csv"])
def test_source_paths_cannot_climb_out_of_their_folder(template, tmp_path):
    with pytest.raises(ConfigError, match="escapes"):
        resolve_uri(template, run_date=DAY, base_dir=tmp_path)


def test_s3_keys_cannot_climb_out_of_their_prefix():
    with pytest.raises(ConfigError, match="escapes"):
        resolve_uri("s3://bucket/sales/../../other/{date}.csv", run_date=DAY)


def test_credentials_in_a_source_never_reach_the_ledger_or_alerts(sales, tmp_path):
    from dataclasses import replace

    from orchestrator.pipeline import Source

    secret = "s3cr3t-pa55"
    pipeline = replace(sales, source=Source(uri=f"https://etl:{secret}@127.0.0.1:9/{{date}}.csv", timeout_s=0.2))
    result = run_pipeline(pipeline, run_date=DAY, sleep=lambda s: None)
    assert result.status == "escalated"
    sink = open_sink(sales.target)
    dump = json.dumps([sink.query(f"SELECT * FROM heal.{t}") for t in ("runs", "attempts", "remediations", "incidents")],
                      default=str)
    assert "127.0.0.1:9" in dump and secret not in dump
    assert secret not in (tmp_path / "alerts.jsonl").read_text()
    assert secret not in json.dumps(result.to_dict(), default=str)


def test_sensitive_columns_are_masked_in_alerts(sales, tmp_path):
    from dataclasses import replace

    contract = replace(sales.contract, columns=tuple(
        replace(c, sensitive=True) if c.name == "product_id" else c for c in sales.contract.columns))
    pipeline = replace(sales, contract=contract)
    rows = rows_for(DAY, count=20)
    rows[0][2] = ""
    rows[0][3] = "N-SECRET-777"
    deliver(tmp_path / "in", DAY, rows)
    result = run_pipeline(pipeline, run_date=DAY)
    assert result.status == "partial_failure"
    alert = (tmp_path / "alerts.jsonl").read_text()
    assert "N-SECRET-777" not in alert and "***" in alert
    incident = Ledger(open_sink(sales.target)).incidents()[0]
    assert "N-SECRET-777" not in json.dumps(incident["evidence"])
