"""`heal skill new`: grow the pack from a one-sentence failure description.

Two modes. The *agent* drafts the skill through an Agent SDK loop whose only tools write
inside the new folder and judge the draft (:mod:`.loop`); a draft is accepted when the lint
is clean, every fixture case gives its verdict, the checker fails on each ``fixtures/fail_*``
file with a data failure class and passes on each ``fixtures/pass_*`` one, and the generated
test passes (:mod:`.judge`); at most ``max_iterations`` drafts are judged. The *template*
(``--template``, or no API key; :mod:`.template`) writes a lint-clean skeleton whose rule is a
failing TODO stub, so its generated test fails until a person writes the rule. Both write::

    skills/<name>/SKILL.md  scripts/check.py  fixtures/cases.yaml  fixtures/{fail,pass}_delivery.*
    tests/test_skill_<name>.py      next to the skills folder: the cases, by script and in-process

``--add-to`` wires the new skill into a pipeline's ``steps:`` (:mod:`.wiring`).
"""

from orchestrator.skillgen.judge import Evaluation, SkillFolder, evaluate_skill, run_generated_test
from orchestrator.skillgen.new import NewSkill, new_skill
from orchestrator.skillgen.template import guess_failure_class, skill_name_for, write_template
from orchestrator.skillgen.wiring import add_step_to_pipeline

__all__ = [
    "Evaluation",
    "NewSkill",
    "SkillFolder",
    "add_step_to_pipeline",
    "evaluate_skill",
    "guess_failure_class",
    "new_skill",
    "run_generated_test",
    "skill_name_for",
    "write_template",
]
