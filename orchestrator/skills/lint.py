"""Lint a skill folder: its anatomy (frontmatter, sections, links, files) and, by running the
checker, its verdict contract. Problems name ``path:line`` and the fix; ``warning`` marks the
pack's house limits that go past the portable Agent Skills ones."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from orchestrator.skills.cases import CaseResult, run_cases
from orchestrator.skills.registry import Skill
from tools.verdict import FAILURE_CLASSES, ConfigError, VerdictInvalid, validate_verdict

__all__ = ["MAX_SKILL_LINES", "PACK_SKILL_LINES", "LintProblem", "lint_and_run_cases", "lint_pack", "lint_skill"]

MAX_SKILL_LINES = 500  # the Agent Skills limit for a SKILL.md: past it is an error
PACK_SKILL_LINES = 150  # this pack keeps them shorter: past it is a warning
_KEYS = ("name", "description", "license", "compatibility", "metadata", "allowed-tools")
_SECTIONS = ("## Run", "## Pass criteria", "## On failure", "## References")
_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_WHEN = re.compile(r"\bUse (it )?(when|at|after|as|right|before|if|on|for)\b")
_ANY = re.compile(r"^\|\s*(any( other)?|`?\*`?)\s*\|", re.M | re.I)  # an On failure row for every other class
_LINKS = re.compile(r"`(references/[^`\s]+)`|\]\((?!https?:|#|mailto:)([^)\s]+)\)")
_PROBE = (
    "import importlib.util, sys\n"
    "spec = importlib.util.spec_from_file_location('heal_lint_probe', sys.argv[1])\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "sys.modules[spec.name] = module\n"
    "spec.loader.exec_module(module)\n"
    "print(' '.join(n for n in ('run_step', 'main') if not callable(getattr(module, n, None))))\n"
)


@dataclass(frozen=True)
class LintProblem:
    """One thing wrong with a skill folder, located as ``path:line`` and phrased as the fix."""

    path: Path
    line: int | None
    message: str
    level: str = "error"  # or "warning": this pack's house limits, past the portable ones

    def format(self, *, relative_to: Path | None = None) -> str:
        path = self.path
        if relative_to is not None and path.is_absolute() and path.is_relative_to(relative_to):
            path = path.relative_to(relative_to)
        where = f"{path}:{self.line}" if self.line else str(path)
        return f"{where}: {'warning: ' if self.level == 'warning' else ''}{self.message}"

    def __str__(self) -> str:
        return self.format()

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "line": self.line, "message": self.message, "level": self.level}


class _Found(list):
    def add(self, path: Path, line: int | None, message: str, level: str = "error") -> None:
        self.append(LintProblem(path, line, message, level))


def lint_skill(path: str | Path, *, soft_lines: int = PACK_SKILL_LINES, run: bool = True,
               python: str = sys.executable, timeout: float = 60.0) -> list[LintProblem]:
    """Every anatomy and contract problem of the skill folder ``path`` (empty when clean).

    ``run=False`` keeps to reading files; otherwise the checker is imported, run with
    ``--help``, and run on each fixture case, whose verdicts must be valid. Whether the
    verdicts are the *expected* ones is :func:`run_cases`' job (``heal skill test``).
    """
    return lint_and_run_cases(path, soft_lines=soft_lines, run=run, python=python, timeout=timeout)[0]


def lint_pack(root: str | Path, *, soft_lines: int = PACK_SKILL_LINES, run: bool = True,
              python: str = sys.executable, timeout: float = 60.0) -> list[LintProblem]:
    """:func:`lint_skill` for every folder under ``root``, a few at a time."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: no such folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        found = pool.map(lambda f: lint_skill(f, soft_lines=soft_lines, run=run, python=python, timeout=timeout),
                         folders)
        return [p for problems in found for p in problems]


def lint_and_run_cases(path: str | Path, *, soft_lines: int = PACK_SKILL_LINES, run: bool = True,
                       python: str = sys.executable, timeout: float = 60.0) -> tuple[list[LintProblem], list[CaseResult]]:
    """:func:`lint_skill`, plus the fixture case results it ran (empty when it could not run them)."""
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such folder")
    found = _Found()
    skill_md = folder / "SKILL.md"
    if not skill_md.is_file():
        found.add(skill_md, None, "missing: every skill folder has a SKILL.md")
        return found, []
    text = skill_md.read_text(encoding="utf-8", errors="replace")
    meta = _lint_frontmatter(folder, text, found)
    sections = _lint_body(folder, text, found, soft_lines)
    checker = folder / "scripts" / "check.py"
    parsed = _lint_checker_source(checker, found)
    cases_ok = _lint_cases_file(folder, found)
    results: list[CaseResult] = []
    if run and parsed and _probe(checker, found, python, timeout) and cases_ok:
        skill = Skill(folder.name, folder, str(meta.get("description", "")))
        with tempfile.TemporaryDirectory(prefix="heal-lint-") as tmp:
            results = run_cases(skill, tmp_dir=Path(tmp), python=python, timeout=timeout)
        _lint_verdicts(skill, results, sections, found)
    return found, results


def _lint_frontmatter(folder: Path, text: str, found: _Found) -> dict[str, Any]:
    path = folder / "SKILL.md"
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    if not match:
        found.add(path, 1, "no frontmatter: open with '---', then name and description, then '---'")
        return {}
    try:
        node, data = yaml.compose(match.group(1)), yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        found.add(path, mark.line + 2 if mark else 1, f"frontmatter is not valid YAML: {getattr(exc, 'problem', exc)}")
        return {}
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        found.add(path, 2, "frontmatter must be a mapping of keys (name, description, ...)")
        return {}
    lines = {k.value: k.start_mark.line + 2 for k, _ in node.value}
    for key in data:
        if key not in _KEYS:
            found.add(path, lines.get(key), f"unknown frontmatter key {key!r}; portable keys are {', '.join(_KEYS)}")
    name, desc = data.get("name"), data.get("description")
    if not isinstance(name, str) or not name:
        found.add(path, lines.get("name", 1), "no name in the frontmatter: give the folder name")
    else:
        at = lines["name"]
        if name != folder.name:
            found.add(path, at, f"name is {name!r} but the folder is {folder.name!r}; they must be equal")
        if not _NAME.match(name):
            found.add(path, at, f"name {name!r} is not kebab-case (a-z, 0-9, single hyphens)")
        if len(name) > 64:
            found.add(path, at, f"name is {len(name)} characters; the limit is 64")
    if not isinstance(desc, str) or not desc.strip():
        found.add(path, lines.get("description", 1), "no description: say what it does, then 'Use when ...'")
    else:
        at = lines["description"]
        if len(desc) > 1024:
            found.add(path, at, f"description is {len(desc)} characters; the limit is 1024")
        if "<" in desc or ">" in desc:
            found.add(path, at, "description contains '<' or '>', which are not allowed")
        if not _WHEN.search(desc):
            found.add(path, at, "description does not say when to use the skill: add 'Use when ...'")
    if len(str(data.get("compatibility") or "")) > 500:
        found.add(path, lines.get("compatibility"), "compatibility is over 500 characters")
    if "metadata" in data and not isinstance(data["metadata"], dict):
        found.add(path, lines.get("metadata"), "metadata must be a mapping")
    return data


def _lint_body(folder: Path, text: str, found: _Found, soft_lines: int) -> dict[str, str]:
    """Check length, headings and links; return each ``## `` section's text by heading."""
    path = folder / "SKILL.md"
    lines = text.splitlines()
    if len(lines) > MAX_SKILL_LINES:
        found.add(path, len(lines), f"SKILL.md has {len(lines)} lines; the limit is {MAX_SKILL_LINES}: "
                                    "move detail to references/")
    elif len(lines) > soft_lines:
        found.add(path, len(lines), f"SKILL.md has {len(lines)} lines; this pack keeps them to {soft_lines}",
                  "warning")
    start = text[: re.match(r"^(---\n.*?\n---\n)?", text, re.S).end()].count("\n")
    headings: list[tuple[int, str]] = []
    fenced = False
    for number, line in enumerate(lines[start:], start + 1):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced and re.match(r"^#{1,2} ", line):
            headings.append((number, line.rstrip()))
    expected = [f"# {folder.name}", *_SECTIONS]
    for k, want in enumerate(expected):
        if k >= len(headings):
            found.add(path, len(lines), f"no {want!r} section; the sections are {', '.join(expected)}, in that order")
            break
        if headings[k][1] != want:
            found.add(path, headings[k][0], f"found {headings[k][1]!r} where {want!r} belongs; "
                                            f"the sections are {', '.join(expected)}, in that order")
            break
    else:
        for number, extra in headings[len(expected):]:
            found.add(path, number, f"unexpected heading {extra!r} after '## References' (use ### inside a section)")
    for m in _LINKS.finditer(text):
        target = (m.group(1) or m.group(2)).split("#")[0]
        if target and not (folder / target).exists():
            found.add(path, text.count("\n", 0, m.start()) + 1, f"links {target}, which does not exist")
    refs = folder / "references"
    for f in sorted(refs.rglob("*")) if refs.is_dir() else []:
        if f.is_file() and len(f.relative_to(refs).parts) > 1:
            found.add(f, None, "references are one level deep: move it up to references/")
        elif f.is_file() and f.relative_to(folder).as_posix() not in text:
            found.add(f, None, f"not linked from SKILL.md: link {f.relative_to(folder).as_posix()} and say when to read it")
    bounds = [(n, h) for n, h in headings if h in _SECTIONS]
    return {h: "\n".join(lines[n:(bounds[i + 1][0] - 1 if i + 1 < len(bounds) else len(lines))])
            for i, (n, h) in enumerate(bounds)}


def _lint_checker_source(checker: Path, found: _Found) -> bool:
    if not checker.is_file():
        found.add(checker, None, "missing: every skill has scripts/check.py")
        return False
    try:
        tree = ast.parse(checker.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError) as exc:
        found.add(checker, getattr(exc, "lineno", None), f"does not parse: {getattr(exc, 'msg', exc)}")
        return False
    doc = ast.get_docstring(tree) or ""
    if "Usage" not in doc:
        found.add(checker, 1, "no usage docstring: one line on what it checks, then 'Usage:' with two command lines")
    if not any(isinstance(n, ast.If) and "__name__" in ast.unparse(n.test) and "__main__" in ast.unparse(n.test)
               for n in tree.body):
        found.add(checker, len(checker.read_text(encoding="utf-8").splitlines()),
                  "no `if __name__ == \"__main__\":` guard at the end")
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
        for name in names:
            if name.split(".")[0] in ("orchestrator", "skills"):
                found.add(checker, node.lineno, f"imports {name}: a checker imports only the stdlib, tools "
                                                "and libraries, never the orchestrator or another skill")
    return True


def _probe(checker: Path, found: _Found, python: str, timeout: float) -> bool:
    """Import the checker in a fresh interpreter, then run it with ``--help``; False when
    either could not run at all (so running the fixture cases would only repeat it)."""
    for args, what in (([python, "-c", _PROBE, str(checker)], "import"), ([python, str(checker), "--help"], "--help")):
        try:
            proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            found.add(checker, None, f"{what} timed out after {timeout:g}s")
            return False
        last = (proc.stderr.strip().splitlines() or [""])[-1]
        if proc.returncode != 0:
            found.add(checker, None, f"cannot be imported: {last}" if what == "import"
                      else f"--help exits {proc.returncode}, not 0: {last}")
            return False
        if what == "import" and proc.stdout.strip():
            for name in proc.stdout.split():
                role = "for the orchestrator" if name == "run_step" else "for the script"
                found.add(checker, None, f"has no {name}() ({role})")
        if what == "--help" and "--json" not in proc.stdout:
            found.add(checker, None, "--help does not offer --json (print exactly one verdict)")
    return True


def _lint_cases_file(folder: Path, found: _Found) -> bool:
    path = folder / "fixtures" / "cases.yaml"
    if not path.is_file():
        found.add(path, None, "missing: list at least one passing and one failing case in fixtures/cases.yaml")
        return False
    try:
        text = path.read_text(encoding="utf-8")
        node, data = yaml.compose(text), yaml.safe_load(text)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        found.add(path, mark.line + 1 if mark else None, f"not valid YAML: {getattr(exc, 'problem', exc)}")
        return False
    cases = data.get("cases") if isinstance(data, dict) else None
    if not isinstance(cases, list) or not cases:
        found.add(path, 1, "no cases: list them under 'cases:'")
        return False
    items = next(v for k, v in node.value if k.value == "cases").value
    before = len(found)
    for case, item in zip(cases, items):
        line = item.start_mark.line + 1
        if not isinstance(case, dict) or not isinstance(case.get("args"), list):
            found.add(path, line, "a case is a mapping with an 'args' list (and name, pass, failure_class, failing)")
            continue
        label = f"case {case.get('name', line)!r}"
        if not isinstance(case.get("pass"), bool):
            found.add(path, line, f"{label}: 'pass' must be true or false")
        elif not case["pass"] and case.get("failure_class") not in FAILURE_CLASSES:
            found.add(path, line, f"{label}: failure_class {case.get('failure_class')!r} is not one of "
                                  "tools.verdict.FAILURE_CLASSES")
        elif case["pass"] and case.get("failure_class") is not None:
            found.add(path, line, f"{label}: a passing case has no failure_class")
        for arg in case["args"]:
            for ref in re.findall(r"\{fixtures\}/((?:pass|fail|fixed)_[^\s,;]+)", str(arg)):
                if not (folder / "fixtures" / ref).exists():
                    found.add(path, line, f"{label}: fixtures/{ref} does not exist")
    outcomes = {c.get("pass") for c in cases if isinstance(c, dict)}
    if False not in outcomes:
        found.add(path, 1, "no failing case: add one whose fixture reproduces the failure")
    if True not in outcomes and not data.get("no_passing_case"):
        found.add(path, 1, "no passing case: add a healthy fixture, or say why with 'no_passing_case: <reason>'")
    return len(found) == before


def _lint_verdicts(skill: Skill, results: list[CaseResult], sections: dict[str, str], found: _Found) -> None:
    """Each case's verdict is valid, names this skill, matches its exit code, and is documented."""
    path, skill_md = skill.path / "fixtures" / "cases.yaml", skill.path / "SKILL.md"
    undocumented: dict[str, str] = {}
    for r in results:
        v = r.verdict
        if v is None:
            found.add(path, None, f"case {r.name!r}: {r.problems[0] if r.problems else 'no JSON verdict'}")
            continue
        try:
            validate_verdict(v)
        except VerdictInvalid as exc:
            found.add(path, None, f"case {r.name!r}: {exc}")
            continue
        if v["skill"] != skill.name:
            found.add(path, None, f"case {r.name!r}: the verdict names skill {v['skill']!r}, not {skill.name!r}")
        if r.exit_code != (0 if v["pass"] else 1):
            found.add(path, None, f"case {r.name!r}: exit code {r.exit_code} with a "
                                  f"{'passing' if v['pass'] else 'failing'} verdict (0 pass, 1 fail)")
        for c in v["criteria"]:
            if f"`{c['id']}`" not in sections.get("## Pass criteria", ""):
                undocumented.setdefault(f"criterion `{c['id']}` is not explained under '## Pass criteria'", r.name)
        on_failure = sections.get("## On failure", "")
        if v["failure_class"] and f"`{v['failure_class']}`" not in on_failure and not _ANY.search(on_failure):
            undocumented.setdefault(f"failure_class `{v['failure_class']}` is not in the '## On failure' table", r.name)
    for message, case in undocumented.items():
        found.add(skill_md, None, f"{message} (seen in case {case!r})")
