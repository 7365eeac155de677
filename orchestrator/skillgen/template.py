"""The offline skeleton: a complete, lint-clean skill whose rule is a failing TODO stub.

The stub adds a ``rule_written`` criterion that always fails, so the generated test fails
until a person writes ``offending_rows()`` and sets ``RULE_WRITTEN = True``. The agent loop
starts from the same skeleton.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import duckdb
import yaml

from tools.readers import read_delivery
from tools.verdict import ConfigError, InputError

__all__ = ["MAX_SAMPLE_BYTES", "fixture_names", "guess_failure_class", "skill_name_for", "write_template"]

MAX_SAMPLE_BYTES = 1_000_000
_STOP = frozenset(
    "a an the now and or of to in on with like is are be been when it its their our we they this that these "
    "those from for by at as into than then there here arrive arrives arriving came come comes sometimes "
    "suddenly some all any get gets got".split()
)
_CLASS_HINTS = (  # first match wins; the template says the class was guessed
    ("schema_mismatch", r"column|header|renamed|field name"),
    ("null_critical", r"null|blank|empty value|missing value"),
    ("duplicate_key", r"duplicate"),
    ("out_of_range", r"range|negative|too large|too big|exceed"),
    ("distribution_shift", r"cents|distribution|shift|scaled?"),
    ("freshness", r"stale|outdated|old data|late"),
    ("volume_anomaly", r"volume|row count|fewer rows|more rows"),
    ("malformed_row", r"truncated|cut off|malformed|broken rows?|quotes?"),
    ("unreadable", r"binary|encoding|unreadable"),
    ("type_drift", r"currency|format|types?|parse|decimal|comma|dates?|text|strings?|units?"),
)


def skill_name_for(description: str) -> str:
    """A kebab-case name from the description's first content words (``check-...``)."""
    text = re.sub(r"`[^`]*`", " ", description.lower())
    words = [w for w in re.findall(r"[a-z0-9]+", text) if w not in _STOP and len(w) > 1]
    return "-".join(["check", *words[:3]])[:64].rstrip("-") if words else "check-new-failure"


def guess_failure_class(description: str) -> str:
    """The vocabulary class a description most likely means; ``type_drift`` when unsure."""
    for failure_class, pattern in _CLASS_HINTS:
        if re.search(rf"\b({pattern})\b", description.lower()):
            return failure_class
    return "type_drift"



def write_template(description: str, *, folder: Path, test_path: Path, sample: Path | None = None) -> list[Path]:
    """Write the offline skeleton and its generated test; the checker's rule is a failing TODO."""
    name = folder.name
    criterion = name.removeprefix("check-").replace("-", "_")
    failure_class = guess_failure_class(description)
    fail_name, pass_name, fail_bytes, header = _fixtures(sample)
    plain = description.replace("<", "less than ").replace(">", "more than ").replace('"""', "'''").replace("\\", "/")
    summary = f"Catch deliveries where {plain[0].lower()}{plain[1:]}".rstrip(".")[:200]
    use_when = f"{summary[:780]}. Use when a delivery shows this failure, or to check a file for it."
    frontmatter = yaml.safe_dump({"name": name, "description": use_when}, sort_keys=False, width=10_000,
                                 allow_unicode=True)
    subs = {"__SKILL__": name, "__CRITERION__": criterion, "__CLASS__": failure_class, "__SUMMARY__": summary,
            "__FAIL__": fail_name, "__PASS__": pass_name, "__FRONTMATTER__": frontmatter.strip()}
    files = {
        "SKILL.md": _SKILL_MD,
        "scripts/check.py": _CHECK_PY,
        "fixtures/cases.yaml": _CASES_YAML,
    }
    folder.mkdir(parents=True)
    written = []
    for rel, text in files.items():
        for key, value in subs.items():
            text = text.replace(key, value)
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text, encoding="utf-8")
        written.append(folder / rel)
    (folder / "fixtures" / fail_name).write_bytes(fail_bytes)
    (folder / "fixtures" / pass_name).write_text(header, encoding="utf-8")
    written += [folder / "fixtures" / fail_name, folder / "fixtures" / pass_name]
    test_path.parent.mkdir(parents=True, exist_ok=True)
    rel = Path(os.path.relpath(folder, test_path.parent)).as_posix()
    test_path.write_text(_TEST_PY.replace("__SKILL__", name).replace("__REL__", rel)
                         .replace("__MODULE__", name.replace("-", "_")), encoding="utf-8")
    return [*written, test_path]


def _fixtures(sample: Path | None) -> tuple[str, str, bytes, str]:
    """(fail name, pass name, fail bytes, pass text): the sample reproduces the failure, and its
    header alone stands in for a healthy delivery until a person writes a real one."""
    fail_name, pass_name = fixture_names(sample)
    if sample is None:
        return fail_name, pass_name, b"id,value\n1,TODO: a row that shows the failure\n", "id,value\n"
    if not sample.is_file():
        raise ConfigError(f"--from-file {sample}: no such file")
    if sample.stat().st_size > MAX_SAMPLE_BYTES:
        raise ConfigError(f"--from-file {sample} is over {MAX_SAMPLE_BYTES // 1000} KB: fixtures stay tiny, "
                          "so keep the rows that show the failure (e.g. head -50)")
    con = duckdb.connect()
    try:
        columns = read_delivery(con, sample).columns
    except InputError:
        columns = ("value",)
    finally:
        con.close()
    header = ",".join(f'"{c}"' if re.search(r'[,"\s]', c) else c for c in columns) + "\n"
    return fail_name, pass_name, sample.read_bytes(), header


def fixture_names(sample: Path | None) -> tuple[str, str]:
    return f"fail_delivery{''.join(sample.suffixes) if sample else '.csv'}", "pass_delivery.csv"


_SKILL_MD = """---
__FRONTMATTER__
---

# __SKILL__

__SUMMARY__. The checker counts the rows that show it and names them; it never
changes the data. Written from a failure description by `heal skill new`.

## Run

Run `--help` first. Then:

```bash
python skills/__SKILL__/scripts/check.py delivery.csv --json
python skills/__SKILL__/scripts/check.py delivery.csv --column amount --json
```

Exit 0 pass, 1 fail, 2 could not run. `samples` on a failing criterion list row numbers, at most 20.

## Pass criteria

| criterion | passes when |
|---|---|
| `__CRITERION__` | no row shows the failure |
| `rule_written` | TODO: the rule in `scripts/check.py` is written; delete this row with the stub |

## On failure

| failure_class | next | tell a person |
|---|---|---|
| `__CLASS__` | `escalate`: load nothing | yes: show the sample rows |

## References

- `fixtures/cases.yaml`: `fixtures/__FAIL__` reproduces the failure, `fixtures/__PASS__` is healthy.
"""

_CHECK_PY = '''"""__SUMMARY__.

Usage:
    python skills/__SKILL__/scripts/check.py delivery.csv
    python skills/__SKILL__/scripts/check.py delivery.csv --column amount --json

Exit codes: 0 pass, 1 fail (see the verdict's failure_class), 2 could not run.
"""

from __future__ import annotations

import argparse
import sys

import duckdb

from tools.context import StepContext
from tools.contract import quote_ident
from tools.readers import read_delivery
from tools.verdict import Criterion, HealError, Stopwatch, Verdict, could_not_run, finish

SKILL = "__SKILL__"
CRITERION = "__CRITERION__"
CLASSES = {CRITERION: "__CLASS__", "rule_written": "__CLASS__"}
SAMPLE = 20
RULE_WRITTEN = False  # TODO(heal skill new): set to True once offending_rows() holds the real rule


def offending_rows(con: duckdb.DuckDBPyConnection, table: str, *, column: str | None = None) -> list[int]:
    """Row numbers (``_row``, sorted) that show the failure; every column is VARCHAR.

    TODO(heal skill new): write the rule as SQL over ``table``; ``column`` narrows it to one column.
    """
    return []


def check(con: duckdb.DuckDBPyConnection, table: str, *, column: str | None = None) -> Verdict:
    """Judge the delivery staged in ``table``; never prints, never changes the data."""
    clock = Stopwatch()
    rows = con.execute(f"SELECT count(*) FROM {quote_ident(table)}").fetchone()[0]
    bad = offending_rows(con, table, column=column)
    criteria = [Criterion(CRITERION, not bad, len(bad), 0,
                          "rows show the failure: load nothing, show a person the samples" if bad else "",
                          samples=tuple(bad[:SAMPLE]))]
    if not RULE_WRITTEN:
        criteria.append(Criterion("rule_written", False, "a stub", "a rule",
                                  "TODO: write offending_rows() in scripts/check.py, then set RULE_WRITTEN = True"))
    return Verdict.from_criteria(SKILL, criteria, failure_classes=CLASSES,
                                 metrics={"rows": rows, "offending_rows": len(bad)}, duration_ms=clock.ms())


def run_step(ctx: StepContext) -> Verdict:
    table = ctx.table
    if table is None:  # placed before validate-schema: stage the fetched file first
        if ctx.delivery_path is None:
            raise HealError(f"{SKILL} needs a fetched delivery: put it after fetch-file")
        table = read_delivery(ctx.con, ctx.delivery_path, table=SKILL.replace("-", "_") + "_input").table
    return check(ctx.con, table, column=ctx.params.get("column"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=SKILL, description=__doc__.splitlines()[0])
    parser.add_argument("path", help="the delivery file (CSV, JSON Lines, JSON, Parquet; compressed is fine)")
    parser.add_argument("--column", help="look only at this column (default: every column)")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON verdict on stdout")
    args = parser.parse_args(argv)
    try:
        con = duckdb.connect()
        delivery = read_delivery(con, args.path)
        verdict = check(con, delivery.table, column=args.column)
    except HealError as exc:
        return could_not_run(SKILL, exc)
    return finish(verdict, as_json=args.json, next_step="load nothing; show a person the sample rows")


if __name__ == "__main__":
    sys.exit(main())
'''

_CASES_YAML = """# Written by `heal skill new`. Each case runs scripts/check.py with args ({fixtures} = this
# folder, {tmp} = a temp folder). Run them with `heal skill test __SKILL__`.
cases:
  - name: reproduces the failure
    args: ["{fixtures}/__FAIL__"]
    pass: false
    failure_class: __CLASS__
    failing: [__CRITERION__]
  - name: healthy delivery
    args: ["{fixtures}/__PASS__"]
    pass: true
"""

_TEST_PY = '''"""Written by `heal skill new` for the __SKILL__ skill: its fixture cases, by script and in-process."""

import importlib.util
import json
from pathlib import Path

import yaml

from orchestrator.skills import Skill, run_cases

SKILL_DIR = (Path(__file__).resolve().parent / "__REL__").resolve()
CASES = yaml.safe_load((SKILL_DIR / "fixtures" / "cases.yaml").read_text(encoding="utf-8"))["cases"]


def test_cases_through_the_script(tmp_path):
    results = run_cases(Skill("__SKILL__", SKILL_DIR, ""), tmp_dir=tmp_path)
    problems = [f"{r.name}: {'; '.join(r.problems)}" for r in results if not r.ok]
    assert not problems, "\\n".join(problems)
    assert {r.verdict["pass"] for r in results} == {True, False}, "one passing and one failing case at least"


def test_cases_in_process(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("skill___MODULE__", SKILL_DIR / "scripts" / "check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for case in CASES:
        args = [str(a).replace("{fixtures}", str(SKILL_DIR / "fixtures")).replace("{tmp}", str(tmp_path))
                for a in case["args"]]
        code = module.main([*args, "--json"])
        verdict = json.loads(capsys.readouterr().out)
        failing = sorted(c["id"] for c in verdict["criteria"] if not c["pass"])
        assert (verdict["pass"], verdict["failure_class"]) == (case["pass"], case.get("failure_class")), case["name"]
        assert failing == sorted(case.get("failing", failing)), case["name"]
        assert code == (0 if case["pass"] else 1), case["name"]
'''


