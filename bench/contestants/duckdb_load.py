"""The floor for a load: DuckDB copies the file into a table of a database file (no checks)."""

import duckdb
from _common import literal, parse_args, report

args = parse_args(__doc__)
con = duckdb.connect(args.out)
con.execute("SET enable_progress_bar = false")
con.execute(f"CREATE OR REPLACE TABLE sales AS SELECT * FROM read_csv({literal(args.path)})")
rows = con.execute("SELECT count(*) FROM sales").fetchone()[0]
con.close()
report({"rows": rows}, min_rows=args.min_rows, max_rows=args.max_rows)
