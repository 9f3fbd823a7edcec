"""Flags across nights: new, continuing, resolved, and when the episode began.

A run for D compares with the latest earlier run (as-of date before D). Re-running D
compares with the same earlier run, so a re-run changes nothing.
"""

from __future__ import annotations

from datetime import date

import polars as pl

KEY = ["household_id", "rule_id"]


def lifecycle(current: pl.DataFrame, previous: pl.DataFrame | None, as_of: date) -> pl.DataFrame:
    """``current`` flags of D with status and first_flagged_date; resolved rows added
    for flags of the previous run that no longer fire."""
    prev = (
        previous.filter(pl.col("status") != "resolved").select(*KEY, "first_flagged_date")
        if previous is not None and previous.height
        else pl.DataFrame(
            schema={"household_id": pl.String, "rule_id": pl.String, "first_flagged_date": pl.Date}
        )
    )
    now = current.join(prev, on=KEY, how="left").with_columns(
        pl.when(pl.col("first_flagged_date").is_null())
        .then(pl.lit("new"))
        .otherwise(pl.lit("continuing"))
        .alias("status"),
        pl.col("first_flagged_date").fill_null(pl.lit(as_of)),
    )
    gone = pl.DataFrame()
    if previous is not None and previous.height:
        gone = (
            previous.filter(pl.col("status") != "resolved")
            .join(current.select(KEY), on=KEY, how="anti")
            .with_columns(pl.lit("resolved").alias("status"))
        )
    out = pl.concat([now, gone.select(now.columns)], how="vertical_relaxed") if gone.height else now
    return out.with_columns(pl.lit(as_of).alias("as_of_date")).sort(*KEY)
