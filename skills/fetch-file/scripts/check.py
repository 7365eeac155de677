"""Fetch today's delivery (local path or glob, s3://, https://) and check it is there, big
enough, matches its checksum, and was not loaded before.

Usage:
    python skills/fetch-file/scripts/check.py data/sales/2026-11-29.csv
    python skills/fetch-file/scripts/check.py s3://vendor/sales/{date}.csv --date 2026-11-29 \
        --checksum sidecar --min-bytes 100 --json

Exit codes: 0 fetched, 1 not usable (source_missing, source_too_small, checksum_mismatch,
transient, duplicate_delivery), 2 could not run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from pathlib import Path

from tools.context import StepContext
from tools.sources import check_fetch, resolve_uri
from tools.verdict import HealError, Verdict, could_not_run, finish

SKILL = "fetch-file"


def run_step(ctx: StepContext) -> Verdict:
    return check_fetch(
        SKILL, ctx.source.uri, dest_dir=ctx.workdir, min_bytes=ctx.source.min_bytes,
        checksum=ctx.source.checksum, timeout_s=ctx.source.timeout_s,
        known_fingerprints=ctx.history.fingerprints,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=SKILL, description=__doc__.splitlines()[0])
    parser.add_argument("uri", help="path, glob or folder; s3://bucket/key; https://...; {date} is filled in")
    parser.add_argument("--date", default=dt.date.today().isoformat(), help="run date for {date} (YYYY-MM-DD)")
    parser.add_argument("--min-bytes", type=int, default=1, help="smallest acceptable size in bytes")
    parser.add_argument("--checksum", help="sha256:HEX, md5:HEX, or 'sidecar' (read URI.sha256 / URI.md5)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per network operation")
    parser.add_argument("--dest", help="folder for downloaded files (default: a temporary folder)")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON verdict on stdout")
    args = parser.parse_args(argv)
    try:
        run_date = dt.date.fromisoformat(args.date)
        uri = resolve_uri(args.uri, run_date=run_date)
        dest = Path(args.dest) if args.dest else Path(tempfile.mkdtemp(prefix="heal-fetch-"))
        verdict = check_fetch(SKILL, uri, dest_dir=dest, min_bytes=args.min_bytes,
                              checksum=args.checksum, timeout_s=args.timeout)
    except ValueError:
        return could_not_run(SKILL, HealError(f"--date must be YYYY-MM-DD, got {args.date!r}"))
    except HealError as exc:
        return could_not_run(SKILL, exc)
    return finish(verdict, as_json=args.json, next_step="retry, then use-fallback-source")


if __name__ == "__main__":
    sys.exit(main())
