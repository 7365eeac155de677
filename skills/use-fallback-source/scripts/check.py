"""Fetch the delivery from the pipeline's fallback location when the primary one failed,
with the same checks as fetch-file.

Usage:
    python skills/use-fallback-source/scripts/check.py backup/sales/2026-11-29.csv
    python skills/use-fallback-source/scripts/check.py s3://backup/sales/{date}.csv \
        --date 2026-11-29 --json

Exit codes: 0 fetched, 1 not usable (escalate), 2 could not run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from pathlib import Path

from tools.context import StepContext
from tools.sources import check_fetch, resolve_uri
from tools.verdict import Criterion, HealError, Verdict, could_not_run, finish

SKILL = "use-fallback-source"


def run_step(ctx: StepContext) -> Verdict:
    if not ctx.source.fallback:
        return Verdict.from_criteria(
            SKILL,
            [Criterion("present", False, None, "a fallback source",
                       "the pipeline names no source.fallback: escalate")],
            failure_classes={"present": "source_missing"},
        )
    return check_fetch(
        SKILL, ctx.source.fallback, dest_dir=ctx.workdir, min_bytes=ctx.source.min_bytes,
        checksum=ctx.source.checksum, timeout_s=ctx.source.timeout_s,
        known_fingerprints=ctx.history.fingerprints,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=SKILL, description=__doc__.splitlines()[0])
    parser.add_argument("uri", help="the fallback: path, s3://bucket/key or https://...; {date} is filled in")
    parser.add_argument("--date", default=dt.date.today().isoformat(), help="run date for {date} (YYYY-MM-DD)")
    parser.add_argument("--min-bytes", type=int, default=1, help="smallest acceptable size in bytes")
    parser.add_argument("--checksum", help="sha256:HEX, md5:HEX, or 'sidecar'")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per network operation")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON verdict on stdout")
    args = parser.parse_args(argv)
    try:
        uri = resolve_uri(args.uri, run_date=dt.date.fromisoformat(args.date))
        verdict = check_fetch(SKILL, uri, dest_dir=Path(tempfile.mkdtemp(prefix="heal-fetch-")),
                              min_bytes=args.min_bytes, checksum=args.checksum, timeout_s=args.timeout)
    except ValueError:
        return could_not_run(SKILL, HealError(f"--date must be YYYY-MM-DD, got {args.date!r}"))
    except HealError as exc:
        return could_not_run(SKILL, exc)
    return finish(verdict, as_json=args.json, next_step="escalate: neither source is usable")


if __name__ == "__main__":
    sys.exit(main())
