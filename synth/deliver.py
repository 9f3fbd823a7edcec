"""Lay true records out as the departments' files: which file, which row, which
cell form, and the record key each delivered row carries."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np

from guardline.keys import record_key
from synth import noise as noise_mod
from synth.noise import NoiseProfile
from synth.places import short_place
from synth.writers import amount_text, date_text, excel_serial

DATE_FORMS = ("slash", "chinese", "compact")


@dataclass
class Delivered:
    """Rows written for one source: per row its uid, key and file, plus the defect log."""

    source: str
    uids: list[int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    copies: list[str] = field(default_factory=list)
    defects: list[tuple[int, str, str]] = field(default_factory=list)

    def add(self, uid: int, key: str, file: str, copy: str) -> None:
        self.uids.append(uid)
        self.keys.append(key)
        self.files.append(file)
        self.copies.append(copy)


class Presenter:
    """Cell forms of dates and amounts, drawn per row and logged."""

    def __init__(
        self,
        profile: NoiseProfile,
        rng: np.random.Generator,
        log: list[tuple[int, str, str]],
        exposure: Counter[str],
        applied: Counter[str],
    ):
        self.profile = profile
        self.rng = rng
        self.log = log
        self.exposure = exposure
        self.applied = applied

    def _hit(self, uid: int, field: str, kind: str) -> None:
        self.log.append((uid, field, kind))
        self.applied[kind] += 1

    def date(self, uid: int, field: str, d: date | None, xlsx: bool) -> Any:
        if d is None:
            return None
        self.exposure.update(("excel_serial", "date_variant"))
        u = self.rng.random()
        if u < self.profile.rate("excel_serial"):
            self._hit(uid, field, "excel_serial")
            return excel_serial(d) if xlsx else str(excel_serial(d))
        if u < self.profile.rate("excel_serial") + self.profile.rate("date_variant"):
            self._hit(uid, field, "date_variant")
            return date_text(d, DATE_FORMS[int(self.rng.integers(len(DATE_FORMS)))])
        return d if xlsx else d.isoformat()

    def amount(self, uid: int, field: str, x: float | None, xlsx: bool) -> Any:
        if x is None:
            return None
        if abs(x) < 1000:  # below a thousand there is no separator to show
            return float(x) if xlsx else f"{x:.2f}"
        self.exposure["amount_text"] += 1
        if self.rng.random() < self.profile.rate("amount_text"):
            self._hit(uid, field, "amount_text")
            return amount_text(x)
        return float(x) if xlsx else f"{x:.2f}"

    def place(self, uid: int, field: str, name: str) -> str:
        self.exposure["place_short"] += 1
        if self.rng.random() < self.profile.rate("place_short"):
            self._hit(uid, field, "place_short")
            return short_place(name)
        return name

    def id_cell(self, uid: int, delivered: str, true_id: str, defects: list[str], xlsx: bool) -> Any:
        """An Excel-mangled ID is a number in an xlsx cell, and its displayed text in a CSV."""
        if "excel_float" in defects and xlsx:
            return noise_mod.excel_float_value(true_id)
        return delivered


def unique_keys(
    rows: list[dict[str, Any]], key: Callable[[dict[str, Any]], str], reset: Callable[[dict[str, Any]], None]
) -> None:
    """Make distinct records carry distinct keys: a defect that made two keys collide
    (two blank IDs with the same name, say) is undone on the later record."""
    seen: dict[str, int] = {}
    for row in rows:
        k = key(row)
        if k in seen and seen[k] != row["_uid"]:
            reset(row)
            k = key(row)
        seen.setdefault(k, row["_uid"])


def month_files(
    rows: list[dict[str, Any]], as_of: date, first: date, pattern: str
) -> dict[str, list[dict[str, Any]]]:
    """Monthly files by the record's own date; late records go one file later, records
    dated after D into D's month's file."""
    last = as_of.year * 12 + as_of.month - 1
    start = first.year * 12 + first.month - 1
    files: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        m = min(max(row["_date"].year * 12 + row["_date"].month - 1, start), last)
        if row.get("_late") and m < last:
            m += 1
        files.setdefault(pattern.format(ym=f"{m // 12}{m % 12 + 1:02d}"), []).append(row)
    return dict(sorted(files.items()))


def key_of(fields: tuple[str, ...]) -> Callable[[dict[str, Any]], str]:
    """The record key of a delivered row from its key fields."""
    return lambda row: record_key(*(row[f] for f in fields))
