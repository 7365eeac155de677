"""`heal skill lint`: the whole pack lints clean, and each rule catches a broken copy of the
throwaway skill in tests/skills/ with a message that names the file, the line and the fix."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from skills_ref.validator import validate as reference_validate

from orchestrator.cli import main
from orchestrator.skills import LintProblem, SkillRegistry, lint_pack, lint_skill

REPO = Path(__file__).resolve().parent.parent
GOOD = REPO / "tests" / "skills" / "amount-currency"
PACK = SkillRegistry(REPO / "skills").names()
# health-check can pass only against a target that a run has loaded (tests/test_run.py covers
# that), so its cases.yaml should waive the rule with `no_passing_case: <why>`. Until it does,
# that one problem is expected.
WAIVABLE = {"skills/health-check/fixtures/cases.yaml:1: no passing case: add a healthy fixture, "
            "or say why with 'no_passing_case: <reason>'"}


@pytest.fixture(scope="module")
def pack_problems() -> list[str]:
    return [p.format(relative_to=REPO) for p in lint_pack(REPO / "skills")]


@pytest.mark.parametrize("name", PACK)
def test_every_skill_in_the_pack_lints_clean(pack_problems, name):
    mine = [p for p in pack_problems if p.startswith(f"skills/{name}/") and p not in WAIVABLE]
    assert not mine, "\n".join(mine)


def test_the_throwaway_skill_is_clean_here_and_for_the_reference_validator():
    assert lint_skill(GOOD) == []
    assert reference_validate(GOOD) == []


# -- each rule, on a broken copy -------------------------------------------------------


def edit(rel: str, old: str, new: str) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / rel
        text = path.read_text()
        assert old in text, f"{old!r} not in {rel}"
        path.write_text(text.replace(old, new, 1))
    return apply


def write(rel: str, content: str) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(content)
    return apply


def delete(rel: str) -> Callable[[Path], None]:
    return lambda folder: (folder / rel).unlink()


DESCRIPTION = next(line for line in (GOOD / "SKILL.md").read_text().splitlines() if line.startswith("description:"))
FAIL_CASE = """  - name: amounts with a trailing currency code
    args: ["{fixtures}/fail_delivery.csv"]
    pass: false
    failure_class: type_drift
    failing: [amounts_plain]
"""
PASS_CASE = """  - name: plain amounts
    args: ["{fixtures}/pass_delivery.csv"]
    pass: true
"""

# (id, how to break it, the problem expected as "path:line: message" relative to the pack folder)
STATIC = [
    ("description too long", edit("SKILL.md", DESCRIPTION, "description: Use when x. " + "y" * 1088),
     "amount-currency/SKILL.md:3: description is 1100 characters; the limit is 1024"),
    ("angle brackets", edit("SKILL.md", "such as 12.50 EUR", "like <12.50 EUR>"),
     "amount-currency/SKILL.md:3: description contains '<' or '>', which are not allowed"),
    ("does not say when", edit("SKILL.md", "Use when amounts stop", "It helps when amounts stop"),
     "amount-currency/SKILL.md:3: description does not say when to use the skill: add 'Use when ...'"),
    ("unknown key", edit("SKILL.md", "name: amount-currency\n", "name: amount-currency\nversion: 2\n"),
     "amount-currency/SKILL.md:3: unknown frontmatter key 'version'; portable keys are name, description, license, "
     "compatibility, metadata, allowed-tools"),
    ("name is not the folder", edit("SKILL.md", "name: amount-currency", "name: amount-currencies"),
     "amount-currency/SKILL.md:2: name is 'amount-currencies' but the folder is 'amount-currency'; they must be equal"),
    ("name not kebab-case", edit("SKILL.md", "name: amount-currency", "name: Amount_Currency"),
     "amount-currency/SKILL.md:2: name 'Amount_Currency' is not kebab-case (a-z, 0-9, single hyphens)"),
    ("no frontmatter", edit("SKILL.md", "---\nname", "name"),
     "amount-currency/SKILL.md:1: no frontmatter: open with '---', then name and description, then '---'"),
    ("over 500 lines", edit("SKILL.md", "## References\n", "## References\n" + "- more\n" * 470),
     "amount-currency/SKILL.md:508: SKILL.md has 508 lines; the limit is 500: move detail to references/"),
    ("over the pack's 150 lines", edit("SKILL.md", "## References\n", "## References\n" + "- more\n" * 120),
     "amount-currency/SKILL.md:158: warning: SKILL.md has 158 lines; this pack keeps them to 150"),
    ("sections out of order", lambda f: (edit("SKILL.md", "## Pass criteria", "## TMP")(f),
                                         edit("SKILL.md", "## On failure", "## Pass criteria")(f),
                                         edit("SKILL.md", "## TMP", "## On failure")(f)),
     "amount-currency/SKILL.md:24: found '## On failure' where '## Pass criteria' belongs; the sections are "
     "# amount-currency, ## Run, ## Pass criteria, ## On failure, ## References, in that order"),
    ("a section missing", edit("SKILL.md", "## References\n", "### References\n"),
     "amount-currency/SKILL.md:38: no '## References' section; the sections are # amount-currency, ## Run, "
     "## Pass criteria, ## On failure, ## References, in that order"),
    ("an extra section", edit("SKILL.md", "## References\n", "## References\n\n## Notes\n"),
     "amount-currency/SKILL.md:38: unexpected heading '## Notes' after '## References' (use ### inside a section)"),
    ("a linked reference is missing", edit("SKILL.md", "- `fixtures/cases.yaml`", "- `references/formats.md`: read it "
                                           "for other formats.\n- `fixtures/cases.yaml`"),
     "amount-currency/SKILL.md:38: links references/formats.md, which does not exist"),
    ("a reference is not linked", write("references/formats.md", "# formats\n"),
     "amount-currency/references/formats.md: not linked from SKILL.md: link references/formats.md and say when "
     "to read it"),
    ("references nested", lambda f: (write("references/deep/x.md", "x")(f),
                                     edit("SKILL.md", "## References\n", "## References\n\n- `references/deep/x.md`\n")(f)),
     "amount-currency/references/deep/x.md: references are one level deep: move it up to references/"),
    ("no checker", delete("scripts/check.py"), "amount-currency/scripts/check.py: missing: every skill has scripts/check.py"),
    ("checker does not parse", edit("scripts/check.py", "def check(", "def check(("),
     "amount-currency/scripts/check.py:36: does not parse: invalid syntax"),
    ("no usage docstring", edit("scripts/check.py", "\nUsage:", "\nExamples:"),
     "amount-currency/scripts/check.py:1: no usage docstring: one line on what it checks, then 'Usage:' with two "
     "command lines"),
    ("no main guard", edit("scripts/check.py", 'if __name__ == "__main__":\n    sys.exit(main())', "main()"),
     "amount-currency/scripts/check.py:80: no `if __name__ == \"__main__\":` guard at the end"),
    ("imports the orchestrator", edit("scripts/check.py", "import duckdb\n", "import duckdb\nfrom orchestrator.skills "
                                      "import Skill\n"),
     "amount-currency/scripts/check.py:16: imports orchestrator.skills: a checker imports only the stdlib, tools "
     "and libraries, never the orchestrator or another skill"),
    ("no cases", delete("fixtures/cases.yaml"),
     "amount-currency/fixtures/cases.yaml: missing: list at least one passing and one failing case in "
     "fixtures/cases.yaml"),
    ("no passing case", edit("fixtures/cases.yaml", PASS_CASE, ""),
     "amount-currency/fixtures/cases.yaml:1: no passing case: add a healthy fixture, or say why with "
     "'no_passing_case: <reason>'"),
    ("no failing case", edit("fixtures/cases.yaml", FAIL_CASE, ""),
     "amount-currency/fixtures/cases.yaml:1: no failing case: add one whose fixture reproduces the failure"),
    ("a class outside the vocabulary", edit("fixtures/cases.yaml", "failure_class: type_drift", "failure_class: currency"),
     "amount-currency/fixtures/cases.yaml:3: case 'amounts with a trailing currency code': failure_class 'currency' "
     "is not one of tools.verdict.FAILURE_CLASSES"),
    ("a fixture file missing", delete("fixtures/pass_delivery.csv"),
     "amount-currency/fixtures/cases.yaml:8: case 'plain amounts': fixtures/pass_delivery.csv does not exist"),
    ("cases.yaml is not YAML", write("fixtures/cases.yaml", "cases:\n  - name: [unclosed\n"),
     "amount-currency/fixtures/cases.yaml:3: not valid YAML: expected ',' or ']', but got '<stream end>'"),
]


def broken_copy(tmp_path: Path, breakage: Callable[[Path], object]) -> Path:
    folder = tmp_path / "amount-currency"
    shutil.copytree(GOOD, folder, ignore=shutil.ignore_patterns("__pycache__"))
    breakage(folder)
    return folder


def problems(folder: Path, **options: object) -> list[str]:
    return [p.format(relative_to=folder.parent) for p in lint_skill(folder, **options)]


@pytest.mark.parametrize(("breakage", "expected"), [s[1:] for s in STATIC], ids=[s[0] for s in STATIC])
def test_each_static_rule_names_the_file_the_line_and_the_fix(tmp_path, breakage, expected):
    assert expected in problems(broken_copy(tmp_path, breakage), run=False)


def test_a_waived_passing_case_and_a_hash_in_a_code_block_are_fine(tmp_path):
    def breakage(folder: Path) -> None:
        edit("fixtures/cases.yaml", PASS_CASE, "")(folder)
        edit("fixtures/cases.yaml", "cases:\n", "no_passing_case: only a real target can pass\ncases:\n")(folder)
        edit("SKILL.md", "```bash\n", "```bash\n# a comment, not a heading\n")(folder)
    assert problems(broken_copy(tmp_path, breakage), run=False) == []


# Rules that need the checker run: each lint here imports it, runs --help and every case.
RUNTIME = [
    ("cannot be imported", edit("scripts/check.py", "import duckdb\n", "import duckdb\nimport no_such_module_xyz\n"),
     ["amount-currency/scripts/check.py: cannot be imported: ModuleNotFoundError: No module named "
      "'no_such_module_xyz'"]),
    ("no run_step and no --json", lambda f: (edit("scripts/check.py", "def run_step(", "def run_stage(")(f),
                                             edit("scripts/check.py", '"--json", action', '"--as-json", action')(f)),
     ["amount-currency/scripts/check.py: has no run_step() (for the orchestrator)",
      "amount-currency/scripts/check.py: --help does not offer --json (print exactly one verdict)"]),
    ("an invalid verdict", edit("scripts/check.py", "    return finish(", "    print('{\"skill\": \"amount-currency\", "
                                "\"pass\": \"yes\"}')\n    return 0\n    return finish("),
     ["amount-currency/fixtures/cases.yaml: case 'plain amounts': verdict invalid at (root): 'criteria' is a required "
      "property"]),
    ("verdict names another skill and exits 0 on a fail", lambda f: (
        edit("scripts/check.py", 'SKILL = "amount-currency"', 'SKILL = "amount-currencies"')(f),
        edit("scripts/check.py", "    return finish(", "    finish(verdict, as_json=args.json)\n    return 0\n"
             "    return finish(")(f)),
     ["amount-currency/fixtures/cases.yaml: case 'plain amounts': the verdict names skill 'amount-currencies', not "
      "'amount-currency'",
      "amount-currency/fixtures/cases.yaml: case 'amounts with a trailing currency code': exit code 0 with a failing "
      "verdict (0 pass, 1 fail)"]),
    ("undocumented criterion and class", lambda f: (
        edit("SKILL.md", "| `amounts_plain` |", "| `plain_amounts` |")(f),
        edit("SKILL.md", "| `type_drift` |", "| `out_of_range` |")(f)),
     ["amount-currency/SKILL.md: criterion `amounts_plain` is not explained under '## Pass criteria' (seen in case "
      "'amounts with a trailing currency code')",
      "amount-currency/SKILL.md: failure_class `type_drift` is not in the '## On failure' table (seen in case "
      "'amounts with a trailing currency code')"]),
]


@pytest.mark.parametrize(("breakage", "expected"), [s[1:] for s in RUNTIME], ids=[s[0] for s in RUNTIME])
def test_each_runtime_rule_runs_the_checker_and_names_the_case(tmp_path, breakage, expected):
    found = problems(broken_copy(tmp_path, breakage))
    for line in expected:
        assert line in found, "\n".join(found)


def test_a_checker_that_hangs_is_a_problem_not_a_hang(tmp_path):
    folder = broken_copy(tmp_path, edit("scripts/check.py", "import duckdb\n", "import duckdb\nimport time\n"
                                        "time.sleep(30)\n"))
    found = problems(folder, timeout=1)
    assert "amount-currency/scripts/check.py: import timed out after 1s" in found


def test_problems_carry_a_level_and_render_as_json():
    p = LintProblem(Path("skills/x/SKILL.md"), 3, "description is 1100 characters; the limit is 1024")
    assert str(p) == "skills/x/SKILL.md:3: description is 1100 characters; the limit is 1024"
    assert p.to_dict() == {"path": "skills/x/SKILL.md", "line": 3, "level": "error",
                           "message": "description is 1100 characters; the limit is 1024"}


# -- the commands ------------------------------------------------------------------------


def heal(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_lint_command_exit_codes(tmp_path):
    assert heal("skill", "lint", str(GOOD)).exit_code == 0
    broken = broken_copy(tmp_path, STATIC[0][1])
    out = heal("skill", "lint", str(broken), "--no-run")
    assert out.exit_code == 1
    assert f"{broken}/SKILL.md:3: description is 1100 characters; the limit is 1024" in out.stdout
    out = heal("skill", "lint", str(tmp_path), "--no-run", "--json")  # a folder of skills
    assert out.exit_code == 1 and json.loads(out.stdout)["ok"] is False
    missing = heal("skill", "lint", str(tmp_path / "nope"))
    assert missing.exit_code == 2 and "no such folder" in missing.stderr


def test_lint_warnings_fail_only_with_strict(tmp_path):
    folder = broken_copy(tmp_path, STATIC[8][1])  # 158 lines
    assert heal("skill", "lint", str(folder), "--no-run").exit_code == 0
    assert heal("skill", "lint", str(folder), "--no-run", "--strict").exit_code == 1
    assert heal("skill", "lint", str(folder), "--no-run", "--max-lines", "200", "--strict").exit_code == 0


def test_test_command_prints_each_verdict(tmp_path):
    out = heal("skill", "test", "amount-currency", "--skills-dir", str(GOOD.parent))
    assert out.exit_code == 0, out.stdout
    assert re.search(r"ok\s+amounts with a trailing currency code: FAIL type_drift \(amounts_plain\)", out.stdout)
    assert "amount-currency: 2 of 2 cases as expected" in out.stdout
    as_json = json.loads(heal("skill", "test", str(GOOD), "--json").stdout)
    assert [(c["case"], c["ok"], c["verdict"]["pass"]) for c in as_json] == [
        ("amounts with a trailing currency code", True, False), ("plain amounts", True, True)]

    wrong = broken_copy(tmp_path, edit("fixtures/cases.yaml", "failure_class: type_drift", "failure_class: out_of_range"))
    out = heal("skill", "test", str(wrong))
    assert out.exit_code == 1
    assert "failure_class 'type_drift', expected 'out_of_range'" in out.stdout
    assert heal("skill", "test", "no-such-skill", "--skills-dir", str(GOOD.parent)).exit_code == 2
