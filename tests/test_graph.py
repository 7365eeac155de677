import random

import pytest

from orchestrator.graph import CONTINUE, ESCALATE, RetryPolicy, route
from orchestrator.pipeline import parse_pipeline
from tests.test_pipeline import MINIMAL

STEPS = parse_pipeline(MINIMAL).steps


@pytest.mark.parametrize(
    ("step", "classes", "target"),
    [
        ("fetch-file", ["source_missing"], "use-fallback-source"),
        ("fetch-file", ["source_too_small"], "use-fallback-source"),
        ("fetch-file", ["checksum_mismatch"], "use-fallback-source"),
        ("fetch-file", ["transient"], "use-fallback-source"),
        ("fetch-file", ["duplicate_delivery"], ESCALATE),
        ("use-fallback-source", ["source_missing"], ESCALATE),
        ("validate-schema", ["schema_mismatch"], "repair-schema"),
        ("validate-schema", ["type_drift"], "repair-schema"),
        ("validate-schema", ["unreadable"], ESCALATE),
        ("repair-schema", ["schema_mismatch"], ESCALATE),
        ("validate-quality", ["null_critical"], "quarantine-rows"),
        ("validate-quality", ["duplicate_key"], "quarantine-rows"),
        ("validate-quality", ["out_of_range"], "quarantine-rows"),
        ("validate-quality", ["malformed_row"], "quarantine-rows"),
        ("validate-quality", ["volume_anomaly"], CONTINUE),
        ("validate-quality", ["volume_anomaly", "null_critical"], "quarantine-rows"),
        ("validate-quality", ["freshness"], ESCALATE),
        ("load-target", ["load_conflict"], "upsert-load"),
        ("load-target", ["load_failed"], ESCALATE),
        ("health-check", ["health_failed"], CONTINUE),
    ],
)
def test_each_failure_class_routes_as_the_reference_graph_says(step, classes, target):
    decision = route(STEPS[step], False, classes)
    assert decision.target == target


def test_passing_goes_on():
    assert route(STEPS["fetch-file"], True, []).target == "validate-schema"
    assert route(STEPS["health-check"], True, []).target == "done"


def test_backoff_grows_exponentially_within_jitter_and_cap():
    policy = RetryPolicy(attempts=6, base_delay=1.0, max_delay=5.0, jitter=0.1)
    rng = random.Random(3)
    delays = [policy.delay(n, rng) for n in range(1, 6)]
    for n, d in enumerate(delays, start=1):
        raw = min(5.0, 2 ** (n - 1))
        assert raw * 0.9 <= d <= raw * 1.1
    assert delays[0] < delays[1] < delays[2]


def test_retry_only_the_classes_the_policy_names_and_within_budget():
    policy = RetryPolicy(attempts=3, on=("transient",), budget_s=10)
    assert policy.should_retry("transient", 1, 0.0)
    assert not policy.should_retry("transient", 3, 0.0)
    assert not policy.should_retry("schema_mismatch", 1, 0.0)
    assert not policy.should_retry("transient", 1, 11.0)
