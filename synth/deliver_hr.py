"""The human resources department's delivery: not a file but the 金保 exchange
database (``inbox/human_resources/exchange.sqlite``), its employment events and
monthly contributions under one (possibly wrong) identity per person."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from synth.deliver import Delivered
from synth.noisy import Fields, apply_identity_noise
from synth.world import World
from synth.writers import write_sqlite

EVENT_COLUMNS = ("aac002", "aac003", "aac004", "event_type", "event_date", "employer_name", "work_area")
EVENT_DDL = (
    "CREATE TABLE rs_employment_event (aac002 TEXT, aac003 TEXT, aac004 TEXT, "
    "event_type TEXT, event_date DATE, employer_name TEXT, work_area TEXT)"
)
CONTRIBUTION_COLUMNS = ("aac002", "aac003", "period", "wage_base", "status")
CONTRIBUTION_DDL = (
    "CREATE TABLE rs_contribution_month (aac002 TEXT, aac003 TEXT, "
    "period INTEGER, wage_base NUMERIC, status TEXT)"
)


def deliver_hr(
    world: World, events: list[dict[str, Any]], contributions: pl.DataFrame, path: Path
) -> Delivered:
    out = Delivered("human_resources")
    fields = Fields("human_resources", "aac002", "aac003", per_identity=True, file_delivered=False)
    # One person, one (possibly wrong) identity in the 金保 system: draw it once per
    # person for both tables.
    identities = pl.concat(
        [
            pl.DataFrame([{k: e[k] for k in ("_uid", "_true_id", "_true_name", "_born")} for e in events]),
            contributions.select("_uid", "_true_id", "_true_name", "_born"),
        ]
    )
    noisy, log = apply_identity_noise(
        identities.with_columns(aac002=pl.lit(""), aac003=pl.lit("")),
        fields,
        world.noise,
        world.rng,
        world.exposure,
        world.applied,
    )
    out.defects += [(u, f, d) for u, f, d in log.iter_rows()]
    delivered = noisy.select("_uid", "aac002", "aac003")
    ev = (
        pl.DataFrame(events)
        .drop("aac002", "aac003")
        .join(delivered, on="_uid", how="left", maintain_order="left")
    )
    co = contributions.drop("aac002", "aac003").join(delivered, on="_uid", how="left", maintain_order="left")
    write_sqlite(
        path,
        {
            "rs_employment_event": (
                EVENT_DDL,
                EVENT_COLUMNS,
                ev.with_columns(pl.col("event_date").cast(pl.String)).select(EVENT_COLUMNS).iter_rows(),
            ),
            "rs_contribution_month": (
                CONTRIBUTION_DDL,
                CONTRIBUTION_COLUMNS,
                co.select(CONTRIBUTION_COLUMNS).iter_rows(),
            ),
        },
    )
    for uid, a, t, d in ev.select(
        "_uid", "aac002", "event_type", pl.col("event_date").cast(pl.String)
    ).iter_rows():
        out.add(uid, f"rs_employment_event|{a.strip()}|{t}|{d}", "human_resources/exchange.sqlite", "")
    keys = co.select(
        "_uid",
        pl.format("rs_contribution_month|{}|{}", pl.col("aac002").str.strip_chars(), pl.col("period")).alias(
            "key"
        ),
    )
    out.uids += keys["_uid"].to_list()
    out.keys += keys["key"].to_list()
    out.files += ["human_resources/exchange.sqlite"] * keys.height
    out.copies += [""] * keys.height
    return out
