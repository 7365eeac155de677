"""Agent mode end to end: the real Claude Code CLI, through the Agent SDK, against a scripted
model server on 127.0.0.1, healing (or failing to heal) real deliveries into real DuckDB."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import pytest

from orchestrator.agent import TOOLS, AgentConfig, run_with_agent
from orchestrator.ledger import Ledger
from orchestrator.pipeline import parse_pipeline
from tests.conftest import DAY, deliver, rows_for
from tests.model_server import (
    ScriptedModelServer,
    cli_env,
    reply,
    text,
    tool_names,
    tool_result_text,
    tool_results,
    tool_use,
)
from tools.sinks import open_sink

HEADER = ["ref_no", "day", "value_eur", "article"]
MAPPING = {"ref_no": "sale_id", "day": "date", "value_eur": "amount", "article": "product_id"}
WRONG = {"ref_no": "sale_id", "day": "date", "value_eur": "product_id", "article": "amount"}
HEAL_TOOLS = sorted(f"mcp__heal__{t.name}" for t in TOOLS)


def call(name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    return tool_use(f"mcp__heal__{name}", args or {})


def config(server: ScriptedModelServer, tmp_path: Path, **limits: Any) -> AgentConfig:
    return AgentConfig(env=cli_env(server.url, tmp_path / "home", max_retries=0), timeout_s=30, **limits)


def heal(pipeline, server: ScriptedModelServer, tmp_path: Path, day: dt.date = DAY, **limits: Any):
    return run_with_agent(pipeline, run_date=day, config=config(server, tmp_path, **limits),
                          sleep=lambda s: None, rng=random.Random(0))


def query(pipeline, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(pipeline.target.removeprefix("duckdb:///"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@contextmanager
def ledger_of(pipeline) -> Iterator[Ledger]:
    sink = open_sink(pipeline.target)
    try:
        yield Ledger(sink)
    finally:
        sink.close()


def last_result(request: dict[str, Any]) -> dict[str, Any]:
    [block] = tool_results(request)
    return {"is_error": bool(block.get("is_error")), "text": tool_result_text(block)}


def test_an_unmappable_header_heals_through_a_verified_mapping_and_is_learned(sales, tmp_path):
    deliver(tmp_path / "in", DAY, rows_for(DAY), header=HEADER)

    def first(request):
        system = "\n".join(b["text"] for b in request["system"])
        assert "`validate-schema`" in system and "| amount | decimal |" in system  # graph and contract
        assert "schema_mismatch" in system and "at most 3 repair proposals" in system.lower()
        assert "ref_no" not in json.dumps(request)  # delivery text reaches the model only as tool results
        assert tool_names(request) == HEAL_TOOLS  # no Bash, no Write, nothing built in
        return reply(call("show_failure"))

    def second(request):
        shown = json.loads(last_result(request)["text"])
        assert shown["delivered_columns"] == HEADER and shown["failing_check"] == "validate-schema"
        return reply(call("propose_mapping", {"mapping": MAPPING}))

    def third(request):
        verdict = json.loads(last_result(request)["text"])
        assert verdict["verified"] is True and verdict["rows_loaded"] == 100
        return reply(text("Mapped four renamed columns; validate-schema passed."))

    with ScriptedModelServer([first, second, third]) as server:
        run = heal(sales, server, tmp_path)

    assert (run.result.status, run.exit_code, run.agent.outcome) == ("healed", 0, "healed")
    assert len(server.turn_requests) == 3 and run.agent.called
    assert query(sales, "SELECT count(*), count(DISTINCT sale_id) FROM main.sales") == [(100, 100)]
    assert dict(query(sales, "SELECT source_column, target_column FROM heal.schema_mappings "
                             "WHERE rule = 'learned:agent'")) == MAPPING
    assert query(sales, f"SELECT mode, status FROM heal.runs WHERE run_id = '{run.result.run_id}'") == [("agent", "healed")]
    with ledger_of(sales) as ledger:
        tried = ledger.remediations(run.result.run_id)
    assert [(r["step"], r["passed"]) for r in tried][-1] == ("agent:propose_mapping", True)
    assert "agent" in run.result.remediations

    day2 = DAY + dt.timedelta(days=1)
    deliver(tmp_path / "in", day2, rows_for(day2, first_id=500), header=HEADER)
    with ScriptedModelServer([]) as quiet:
        second_run = heal(sales, quiet, tmp_path, day=day2)

    assert second_run.result.status == "healed" and "repair-schema" in second_run.result.remediations
    assert (second_run.agent.called, second_run.agent.outcome) == (False, "not_needed")
    assert quiet.requests == []  # the learned mapping healed it on autopilot: zero model calls


def test_two_proposals_in_one_reply_load_once(sales, tmp_path):
    deliver(tmp_path / "in", DAY, rows_for(DAY), header=HEADER)
    twice = reply(call("propose_mapping", {"mapping": MAPPING}), call("propose_mapping", {"mapping": MAPPING}))
    with ScriptedModelServer([twice, reply(text("ok"))]) as server:
        run = heal(sales, server, tmp_path)

    results = sorted((bool(b.get("is_error")), tool_result_text(b)) for b in tool_results(server.turn_requests[1]))
    assert json.loads(results[0][1])["verified"] is True
    assert results[1][0] and "session is over (healed)" in results[1][1]  # the other is turned away
    assert run.result.status == "healed" and run.result.counts["loaded"] == 100
    assert query(sales, "SELECT count(*) FROM main.sales") == [(100,)]


def test_failing_proposals_hit_the_cap_and_the_run_escalates_with_an_incident(sales, tmp_path):
    deliver(tmp_path / "in", DAY, rows_for(DAY), header=HEADER)
    results: list[dict[str, Any]] = []

    def propose(request):
        if tool_results(request):
            results.append(last_result(request))
        return reply(call("propose_mapping", {"mapping": WRONG}))

    def give_up(request):
        results.append(last_result(request))
        return reply(call("escalate", {"reason": "no mapping makes article parse as amount"}))

    script = [propose, propose, propose, propose, give_up, lambda r: (results.append(last_result(r)),
                                                                     reply(text("Escalated.")))[1]]
    with ScriptedModelServer(script) as server:
        run = heal(sales, server, tmp_path)

    assert (run.result.status, run.exit_code, run.agent.outcome) == ("escalated", 4, "escalated")
    proposals, capped, escalated = results[:3], results[3], results[4]
    assert all(r["is_error"] is False and json.loads(r["text"])["verified"] is False for r in proposals)
    assert capped["is_error"] and "attempt cap reached" in capped["text"]
    assert not escalated["is_error"] and json.loads(escalated["text"])["escalated"] is True
    with ledger_of(sales) as ledger:
        tried = ledger.remediations(run.result.run_id)
        [incident] = ledger.incidents(pipeline="sales")
    assert [r["passed"] for r in tried if r["skill"] == "agent"] == [False] * 3
    assert incident["failure_class"] == "schema_mismatch" and incident["run_id"] == run.result.run_id
    agent = [c for c in incident["evidence"]["failed_criteria"] if c["id"] == "agent"]
    assert agent and "article parse as amount" in agent[0]["observed"]
    assert query(sales, "SELECT count(*) FROM heal.schema_mappings") == [(0,)]
    assert query(sales, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'sales'") == [(0,)]


def test_forbidden_tools_are_refused(sales, tmp_path):
    deliver(tmp_path / "in", DAY, rows_for(DAY), header=HEADER)
    pwned = tmp_path / "pwned"
    seen: list[dict[str, Any]] = []

    def after(request):
        seen.extend(tool_results(request))
        return reply(call("escalate", {"reason": "cannot map"}))

    attack = reply(tool_use("Bash", {"command": f"touch {pwned}"}),
                   tool_use("Write", {"file_path": str(pwned), "content": "x"}),
                   tool_use("mcp__heal__drop_target", {}))
    with ScriptedModelServer([attack, after, reply(text("done"))]) as server:
        run = heal(sales, server, tmp_path)

    assert len(seen) == 3 and all(b.get("is_error") for b in seen)
    assert not pwned.exists()
    assert [c["refused"] for c in run.agent.tool_calls] == [True, True, True, False]
    assert run.result.status == "escalated" and run.result.incident_id


@pytest.mark.parametrize("limit", ["turns", "budget"])
def test_turn_and_budget_limits_end_the_agent_and_the_run_stays_escalated(sales, tmp_path, limit):
    deliver(tmp_path / "in", DAY, rows_for(DAY), header=HEADER)
    usage = {"input_tokens": 1_000_000} if limit == "budget" else None
    script = [reply(call("show_failure"), usage=usage), reply(call("show_sample", {"n": 3})), reply(text("x"))]
    limits = {"max_turns": 1} if limit == "turns" else {"max_budget_usd": 0.5}
    with ScriptedModelServer(script) as server:
        run = heal(sales, server, tmp_path, **limits)

    assert len(server.turn_requests) == 1
    assert run.result.status == "escalated" and run.agent.outcome == "escalated"
    assert ("max turns" if limit == "turns" else "budget") in run.agent.detail


ORDERS = """
name: orders
source: {{uri: "{tmp}/in/{{date}}.csv", min_bytes: 16}}
contract:
  table: orders
  key: [order_id]
  columns:
    order_id: {{type: bigint, critical: true}}
    discount: {{type: decimal, required: false}}
target: "duckdb:///{tmp}/orders.duckdb"
"""


def orders_csv(folder: Path, day: dt.date, first_id: int) -> None:
    lines = ["order_id,discount"] + [f"{first_id + i},{'n.v.' if i % 4 else '1.50'}" for i in range(40)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{day}.csv").write_text("\n".join(lines) + "\n")


def test_a_verified_null_token_is_learned_and_the_autopilot_applies_it(tmp_path):
    orders = parse_pipeline(ORDERS.format(tmp=tmp_path))
    orders_csv(tmp_path / "in", DAY, 1)
    script = [reply(call("propose_null_token", {"column": "discount", "token": "n.v."})), reply(text("ok"))]
    with ScriptedModelServer(script) as server:
        run = heal(orders, server, tmp_path)

    assert (run.result.status, run.agent.outcome) == ("healed", "healed")
    assert query(orders, "SELECT count(*), count(discount) FROM main.orders") == [(40, 10)]
    with ledger_of(orders) as ledger:
        assert ledger.learned_rules("orders") == [
            {"kind": "null_token", "column": "discount", "value": "n.v.", "run_id": run.result.run_id}]

    day2 = DAY + dt.timedelta(days=1)
    orders_csv(tmp_path / "in", day2, 1000)
    with ScriptedModelServer([]) as quiet:
        second = heal(orders, quiet, tmp_path, day=day2)
    assert second.result.status in ("success", "healed") and second.result.counts["loaded"] == 40
    assert not second.agent.called and quiet.requests == []  # the learned token: no model call


def test_a_new_date_format_is_proposed_and_verified_on_staging(sales, tmp_path):
    rows = [[r[0], DAY.strftime("%d/%m/%Y"), *r[2:]] for r in rows_for(DAY)]
    deliver(tmp_path / "in", DAY, rows)
    script = [
        reply(call("propose_date_format", {"column": "date", "format": "%Y.%m.%d"})),  # refused: nothing parses
        reply(call("propose_date_format", {"column": "date", "format": "%d/%m/%Y"})),
        reply(text("ok")),
    ]
    with ScriptedModelServer(script) as server:
        run = heal(sales, server, tmp_path)

    assert json.loads(last_result(server.turn_requests[1])["text"])["error"].startswith("no value of 'date'")
    assert run.result.status == "healed"
    assert query(sales, "SELECT min(date), max(date) FROM main.sales") == [(DAY, DAY)]

    day2 = DAY + dt.timedelta(days=1)  # 03/11/2026: day and month still both read as either
    deliver(tmp_path / "in", day2, [[r[0], day2.strftime("%d/%m/%Y"), *r[2:]] for r in rows_for(day2, first_id=500)])
    with ScriptedModelServer([]) as quiet:
        second = heal(sales, quiet, tmp_path, day=day2)
    assert second.result.status == "healed" and quiet.requests == []  # the learned format, on autopilot
    assert query(sales, "SELECT max(date) FROM main.sales") == [(day2,)]


# -- on PostgreSQL: the same propose-verify-learn loop, the ledger's SQL portable ---------------





def test_the_agent_heals_into_postgresql_and_the_next_run_needs_no_model(sales, tmp_path, pg_url):
    pipeline = replace(sales, target=pg_url)
    deliver(tmp_path / "in", DAY, rows_for(DAY), header=HEADER)
    script = [reply(call("propose_mapping", {"mapping": MAPPING})), reply(text("ok"))]
    with ScriptedModelServer(script) as server:
        first = heal(pipeline, server, tmp_path)
    with ledger_of(pipeline) as ledger:
        assert ledger.sink.query("SELECT DISTINCT rule FROM heal.schema_mappings") == [("learned:agent",)]
    day2 = DAY + dt.timedelta(days=1)
    deliver(tmp_path / "in", day2, rows_for(day2, first_id=500), header=HEADER)
    with ScriptedModelServer([]) as quiet:
        second = heal(pipeline, quiet, tmp_path, day=day2)

    assert (first.result.status, second.result.status) == ("healed", "healed")
    assert quiet.requests == [] and not second.agent.called
    with ledger_of(pipeline) as ledger:
        assert ledger.mappings("sales") == MAPPING
        assert ledger.sink.query("SELECT count(*) FROM public.sales") == [(200,)]
