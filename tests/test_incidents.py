"""Incidents across runs with real Slack, PagerDuty and webhook receivers on 127.0.0.1: one alert
per incident, updates not re-sent within the window, re-sent after it, the recurring rule,
resolve events, and a dead webhook that never fails a run."""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import replace
from typing import Any

import pytest

from orchestrator.incidents import DEFAULT_SUPPRESS_MINUTES, EscalationPolicy
from orchestrator.ledger import Ledger
from orchestrator.run import run_pipeline
from tests.conftest import DAY, deliver, rows_for
from tests.http_receiver import Receiver
from tools.sinks import open_sink

ROUTING_KEY = "R0UT1NGKEY0123456789abcdef012345"


pytestmark = pytest.mark.usefixtures("no_proxy")


def channels(rx: Receiver) -> tuple[dict[str, Any], ...]:
    return ({"type": "slack", "url_env": "SLACK_URL", "base_delay": 0},
            {"type": "pagerduty", "routing_key_env": "PD_KEY", "url": f"{rx.url}/pd", "base_delay": 0},
            {"type": "webhook", "url": f"{rx.url}/hook", "base_delay": 0})


def env(rx: Receiver) -> dict[str, str]:
    return {"SLACK_URL": f"{rx.url}/slack", "PD_KEY": ROUTING_KEY}


def day(n: int) -> dt.date:
    return DAY + dt.timedelta(days=n)


def run(pipeline, n: int, rx: Receiver | None = None, **extra: Any):
    return run_pipeline(pipeline, run_date=day(n), sleep=lambda s: None, rng=random.Random(0),
                        env=env(rx) if rx else {}, **extra)


def test_escalation_alerts_once_updates_quietly_then_resolves_on_every_channel(sales, tmp_path, rx):
    pipeline = replace(sales, alerts=channels(rx))
    first = run(pipeline, 0, rx)  # no delivery and no fallback: held, escalated
    assert first.status == "escalated"
    assert [a["event"] for a in first.alerts] == ["opened"] and first.alerts[0]["sent"]
    assert [len(rx.to(p)) for p in ("/slack", "/pd", "/hook")] == [1, 1, 1]

    slack = rx.to("/slack")[0]
    assert "Escalated in sales — source_missing" in slack["text"]
    assert first.run_id in json.dumps(slack["blocks"])
    assert "Failed criteria (observed vs expected)" in json.dumps(slack["blocks"])
    page = rx.to("/pd")[0]
    assert (page["routing_key"], page["event_action"], page["dedup_key"]) == (
        ROUTING_KEY, "trigger", "heal:sales:source_missing")
    assert page["payload"]["severity"] == "critical" and page["payload"]["custom_details"]["run_id"] == first.run_id
    assert page["payload"]["custom_details"]["failed_criteria"]
    hook = rx.to("/hook")[0]
    assert (hook["status"], hook["run_id"], hook["failure_class"]) == ("escalated", first.run_id, "source_missing")
    assert "vendor" in hook["evidence"]["next_step"]

    second = run(pipeline, 1, rx)  # the same failure, minutes later: updated, not re-sent
    assert second.alerts[0]["event"] == "updated (not re-sent)" and not second.alerts[0]["sent"]
    assert len(rx.requests) == 3
    ledger = Ledger(open_sink(pipeline.target))
    [incident] = ledger.incidents(pipeline="sales")
    assert incident["occurrences"] == 2 and incident["status"] == "open" and incident["notified_at"]

    deliver(tmp_path / "in", day(2), rows_for(day(2)))
    fixed = run(pipeline, 2, rx)
    assert fixed.status == "success"
    assert [(a["event"], a["failure_class"]) for a in fixed.alerts] == [("resolved", "source_missing")]
    resolve = rx.to("/pd")[-1]
    assert resolve == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": "heal:sales:source_missing"}
    assert rx.to("/slack")[-1]["text"].startswith("heal: Resolved in sales — source_missing")
    assert rx.to("/hook")[-1]["status"] == "resolved"
    assert ledger.incidents(pipeline="sales")[0]["status"] == "resolved"

    again = run(pipeline, 3, rx)  # it comes back: a new incident, a new trigger
    assert again.alerts[0]["event"] == "opened" and again.alerts[0]["incident_id"] != first.alerts[0]["incident_id"]
    assert [b["event_action"] for b in rx.to("/pd")] == ["trigger", "resolve", "trigger"]


def test_an_open_incident_is_re_sent_once_the_suppression_window_has_passed(sales, rx):
    pipeline = replace(sales, alerts=channels(rx)[2:])
    first = run(pipeline, 0, rx)
    ledger = Ledger(open_sink(pipeline.target))  # four hours and a minute pass
    ledger.sink.execute("UPDATE heal.incidents SET notified_at = notified_at - INTERVAL 241 MINUTE")
    ledger.sink.close()
    later = run(pipeline, 1, rx)
    assert later.alerts[0]["event"] == "re-sent" and later.alerts[0]["sent"]
    assert [b["run_id"] for b in rx.to("/hook")] == [first.run_id, later.run_id]
    assert run(pipeline, 2, rx).alerts[0]["event"] == "updated (not re-sent)"
    assert len(rx.to("/hook")) == 2


def test_suppress_minutes_zero_tells_every_run(sales, rx):
    pipeline = replace(sales, alerts=channels(rx)[2:], escalation={"max_visits": 2, "suppress_minutes": 0})
    assert [run(pipeline, n, rx).alerts[0]["event"] for n in range(3)] == ["opened", "re-sent", "re-sent"]
    assert len(rx.to("/hook")) == 3
    assert EscalationPolicy.from_config({}).suppress_minutes == DEFAULT_SUPPRESS_MINUTES == 240


def test_a_failure_healed_three_runs_in_a_row_alerts_as_recurring(sales, tmp_path, rx):
    pipeline = replace(sales, alerts=channels(rx)[1:])
    for n in range(4):  # the primary file never arrives; the fallback copy heals every run
        deliver(tmp_path / "backup", day(n), rows_for(day(n), first_id=1 + n * 1000))
    first, second, third, fourth = (run(pipeline, n, rx) for n in range(4))
    assert [r.status for r in (first, second, third, fourth)] == ["healed"] * 4
    assert first.alerts == second.alerts == ()
    [recurring] = third.alerts
    assert (recurring["status"], recurring["failure_class"], recurring["event"]) == (
        "recurring", "source_missing", "opened")
    hook = rx.to("/hook")
    assert len(hook) == 1 and hook[0]["status"] == "recurring" and hook[0]["severity"] == "warning"
    assert "3 runs in a row" in hook[0]["evidence"]["next_step"]
    assert hook[0]["evidence"]["failed_criteria"] and hook[0]["evidence"]["remediations"][0]["skill"] == (
        "use-fallback-source")
    assert rx.to("/pd")[0]["payload"]["class"] == "source_missing"
    assert fourth.alerts[0]["event"] == "updated (not re-sent)" and len(rx.to("/hook")) == 1

    deliver(tmp_path / "in", day(4), rows_for(day(4), first_id=9000))
    ok = run(pipeline, 4, rx)
    assert ok.status == "success" and ok.alerts[0]["event"] == "resolved"
    assert rx.to("/pd")[-1]["event_action"] == "resolve"


def test_recurring_runs_is_configurable(sales, tmp_path, rx):
    pipeline = replace(sales, alerts=channels(rx)[2:], escalation={"recurring_runs": 2})
    for n in range(2):
        deliver(tmp_path / "backup", day(n), rows_for(day(n), first_id=1 + n * 1000))
    assert run(pipeline, 0, rx).alerts == ()
    assert run(pipeline, 1, rx).alerts[0]["status"] == "recurring"


def test_a_dead_webhook_never_fails_the_run_and_is_tried_again_next_run(sales, tmp_path, rx, dead_url):
    pipeline = replace(sales, alerts=({"type": "webhook", "url": dead_url, "base_delay": 0, "timeout": 1},))
    deliver(tmp_path / "in", day(0), [r if i != 3 else [r[0], r[1], "", r[3]] for i, r in enumerate(rows_for(day(0)))])
    result = run(pipeline, 0)
    assert result.status == "partial_failure" and result.counts["loaded"] == 99
    [alert] = result.alerts
    assert not alert["sent"] and alert["event"] == "opened"
    assert alert["deliveries"][0]["ok"] is False and alert["deliveries"][0]["attempts"] == 3
    assert Ledger(open_sink(pipeline.target)).incidents(pipeline="sales")[0]["notified_at"] is None

    # Nobody was told, so the next occurrence tries again at once (no suppression window).
    both = replace(pipeline, alerts=(pipeline.alerts[0], {"type": "webhook", "url": f"{rx.url}/hook"}))
    deliver(tmp_path / "in", day(1), [r if i != 3 else [r[0], r[1], "", r[3]]
                                      for i, r in enumerate(rows_for(day(1), first_id=500))])
    retried = run(both, 1, rx)
    assert retried.status == "partial_failure"
    assert retried.alerts[0]["event"] == "re-sent" and retried.alerts[0]["sent"]
    assert [d["ok"] for d in retried.alerts[0]["deliveries"]] == [False, True]
    assert rx.to("/hook")[0]["failure_class"] == "null_critical"
