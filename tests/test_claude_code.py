"""The Claude Code pack: plugin and skill validators, permissions, /heal-pipeline run headless by
the real CLI against the scripted model server, and the CI example."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from orchestrator.skills import SkillRegistry, read_frontmatter
from tests.conftest import DAY, REPO, deliver, rows_for
from tests.model_server import (
    ScriptedModelServer,
    claude_cli_path,
    cli_env,
    reply,
    text,
    tool_result_text,
    tool_results,
    tool_use,
)

SKILLS = SkillRegistry(REPO / "skills").names()
HEAL_COMMANDS = ("run", "show", "runs", "validate")
TIMEOUT = 60


def allowed_commands() -> list[str]:
    """Exactly what the skills and /heal-pipeline need: four heal commands and each checker."""
    heal = [f"Bash({prefix}heal {c}:*)" for prefix in (".venv/bin/", "") for c in HEAL_COMMANDS]
    checks = [f"Bash({py} skills/{s}/scripts/check.py:*)" for py in (".venv/bin/python", "python") for s in SKILLS]
    return heal + checks


def cli(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "CLAUDE_CONFIG_DIR": str(home / ".claude"),
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
    return subprocess.run([str(claude_cli_path()), *args], cwd=REPO, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)


def test_the_repo_is_a_plugin_that_passes_strict_validation(tmp_path):
    done = cli(tmp_path, "plugin", "validate", ".", "--strict")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Validation passed" in done.stdout
    for name in SKILLS:
        assert f"skills: heal-pipeline:{name}" in done.stdout
    assert "commands: heal-pipeline:heal-pipeline" in done.stdout


@pytest.mark.parametrize("name", SKILLS)
def test_every_skill_passes_the_agent_skills_reference_validator(name):
    agentskills = Path(sys.executable).parent / "agentskills"
    done = subprocess.run([str(agentskills), "validate", str(REPO / "skills" / name)], capture_output=True,
                          text=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_project_skills_are_links_to_the_skill_folders():
    links = sorted(p.name for p in (REPO / ".claude" / "skills").iterdir())
    assert links == SKILLS
    for name in links:
        link = REPO / ".claude" / "skills" / name
        assert link.is_symlink() and os.readlink(link) == f"../../skills/{name}"
        assert link.resolve() == (REPO / "skills" / name).resolve()


def command_frontmatter() -> dict[str, Any]:
    return read_frontmatter(REPO / ".claude" / "commands" / "heal-pipeline.md")


def test_permissions_allow_exactly_the_commands_the_skills_need():
    settings = json.loads((REPO / ".claude" / "settings.json").read_text())
    assert settings["permissions"]["allow"] == allowed_commands()
    assert {"Bash(rm:*)", "Bash(curl:*)", "Bash(wget:*)"} <= set(settings["permissions"]["deny"])
    assert command_frontmatter()["allowed-tools"] == [*allowed_commands(), "Skill", "Read"]
    prefixes = [re.fullmatch(r"Bash\((.*):\*\)", rule).group(1) for rule in allowed_commands()]
    for name in SKILLS:  # every command a SKILL.md tells Claude to run is pre-approved
        run_section = (REPO / "skills" / name / "SKILL.md").read_text().split("## Run")[1].split("\n## ")[0]
        for command in re.findall(r"^(python skills/\S+.*)$", run_section, re.M):
            assert any(command.startswith(p + " ") for p in prefixes), command


def test_the_plugin_manifest_names_the_command():
    manifest = json.loads((REPO / ".claude-plugin" / "plugin.json").read_text())
    assert manifest["name"] == "heal-pipeline" and re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])
    for path in manifest["commands"]:
        assert (REPO / path).is_file()


def test_heal_pipeline_runs_headless_expands_the_command_lists_the_skills_and_records_the_run(tmp_path):
    delivery = deliver(tmp_path / "in", DAY, rows_for(DAY), header=["sale_id", "date", "sale_amount", "product_id"])
    target = tmp_path / "x.duckdb"
    run = f".venv/bin/heal run pipelines/sales.yaml --json --target duckdb:///{target} --source {delivery}"
    check = f".venv/bin/python skills/validate-schema/scripts/check.py {delivery} --contract pipelines/sales.yaml --json"
    outside = f"touch {tmp_path / 'pwned'}"
    seen: dict[str, Any] = {}

    def first(request):
        users = [m for m in request["messages"] if m["role"] == "user"]
        seen["prompt"] = json.dumps(users[0]["content"])
        seen["context"] = json.dumps(request["messages"]) + json.dumps(request["system"])
        return reply(tool_use("Bash", {"command": run, "description": "run the autopilot"}),
                     tool_use("Bash", {"command": check, "description": "run a checker"}),
                     tool_use("Bash", {"command": outside, "description": "not allowed"}))

    def second(request):
        seen["results"] = [(bool(b.get("is_error")), tool_result_text(b)) for b in tool_results(request)]
        return reply(text("sales: healed (repair-schema mapped sale_amount to amount)."))

    with ScriptedModelServer([first, second]) as server:
        done = cli(tmp_path / "home", "-p", "/heal-pipeline sales", "--output-format", "json",
                   "--no-session-persistence", "--max-turns", "4", env=cli_env(server.url, tmp_path / "home", max_retries=0))

    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["is_error"] is False and len(server.turn_requests) == 2
    assert "Heal the pipeline `sales`: its file is `pipelines/sales.yaml`" in seen["prompt"]  # expanded, $0 filled
    for name in SKILLS:  # listed to the model for the Skill tool, with what they are for
        description = str(read_frontmatter(REPO / "skills" / name / "SKILL.md")["description"])
        assert f"- {name}: {description[:60]}" in seen["context"].replace("\\n", "\n")
    (ran_err, ran), (checked_err, checked), (touched_err, _) = seen["results"]
    assert not ran_err and json.loads(ran[ran.index("{"):])["status"] == "healed"
    verdict = json.loads(checked[checked.index("{"):])  # exit 1: the checker ran and failed the file
    assert checked_err and (verdict["skill"], verdict["failure_class"]) == ("validate-schema", "schema_mismatch")
    assert touched_err and not (tmp_path / "pwned").exists()
    assert [d["tool_input"]["command"] for d in out["permission_denials"]] == [outside]
    con = duckdb.connect(str(target), read_only=True)
    try:
        assert con.execute("SELECT pipeline, status, rows_loaded FROM heal.runs").fetchall() == [("sales", "healed", 100)]
    finally:
        con.close()


def test_the_github_actions_example_runs_headless_with_exit_codes_and_attaches_the_report():
    workflow = yaml.safe_load((REPO / "examples" / "github-actions-heal.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert triggers["schedule"][0]["cron"] and "workflow_dispatch" in triggers
    heal, investigate = workflow["jobs"]["heal"], workflow["jobs"]["investigate"]
    assert heal["env"]["ANTHROPIC_API_KEY"] == "${{ secrets.ANTHROPIC_API_KEY }}"
    script = "\n".join(s.get("run", "") for s in heal["steps"])
    assert ".venv/bin/heal run" in script and "--agent --json" in script and 'heal "${show[@]}"' in script
    assert all(f"{code})" in script for code in (0, 3, 4, 5))
    uploads = [s for s in heal["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert uploads and uploads[0]["if"] == "always()" and "report.json" in uploads[0]["with"]["path"]
    headless = "\n".join(s.get("run", "") for s in investigate["steps"])
    assert '-p "/heal-pipeline sales' in headless and "--output-format json" in headless
    assert investigate["if"] == "failure()"


# -- heal run --agent --json, headless as in CI -------------------------------------------


HEADER = ["ref_no", "day", "value_eur", "article"]  # no synonym, no learned mapping: the autopilot escalates


def heal_cli(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / "heal"), "run", str(REPO / "pipelines" / "sales.yaml"), "--json", *args],
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)


def test_without_an_api_key_the_agent_says_what_is_missing_and_the_autopilot_result_stands(tmp_path):
    delivery = deliver(tmp_path / "in", DAY, rows_for(DAY), header=HEADER)
    env = {"HOME": str(tmp_path / "home")}  # no ANTHROPIC_* at all, and no server
    common = ["--date", str(DAY), "--source", str(delivery)]
    plain = heal_cli(tmp_path, env, *common, "--target", f"duckdb:///{tmp_path / 'a.duckdb'}")
    agent = heal_cli(tmp_path, env, *common, "--target", f"duckdb:///{tmp_path / 'b.duckdb'}", "--agent")

    assert plain.returncode == agent.returncode == 4
    assert json.loads(plain.stdout)["status"] == json.loads(agent.stdout)["status"] == "escalated"
    [line] = [x for x in agent.stderr.splitlines() if x.startswith("heal:")]  # (log lines aside)
    assert "ANTHROPIC_API_KEY" in line and "autopilot's result stands" in line
    assert json.loads(agent.stdout)["agent"] == {**json.loads(agent.stdout)["agent"], "called": False,
                                                 "outcome": "unavailable"}


def test_with_a_key_but_no_server_the_agent_fails_in_one_line_and_the_autopilot_result_stands(tmp_path):
    delivery = deliver(tmp_path / "in", DAY, rows_for(DAY), header=HEADER)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    env = {**cli_env(closed, tmp_path / "home", max_retries=0)}
    out = heal_cli(tmp_path, env, "--agent", "--date", str(DAY), "--source", str(delivery),
                   "--target", f"duckdb:///{tmp_path / 'x.duckdb'}")

    assert out.returncode == 4 and json.loads(out.stdout)["status"] == "escalated"
    [line] = [x for x in out.stderr.splitlines() if x.startswith("heal:")]
    assert "agent failed" in line and "autopilot's result stands" in line
    assert json.loads(out.stdout)["agent"]["failed"] is True


def test_known_failures_cost_zero_model_calls_through_the_cli(tmp_path):
    renamed = deliver(tmp_path / "in", DAY, rows_for(DAY), header=["sale_id", "date", "sale_amount", "product_id"])
    with ScriptedModelServer([]) as server:
        env = cli_env(server.url, tmp_path / "home", max_retries=0)
        healed = heal_cli(tmp_path, env, "--agent", "--date", str(DAY), "--source", str(renamed),
                          "--target", f"duckdb:///{tmp_path / 'x.duckdb'}")
        binary = tmp_path / "binary.csv"
        binary.write_bytes(bytes(range(256)) * 8)
        unreadable = heal_cli(tmp_path, env, "--agent", "--date", str(DAY), "--source", str(binary),
                              "--target", f"duckdb:///{tmp_path / 'y.duckdb'}")

    assert healed.returncode == 0, healed.stderr
    assert json.loads(healed.stdout)["agent"]["outcome"] == "not_needed"
    assert unreadable.returncode == 4  # not a table: held for a person by policy, not for a model
    assert json.loads(unreadable.stdout)["agent"]["outcome"] == "not_eligible"
    assert server.requests == [] and "heal:" not in unreadable.stderr
