"""`heal skill new`: the agent loop against the scripted model server, the offline template,
the path guard, and wiring a new skill into a pipeline (then running it on autopilot)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orchestrator.graph import ESCALATE
from orchestrator.pipeline import load_pipeline
from orchestrator.run import run_pipeline
from orchestrator.skillgen import (
    SkillFolder,
    add_step_to_pipeline,
    guess_failure_class,
    run_generated_test,
    skill_name_for,
)
from orchestrator.skills import SkillRegistry, lint_skill
from tests.conftest import deliver, rows_for
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
from tools.verdict import ConfigError

REPO = Path(__file__).resolve().parent.parent
SKILL = REPO / "tests" / "skills" / "amount-currency"  # what the scripted model "writes"
DESCRIPTION = "amounts now arrive with a trailing currency code like `12.50 EUR`"
WRITE, FINISH = "mcp__skillgen__write_skill_file", "mcp__skillgen__finish"
RULE = 'CODED = r"^[-+]?[0-9][0-9.,]*\\s*([A-Z]{3})$"'
WRONG_RULE = 'CODED = r"^([A-Z]{3})$"'  # the first draft only catches a bare code, not "12.50 EUR"


def heal(*args: str, env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=REPO)


def offline_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE_CODE_"))}


def model_env(server: ScriptedModelServer, home: Path) -> dict[str, str]:
    return {**offline_env(), **cli_env(server.url, home, max_retries=0)}


def draft(*, first: bool) -> dict[str, str]:
    files = {rel: (SKILL / rel).read_text() for rel in
             ("SKILL.md", "scripts/check.py", "fixtures/cases.yaml", "fixtures/pass_delivery.csv")}
    if first:
        assert RULE in files["scripts/check.py"]
        files["scripts/check.py"] = files["scripts/check.py"].replace(RULE, WRONG_RULE)
    return files


def results_by_id(request: dict[str, Any]) -> dict[str, tuple[bool, str]]:
    return {b["tool_use_id"]: (bool(b.get("is_error")), tool_result_text(b)) for b in tool_results(request)}


def test_the_loop_rejects_a_checker_that_misses_the_failure_and_accepts_the_fix(tmp_path):
    """The issue's end-to-end case: from the description, a first draft whose checker passes
    the broken fixture is rejected; the second draft is accepted; lint and its test pass."""
    writes = [tool_use(WRITE, {"path": rel, "content": body}, id=f"toolu_w{i}")
              for i, (rel, body) in enumerate(draft(first=True).items())]
    escapes = [tool_use(WRITE, {"path": "../escape.txt", "content": "x"}, id="toolu_escape"),
               tool_use(WRITE, {"path": "/tmp/abs.txt", "content": "x"}, id="toolu_abs"),
               tool_use(WRITE, {"path": "fixtures/fail_delivery.csv", "content": "x"}, id="toolu_sample")]
    seen: dict[str, Any] = {}

    def after_writes(request):
        results = results_by_id(request)
        seen["writes"] = results
        return reply(tool_use(FINISH, {"summary": "first draft"}, id="toolu_finish1"))

    def after_first_finish(request):
        seen["first"] = results_by_id(request)["toolu_finish1"]
        return reply(text("The rule missed '12.50 EUR'; fixing it."),
                     tool_use(WRITE, {"path": "scripts/check.py", "content": draft(first=False)["scripts/check.py"]}))

    def after_second_finish(request):
        seen["second"] = results_by_id(request)["toolu_finish2"]
        return reply(text("amount-currency is accepted."))

    script = [reply(text("Drafting the skill."), *writes, *escapes), after_writes, after_first_finish,
              reply(tool_use(FINISH, {"summary": "second draft"}, id="toolu_finish2")), after_second_finish]
    sample = tmp_path / "delivery-2026-11-02.csv"
    shutil.copy(SKILL / "fixtures" / "fail_delivery.csv", sample)
    skills_dir = tmp_path / "project" / "skills"
    with ScriptedModelServer(script) as server:
        out = heal("skill", "new", DESCRIPTION, "--from-file", str(sample), "--name", "amount-currency",
                   "--skills-dir", str(skills_dir), "--max-iterations", "3",
                   env=model_env(server, tmp_path / "home"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert server.remaining == 0
    tools = server.turn_requests[0]["tools"]
    assert sorted(t["name"] for t in tools) == sorted(f"mcp__skillgen__{t}" for t in (
        "write_skill_file", "read_skill_file", "delete_skill_file", "run_skill_cases", "lint_skill", "finish"))

    # The model could write only inside the new folder, and not over the user's sample.
    assert all(not err for tid, (err, _) in seen["writes"].items() if tid.startswith("toolu_w"))
    assert seen["writes"]["toolu_escape"][0] and "'..'" in seen["writes"]["toolu_escape"][1]
    assert seen["writes"]["toolu_abs"][0]
    assert seen["writes"]["toolu_sample"][0] and "sample" in seen["writes"]["toolu_sample"][1]
    assert not (tmp_path / "project" / "escape.txt").exists() and not (skills_dir / "escape.txt").exists()
    folder = skills_dir / "amount-currency"
    assert (folder / "fixtures" / "fail_delivery.csv").read_bytes() == sample.read_bytes()

    # Draft 1 rejected for the right reason; draft 2 accepted.
    is_error, first = seen["first"]
    assert is_error and first.startswith("REJECTED")
    assert "the checker passes fixtures/fail_delivery.csv, which reproduces the failure" in first
    assert seen["second"] == (False, seen["second"][1]) and seen["second"][1].startswith("ACCEPTED")
    assert "draft 1: rejected" in out.stdout and "draft 2: accepted" in out.stdout
    assert "amount-currency: accepted after 2 draft(s)" in out.stdout

    # The diff shows every new file, and what was written is the second draft.
    for rel in ("SKILL.md", "scripts/check.py", "fixtures/cases.yaml", "fixtures/pass_delivery.csv"):
        assert f"+++ b/skills/amount-currency/{rel}" in out.stdout
        assert (folder / rel).read_text() == (SKILL / rel).read_text()
    assert "+++ b/tests/test_skill_amount_currency.py" in out.stdout

    # Lint and the generated test pass on their own.
    assert lint_skill(folder) == []
    passed, output = run_generated_test(tmp_path / "project" / "tests" / "test_skill_amount_currency.py")
    assert passed, output
    assert "2 passed" in output


def test_the_iteration_cap_stops_the_loop_and_the_hook_denies_further_tools(tmp_path):
    seen: dict[str, Any] = {}

    def after_finish(request):
        seen["finish"] = results_by_id(request)["toolu_f"]
        return reply(tool_use(WRITE, {"path": "SKILL.md", "content": "late"}, id="toolu_late"))

    def after_late_write(request):
        seen["late"] = results_by_id(request)["toolu_late"]
        return reply(text("Giving up."))

    writes = [tool_use(WRITE, {"path": rel, "content": body}) for rel, body in draft(first=True).items()]
    script = [reply(*writes), reply(tool_use(FINISH, {"summary": "one"}, id="toolu_f")), after_finish,
              after_late_write]
    sample = tmp_path / "sample.csv"
    shutil.copy(SKILL / "fixtures" / "fail_delivery.csv", sample)
    skills_dir = tmp_path / "skills"
    with ScriptedModelServer(script) as server:
        out = heal("skill", "new", DESCRIPTION, "--from-file", str(sample), "--name", "amount-currency",
                   "--skills-dir", str(skills_dir), "--max-iterations", "1", "--json",
                   env=model_env(server, tmp_path / "home"))
    assert out.returncode == 1, out.stdout + out.stderr
    made = json.loads(out.stdout)
    assert made["accepted"] is False and made["iterations"] == 1 and made["mode"] == "agent"
    assert any("not accepted after 1 of 1 drafts" in n for n in made["notes"])
    assert "cap of 1 drafts is reached" in seen["finish"][1]
    assert seen["late"][0] and "cap of 1 drafts is reached: stop now" in seen["late"][1]
    assert (skills_dir / "amount-currency" / "SKILL.md").read_text() != "late"  # the hook stopped the write


def test_a_model_that_stops_without_finishing_is_judged_and_told_why(tmp_path):
    seen: dict[str, Any] = {}

    def follow_up(request):
        seen["prompt"] = request["messages"][-1]["content"]
        return reply(text("Out of ideas."))

    script = [reply(text("I think the skeleton is fine.")), follow_up]
    with ScriptedModelServer(script) as server:
        out = heal("skill", "new", DESCRIPTION, "--name", "amount-currency", "--skills-dir", str(tmp_path / "skills"),
                   "--max-iterations", "2", env=model_env(server, tmp_path / "home"))
    assert out.returncode == 1, out.stdout + out.stderr
    prompt = json.dumps(seen["prompt"])
    assert "REJECTED" in prompt and "rule_written" in prompt  # the TODO stub is named as the reason
    assert "NOT accepted after 2 draft(s)" in out.stdout


def test_a_model_error_is_exit_2_and_leaves_nothing_behind(tmp_path):
    from tests.model_server import error

    with ScriptedModelServer([error(500, "boom")]) as server:
        out = heal("skill", "new", DESCRIPTION, "--skills-dir", str(tmp_path / "skills"),
                   env=model_env(server, tmp_path / "home"))
    assert out.returncode == 2
    assert out.stderr.startswith("heal: error: the model run failed") and "boom" in out.stderr
    assert not list((tmp_path / "skills").iterdir()) and not (tmp_path / "tests").exists() or \
        not list((tmp_path / "tests").iterdir())


# -- the offline template --------------------------------------------------------------


def fill_the_todo(checker: Path) -> None:
    """What a person does: write the rule and drop the stub."""
    text = checker.read_text()
    stub = '    TODO(heal skill new): write the rule as SQL over ``table``; ``column`` narrows it to one column.\n' \
           '    """\n    return []\n'
    assert stub in text and "RULE_WRITTEN = False" in text
    rule = ('    """\n    col = quote_ident(column or "amount")\n'
            '    sql = f"SELECT _row FROM {quote_ident(table)} WHERE regexp_matches(trim({col}), \'[A-Z]{{3}}$\') '
            'ORDER BY _row"\n    return [r[0] for r in con.execute(sql).fetchall()]\n')
    checker.write_text(text.replace(stub, rule).replace("RULE_WRITTEN = False", "RULE_WRITTEN = True"))


def test_template_mode_is_lint_clean_and_its_test_fails_until_the_todo_is_filled(tmp_path):
    skills_dir = tmp_path / "skills"
    out = heal("skill", "new", DESCRIPTION, "--template", "--from-file", str(SKILL / "fixtures" / "fail_delivery.csv"),
               "--skills-dir", str(skills_dir), env=offline_env())
    assert out.returncode == 0, out.stderr
    name = skill_name_for(DESCRIPTION)
    folder, test = skills_dir / name, tmp_path / "tests" / f"test_skill_{name.replace('-', '_')}.py"
    assert "template mode" in out.stdout and "fails until you write offending_rows()" in out.stdout
    assert f"+++ b/skills/{name}/scripts/check.py" in out.stdout
    assert lint_skill(folder) == []

    passed, output = run_generated_test(test)
    assert not passed and "rule_written" in output

    fill_the_todo(folder / "scripts" / "check.py")
    passed, output = run_generated_test(test)
    assert passed, output


def test_no_api_key_falls_back_to_the_template_and_says_so(tmp_path):
    out = heal("skill", "new", DESCRIPTION, "--name", "amount-currency", "--skills-dir", str(tmp_path / "skills"),
               "--json", env=offline_env())
    assert out.returncode == 0, out.stderr
    made = json.loads(out.stdout)
    assert made["mode"] == "template" and made["accepted"] is False
    assert made["notes"][0] == "no ANTHROPIC_API_KEY in the environment: wrote the offline template instead"
    assert (tmp_path / "skills" / "amount-currency" / "fixtures" / "fail_delivery.csv").is_file()


def test_new_refuses_to_overwrite_and_checks_the_name(tmp_path):
    (tmp_path / "skills" / "taken").mkdir(parents=True)
    out = heal("skill", "new", DESCRIPTION, "--template", "--name", "taken", "--skills-dir", str(tmp_path / "skills"),
               env=offline_env())
    assert out.returncode == 2 and "already exists" in out.stderr
    out = heal("skill", "new", DESCRIPTION, "--template", "--name", "Bad_Name", "--skills-dir",
               str(tmp_path / "skills"), env=offline_env())
    assert out.returncode == 2 and "kebab-case" in out.stderr


@pytest.mark.parametrize("path", ["../x.md", "/etc/passwd", "scripts/../../x.py", "C:/x", "", "notes.txt",
                                  "SKILL.md/x", "fixtures//x.csv"])
def test_the_model_cannot_write_outside_the_skill(tmp_path, path):
    folder = SkillFolder(tmp_path / "s")
    with pytest.raises(ConfigError):
        folder.write(path, "x")


def test_the_model_can_write_the_anatomy(tmp_path):
    folder = SkillFolder(tmp_path / "s", protected=("fixtures/fail_delivery.csv",))
    for rel in ("SKILL.md", "scripts/check.py", "fixtures/pass_x.csv", "references/formats.md"):
        assert folder.write(rel, "x").is_file()
    with pytest.raises(ConfigError, match="sample"):
        folder.write("fixtures/fail_delivery.csv", "x")
    with pytest.raises(ConfigError, match="must stay"):
        folder.delete("SKILL.md")
    folder.delete("references/formats.md")
    assert folder.files() == ["SKILL.md", "fixtures/pass_x.csv", "scripts/check.py"]


def test_names_and_classes_come_from_the_description():
    assert skill_name_for(DESCRIPTION) == "check-amounts-trailing-currency"
    assert guess_failure_class(DESCRIPTION) == "type_drift"
    assert guess_failure_class("the vendor renamed a column") == "schema_mismatch"
    assert guess_failure_class("amounts suddenly arrive in cents") == "distribution_shift"
    assert guess_failure_class("something odd") == "type_drift"


# -- wiring a pipeline -----------------------------------------------------------------


def test_add_to_wires_the_skill_after_the_first_step_with_a_minimal_edit(tmp_path):
    pipeline = tmp_path / "sales.yaml"
    shutil.copy(REPO / "pipelines" / "sales.yaml", pipeline)
    old, new = add_step_to_pipeline(pipeline, "amount-currency")
    assert new.startswith(old)  # nothing rewritten, only appended
    pipeline.write_text(new)
    spec = load_pipeline(pipeline)
    assert spec.first_step == "fetch-file"
    assert spec.steps["fetch-file"].on_pass == "amount-currency"
    step = spec.steps["amount-currency"]
    assert (step.skill, step.on_pass, step.on_fail) == ("amount-currency", "validate-schema", {"*": ESCALATE})
    assert spec.steps["fetch-file"].on_fail == load_pipeline(REPO / "pipelines" / "sales.yaml").steps["fetch-file"].on_fail


def test_add_to_edits_an_existing_steps_block_in_place(tmp_path):
    pipeline = tmp_path / "p.yaml"
    base = (REPO / "pipelines" / "sales.yaml").read_text()
    pipeline.write_text(base + "\nsteps:\n    validate-schema:\n        on_pass: validate-quality   # tuned\n"
                               "        on_fail: escalate\n    fetch-file:\n        retry: {attempts: 2}\n")
    old, new = add_step_to_pipeline(pipeline, "amount-currency", after="validate-schema")
    changed = [line for line in new.splitlines() if line not in old.splitlines()]
    assert changed[0] == "        on_pass: amount-currency"
    assert all(line.startswith("    ") for line in changed)
    pipeline.write_text(new)
    spec = load_pipeline(pipeline)
    assert spec.steps["validate-schema"].on_pass == "amount-currency"
    assert spec.steps["amount-currency"].on_pass == "validate-quality"
    assert spec.steps["fetch-file"].retry.attempts == 2
    with pytest.raises(ConfigError, match="already has a step"):
        add_step_to_pipeline(pipeline, "amount-currency")
    with pytest.raises(ConfigError, match="no step 'nope'"):
        add_step_to_pipeline(pipeline, "other", after="nope")


def test_a_wired_skill_runs_in_the_autopilot_and_escalates_the_failure(sales, tmp_path):
    """The generated shape works in a real run: after fetch-file, the new step stops a
    delivery whose amounts carry a currency code before anything is loaded."""
    pipeline = tmp_path / "sales.yaml"
    shutil.copy(REPO / "pipelines" / "sales.yaml", pipeline)
    pipeline.write_text(add_step_to_pipeline(pipeline, "amount-currency")[1])
    wired = load_pipeline(pipeline)
    spec = replace(sales, steps=wired.steps)
    day = dt.date(2026, 11, 2)
    rows = rows_for(day, count=20)
    rows[3][2] = f"{rows[3][2]} EUR"
    deliver(tmp_path / "in", day, rows)
    result = run_pipeline(spec, run_date=day, skills=SkillRegistry(REPO / "tests" / "skills", REPO / "skills"),
                          sleep=lambda s: None)
    assert result.status == "escalated", result.summary
    last = result.steps[-1]
    assert (last["step"], last["failure_class"]) == ("amount-currency", "type_drift")


def test_the_new_skill_command_expands_in_claude_code(tmp_path):
    """`/new-skill DESCRIPTION` in the real Claude Code CLI becomes the command's instructions."""
    with ScriptedModelServer([reply(text("ok"))]) as server:
        env = {"PATH": os.environ["PATH"], **cli_env(server.url, tmp_path / "home", max_retries=0)}
        out = subprocess.run([str(claude_cli_path()), "-p", f"/new-skill {DESCRIPTION}", "--no-session-persistence",
                              "--output-format", "json", "--max-turns", "1"], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    prompt = "".join(block.get("text", "") for m in server.turn_requests[0]["messages"] if m["role"] == "user"
                     for block in (m["content"] if isinstance(m["content"], list) else [{"text": m["content"]}]))
    assert f"Add a skill that catches this failure: {DESCRIPTION}" in prompt
    for command in ("heal skill new", "heal skill test", "heal skill lint", "pytest -q tests/test_skill_"):
        assert command in prompt
