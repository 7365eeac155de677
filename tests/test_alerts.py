"""Alert channels against a real HTTP receiver on 127.0.0.1 (no mocks of our code)."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.alerts import (
    MASK,
    Alert,
    Delivery,
    Evidence,
    FileChannel,
    JsonWebhook,
    PagerDutyEvents,
    SlackWebhook,
    build_evidence,
    channels_from_config,
    mask_rows,
    redact,
    render_text,
    send_all,
)
from tests.http_receiver import Receiver
from tools.verdict import ConfigError, Criterion, Verdict

SECRET_EMAIL = "alice.secret@example.com"
SECRET_CARD = "4111111111111111"
DSN_PASSWORD = "hunter2-Pa55"


pytestmark = pytest.mark.usefixtures("no_proxy")


@pytest.fixture
def silent_url() -> Any:
    """A port that accepts connections but never answers: requests time out."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    yield f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    s.close()


def no_sleep(seconds: float) -> None:
    pass


def make_alert(**overrides: Any) -> Alert:
    evidence = build_evidence(
        failed_criteria=[
            Criterion("no_null_critical", False, observed={"customer_id": 3, "emails": [SECRET_EMAIL]},
                      expected={"customer_id": 0}, detail="quarantine the rows, then ask the sender"),
            Criterion("row_count", True, observed=100, expected=">= 1"),
        ],
        remediations=[
            Verdict(skill="quarantine-rows", passed=True),
            {"skill": "repair-schema", "failure_class": "schema_mismatch", "pass": False, "detail": "ambiguous"},
        ],
        sample_rows=[
            {"order_id": i, "email": SECRET_EMAIL, "card": SECRET_CARD, "customer_id": None, "amount": 9.5}
            for i in range(8)
        ],
        sensitive_columns=["email", "Card"],
        schema_diff={"renamed": {"Amount": "amount"}},
        next_step="fix the export upstream, then run `heal run sales`",
        run_url="https://ci.example.invalid/runs/42",
        counts={"read": 100, "loaded": 97, "quarantined": 3, "duplicates": 0},
    )
    fields: dict[str, Any] = {
        "pipeline": "sales",
        "run_id": "run-42",
        "status": "partial_failure",
        "failure_class": "null_critical",
        "summary": f"3 rows quarantined loading postgresql://etl:{DSN_PASSWORD}@db.internal:5432/wh",
        "evidence": evidence,
    }
    return Alert(**(fields | overrides))


# --- the alert and its evidence ---------------------------------------------------------------


def test_alert_defaults_and_validation() -> None:
    alert = make_alert()
    assert alert.dedup_key == "heal:sales:null_critical"
    assert (alert.action, alert.severity) == ("trigger", "error")
    assert make_alert(status="escalated").severity == "critical"
    resolved = alert.resolving(run_id="run-43")
    assert (resolved.action, resolved.status, resolved.dedup_key) == ("resolve", "resolved", alert.dedup_key)
    assert Alert.from_dict(alert.to_dict()) == alert
    assert make_alert(summary="two\nlines").summary == "two lines"
    for bad in ({"status": "failed"}, {"severity": "fatal"}, {"action": "page"}):
        with pytest.raises(ValueError, match="is not one of"):
            make_alert(**bad)


def test_build_evidence_keeps_failures_and_five_masked_rows() -> None:
    ev = make_alert().evidence
    assert [c["id"] for c in ev.failed_criteria] == ["no_null_critical"]
    assert ev.remediations[0] == {"skill": "quarantine-rows", "failure_class": None, "pass": True, "detail": ""}
    assert len(ev.sample_rows) == 5
    assert all(r["email"] == MASK and r["card"] == MASK and r["customer_id"] is None for r in ev.sample_rows)
    assert ev.failed_criteria[0]["observed"]["emails"] == [MASK]  # the raw value leaked into a criterion
    assert len(Evidence(sample_rows=[{"a": i} for i in range(9)]).sample_rows) == 5


def test_mask_rows_hides_content_and_keeps_none() -> None:
    rows = [{"Email ": "bob@x.io", "ssn": None, "id": 1}]
    assert mask_rows(rows, ["email", "SSN"]) == [{"Email ": MASK, "ssn": None, "id": 1}]
    assert rows[0]["Email "] == "bob@x.io"  # the input is not changed


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("postgresql://etl:pw@host:5432/db", "postgresql://etl:***@host:5432/db"),
        ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://postgres@127.0.0.1:5432/test"),
        ("https://api.x/v1?token=abc123&page=2", "https://api.x/v1?token=***&page=2"),
        ("api_key=zz9 password='a b' user=bob", "api_key=*** password='***' user=bob"),
        ("host=db password=s3cret dbname=wh", "host=db password=*** dbname=wh"),
        ('{"access_token": "abc", "n": 1}', '{"access_token": "***", "n": 1}'),
        ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_access_key=***"),
        ("key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY id AKIAIOSFODNN7EXAMPLE", "key *** id ***"),
        ("sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709", "sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709"),
        ("post to https://hooks.slack.com/services/T0/B0/XyZ now", "post to https://hooks.slack.com/*** now"),
        ("Authorization: Bearer abcdefghijkl", "Authorization: Bearer ***"),
        ("3 rows failed the null check", "3 rows failed the null check"),
    ],
)
def test_redact(raw: str, expected: str) -> None:
    assert redact(raw) == expected


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="abcdefXYZ0123456789-._~!$&'()*+,;=%:", min_size=1, max_size=30))
def test_redact_removes_any_dsn_password(password: str) -> None:
    assert redact(f"postgresql://etl:{password}@db:5432/wh") == "postgresql://etl:***@db:5432/wh"


def test_render_text_shows_what_failed_what_was_tried_and_next_step() -> None:
    text = render_text(make_alert())
    for needle in ("no_null_critical", 'observed {"customer_id": 3', 'expected {"customer_id": 0}',
                   "quarantine-rows (-): passed", "repair-schema (schema_mismatch): failed",
                   "Sample rows (5)", "Next step: fix the export", "read 100 · loaded 97"):
        assert needle in text
    assert DSN_PASSWORD not in text
    assert SECRET_EMAIL not in text
    assert "etl:***@db.internal" in text


# --- channels over real HTTP ------------------------------------------------------------------


def test_slack_payload_shape(rx: Receiver) -> None:
    delivery = SlackWebhook(f"{rx.url}/services/slack", sleep=no_sleep).send(make_alert())
    assert delivery == Delivery("slack", True, 1, 200)
    req = rx.requests[0]
    assert (req["method"], req["path"]) == ("POST", "/services/slack")
    assert req["headers"]["Content-Type"] == "application/json"
    body = req["json"]
    assert "Partial failure in sales" in body["text"]
    assert body["blocks"][0]["type"] == "header"
    fields = next(b["fields"] for b in body["blocks"] if "fields" in b)
    texts = "\n".join(f["text"] for f in fields)
    for needle in ("sales", "run-42", "partial_failure", "null_critical", "quarantined 3",
                   'observed {"customer_id": 3', 'expected {"customer_id": 0}', "quarantine-rows", "heal run sales"):
        assert needle in texts
    assert all(len(f["text"]) <= 2000 for f in fields)
    assert len(fields) <= 10
    rows = [b["text"]["text"] for b in body["blocks"] if "Sample rows" in b.get("text", {}).get("text", "")]
    assert rows
    assert "```" in rows[0]
    assert "order_id" in rows[0]


def test_pagerduty_trigger_then_resolve(rx: Receiver) -> None:
    rx.status = 202
    pd = PagerDutyEvents("R0UTINGKEY", f"{rx.url}/v2/enqueue", sleep=no_sleep)
    alert = make_alert(status="escalated")
    assert pd.send(alert).ok
    assert pd.send(alert.resolving(run_id="run-43")).ok
    trigger, resolve = rx.requests[0]["json"], rx.requests[1]["json"]
    assert trigger["routing_key"] == "R0UTINGKEY"
    assert trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == "heal:sales:null_critical"
    payload = trigger["payload"]
    assert payload["severity"] == "critical"
    assert payload["source"] == "heal-pipeline:sales"
    assert "null_critical" in payload["summary"]
    assert len(payload["summary"]) <= 1024
    assert payload["class"] == "null_critical"
    assert payload["component"] == "sales"
    details = payload["custom_details"]
    assert details["failed_criteria"][0]["expected"] == {"customer_id": 0}
    assert details["counts"]["quarantined"] == 3
    assert len(details["sample_rows"]) == 5
    assert resolve == {"routing_key": "R0UTINGKEY", "event_action": "resolve", "dedup_key": trigger["dedup_key"]}


def test_json_webhook_posts_the_whole_alert_with_headers(rx: Receiver) -> None:
    hook = JsonWebhook(f"{rx.url}/hook", headers={"X-Team": "data"}, sleep=no_sleep)
    assert hook.send(make_alert()).ok
    req = rx.requests[0]
    assert req["headers"]["X-Team"] == "data"
    body = req["json"]
    assert body["dedup_key"] == "heal:sales:null_critical"
    assert body["action"] == "trigger"
    assert body["evidence"]["failed_criteria"][0]["id"] == "no_null_critical"
    assert body["evidence"]["schema_diff"] == {"renamed": {"Amount": "amount"}}


def test_file_channel_appends_json_lines(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "out" / "alerts.jsonl"
    channel = FileChannel(path)
    assert channel.send(make_alert()).ok
    assert channel.send(make_alert(run_id="run-43")).ok
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["run_id"] for x in lines] == ["run-42", "run-43"]
    assert FileChannel("-").send(make_alert()).ok
    assert json.loads(capsys.readouterr().out)["pipeline"] == "sales"
    assert FileChannel("-", text=True).send(make_alert()).ok
    assert "What failed:" in capsys.readouterr().out
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    failed = FileChannel(blocked / "alerts.jsonl").send(make_alert())
    assert not failed.ok
    assert failed.error


def test_retries_500_then_succeeds(rx: Receiver) -> None:
    rx.fail_first = 2
    sleeps: list[float] = []
    delivery = JsonWebhook(f"{rx.url}/hook", base_delay=0.1, sleep=sleeps.append).send(make_alert())
    assert (delivery.ok, delivery.attempts, delivery.status) == (True, 3, 200)
    assert sleeps == [0.1, 0.2]
    assert len(rx.requests) == 3


def test_429_honours_retry_after_and_4xx_is_not_retried(rx: Receiver) -> None:
    rx.fail_first, rx.fail_status, rx.reply_headers = 1, 429, {"Retry-After": "2"}
    sleeps: list[float] = []
    assert JsonWebhook(f"{rx.url}/hook", base_delay=0.01, sleep=sleeps.append).send(make_alert()).attempts == 2
    assert sleeps == [2.0]
    rx.requests.clear()
    rx.fail_first, rx.status, rx.reply = 0, 400, b'{"error": "bad request, token=abc123"}'
    delivery = PagerDutyEvents("key", f"{rx.url}/v2/enqueue", sleep=no_sleep).send(make_alert())
    assert (delivery.ok, delivery.attempts, delivery.status) == (False, 1, 400)
    assert "token=***" in delivery.error
    assert "abc123" not in delivery.error


def test_dead_webhook_returns_quickly_without_raising(dead_url: str) -> None:
    start = time.monotonic()
    delivery = SlackWebhook(dead_url, sleep=no_sleep).send(make_alert())
    assert not delivery.ok
    assert delivery.attempts == 3
    assert delivery.status is None
    assert "refused" in delivery.error.lower()
    assert time.monotonic() - start < 2


def test_receiver_going_down_and_timeouts(rx: Receiver, silent_url: str) -> None:
    hook = JsonWebhook(f"{rx.url}/hook", attempts=2, sleep=no_sleep)
    assert hook.send(make_alert()).ok
    rx.down()
    assert not hook.send(make_alert()).ok
    start = time.monotonic()
    slow = JsonWebhook(silent_url, attempts=2, timeout=0.2, sleep=no_sleep).send(make_alert())
    assert not slow.ok
    assert slow.attempts == 2
    assert "timed out" in slow.error
    assert time.monotonic() - start < 3


def test_no_secret_reaches_any_channel(rx: Receiver, tmp_path: Any) -> None:
    rx.status = 202
    file = tmp_path / "alerts.jsonl"
    text = tmp_path / "alerts.txt"
    channels = [
        SlackWebhook(f"{rx.url}/slack", sleep=no_sleep),
        PagerDutyEvents("key", f"{rx.url}/pd", sleep=no_sleep),
        JsonWebhook(f"{rx.url}/hook", sleep=no_sleep),
        FileChannel(file),
        FileChannel(text, text=True),
    ]
    deliveries = send_all(make_alert(), channels)
    assert [d.ok for d in deliveries] == [True] * 5
    bodies = [*rx.bodies(), file.read_text(), text.read_text()]
    assert len(bodies) == 5
    for body in bodies:
        for secret in (SECRET_EMAIL, SECRET_CARD, DSN_PASSWORD):
            assert secret not in body
        assert MASK in body
        assert "postgresql://etl:***@db.internal" in body


def test_send_all_survives_a_broken_notifier(dead_url: str, tmp_path: Any) -> None:
    class Broken:
        name = "broken"

        def send(self, alert: Alert) -> Delivery:
            raise RuntimeError(f"boom at postgresql://u:{DSN_PASSWORD}@h/db")

    deliveries = send_all(make_alert(), [Broken(), SlackWebhook(dead_url, sleep=no_sleep),
                                         FileChannel(tmp_path / "a.jsonl")])
    assert [(d.channel, d.ok) for d in deliveries] == [("broken", False), ("slack", False), ("file", True)]
    assert DSN_PASSWORD not in deliveries[0].error


def test_repr_never_shows_secrets() -> None:
    assert "T0" not in repr(SlackWebhook("https://hooks.slack.com/services/T0/B0/XyZ"))
    assert "R0UT" not in repr(PagerDutyEvents("R0UTINGKEY"))


# --- configuration ----------------------------------------------------------------------------


def test_channels_from_config_builds_working_channels(rx: Receiver, tmp_path: Any) -> None:
    items = [
        {"type": "slack", "url_env": "SLACK_WEBHOOK_URL"},
        {"type": "pagerduty", "routing_key_env": "PD_ROUTING_KEY", "url": f"{rx.url}/pd", "attempts": 2},
        {"type": "webhook", "url": f"{rx.url}/hook", "headers": {"X-Team": "data"},
         "headers_env": {"Authorization": "HOOK_AUTH"}, "name": "ops-hook"},
        {"type": "file", "path": "alerts.jsonl"},
    ]
    env = {"SLACK_WEBHOOK_URL": f"{rx.url}/slack", "PD_ROUTING_KEY": "R0UTINGKEY", "HOOK_AUTH": "Bearer tok-123"}
    channels = channels_from_config(items, env, base_dir=tmp_path, sleep=no_sleep)
    assert [c.name for c in channels] == ["slack", "pagerduty", "ops-hook", "file"]
    assert all(d.ok for d in send_all(make_alert(), channels))
    by_path = {r["path"]: r for r in rx.requests}
    assert set(by_path) == {"/slack", "/pd", "/hook"}
    assert by_path["/pd"]["json"]["routing_key"] == "R0UTINGKEY"
    assert by_path["/hook"]["headers"]["Authorization"] == "Bearer tok-123"
    assert by_path["/hook"]["headers"]["X-Team"] == "data"
    assert (tmp_path / "alerts.jsonl").exists()
    assert channels_from_config(None, env) == []


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([{"type": "slack", "url_env": "MISSING_VAR"}], "environment variable MISSING_VAR"),
        ([{"type": "pagerduty", "routing_key_env": "NOPE"}], "environment variable NOPE"),
        ([{"type": "webhook", "url_env": "GONE"}], "environment variable GONE"),
        ([{"type": "webhook", "url": "http://127.0.0.1:9/h", "headers_env": {"X-Key": "ABSENT"}}], "ABSENT"),
        ([{"type": "teams", "url": "x"}], "unknown alert channel type 'teams'"),
        (["slack"], "unknown alert channel type None"),
        ([{"type": "slack", "url": "https://hooks.slack.com/services/T/B/X"}], "url is a secret"),
        ([{"type": "pagerduty", "routing_key": "abc"}], "routing_key is a secret"),
        ([{"type": "pagerduty", "routing_key_evn": "PD"}], "unknown key"),
        ([{"type": "webhook"}], "exactly one of url or url_env"),
        ([{"type": "webhook", "url": "file:///etc/passwd"}], "must be http or https"),
        ([{"type": "webhook", "url": "http://127.0.0.1:9/h", "attempts": "three"}], r"alerts\[0\] \(webhook\)"),
        ([{"type": "file"}], "needs a path"),
        ({"type": "file", "path": "-"}, "expected a list"),
    ],
)
def test_channels_from_config_errors(items: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        channels_from_config(items, {"SLACK_WEBHOOK_URL": "http://127.0.0.1:9/s"})


def test_config_error_never_echoes_the_secret() -> None:
    with pytest.raises(ConfigError) as info:
        channels_from_config([{"type": "slack", "url": "https://hooks.slack.com/services/T/B/SECRETPATH"}], {})
    assert "SECRETPATH" not in str(info.value)
