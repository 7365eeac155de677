"""polars: one lazy scan of the CSV, the four checks as one select (the key checked by sorting,
the fastest of the formulations tried: sort, value_counts, group_by, is_duplicated)."""

import polars as pl
from _common import parse_args, report

args = parse_args(__doc__)
cols = ["sale_id", "date", "amount", "product_id"]
keys = pl.col("sale_id").drop_nulls().sort()
first_repeat = (keys == keys.shift(1)) & (keys != keys.shift(-1)).fill_null(True)  # last row of each run
amount = pl.col("amount").cast(pl.Float64, strict=False)
out = (
    pl.scan_csv(args.path, schema_overrides={"sale_id": pl.Int64, "date": pl.String, "amount": pl.String,
                                              "product_id": pl.String})
    .select(
        pl.len().alias("rows"),
        *(pl.col(c).null_count().alias(f"null_{c}") for c in cols),
        first_repeat.sum().alias("duplicate_keys"),
        (amount.is_not_null() & ~amount.is_between(0.01, 10000)).sum().alias("out_of_range"),
    )
    .collect()
    .row(0, named=True)
)
report(out, min_rows=args.min_rows, max_rows=args.max_rows)
