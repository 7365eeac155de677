"""Type and schema drift: the rules decided from the data, the ambiguities that escalate, the
matcher's names-and-profiles scoring, what later runs learn, and a 5-million-row delivery in a
drifted format read and validated in bounded memory."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from orchestrator.ledger import Ledger
from orchestrator.run import run_pipeline
from tests.conftest import DAY, REPO, rows_for
from tools.coercion import plan_drift, rewrite_sql
from tools.contract import DEFAULT_NULL_TOKENS, Column, Contract, quote_ident, quote_literal
from tools.mapping import match_columns, name_score
from tools.profile import profile_table
from tools.sinks import open_sink
from tools.typed_rows import typed_rows

AMOUNT = Column("amount", "decimal", min=0.01, max=10000)
DATE = Column("date", "date")
STAMP = Column("ts", "timestamp")
ID = Column("id", "bigint")


def drift(values, column, *, learned=None, history=()):
    """(rules applied, ambiguity kinds, notes, the rewritten values) for one column of text values.

    The plan is made twice, counting from the text and from the typed rows (as in a pipeline),
    and must be the same."""
    con = duckdb.connect()
    x = quote_ident(column.name)
    con.execute(f"CREATE TABLE d ({x} VARCHAR, _row BIGINT, _error VARCHAR)")
    con.executemany("INSERT INTO d VALUES (?, ?, NULL)", [(v, i) for i, v in enumerate(values)])
    pairs = [(column.name, column)]
    plan = plan_drift(con, "d", pairs, null_tokens=DEFAULT_NULL_TOKENS, learned=learned, history=history)
    typed = typed_rows(con, "d", contract=Contract(table="t", columns=(column,)))
    assert plan_drift(con, "d", pairs, null_tokens=DEFAULT_NULL_TOKENS, learned=learned, history=history,
                      typed=typed) == plan
    out = [r[0] for r in con.execute(f"SELECT {rewrite_sql(plan, column.name)} FROM d ORDER BY _row").fetchall()]
    return ({c.rule: c.rows for c in plan.rewrites}, [a.kind for a in plan.ambiguous],
            {c.rule: c.rows for c in plan.notes}, out)


@pytest.mark.parametrize(("values", "column", "rules", "out"), [
    (["$1,234.50", "$12.00", "-$3.10", "USD 5", "N/A"], AMOUNT, {"currency": 4, "thousands_separator": 1},
     ["1234.50", "12.00", "-3.10", "5", "N/A"]),
    (["1.234,50", "12,00", "7", "-3,5"], AMOUNT, {"decimal_comma": 3}, ["1234.50", "12.00", "7", "-3.5"]),
    (["1 234,50 €", "12,00 €", "€ 7", "1\u00a0000,00"], AMOUNT, {"currency": 3, "decimal_comma": 3},
     ["1234.50", "12.00", "7", "1000.00"]),
    (["1,234", "1.234.567", "12", "x"], ID, {"thousands_separator": 2}, ["1234", "1234567", "12", "x"]),
    (["11/20/2026", "11/02/2026", "2026-11-01", "13/13/2026"], DATE, {"date:MM/DD/YYYY": 3},
     ["2026-11-20", "2026-11-02", "2026-11-01", "13/13/2026"]),
    (["20/11/2026", "2/1/2026", "31/02/2026"], DATE, {"date:DD/MM/YYYY": 3}, ["2026-11-20", "2026-01-02", "31/02/2026"]),
    (["02.11.2026", "3.1.2026"], DATE, {"date:DD.MM.YYYY": 2}, ["2026-11-02", "2026-01-03"]),
    (["20261102", "20261131", "2026-11-03"], DATE, {"date:YYYYMMDD": 1}, ["2026-11-02", "20261131", "2026-11-03"]),
    (["20/11/2026 10:00", "02/11/2026 10:00:05"], STAMP, {"date:DD/MM/YYYY": 2},
     ["2026-11-20 10:00:00", "2026-11-02 10:00:05"]),
])
def test_a_rule_is_decided_from_the_values_and_rewrites_them_as_canonical_text(values, column, rules, out):
    found, ambiguous, _, rewritten = drift(values, column)
    assert (found, ambiguous, rewritten) == (rules, [], out)


def test_values_read_as_they_are_are_noted_not_rewritten():
    rules, ambiguous, notes, out = drift(["1.05E2", "12.5", "NULL", "None", "abc", ""], AMOUNT)
    assert (rules, ambiguous, notes) == ({}, [], {"scientific": 1, "null_token": 2})
    assert out == ["1.05E2", "12.5", "NULL", "None", "abc", ""]


@pytest.mark.parametrize(("values", "column", "kind", "learned", "settled"), [
    (["02/11/2026", "03/11/2026"], DATE, "day_month_order", ["date:DD/MM/YYYY"], ["2026-11-02", "2026-11-03"]),
    (["02/11/2026", "03/11/2026"], DATE, "day_month_order", ["date_format:%m/%d/%Y"], ["2026-02-11", "2026-03-11"]),
    (["1,234", "2,345", "12"], AMOUNT, "decimal_separator", ["decimal_comma"], ["1.234", "2.345", "12"]),
    (["1,234", "2,345", "12"], AMOUNT, "decimal_separator", ["thousands_separator"], ["1234", "2345", "12"]),
    (["1050", "2000", "15000"], AMOUNT, "unit", ["unit:cents"], ["10.50", "20.00", "150.00"]),
])
def test_what_the_values_cannot_tell_escalates_unless_an_earlier_run_settled_it(values, column, kind, learned, settled):
    rules, ambiguous, _, out = drift(values, column)
    assert (rules, ambiguous, out) == ({}, [kind], values)
    rules, ambiguous, _, out = drift(values, column, learned={column.name: learned})
    assert (ambiguous, out) == ([], settled)


def test_mixed_day_month_order_escalates_even_with_a_learned_rule():
    _, ambiguous, _, _ = drift(["13/01/2026", "01/13/2026"], DATE, learned={"date": ["date:DD/MM/YYYY"]})
    assert ambiguous == ["day_month_order"]


def test_whole_numbers_in_a_decimal_column_are_judged_against_history():
    usual = [{"columns": {"amount": {"median": 250.0}}}]
    assert drift(["25000", "30000", "12000"], AMOUNT, history=usual)[1] == ["unit"]  # x100: cents
    assert drift(["250", "300", "120"], AMOUNT, history=usual)[1] == []  # the usual unit
    assert drift(["250", "300", "120"], AMOUNT)[1] == []  # no history, all in range: nothing to hold
    assert drift(["12050", "30000", "900"], AMOUNT)[1] == ["unit"]  # out of range as units, not as cents
    assert drift(["25000", "30000"], AMOUNT, learned={"amount": ["unit:units"]}, history=usual)[1] == []


# --- schema drift: names and profiles ----------------------------------------------------------

def staged(con, columns: dict[str, list[str]], table: str = "d") -> str:
    names = list(columns)
    cols = ", ".join(f'"{n}" VARCHAR' for n in names)
    con.execute(f'CREATE OR REPLACE TABLE {table} ({cols}, _row BIGINT, _error VARCHAR)')
    rows = list(zip(*columns.values()))
    con.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(names))}, ?, NULL)",
                    [(*r, i + 1) for i, r in enumerate(rows)])
    return table


def sales_history(con, sales, day=DAY, count=200):
    rows = rows_for(day, count=count)
    staged(con, {"sale_id": [r[0] for r in rows], "date": [r[1] for r in rows], "amount": [r[2] for r in rows],
                 "product_id": [r[3] for r in rows]}, "h")
    con.execute("CREATE OR REPLACE TABLE typed AS SELECT sale_id::BIGINT AS sale_id, date::DATE AS date, "
                "amount::DECIMAL(18,2) AS amount, product_id FROM h")
    types = [(c.name, c.sql_type) for c in sales.contract.columns]
    return [{"run_id": "r1", "run_date": day, "columns": profile_table(con, "typed", types)}]


def test_names_score_by_words_and_similarity(sales):
    amount = sales.contract.column("amount")
    assert name_score("Sale-Amount", amount) == 1.0  # a synonym, normalised
    assert name_score("amount_eur", amount) == 0.85
    assert name_score("Amount (EUR)", amount) == 0.85
    assert name_score("betrag", amount) < 0.4
    assert name_score("prod_id", sales.contract.column("product_id")) == 0.85  # abbreviations expand


def test_unrelated_names_map_by_their_profile_once_history_exists(sales):
    con = duckdb.connect()
    history = sales_history(con, sales)
    rows = rows_for(DAY + dt.timedelta(days=1), first_id=1000, count=150, seed=4)
    staged(con, {"ref": [r[0] for r in rows], "day": [r[1] for r in rows], "betrag": [r[2] for r in rows],
                 "article": [r[3] for r in rows]})
    plan = match_columns(con, "d", sales.contract, history=history)
    assert plan.mapping == {"ref": "sale_id", "day": "date", "betrag": "amount", "article": "product_id"}
    assert set(plan.rules.values()) == {"similar"} and not plan.ambiguous and not plan.missing_required
    assert plan.scores["amount"][0]["column"] == "betrag" and plan.scores["amount"][0]["history"]
    blind = match_columns(con, "d", sales.contract)  # no history: the names alone are too weak
    assert blind.mapping == {} and blind.missing_required == ["sale_id", "date", "amount", "product_id"]
    assert blind.scores["amount"] and all(s["score"] < 0.65 for s in blind.scores["amount"])


def test_two_columns_that_fit_equally_well_are_ambiguous_with_scores(sales):
    con = duckdb.connect()
    history = sales_history(con, sales)
    rows = rows_for(DAY, count=100, seed=5)
    staged(con, {"sale_id": [r[0] for r in rows], "date": [r[1] for r in rows], "net": [r[2] for r in rows],
                 "gross": [r[2] for r in rows], "product_id": [r[3] for r in rows]})
    plan = match_columns(con, "d", sales.contract, history=history)
    assert plan.mapping == {} and plan.ambiguous == {"amount": ["gross", "net"]}
    assert [s["column"] for s in plan.scores["amount"]][:2] in (["gross", "net"], ["net", "gross"])


def test_no_header_maps_by_position_and_type_or_escalates(sales):
    con = duckdb.connect()
    rows = rows_for(DAY, count=30)
    staged(con, {f"column{i}": [r[i] for r in rows] for i in range(4)})
    plan = match_columns(con, "d", sales.contract, headerless=True)
    assert plan.mapping == {"column0": "sale_id", "column1": "date", "column2": "amount", "column3": "product_id"}
    assert set(plan.rules.values()) == {"position"}
    staged(con, {f"column{i}": [r[j] for r in rows] for i, j in enumerate([2, 0, 1, 3])})  # amount first
    plan = match_columns(con, "d", sales.contract, headerless=True)
    assert "amount" not in plan.mapping.values() and plan.missing_required


# --- whole runs: coercions recorded, rules learned, policies -----------------------------------

def write(tmp_path: Path, day: dt.date, text: str, encoding: str = "utf-8") -> None:
    (tmp_path / "in").mkdir(exist_ok=True)
    (tmp_path / "in" / f"{day}.csv").write_bytes(text.encode(encoding))


def csv_text(rows, *, sep=",", date=lambda d: d, amount=lambda a: a, header="sale_id,date,amount,product_id"):
    return header.replace(",", sep) + "\n" + "".join(
        sep.join([r[0], date(r[1]), amount(r[2]), r[3]]) + "\n" for r in rows)


@contextmanager
def ledger_for(pipeline):
    sink = open_sink(pipeline.target)
    try:
        yield Ledger(sink)
    finally:
        sink.close()


def run(pipeline, day):
    return run_pipeline(pipeline, run_date=day, sleep=lambda s: None)


def test_a_drifted_delivery_heals_and_every_coercion_is_recorded(sales, tmp_path):
    rows = rows_for(DAY, count=50)
    euro = csv_text(rows, sep=";", amount=lambda a: a.replace(".", ","),
                    date=lambda d: dt.date.fromisoformat(d).strftime("%d.%m.%Y"))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / f"{DAY}.csv").write_bytes(gzip.compress(euro.encode("latin-1")))
    result = run(sales, DAY)
    assert (result.status, result.counts["loaded"]) == ("healed", 50) and "repair-schema" in result.remediations
    with ledger_for(sales) as ledger:
        recorded = {(c["column"], c["rule"]): c["rows"] for c in ledger.coercions(result.run_id)}
        attempts = ledger.attempts(result.run_id)
    assert recorded[("amount", "decimal_comma")] == 50 and recorded[("date", "date:DD.MM.YYYY")] == 50
    assert {(None, "gzip"), (None, "delimiter:;")} <= set(recorded)
    repair = next(a for a in attempts if a["step"] == "repair-schema")["verdict"]
    assert {c["rule"] for c in repair["artifacts"]["coercions"]} == {"decimal_comma", "date:DD.MM.YYYY"}
    con = duckdb.connect(sales.target.removeprefix("duckdb:///"), read_only=True)
    typed = con.execute("SELECT sum(amount), min(date), max(date) FROM main.sales").fetchone()
    assert typed == (sum(__import__("decimal").Decimal(r[2]) for r in rows), DAY, DAY)


def test_day_month_order_learned_on_one_run_settles_the_next(sales, tmp_path):
    first = [[str(i), "2026-11-20", "10.00", "N-1"] for i in range(1, 31)]
    write(tmp_path, DAY, csv_text(first, date=lambda d: "20/11/2026"))
    assert run(sales, DAY).status == "healed"
    day2 = DAY + dt.timedelta(days=1)
    second = [[str(i), "2026-11-03", "10.00", "N-1"] for i in range(31, 61)]  # 03/11: the values cannot tell
    write(tmp_path, day2, csv_text(second, date=lambda d: "03/11/2026"))
    result = run(sales, day2)
    assert result.status == "healed", result.summary
    con = duckdb.connect(sales.target.removeprefix("duckdb:///"), read_only=True)
    assert con.execute("SELECT DISTINCT date FROM main.sales WHERE sale_id > 30").fetchall() == [(dt.date(2026, 11, 3),)]


def test_ambiguous_dates_with_no_history_hold_the_delivery_with_the_candidates(sales, tmp_path):
    write(tmp_path, DAY, csv_text([[str(i), "", "10.00", "N-1"] for i in range(1, 21)], date=lambda d: "03/11/2026"))
    result = run(sales, DAY)
    assert result.status == "escalated" and result.alerts[0]["failure_class"] == "type_drift"
    with ledger_for(sales) as ledger:
        repair = next(a for a in ledger.attempts(result.run_id) if a["step"] == "repair-schema")["verdict"]
        assert ledger.coercions(result.run_id) == []  # nothing loaded, nothing recorded as applied
    failed = {c["id"]: c for c in repair["criteria"] if not c["pass"]}
    assert set(failed) == {"coercions_unambiguous", "types_parse"}
    assert failed["coercions_unambiguous"]["observed"][0]["candidates"] == {"date:DD/MM/YYYY": 20,
                                                                          "date:MM/DD/YYYY": 20}
    assert {s["value"] for s in failed["coercions_unambiguous"]["samples"]} == {"03/11/2026"}


def test_amounts_in_cents_hold_until_a_person_confirms_the_unit(sales, tmp_path):
    rows = rows_for(DAY, count=40)
    write(tmp_path, DAY, csv_text(rows))
    assert run(sales, DAY).status == "success"
    day2 = DAY + dt.timedelta(days=1)
    cents = rows_for(day2, first_id=100, count=40, seed=2)
    write(tmp_path, day2, csv_text(cents, amount=lambda a: str(int(round(float(a) * 100)))))
    held = run(sales, day2)
    assert held.status == "escalated" and held.alerts[0]["failure_class"] == "distribution_shift"
    with ledger_for(sales) as ledger:
        ledger.save_learned_rule("sales", kind="unit", column="amount", value="cents", run_id="by-hand")
    day3 = day2 + dt.timedelta(days=1)
    write(tmp_path, day3, csv_text(cents, amount=lambda a: str(int(round(float(a) * 100)))))
    result = run(sales, day3)
    assert result.status == "healed", result.summary
    con = duckdb.connect(sales.target.removeprefix("duckdb:///"), read_only=True)
    got = dict(con.execute("SELECT sale_id, amount FROM main.sales WHERE sale_id >= 100").fetchall())
    assert {str(k): f"{v:.2f}" for k, v in got.items()} == {r[0]: r[2] for r in cents}


def test_extra_columns_are_dropped_when_the_contract_says_so(sales, tmp_path):
    dropping = replace(sales, contract=replace(sales.contract, extra_columns="drop"))
    rows = rows_for(DAY, count=20)
    write(tmp_path, DAY, "sale_id,date,amount,product_id,channel\n" + "".join(",".join(r) + ",web\n" for r in rows))
    result = run(dropping, DAY)
    assert result.status == "healed" and result.counts["loaded"] == 20
    with ledger_for(sales) as ledger:
        assert ledger.coercions(result.run_id) == [
            {"column": "channel", "rule": "new_column:drop", "rows": 0, "detail": "dropped per contract"}]
        assert ledger.sink.table_columns("sales")[:5] == ["sale_id", "date", "amount", "product_id", "tax_amount"]
        assert "channel" not in ledger.sink.table_columns("sales")


def test_a_part_lacking_a_required_column_holds_the_whole_delivery(sales, tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    rows = rows_for(DAY, count=20)
    (folder / "a.csv").write_text(csv_text(rows[:10]))
    (folder / "b.csv").write_text("sale_id,date,product_id\n" + "".join(f"{r[0]},{r[1]},{r[3]}\n" for r in rows[10:]))
    result = run(replace(sales, source=replace(sales.source, uri=str(folder), fallback=None)), DAY)
    assert result.status == "escalated" and result.counts["held"] == 20
    with ledger_for(sales) as ledger:
        repair = next(a for a in ledger.attempts(result.run_id) if a["step"] == "repair-schema")["verdict"]
    failed = [c for c in repair["criteria"] if not c["pass"]]
    assert [(c["id"], c["observed"]) for c in failed] == [("required_mapped", {"b.csv": ["amount"]})]


# --- scale ---------------------------------------------------------------------------------------

_SCALE = """
import json, resource, sys, time
from pathlib import Path
import duckdb
from orchestrator.skills import SkillRegistry
from tools.contract import load_contract
from tools.sinks import configure_working_connection
path, db = sys.argv[1], sys.argv[2]
skills = SkillRegistry(Path("skills"))
contract = load_contract("pipelines/sales.yaml")
con = duckdb.connect(db)
con.execute("SET enable_progress_bar = false")
configure_working_connection(con)
out, start = {}, time.time()
schema = skills.module("validate-schema").read_and_check(con, path, contract=contract)
out["schema"] = [schema.passed, schema.failure_class, schema.metrics["rows"],
                 sorted(n["rule"] for n in schema.artifacts["read"]["notes"])]
repair = skills.module("repair-schema").repair(con, "delivery", contract=contract)
out["repair"] = [repair.passed, repair.artifacts.get("coercions")]
again = skills.module("validate-schema").check(con, repair.artifacts["table"], contract=contract)
quality = skills.module("validate-quality").check(con, repair.artifacts["table"], contract=contract)
out["after"] = [again.passed, quality.passed, quality.metrics["rows"]]
out["sum"] = str(con.execute("SELECT sum(amount::DECIMAL(18,2)) FROM delivery_mapped").fetchone()[0])
out["seconds"] = round(time.time() - start, 1)
out["maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


@pytest.mark.slow
def test_five_million_drifted_rows_are_read_and_validated_in_under_a_gib(tmp_path):
    rows = 5_000_000
    con = duckdb.connect()
    plain = tmp_path / "plain.csv"
    con.execute(
        "COPY (SELECT i + 1 AS sale_id, DATE '2026-11-01' + (i % 28)::INT AS date, "
        "replace(printf('%.2f', 1 + (hash(i) % 999900) / 100.0), '.', ',') AS amount, "
        "CASE WHEN i % 3 = 0 THEN 'N-Café-' ELSE 'S-Crème-' END || (i % 9999)::VARCHAR AS product_id "
        f"FROM range({rows}) t(i)) TO {quote_literal(str(plain))} (DELIMITER ';', HEADER)"
    )
    expected_sum = con.execute(
        f"SELECT sum(replace(amount, ',', '.')::DECIMAL(18,2)) FROM read_csv({quote_literal(str(plain))}, "
        "delim=';', all_varchar=true)").fetchone()[0]
    con.close()
    delivery = tmp_path / "sales.csv.gz"
    with open(plain, "rb") as src, gzip.open(delivery, "wb", compresslevel=1) as out:
        rest = b""
        while chunk := src.read(8 << 20):
            data = rest + chunk
            cut = data.rfind(b"\n") + 1
            out.write(data[:cut].decode("utf-8").encode("latin-1"))
            rest = data[cut:]
        out.write(rest.decode("utf-8").encode("latin-1"))
    plain.unlink()
    start = time.time()
    proc = subprocess.run([sys.executable, "-c", _SCALE, str(delivery), str(tmp_path / "work.duckdb")],
                          capture_output=True, text=True, cwd=REPO, timeout=600,
                          env={**os.environ, "HEAL_TEMP_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["schema"] == [False, "type_drift", rows, ["delimiter:;", "encoding:latin-1", "gzip"]]
    assert out["repair"] == [True, [{"column": "amount", "rule": "decimal_comma", "rows": rows,
                                     "detail": "decimal comma read as a dot", "repair": True}]]
    assert out["after"] == [True, True, rows] and out["sum"] == str(expected_sum)
    assert out["maxrss_mib"] < 1024, out
    print(f"5M rows: {out['seconds']} s in the checks, {time.time() - start:.1f} s in all, "
          f"peak {out['maxrss_mib']:.0f} MiB")
