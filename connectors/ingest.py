"""One night's extract, validate and stage, per source: the function the CLI
(``guardline ingest``) and the sync DAGs call.

Nothing is lost: every row read is loaded, quarantined with a reason, or counted as a
duplicate, and the counts are kept per file in the ledger. A batch that fails as a
whole (unreadable file, missing column, a critical expectation) fails its source for
the night: its rows are quarantined with that reason, the source's other new files
wait for the next run, and the other sources go on.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from connectors import human_resources, registry
from connectors.canonical import PROBLEMS, Canonical, canonicalize, raw_values
from connectors.readers import RawBatch, read_file
from connectors.sources import DATABASE_SOURCES, FILE_SOURCES
from connectors.spec import Source
from connectors.stage import LEDGER_SCHEMA, QUARANTINE_SCHEMA, Stage, merge_versions
from connectors.validation import Validator
from guardline.errors import DeliveryError


@dataclass
class FileResult:
    """The account of one file (or one pull of an exchange table)."""

    source: str
    file: str
    status: str  # loaded | failed | skipped | deferred
    reason: str = ""
    sha256: str = ""
    size: int = 0
    rows_read: int = 0
    loaded: int = 0
    quarantined: int = 0
    duplicates: int = 0
    superseded: int = 0
    replaced: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        return self.rows_read == self.loaded + self.quarantined + self.duplicates


@dataclass
class SourceResult:
    """One department's night: ok, failed (with the reason) or nothing new."""

    source: str
    status: str = "ok"  # ok | failed | nothing new
    reason: str = ""
    files: list[FileResult] = field(default_factory=list)
    records: int = 0  # staged records after the night
    seconds: float = 0.0

    def total(self, attr: str) -> int:
        return sum(getattr(f, attr) for f in self.files)


@dataclass
class IngestResult:
    as_of: date
    sources: list[SourceResult]
    data_docs: Path | None = None

    @property
    def failed(self) -> list[SourceResult]:
        return [s for s in self.sources if s.status == "failed"]


@dataclass
class _Batch:
    raw: RawBatch
    canonical: Canonical | None
    result: FileResult
    failure: str | None = None


def _list_files(source: Source, inbox: Path, as_of: date) -> list[Path]:
    folder = inbox / source.folder
    paths = sorted(
        {p for pattern in source.patterns for p in folder.glob(pattern) if p.is_file()}, key=lambda p: p.name
    )
    paths = [p for p in paths if not p.name.startswith(("~$", "."))]  # Excel lock files, hidden files
    return registry.current_export(paths, as_of) if source.name == registry.SOURCE.name else paths


def _quarantine_rows(source: Source, batch: _Batch, as_of: date, only_problems: bool) -> pl.DataFrame:
    """Quarantine entries of a batch: the problem rows, or every row with the batch's reason."""
    raw = batch.raw
    frames = []
    if batch.canonical is not None:
        rows = batch.canonical.frame
        if only_problems:
            rows = rows.filter(pl.col(PROBLEMS).list.len() > 0)
            rows = rows.select("row", pl.col(PROBLEMS).list.first().alias("problem"))
        else:
            rows = rows.select("row", pl.lit(f"batch: {batch.failure}").alias("problem"))
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
            else pl.Series([f"batch: {batch.failure}"] * raw.rejected.height)
        )
        frames.append(
            raw.rejected.select(
                pl.col("row").cast(pl.Int64),
                pl.lit("(row)").alias("field"),
                reason.alias("reason"),
                pl.col("raw"),
            )
        )
    if not frames:
        return pl.DataFrame(schema=QUARANTINE_SCHEMA)
    return (
        pl.concat(frames)
        .with_columns(
            pl.lit(source.stage_name).alias("source"),
            pl.lit(raw.file).alias("file"),
            pl.lit(raw.sha256).alias("sha256"),
            pl.lit(as_of).alias("as_of"),
        )
        .select(list(QUARANTINE_SCHEMA))
    )


def _file_level(source: Source, file: str, sha256: str, reason: str, as_of: date) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "source": source.stage_name,
                "file": file,
                "sha256": sha256,
                "row": None,
                "field": "(file)",
                "reason": reason,
                "raw": None,
                "as_of": as_of,
            }
        ],
        schema=QUARANTINE_SCHEMA,
    )


def _prepare(source: Source, raw: RawBatch, as_of: date, validator: Validator, result: FileResult) -> _Batch:
    """Canonical frame and verdict of one batch, the counts that follow from them."""
    canonical = canonicalize(source, raw)
    verdict = validator.validate(source, canonical.frame, as_of, raw.file)
    result.rows_read = raw.frame.height + (raw.rejected.height if raw.rejected is not None else 0)
    result.warnings += raw.warnings + verdict.warnings
    batch = _Batch(raw, canonical, result)
    if not verdict.success:
        batch.failure = verdict.reason
        result.status, result.reason = "failed", verdict.reason
        result.quarantined = result.rows_read
    else:
        result.quarantined = canonical.problems.height + (
            raw.rejected.height if raw.rejected is not None else 0
        )
    return batch


def _stage_batches(
    source: Source, batches: list[_Batch], stage: Stage, as_of: date, replace_all: bool
) -> pl.DataFrame:
    """Merge the usable rows of the batches into the staged records; fill in the counts."""
    good = [b.canonical.good.with_columns(pl.col("row").cast(pl.Int64)) for b in batches]
    incoming = pl.concat(good, how="vertical_relaxed") if good else None
    current = None if replace_all else stage.records(source.stage_name)
    if incoming is None or incoming.height == 0:
        return current if current is not None else pl.DataFrame()
    merged = merge_versions(current, incoming, compared_values(source, incoming.columns))
    counts = merged.outcome.group_by("file").agg(
        pl.col("duplicate").sum(),
        pl.col("superseded").sum(),
        pl.col("replaced").sum(),
        (~pl.col("duplicate")).sum().alias("loaded"),
    )
    by_file = {r["file"]: r for r in counts.iter_rows(named=True)}
    for b in batches:
        c = by_file.get(b.raw.file, {})
        b.result.loaded, b.result.duplicates = c.get("loaded", 0), c.get("duplicate", 0)
        b.result.superseded, b.result.replaced = c.get("superseded", 0), c.get("replaced", 0)
    stage.save_records(source.stage_name, merged.records)
    return merged.records


def _ledger_rows(results: Iterable[FileResult], as_of: date) -> pl.DataFrame:
    rows = [
        {
            "source": r.source,
            "file": r.file,
            "sha256": r.sha256,
            "size": r.size,
            "as_of": as_of,
            "status": r.status,
            "reason": r.reason,
            "rows_read": r.rows_read,
            "loaded": r.loaded,
            "quarantined": r.quarantined,
            "duplicates": r.duplicates,
            "superseded": r.superseded,
            "replaced": r.replaced,
            "warnings": "; ".join(r.warnings),
        }
        for r in results
    ]
    return pl.DataFrame(rows, schema=LEDGER_SCHEMA)


def _finish(
    source: Source,
    batches: list[_Batch],
    failures: list[tuple[FileResult, pl.DataFrame]],
    deferred: list[FileResult],
    stage: Stage,
    as_of: date,
    out: SourceResult,
    replace_all: bool = False,
    keep_ledger: bool = False,
) -> None:
    """Stage the night of one source, or fail it as a whole.

    ``keep_ledger``: a re-run of a night's pull that brought nothing new leaves the
    night's first account in the ledger, so that re-running changes nothing.
    """
    quarantine = [q for _, q in failures]
    if failures or any(b.failure for b in batches):
        failed = [r for r, _ in failures] + [b.result for b in batches if b.failure]
        out.status = "failed"
        out.reason = f"{failed[0].file}: {failed[0].reason}"
        quarantine += [_quarantine_rows(source, b, as_of, only_problems=False) for b in batches if b.failure]
        for b in batches:
            if not b.failure:
                b.result.status, b.result.reason = "deferred", "waits: the source failed tonight"
                b.result.rows_read = b.result.quarantined = 0
        out.files += failed + [b.result for b in batches if not b.failure] + deferred
        stage.save_quarantine(
            source.stage_name, pl.concat(quarantine) if quarantine else pl.DataFrame(schema=QUARANTINE_SCHEMA)
        )
        stage.save_ledger(_ledger_rows(failed, as_of))
        return
    records = _stage_batches(source, batches, stage, as_of, replace_all)
    quarantine += [_quarantine_rows(source, b, as_of, only_problems=True) for b in batches]
    stage.save_quarantine(
        source.stage_name, pl.concat(quarantine) if quarantine else pl.DataFrame(schema=QUARANTINE_SCHEMA)
    )
    out.files += [b.result for b in batches]
    out.records = records.height if records is not None else 0
    if not (keep_ledger and all(b.result.loaded == 0 for b in batches)):
        stage.save_ledger(_ledger_rows([b.result for b in batches], as_of))


def ingest_files(
    source: Source, inbox: Path, as_of: date, stage: Stage, validator: Validator
) -> SourceResult:
    """The new files of one file-delivered source."""
    started = time.perf_counter()
    out = SourceResult(source.name)
    done = stage.loaded_checksums(source.stage_name)
    batches: list[_Batch] = []
    failures: list[tuple[FileResult, pl.DataFrame]] = []
    skipped: list[FileResult] = []
    for path in _list_files(source, inbox, as_of):
        file = path.relative_to(inbox).as_posix()
        result = FileResult(source.stage_name, file, "loaded", size=path.stat().st_size)
        try:
            raw = read_file(source, path, file)
        except DeliveryError as exc:
            result.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
            if result.sha256 in done:
                skipped.append(
                    FileResult(source.stage_name, file, "skipped", "already loaded", result.sha256)
                )
                continue
            result.status, result.reason = (
                "failed",
                exc.reason if exc.row is None else str(exc).split(": ", 1)[1],
            )
            failures.append((result, _file_level(source, file, result.sha256, str(exc), as_of)))
            continue
        result.sha256 = raw.sha256
        if raw.sha256 in done:
            skipped.append(FileResult(source.stage_name, file, "skipped", "already loaded", raw.sha256))
            continue
        batches.append(_prepare(source, raw, as_of, validator, result))
    if not batches and not failures:
        out.status = "nothing new"
    else:
        _finish(
            source, batches, failures, [], stage, as_of, out, replace_all=source.name == registry.SOURCE.name
        )
    out.files += skipped
    if out.records == 0:
        current = stage.records(source.stage_name)
        out.records = current.height if current is not None else 0
    out.seconds = time.perf_counter() - started
    return out


def ingest_exchange(url: str, as_of: date, stage: Stage, validator: Validator) -> SourceResult:
    """Both 人社 tables, pulled behind their watermarks; the source fails if either does."""
    started = time.perf_counter()
    out = SourceResult(human_resources.EMPLOYMENT.name)
    prepared: list[tuple[Source, _Batch]] = []
    for table in DATABASE_SOURCES:
        result = FileResult(table.stage_name, f"exchange:{table.table}", "loaded")
        try:
            raw = human_resources.pull(table, url, stage.watermark(table.stage_name))
        except DeliveryError as exc:
            result.status, result.reason = "failed", exc.reason
            out.status, out.reason = "failed", str(exc)
            out.files.append(result)
            stage.save_ledger(_ledger_rows([result], as_of))
            out.seconds = time.perf_counter() - started
            return out
        raw.sha256 = f"pull:{as_of.isoformat()}"
        result.sha256 = raw.sha256
        prepared.append((table, _prepare(table, raw, as_of, validator, result)))
    if any(b.failure for _, b in prepared):
        for table, b in prepared:
            _finish(table, [b], [], [], stage, as_of, out)
        out.status = "failed"
        out.seconds = time.perf_counter() - started
        return out
    ledger = stage.ledger()
    for table, b in prepared:
        sub = SourceResult(table.stage_name)
        already = (
            ledger.filter(
                (pl.col("source") == table.stage_name)
                & (pl.col("sha256") == b.raw.sha256)
                & (pl.col("status") == "loaded")
            ).height
            > 0
        )
        _finish(table, [b], [], [], stage, as_of, sub, keep_ledger=already)
        out.files += sub.files
        out.records += sub.records
        stage.save_watermark(
            table.stage_name,
            human_resources.advance(stage.watermark(table.stage_name), b.canonical.good, table),
        )
    out.seconds = time.perf_counter() - started
    return out


def default_hr_url(inbox: Path) -> str | None:
    """``sqlite:///<inbox>/human_resources/exchange.sqlite`` when that file exists."""
    path = inbox / "human_resources" / "exchange.sqlite"
    return f"sqlite:///{path.resolve()}" if path.exists() else None


def ingest(
    inbox: Path,
    as_of: date,
    stage_dir: Path,
    hr_url: str | None = None,
    reports: Path | None = None,
    sources: Iterable[str] | None = None,
) -> IngestResult:
    """Extract, validate and stage every source (or the named ones) for the night ``as_of``."""
    stage = Stage(stage_dir)
    validator = Validator(reports or stage_dir / "reports")
    wanted = set(sources) if sources is not None else None
    results: list[SourceResult] = []
    for source in FILE_SOURCES:
        if wanted is None or source.name in wanted:
            results.append(ingest_files(source, inbox, as_of, stage, validator))
    if wanted is None or human_resources.EMPLOYMENT.name in wanted:
        url = hr_url or default_hr_url(inbox)
        if url is None:
            results.append(
                SourceResult(
                    "human_resources",
                    "failed",
                    "no exchange database: give --hr-url, or put exchange.sqlite in inbox/human_resources/",
                )
            )
        else:
            results.append(ingest_exchange(url, as_of, stage, validator))
    return IngestResult(as_of, results, validator.build_docs())


def read_inbox(inbox: Path, as_of: date, hr_url: str | None = None) -> dict[str, pl.DataFrame]:
    """Every usable record of an inbox, latest version per key, as one night's staging
    would hold it — without validation, stage or ledger. The generator's ground truth
    (truth/flags.csv) reads its own deliveries through this."""
    out: dict[str, pl.DataFrame] = {}
    for source in FILE_SOURCES:
        frames = [
            canonicalize(source, read_file(source, p, p.relative_to(inbox).as_posix())).good
            for p in _list_files(source, inbox, as_of)
        ]
        if frames:
            out[source.stage_name] = _latest(source, pl.concat(frames, how="vertical_relaxed"))
    url = hr_url or default_hr_url(inbox)
    if url is not None:
        for table in DATABASE_SOURCES:
            good = canonicalize(table, human_resources.pull(table, url, human_resources.Watermark())).good
            out[table.stage_name] = _latest(table, good)
    return out


def compared_values(source: Source, columns: list[str]) -> list[str]:
    """The columns whose values decide duplicate (equal) or supersede (different): not the
    key, not where the row came from, not a row number like 序号."""
    ignored = {
        "source",
        "source_record_id",
        "file",
        "row",
        *(c.name for c in source.columns if not c.compared),
    }
    return [c for c in columns if c not in ignored]


def _latest(source: Source, rows: pl.DataFrame) -> pl.DataFrame:
    return merge_versions(
        None, rows.with_columns(pl.col("row").cast(pl.Int64)), compared_values(source, rows.columns)
    ).records
