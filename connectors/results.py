"""What a night's ingest did, per file and per source: the accounts every step and
report renders (the CLI's table, the run audit, the DAG's XCom)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path


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

    def summary(self) -> dict:
        """What the step did, as JSON: the CLI, the run audit and XCom render this."""
        return {
            "status": self.status,
            "reason": self.reason,
            "records": self.records,
            **{a: self.total(a) for a in ("rows_read", "loaded", "quarantined", "duplicates")},
            "seconds": round(self.seconds, 3),
        }


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

    def summary(self) -> dict:
        """What the step did, as JSON: the CLI, the run audit and XCom render this."""
        return {
            "files": [
                {
                    "source": f.source,
                    "file": f.file,
                    "status": f.status,
                    "rows_read": f.rows_read,
                    "loaded": f.loaded,
                    "quarantined": f.quarantined,
                    "duplicates": f.duplicates,
                }
                for s in self.sources
                for f in s.files
            ],
            "failed_sources": {s.source: s.reason for s in self.failed},
        }
