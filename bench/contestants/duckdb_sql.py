"""One hand-written DuckDB query: the four checks in a single pass over the file (auto-detected
types; the key checked by one GROUP BY, whose per-key counts also give the null counts)."""

import duckdb
from _common import literal, parse_args, report

args = parse_args(__doc__)
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
row = con.execute(f"""
    SELECT sum(n), sum(n_date), sum(n_amount), sum(n_product), sum(n) FILTER (WHERE sale_id IS NULL),
           count(*) FILTER (WHERE sale_id IS NOT NULL AND n > 1), sum(bad_amount)
    FROM (
        SELECT sale_id, count(*) AS n, count(*) - count(date) AS n_date, count(*) - count(amount) AS n_amount,
               count(*) - count(product_id) AS n_product,
               count(*) FILTER (WHERE amount < 0.01 OR amount > 10000) AS bad_amount
        FROM read_csv({literal(args.path)})
        GROUP BY sale_id
    )
""").fetchone()
rows, n_date, n_amount, n_product, n_key, dups, bad = (int(v or 0) for v in row)
report({"rows": rows, "null_sale_id": n_key, "null_date": n_date, "null_amount": n_amount,
        "null_product_id": n_product, "duplicate_keys": dups, "out_of_range": bad},
       min_rows=args.min_rows, max_rows=args.max_rows)
