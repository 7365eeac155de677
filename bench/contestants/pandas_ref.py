"""The reference from the problem statement: pandas read_csv, then the four checks."""

import pandas as pd
from _common import parse_args, report

args = parse_args(__doc__)
df = pd.read_csv(args.path)
nulls = df[["sale_id", "date", "amount", "product_id"]].isna().sum()
key_unique = df["sale_id"].is_unique
keys = df["sale_id"].dropna()
duplicate_keys = 0 if key_unique else int(keys[keys.duplicated(keep=False)].nunique())
amount = pd.to_numeric(df["amount"], errors="coerce")
out_of_range = int((amount.notna() & ~amount.between(0.01, 10000)).sum())
rows = len(df)
report(
    {"rows": rows, "null_sale_id": nulls["sale_id"], "null_date": nulls["date"], "null_amount": nulls["amount"],
     "null_product_id": nulls["product_id"], "duplicate_keys": duplicate_keys, "out_of_range": out_of_range},
    min_rows=args.min_rows, max_rows=args.max_rows,
)
