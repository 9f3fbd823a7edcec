"""人社 exchange database: 18 months of contributions of insured migrant workers,
their employment events, and planted job losses by (a) registration and (b) stopped
contributions, with near misses at every edge docs/rules.md names."""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl

from synth.world import Shock, World

MONTHS = 18


def month_index(d: date) -> int:
    return d.year * 12 + d.month - 1


def period(index: int) -> int:
    return (index // 12) * 100 + index % 12 + 1


class Ledger:
    """Rows of the two 人社 tables, column by column (contributions run to millions)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.events: list[dict[str, Any]] = []
        self.cols: dict[str, list[Any]] = {
            k: []
            for k in (
                "_uid",
                "_person_id",
                "_true_id",
                "_true_name",
                "_born",
                "aac002",
                "aac003",
                "period",
                "wage_base",
                "status",
            )
        }

    def pay(self, who: dict[str, Any], index: int, wage: float, status: str = "正常缴费") -> int:
        uid = self.world.uid()
        for key, value in (
            ("_uid", uid),
            ("_person_id", who["person_id"]),
            ("_true_id", who["id_number"]),
            ("_true_name", who["name"]),
            ("_born", who["birth_date"]),
            ("aac002", who["id_number"]),
            ("aac003", who["name"]),
            ("period", period(index)),
            ("wage_base", wage),
            ("status", status),
        ):
            self.cols[key].append(value)
        return uid

    def event(self, who: dict[str, Any], kind: str, when: date, employer: str = "") -> int:
        trace = self.world.trace(who, when)
        rng = self.world.rng
        self.events.append(
            {
                **trace,
                "aac002": who["id_number"],
                "aac003": who["name"],
                "aac004": "1" if who["sex"] == "男" else "2",
                "event_type": kind,
                "event_date": when,
                "employer_name": employer
                or ("", "宁波某电子有限公司", "东莞某制衣厂", "长沙某建筑公司", "花垣县某矿业公司")[
                    int(rng.integers(5))
                ],
                "work_area": ("浙江省宁波市", "广东省东莞市", "湖南省长沙市", "湖南省湘西州", "")[
                    int(rng.integers(5))
                ],
            }
        )
        return trace["_uid"]

    def contributions(self) -> pl.DataFrame:
        return pl.DataFrame(self.cols, schema_overrides={"_person_id": pl.String})


def generate(world: World) -> tuple[list[dict[str, Any]], pl.DataFrame]:
    rng = world.rng
    ledger = Ledger(world)
    now = month_index(world.as_of)
    first = now - MONTHS
    workers = world.register.filter(pl.col("insured_worker"))
    households = world.households().filter(
        pl.col("household_id").is_in(workers["household_id"].unique().to_list())
    )
    planted: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for shock in ("unemployment_registered", "contributions_stopped"):
        rates = world.settings["shocks"][shock]
        for expected in ("fires", "near"):
            for hh in world.take_households(households, rates[expected]):
                planted.setdefault(hh["household_id"], []).append((shock, expected))

    pool = workers.filter(~pl.col("household_id").is_in(list(planted)))
    for who in world.identities(pool.height, pool).iter_rows(named=True):
        wage = who.get("wage_base") or float(rng.integers(250, 650) * 10)
        start = max(first, now - int(rng.integers(1, 80)))
        ledger.event(who, "就业登记", world.days_ago(int((now - start) * 30.4 + rng.integers(0, 28))))
        for index in range(start, now):
            status = "正常缴费"
            if index < now - 3 and rng.random() < 0.04:
                status = ("中断", "补缴")[int(rng.integers(2))]
            ledger.pay(who, index, wage + (200.0 if index % 12 == 0 and index > start else 0.0), status)

    members = world.register.filter(pl.col("household_id").is_in(list(planted)))
    for household_id, shocks in planted.items():
        for shock, expected in shocks:
            _plant(
                world,
                ledger,
                members.filter(pl.col("household_id") == household_id),
                shock,
                "fires" if expected == "fires" else "near_miss",
                now,
            )
    return ledger.events, ledger.contributions()


def _plant(world: World, ledger: Ledger, members: pl.DataFrame, shock: str, expected: str, now: int) -> None:
    rng = world.rng
    candidates = members.filter(pl.col("insured_worker")).to_dicts()
    who = candidates[int(rng.integers(len(candidates)))]
    wage = who["wage_base"]
    lost = 12 * wage
    size = members.height
    uids: list[int] = []
    baseline = range(now - 15, now - 3)
    if shock == "unemployment_registered":
        variants = (
            ("registered_recent", "registered_day_179")
            if expected == "fires"
            else ("re_employed", "registered_day_180")
        )
        variant = variants[int(rng.integers(2))]
        days = {
            "registered_recent": int(rng.integers(1, 170)),
            "registered_day_179": 179,
            "re_employed": 100,
            "registered_day_180": 180,
        }[variant]
        lost_day = world.days_ago(days)
        uids.append(ledger.event(who, "失业登记", lost_day))
        stop = month_index(lost_day) + 1 if expected == "fires" else now
        if variant == "re_employed":
            uids.append(ledger.event(who, "灵活就业登记", world.days_ago(40)))
        if variant == "registered_day_180":
            uids.append(ledger.event(who, "就业登记", world.days_ago(150)))
        for index in range(now - MONTHS, min(stop, now)):
            uids.append(ledger.pay(who, index, wage))
        figure, threshold = float(days), 180.0
    else:
        variants = (
            ("stopped_no_records", "stopped_interrupted", "six_of_twelve")
            if expected == "fires"
            else ("paid_3_months_ago", "back_pay", "five_of_twelve", "drop_below_share")
        )
        variant = variants[int(rng.integers(len(variants)))]
        last_paid = now - 3 if variant == "paid_3_months_ago" else now - 4
        skipped = set()
        if variant in ("six_of_twelve", "five_of_twelve"):
            keep = 6 if variant == "six_of_twelve" else 5
            skipped = set(rng.choice(list(baseline), size=12 - keep, replace=False).tolist())
        for index in range(now - MONTHS, now):
            if index > last_paid:
                if variant == "stopped_interrupted":
                    uids.append(ledger.pay(who, index, wage, "中断"))
                if variant == "back_pay" and index == now - 1:
                    uids.append(ledger.pay(who, index, wage, "补缴"))
                continue
            uids.append(ledger.pay(who, index, wage, "中断" if index in skipped else "正常缴费"))
        paid = 12 - len(skipped)
        figure, threshold = float(paid), 6.0
    # Incomes so that the loss is what decides: a drop of 32-70% of last year's income
    # (29% for the near miss on the share, with the per-capita income kept above the line).
    ratio = 0.29 if variant == "drop_below_share" else float(rng.uniform(0.32, 0.7))
    per_capita = float(-(-lost // (ratio * size)))
    income = per_capita * size
    if variant == "drop_below_share":
        per_capita = max(per_capita, float(-(-(lost + world.line * size) // size)) + 1)
        income = per_capita * size
        figure, threshold = round(lost / income, 4), 0.3
    wage_income = round(min(lost * 1.05, income * 0.95))
    world.set_household(
        who["household_id"],
        income_per_capita=per_capita,
        wage_income=float(wage_income),
        business_income=float(income - wage_income),
    )
    world.shocks.append(
        Shock(
            who["household_id"],
            "job_loss",
            "income_drop",
            expected,
            f"{shock}:{variant}",
            figure,
            threshold,
            uids,
        )
    )
