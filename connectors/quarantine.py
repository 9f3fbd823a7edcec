"""Rows that are not loaded, as quarantine entries: file, row, field and reason, with
the row's delivered text. Pure: batches in, frames out."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl

from connectors.canonical import CONTROL, PROBLEMS, raw_values
from connectors.landing import Batch
from connectors.readers.countable import countable_rows
from connectors.results import FileResult
from connectors.spec import Source
from guardline.errors import DeliveryError
from staging.stage import QUARANTINE_SCHEMA


def quarantine_rows(source: Source, batch: Batch, as_of: date, only_problems: bool) -> pl.DataFrame:
    """Quarantine entries of a batch: the problem rows, or every row with the batch's reason."""
    raw = batch.raw
    frames = []
    if batch.canonical is not None:
        rows = batch.canonical.frame
        if only_problems:
            rows = rows.filter(pl.col(PROBLEMS).list.len() > 0)
            rows = rows.select("row", pl.col(PROBLEMS).list.first().alias("problem"))
        else:  # the file was refused: its reason, and each row's own where it has one
            own = pl.col(PROBLEMS).list.first()
            rows = rows.select(
                "row",
                pl.when(own.is_not_null())
                .then(pl.format("{}; file refused: {}", own, pl.lit(batch.failure)))
                .otherwise(pl.lit(f"(file): file refused: {batch.failure}"))
                .alias("problem"),
            )
        if rows.height:
            frames.append(
                rows.join(raw_values(source, raw, rows["row"]), on="row", how="left").select(
                    "row",
                    pl.col("problem").str.split_exact(": ", 1).struct.field("field_0").alias("field"),
                    pl.col("problem").alias("reason"),
                    "raw",
                )
            )
    if raw.rejected is not None and raw.rejected.height:
        reason = (
            raw.rejected["reason"]
            if only_problems
            else raw.rejected["reason"] + f"; file refused: {batch.failure}"
        )
        frames.append(
            raw.rejected.select(
                pl.col("row").cast(pl.Int64),
                (pl.col("field") if "field" in raw.rejected.columns else pl.lit("(row)")).alias("field"),
                reason.alias("reason"),
                pl.col("raw"),
            )
        )
    if not frames:
        return pl.DataFrame(schema=QUARANTINE_SCHEMA)
    return placed(pl.concat(frames), source, raw.file, raw.sha256, as_of)


def placed(rows: pl.DataFrame, source: Source, file: str, sha256: str, as_of: date) -> pl.DataFrame:
    """Quarantine rows (row, field, reason, raw) with where they came from; control
    characters in the delivered text shown as U+FFFD (a NUL cannot enter PostgreSQL)."""
    return rows.with_columns(
        pl.col("reason", "raw").str.replace_all(CONTROL, "\ufffd"),
        pl.lit(source.stage_name).alias("source"),
        pl.lit(file).alias("file"),
        pl.lit(sha256).alias("sha256"),
        pl.lit(as_of).alias("as_of"),
    ).select(list(QUARANTINE_SCHEMA))


def refusal(
    source: Source, path: Path | None, result: FileResult, error: DeliveryError, as_of: date
) -> tuple[FileResult, pl.DataFrame]:
    """A file refused whole: its rows quarantined with the reason where they can be
    counted (row 0 stands for the file when none can)."""
    result.status = "failed"
    result.reason = error.reason if error.row is None else str(error).split(": ", 1)[1]
    counted = countable_rows(source, path, error) if path is not None else None
    if counted is None:
        rows = pl.DataFrame(
            {"row": [0], "field": ["(file)"], "reason": [result.reason], "raw": [None]},
            schema={"row": pl.Int64, "field": pl.String, "reason": pl.String, "raw": pl.String},
        )
    else:
        rows = counted.select(
            "row",
            pl.lit("(file)").alias("field"),
            pl.lit(f"file refused: {result.reason}").alias("reason"),
            "raw",
        )
        result.rows_read = result.quarantined = counted.height
    return result, placed(rows, source, result.file, result.sha256, as_of)
