"""The heal CLI as a user runs it: a real process, exit codes, --json, help on every command."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DAY, deliver, rows_for

REPO = Path(__file__).resolve().parent.parent
HEAL = [sys.executable, "-m", "orchestrator.cli"]


def heal(*args, cwd=REPO):
    return subprocess.run([*HEAL, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_run_json_success_then_runs_and_show(tmp_path):
    src = deliver(tmp_path, DAY, rows_for(DAY, count=60))
    target = f"duckdb:///{tmp_path / 'x.duckdb'}"
    out = heal("run", "pipelines/sales.yaml", "--date", str(DAY), "--source", str(src), "--target", target, "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert (result["status"], result["rows_read"], result["rows_loaded"]) == ("success", 60, 60)
    listed = heal("runs", "--target", target, "--json")
    assert json.loads(listed.stdout.splitlines()[0])["run_id"] == result["run_id"]
    shown = heal("show", result["run_id"][:12], "--target", target)
    assert shown.returncode == 0 and "health-check" in shown.stdout


def test_partial_failure_and_escalation_have_their_own_exit_codes(tmp_path):
    rows = rows_for(DAY, count=60)
    rows[0][2] = ""
    src = deliver(tmp_path, DAY, rows)
    target = f"duckdb:///{tmp_path / 'x.duckdb'}"
    out = heal("run", "pipelines/sales.yaml", "--source", str(src), "--target", target, "--date", str(DAY))
    assert out.returncode == 3, out.stdout + out.stderr
    assert "partial_failure" in out.stdout and "incident" in out.stdout
    again = heal("run", "pipelines/sales.yaml", "--source", str(src), "--target", target, "--date", str(DAY))
    assert again.returncode == 4  # the same content again: held


def test_a_bad_pipeline_file_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text((REPO / "pipelines" / "sales.yaml").read_text().replace("table: sales", "table: sales\n  colour: red"))
    out = heal("run", str(bad))
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "unknown key 'colour'" in out.stderr and "line" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_bad_date_is_a_usage_error():
    out = heal("run", "pipelines/sales.yaml", "--date", "29/11/2026")
    assert out.returncode == 2 and "YYYY-MM-DD" in out.stderr


def commands():
    from orchestrator.cli import main

    return sorted(main.commands)


@pytest.mark.parametrize("command", commands())
def test_every_command_has_help_and_is_in_the_readme(command):
    out = heal(command, "--help")
    assert out.returncode == 0 and "Usage:" in out.stdout
    readme = (REPO / "README.md").read_text()
    assert f"heal {command}" in readme


def test_the_demo_command_runs_the_week(tmp_path):
    out = heal("demo", "--dir", str(tmp_path / "demo"), "--json")
    assert out.returncode == 0, out.stderr
    days = [json.loads(line) for line in out.stdout.splitlines()]
    assert [d["status"] for d in days] == [d["expected_status"] for d in days]
    assert [d["status"] for d in days] == ["success", "healed", "partial_failure", "healed", "healed", "escalated", "healed"]
    assert all(d["conserved"] for d in days)
    for d in days:
        assert d["rows_read"] == d["rows_loaded"] + d["rows_quarantined"] + d["duplicates_removed"] + d["rows_held"]
