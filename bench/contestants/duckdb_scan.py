"""The floor: DuckDB reads the whole file once and counts its rows (no checks)."""

import duckdb
from _common import literal, parse_args, report

args = parse_args(__doc__)
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
rows = con.execute(f"SELECT count(*) FROM read_csv({literal(args.path)})").fetchone()[0]
report({"rows": rows}, min_rows=args.min_rows, max_rows=args.max_rows)
