"""``python -m bench``: heal-pipeline against the pandas reference and its peers, same files, same run.

Usage:
    python -m bench                                   # 1M, 5M and 20M rows, 3 timed runs each
    python -m bench --sizes 1M,5M --repeat 5 --only pandas,polars,"heal validate-quality"
    python -m bench --pg                              # 5M rows into PostgreSQL vs a bare COPY

For each size: a seeded delivery is generated (bench/data/, reused when present), every
contestant runs once and must report the generator's failure counts (the agreement check),
then each runs ``--repeat`` more times, round robin, as a whole process (wall time and peak
RSS; the median is kept). The tables and the targets go to stdout and bench/RESULTS.md.
Exit 1 when a contestant disagrees or fails.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

from bench.generate import COUNT_NAMES, generate
from bench.measure import run_measured
from bench.report import Outcome, SizeResult, render_results, versions
from bench.suite import CONTESTANTS, REPO, Contestant, Job

__all__ = ["main", "parse_size"]

DATA = Path(__file__).resolve().parent / "data"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
STARTUP_ROWS = 1000


def parse_size(text: str) -> int:
    """``1M`` → 1_000_000, ``20k`` → 20_000, ``5000`` → 5000."""
    t = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(t[-1:], 1)
    return int(float(t[:-1] if scale > 1 else t) * scale)


def _label(rows: int) -> str:
    return f"{rows // 1_000_000}M" if rows % 1_000_000 == 0 else f"{rows // 1000}k" if rows % 1000 == 0 else str(rows)


def _job(path: Path, rows: int, workdir: Path) -> Job:
    return Job(path=path, rows=rows, min_rows=int(rows * 0.8), max_rows=int(rows * 1.2), workdir=workdir)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(GX_ANALYTICS_ENABLED="false", SODA_CORE_TELEMETRY_ENABLED="false", PYTHONDONTWRITEBYTECODE="1")
    return env


def _warm(path: Path) -> None:
    """Read the file once so every contestant starts from the page cache."""
    with path.open("rb") as f:
        while f.read(16 * 1024 * 1024):
            pass


def _why(stderr: str) -> str:
    """The error line of a traceback (and where in our code it was raised), else the last lines."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[\w.]*(Error|Exception)\b", line)]
    ours = [line for line in lines if line.startswith("File ") and str(REPO) in line and "site-packages" not in line]
    if errors:
        return (errors[-1][:300] + (f" (at {ours[-1].split(str(REPO) + '/')[-1][:120]})" if ours else ""))
    return " | ".join(lines[-3:])[-400:]


def run_one(contestant: Contestant, job: Job, *, timeout_s: float) -> Outcome:
    """Run once; the outcome carries the counts, or the reason it produced none."""
    if contestant.fresh_target:
        for leftover in (job.target, job.target.with_name(job.target.name + ".wal")):
            leftover.unlink(missing_ok=True)
    m = run_measured(contestant.argv(job), cwd=job.workdir, env=_env(), timeout_s=timeout_s)
    if m.returncode not in contestant.exit_codes:
        return Outcome(m.wall_s, m.peak_rss_mib, None, f"exit {m.returncode}: {_why(m.stderr) or m.stdout[-300:]}",
                       m.method)
    try:
        counts = contestant.counts(m.stdout, job)
    except (ValueError, KeyError, IndexError, TypeError) as exc:  # output we cannot read
        return Outcome(m.wall_s, m.peak_rss_mib, None, f"unreadable output ({exc}): {m.stdout[-300:]}", m.method)
    return Outcome(m.wall_s, m.peak_rss_mib, counts, None, m.method)


def disagreement(contestant: Contestant, counts: dict, expected: dict[str, int]) -> list[str]:
    """What ``counts`` gets wrong against the generator's truth (empty when it agrees)."""
    names = ("rows",) if contestant.kind == "floor" else COUNT_NAMES
    wrong = [f"{n} {counts.get(n)} != {expected[n]}" for n in names if counts.get(n) != expected[n]]
    if not counts.get("volume_ok", False):
        wrong.append("row-count bound not met")
    for n in ("unparseable", "malformed"):
        if counts.get(n):
            wrong.append(f"{n} {counts[n]} != 0")
    if contestant.name == "heal run":
        if counts.get("quarantined") != expected["quarantined"]:
            wrong.append(f"quarantined {counts.get('quarantined')} != {expected['quarantined']}")
        if not counts.get("conserved") or counts.get("rows_loaded") != expected["rows"] - expected["quarantined"]:
            wrong.append(f"loaded {counts.get('rows_loaded')} (conserved: {counts.get('conserved')})")
    return wrong


def bench_size(
    rows: int, contestants: list[Contestant], *, repeat: int, seed: int, timeout_s: float, say
) -> SizeResult:
    started = time.perf_counter()
    delivery = generate(rows, seed=seed, directory=DATA)
    say(f"\n== {_label(rows)} rows: {delivery.path.name}, {delivery.bytes / 2**20:.0f} MiB "
        f"(generated or reused in {time.perf_counter() - started:.1f} s)")
    workdir = DATA / f"work-{_label(rows)}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    job = _job(delivery.path, rows, workdir)
    result = SizeResult(rows=rows, label=_label(rows), bytes=delivery.bytes, expected=delivery.expected)
    _warm(delivery.path)
    runnable = []
    for c in contestants:
        missing = c.missing()
        if missing:
            result.skipped[c.name] = f"not installed: {', '.join(missing)} (pip install -e '.[bench]')"
            continue
        first = run_one(c, job, timeout_s=timeout_s)
        result.agreement[c.name] = first.counts
        if first.error:
            result.errors[c.name] = first.error
        else:
            wrong = disagreement(c, first.counts, delivery.expected)
            if wrong:
                result.errors[c.name] = "disagrees: " + "; ".join(wrong)
            else:
                runnable.append(c)
        say(f"   agreement  {c.name:<24} {'ok' if c in runnable else result.errors[c.name][:150]}")
    for i in range(repeat):
        order = runnable if i % 2 == 0 else list(reversed(runnable))
        for c in order:
            out = run_one(c, job, timeout_s=timeout_s)
            if out.error or disagreement(c, out.counts, delivery.expected):
                result.errors[c.name] = out.error or "disagrees on a timed run: " + "; ".join(
                    disagreement(c, out.counts, delivery.expected))
            result.runs.setdefault(c.name, []).append(out)
            say(f"   run {i + 1}/{repeat}  {c.name:<24} {out.wall_s:8.2f} s {out.peak_rss_mib:8.0f} MiB")
    shutil.rmtree(workdir, ignore_errors=True)
    return result


def bench_startup(*, repeat: int, seed: int, timeout_s: float, say) -> list[float]:
    """``heal run`` on a 1,000-row delivery, interpreter start included."""
    delivery = generate(STARTUP_ROWS, seed=seed, directory=DATA)
    workdir = DATA / "work-startup"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    heal = next(c for c in CONTESTANTS if c.name == "heal run")
    job = _job(delivery.path, STARTUP_ROWS, workdir)
    walls = []
    for i in range(repeat + 1):
        out = run_one(heal, job, timeout_s=timeout_s)
        if out.error or disagreement(heal, out.counts, delivery.expected):
            raise SystemExit(f"heal run on {STARTUP_ROWS} rows failed: {out.error or out.counts}")
        if i:  # the first run warms the page cache and the bytecode
            walls.append(out.wall_s)
    shutil.rmtree(workdir, ignore_errors=True)
    say(f"\n== heal run on {STARTUP_ROWS} rows: median {statistics.median(walls):.2f} s over {len(walls)} runs")
    return walls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1M,5M,20M", help="comma-separated row counts, e.g. 1M,5M,20M or 20k")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per contestant and size (median kept)")
    parser.add_argument("--only", default="", help="comma-separated contestant names (default: all)")
    parser.add_argument("--seed", type=int, default=42, help="generator seed")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds before a run is killed")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the results (Markdown)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    parser.add_argument("--pg", action="store_true", help="PostgreSQL: the pipeline vs a bare COPY (see bench/pg.py)")
    parser.add_argument("--pg-rows", default="5M", help="rows for --pg")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test", help="database for --pg")
    args = parser.parse_args(argv)

    if args.pg:
        from bench.pg import run_pg  # deferred: psycopg and PostgreSQL only here

        return run_pg(parse_size(args.pg_rows), url=args.pg_url, repeat=args.repeat, seed=args.seed,
                      data=DATA, say=print)
    wanted = {w.strip() for w in args.only.split(",") if w.strip()}
    unknown = wanted - {c.name for c in CONTESTANTS}
    if unknown:
        parser.error(f"unknown contestant(s) {sorted(unknown)}; known: {[c.name for c in CONTESTANTS]}")
    contestants = [c for c in CONTESTANTS if not wanted or c.name in wanted]
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    started = time.perf_counter()
    load_before = os.getloadavg()
    print(f"bench: {', '.join(_label(s) for s in sizes)} rows x {len(contestants)} contestants x "
          f"{args.repeat} runs on {os.cpu_count()} cores ({platform.platform()})")
    results = [bench_size(s, contestants, repeat=args.repeat, seed=args.seed, timeout_s=args.timeout, say=print)
               for s in sizes]
    startup = []
    if any(c.name == "heal run" for c in contestants):
        startup = bench_startup(repeat=max(args.repeat, 3), seed=args.seed, timeout_s=args.timeout, say=print)
    elapsed = time.perf_counter() - started
    text = render_results(
        results, startup=startup, contestants=contestants, versions=versions(), elapsed_s=elapsed,
        command="python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        load=(load_before, os.getloadavg()),
    )
    print("\n" + text)
    if not args.no_write:
        args.out.write_text(text)
        print(f"written to {args.out}")
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
