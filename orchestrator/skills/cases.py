"""Run a skill's ``fixtures/cases.yaml`` through its checker script and compare the verdicts."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from orchestrator.skills.registry import Skill
from tools.verdict import EXIT_COULD_NOT_RUN, ConfigError, VerdictInvalid, validate_verdict

__all__ = ["CaseResult", "run_cases"]


@dataclass(frozen=True)
class CaseResult:
    """One fixture case of one skill: what was expected, what the checker said."""

    skill: str
    name: str
    ok: bool
    problems: tuple[str, ...]
    verdict: dict[str, Any] | None
    exit_code: int


def run_cases(skill: Skill, *, tmp_dir: Path, python: str = sys.executable,
              timeout: float = 120.0) -> list[CaseResult]:
    """Run every case in ``fixtures/cases.yaml`` through the checker script with ``--json``.

    A case names ``args`` (``{fixtures}`` and ``{tmp}`` are filled in), the expected ``pass``,
    ``failure_class`` and exact ``failing`` criterion ids; optionally ``before`` (argument
    lists run first), and for a remediation ``output`` + ``fixed`` (the file its output must
    equal) + ``paired`` (a checker that must pass on that output). A verdict that breaks the
    verdict schema is a problem of its case, never a crash.
    """
    cases_file = skill.path / "fixtures" / "cases.yaml"
    if not cases_file.is_file():
        raise ConfigError(f"skill {skill.name!r} has no fixtures/cases.yaml")
    try:
        spec = yaml.safe_load(cases_file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{cases_file}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    cases = spec.get("cases") if isinstance(spec, dict) else None
    if not isinstance(cases, list) or not all(isinstance(c, dict) and isinstance(c.get("args"), list) for c in cases):
        raise ConfigError(f"{cases_file}: 'cases' must be a list of cases, each with an 'args' list")
    results = []
    for i, case in enumerate(cases):
        work = tmp_dir / f"{skill.name}-{i}"
        work.mkdir(parents=True, exist_ok=True)

        def fill(arg: str, work: Path = work) -> str:
            return str(arg).replace("{fixtures}", str(skill.path / "fixtures")).replace("{tmp}", str(work))

        for before in case.get("before", []):
            _invoke(python, skill.checker, [fill(a) for a in before], timeout)
        code, verdict, stderr = _invoke(python, skill.checker, [fill(a) for a in case["args"]], timeout)
        problems: list[str] = []
        if verdict is None:
            problems.append(f"no JSON verdict (exit {code}): {stderr.strip()[-300:]}")
        else:
            try:
                validate_verdict(verdict)
            except VerdictInvalid as exc:
                problems.append(str(exc))
            else:
                problems += _expectations(case, verdict, code)
        if "fixed" in case:
            produced = Path(fill(case["output"]))
            wanted = skill.path / "fixtures" / case["fixed"]
            if not produced.is_file() or produced.read_bytes().replace(b"\r\n", b"\n") != wanted.read_bytes():
                problems.append(f"output {produced.name} differs from fixtures/{case['fixed']}")
            elif case.get("paired"):
                paired = skill.path.parent / case["paired"] / "scripts" / "check.py"
                contract = [fill(a) for a in case["args"]][case["args"].index("--contract") + 1]
                pcode, pverdict, _ = _invoke(python, paired, [str(produced), "--contract", contract], timeout)
                if pcode != 0:
                    problems.append(f"paired checker {case['paired']} fails on the output (exit {pcode})")
        results.append(CaseResult(skill.name, str(case.get("name", f"case {i + 1}")), not problems, tuple(problems),
                                  verdict, code))
    return results


def _expectations(case: dict[str, Any], verdict: dict[str, Any], code: int) -> list[str]:
    problems = []
    failing = sorted(c["id"] for c in verdict["criteria"] if not c["pass"])
    if verdict["pass"] != case.get("pass"):
        problems.append(f"pass is {verdict['pass']}, expected {case.get('pass')} (failing: {failing})")
    if verdict["failure_class"] != case.get("failure_class"):
        problems.append(f"failure_class {verdict['failure_class']!r}, expected {case.get('failure_class')!r}")
    if "failing" in case and failing != sorted(case["failing"]):
        problems.append(f"failing criteria {failing}, expected {sorted(case['failing'])}")
    if code != (0 if verdict["pass"] else 1):
        problems.append(f"exit code {code} does not match the verdict")
    return problems


def _invoke(python: str, script: Path, args: list[str], timeout: float = 120.0) -> tuple[int, dict[str, Any] | None, str]:
    try:
        proc = subprocess.run([python, str(script), *args, "--json"], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return EXIT_COULD_NOT_RUN, None, f"timed out after {timeout:g}s"
    try:
        verdict = json.loads(proc.stdout) if proc.stdout.strip() else None
    except json.JSONDecodeError:
        verdict = None
    return proc.returncode, verdict if isinstance(verdict, dict) else None, proc.stderr
