"""The floor for PostgreSQL: a bare psycopg COPY of the file into a typed table (no checks)."""

import argparse
import json
import sys

import psycopg

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("path")
parser.add_argument("--url", required=True)
args = parser.parse_args()
with psycopg.connect(args.url) as con:
    con.execute("DROP TABLE IF EXISTS bare_sales")
    con.execute("CREATE TABLE bare_sales (sale_id BIGINT, date DATE, amount NUMERIC(18,2), product_id TEXT)")
    with con.cursor() as cur, cur.copy("COPY bare_sales FROM STDIN (FORMAT csv, HEADER true)") as copy, \
            open(args.path, "rb") as f:
        while chunk := f.read(1 << 20):
            copy.write(chunk)
    rows = con.execute("SELECT count(*) FROM bare_sales").fetchone()[0]
json.dump({"rows": rows}, sys.stdout)
print()
