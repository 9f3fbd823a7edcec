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
from connectors.canonical import CONTROL, PROBLEMS, Canonical, canonicalize, raw_values
from connectors.readers import read_file
from connectors.readers.batch import RawBatch
from connectors.readers.countable import countable_rows
from connectors.sources import BY_STAGE_NAME, DATABASE_SOURCES, DEPARTMENTS, FILE_SOURCES
from connectors.spec import Source
from connectors.stage import LEDGER_SCHEMA, QUARANTINE_SCHEMA, Prior, Stage, merge_versions
from connectors.validation import Validator
from guardline.atomic import Hook
from guardline.errors import DeliveryError, GuardlineError, Unavailable


@dataclass
class FileResult:
    """The account of one file (or one pull of an exchange table)."""

    source: str
    file: str
    status: str  # loaded | failed (refused) | skipped (already loaded) | duplicate (a copy)
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
    status: str = "ok"  # ok | partial (some files refused) | failed (nothing read) | nothing new
    reason: str = ""
    files: list[FileResult] = field(default_factory=list)
    records: int = 0  # staged records after the night
    seconds: float = 0.0

    def total(self, attr: str) -> int:
        return sum(getattr(f, attr) for f in self.files)

    @property
    def refused(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "failed"]


@dataclass
class IngestResult:
    as_of: date
    sources: list[SourceResult]
    data_docs: Path | None = None

    @property
    def failed(self) -> list[SourceResult]:
        """Sources that refused something tonight (a file, a table, or all of it)."""
        return [s for s in self.sources if s.status in ("failed", "partial")]

    @property
    def refusals(self) -> list[str]:
        """One line per refused file or table, or per source failed as a whole (no exchange
        configured, one that went away): what exit status 3 reports."""
        lines = []
        for s in self.sources:
            if s.refused:
                lines += [f"{s.source}: {f.file}: {f.reason}" for f in s.refused]
            elif s.status == "failed":
                lines.append(f"{s.source}: {s.reason}")
        return lines


@dataclass
class _Batch:
    raw: RawBatch
    canonical: Canonical | None
    result: FileResult
    failure: str | None = None


def _list_files(source: Source, inbox: Path, as_of: date) -> list[Path]:
    folder = inbox / source.folder
    paths = sorted(
        {p for pattern in source.patterns for p in folder.glob(pattern) if p.is_file() or p.is_symlink()},
        key=lambda p: p.name,
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
    return _placed(pl.concat(frames), source, raw.file, raw.sha256, as_of)


def _placed(rows: pl.DataFrame, source: Source, file: str, sha256: str, as_of: date) -> pl.DataFrame:
    """Quarantine rows (row, field, reason, raw) with where they came from; control
    characters in the delivered text shown as U+FFFD (a NUL cannot enter PostgreSQL)."""
    return rows.with_columns(
        pl.col("reason", "raw").str.replace_all(CONTROL, "\ufffd"),
        pl.lit(source.stage_name).alias("source"),
        pl.lit(file).alias("file"),
        pl.lit(sha256).alias("sha256"),
        pl.lit(as_of).alias("as_of"),
    ).select(list(QUARANTINE_SCHEMA))


def _refusal(
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
    return result, _placed(rows, source, result.file, result.sha256, as_of)


def _prepare(source: Source, raw: RawBatch, as_of: date, validator: Validator, result: FileResult) -> _Batch:
    """Canonical frame and verdict of one batch, the counts that follow from them."""
    canonical = canonicalize(source, raw)
    verdict = validator.validate(
        source, canonical.frame, as_of, raw.file, compared_values(source, canonical.frame.columns)
    )
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
    refused: list[tuple[FileResult, pl.DataFrame]],
    stage: Stage,
    as_of: date,
    out: SourceResult,
    replace_all: bool = False,
    keep_ledger: bool = False,
) -> None:
    """Stage the files of one source that passed, account for the ones refused.

    Called inside the source's stage transaction. ``keep_ledger``: a re-run of a night's
    pull that brought nothing new leaves the night's first account in the ledger, so that
    re-running changes nothing.
    """
    refused = refused + [
        (b.result, _quarantine_rows(source, b, as_of, only_problems=False)) for b in batches if b.failure
    ]
    passed = [b for b in batches if not b.failure]
    records = _stage_batches(source, passed, stage, as_of, replace_all) if passed else None
    quarantine = [q for _, q in refused] + [
        _quarantine_rows(source, b, as_of, only_problems=True) for b in passed
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
    exchange tables behind their watermarks.

    A file that cannot be read is refused here, alone; an exchange that does not answer
    raises :class:`Unavailable` (worth retrying), a table it cannot read is refused.
    """
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
            result.sha256 = f"pull:{table.table}:{as_of.isoformat()}"
            try:
                raw = human_resources.pull(table, url, stage.watermark(table.stage_name))
            except DeliveryError as exc:
                landing.failures.append(_refusal(table, None, result, exc, as_of))
                continue
            raw.sha256 = result.sha256
            landing.batches.append(_Batch(raw, None, result))
        return landing
    root = inbox.resolve()
    known = stage.known_files(source.stage_name)
    tonight: dict[str, Prior] = {}
    for path in _list_files(source, inbox, as_of):
        file = path.relative_to(inbox).as_posix()
        result = FileResult(source.stage_name, file, "loaded")
        if path.is_symlink() or not path.resolve().is_relative_to(root):
            error = DeliveryError(file, "a symbolic link, or a path leading outside the inbox: not followed")
            landing.failures.append(_refusal(source, None, result, error, as_of))
            continue
        try:
            data = path.read_bytes()
        except OSError as exc:
            error = DeliveryError(file, f"cannot be read ({exc.strerror})")
            landing.failures.append(_refusal(source, None, result, error, as_of))
            continue
        result.size, result.sha256 = len(data), hashlib.sha256(data).hexdigest()
        prior = tonight.get(result.sha256) or known.get(result.sha256)
        if prior is not None and prior.file == file and prior.status == "loaded":
            landing.skipped.append(FileResult(source.stage_name, file, "skipped", "already loaded", result.sha256))
            continue
        if prior is not None and prior.file != file:  # the same bytes under another name
            result.status, result.reason = "duplicate", f"the same bytes as {prior.file}"
            result.rows_read = result.duplicates = prior.rows
            landing.skipped.append(result)
            continue
        try:
            raw = read_file(source, path, file)
        except DeliveryError as exc:  # refused (again, if it was before: reported every night)
            landing.failures.append(_refusal(source, path, result, exc, as_of))
        except Exception as exc:  # a reader's own failure on bytes it could not foresee
            landing.failures.append(_refusal(source, path, result, _unforeseen(file, exc), as_of))
        else:
            result.rows_read = raw.frame.height + (raw.rejected.height if raw.rejected is not None else 0)
            landing.batches.append(_Batch(raw, None, result))
        tonight[result.sha256] = Prior(file, result.status, result.rows_read)
    return landing


def _unforeseen(file: str, exc: BaseException) -> DeliveryError:
    detail = str(exc).splitlines()[0][:200] if str(exc) else ""
    return DeliveryError(file, f"cannot be read: {type(exc).__name__}{': ' + detail if detail else ''}")


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
                    _refusal(source, None, b.result, _unforeseen(b.raw.file, exc), landing.as_of)
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
            stage,
            landing.as_of,
            out,
            replace_all=source.name == registry.SOURCE.name,
        )
    copies = [r for r in landing.skipped if r.status == "duplicate"]
    stage.save_ledger(_ledger_rows(copies, landing.as_of))
    out.files += landing.skipped
    if out.records == 0:
        current = stage.records(source.stage_name)
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


def _settled(out: SourceResult) -> SourceResult:
    """A source with refused files is partial when something else of it was read, failed
    when nothing was; the reason names every refused file."""
    if out.refused:
        out.status = "partial" if any(f.status == "loaded" for f in out.files) else "failed"
        out.reason = "; ".join(f"{f.file}: {f.reason}" for f in out.refused)
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
    on_step: Hook | None = None,
) -> IngestResult:
    """Extract, validate and stage every source (or the named ones) for the night ``as_of``;
    ``on_step`` is called at every boundary of every source's commit."""
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
