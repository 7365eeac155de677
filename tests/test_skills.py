"""Every skill's fixture cases, run through its script with --json, and bad-input handling."""

import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.skills import SkillRegistry, run_cases

REPO = Path(__file__).resolve().parent.parent
REGISTRY = SkillRegistry(REPO / "skills")


@pytest.mark.parametrize("name", REGISTRY.names())
def test_fixture_cases(name, tmp_path):
    results = run_cases(REGISTRY.get(name), tmp_dir=tmp_path)
    assert results, f"{name} has no cases"
    problems = [f"{r.name}: {'; '.join(r.problems)}" for r in results if not r.ok]
    assert not problems, "\n".join(problems)
    assert any(r.verdict and r.verdict["pass"] for r in results) or name == "health-check"
    assert any(r.verdict and not r.verdict["pass"] for r in results)


def test_the_reference_pack_is_all_there():
    assert set(REGISTRY.names()) >= {
        "fetch-file", "validate-schema", "validate-quality", "transform", "load-target", "health-check",
        "use-fallback-source", "repair-schema", "quarantine-rows", "upsert-load",
    }


def _run(skill: str, *args: str) -> subprocess.CompletedProcess:
    script = REPO / "skills" / skill / "scripts" / "check.py"
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=60)


CONTRACT = str(REPO / "pipelines" / "sales.yaml")


@pytest.mark.parametrize("skill", ["validate-schema", "validate-quality", "quarantine-rows", "transform", "repair-schema"])
@pytest.mark.parametrize("kind", ["missing", "empty", "binary", "prose"])
def test_bad_files_get_a_verdict_or_one_clear_line_never_a_traceback(skill, kind, tmp_path):
    path = tmp_path / "delivery.csv"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "binary":
        path.write_bytes(bytes(range(256)) * 40)
    elif kind == "prose":
        path.write_text("Dear customer,\nthe export failed tonight; we will resend tomorrow.\n")
    out = _run(skill, str(path), "--contract", CONTRACT, "--json")
    assert "Traceback" not in out.stderr
    assert out.returncode in (1, 2), out.stdout + out.stderr
    if out.returncode == 2:
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{skill}: error: "), out.stderr
    else:
        import json

        verdict = json.loads(out.stdout)
        assert verdict["pass"] is False and verdict["failure_class"]


def test_validate_schema_names_what_is_wrong_with_an_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    out = _run("validate-schema", str(path), "--contract", CONTRACT)
    assert out.returncode == 1
    assert "empty" in out.stdout


@pytest.mark.parametrize("name", REGISTRY.names())
def test_every_checker_has_help(name):
    out = _run(name, "--help")
    assert out.returncode == 0
    assert "--json" in out.stdout


def test_in_process_and_script_give_the_same_verdict(tmp_path):
    import duckdb

    from tools.contract import load_contract
    from tools.readers import read_delivery

    fixture = REPO / "skills" / "validate-quality" / "fixtures" / "fail_nulls.csv"
    contract = load_contract(REPO / "skills" / "validate-quality" / "fixtures" / "contract.yaml")
    module = REGISTRY.module("validate-quality")
    con = duckdb.connect()
    delivery = read_delivery(con, fixture, expected_columns=contract.names)
    direct = module.check(con, delivery.table, contract=contract).to_dict()
    import json

    script = json.loads(_run("validate-quality", str(fixture), "--contract",
                             str(fixture.parent / "contract.yaml"), "--json").stdout)
    direct.pop("duration_ms"), script.pop("duration_ms")
    assert direct == script
