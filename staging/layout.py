"""Where everything lives in a stage folder: the one place that spells its paths.

::

    <stage>/layout.json                       the layout's version (see staging.migrate)
    <stage>/versions/<source>.parquet         every version of every record, with the night it arrived
    <stage>/current/<source>.parquet          each record's latest version: what the newest night sees (kept with the versions)
    <stage>/ledger/<source>.parquet           every file (or exchange pull) and what became of its rows
    <stage>/quarantine/<source>.parquet       every row not loaded, with its reason
    <stage>/watermarks.json                   how far the 人社 exchange has been read
    <stage>/settled/<source>.parquet          per night, how the source's sync ended (ok, nothing new, partial, failed)
    <stage>/links/<D>.parquet                 the night D's links of records to the register
    <stage>/scored/<D>.parquet                the same before the reviewers' decisions, with the version each was scored on
    <stage>/flags/<D>.parquet                 the night D's flags with their lifecycle
    <stage>/exit/<D>.parquet                  the night D's exit candidates
    <stage>/features/<D>.parquet              the night D's features per household
    <stage>/features/<D>.json                 what they were computed from: the basis, the record versions, the links
    <stage>/models/<D>.json                   the matching model the night D scored with, and when it was fitted
    <stage>/prepared/registry.parquet         the register prepared for matching, and (registry.tag) what it was prepared from
    <stage>/review_decisions.parquet          the reviewers' decisions, with the night they apply from
    <stage>/visits.parquet                    the visits cadres returned (per household and rule), with the night they apply from
    <stage>/runs/<D>.json                     what each step of the night D did
    <stage>/loaded/                           what the last load wrote into the warehouse: per table the key and a hash of each row, and the load's fingerprint
    <stage>/landing/<D>/<source>/             a sync DAG's landing between its tasks
    <stage>/reports/                          Great Expectations' results and Data Docs
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

LAYOUT_VERSION = 2


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def marker(self) -> Path:
        return self.root / "layout.json"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    def versions(self, source: str) -> Path:
        return self.root / "versions" / f"{source}.parquet"

    def current(self, source: str) -> Path:
        return self.root / "current" / f"{source}.parquet"

    def ledger(self, source: str) -> Path:
        return self.root / "ledger" / f"{source}.parquet"

    def quarantine(self, source: str) -> Path:
        return self.root / "quarantine" / f"{source}.parquet"

    def settled(self, source: str) -> Path:
        return self.root / "settled" / f"{source}.parquet"

    @property
    def watermarks(self) -> Path:
        return self.root / "watermarks.json"

    def nightly(self, kind: str, night: date) -> Path:
        """``links``, ``scored``, ``flags``, ``exit`` or ``features`` of one night."""
        return self.root / kind / f"{night.isoformat()}.parquet"

    def features_basis(self, night: date) -> Path:
        return self.root / "features" / f"{night.isoformat()}.json"

    def model(self, night: date) -> Path:
        return self.root / "models" / f"{night.isoformat()}.json"

    @property
    def prepared_register(self) -> Path:
        return self.root / "prepared" / "registry.parquet"

    @property
    def prepared_tag(self) -> Path:
        return self.root / "prepared" / "registry.tag"

    @property
    def decisions(self) -> Path:
        return self.root / "review_decisions.parquet"

    @property
    def visits(self) -> Path:
        return self.root / "visits.parquet"

    def run(self, night: date) -> Path:
        return self.root / "runs" / f"{night.isoformat()}.json"

    def loaded(self, table: str) -> Path:
        return self.root / "loaded" / f"{table}.parquet"

    @property
    def loaded_account(self) -> Path:
        return self.root / "loaded" / "account.json"

    def landing(self, night: date, source: str) -> Path:
        return self.root / "landing" / night.isoformat() / source

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def nights(self, kind: str, suffix: str = ".parquet") -> list[date]:
        """The nights that have a ``kind`` file, in order."""
        folder = self.root / kind
        found = []
        for p in folder.glob(f"*{suffix}") if folder.is_dir() else ():
            try:
                found.append(date.fromisoformat(p.stem))
            except ValueError:
                continue
        return sorted(found)
