"""Stages written by earlier versions of Guardline, brought to today's layout once, in
order, when a stage is opened — each step named and committed as one transaction, the
layout's version kept in ``layout.json``. Reads never migrate.

- 0 → 1: one ``ledger.parquet`` for all sources, split per source.
- 1 → 2: ``records/<source>.parquet`` (the latest version of each record only) becomes
  ``versions/<source>.parquet``, each version stamped with the night its file was loaded
  (earlier versions were not kept: they are gone); ``links.parquet`` becomes the links
  of the latest night run; review decisions apply from that night.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING

import polars as pl

from staging.layout import LAYOUT_VERSION

if TYPE_CHECKING:
    from staging.stage import Stage


def layout_version(stage: Stage) -> int:
    root = stage.root
    if stage.layout.marker.exists():
        return int(json.loads(stage.layout.marker.read_text(encoding="utf-8")).get("version", 0))
    if (root / "ledger.parquet").exists():
        return 0
    if (root / "records").is_dir() or (root / "links.parquet").exists():
        return 1
    return LAYOUT_VERSION  # a new stage, or one with nothing staged yet


def migrate(stage: Stage) -> list[str]:
    """Every step from the stage's layout to today's; the names of the steps taken."""
    taken = []
    version = layout_version(stage)
    for target, step in STEPS:
        if version < target:
            with stage.transaction():
                step(stage)
                stage.save_marker({**stage._marker(), "version": target})
            taken.append(step.__name__)
            version = target
    return taken


def split_ledger(stage: Stage) -> None:
    legacy = stage.root / "ledger.parquet"
    for (stage_name,), part in pl.read_parquet(legacy).group_by("source"):
        stage._write_parquet(part.sort("as_of", "file"), stage.layout.ledger(stage_name))
    stage._delete(legacy)


def stamp_versions(stage: Stage) -> None:
    ledger = stage.ledger()
    latest_night = _latest_night(stage, ledger)
    folder = stage.root / "records"
    snapshots = []
    for path in sorted(folder.glob("*.parquet")) if folder.is_dir() else ():
        records = pl.read_parquet(path)
        loaded = (
            ledger.filter((pl.col("source") == path.stem) & (pl.col("status") == "loaded"))
            .group_by("file")
            .agg(pl.col("as_of").max().alias("arrived"))
        )
        stamped = (
            records.join(loaded, on="file", how="left")
            .with_columns(pl.col("arrived").fill_null(latest_night))
            .with_row_index("version")
            .with_columns(pl.col("version").cast(pl.Int64))
        )
        if path.stem == "registry":  # the one source delivered whole in the old layout
            snapshots.append(path.stem)
            stamped = stamped.with_columns(pl.col("arrived").max())
        stage.save_versions(path.stem, stamped.select(*records.columns, "arrived", "version"), path.stem in snapshots)
        stage._delete(path)
    if folder.is_dir():
        stage._delete(folder)
    links = stage.root / "links.parquet"
    if links.exists():
        stage.save_nightly("links", latest_night, pl.read_parquet(links))
        stage._delete(links)
    decisions = stage.layout.decisions
    if decisions.exists():
        old = pl.read_parquet(decisions)
        if "applies_from" not in old.columns:
            stage._write_parquet(old.with_columns(pl.lit(latest_night, pl.Date).alias("applies_from")), decisions)
    stage.save_marker({**stage._marker(), "snapshots": snapshots})


def _latest_night(stage: Stage, ledger: pl.DataFrame) -> date:
    nights = stage.nights("flags")
    if nights:
        return nights[-1]
    return ledger["as_of"].max() if ledger.height else date.today()


STEPS: tuple[tuple[int, Callable[[Stage], None]], ...] = ((1, split_ledger), (2, stamp_versions))
