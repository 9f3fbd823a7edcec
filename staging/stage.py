"""The staging area of one county, read and written through typed accessors only.

Parquet and JSON files under one folder (:class:`staging.layout.Layout` names them).
What one source's night changes (record versions, ledger, quarantine, watermark) is
committed as one step (:meth:`Stage.transaction`), so a kill at any instant leaves the
previous night or the new one. Records are kept in every version with the night they
arrived: the night D reads what had arrived by D (:meth:`Stage.records`), which is what
makes re-running any night, in any order, give that night's result again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from guardline.atomic import Hook, Transaction, file_lock, recover
from staging.layout import LAYOUT_VERSION, Layout
from staging.migrate import migrate
from staging.versions import ARRIVED, STAMPS, VERSION, Merge, as_of, history, latest, merge_versions

__all__ = ["Merge", "Prior", "Stage", "Watermark", "merge_versions", "stage_lock"]
SETTLED_SCHEMA = {"night": pl.Date, "status": pl.String, "reason": pl.String}
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
class Watermark:
    """How far an exchange table has been read: the latest period and event date staged
    so far; it only ever moves forward."""

    period: int | None = None
    event_date: date | None = None


@dataclass
class LoadAccount:
    """What a county's last load wrote into the warehouse (:mod:`warehouse.delta`): its
    fingerprint; per table the key and row hash of each row; and per table a digest of
    what its rows were made from, where the load could tell it (the same digest tonight:
    the same rows, and the table is left as it is, unread)."""

    fingerprint: str
    tables: dict[str, pl.DataFrame]
    inputs: dict[str, str] = field(default_factory=dict)


def stage_lock(root: Path, timeout: float):
    """One run at a time on a stage (``<stage>/.lock``): a second waits ``timeout``
    seconds, then is told who holds it."""
    return file_lock(Layout(root).lock, f"the stage {root}", timeout)


NIGHTLY = ("links", "scored", "flags", "exit", "features")


class Stage:
    """The staging folder of one county (``--stage``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.layout = Layout(root)
        self._tx: Transaction | None = None
        recover(root)  # a commit that a killed process left half-applied is finished first
        migrate(self)

    # -- writes: all through one atomic transaction ---------------------------------

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

    def _write_text(self, path: Path, text: str) -> None:
        with self.transaction() as tx:
            tx.put(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), text)

    def _delete(self, path: Path) -> None:
        with self.transaction() as tx:
            tx.delete(path)

    def _pending(self, path: Path) -> bool:
        return self._tx is not None and self._tx.pending(path)[0]

    def _read_parquet(self, path: Path, columns: list[str] | None = None) -> pl.DataFrame | None:
        if self._tx is not None:
            pending, value = self._tx.pending(path)
            if pending:
                return value.select(columns) if value is not None and columns else value
        return pl.read_parquet(path, columns=columns) if path.exists() else None

    def _read_text(self, path: Path) -> str | None:
        if self._tx is not None:
            pending, value = self._tx.pending(path)
            if pending:
                return value
        return path.read_text(encoding="utf-8") if path.exists() else None

    # -- records, in every version ----------------------------------------------------

    def versions(self, stage_name: str) -> pl.DataFrame | None:
        """Every version of every record of a source, stamped ``arrived`` and ``version``."""
        return self._read_parquet(self.layout.versions(stage_name))

    def records(
        self,
        stage_name: str,
        night: date | None = None,
        snapshot: bool | None = None,
        columns: list[str] | None = None,
    ) -> pl.DataFrame | None:
        """The records the night ``night`` sees (None: every version arrived so far): per
        record its latest version arrived by then; of the register, the latest export.
        Only ``columns``, if given.

        A night on or after the newest arrival (every night but a re-run of an older one)
        reads them as kept beside the versions (:meth:`current`), not sorted out of every
        version again: a night's steps ask for the same records several times."""
        if snapshot is None and (current := self.current(stage_name, night, columns)) is not None:
            return current.drop(STAMPS) if columns is None else current.select(columns)
        versions = self.versions(stage_name)
        if versions is None:
            return None
        seen = as_of(versions, night, stage_name in self.snapshots() if snapshot is None else snapshot)
        if not (seen.height or night is None or versions.height == 0):
            return None
        return seen if columns is None else seen.select(columns)

    def current(self, stage_name: str, night: date | None = None, columns: list[str] | None = None) -> pl.DataFrame | None:
        """Each record's latest version with its stamps, as kept when versions were last
        added (only ``columns``, with ``arrived``, if given), if that is what the night
        ``night`` sees (nothing arrived after it); None otherwise, or when the stage has
        not kept it (a stage staged before it did)."""
        wanted = None if columns is None else list(dict.fromkeys([*columns, ARRIVED]))
        kept = self._read_parquet(self.layout.current(stage_name), wanted)
        if kept is None or (night is not None and kept.height and kept[ARRIVED].max() > night):
            return None
        return kept

    def records_digest(self, stage_name: str, night: date) -> str | None:
        """A digest of the records the night ``night`` sees (:meth:`records`), from the
        bytes of the file they are read from: the same digest, the same records. What
        lets a load leave a table whose records did not change unread. None when they
        cannot be told (nothing staged, or a write of them pending)."""
        if self.current(stage_name, night, []) is not None:
            return self._file_digest(self.layout.current(stage_name))
        versions = self._file_digest(self.layout.versions(stage_name))
        return f"{versions}:{night}:{stage_name in self.snapshots()}" if versions else None

    def nightly_digest(self, kind: str, night: date) -> str | None:
        """A digest of the night's ``kind`` as :meth:`nightly` reads it (None: not made)."""
        return self._file_digest(self.layout.nightly(kind, night))

    def _file_digest(self, path: Path) -> str | None:
        if self._pending(path) or not path.exists():
            return None
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()

    def latest_versions(self, stage_name: str, night: date) -> pl.DataFrame | None:
        """Per record, the version the night ``night`` sees (``source_record_id``,
        ``version``): what tells a night which records changed since an earlier one."""
        if (current := self.current(stage_name, night, ["source_record_id", VERSION])) is not None:
            return current.select("source_record_id", VERSION)
        path = self.layout.versions(stage_name)
        pending, value = self._tx.pending(path) if self._tx is not None else (False, None)
        if (pending and value is None) or (not pending and not path.exists()):
            return None
        frame = value.lazy() if pending else pl.scan_parquet(path)
        return (
            frame.select("source_record_id", ARRIVED, VERSION)
            .filter(pl.col(ARRIVED) <= night)
            .sort(ARRIVED, VERSION)
            .unique("source_record_id", keep="last")
            .select("source_record_id", VERSION)
            .collect()
        )

    def next_version(self, stage_name: str) -> int:
        versions = self.versions(stage_name)
        return int(versions[VERSION].max()) + 1 if versions is not None and versions.height else 0

    def snapshots(self) -> set[str]:
        """The sources delivered whole (the register): a night sees their latest delivery."""
        return set(self._marker().get("snapshots", []))

    def _marker(self) -> dict:
        text = self._read_text(self.layout.marker)
        return json.loads(text) if text else {}

    def save_marker(self, marker: dict) -> None:
        marker = {"version": LAYOUT_VERSION, **marker}
        self._write_text(self.layout.marker, json.dumps(marker, indent=1, sort_keys=True) + "\n")

    def add_versions(self, stage_name: str, added: pl.DataFrame, snapshot: bool = False) -> None:
        """Append a night's new versions (a re-run adds none: its rows are duplicates). A
        ``snapshot`` is a whole delivery: the nights after it see it alone."""
        marker = self._marker()
        if snapshot and stage_name not in marker.get("snapshots", []):
            self.save_marker({**marker, "snapshots": sorted({*marker.get("snapshots", []), stage_name})})
        if added.height == 0 and self.versions(stage_name) is not None:
            return
        old = self.versions(stage_name)
        frame = added if old is None else pl.concat([old, added], how="diagonal_relaxed")
        self.save_versions(stage_name, frame, stage_name in self.snapshots())

    def save_versions(self, stage_name: str, versions: pl.DataFrame, snapshot: bool) -> None:
        """Replace a source's versions, and with them, in the same step, what the newest
        night sees of them (:meth:`current`)."""
        versions = versions.sort(ARRIVED, VERSION)
        self._write_parquet(versions, self.layout.versions(stage_name))
        self._write_parquet(latest(versions, None, snapshot), self.layout.current(stage_name))

    def history(self, record: str) -> pl.DataFrame:
        """Every version of one record in every source, in order of arrival."""
        frames = []
        folder = self.root / "versions"
        for path in sorted(folder.glob("*.parquet")) if folder.is_dir() else ():
            found = history(pl.read_parquet(path), record)
            if found.height:
                frames.append(found.with_columns(pl.lit(path.stem).alias("stage_name")))
        return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()

    def sources(self) -> list[str]:
        """The sources with staged records."""
        folder = self.root / "versions"
        return sorted(p.stem for p in folder.glob("*.parquet")) if folder.is_dir() else []

    # -- the account of files -----------------------------------------------------------

    def ledger(self, stage_name: str | None = None) -> pl.DataFrame:
        """The account of every file, kept per source so that the sync DAGs of different
        departments, running at the same time, never write the same file."""
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
            paths += [p for p in self._tx.pending_paths(self.root / folder) if p not in paths]
        return [f for f in map(self._read_parquet, paths) if f is not None]

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

    def earlier_than_staged(self, stage_name: str, night: date) -> bool:
        """Whether a later night than ``night`` has already staged this source."""
        ledger = self.ledger(stage_name)
        return bool(ledger.height) and ledger["as_of"].max() > night

    def save_quarantine(self, stage_name: str, rows: pl.DataFrame) -> None:
        """Insert by (file checksum, row), the first account kept: quarantining the same
        file again (a refused file is read every night) changes nothing."""
        if rows.height == 0:
            return
        rows = rows.select(list(QUARANTINE_SCHEMA)).cast(QUARANTINE_SCHEMA)
        path = self.layout.quarantine(stage_name)
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
            self._write_parquet(pl.concat([old, part]).sort("as_of", "file"), self.layout.ledger(stage_name))

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
        self._write_text(self.layout.watermarks, json.dumps(data, indent=2, sort_keys=True) + "\n")

    def _watermarks(self) -> dict:
        text = self._read_text(self.layout.watermarks)
        return json.loads(text) if text else {}

    # -- what each night's steps made ---------------------------------------------------

    def nightly(self, kind: str, night: date, columns: list[str] | None = None) -> pl.DataFrame | None:
        """The night's ``links``, ``flags``, ``exit`` candidates or ``features`` (only
        ``columns``, if given); None if that step has not run for the night."""
        return self._read_parquet(self.layout.nightly(kind, night), columns)

    def save_nightly(self, kind: str, night: date, frame: pl.DataFrame, same_as: date | None = None) -> None:
        """Keep the night's ``kind``. ``same_as``: an earlier night whose ``kind`` holds
        exactly ``frame`` (the caller knows it, or has compared them): its file is linked
        rather than the frame written again."""
        if kind not in NIGHTLY:
            raise ValueError(kind)
        path = self.layout.nightly(kind, night)
        existing = self.layout.nightly(kind, same_as) if same_as is not None else None
        if existing is None or same_as == night or not existing.exists() or self._pending(existing):
            self._write_parquet(frame, path)
            return
        with self.transaction() as tx:
            tx.put_same(path, existing, frame)

    def nights(self, kind: str = "links") -> list[date]:
        """The nights for which ``kind`` was made, in order."""
        return self.layout.nights(kind)

    def before(self, kind: str, night: date) -> pl.DataFrame | None:
        """The ``kind`` of the latest night before ``night`` (the flags whose lifecycle
        tonight's continue)."""
        earlier = [d for d in self.nights(kind) if d < night]
        return self.nightly(kind, earlier[-1]) if earlier else None

    def decisions(self, night: date | None = None) -> pl.DataFrame | None:
        """The reviewers' decisions that apply on ``night`` (None: the latest of each):
        per (record, candidate) the latest made by then."""
        every = self._read_parquet(self.layout.decisions)
        if every is None:
            return None
        if night is not None:
            every = every.filter(pl.col("applies_from") <= night)
        return (
            every.sort("applies_from")
            .unique(["source", "source_record_id", "person_id"], keep="last", maintain_order=True)
            .sort("source", "source_record_id", "person_id")
        )

    def add_decisions(self, decisions: pl.DataFrame, night: date) -> None:
        """Remember decisions, applying from ``night`` on; the earlier nights keep theirs."""
        stamped = decisions.with_columns(pl.lit(night, pl.Date).alias("applies_from"))
        old = self._read_parquet(self.layout.decisions)
        every = stamped if old is None else pl.concat([old, stamped], how="diagonal_relaxed")
        every = every.unique(
            ["source", "source_record_id", "person_id", "applies_from"], keep="last", maintain_order=True
        )
        self._write_parquet(every.sort("applies_from", "source", "source_record_id", "person_id"), self.layout.decisions)

    def visits(self, night: date | None = None) -> pl.DataFrame | None:
        """The visits that apply on ``night`` (None: every one imported): per household,
        rule and list, the latest returned by then."""
        every = self._read_parquet(self.layout.visits)
        if every is None:
            return None
        if night is not None:
            every = every.filter(pl.col("applies_from") <= night)
        return every.sort("applies_from", "imported_order").unique(
            ["household_id", "rule_id", "list_date"], keep="last", maintain_order=True
        ).sort("household_id", "rule_id", "list_date")

    def visit_files(self) -> set[str]:
        """The checksums of every returned file already imported."""
        every = self._read_parquet(self.layout.visits)
        return set() if every is None else set(every["file_checksum"].unique().to_list())

    def add_visits(self, visits: pl.DataFrame, night: date) -> None:
        """Remember visits, applying from ``night`` on (an earlier night re-run keeps the
        lists it had); a later file's row for the same household, rule and list wins."""
        old = self._read_parquet(self.layout.visits)
        order = 0 if old is None else int(old["imported_order"].max()) + 1
        stamped = visits.with_columns(
            pl.lit(night, pl.Date).alias("applies_from"), pl.lit(order, pl.Int64).alias("imported_order")
        )
        every = stamped if old is None else pl.concat([old, stamped], how="diagonal_relaxed")
        self._write_parquet(every.sort("imported_order", "household_id", "rule_id"), self.layout.visits)

    def save_model(self, night: date, model: dict) -> None:
        """The matching model the night scored with (its parameters and when it was fitted)."""
        self._write_text(self.layout.model(night), json.dumps(model, indent=1, sort_keys=True) + "\n")

    def model(self, night: date) -> dict | None:
        """The model of the night ``night`` if it was matched, else of the latest night
        before it: what the night scores with."""
        nights = [d for d in self.layout.nights("models", ".json") if d <= night]
        text = self._read_text(self.layout.model(nights[-1])) if nights else None
        return json.loads(text) if text else None

    def settle(self, source: str, night: date, status: str, reason: str = "") -> None:
        """The source's sync of the night has ended (``ok``, ``nothing new``, ``partial``,
        ``failed``): the match-and-flag of the night waits for every source to settle.
        Re-running the night changes nothing: no clock time is kept, and a re-run that read
        nothing new leaves the night's outcome as it was."""
        path = self.layout.settled(source)
        earlier = self._read_parquet(path)
        if status == "nothing new" and earlier is not None and earlier.filter(pl.col("night") == night).height:
            return  # a re-run of the night read nothing new: the night ended as it did
        entry = pl.DataFrame({"night": [night], "status": [status], "reason": [reason]}, schema=SETTLED_SCHEMA)
        kept = earlier.filter(pl.col("night") != night) if earlier is not None else None
        self._write_parquet(pl.concat([kept, entry]).sort("night") if kept is not None else entry, path)

    def first_settled(self) -> date | None:
        """The first night any source recorded how it ended (None: none ever did)."""
        nights = [
            frame["night"].min()
            for path in self.layout.settled("*").parent.glob("*.parquet")
            if (frame := self._read_parquet(path)) is not None and frame.height
        ]
        return min(nights) if nights else None

    def settled(self, night: date) -> dict[str, tuple[str, str]]:
        """How each source's sync of the night ended: source -> (status, reason)."""
        out = {}
        for path in sorted(self.layout.settled("*").parent.glob("*.parquet")):
            frame = self._read_parquet(path)
            for row in frame.filter(pl.col("night") == night).iter_rows(named=True):
                out[path.stem] = (row["status"], row["reason"])
        return out

    def missing(self, night: date, expected: Iterable[str]) -> dict[str, tuple[str, str]]:
        """The sources the night goes without: source -> (status, reason), the status
        ``not settled`` (its sync did not end), ``failed`` (refused whole) or ``partial``
        (some files refused). Nothing for a night no source recorded its end of (a night
        staged before the sources did)."""
        settled = self.settled(night)
        if not settled:
            return {}
        found = {source: settled.get(source, ("not settled", "")) for source in expected}
        return {s: v for s, v in found.items() if v[0] in ("not settled", "failed", "partial")}

    def load_account(self) -> LoadAccount | None:
        """What the county's last load wrote into the warehouse (None before any load)."""
        text = self._read_text(self.layout.loaded_account)
        if not text:
            return None
        account = json.loads(text)
        tables = {name: self._read_parquet(self.layout.loaded(name)) for name in account["tables"]}
        found = {n: f for n, f in tables.items() if f is not None}
        inputs = {n: d for n, d in account.get("inputs", {}).items() if n in found}
        return LoadAccount(account["fingerprint"], found, inputs)

    def save_load_account(self, account: LoadAccount, last: LoadAccount | None = None) -> None:
        """Keep what a load wrote (after its transaction committed), replacing the last
        account ``last``. A table the load left as ``last`` holds it (the same frame,
        read from its file) is not written again: a night's flags change the account,
        and rewriting its 1.7M links and records cost 0.2 s a night."""
        with self.transaction():
            for name, frame in account.tables.items():
                if last is None or last.tables.get(name) is not frame:
                    self._write_parquet(frame, self.layout.loaded(name))
            kept = {"fingerprint": account.fingerprint, "tables": sorted(account.tables), "inputs": account.inputs}
            self._write_text(self.layout.loaded_account, json.dumps(kept, indent=1, sort_keys=True) + "\n")

    def features_basis(self, night: date) -> dict | None:
        """What the night's features were computed from (:func:`rules.run.flag_stage`)."""
        text = self._read_text(self.layout.features_basis(night))
        return json.loads(text) if text else None

    def save_features_basis(self, night: date, basis: dict | None) -> None:
        """Keep (or, with None, forget) what the night's features were computed from."""
        if basis is None:
            if self.layout.features_basis(night).exists():
                self._delete(self.layout.features_basis(night))
            return
        self._write_text(self.layout.features_basis(night), json.dumps(basis, indent=1, sort_keys=True) + "\n")

    def prepared_register(self, tag: str) -> pl.DataFrame | None:
        """The register as matching last prepared it, if prepared from what ``tag`` names
        (the register's rows and the code: :func:`matching.incremental.fingerprint`)."""
        if self._read_text(self.layout.prepared_tag) != tag:
            return None
        return self._read_parquet(self.layout.prepared_register)

    def save_prepared_register(self, tag: str, frame: pl.DataFrame) -> None:
        """Keep the register prepared for matching, with what it was prepared from."""
        with self.transaction():
            self._write_parquet(frame, self.layout.prepared_register)
            self._write_text(self.layout.prepared_tag, tag)

    def save_run(self, night: date, run: dict) -> None:
        """What the night's steps did (their results, as JSON)."""
        self._write_text(self.layout.run(night), json.dumps(run, ensure_ascii=False, indent=1, default=str) + "\n")

    def run(self, night: date) -> dict | None:
        text = self._read_text(self.layout.run(night))
        return json.loads(text) if text else None
