"""The Agent SDK loop: in-process tools only, a draft judged per ``finish``, a capped count.

No built-in tools: the model can write only inside the new skill's folder
(:class:`~orchestrator.skillgen.judge.SkillFolder`), run its cases, lint it, and submit a
draft. A PreToolUse hook denies every tool once a draft is accepted or the cap is reached.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.skillgen.judge import Evaluation, SkillFolder, evaluate_skill
from orchestrator.skillgen.template import fixture_names
from orchestrator.skills import Skill, lint_skill, run_cases
from tools.verdict import FAILURE_CLASSES, ConfigError, HealError

__all__ = ["SYSTEM_PROMPT", "TOOLS", "draft_with_agent"]

TOOLS = ("write_skill_file", "read_skill_file", "delete_skill_file", "run_skill_cases", "lint_skill", "finish")

SYSTEM_PROMPT = """You add one skill to heal-pipeline, a toolkit of self-healing data pipelines.
A skill is a folder:
- SKILL.md: frontmatter with only `name` (the folder name) and `description` (what it checks, then
  "Use when ..."; at most 1024 characters, no angle brackets); then, in this order, `# <name>` (one
  paragraph of purpose), `## Run` (the exact command; run --help first), `## Pass criteria` (a table:
  criterion id in backticks -> passes when), `## On failure` (a table: failure_class in backticks -> next
  step or escalate -> what to tell a person), `## References`. At most 150 lines.
- scripts/check.py: a usage docstring with two command lines; `check(...) -> Verdict`, deterministic, never
  prints; `run_step(ctx) -> Verdict` for the orchestrator; `main(argv=None) -> int` with argparse and
  `--json` (exactly one verdict on stdout), exit 0 pass, 1 fail, 2 could not run (one line via
  could_not_run). Imports only the standard library, duckdb and `tools.*`, never another skill.
  Build verdicts with `tools.verdict.Verdict.from_criteria(SKILL, criteria, failure_classes={criterion_id:
  failure_class})`; samples sorted, at most 20. `tools.readers.read_delivery(con, path)` stages any
  delivery as a DuckDB table of VARCHAR columns plus `_row` (1-based).
- fixtures/cases.yaml: `cases:` each with name, args (`{fixtures}/file`), pass, failure_class, failing.
  fixtures/fail_* reproduces the failure; fixtures/pass_* is a healthy delivery.
failure_class is one of: FAILURE_CLASSES.
Your only tools: write_skill_file(path, content) and read_skill_file/delete_skill_file(path), paths
relative to the skill folder; run_skill_cases() and lint_skill() to see where the draft stands;
finish(summary) to submit a draft. finish accepts it only when the lint is clean, every case gives its
expected verdict, the checker FAILS on every fixtures/fail_* file with a failure_class that names the
failure and PASSES on every fixtures/pass_* file, and the generated test passes. You have at most
MAX_ITERATIONS drafts (finish calls). When finish says ACCEPTED, stop."""


@dataclass
class _Session:
    folder: SkillFolder
    test_path: Path
    sample: str | None
    max_iterations: int
    echo: Callable[[str], None]
    iterations: int = 0
    accepted: bool = False
    last: Evaluation | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def closed(self) -> bool:
        return self.accepted or self.iterations >= self.max_iterations

    def judge(self) -> Evaluation:
        """One iteration: judge the folder as it stands."""
        self.iterations += 1
        self.last = evaluate_skill(self.folder.path, test_path=self.test_path, sample=self.sample)
        self.accepted = self.last.accepted
        first = "" if self.accepted else f": {self.last.reasons[0].splitlines()[0]}"
        self.echo(f"draft {self.iterations}: {'accepted' if self.accepted else 'rejected'}{first}")
        return self.last


def draft_with_agent(description: str, *, folder: Path, test_path: Path, sample: Path | None,
                     max_iterations: int, env: dict[str, str], model: str | None, timeout_s: float,
                     echo: Callable[[str], None]) -> tuple[bool, int, list[str]]:
    """Let the model rework the skeleton in ``folder`` until a draft is accepted or the cap is hit.

    Returns (accepted, drafts judged, notes for a person). Raises HealError when the model run
    itself fails (no SDK, API error); a draft that is never accepted is not an error.
    """
    sample_rel = f"fixtures/{fixture_names(sample)[0]}" if sample else None
    session = _Session(SkillFolder(folder, protected=(sample_rel,) if sample_rel else ()), test_path,
                       sample_rel, max(1, max_iterations), echo)
    prompt = _prompt(description, session, sample)
    try:
        asyncio.run(asyncio.wait_for(_converse(prompt, session, env=env, model=model), timeout_s))
    except TimeoutError:
        session.notes.append(f"the model did not finish within {timeout_s:g}s")
    if not session.accepted:
        why = session.last.reasons[0] if session.last and session.last.reasons else "no draft was submitted"
        session.notes.append(f"not accepted after {session.iterations} of {session.max_iterations} drafts "
                             f"(last: {why.splitlines()[0]}); the files are left for you to fix or delete")
    return session.accepted, session.iterations, session.notes


async def _converse(prompt: str, session: _Session, *, env: dict[str, str], model: str | None) -> None:
    try:  # deferred: an optional dependency (pip install heal-pipeline[agent]), slow to import
        from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, ClaudeSDKError, HookMatcher, ResultMessage
    except ImportError:
        raise HealError("drafting with a model needs claude-agent-sdk (pip install 'heal-pipeline[agent]'); "
                        "or pass --template") from None

    async def gate(input_data: dict[str, Any], tool_use_id: str | None, context: Any) -> dict[str, Any]:
        if not session.closed:
            return {}
        why = "the draft is accepted" if session.accepted else f"the cap of {session.max_iterations} drafts is reached"
        return {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
                                       "permissionDecisionReason": f"{why}: stop now"}}

    options = ClaudeAgentOptions(
        tools=[],
        mcp_servers={"skillgen": _tool_server(session)},
        allowed_tools=[f"mcp__skillgen__{t}" for t in TOOLS],
        permission_mode="dontAsk",
        system_prompt=SYSTEM_PROMPT.replace("FAILURE_CLASSES", ", ".join(FAILURE_CLASSES))
                                   .replace("MAX_ITERATIONS", str(session.max_iterations)),
        setting_sources=[],
        cwd=str(session.folder.path),
        max_turns=12 * session.max_iterations + 8,
        env=env,
        model=model,
        hooks={"PreToolUse": [HookMatcher(matcher="mcp__skillgen__.*", hooks=[gate])]},
    )
    try:
        async with ClaudeSDKClient(options) as client:
            await client.query(prompt)
            while True:
                async for message in client.receive_response():
                    if isinstance(message, ResultMessage) and message.is_error and not session.accepted:
                        if message.subtype == "error_max_turns":
                            session.notes.append("the model ran out of turns")
                            return
                        raise HealError(f"the model run failed: {message.result or message.subtype}")
                if session.closed:
                    return
                # The model stopped without an accepted draft: judge what is there and say why.
                verdict = await asyncio.to_thread(session.judge)
                if session.closed:
                    return
                await client.query(verdict.report())
    except ClaudeSDKError as exc:
        raise HealError(f"the model run failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def _tool_server(session: _Session) -> Any:
    from claude_agent_sdk import create_sdk_mcp_server, tool

    def said(text: str, *, error: bool = False) -> dict[str, Any]:
        return {"content": [{"type": "text", "text": text}], "is_error": error}

    @tool("write_skill_file", "Write one file of the skill, path relative to its folder "
          "(SKILL.md, scripts/check.py, fixtures/cases.yaml, fixtures/pass_x.csv).", {"path": str, "content": str})
    async def write_skill_file(args: dict[str, Any]) -> dict[str, Any]:
        try:
            session.folder.write(str(args["path"]), str(args["content"]))
        except ConfigError as exc:
            return said(str(exc), error=True)
        return said(f"wrote {args['path']} ({len(str(args['content']))} characters)")

    @tool("read_skill_file", "Read one file of the skill, path relative to its folder.", {"path": str})
    async def read_skill_file(args: dict[str, Any]) -> dict[str, Any]:
        try:
            return said(session.folder.resolve(str(args["path"])).read_text(encoding="utf-8"))
        except (ConfigError, OSError, UnicodeDecodeError) as exc:
            return said(str(exc), error=True)

    @tool("delete_skill_file", "Delete a fixture or reference file of the skill.", {"path": str})
    async def delete_skill_file(args: dict[str, Any]) -> dict[str, Any]:
        try:
            session.folder.delete(str(args["path"]))
        except ConfigError as exc:
            return said(str(exc), error=True)
        return said(f"deleted {args['path']}")

    @tool("run_skill_cases", "Run every case of fixtures/cases.yaml through the checker; the verdicts.", {})
    async def run_skill_cases(args: dict[str, Any]) -> dict[str, Any]:
        def run() -> list[dict[str, Any]]:
            with tempfile.TemporaryDirectory(prefix="heal-skillgen-") as tmp:
                skill = Skill(session.folder.path.name, session.folder.path, "")
                return [{"case": r.name, "ok": r.ok, "problems": list(r.problems), "verdict": r.verdict}
                        for r in run_cases(skill, tmp_dir=Path(tmp))]
        try:
            return said(json.dumps(await asyncio.to_thread(run), default=str))
        except ConfigError as exc:
            return said(str(exc), error=True)

    @tool("lint_skill", "Lint the skill folder: anatomy and verdict contract.", {})
    async def lint(args: dict[str, Any]) -> dict[str, Any]:
        found = await asyncio.to_thread(lint_skill, session.folder.path)
        return said("\n".join(p.format(relative_to=session.folder.path.parent) for p in found) or "lint clean")

    @tool("finish", "Submit the draft to be judged; ACCEPTED or REJECTED with reasons.", {"summary": str})
    async def finish(args: dict[str, Any]) -> dict[str, Any]:
        verdict = await asyncio.to_thread(session.judge)
        text = verdict.report()
        if not verdict.accepted and session.closed:
            text += f"\nThe cap of {session.max_iterations} drafts is reached: stop now."
        return said(text, error=not verdict.accepted)

    return create_sdk_mcp_server("skillgen", tools=[write_skill_file, read_skill_file, delete_skill_file,
                                                    run_skill_cases, lint, finish])


def _prompt(description: str, session: _Session, sample: Path | None) -> str:
    folder = session.folder
    parts = [f"The failure: {description}",
             f"Write the skill {folder.path.name!r}. Its folder holds a lint-clean skeleton whose rule is a TODO "
             "stub (the rule_written criterion): write the real rule in offending_rows() (or rewrite check() "
             "entirely), delete the stub and its row in SKILL.md, and make the fixtures real.",
             f"The generated test {session.test_path.name} runs the fixture cases through the script and "
             "in-process; you cannot edit it."]
    if session.sample and sample is not None:
        head = sample.read_bytes()[:2000].decode("utf-8", errors="replace")
        parts.append(f"{session.sample} is the user's sample of the failure (read-only); it begins:\n{head}")
    for rel in folder.files():
        data = folder.resolve(rel).read_bytes()
        if rel != session.sample and len(data) < 20_000 and b"\0" not in data:
            parts.append(f"=== {rel} ===\n{data.decode('utf-8', errors='replace')}")
    return "\n\n".join(parts)


