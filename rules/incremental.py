"""A night's features from an earlier night's: only the households whose inputs changed
or whose windows moved are computed again.

A household's features are a function of its register rows, the records linked to its
members (their values) and the night's date, through windows: settlements and disasters
of the last 365 days, unemployment of the last 180, assistance of the last 90, events
dated on or before the night, and contribution months and months identified, counted
from the night's month (:mod:`rules.features`). So between an earlier night P and tonight
D of the same month, register and code (the *basis*), a household's features differ only
if, among the records linked to it at P or at D,

- one has a version staged since P's features were computed (new records included),
- one's link changed (its person, household or status),
- one is dated where a window's edge passed between P and D: in (P, D], or in
  (P − w, D − w] for a window of w days on its source,
- a 冲销 among those cancels one of its settlements.

Those households are computed again, the others keep P's rows. A new month, register or
release computes every household, and so does a night that cannot tell what P saw (P's
links rewritten since, or records staged for an older night than the newest). Pure
functions over frames; the stage's I/O is in :mod:`rules.run`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta

import polars as pl

from connectors.sources import BY_STAGE_NAME
from rules.features import (
    ASSISTANCE_DAYS,
    DISASTER_DAYS,
    MEDICAL_DAYS,
    UNEMPLOYMENT_DAYS,
    Inputs,
    feature_table,
)
from staging.versions import VERSION

KEYS = ["source", "source_record_id"]
# Above this share of the households to compute, computing every one costs no more (a day
# of deliveries in the 100,000-household county touched 31% of them: 2.2 s continued
# against 3.1 s for all, with the scan of the records in both).
MOST = 0.4
# What a link says of a record: all that the rules, the lists and the visits read of the
# night's links (not their explanations and candidates, most of the file).
LINKED = [*KEYS, "person_id", "household_id", "match_status"]
# Per dated input (an attribute of Inputs): its stage name, its date column, and the
# windows (days) the features count it over; every dated record also counts from its day on.
WINDOWS: dict[str, tuple[str, str, tuple[int, ...]]] = {
    "health": ("health_insurance", "settlement_date", (MEDICAL_DAYS,)),
    "disaster": ("emergency_management", "disaster_date", (DISASTER_DAYS,)),
    "civil": ("civil_affairs", "approval_date", (ASSISTANCE_DAYS,)),
    "employment": ("human_resources.rs_employment_event", "event_date", (UNEMPLOYMENT_DAYS,)),
}
# The department records the features read, by stage name: the source their links name.
RECORD_SOURCES: dict[str, str] = {
    name: BY_STAGE_NAME[name].name
    for name in (
        "health_insurance",
        "civil_affairs",
        "emergency_management",
        "human_resources.rs_employment_event",
        "human_resources.rs_contribution_month",
    )
}


@dataclass(frozen=True)
class Earlier:
    """The night P a night continues, and its features."""

    night: date
    features: pl.DataFrame


def same_month(earlier: date, night: date) -> bool:
    """Whether the month-counted features (contribution months, months identified) agree."""
    return (earlier.year, earlier.month) == (night.year, night.month)


def moved(inputs: Inputs, earlier: date, night: date) -> pl.DataFrame:
    """The records (``KEYS``) a window's edge passed over between ``earlier`` and ``night``."""
    found = []
    for attribute, (stage_name, column, windows) in WINDOWS.items():
        records, source = getattr(inputs, attribute), RECORD_SOURCES[stage_name]
        if records is None or records.height == 0:
            continue
        when = pl.col(column)
        edge = (when > earlier) & (when <= night)
        for days in windows:
            edge |= (when > earlier - timedelta(days=days)) & (when <= night - timedelta(days=days))
        found.append(records.filter(edge).select(pl.lit(source).alias("source"), "source_record_id"))
    return _keys(found)


def cancelled_by(inputs: Inputs, records: pl.DataFrame) -> pl.DataFrame:
    """The settlements that 冲销 rows among ``records`` cancel (their originals)."""
    health = inputs.health
    if health is None or health.height == 0:
        return _keys([])
    reversals = health.join(
        records.filter(pl.col("source") == "health_insurance"), on="source_record_id", how="semi"
    ).filter(pl.col("settlement_type") == "冲销")
    originals = health.join(
        reversals.select(pl.col("original_settlement_id").alias("settlement_id")), on="settlement_id", how="semi"
    )
    return _keys([originals.select(pl.lit("health_insurance").alias("source"), "source_record_id")])


def link_hashes(links: pl.DataFrame) -> pl.DataFrame:
    """Per link, a hash of what it says of its record (``LINKED``), and its household."""
    return links.select(pl.struct(LINKED).hash(seed=20261207).alias("__link"), "household_id")


def links_digest(hashes: pl.DataFrame) -> str:
    """A fingerprint of a night's links as the features read them (of :func:`link_hashes`)."""
    return hashlib.sha256(hashes["__link"].sort().to_numpy().tobytes()).hexdigest()


def changed_links(now: pl.DataFrame, before: pl.DataFrame) -> pl.DataFrame:
    """The households of the links (as :func:`link_hashes`) that differ between two
    nights, on either side."""
    return pl.concat(
        [now.join(before, on="__link", how="anti"), before.join(now, on="__link", how="anti")]
    ).select("household_id")


def households_to_compute(
    inputs: Inputs, earlier: Earlier, changed: pl.DataFrame, night: date, hashes: tuple[pl.DataFrame, pl.DataFrame]
) -> pl.Series:
    """The households whose features may differ from ``earlier``'s: those of the records
    ``changed`` (a version staged since) or moved over by a window's edge, and of the
    settlements their 冲销 rows cancel; and those of the links that changed, at either
    night (``hashes``: :func:`link_hashes` of tonight's links and the earlier night's). A
    record whose link did not change is in the same household both nights, so tonight's
    links name it."""
    records = _keys([changed, moved(inputs, earlier.night, night)])
    records = _keys([records, cancelled_by(inputs, records)])
    linked = inputs.links.select(*KEYS, "household_id").join(records, on=KEYS, how="semi")
    both = pl.concat([linked.select("household_id"), changed_links(*hashes)])
    return both["household_id"].drop_nulls().unique().sort()


def continued(earlier: Earlier, inputs: Inputs, households: pl.Series, night: date) -> pl.DataFrame | None:
    """``earlier``'s features with the rows of ``households`` computed again for ``night``,
    by household; None when computing them all is as cheap (more than ``MOST`` of the
    households to compute: the cost of a household's features is mostly the scan of the
    records, paid either way), or when the rows computed do not take the earlier rows'
    types (a column the earlier night had no value of anywhere): the caller computes
    them all."""
    if households.len() > MOST * earlier.features.height:
        return None
    if households.len() == 0:
        return earlier.features.sort("household_id")
    wanted = households.to_frame("household_id")
    only = replace(
        inputs,
        register=inputs.register.join(wanted, on="household_id", how="semi"),
        links=inputs.links.join(wanted, on="household_id", how="semi"),
    )
    fresh = feature_table(only, night)
    kept = earlier.features.join(wanted, on="household_id", how="anti")
    if set(fresh.columns) != set(kept.columns) or fresh.select(kept.columns).schema != kept.schema:
        return None
    return pl.concat([kept, fresh.select(kept.columns)]).sort("household_id")


def changed_since(versions: Mapping[str, pl.DataFrame], marks: Mapping[str, int]) -> pl.DataFrame:
    """The records (``KEYS``) with a version above the ``marks`` (per stage name, the highest
    version an earlier night's features were computed from; -1, or none: nothing then).
    ``versions``: per stage name, each record's ``source_record_id`` and ``version``."""
    return _keys(
        [
            kept.filter(pl.col(VERSION) > marks.get(name, -1)).select(
                pl.lit(RECORD_SOURCES[name]).alias("source"), "source_record_id"
            )
            for name, kept in versions.items()
        ]
    )


def _keys(frames: list[pl.DataFrame]) -> pl.DataFrame:
    frames = [f.select(KEYS) for f in frames if f.height]
    return pl.concat(frames).unique() if frames else pl.DataFrame(schema={k: pl.String for k in KEYS})
