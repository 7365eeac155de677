"""The skill registry: find skill folders, load their checkers by path, run a step.

Skills we ship are ordinary folders, loaded exactly like a user's own: nothing here knows
a skill by name. A skill is ``<root>/<name>/SKILL.md`` plus ``scripts/check.py`` with a
``run_step(ctx) -> Verdict`` (in-process, for the orchestrator) and ``main(argv) -> int``
(the script).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from tools.context import StepContext
from tools.verdict import ConfigError, Verdict

__all__ = ["CaseResult", "Skill", "SkillRegistry", "default_skills_root", "read_frontmatter", "run_cases"]


def default_skills_root() -> Path:
    """``$HEAL_SKILLS_DIR``, else the ``skills/`` folder next to the orchestrator package."""
    env = os.environ.get("HEAL_SKILLS_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "skills"


@dataclass(frozen=True)
class Skill:
    name: str
    path: Path
    description: str

    @property
    def checker(self) -> Path:
        return self.path / "scripts" / "check.py"


def read_frontmatter(skill_md: Path) -> dict[str, object]:
    """The YAML between the leading ``---`` lines of a SKILL.md (empty when there is none)."""
    text = skill_md.read_text(encoding="utf-8")
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    if not match:
        return {}
    data = yaml.safe_load(match.group(1))
    return data if isinstance(data, dict) else {}


class SkillRegistry:
    """Skills under one or more roots; a name found in an earlier root wins."""

    def __init__(self, *roots: Path) -> None:
        self.roots = tuple(Path(r) for r in (roots or (default_skills_root(),)))
        self._modules: dict[str, ModuleType] = {}

    def names(self) -> list[str]:
        found = {p.name for root in self.roots if root.is_dir() for p in root.iterdir() if (p / "SKILL.md").is_file()}
        return sorted(found)

    def get(self, name: str) -> Skill:
        for root in self.roots:
            folder = root / name
            if (folder / "SKILL.md").is_file():
                meta = read_frontmatter(folder / "SKILL.md")
                return Skill(name=name, path=folder, description=str(meta.get("description", "")))
        raise ConfigError(f"no skill named {name!r} under {', '.join(map(str, self.roots))}")

    def module(self, name: str) -> ModuleType:
        if name not in self._modules:
            skill = self.get(name)
            spec = importlib.util.spec_from_file_location(f"heal_skill_{name.replace('-', '_')}", skill.checker)
            if spec is None or spec.loader is None or not skill.checker.is_file():
                raise ConfigError(f"skill {name!r} has no scripts/check.py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            self._modules[name] = module
        return self._modules[name]

    def run_step(self, name: str, ctx: StepContext) -> Verdict:
        module = self.module(name)
        if not hasattr(module, "run_step"):
            raise ConfigError(f"skill {name!r}: scripts/check.py has no run_step(ctx)")
        return module.run_step(ctx)


@dataclass(frozen=True)
class CaseResult:
    """One fixture case of one skill: what was expected, what the checker said."""

    skill: str
    name: str
    ok: bool
    problems: tuple[str, ...]
    verdict: dict[str, Any] | None
    exit_code: int


def run_cases(skill: Skill, *, tmp_dir: Path, python: str = sys.executable) -> list[CaseResult]:
    """Run every case in ``fixtures/cases.yaml`` through the checker script with ``--json``.

    A case names ``args`` (``{fixtures}`` and ``{tmp}`` are filled in), the expected ``pass``,
    ``failure_class`` and exact ``failing`` criterion ids; optionally ``before`` (argument
    lists run first), and for a remediation ``output`` + ``fixed`` (the file its output must
    equal) + ``paired`` (a checker that must pass on that output).
    """
    cases_file = skill.path / "fixtures" / "cases.yaml"
    if not cases_file.is_file():
        raise ConfigError(f"skill {skill.name!r} has no fixtures/cases.yaml")
    spec = yaml.safe_load(cases_file.read_text(encoding="utf-8")) or {}
    results = []
    for i, case in enumerate(spec.get("cases", [])):
        work = tmp_dir / f"{skill.name}-{i}"
        work.mkdir(parents=True, exist_ok=True)

        def fill(arg: str, work: Path = work) -> str:
            return str(arg).replace("{fixtures}", str(skill.path / "fixtures")).replace("{tmp}", str(work))

        for before in case.get("before", []):
            _invoke(python, skill.checker, [fill(a) for a in before])
        code, verdict, stderr = _invoke(python, skill.checker, [fill(a) for a in case["args"]])
        problems: list[str] = []
        if verdict is None:
            problems.append(f"no JSON verdict (exit {code}): {stderr.strip()[:300]}")
        else:
            failing = sorted(c["id"] for c in verdict["criteria"] if not c["pass"])
            if verdict["pass"] != case["pass"]:
                problems.append(f"pass is {verdict['pass']}, expected {case['pass']} (failing: {failing})")
            if verdict["failure_class"] != case.get("failure_class"):
                problems.append(f"failure_class {verdict['failure_class']!r}, expected {case.get('failure_class')!r}")
            if "failing" in case and failing != sorted(case["failing"]):
                problems.append(f"failing criteria {failing}, expected {sorted(case['failing'])}")
            if code != (0 if verdict["pass"] else 1):
                problems.append(f"exit code {code} does not match the verdict")
        if "fixed" in case:
            produced = Path(fill(case["output"]))
            wanted = skill.path / "fixtures" / case["fixed"]
            if not produced.is_file() or produced.read_bytes().replace(b"\r\n", b"\n") != wanted.read_bytes():
                problems.append(f"output {produced.name} differs from fixtures/{case['fixed']}")
            elif case.get("paired"):
                paired = skill.path.parent / case["paired"] / "scripts" / "check.py"
                contract = [fill(a) for a in case["args"]][case["args"].index("--contract") + 1]
                pcode, pverdict, _ = _invoke(python, paired, [str(produced), "--contract", contract])
                if pcode != 0:
                    problems.append(f"paired checker {case['paired']} fails on the output (exit {pcode})")
        results.append(CaseResult(skill.name, case.get("name", f"case {i}"), not problems, tuple(problems),
                                  verdict, code))
    return results


def _invoke(python: str, script: Path, args: list[str]) -> tuple[int, dict[str, Any] | None, str]:
    proc = subprocess.run([python, str(script), *args, "--json"], capture_output=True, text=True, timeout=120)
    try:
        verdict = json.loads(proc.stdout) if proc.stdout.strip() else None
    except json.JSONDecodeError:
        verdict = None
    return proc.returncode, verdict, proc.stderr
