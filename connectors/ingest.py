"""One night's extract, validate and stage, per source: three steps, which the CLI
(``guardline ingest``) chains in one process and the sync DAGs run as three tasks,
passing a ``Landing`` between them on disk.

Nothing is lost: every row read is loaded, quarantined with a reason, or counted as a
duplicate, and the counts are kept per file in the ledger. A file refused as a whole
(unreadable, a missing column, a critical expectation, more than the reader may hold) is
refused alone: its rows are quarantined with that reason where they can be counted, the
source's other files go on, and the refused file is reported again every night until a
corrected delivery replaces it. What one source's night changes in the stage is
committed as one step. No delivery, however broken, raises out of here: an unexpected
failure while reading a file refuses that file, naming the error.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import date
from pathlib import Path

import polars as pl

from connectors import human_resources
from connectors.canonical import canonicalize
from connectors.extract import default_hr_url, extract, list_files, unforeseen
from connectors.landing import Batch, Landing
from connectors.quarantine import quarantine_rows, refusal
from connectors.readers import read_file
from connectors.readers.batch import ID_CELL, RawBatch
from connectors.results import FileResult, IngestResult, SourceResult
from connectors.sources import BY_STAGE_NAME, DATABASE_SOURCES, DEPARTMENTS, FILE_SOURCES, department
from connectors.spec import Source
from connectors.validation import Validator
from guardline.atomic import Hook
from guardline.errors import GuardlineError, Unavailable
from staging.stage import LEDGER_SCHEMA, QUARANTINE_SCHEMA, Stage, Watermark, merge_versions

__all__ = ["FileResult", "IngestResult", "Landing", "SourceResult", "extract", "ingest", "stage", "validate"]


def _prepare(source: Source, raw: RawBatch, as_of: date, validator: Validator, result: FileResult) -> Batch:
    """Canonical frame and verdict of one batch, the counts that follow from them."""
    canonical = canonicalize(source, raw)
    read = raw.frame.height + (raw.rejected.height if raw.rejected is not None else 0)
    result.rows_read, result.duplicates = read + raw.known, raw.known
    if read == 0 and raw.known:  # a pull that brought nothing new: no row to judge
        return Batch(raw, canonical, result)
    verdict = validator.validate(
        source, canonical.frame, as_of, raw.file, compared_values(source, canonical.frame.columns)
    )
    result.warnings += raw.warnings + verdict.warnings
    batch = Batch(raw, canonical, result)
    if not verdict.success:
        batch.failure = verdict.reason
        result.status, result.reason = "failed", verdict.reason
        result.quarantined = read
    else:
        result.quarantined = canonical.problems.height + (
            raw.rejected.height if raw.rejected is not None else 0
        )
    return batch


def validate(landing: Landing, validator: Validator) -> Landing:
    """Type every batch and run its source's Great Expectations suite on it; a batch that
    cannot be typed is refused, naming the error."""
    checked = []
    for b in landing.batches:
        if b.canonical is None:
            source = BY_STAGE_NAME[b.raw.source]
            try:
                b = _prepare(source, b.raw, landing.as_of, validator, b.result)
            except Exception as exc:
                landing.failures.append(
                    refusal(source, None, b.result, unforeseen(b.raw.file, exc), landing.as_of)
                )
                continue
        checked.append(b)
    landing.batches = checked
    return landing


def stage(landing: Landing, into: Stage, on_step: Hook | None = None) -> SourceResult:
    """Merge a validated landing into the stage as one step: records, quarantine, ledger
    and watermark are committed together, so a kill leaves the previous night or this one.
    Refused files are accounted for in the same step."""
    started = time.perf_counter()
    if any(b.canonical is None for b in landing.batches):
        raise GuardlineError(f"{landing.source}: the landing of {landing.as_of} was not validated")
    with into.transaction(on_step):
        result = (_stage_exchange if landing.exchange else _stage_files)(landing, into)
        into.settle(landing.source, landing.as_of, result.status, result.reason or "")
    result.seconds = time.perf_counter() - started
    return result


def _stage_files(landing: Landing, stage: Stage) -> SourceResult:
    source = department(landing.source)
    out = SourceResult(source.name)
    if not landing.batches and not landing.failures:
        out.status = "nothing new"
    else:
        _finish(
            source,
            landing.batches,
            landing.failures,
            stage,
            landing.as_of,
            out,
        )
    copies = [r for r in landing.skipped if r.status == "duplicate"]
    stage.save_ledger(_ledger_rows(copies, landing.as_of))
    out.files += landing.skipped
    if out.records == 0:
        current = stage.records(source.stage_name, landing.as_of)
        out.records = current.height if current is not None else 0
    return _settled(out)


def _stage_exchange(landing: Landing, stage: Stage) -> SourceResult:
    """Both 人社 tables, each on its own: a table refused tonight leaves the other staged
    and its own watermark where it was."""
    as_of = landing.as_of
    out = SourceResult(landing.source)
    if landing.fatal:
        out.status, out.reason = "failed", landing.fatal
        return out
    ledger = stage.ledger()
    for table in DATABASE_SOURCES:
        batches = [b for b in landing.batches if b.raw.source == table.stage_name]
        refused = [f for f in landing.failures if f[0].source == table.stage_name]
        already = any(
            ledger.filter(
                (pl.col("source") == table.stage_name)
                & (pl.col("sha256") == b.raw.sha256)
                & (pl.col("status") == "loaded")
            ).height
            for b in batches
        )
        _finish(table, batches, refused, stage, as_of, out, keep_ledger=already)
        for b in batches:
            if not b.failure:
                stage.save_watermark(
                    table.stage_name,
                    human_resources.advance(stage.watermark(table.stage_name), b.canonical.good, table),
                )
    return _settled(out)


def _finish(
    source: Source,
    batches: list[Batch],
    refused: list[tuple[FileResult, pl.DataFrame]],
    stage: Stage,
    as_of: date,
    out: SourceResult,
    keep_ledger: bool = False,
) -> None:
    """Stage the files of one source that passed, account for the ones refused.

    Called inside the source's stage transaction. ``keep_ledger``: a re-run of a night's
    pull that brought nothing new leaves the night's first account in the ledger, so that
    re-running changes nothing.
    """
    refused = refused + [
        (b.result, quarantine_rows(source, b, as_of, only_problems=False)) for b in batches if b.failure
    ]
    passed = [b for b in batches if not b.failure]
    records = _stage_batches(source, passed, stage, as_of) if passed else None
    quarantine = [q for _, q in refused] + [
        quarantine_rows(source, b, as_of, only_problems=True) for b in passed
    ]
    stage.save_quarantine(
        source.stage_name, pl.concat(quarantine) if quarantine else pl.DataFrame(schema=QUARANTINE_SCHEMA)
    )
    results = [r for r, _ in refused] + [b.result for b in passed]
    out.files += results
    if records is not None:
        out.records += records.height
    if not (keep_ledger and not refused and all(b.result.loaded == 0 for b in passed)):
        stage.save_ledger(_ledger_rows(results, as_of))


def _stage_batches(source: Source, batches: list[Batch], stage: Stage, as_of: date) -> pl.DataFrame:
    """Add the usable rows of the batches to the staged versions, as arrived tonight:
    compared with what the night saw before them (nothing, for a source delivered whole);
    fill in the counts. The records the night sees afterwards."""
    good = [b.canonical.good.with_columns(pl.col("row").cast(pl.Int64)) for b in batches]
    incoming = pl.concat(good, how="vertical_relaxed") if good else None
    current = None if source.snapshot else stage.records(source.stage_name, as_of)
    if incoming is None or incoming.height == 0:
        current = stage.records(source.stage_name, as_of)
        return current if current is not None else pl.DataFrame()
    merged = merge_versions(
        current,
        incoming,
        compared_values(source, incoming.columns),
        as_of,
        stage.next_version(source.stage_name),
    )
    counts = merged.outcome.group_by("file").agg(
        pl.col("duplicate").sum(),
        pl.col("superseded").sum(),
        pl.col("replaced").sum(),
        (~pl.col("duplicate")).sum().alias("loaded"),
    )
    by_file = {r["file"]: r for r in counts.iter_rows(named=True)}
    for b in batches:
        c = by_file.get(b.raw.file, {})
        b.result.loaded, b.result.duplicates = c.get("loaded", 0), b.raw.known + c.get("duplicate", 0)
        b.result.superseded, b.result.replaced = c.get("superseded", 0), c.get("replaced", 0)
    stage.add_versions(source.stage_name, merged.added, source.snapshot)
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


def _settled(out: SourceResult) -> SourceResult:
    """A source with refused files is partial when something else of it was read, failed
    when nothing was; the reason names every refused file."""
    if out.refused:
        out.status = "partial" if any(f.status == "loaded" for f in out.files) else "failed"
        out.reason = "; ".join(f"{f.file}: {f.reason}" for f in out.refused)
    return out


def ingest(
    inbox: Path,
    as_of: date,
    stage_dir: Path,
    hr_url: str | None = None,
    reports: Path | None = None,
    sources: Iterable[str] | None = None,
    on_step: Hook | None = None,
) -> IngestResult:
    """Extract, validate and stage every source (or the named ones) for the night ``as_of``;
    ``on_step`` is called at every boundary of every source's commit."""
    stage_dir.mkdir(parents=True, exist_ok=True)
    staged = Stage(stage_dir)
    validator = Validator(reports or stage_dir / "reports")
    wanted = set(sources) if sources is not None else None
    results = []
    for name in DEPARTMENTS:
        if wanted is not None and name not in wanted:
            continue
        try:
            landing = extract(name, inbox, as_of, staged, hr_url)
        except Unavailable as exc:  # the exchange went away: the source fails, the others go on
            results.append(SourceResult(name, "failed", str(exc)))
            continue
        results.append(stage(validate(landing, validator), staged, on_step))
    return IngestResult(as_of, results, validator.build_docs())


def read_inbox(inbox: Path, as_of: date, hr_url: str | None = None) -> dict[str, pl.DataFrame]:
    """Every usable record of an inbox, latest version per key, as one night's staging
    would hold it — without validation, stage or ledger. The generator's ground truth
    (truth/flags.csv) reads its own deliveries through this."""
    out: dict[str, pl.DataFrame] = {}
    for source in FILE_SOURCES:
        frames = [
            canonicalize(source, read_file(source, p, p.relative_to(inbox).as_posix())).good
            for p in list_files(source, inbox, as_of)
        ]
        if frames:
            out[source.stage_name] = _latest(source, pl.concat(frames, how="vertical_relaxed"))
    url = hr_url or default_hr_url(inbox)
    if url is not None:
        for table in DATABASE_SOURCES:
            good = canonicalize(table, human_resources.pull(table, url, Watermark())).good
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
        ID_CELL,
        *(c.name for c in source.columns if not c.compared),
    }
    return [c for c in columns if c not in ignored]


def _latest(source: Source, rows: pl.DataFrame) -> pl.DataFrame:
    return merge_versions(
        None, rows.with_columns(pl.col("row").cast(pl.Int64)), compared_values(source, rows.columns)
    ).records
