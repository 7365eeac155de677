"""`heal skill new` end to end: pick the mode, write the folder, draft, wire, show the diff."""

from __future__ import annotations

import difflib
import os
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.skillgen.judge import SkillFolder
from orchestrator.skillgen.loop import draft_with_agent
from orchestrator.skillgen.template import guess_failure_class, skill_name_for, write_template
from orchestrator.skillgen.wiring import add_step_to_pipeline
from tools.verdict import ConfigError, HealError

__all__ = ["KEY_VARIABLES", "NewSkill", "new_skill"]

KEY_VARIABLES = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")


@dataclass(frozen=True)
class NewSkill:
    """What `heal skill new` did: where, how (agent or template), and what a person must do next."""

    name: str
    path: Path
    test_path: Path
    mode: str  # "agent" or "template"
    accepted: bool  # the agent's draft passed every gate; a template never is (its TODO fails)
    iterations: int
    files: tuple[Path, ...]
    diff: str
    notes: tuple[str, ...] = ()
    pipeline: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "test_path": str(self.test_path), "mode": self.mode,
                "accepted": self.accepted, "iterations": self.iterations, "files": [str(f) for f in self.files],
                "notes": list(self.notes), "pipeline": str(self.pipeline) if self.pipeline else None,
                "diff": self.diff}


def new_skill(
    description: str,
    *,
    skills_dir: Path,
    name: str | None = None,
    sample: Path | None = None,
    template: bool = False,
    add_to: Path | None = None,
    after: str | None = None,
    max_iterations: int = 5,
    env: Mapping[str, str] | None = None,
    model: str | None = None,
    timeout_s: float = 900.0,
    echo: Callable[[str], None] = lambda line: None,
) -> NewSkill:
    """Write a new skill for ``description`` into ``skills_dir`` (agent, or template offline).

    ``env`` is merged over ``os.environ`` for the model run (ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL);
    with no key in either, or ``template=True``, the offline template is written instead.
    """
    description = " ".join(description.split())
    if not description:
        raise ConfigError("describe the failure in a sentence")
    name = name or skill_name_for(description)
    seen = {**os.environ, **(env or {})}
    notes: list[str] = []
    if not template and not any(seen.get(k) for k in KEY_VARIABLES):
        template = True
        notes.append("no ANTHROPIC_API_KEY in the environment: wrote the offline template instead")
    folder, test_path = _paths(skills_dir, name)
    old_pipeline, new_pipeline = add_step_to_pipeline(add_to, name, after=after) if add_to else ("", "")
    written = write_template(description, folder=folder, test_path=test_path, sample=sample)
    accepted, iterations = False, 0
    if template:
        notes += [f"template mode: scripts/check.py has a TODO stub; {test_path.name} fails until you write "
                  "offending_rows() and set RULE_WRITTEN = True",
                  f"failure_class {guess_failure_class(description)} was guessed from the description: "
                  "change CLASSES in scripts/check.py and the On failure table if another fits"]
    else:
        try:
            accepted, iterations, agent_notes = draft_with_agent(
                description, folder=folder, test_path=test_path, sample=sample, max_iterations=max_iterations,
                env=dict(env or {}), model=model, timeout_s=timeout_s, echo=echo)
        except HealError:
            shutil.rmtree(folder, ignore_errors=True)  # nothing half-written survives a failed model run
            test_path.unlink(missing_ok=True)
            raise
        notes += agent_notes
        written = [folder / f for f in SkillFolder(folder).files()] + [test_path]
    diff = "".join(_added(f, skills_dir.parent) for f in written)
    if add_to and (template or accepted):
        add_to.write_text(new_pipeline, encoding="utf-8")
        if template:
            notes.append(f"{add_to} now runs {name}: until its TODO rule is written it fails every delivery, "
                         "so runs escalate at that step")
        diff += "".join(difflib.unified_diff(old_pipeline.splitlines(keepends=True),
                                             new_pipeline.splitlines(keepends=True),
                                             f"a/{add_to}", f"b/{add_to}"))
    elif add_to:
        notes.append(f"{add_to} left unchanged: the skill was not accepted")
    return NewSkill(name, folder, test_path, "template" if template else "agent", accepted, iterations,
                    tuple(written), diff, tuple(notes), add_to if add_to and (template or accepted) else None)


def _paths(skills_dir: Path, name: str) -> tuple[Path, Path]:
    if not re.match(r"^[a-z0-9]+(-[a-z0-9]+)*$", name) or len(name) > 64:
        raise ConfigError(f"skill name {name!r} must be kebab-case (a-z, 0-9, single hyphens), at most 64 characters")
    folder = skills_dir / name
    test_path = skills_dir.parent / "tests" / f"test_skill_{name.replace('-', '_')}.py"
    for path in (folder, test_path):
        if path.exists():
            raise ConfigError(f"{path} already exists: choose another --name, or delete it first")
    return folder, test_path


def _added(path: Path, root: Path) -> str:
    shown = path.relative_to(root) if path.is_relative_to(root) else path
    try:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return f"Binary file b/{shown} added\n"
    return "".join(difflib.unified_diff([], lines, "/dev/null", f"b/{shown}"))


