"""One night's extract, validate and stage, per source: three steps, which the CLI
(``guardline ingest``) chains in one process and the sync DAGs run as three tasks,
passing a ``Landing`` between them on disk.

Nothing is lost: every row read is loaded, quarantined with a reason, or counted as a
duplicate, and the counts are kept per file in the ledger. A batch that fails as a
whole (unreadable file, missing column, a critical expectation) fails its source for
the night: its rows are quarantined with that reason, the source's other new files
wait for the next run, and the other sources go on.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from connectors import human_resources, registry
from connectors.canonical import PROBLEMS, Canonical, canonicalize, raw_values
from connectors.readers import RawBatch, read_file
from connectors.sources import BY_STAGE_NAME, DATABASE_SOURCES, DEPARTMENTS, FILE_SOURCES
from connectors.spec import Source
from connectors.stage import LEDGER_SCHEMA, QUARANTINE_SCHEMA, Stage, merge_versions
from connectors.validation import Validator
from guardline.errors import DeliveryError, GuardlineError


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


@dataclass
class Landing:
    """One source's new deliveries of one night, read but not yet staged.

    ``extract`` makes it, ``validate`` types and checks its batches, ``stage`` merges
    them. The CLI passes it from step to step in memory; the sync DAGs, whose steps
    are separate tasks on possibly separate workers, save it between them as Parquet
    files and a manifest (``save``/``load``), so that XCom carries only its path.
    """

    source: str  # the department: a Source.name
    as_of: date
    batches: list[_Batch] = field(default_factory=list)
    failures: list[tuple[FileResult, pl.DataFrame]] = field(default_factory=list)
    skipped: list[FileResult] = field(default_factory=list)
    fatal: str = ""  # the exchange database could not be read: the source fails as a whole

    @property
    def exchange(self) -> bool:
        return self.source == human_resources.EMPLOYMENT.name

    def save(self, folder: Path) -> Path:
        """Write the landing under ``folder`` (replacing an earlier one); returns the folder."""
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        manifest: dict = {
            "source": self.source,
            "as_of": self.as_of.isoformat(),
            "fatal": self.fatal,
            "skipped": [asdict(r) for r in self.skipped],
            "failures": [],
            "batches": [],
        }
        for i, (result, quarantine) in enumerate(self.failures):
            quarantine.write_parquet(folder / f"failure-{i}.parquet")
            manifest["failures"].append({"result": asdict(result), "quarantine": f"failure-{i}.parquet"})
        for i, b in enumerate(self.batches):
            entry = {
                "result": asdict(b.result),
                "failure": b.failure,
                "raw": {
                    "source": b.raw.source,
                    "file": b.raw.file,
                    "sha256": b.raw.sha256,
                    "size": b.raw.size,
                    "header_row": b.raw.header_row,
                    "warnings": b.raw.warnings,
                },
            }
            b.raw.frame.write_parquet(folder / f"raw-{i}.parquet")
            if b.raw.rejected is not None:
                b.raw.rejected.write_parquet(folder / f"rejected-{i}.parquet")
            if b.canonical is not None:
                b.canonical.frame.write_parquet(folder / f"canonical-{i}.parquet")
            manifest["batches"].append(entry)
        (folder / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1), "utf-8")
        return folder

    @classmethod
    def load(cls, folder: Path) -> Landing:
        manifest = json.loads((folder / "manifest.json").read_text("utf-8"))
        landing = cls(
            manifest["source"],
            date.fromisoformat(manifest["as_of"]),
            skipped=[FileResult(**r) for r in manifest["skipped"]],
            failures=[
                (FileResult(**f["result"]), pl.read_parquet(folder / f["quarantine"]))
                for f in manifest["failures"]
            ],
            fatal=manifest["fatal"],
        )
        for i, entry in enumerate(manifest["batches"]):
            rejected = folder / f"rejected-{i}.parquet"
            raw = RawBatch(
                **entry["raw"],
                frame=pl.read_parquet(folder / f"raw-{i}.parquet"),
                rejected=pl.read_parquet(rejected) if rejected.exists() else None,
            )
            canonical_path = folder / f"canonical-{i}.parquet"
            canonical = (
                Canonical(BY_STAGE_NAME[raw.source], raw.file, pl.read_parquet(canonical_path))
                if canonical_path.exists()
                else None
            )
            landing.batches.append(_Batch(raw, canonical, FileResult(**entry["result"]), entry["failure"]))
        return landing


def source_named(name: str) -> Source:
    """A department by name: a file source, or the 人社 exchange (its first table stands for it)."""
    for source in (*FILE_SOURCES, human_resources.EMPLOYMENT):
        if source.name == name:
            return source
    raise GuardlineError(f"no source named {name!r}; the sources are {', '.join(DEPARTMENTS)}")


def extract(name: str, inbox: Path, as_of: date, stage: Stage, hr_url: str | None = None) -> Landing:
    """Read the new deliveries of one source: files not loaded before, or one pull of the
    exchange tables behind their watermarks."""
    source = source_named(name)
    landing = Landing(source.name, as_of)
    if landing.exchange:
        url = hr_url or default_hr_url(inbox)
        if url is None:
            landing.fatal = (
                "no exchange database: give --hr-url (Airflow: the connection guardline_hr_exchange), "
                "or put exchange.sqlite in inbox/human_resources/"
            )
            return landing
        for table in DATABASE_SOURCES:
            result = FileResult(table.stage_name, f"exchange:{table.table}", "loaded")
            try:
                raw = human_resources.pull(table, url, stage.watermark(table.stage_name))
            except DeliveryError as exc:
                result.status, result.reason = "failed", exc.reason
                landing.fatal = str(exc)
                landing.failures.append((result, pl.DataFrame(schema=QUARANTINE_SCHEMA)))
                return landing
            raw.sha256 = result.sha256 = f"pull:{as_of.isoformat()}"
            landing.batches.append(_Batch(raw, None, result))
        return landing
    done = stage.loaded_checksums(source.stage_name)
    for path in _list_files(source, inbox, as_of):
        file = path.relative_to(inbox).as_posix()
        result = FileResult(source.stage_name, file, "loaded", size=path.stat().st_size)
        try:
            raw = read_file(source, path, file)
        except DeliveryError as exc:
            result.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
            if result.sha256 in done:
                landing.skipped.append(
                    FileResult(source.stage_name, file, "skipped", "already loaded", result.sha256)
                )
                continue
            result.status = "failed"
            result.reason = exc.reason if exc.row is None else str(exc).split(": ", 1)[1]
            landing.failures.append((result, _file_level(source, file, result.sha256, str(exc), as_of)))
            continue
        result.sha256 = raw.sha256
        if raw.sha256 in done:
            landing.skipped.append(
                FileResult(source.stage_name, file, "skipped", "already loaded", raw.sha256)
            )
            continue
        landing.batches.append(_Batch(raw, None, result))
    return landing


def validate(landing: Landing, validator: Validator) -> Landing:
    """Type every batch and run its source's Great Expectations suite on it."""
    landing.batches = [
        b
        if b.canonical is not None
        else _prepare(BY_STAGE_NAME[b.raw.source], b.raw, landing.as_of, validator, b.result)
        for b in landing.batches
    ]
    return landing


def stage(landing: Landing, into: Stage) -> SourceResult:
    """Merge a validated landing into the stage, or fail its source for the night with the
    rows quarantined; the ledger keeps the account of every file either way."""
    started = time.perf_counter()
    if any(b.canonical is None for b in landing.batches):
        raise GuardlineError(f"{landing.source}: the landing of {landing.as_of} was not validated")
    result = (_stage_exchange if landing.exchange else _stage_files)(landing, into)
    result.seconds = time.perf_counter() - started
    return result


def _stage_files(landing: Landing, stage: Stage) -> SourceResult:
    source = source_named(landing.source)
    out = SourceResult(source.name)
    if not landing.batches and not landing.failures:
        out.status = "nothing new"
    else:
        _finish(
            source,
            landing.batches,
            landing.failures,
            [],
            stage,
            landing.as_of,
            out,
            replace_all=source.name == registry.SOURCE.name,
        )
    out.files += landing.skipped
    if out.records == 0:
        current = stage.records(source.stage_name)
        out.records = current.height if current is not None else 0
    return out


def _stage_exchange(landing: Landing, stage: Stage) -> SourceResult:
    """Both 人社 tables; the source fails if either does."""
    as_of = landing.as_of
    out = SourceResult(landing.source)
    if landing.fatal:
        out.status, out.reason = "failed", landing.fatal
        out.files += [r for r, _ in landing.failures]
        stage.save_ledger(_ledger_rows(out.files, as_of))
        return out
    prepared = [(BY_STAGE_NAME[b.raw.source], b) for b in landing.batches]
    if any(b.failure for _, b in prepared):
        for table, b in prepared:
            _finish(table, [b], [], [], stage, as_of, out)
        out.status = "failed"
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
    staged = Stage(stage_dir)
    validator = Validator(reports or stage_dir / "reports")
    wanted = set(sources) if sources is not None else None
    results = [
        stage(validate(extract(name, inbox, as_of, staged, hr_url), validator), staged)
        for name in DEPARTMENTS
        if wanted is None or name in wanted
    ]
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
