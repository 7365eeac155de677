"""The long fuzz run, by hand: `python -m bench.fuzz [--cases 2000] [--seed 1] [--big]`.

Feeds the delivery reader and the validate-schema checker random corruptions of a real
delivery (the same generators as tests/test_fuzz.py, more cases), plus with --big the
hostile giants: a 200 MB file with no newline, JSON nested 100k deep, an invalid gzip
stream. Every case must end in a verdict (never a traceback or a hang); the summary
(cases, outcomes, peak RSS) goes to stdout and bench/FUZZ.md.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import duckdb
from hypothesis import HealthCheck, given, settings

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from orchestrator.skills import SkillRegistry  # noqa: E402
from tests.test_fuzz import CONTRACT, corrupted  # noqa: E402
from tools.readers import read_delivery  # noqa: E402
from tools.sinks import configure_working_connection  # noqa: E402
from tools.verdict import InputError  # noqa: E402

SCHEMA_CHECK = SkillRegistry(REPO / "skills").module("validate-schema")


def one_case(path: Path, outcomes: collections.Counter) -> None:
    con = duckdb.connect()
    configure_working_connection(con, memory_limit="256MB")
    try:
        read_delivery(con, path, expected_columns=CONTRACT.names)
        outcomes["read"] += 1
    except InputError:
        outcomes["input_error"] += 1
    verdict = SCHEMA_CHECK.read_and_check(con, str(path), contract=CONTRACT)
    outcomes["verdict_pass" if verdict.passed else f"verdict_{verdict.failure_class}"] += 1


def giants(folder: Path) -> list[Path]:
    out = []
    big = folder / "no-newline.csv"
    with big.open("wb") as f:
        f.write(b"sale_id,date,amount,product_id\n1,2026-11-02,")
        chunk = b"9" * (8 << 20)
        for _ in range(25):  # 200 MB in one field, no newline
            f.write(chunk)
    out.append(big)
    nested = folder / "nested.json"
    nested.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    bad_gzip = folder / "bad.csv.gz"
    bad_gzip.write_bytes(gzip.compress(b"sale_id,amount\n" + b"1,2\n" * 100_000)[:5000] + os.urandom(5000))
    out.append(nested)
    out.append(bad_gzip)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000, help="random corruptions to try")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--big", action="store_true", help="also the 200 MB no-newline file and friends")
    parser.add_argument("--write", action="store_true", help="write the summary to bench/FUZZ.md")
    args = parser.parse_args(argv)
    outcomes: collections.Counter[str] = collections.Counter()
    crashes: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="heal-fuzz-"))
    path = folder / "delivery.csv"
    started = time.monotonic()

    @settings(max_examples=args.cases, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(payload=corrupted())
    def run(payload: bytes) -> None:
        path.write_bytes(payload)
        try:
            one_case(path, outcomes)
        except Exception as exc:  # the point of a fuzz run: count, don't stop
            crashes.append(f"{type(exc).__name__}: {str(exc)[:200]}")
        outcomes["cases"] += 1

    run()
    if args.big:
        for giant in giants(folder):
            t = time.monotonic()
            try:
                one_case(giant, outcomes)
            except Exception as exc:  # noqa: BLE001
                crashes.append(f"{giant.name}: {type(exc).__name__}: {str(exc)[:200]}")
            outcomes["cases"] += 1
            print(f"{giant.name}: {time.monotonic() - t:.1f}s", file=sys.stderr)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = [
        "# Fuzz run summary",
        "",
        f"`python -m bench.fuzz --cases {args.cases}{' --big' if args.big else ''}`: "
        f"{outcomes['cases']} cases in {time.monotonic() - started:.0f} s, peak RSS {peak_mib:.0f} MiB, "
        f"{len(crashes)} crashes.",
        "",
        "| outcome | cases |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in sorted(outcomes.items()) if k != "cases"],
    ]
    if crashes:
        lines += ["", "Crashes:", *[f"- {c}" for c in crashes[:50]]]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        (REPO / "bench" / "FUZZ.md").write_text(text)
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
