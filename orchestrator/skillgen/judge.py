"""Judge a drafted skill: the gates a draft must pass, and the folder the model may write in."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from orchestrator.skills import CaseResult, LintProblem, lint_and_run_cases
from tools.verdict import ConfigError

__all__ = ["Evaluation", "SkillFolder", "evaluate_skill", "run_generated_test"]


class SkillFolder:
    """The new skill's folder: every path the model names must resolve inside it."""

    TOP = ("SKILL.md", "scripts", "fixtures", "references")

    def __init__(self, path: Path, *, protected: tuple[str, ...] = ()) -> None:
        self.path = path
        self.protected = protected  # e.g. the user's sample: the model may not rewrite it

    def resolve(self, rel: str) -> Path:
        """The absolute path of ``rel``; ConfigError for absolute, ``..`` or outside paths."""
        parts = rel.replace("\\", "/").split("/")
        if not rel or rel.startswith("/") or re.match(r"^[A-Za-z]:", rel) or ".." in parts or "" in parts:
            raise ConfigError(f"{rel!r}: give a relative path inside the skill folder, without '..'")
        if parts[0] not in self.TOP or (parts[0] == "SKILL.md") != (len(parts) == 1):
            raise ConfigError(f"{rel!r}: a skill holds only SKILL.md, scripts/, fixtures/ and references/")
        target = (self.path / rel).resolve()
        if not target.is_relative_to(self.path.resolve()):
            raise ConfigError(f"{rel!r} resolves outside the skill folder")
        return target

    def write(self, rel: str, content: str) -> Path:
        if rel in self.protected:
            raise ConfigError(f"{rel} is the user's sample of the failure: keep it, write a healthy fixture instead")
        target = self.resolve(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
        return target

    def delete(self, rel: str) -> None:
        target = self.resolve(rel)
        if rel in self.protected or rel in ("SKILL.md", "scripts/check.py", "fixtures/cases.yaml"):
            raise ConfigError(f"{rel} must stay: rewrite it instead")
        if not target.is_file():
            raise ConfigError(f"{rel}: no such file")
        target.unlink()

    def files(self) -> list[str]:
        return sorted(p.relative_to(self.path).as_posix() for p in self.path.rglob("*")
                      if p.is_file() and "__pycache__" not in p.parts)


@dataclass(frozen=True)
class Evaluation:
    """Whether a draft is accepted, and why not, phrased for the model and a person."""

    accepted: bool
    reasons: tuple[str, ...]
    cases: tuple[CaseResult, ...] = ()
    lint: tuple[LintProblem, ...] = ()

    def report(self) -> str:
        head = "ACCEPTED: stop now." if self.accepted else "REJECTED: fix these, then call finish again:"
        lines = [head, *(f"- {r}" for r in self.reasons)]
        if self.cases:
            lines.append("fixture cases:")
        for c in self.cases:
            v = c.verdict or {}
            failing = [x["id"] for x in v.get("criteria", []) if not x.get("pass")]
            got = "no verdict" if not v else "pass" if v.get("pass") else f"fail {v.get('failure_class')} {failing}"
            lines.append(f"  {c.name}: {got}" + ("" if c.ok else f" -- {'; '.join(c.problems)}"))
        return "\n".join(lines)


def evaluate_skill(folder: Path, *, test_path: Path | None = None, sample: str | None = None,
                   python: str = sys.executable) -> Evaluation:
    """Judge a drafted skill folder; every reason it is not accepted, phrased as the fix.

    Accepted when the lint has no errors; every fixture case gives its expected verdict; the
    checker fails on each ``fixtures/fail_*`` case (with a data class, not ``transient``) and
    passes on each ``fixtures/pass_*`` (or ``fixed_*``) one; the user's ``sample`` is among the
    failing cases; ``check()`` exists; and, checked last, the generated test passes.
    """
    found, results = lint_and_run_cases(folder, python=python)
    lint = tuple(p for p in found if p.level == "error")
    reasons = [p.format(relative_to=folder.parent) for p in lint]
    cases = yaml.safe_load((folder / "fixtures" / "cases.yaml").read_text(encoding="utf-8"))["cases"] if results else []
    reasons += [f"case {r.name!r}: {'; '.join(r.problems)}" for r in results if not r.ok]
    broken, healthy = [], []
    for case, r in zip(cases, results):
        kind, name = _fixture_of(case)
        if kind:
            (broken if kind == "fail" else healthy).append((name, r.verdict))
    if not results:
        reasons.append("the fixture cases did not run: fix the problems above first")
    elif not broken:
        reasons.append("no case runs a fixtures/fail_* file: add the one that reproduces the failure")
    if results and not healthy:
        reasons.append("no case runs a fixtures/pass_* file: add a healthy delivery")
    for name, v in broken:
        if v and v.get("pass"):
            reasons.append(f"the checker passes fixtures/{name}, which reproduces the failure: it must fail there")
        elif v and v.get("failure_class") == "transient":
            reasons.append(f"fixtures/{name} fails as 'transient' (a retry may help); name the data failure instead")
    for name, v in healthy:
        if v and not v.get("pass"):
            failing = [c["id"] for c in v.get("criteria", []) if not c.get("pass")]
            reasons.append(f"the checker fails fixtures/{name}, which is healthy ({', '.join(failing)}): it must pass")
    if results and sample and sample.removeprefix("fixtures/") not in [n for n, _ in broken]:
        reasons.append(f"no failing case runs {sample}, the user's sample of the failure")
    if not _defines_check(folder / "scripts" / "check.py"):
        reasons.append("scripts/check.py has no importable check(...) -> Verdict for run_step and main to call")
    if not reasons and test_path is not None:
        ok, output = run_generated_test(test_path, python=python)
        if not ok:
            reasons.append(f"the generated test {test_path.name} fails:\n{output}")
    return Evaluation(not reasons, tuple(reasons), tuple(results), lint)


def run_generated_test(test_path: Path, *, python: str = sys.executable, timeout: float = 120.0) -> tuple[bool, str]:
    """Run the generated pytest file in a fresh interpreter; (passed, the tail of its output).

    It needs no pytest plugins, and autoloading them costs seconds per draft, so they are off.
    """
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    try:
        proc = subprocess.run([python, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", str(test_path)],
                              capture_output=True, text=True, timeout=timeout, cwd=test_path.parent.parent, env=env)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:g}s"
    return proc.returncode == 0, "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])


def _fixture_of(case: dict[str, Any]) -> tuple[str, str]:
    for arg in case.get("args", []):
        m = re.search(r"\{fixtures\}/((pass|fail|fixed)_[^\s,;]*)", str(arg))
        if m:
            return m.group(2), m.group(1)
    return "", ""


def _defines_check(checker: Path) -> bool:
    try:
        tree = ast.parse(checker.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return False
    return any(isinstance(n, ast.FunctionDef) and n.name == "check" for n in tree.body)


