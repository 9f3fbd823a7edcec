"""The staging area: the latest version of every record, the quarantine, the ledger
of processed files and the exchange database's watermarks.

Parquet and JSON files under one folder. What one source's night changes (records,
ledger, quarantine, watermark) is committed as one step (:meth:`Stage.transaction`), so
a kill at any instant leaves the previous night or the new one. It is what the sync
DAGs hand to matching, and what makes a re-run of a night change nothing: a file
already loaded (same bytes) is skipped, a record seen again with the same values is a
duplicate, with other values it supersedes the staged version.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from connectors.human_resources import Watermark
from guardline.atomic import Hook, Transaction, file_lock, recover

SEQ = "__seq"
LEDGER_SCHEMA = {
    "source": pl.String,
    "file": pl.String,
    "sha256": pl.String,
    "size": pl.Int64,
    "as_of": pl.Date,
    "status": pl.String,
    "reason": pl.String,
    "rows_read": pl.Int64,
    "loaded": pl.Int64,
    "quarantined": pl.Int64,
    "duplicates": pl.Int64,
    "superseded": pl.Int64,
    "replaced": pl.Int64,
    "warnings": pl.String,
}
QUARANTINE_SCHEMA = {
    "source": pl.String,
    "file": pl.String,
    "sha256": pl.String,
    "row": pl.Int64,
    "field": pl.String,
    "reason": pl.String,
    "raw": pl.String,
    "as_of": pl.Date,
}


@dataclass(frozen=True)
class Prior:
    """What the stage knows of some bytes already seen: the file, its status, its rows."""

    file: str
    status: str
    rows: int


@dataclass(frozen=True)
class Merge:
    """The outcome of adding a night's rows to what was staged."""

    records: pl.DataFrame  # the latest version of every record
    outcome: pl.DataFrame  # per incoming row: file, row, duplicate, superseded, replaced


def merge_versions(current: pl.DataFrame | None, incoming: pl.DataFrame, values: list[str]) -> Merge:
    """Rows in file order; a row equal in every value to the version before it is a
    duplicate, a different one supersedes it. Pure: frames in, frames out.
    """
    incoming = incoming.with_row_index(SEQ).with_columns(pl.col(SEQ).cast(pl.Int64))
    frames = [incoming]
    if current is not None and current.height:
        frames.insert(0, current.select(incoming.columns[1:]).with_columns(pl.lit(-1, pl.Int64).alias(SEQ)))
    both = pl.concat(frames, how="diagonal_relaxed").sort("source_record_id", SEQ, maintain_order=True)
    digest = pl.struct(values).hash(seed=7)
    both = both.with_columns(digest.alias("__digest"))
    both = both.with_columns(
        (pl.col("__digest") == pl.col("__digest").shift(1).over("source_record_id"))
        .fill_null(False)
        .alias("__duplicate")
    )
    kept = both.filter(~pl.col("__duplicate"))
    kept = kept.with_columns(
        (pl.col(SEQ) != pl.col(SEQ).max().over("source_record_id")).alias("__superseded"),
        (
            (pl.col(SEQ) >= 0)
            & (pl.col(SEQ).rank("ordinal").over("source_record_id") == 2)
            & (pl.col(SEQ).min().over("source_record_id") < 0)
        ).alias("__replaced"),
    )
    records = kept.filter(~pl.col("__superseded")).drop(
        SEQ, "__digest", "__duplicate", "__superseded", "__replaced"
    )
    outcome = (
        both.filter(pl.col(SEQ) >= 0)
        .select(SEQ, "file", "row", "__duplicate")
        .join(kept.filter(pl.col(SEQ) >= 0).select(SEQ, "__superseded", "__replaced"), on=SEQ, how="left")
        .with_columns(pl.col("__superseded", "__replaced").fill_null(False))
        .sort(SEQ)
        .drop(SEQ)
        .rename({"__duplicate": "duplicate", "__superseded": "superseded", "__replaced": "replaced"})
    )
    return Merge(records.sort("source_record_id"), outcome)


def stage_lock(root: Path, timeout: float):
    """One run at a time on a stage (``<stage>/.lock``): a second waits ``timeout``
    seconds, then is told who holds it."""
    return file_lock(root / ".lock", f"the stage {root}", timeout)


class Stage:
    """The staging folder of one deployment (``--stage``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tx: Transaction | None = None
        recover(root)  # a commit that a killed process left half-applied is finished first

    @contextmanager
    def transaction(self, on_step: Hook | None = None) -> Iterator[Transaction]:
        """Every write inside the block is committed together when it ends (reads inside
        it see the block's own writes); an exception drops them all."""
        if self._tx is not None:
            yield self._tx
            return
        self._tx = Transaction(self.root, on_step)
        try:
            yield self._tx
            self._tx.commit()
        finally:
            self._tx = None

    def _write_parquet(self, frame: pl.DataFrame, path: Path) -> None:
        with self.transaction() as tx:
            tx.put(path, frame.write_parquet, frame)

    def save_frame(self, name: str, frame: pl.DataFrame) -> None:
        """A Parquet file of the stage (``links.parquet``, ``flags/<D>.parquet``), replaced
        atomically — together with the other writes of an open :meth:`transaction`."""
        self._write_parquet(frame, self.root / name)

    def _read_parquet(self, path: Path) -> pl.DataFrame | None:
        if self._tx is not None:
            pending, value = self._tx.pending(path)
            if pending:
                return value
        return pl.read_parquet(path) if path.exists() else None

    def _records_path(self, stage_name: str) -> Path:
        return self.root / "records" / f"{stage_name}.parquet"

    def records(self, stage_name: str) -> pl.DataFrame | None:
        return self._read_parquet(self._records_path(stage_name))

    def ledger(self, stage_name: str | None = None) -> pl.DataFrame:
        """The account of every file, kept per source so that the sync DAGs of different
        departments, running at the same time, never write the same file."""
        self._split_legacy_ledger()
        frames = self._per_source("ledger", stage_name)
        return (
            pl.concat(frames).sort("as_of", "source", "file")
            if frames
            else pl.DataFrame(schema=LEDGER_SCHEMA)
        )

    def _per_source(self, folder: str, stage_name: str | None) -> list[pl.DataFrame]:
        """The frames of ``<root>/<folder>/<source>.parquet``: one source's, or every one's."""
        paths = (
            sorted((self.root / folder).glob("*.parquet"))
            if stage_name is None
            else [self.root / folder / f"{stage_name}.parquet"]
        )
        if self._tx is not None and stage_name is None:  # files this transaction creates
            paths += [p for p in self._tx_paths(self.root / folder) if p not in paths]
        return [f for f in map(self._read_parquet, paths) if f is not None]

    def _tx_paths(self, folder: Path) -> list[Path]:
        return self._tx.pending_paths(folder) if self._tx else []

    def _split_legacy_ledger(self) -> None:
        """A stage from before the per-source ledger keeps its one ``ledger.parquet``:
        split it once, so that its files stay known as loaded."""
        legacy = self.root / "ledger.parquet"
        if legacy.exists():
            for (stage_name,), part in pl.read_parquet(legacy).group_by("source"):
                self._write_parquet(
                    part.sort("as_of", "file"), self.root / "ledger" / f"{stage_name}.parquet"
                )
            legacy.unlink()

    def quarantine(self, stage_name: str | None = None) -> pl.DataFrame:
        frames = self._per_source("quarantine", stage_name)
        return pl.concat(frames) if frames else pl.DataFrame(schema=QUARANTINE_SCHEMA)

    def known_files(self, stage_name: str) -> dict[str, Prior]:
        """Checksum -> the file first seen with those bytes: loaded before refused, then
        the earliest; a copy of it under another name counts as its rows' duplicates."""
        ledger = self.ledger(stage_name).filter(pl.col("status").is_in(["loaded", "failed"]))
        ledger = ledger.sort(pl.col("status") != "loaded", "as_of", "file", descending=True)
        return {
            sha: Prior(file, status, rows)
            for sha, file, status, rows in ledger.select("sha256", "file", "status", "rows_read").iter_rows()
        }

    def save_records(self, stage_name: str, records: pl.DataFrame) -> None:
        self._write_parquet(records, self._records_path(stage_name))

    def save_quarantine(self, stage_name: str, rows: pl.DataFrame) -> None:
        """Insert by (file checksum, row), the first account kept: quarantining the same
        file again (a refused file is read every night) changes nothing."""
        if rows.height == 0:
            return
        rows = rows.select(list(QUARANTINE_SCHEMA)).cast(QUARANTINE_SCHEMA)
        path = self.root / "quarantine" / f"{stage_name}.parquet"
        old = self._read_parquet(path)
        if old is not None:
            rows = pl.concat(
                [
                    old,
                    rows.join(
                        old.select("sha256", "row"), on=["sha256", "row"], how="anti", nulls_equal=True
                    ),
                ]
            )
        self._write_parquet(rows.sort("file", "row", nulls_last=False), path)

    def save_ledger(self, entries: pl.DataFrame) -> None:
        """Upsert by (source, file, checksum): a re-run replaces its own entries, except
        that a file refused again keeps the account of the night it was first refused."""
        if entries.height == 0:
            return
        entries = entries.select(list(LEDGER_SCHEMA)).cast(LEDGER_SCHEMA)
        for (stage_name,), part in entries.group_by("source"):
            current = self.ledger(stage_name)
            refused_before = current.filter(pl.col("status") == "failed").select("file", "sha256")
            part = part.join(
                refused_before.with_columns(pl.lit("failed").alias("status")),
                on=["file", "sha256", "status"],
                how="anti",
            )
            old = current.join(part.select("file", "sha256"), on=["file", "sha256"], how="anti")
            self._write_parquet(
                pl.concat([old, part]).sort("as_of", "file"), self.root / "ledger" / f"{stage_name}.parquet"
            )

    def watermark(self, stage_name: str) -> Watermark:
        data = self._watermarks().get(stage_name) or {}
        return Watermark(
            data.get("period"), date.fromisoformat(data["event_date"]) if data.get("event_date") else None
        )

    def save_watermark(self, stage_name: str, mark: Watermark) -> None:
        data = self._watermarks()
        data[stage_name] = {
            "period": mark.period,
            "event_date": mark.event_date.isoformat() if mark.event_date else None,
        }
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
        with self.transaction() as tx:
            tx.put(self._watermarks_path, lambda tmp: tmp.write_text(text, encoding="utf-8"), text)

    @property
    def _watermarks_path(self) -> Path:
        return self.root / "watermarks.json"

    def _watermarks(self) -> dict:
        path = self._watermarks_path
        if self._tx is not None:
            pending, text = self._tx.pending(path)
            if pending:
                return json.loads(text) if text else {}
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
