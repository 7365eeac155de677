"""The skill registry: find skill folders, load their checkers by path, run a step, lint.

Skills we ship are ordinary folders, loaded exactly like a user's own: nothing here knows
a skill by name. A skill is ``<root>/<name>/SKILL.md`` plus ``scripts/check.py`` with a
``run_step(ctx) -> Verdict`` (in-process, for the orchestrator) and ``main(argv) -> int``
(the script). :func:`run_cases` runs its ``fixtures/cases.yaml`` (the behaviour);
:func:`lint_skill` checks its anatomy and verdict contract (the shape).
"""

from orchestrator.skills.cases import CaseResult, run_cases
from orchestrator.skills.lint import (
    MAX_SKILL_LINES,
    PACK_SKILL_LINES,
    LintProblem,
    lint_and_run_cases,
    lint_pack,
    lint_skill,
)
from orchestrator.skills.registry import Skill, SkillRegistry, default_skills_root, read_frontmatter

__all__ = [
    "MAX_SKILL_LINES",
    "PACK_SKILL_LINES",
    "CaseResult",
    "LintProblem",
    "Skill",
    "SkillRegistry",
    "default_skills_root",
    "lint_and_run_cases",
    "lint_pack",
    "lint_skill",
    "read_frontmatter",
    "run_cases",
]
