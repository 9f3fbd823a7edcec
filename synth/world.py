"""State shared while one synthetic night is generated.

The register, the people outside it, the planted shocks and every department
record, before the noise and the writers turn them into deliveries.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl

from guardline import idnumber
from synth.noise import NoiseProfile
from synth.places import DEFAULT_COUNTY, NEIGHBOUR_CODES, OTHER_COUNTIES, County

IDENTITY = (
    "person_id",
    "household_id",
    "id_number",
    "name",
    "sex",
    "birth_date",
    "township",
    "village",
    "group_no",
    "phone",
)


@dataclass
class Shock:
    """One planted shock: what should fire (or just not fire) and the records behind it."""

    household_id: str
    shock: str
    rule_id: str
    expected: str  # fires | near_miss
    variant: str
    figure: float
    threshold: float
    uids: list[int] = field(default_factory=list)


@dataclass
class World:
    as_of: date
    rng: np.random.Generator
    register: pl.DataFrame
    settings: dict[str, Any]
    noise: NoiseProfile
    county: County = DEFAULT_COUNTY
    shocks: list[Shock] = field(default_factory=list)
    # Opportunities for each defect and how often it was applied, counted per unit
    # (record, or person for sources that hold one identity per person).
    exposure: Counter[str] = field(default_factory=Counter)
    applied: Counter[str] = field(default_factory=Counter)
    _uid: int = 0
    _taken: set[str] = field(default_factory=set)
    _outsiders: pl.DataFrame | None = None

    @property
    def line(self) -> float:
        return float(self.settings["monitoring_line"])

    def uid(self) -> int:
        self._uid += 1
        return self._uid

    def trace(self, who: dict[str, Any], when: date) -> dict[str, Any]:
        """The internal fields every record carries: a uid and the true identity behind it."""
        return {
            "_uid": self.uid(),
            "_person_id": who["person_id"],
            "_true_id": who["id_number"],
            "_true_name": who["name"],
            "_born": who["birth_date"],
            "_date": when,
        }

    def days_ago(self, n: int) -> date:
        return self.as_of - timedelta(days=n)

    def households(self) -> pl.DataFrame:
        """One row per household: the head's row, as docs/rules.md reads household columns."""
        return self.register.sort("household_id", pl.col("relation") != "户主", "person_id").unique(
            "household_id", keep="first", maintain_order=True
        )

    def take_households(self, frame: pl.DataFrame, share: float) -> list[dict[str, Any]]:
        """Draw households not yet used by another shock, ``share`` of the whole county."""
        n = round(share * self.register["household_id"].n_unique())
        n = max(n, 1) if share > 0 else 0
        free = frame.filter(~pl.col("household_id").is_in(list(self._taken)))
        if n == 0 or free.height == 0:
            return []
        idx = self.rng.choice(free.height, size=min(n, free.height), replace=False)
        picked = free[np.sort(idx)].to_dicts()
        self._taken.update(row["household_id"] for row in picked)
        return picked

    def set_household(self, household_id: str, **values: float) -> None:
        """Overwrite household-level register columns (planted incomes)."""
        hit = pl.col("household_id") == household_id
        self.register = self.register.with_columns(
            pl.when(hit).then(pl.lit(v)).otherwise(pl.col(k)).alias(k) for k, v in values.items()
        )

    def outsiders(self) -> pl.DataFrame:
        """People not in the register: other counties' residents, some named like locals."""
        if self._outsiders is None:
            self._outsiders = _make_outsiders(self)
        return self._outsiders

    def identities(self, n_in: int, pool: pl.DataFrame) -> pl.DataFrame:
        """``pool`` plus enough outsiders that they make up the configured share."""
        share = float(self.settings["outsider_share"])
        n_out = round(n_in * share / (1 - share))
        out = self.outsiders()
        idx = self.rng.choice(out.height, size=n_out, replace=n_out > out.height)
        return pl.concat([pool.select(IDENTITY), out[idx].select(IDENTITY)], how="vertical_relaxed")


def _near_id(donor: str, born: date, used: set[str], rng: np.random.Generator) -> str | None:
    """A valid ID one digit of the sequence away from ``donor``'s (same area, birth date
    and sex), not yet anyone's; None when none is free."""
    for _ in range(20):
        pos = 14 + int(rng.integers(0, 2))  # the sequence's first two digits: its parity (sex) stays
        digit = str((int(donor[pos]) + int(rng.integers(1, 10))) % 10)
        body = donor[:pos] + digit + donor[pos + 1 : 17]
        candidate = idnumber.make_id(donor[:6], born, int(body[14:17]))
        if candidate not in used:
            return candidate
    return None


def _make_outsiders(world: World) -> pl.DataFrame:
    """People no register holds: residents of other counties, urban residents of this one
    (its own area code: they can reach the exact-ID path), some named like a registered
    person, some with an ID one digit from a registered person's (a namesake among them
    shares the birth date too)."""
    reg = world.register
    rng = world.rng
    n = max(200, reg.height // 5)
    namesake = rng.random(n) < float(world.settings["namesake_share"])
    kinds = world.settings["outsider_kinds"]
    draw = rng.random(n)
    donors = reg[rng.choice(reg.height, size=n)]
    rows = []
    used = set(reg["id_number"].to_list())
    codes = OTHER_COUNTIES + NEIGHBOUR_CODES
    for i, donor in enumerate(donors.iter_rows(named=True)):
        sex = donor["sex"] if namesake[i] else ("男" if rng.random() < 0.5 else "女")
        birth = world.as_of - timedelta(days=int(rng.integers(18 * 365, 80 * 365)))
        id_number = None
        if draw[i] < kinds["near_id"]:
            sex, birth = donor["sex"], donor["birth_date"]
            id_number = _near_id(donor["id_number"], birth, used, rng)
        same_county = draw[i] < kinds["near_id"] + kinds["same_county"]
        while id_number is None:
            seq = int(rng.integers(0, 500)) * 2 + (1 if sex == "男" else 0)
            code = world.county.code if same_county else codes[rng.integers(len(codes))]
            made = idnumber.make_id(code, birth, seq)
            id_number = made if made not in used else None
        used.add(id_number)
        name = donor["name"] if namesake[i] else reg["name"][int(rng.integers(reg.height))]
        rows.append(
            {
                "person_id": None,
                "household_id": None,
                "id_number": id_number,
                "name": name,
                "sex": sex,
                "birth_date": birth,
                "township": donor["township"],
                "village": donor["village"],
                "group_no": int(rng.integers(1, 12)),
                "phone": f"1{rng.choice([3, 5, 7, 8])}{rng.integers(0, 10**9):09d}",
            }
        )
    return pl.DataFrame(rows, schema_overrides={"person_id": pl.String, "household_id": pl.String})
