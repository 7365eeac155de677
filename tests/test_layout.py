"""The layout DESIGN.md fixes, and the one-way dependency rule, enforced by reading imports."""

import ast
import re
from pathlib import Path

import pytest

from orchestrator.skills import SkillRegistry, read_frontmatter

REPO = Path(__file__).resolve().parent.parent


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_top_level_layout():
    for name in ["pyproject.toml", "README.md", "CLAUDE.md", "Makefile", ".ci/run", ".claude-plugin/plugin.json",
                 "pipelines/sales.yaml", "skills", "orchestrator", "tools", "tests"]:
        assert (REPO / name).exists(), name


@pytest.mark.parametrize("path", sorted((REPO / "tools").rglob("*.py")), ids=lambda p: p.name)
def test_tools_import_neither_orchestrator_nor_skills(path):
    assert not imports(path) & {"orchestrator", "skills"}


@pytest.mark.parametrize("path", sorted((REPO / "skills").glob("*/scripts/*.py")), ids=lambda p: p.parent.parent.name)
def test_checkers_import_only_tools_and_libraries(path):
    assert not imports(path) & {"orchestrator", "skills"}


def test_no_grab_bag_modules():
    names = {p.stem for p in REPO.rglob("*.py") if ".venv" not in p.parts}
    assert not names & {"utils", "helpers", "misc", "common"}


@pytest.mark.parametrize("name", SkillRegistry(REPO / "skills").names())
def test_skill_anatomy(name):
    folder = REPO / "skills" / name
    meta = read_frontmatter(folder / "SKILL.md")
    assert meta["name"] == name
    assert set(meta) <= {"name", "description", "license", "compatibility", "metadata", "allowed-tools"}
    assert 0 < len(meta["description"]) <= 1024 and "<" not in meta["description"] and ">" not in meta["description"]
    assert re.search(r"\bUse (when|at|after|as|right)\b", meta["description"]), "say when to use it"
    text = (folder / "SKILL.md").read_text()
    assert len(text.splitlines()) <= 150
    headings = re.findall(r"^(#{1,2} .+)$", text, re.M)
    assert headings[0] == f"# {name}"
    assert [h for h in headings[1:]] == ["## Run", "## Pass criteria", "## On failure", "## References"]
    assert (folder / "scripts" / "check.py").is_file()
    assert (folder / "fixtures" / "cases.yaml").is_file()
    for link in re.findall(r"`(references/[^`]+)`", text):
        assert (folder / link).is_file(), link


def test_every_failure_class_is_in_some_on_failure_table():
    from tools.verdict import FAILURE_CLASSES

    tables = "".join((p / "SKILL.md").read_text().split("## On failure")[1] for p in (REPO / "skills").iterdir()
                     if (p / "SKILL.md").is_file())
    missing = [fc for fc in FAILURE_CLASSES if f"`{fc}`" not in tables]
    assert not missing
