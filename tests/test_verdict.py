import json
import subprocess
import sys

import pytest

from tools.verdict import FAILURE_CLASSES, Criterion, Verdict, VerdictInvalid, validate_verdict, verdict_schema


def good() -> dict:
    return Verdict.from_criteria(
        "validate-quality",
        [Criterion("no_null_critical", False, {"null_critical:amount": 2}, 0, "quarantine")],
        failure_classes={"no_null_critical": "null_critical"},
    ).to_dict()


def test_a_built_verdict_is_valid_and_round_trips():
    data = good()
    validate_verdict(data)
    assert Verdict.from_dict(json.loads(json.dumps(data))).to_dict() == data
    assert data["failure_class"] == "null_critical"
    assert data["metrics"]["failure_classes"] == ["null_critical"]


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d.pop("skill"),
        lambda d: d.update(failure_class="not_a_class"),
        lambda d: d.update({"pass": True}),  # passing with a failure class
        lambda d: d.update(failure_class=None),  # failing without one
        lambda d: d["criteria"][0].pop("observed"),
        lambda d: d.update(skill="Not A Name"),
        lambda d: d.update(duration_ms=-1),
        lambda d: d.update(extra=1),
        lambda d: d["criteria"][0].update(samples=list(range(21))),
    ],
)
def test_the_schema_rejects_malformed_verdicts(breakage):
    data = good()
    breakage(data)
    with pytest.raises(VerdictInvalid):
        validate_verdict(data)


def test_the_vocabulary_and_the_schema_agree():
    enum = verdict_schema()["properties"]["failure_class"]["oneOf"][1]["enum"]
    assert sorted(enum) == sorted(FAILURE_CLASSES)


def test_first_failing_criterion_names_the_class():
    v = Verdict.from_criteria(
        "x", [Criterion("a", True), Criterion("b", False), Criterion("c", False)],
        failure_classes={"a": "transient", "b": "out_of_range", "c": "volume_anomaly"},
    )
    assert (v.passed, v.failure_class, v.failure_classes) == (False, "out_of_range", ["out_of_range", "volume_anomaly"])


def test_verdict_schema_ships_with_the_installed_package():
    out = subprocess.run([sys.executable, "-c", "from tools.verdict import verdict_schema; print(verdict_schema()['title'])"],
                         capture_output=True, text=True, cwd="/")
    assert out.stdout.strip() == "Verdict"
