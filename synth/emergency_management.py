"""应急管理 disaster verification: three events of the past year and a bit, the
households they hit, and planted losses either side of the rule's threshold."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl

from synth.world import Shock, World

DAMAGE = ("未受损", "一般损坏", "严重损坏", "倒塌")
DAMAGE_P = (0.62, 0.30, 0.06, 0.02)
LOSS_RANGE = {
    "未受损": (200, 3000),
    "一般损坏": (1000, 8000),
    "严重损坏": (10000, 50000),
    "倒塌": (50000, 150000),
}


@dataclass(frozen=True)
class Event:
    disaster_id: str
    kind: str
    day: date
    villages: tuple[str, ...]
    fmt: str  # xlsx | csv


def events(world: World) -> list[Event]:
    """The county's disasters: one inside the window, one older, one exactly 365 days back."""
    villages = world.register["village"].unique(maintain_order=True).to_list()
    rng = world.rng
    picks = [
        tuple(villages[i] for i in rng.choice(len(villages), size=min(k, len(villages)), replace=False))
        for k in (5, 3, 2)
    ]
    year, code = world.as_of.year, world.county.code
    return [
        Event(f"{code}{year}ZH001", "洪涝", world.days_ago(40), picks[0], "xlsx"),
        Event(f"{code}{year}ZH002", "风雹", world.days_ago(200), picks[1], "csv"),
        Event(f"{code}{year - 1}ZH009", "地质灾害", world.days_ago(365), picks[2], "xlsx"),
    ]


def _record(
    world: World, event: Event, hh: dict[str, Any], who: dict[str, Any], damage: str, loss: float
) -> dict[str, Any]:
    rng = world.rng
    area = round(float(rng.uniform(0.5, 12)), 1) if damage != "倒塌" or rng.random() < 0.5 else 0.0
    return {
        **world.trace(who, event.day),
        "_event": event.disaster_id,
        "灾害编号": event.disaster_id,
        "灾害种类": event.kind,
        "灾害发生日期": event.day,
        "乡镇": hh["township"],
        "行政村": hh["village"],
        "户主姓名": who["name"],
        "户主身份证号": who["id_number"],
        "家庭人口": int(hh["household_size"] + (rng.integers(-1, 2) if rng.random() < 0.1 else 0)),
        "房屋受损情况": damage,
        "农作物受灾面积(亩)": area,
        "农作物绝收面积(亩)": round(area * float(rng.uniform(0, 0.6)), 1),
        "直接经济损失(元)": loss,
        "核查日期": min(event.day + timedelta(days=int(rng.integers(3, 21))), world.as_of),
        "_defects": ["spouse_as_head"] if who.get("_spouse_as_head") else [],
    }


def _named(world: World, hh: dict[str, Any], spouses: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The head as registered, or the spouse as the verification team wrote it down."""
    rate = world.noise.rate("spouse_as_head")
    spouse = spouses.get(hh["household_id"])
    if spouse is not None:
        world.exposure["spouse_as_head"] += 1
    if spouse is not None and world.rng.random() < rate:
        return {**spouse, "_spouse_as_head": True}
    return hh


def generate(world: World) -> tuple[list[Event], list[dict[str, Any]]]:
    rng = world.rng
    evs = events(world)
    households = world.households()
    spouses = {
        r["household_id"]: r
        for r in world.register.filter(pl.col("relation") == "配偶").iter_rows(named=True)
    }
    rates = world.settings["shocks"]["disaster_loss"]
    fires = world.take_households(households, rates["fires"])
    near = world.take_households(households, rates["near"])
    planted = {h["household_id"] for h in fires + near}

    records: list[dict[str, Any]] = []
    for event in evs:
        hit = households.filter(
            pl.col("village").is_in(list(event.villages)), ~pl.col("household_id").is_in(list(planted))
        )
        for hh in hit.iter_rows(named=True):
            if rng.random() > 0.6:
                continue
            damage = DAMAGE[int(rng.choice(4, p=DAMAGE_P))]
            low, high = LOSS_RANGE[damage]
            who = _named(world, hh, spouses)
            records.append(_record(world, event, hh, who, damage, float(rng.integers(low, high))))
        share = float(world.settings["outsider_share"])
        n_out = round(hit.height * 0.6 * share / (1 - share))
        out = world.outsiders()
        for i in rng.choice(out.height, size=min(n_out, out.height), replace=False):
            who = out.row(int(i), named=True)
            hh = {
                **who,
                "household_size": int(rng.integers(1, 6)),
                "village": event.villages[int(rng.integers(len(event.villages)))],
            }
            damage = DAMAGE[int(rng.choice(4, p=DAMAGE_P))]
            low, high = LOSS_RANGE[damage]
            records.append(_record(world, event, hh, who, damage, float(rng.integers(low, high))))

    for expected, group in (("fires", fires), ("near_miss", near)):
        for hh in group:
            records += _plant(world, evs, hh, expected, spouses)
    return evs, records


def _plant(
    world: World, evs: list[Event], hh: dict[str, Any], expected: str, spouses: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    rng = world.rng
    threshold = round(0.3 * hh["income_per_capita"] * hh["household_size"], 2)
    who = _named(world, hh, spouses)
    in_window, older, edge = evs
    if expected == "fires":
        variant = ("loss_share", "loss_at_threshold", "house_collapsed")[int(rng.integers(3))]
        if variant == "house_collapsed":
            recs = [_record(world, in_window, hh, who, "倒塌", float(rng.integers(50000, 150000)))]
            figure = recs[0]["直接经济损失(元)"]
        else:
            figure = (
                threshold
                if variant == "loss_at_threshold"
                else float(np.ceil(threshold + rng.uniform(1, 2000)))
            )
            damage = ("未受损", "一般损坏")[int(rng.integers(2))]
            recs = [_record(world, (in_window, older)[int(rng.integers(2))], hh, who, damage, figure)]
    else:
        variant = ("loss_just_below", "sum_not_single", "collapsed_365_days_ago")[int(rng.integers(3))]
        if variant == "collapsed_365_days_ago":
            recs = [_record(world, edge, hh, who, "倒塌", float(rng.integers(50000, 150000)))]
            figure = recs[0]["直接经济损失(元)"]
        elif variant == "sum_not_single":
            each = float(np.floor(threshold * 0.6))
            recs = [
                _record(world, in_window, hh, who, "一般损坏", each),
                _record(world, older, hh, who, "未受损", each),
            ]
            figure = each
        else:
            figure = round(threshold - float(rng.uniform(0.01, 200)), 2)
            recs = [_record(world, in_window, hh, who, "一般损坏", figure)]
    world.shocks.append(
        Shock(
            hh["household_id"],
            "disaster",
            "disaster_loss",
            expected,
            variant,
            figure,
            threshold,
            [r["_uid"] for r in recs],
        )
    )
    return recs
