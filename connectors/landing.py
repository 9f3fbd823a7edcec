"""One source's new deliveries of one night, between extract, validate and stage."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from connectors.canonical import Canonical
from connectors.readers.batch import RawBatch
from connectors.results import FileResult
from connectors.sources import BY_STAGE_NAME, department


@dataclass
class Batch:
    raw: RawBatch
    canonical: Canonical | None
    result: FileResult
    failure: str | None = None


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
    batches: list[Batch] = field(default_factory=list)
    failures: list[tuple[FileResult, pl.DataFrame]] = field(default_factory=list)
    skipped: list[FileResult] = field(default_factory=list)
    fatal: str = ""  # the exchange database could not be read: the source fails as a whole

    @property
    def exchange(self) -> bool:
        return department(self.source).fmt == "sql"

    def summary(self) -> dict:
        """The verdict per file (or exchange table), as JSON for the task's log and XCom."""
        files: dict[str, str] = {}
        for b in self.batches:
            r = b.result
            files[r.file] = (
                f"refused: {b.failure}"
                if b.failure
                else f"valid, {r.rows_read} rows, {r.quarantined} to quarantine, {len(r.warnings)} warnings"
            )
        for r, _ in self.failures:
            files[r.file] = f"refused: {r.reason}"
        for r in self.skipped:
            files[r.file] = r.status  # a copy or a file loaded on an earlier night
        verdict = "refused" if self.fatal else "some refused" if any(v.startswith("refused") for v in files.values()) else "valid"
        return {"source": self.source, "as_of": self.as_of.isoformat(), "verdict": verdict, "files": files or "nothing new"}

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
                    "known": b.raw.known,
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
            landing.batches.append(Batch(raw, canonical, FileResult(**entry["result"]), entry["failure"]))
        return landing
