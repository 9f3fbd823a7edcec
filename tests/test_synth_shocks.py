"""Planted shocks: each is in the truth, its records are in the deliveries, and the
delivered figures put it on the side of the rule's threshold that the truth says."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from tests import deliveries
from tests.conftest import AS_OF

RULES = ("medical_burden", "income_drop", "disaster_loss", "new_social_assistance", "below_line")


@pytest.fixture(scope="module")
def world(county):
    inbox = county.out / "inbox"
    register = pl.DataFrame(deliveries.read_xlsx(next((inbox / "registry").iterdir()), 3))
    heads = register.filter(pl.col("与户主关系") == "户主")
    shocks = pl.read_csv(county.out / "truth" / "shocks.csv", infer_schema=False)
    events, contributions = deliveries.hr(inbox)
    return {
        "shocks": shocks,
        "register": register,
        "heads": {r["户编号"]: r for r in heads.iter_rows(named=True)},
        "health": {r["_key"]: r for r in deliveries.health(inbox)},
        "civil": {r["_key"]: r for r in deliveries.civil(inbox)},
        "disaster": {r["_key"]: r for r in deliveries.disaster(inbox)},
        "events": {r["_key"]: r for r in events},
        "contributions": {r["_key"]: r for r in contributions},
    }


def _income(head: dict) -> float:
    return float(head["人均纯收入（元）"]) * int(head["人数"])


def _monitored(head: dict) -> bool:
    return bool(head["监测对象类别"]) and head["风险是否已消除"] == "否"


def _in_window(d, days: int) -> bool:
    return AS_OF - timedelta(days=days) < d <= AS_OF


def test_every_rule_has_shocks_that_fire_and_that_fall_just_short(world):
    seen = set(world["shocks"].select("rule_id", "expected").iter_rows())
    assert seen == {(r, e) for r in RULES for e in ("fires", "near_miss")}


def test_medical_shocks(world):
    for s in world["shocks"].filter(pl.col("rule_id") == "medical_burden").iter_rows(named=True):
        rows = [world["health"][k] for k in s["source_record_ids"].split(";")]
        reversed_ids = {
            r["原结算流水号"]
            for r in rows
            if r["结算类型"] == "冲销" and deliveries.norm_date(r["结算日期"]) <= AS_OF
        }
        burden = sum(
            deliveries.money(r["个人自付"]) + deliveries.money(r["个人自费"])
            for r in rows
            if r["结算类型"] == "正常"
            and r["_key"] not in reversed_ids
            and _in_window(deliveries.norm_date(r["结算日期"]), 365)
        )
        head = world["heads"][s["household_id"]]
        absolute = 5000 if head["户类型"] == "脱贫户" or _monitored(head) else 20000
        threshold = min(absolute, round(0.5 * _income(head), 2))
        assert round(burden, 2) == pytest.approx(float(s["figure"]), abs=0.011), s
        assert (round(burden, 2) >= threshold) == (s["expected"] == "fires"), s


def test_disaster_shocks(world):
    for s in world["shocks"].filter(pl.col("rule_id") == "disaster_loss").iter_rows(named=True):
        rows = [world["disaster"][k] for k in s["source_record_ids"].split(";")]
        threshold = round(0.3 * _income(world["heads"][s["household_id"]]), 2)
        fires = any(
            _in_window(deliveries.norm_date(r["灾害发生日期"]), 365)
            and (
                r["房屋受损情况"] in ("倒塌", "严重损坏")
                or deliveries.money(r["直接经济损失(元)"]) >= threshold
            )
            for r in rows
        )
        assert fires == (s["expected"] == "fires"), s


def test_new_assistance_shocks(world):
    for s in world["shocks"].filter(pl.col("rule_id") == "new_social_assistance").iter_rows(named=True):
        (r,) = [world["civil"][k] for k in s["source_record_ids"].split(";")]
        day = deliveries.norm_date(r["审批日期"])
        counted = (r["变动类型"] == "新增" and r["救助类别"] in ("农村低保", "农村特困")) or (
            r["救助类别"] == "临时救助"
        )
        fires = (not _monitored(world["heads"][s["household_id"]])) and _in_window(day, 90) and counted
        assert fires == (s["expected"] == "fires"), s


def _month(d) -> int:
    return d.year * 12 + d.month - 1


def test_job_loss_shocks(world):
    now = _month(AS_OF)
    for s in world["shocks"].filter(pl.col("rule_id") == "income_drop").iter_rows(named=True):
        keys = s["source_record_ids"].split(";")
        events = [world["events"][k] for k in keys if k in world["events"]]
        paid = {}
        other = set()
        for k in keys:
            c = world["contributions"].get(k)
            if c is None:
                continue
            index = c["period"] // 100 * 12 + c["period"] % 100 - 1
            if c["status"] == "正常缴费":
                paid[index] = paid.get(index, 0) + float(c["wage_base"])
            else:
                other.add((index, c["status"]))
        from datetime import date

        lost_a = any(
            e["event_type"] == "失业登记"
            and _in_window(date.fromisoformat(e["event_date"]), 180)
            and not any(
                f["event_type"] in ("就业登记", "灵活就业登记")
                and e["event_date"] <= f["event_date"] <= AS_OF.isoformat()
                for f in events
            )
            for e in events
        )
        baseline = [paid[i] for i in range(now - 15, now - 3) if i in paid]
        recent_blocked = any(i in paid for i in range(now - 3, now)) or any(
            st == "补缴" and now - 3 <= i < now for i, st in other
        )
        lost_b = len(baseline) >= 6 and not recent_blocked
        head = world["heads"][s["household_id"]]
        income = _income(head)
        lost_wages = min(12 * sum(baseline) / len(baseline) if baseline else 0.0, float(head["工资性收入"]))
        est = max(income - lost_wages, 0)
        line = 8700
        fires = (lost_a or lost_b) and (est <= 0.7 * income or est / int(head["人数"]) < line)
        assert fires == (s["expected"] == "fires"), s


def test_low_income_shocks(world):
    for s in world["shocks"].filter(pl.col("rule_id") == "below_line").iter_rows(named=True):
        head = world["heads"][s["household_id"]]
        fires = not _monitored(head) and float(head["人均纯收入（元）"]) < 8700
        assert fires == (s["expected"] == "fires"), s
