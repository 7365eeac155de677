"""What every contestant script shares: its command line and how it reports.

A contestant is run as a whole process: ``python bench/contestants/NAME.py FILE --min-rows A
--max-rows B`` prints one JSON object on stdout with the counts of :data:`bench.generate.COUNT_NAMES`
(``rows`` alone for the floors) and ``volume_ok``, whether ``rows`` lies in [A, B].
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["literal", "parse_args", "report"]


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("path", help="the delivery CSV")
    parser.add_argument("--min-rows", type=int, default=0, help="lower row-count bound")
    parser.add_argument("--max-rows", type=int, default=2**62, help="upper row-count bound")
    parser.add_argument("--out", help="(loaders) the database file to write")
    return parser.parse_args()


def literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def report(counts: dict[str, int], *, min_rows: int, max_rows: int) -> None:
    rows = int(counts["rows"])
    out = {k: int(v) for k, v in counts.items()}
    out["volume_ok"] = min_rows <= rows <= max_rows
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
