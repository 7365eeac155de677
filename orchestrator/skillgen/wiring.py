"""Wire a new skill into a pipeline file: one step after another, by a minimal text edit."""

from __future__ import annotations

import re
from pathlib import Path

from orchestrator.pipeline import load_pipeline, parse_pipeline
from tools.verdict import ConfigError

__all__ = ["add_step_to_pipeline"]


def add_step_to_pipeline(path: Path, skill: str, *, after: str | None = None) -> tuple[str, str]:
    """(old text, new text) of the pipeline at ``path`` with a step ``skill`` after step ``after``.

    ``after`` defaults to the first step, so the new check sees every fetched delivery. The edit
    is textual and minimal: ``after``'s ``on_pass`` now names the new step, whose ``on_pass`` is
    the step that followed ``after`` and whose failures escalate. Other routes into that step
    (e.g. from a fallback source) are left alone. The result is re-parsed before it is returned.
    """
    old = path.read_text(encoding="utf-8")
    spec = load_pipeline(path)
    after = after or spec.first_step
    if after not in spec.steps:
        raise ConfigError(f"{path}: no step {after!r} to put {skill} after; steps: {', '.join(spec.steps)}")
    if skill in spec.steps:
        raise ConfigError(f"{path}: already has a step {skill!r}")
    follows = spec.steps[after].on_pass
    new = _insert_step(old, skill=skill, after=after, follows=follows, filename=str(path))
    wired = parse_pipeline(new, base_dir=path.resolve().parent, filename=str(path))
    if wired.steps[after].on_pass != skill or wired.steps[skill].on_pass != follows:
        raise ConfigError(f"{path}: could not wire {skill} in by editing steps: minimally; add by hand:\n"
                          f"  {after}: {{on_pass: {skill}}}\n  {skill}: {{skill: {skill}, on_pass: {follows}, "
                          "on_fail: escalate}")
    return old, new


def _insert_step(text: str, *, skill: str, after: str, follows: str, filename: str) -> str:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    note = f"# Added by `heal skill new`: {skill} runs after {after}; its failures escalate.\n"
    starts = [i for i, line in enumerate(lines) if re.match(r"^steps:\s*(#.*)?$", line)]
    if not starts:
        if re.search(r"^steps:", text, re.M):
            raise ConfigError(f"{filename}: steps: is not a block mapping; add the step by hand")
        return "".join([*lines, "\n", note, "steps:\n", f"  {after}:\n", f"    on_pass: {skill}\n",
                        *_step_lines("  ", skill, follows)])
    start = end = starts[0] + 1  # the block: indented, blank and comment lines after `steps:`
    while end < len(lines) and (not lines[end].strip() or lines[end][0] in " \t#"):
        end += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    entries = [line for line in lines[start:end] if line.strip() and not line.lstrip().startswith("#")]
    ind = _indent(entries[0]) if entries else "  "
    keys = [i for i in range(start, end) if lines[i].startswith(f"{ind}{after}:")]
    added = [ind + note, *_step_lines(ind, skill, follows)]
    if not keys:
        added = [f"{ind}{after}:\n", f"{ind * 2}on_pass: {skill}\n", *added]
    elif not re.match(rf"^{re.escape(ind + after)}:\s*(#.*)?$", lines[keys[0]]):
        raise ConfigError(f"{filename}: steps.{after} is written inline; add the step by hand")
    else:
        body = [i for i in range(keys[0] + 1, end) if lines[i].strip()]
        body = body[: next((k for k, i in enumerate(body) if len(_indent(lines[i])) <= len(ind)), len(body))]
        on_pass = [i for i in body if re.match(r"^\s+on_pass:", lines[i])]
        if on_pass:
            lines[on_pass[0]] = f"{_indent(lines[on_pass[0]])}on_pass: {skill}\n"
        else:
            lines.insert(keys[0] + 1, f"{_indent(lines[body[0]]) if body else ind * 2}on_pass: {skill}\n")
            end += 1
    lines[end:end] = added
    return "".join(lines)


def _step_lines(ind: str, skill: str, follows: str) -> list[str]:
    return [f"{ind}{skill}:\n", f"{ind * 2}skill: {skill}\n", f"{ind * 2}on_pass: {follows}\n",
            f"{ind * 2}on_fail: escalate\n"]


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]
