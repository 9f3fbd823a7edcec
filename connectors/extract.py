"""Extract: the new deliveries of one source for a night, read into a Landing.

A file that cannot be read is refused here, alone; an exchange that does not answer
raises :class:`Unavailable`. Which files a night reads: connectors.arrival.
"""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

from connectors import human_resources
from connectors.arrival import arrived_by
from connectors.landing import Batch, Landing
from connectors.quarantine import refusal
from connectors.readers import read_file
from connectors.results import FileResult
from connectors.sources import DATABASE_SOURCES, department
from connectors.spec import Source
from guardline.errors import DeliveryError
from staging.stage import Prior, Stage


def list_files(source: Source, inbox: Path, as_of: date) -> list[Path]:
    """The source's files in the inbox that had arrived by the night ``as_of``."""
    folder = inbox / source.folder
    paths = sorted(
        {p for pattern in source.patterns for p in folder.glob(pattern) if p.is_file() or p.is_symlink()},
        key=lambda p: p.name,
    )
    paths = [p for p in paths if not p.name.startswith(("~$", "."))]  # Excel lock files, hidden files
    return arrived_by(paths, as_of, source.snapshot)


def extract(name: str, inbox: Path, as_of: date, stage: Stage, hr_url: str | None = None) -> Landing:
    """Read the new deliveries of one source: files not loaded before, or one pull of the
    exchange tables behind their watermarks.

    A file that cannot be read is refused here, alone; an exchange that does not answer
    raises :class:`Unavailable` (worth retrying), a table it cannot read is refused.
    """
    source = department(name)
    landing = Landing(source.name, as_of)
    if stage.earlier_than_staged(source.stage_name, as_of):
        # A night older than one already staged is re-run from what had arrived by it:
        # what has come since belongs to the next night, not to this one.
        return landing
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
                held = stage.records(table.stage_name, as_of, columns=["file", "row"])
                raw = human_resources.unseen(raw, held, table)
            except DeliveryError as exc:
                landing.failures.append(refusal(table, None, result, exc, as_of))
                continue
            raw.sha256 = result.sha256
            landing.batches.append(Batch(raw, None, result))
        return landing
    root = inbox.resolve()
    known = stage.known_files(source.stage_name)
    tonight: dict[str, Prior] = {}
    for path in list_files(source, inbox, as_of):
        file = path.relative_to(inbox).as_posix()
        result = FileResult(source.stage_name, file, "loaded")
        if path.is_symlink() or not path.resolve().is_relative_to(root):
            error = DeliveryError(file, "a symbolic link, or a path leading outside the inbox: not followed")
            landing.failures.append(refusal(source, None, result, error, as_of))
            continue
        try:
            data = path.read_bytes()
        except OSError as exc:
            error = DeliveryError(file, f"cannot be read ({exc.strerror})")
            landing.failures.append(refusal(source, None, result, error, as_of))
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
            landing.failures.append(refusal(source, path, result, exc, as_of))
        except Exception as exc:  # a reader's own failure on bytes it could not foresee
            landing.failures.append(refusal(source, path, result, unforeseen(file, exc), as_of))
        else:
            result.rows_read = raw.frame.height + (raw.rejected.height if raw.rejected is not None else 0)
            landing.batches.append(Batch(raw, None, result))
        tonight[result.sha256] = Prior(file, result.status, result.rows_read)
    return landing


def unforeseen(file: str, exc: BaseException) -> DeliveryError:
    detail = str(exc).splitlines()[0][:200] if str(exc) else ""
    return DeliveryError(file, f"cannot be read: {type(exc).__name__}{': ' + detail if detail else ''}")


def default_hr_url(inbox: Path) -> str | None:
    """``sqlite:///<inbox>/human_resources/exchange.sqlite`` when that file exists."""
    path = inbox / "human_resources" / "exchange.sqlite"
    return f"sqlite:///{path.resolve()}" if path.exists() else None
