"""民政 assistance changes: routine changes, mostly for monitored households, and
planted new 低保/特困/临时救助 for households nobody monitors yet."""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl

from synth.world import Shock, World

HISTORY_DAYS = 200
WINDOW = 90
MONTHLY = {
    "农村低保": (300, 620),
    "农村特困": (700, 950),
    "困难残疾人生活补贴": (70, 100),
    "重度残疾人护理补贴": (70, 100),
}
REMARKS = ("", "", "", "", "因病", "因残", "因灾", "缺劳力", "复核调整")


def _record(
    world: World, who: dict[str, Any], size: int, category: str, change: str, when: date
) -> dict[str, Any]:
    rng = world.rng
    monthly = one_off = None
    if category == "临时救助":
        one_off = float(rng.integers(5, 60) * 100)
    elif change != "停保":
        low, high = MONTHLY[category]
        covered = size if category == "农村低保" else 1
        monthly = float(rng.integers(low, high) * covered)
    return {
        **world.trace(who, when),
        "_township": who["township"],
        "_village": who["village"],
        "_group": who["group_no"],
        "姓名": who["name"],
        "身份证号码": who["id_number"],
        "救助类别": category,
        "变动类型": change,
        "保障人数": size if category == "农村低保" else 1,
        "月保障金额(元)": monthly,
        "临时救助金额(元)": one_off,
        "审批日期": when,
        "户籍地址": f"{world.county.name}{who['township']}{who['village']}{who['group_no']}组",
        "联系电话": who["phone"],
        "备注": REMARKS[int(rng.integers(len(REMARKS)))],
    }


def generate(world: World) -> list[dict[str, Any]]:
    rng = world.rng
    households = world.households()
    is_monitored = (pl.col("monitored_category") != "") & (pl.col("risk_eliminated") == "否")
    rates = world.settings["shocks"]["new_assistance"]
    open_households = households.filter(~is_monitored)
    fires = world.take_households(open_households, rates["fires"])
    near = world.take_households(households, rates["near"])
    planted = {h["household_id"] for h in fires + near}

    records: list[dict[str, Any]] = []
    background = households.filter(~pl.col("household_id").is_in(list(planted)))
    for hh in background.iter_rows(named=True):
        monitored = hh["monitored_category"] != "" and hh["risk_eliminated"] == "否"
        size = hh["household_size"]
        if monitored and rng.random() < 0.4:
            category = ("农村低保", "临时救助", "农村特困")[int(rng.choice(3, p=(0.6, 0.33, 0.07)))]
            change = (
                "新增"
                if category != "临时救助" and rng.random() < 0.8
                else ("调整" if category != "临时救助" else "新增")
            )
            records.append(
                _record(world, hh, size, category, change, world.days_ago(int(rng.integers(0, HISTORY_DAYS))))
            )
        elif not monitored and rng.random() < 0.02:
            # Changes that are not new entries, or new entries older than the window.
            option = int(rng.integers(4))
            if option == 0:
                rec = _record(
                    world, hh, size, "农村低保", "调整", world.days_ago(int(rng.integers(0, HISTORY_DAYS)))
                )
            elif option == 1:
                rec = _record(
                    world, hh, size, "农村低保", "停保", world.days_ago(int(rng.integers(0, HISTORY_DAYS)))
                )
            elif option == 2:
                rec = _record(
                    world,
                    hh,
                    size,
                    "困难残疾人生活补贴",
                    "新增",
                    world.days_ago(int(rng.integers(0, HISTORY_DAYS))),
                )
            else:
                rec = _record(
                    world,
                    hh,
                    size,
                    "农村低保",
                    "新增",
                    world.days_ago(int(rng.integers(WINDOW, HISTORY_DAYS))),
                )
            records.append(rec)
    share = float(world.settings["outsider_share"])
    n_out = round(len(records) * share / (1 - share))
    out = world.outsiders()
    for i in rng.choice(out.height, size=min(n_out, out.height), replace=False):
        who = out.row(int(i), named=True)
        category = ("农村低保", "临时救助", "农村特困")[int(rng.choice(3, p=(0.5, 0.45, 0.05)))]
        records.append(
            _record(
                world,
                who,
                int(rng.integers(1, 6)),
                category,
                "新增",
                world.days_ago(int(rng.integers(0, HISTORY_DAYS))),
            )
        )

    for expected, group in (("fires", fires), ("near_miss", near)):
        for hh in group:
            records.append(_plant(world, hh, expected))
    return records


def _plant(world: World, hh: dict[str, Any], expected: str) -> dict[str, Any]:
    rng = world.rng
    size = hh["household_size"]
    if expected == "fires":
        variant = ("dibao_new", "tekun_new", "temporary", "window_day_89")[int(rng.integers(4))]
        category = {
            "dibao_new": "农村低保",
            "tekun_new": "农村特困",
            "temporary": "临时救助",
            "window_day_89": "农村低保",
        }[variant]
        days = 89 if variant == "window_day_89" else int(rng.integers(0, 85))
        change = "新增" if variant != "temporary" else ("新增", "调整")[int(rng.integers(2))]
    else:
        variant = ("window_day_90", "adjusted_not_new", "subsidy_not_counted", "after_run_date")[
            int(rng.integers(4))
        ]
        category = "困难残疾人生活补贴" if variant == "subsidy_not_counted" else "农村低保"
        change = "调整" if variant == "adjusted_not_new" else "新增"
        days = 90 if variant == "window_day_90" else int(rng.integers(0, 85))
        if variant == "after_run_date":
            days = -int(rng.integers(1, 5))
        monitored = hh["monitored_category"] != "" and hh["risk_eliminated"] == "否"
        if monitored and variant != "after_run_date":
            variant = "monitored_household"
    rec = _record(world, hh, size, category, change, world.days_ago(days))
    world.shocks.append(
        Shock(
            hh["household_id"],
            "new_assistance",
            "new_social_assistance",
            expected,
            variant,
            float(days),
            float(WINDOW),
            [rec["_uid"]],
        )
    )
    return rec
