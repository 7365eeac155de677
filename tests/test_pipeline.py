from pathlib import Path

import pytest

from orchestrator.graph import REFERENCE_GRAPH
from orchestrator.pipeline import load_pipeline, parse_pipeline
from tools.verdict import ConfigError

REPO = Path(__file__).resolve().parent.parent

MINIMAL = """\
name: demo
source:
  uri: in/{date}.csv
contract:
  table: sales
  key: [id]
  columns:
    id: {type: bigint, critical: true}
target: duckdb:///x.duckdb
"""


def test_every_example_pipeline_loads():
    for path in sorted((REPO / "pipelines").glob("*.yaml")):
        assert load_pipeline(path).name


def test_sales_pipeline_is_the_reference_feed():
    p = load_pipeline(REPO / "pipelines" / "sales.yaml")
    assert [c.name for c in p.contract.columns] == ["sale_id", "date", "amount", "product_id"]
    assert p.contract.key == ("sale_id",)
    assert [c.type for c in p.contract.columns] == ["bigint", "date", "decimal", "text"]
    amount = p.contract.column("amount")
    assert (amount.min, amount.max) == (0.01, 10000)
    assert p.contract.volume_tolerance == 0.2


def test_a_pipeline_without_steps_gets_the_reference_graph():
    p = parse_pipeline(MINIMAL)
    assert list(p.steps) == list(REFERENCE_GRAPH)
    assert p.first_step == "fetch-file"
    assert p.steps["validate-schema"].on_fail["schema_mismatch"] == "repair-schema"
    assert p.steps["load-target"].on_fail["load_conflict"] == "upsert-load"


def test_a_step_can_be_tuned_without_spelling_the_graph():
    p = parse_pipeline(MINIMAL + "steps:\n  fetch-file:\n    retry: {attempts: 5, base_delay: 0.1}\n")
    assert p.steps["fetch-file"].retry.attempts == 5
    assert p.steps["fetch-file"].skill == "fetch-file"
    assert p.steps["fetch-file"].on_pass == "validate-schema"


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (MINIMAL.replace("  table: sales", "  table: sales\n  colour: red"), 6, "unknown key 'colour'"),
        (MINIMAL.replace("{type: bigint", "{type: integr"), 8, "contract.columns.id.type"),
        (MINIMAL.replace("target: duckdb:///x.duckdb", "target: mysql://x"), 9, "target"),
        (MINIMAL.replace("source:\n  uri: in/{date}.csv\n", ""), 1, "'source' is a required property"),
        (MINIMAL + "steps:\n  fetch-file:\n    retry: {attempts: zero}\n", 12, "steps.fetch-file.retry.attempts"),
    ],
)
def test_errors_name_the_key_and_the_line(text, line, words):
    with pytest.raises(ConfigError) as err:
        parse_pipeline(text, filename="p.yaml")
    assert f"p.yaml: line {line}:" in str(err.value)
    assert words in str(err.value)


def test_routes_must_go_somewhere_real():
    with pytest.raises(ConfigError, match="routes to 'nowhere'"):
        parse_pipeline(MINIMAL + "steps:\n  transform:\n    on_pass: nowhere\n")
    with pytest.raises(ConfigError, match="unknown failure class 'oops'"):
        parse_pipeline(MINIMAL + "steps:\n  transform:\n    on_fail: {oops: escalate}\n")


def test_broken_yaml_and_missing_files_are_one_clear_line():
    with pytest.raises(ConfigError, match="line 2"):
        parse_pipeline("name: x\n  bad: [\n", filename="p.yaml")
    with pytest.raises(ConfigError, match="not found"):
        load_pipeline("/no/such/pipeline.yaml")


def test_overrides_replace_source_and_target():
    p = parse_pipeline(MINIMAL).with_overrides(source="/tmp/x.csv", target="duckdb:///y.duckdb")
    assert (p.source.uri, p.source.fallback, p.target) == ("/tmp/x.csv", None, "duckdb:///y.duckdb")
