"""医保 settlement records: routine care for everyone, planted illness, 冲销 reversals."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl

from synth.world import Shock, World

HOSPITALS = (
    "花垣县人民医院",
    "花垣县中医医院",
    "湘西州人民医院",
    "吉首大学第一附属医院",
    "中南大学湘雅医院",
    "花垣县妇幼保健院",
)
CLINICS = ("{town}卫生院", "老百姓大药房({town}店)", "{town}{village}卫生室")
HISTORY_DAYS = 400
REVERSAL_RATE = 0.02


def _settlement(
    world: World, who: dict[str, Any], kind: str, when: date, burden: float | None, rng: np.random.Generator
) -> dict[str, Any]:
    """One 正常 settlement; ``burden`` (个人自付+个人自费) is drawn when not given."""
    if burden is None:
        if kind == "普通门诊":
            burden = round(float(rng.uniform(15, 260)), 2)
        elif kind == "门诊慢特病":
            burden = round(float(rng.uniform(60, 420)), 2)
        else:
            burden = round(float(rng.lognormal(np.log(2600), 0.6)), 2)
    share = float(rng.uniform(0.25, 0.45)) if kind == "住院" else float(rng.uniform(0.3, 0.6))
    total = round(burden / share, 2)
    critical = round(total * float(rng.uniform(0.05, 0.15)), 2) if total > 30_000 else 0.0
    assistance = round(total * 0.05, 2) if kind == "住院" and rng.random() < 0.2 else 0.0
    self_pay = round(burden * float(rng.uniform(0.45, 0.8)), 2)
    out_of_catalogue = round(burden - self_pay, 2)
    fund = round(total - critical - assistance - self_pay - out_of_catalogue, 2)
    admitted = discharged = None
    if kind == "住院":
        discharged = when - timedelta(days=int(rng.integers(0, 3)))
        admitted = discharged - timedelta(days=int(rng.integers(2, 21)))
        place = HOSPITALS[int(rng.integers(len(HOSPITALS)))]
    else:
        place = CLINICS[int(rng.integers(len(CLINICS)))].format(town=who["township"], village=who["village"])
    trace = world.trace(who, when)
    return {
        **trace,
        "结算流水号": f"{world.county.code}{when:%Y%m%d}{trace['_uid']:08d}",
        "结算类型": "正常",
        "原结算流水号": "",
        "姓名": who["name"],
        "证件类型": ("居民身份证", "社会保障卡", "其他")[int(rng.choice(3, p=(0.85, 0.12, 0.03)))],
        "证件号码": who["id_number"],
        "参保地区划": world.county.code if who["person_id"] else who["id_number"][:6],
        "就诊类别": kind,
        "定点医药机构名称": place,
        "入院日期": admitted,
        "出院日期": discharged,
        "结算日期": when,
        "医疗费总额": total,
        "统筹基金支付": fund,
        "大病保险支付": critical,
        "医疗救助支付": assistance,
        "个人自付": self_pay,
        "个人自费": out_of_catalogue,
    }


def _reversal(world: World, original: dict[str, Any], when: date) -> dict[str, Any]:
    money = ("医疗费总额", "统筹基金支付", "大病保险支付", "医疗救助支付", "个人自付", "个人自费")
    uid = world.uid()
    return {
        **original,
        "_uid": uid,
        "_date": when,
        "结算流水号": f"{world.county.code}{when:%Y%m%d}{uid:08d}",
        "结算类型": "冲销",
        "原结算流水号": original["结算流水号"],
        "结算日期": when,
        **{m: -original[m] if original[m] else 0.0 for m in money},
    }


def _thresholds(world: World, hh: dict[str, Any]) -> tuple[float, float]:
    """(absolute, share) medical thresholds of docs/rules.md for this household."""
    monitored = hh["monitored_category"] != "" and hh["risk_eliminated"] == "否"
    absolute = 5_000.0 if hh["household_type"] == "脱贫户" or monitored else 20_000.0
    income = hh["income_per_capita"] * hh["household_size"]
    return absolute, round(0.5 * income, 2)


def generate(world: World) -> list[dict[str, Any]]:
    rng = world.rng
    households = world.households()
    rates = world.settings["shocks"]["illness"]
    fires = world.take_households(households, rates["fires"])
    near = world.take_households(households, rates["near"])
    planted = {h["household_id"] for h in fires + near}

    records: list[dict[str, Any]] = []
    pool = world.register.filter(~pl.col("household_id").is_in(list(planted)))
    people = world.identities(pool.height, pool)
    health = dict(zip(world.register["person_id"], world.register["health"], strict=True))
    for who in people.iter_rows(named=True):
        state = health.get(who["person_id"], "健康")
        lam = {"健康": 0.9, "长期慢性病": 5.0, "患有大病": 3.0, "残疾": 1.5}[state]
        for _ in range(int(rng.poisson(lam * HISTORY_DAYS / 365))):
            kind = (
                "门诊慢特病"
                if state == "长期慢性病" and rng.random() < 0.7
                else "住院"
                if rng.random() < (0.25 if state == "患有大病" else 0.04)
                else "普通门诊"
            )
            when = world.days_ago(int(rng.integers(0, HISTORY_DAYS)))
            records.append(_settlement(world, who, kind, when, None, rng))

    members = world.register.filter(pl.col("household_id").is_in(list(planted)))
    for expected, group in (("fires", fires), ("near_miss", near)):
        for hh in group:
            _plant(world, hh, expected, members, records)

    # Ordinary reversals: a settlement cancelled and re-settled a few days later.
    planted_uids = {uid for s in world.shocks if s.shock == "illness" for uid in s.uids}
    for original in [r for r in records if r["结算类型"] == "正常" and rng.random() < REVERSAL_RATE]:
        if original["_uid"] in planted_uids:
            continue
        when = min(original["结算日期"] + timedelta(days=int(rng.integers(1, 20))), world.as_of)
        records.append(_reversal(world, original, when))
    return records


def _plant(
    world: World, hh: dict[str, Any], expected: str, members: pl.DataFrame, records: list[dict[str, Any]]
) -> None:
    rng = world.rng
    absolute, share = _thresholds(world, hh)
    threshold = min(absolute, share)
    people = members.filter(pl.col("household_id") == hh["household_id"]).to_dicts()
    who = people[int(rng.integers(len(people)))]
    variants = (
        ("at_threshold", "above", "reversal_after_run_date")
        if expected == "fires"
        else ("just_below", "reversed", "window_edge")
    )
    variant = variants[int(rng.integers(len(variants)))]
    if variant == "at_threshold":
        burden = threshold
    elif variant in ("above", "reversal_after_run_date"):
        burden = round(threshold + float(rng.uniform(1, 4000)), 2)
    else:
        burden = round(threshold - float(rng.uniform(0.01, 300)), 2)
    parts = int(rng.integers(1, 4))
    cuts = np.sort(rng.uniform(0.2, 0.8, size=parts - 1)) if parts > 1 else np.array([])
    shares = np.diff(np.concatenate([[0.0], cuts, [1.0]]))
    amounts = [round(burden * s, 2) for s in shares[:-1]]
    amounts.append(round(burden - sum(amounts), 2))
    uids = []
    for amount in amounts:
        when = world.days_ago(int(rng.integers(1, 360)))
        rec = _settlement(world, who, "住院", when, amount, rng)
        records.append(rec)
        uids.append(rec["_uid"])
    if variant in ("reversed", "reversal_after_run_date"):
        # A further settlement cancelled by 冲销: dated after D, it is ignored and the
        # original counts; dated on or before D, the pair contributes nothing.
        extra = round(float(rng.uniform(800, 3000)), 2)
        when = world.days_ago(int(rng.integers(20, 200)))
        original = _settlement(world, who, "住院", when, extra, rng)
        if variant == "reversed":
            reversal = _reversal(world, original, when + timedelta(days=int(rng.integers(1, 15))))
        else:
            burden = round(burden + extra, 2)
            reversal = _reversal(world, original, world.as_of + timedelta(days=int(rng.integers(1, 4))))
        records += [reversal, original] if rng.random() < 0.5 else [original, reversal]
        uids += [original["_uid"], reversal["_uid"]]
    if variant == "window_edge":
        # Exactly 365 days before D is outside the window: it must not count.
        old = _settlement(
            world, who, "住院", world.days_ago(365), round(float(rng.uniform(2000, 9000)), 2), rng
        )
        records.append(old)
        uids.append(old["_uid"])
    world.shocks.append(
        Shock(hh["household_id"], "illness", "medical_burden", expected, variant, burden, threshold, uids)
    )
