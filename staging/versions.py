"""Record versions: how a night's rows join what had arrived before, and what a night
sees. Pure functions over frames.

A record (``source_record_id``) has one version per distinct set of values it was
delivered with, each stamped with the night it arrived (``arrived``) and its place in
the order of arrival (``version``: files in name order, rows in file order). The night
D reads, per record, its latest version that had arrived by D — whatever arrived since —
so that re-running D after D+1 sees exactly what D saw the first time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

ARRIVED = "arrived"
VERSION = "version"
STAMPS = (ARRIVED, VERSION)
_SEQ = "__seq"


@dataclass(frozen=True)
class Merge:
    """The outcome of adding a night's rows to what the night saw before them."""

    records: pl.DataFrame  # the latest version of every record after the night
    added: pl.DataFrame  # the night's new versions, stamped
    outcome: pl.DataFrame  # per incoming row: file, row, duplicate, superseded, replaced


def merge_versions(
    current: pl.DataFrame | None,
    incoming: pl.DataFrame,
    values: list[str],
    night: date | None = None,
    first_version: int = 0,
) -> Merge:
    """Rows in file order; a row equal in every value to the version before it is a
    duplicate, a different one supersedes it. ``current``: the records the night saw
    before its own rows (unstamped)."""
    incoming = incoming.with_row_index(_SEQ).with_columns(pl.col(_SEQ).cast(pl.Int64))
    frames = [incoming]
    untouched = None
    if current is not None and current.height:
        # A column the earlier versions lack (kept only since a later release) is null there.
        columns = [
            pl.col(c) if c in current.columns else pl.lit(None, incoming.schema[c]).alias(c)
            for c in incoming.columns[1:]
        ]
        # Only the records tonight's rows name are compared; the others pass as they are
        # (a day's rows against a year's records: the year was hashed and sorted each night).
        keys = incoming.select("source_record_id").unique()
        untouched = current.join(keys, on="source_record_id", how="anti").select(columns)
        current = current.join(keys, on="source_record_id", how="semi")
        frames.insert(0, current.select(columns).with_columns(pl.lit(-1, pl.Int64).alias(_SEQ)))
    both = pl.concat(frames, how="diagonal_relaxed").sort("source_record_id", _SEQ, maintain_order=True)
    digest = pl.struct(values).hash(seed=7)
    both = both.with_columns(digest.alias("__digest"))
    both = both.with_columns(
        (pl.col("__digest") == pl.col("__digest").shift(1).over("source_record_id"))
        .fill_null(False)
        .alias("__duplicate")
    )
    kept = both.filter(~pl.col("__duplicate"))
    kept = kept.with_columns(
        (pl.col(_SEQ) != pl.col(_SEQ).max().over("source_record_id")).alias("__superseded"),
        (
            (pl.col(_SEQ) >= 0)
            & (pl.col(_SEQ).rank("ordinal").over("source_record_id") == 2)
            & (pl.col(_SEQ).min().over("source_record_id") < 0)
        ).alias("__replaced"),
    )
    helpers = [_SEQ, "__digest", "__duplicate", "__superseded", "__replaced"]
    records = kept.filter(~pl.col("__superseded")).drop(helpers)
    if untouched is not None and untouched.height:
        records = pl.concat([untouched, records], how="vertical_relaxed")
    added = (
        kept.filter(pl.col(_SEQ) >= 0)
        .sort(_SEQ)
        .with_columns(
            pl.lit(night, pl.Date).alias(ARRIVED), (pl.col(_SEQ) + first_version).alias(VERSION)
        )
        .drop(helpers)
    )
    outcome = (
        both.filter(pl.col(_SEQ) >= 0)
        .select(_SEQ, "file", "row", "__duplicate")
        .join(kept.filter(pl.col(_SEQ) >= 0).select(_SEQ, "__superseded", "__replaced"), on=_SEQ, how="left")
        .with_columns(pl.col("__superseded", "__replaced").fill_null(False))
        .sort(_SEQ)
        .drop(_SEQ)
        .rename({"__duplicate": "duplicate", "__superseded": "superseded", "__replaced": "replaced"})
    )
    return Merge(records.sort("source_record_id"), added, outcome)


def as_of(versions: pl.DataFrame, night: date | None, snapshot: bool = False) -> pl.DataFrame:
    """The records a night sees: per record its latest version arrived by ``night`` (every
    version when ``night`` is None). A ``snapshot`` source (the register) is one whole
    delivery: the records of the latest one arrived by ``night``. Unstamped, by key."""
    return latest(versions, night, snapshot).drop(STAMPS)


def latest(versions: pl.DataFrame, night: date | None, snapshot: bool = False) -> pl.DataFrame:
    """:func:`as_of` with each record's stamps kept (the night its version arrived and the
    version's number), by key: what the stage keeps of the newest night, so that a night
    with nothing arrived after it reads its records without sorting every version."""
    seen = versions if night is None else versions.filter(pl.col(ARRIVED) <= night)
    if snapshot and seen.height:
        seen = seen.filter(pl.col(ARRIVED) == pl.col(ARRIVED).max())
    newest = seen.sort(ARRIVED, VERSION).unique("source_record_id", keep="last", maintain_order=True)
    return newest.sort("source_record_id")


def history(versions: pl.DataFrame, record: str) -> pl.DataFrame:
    """Every version of one record, in order of arrival."""
    return versions.filter(pl.col("source_record_id") == record).sort(ARRIVED, VERSION)
