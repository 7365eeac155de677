"""Find skill folders under one or more roots and load their checkers by path."""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import yaml

from tools.context import StepContext
from tools.verdict import ConfigError, Verdict

__all__ = ["Skill", "SkillRegistry", "default_skills_root", "read_frontmatter"]


def default_skills_root() -> Path:
    """``$HEAL_SKILLS_DIR``, else the ``skills/`` folder next to the orchestrator package."""
    env = os.environ.get("HEAL_SKILLS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "skills"


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
