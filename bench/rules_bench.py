"""Features + rules for 1,000,000 households and 5,000,000 matched records.

Usage: python bench/rules_bench.py [households]     (default 1,000,000)

Builds (vectorised, numpy) a register of ~3.3 people per household and matched
department records: 3M 医保 settlements (2% reversed), 1.8M 人社 contributions with
100K employment events, 100K 民政 changes and 100K 应急 verifications — then times
the feature table and the rule catalogue, and prints peak memory. The named peer is a
straightforward pandas groupby of the medical burden alone (the single heaviest
feature), to show what the whole table costs against one pandas aggregate.
"""

from __future__ import annotations

import resource
import sys
import time
from datetime import date, timedelta

import numpy as np
import polars as pl

from rules.catalogue import Catalogue
from rules.engine import evaluate, exit_candidates
from rules.features import Inputs, feature_table

D = date(2026, 11, 27)


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(households: int, seed: int = 7) -> Inputs:
    rng = np.random.default_rng(seed)
    sizes = rng.choice([1, 2, 3, 4, 5, 6], households, p=[0.13, 0.21, 0.24, 0.24, 0.12, 0.06])
    hh_of = np.repeat(np.arange(households), sizes)
    n = len(hh_of)
    first = np.r_[True, hh_of[1:] != hh_of[:-1]]
    hid = np.char.add("H", hh_of.astype(str))
    pid = np.char.add("P", np.arange(n).astype(str))
    register = pl.DataFrame(
        {
            "person_id": pid,
            "household_id": hid,
            "county": "花垣县",
            "township": "双龙镇",
            "village": "十八洞村",
            "relation": np.where(first, "户主", "之子"),
            "labour": rng.choice(["普通劳动力", "弱劳动力或半劳动力", "无劳动力"], n, p=[0.6, 0.2, 0.2]),
            "household_type": np.repeat(
                rng.choice(["脱贫户", "一般农户"], households, p=[0.28, 0.72]), sizes
            ),
            "monitored_category": np.repeat(
                np.where(rng.random(households) < 0.04, "边缘易致贫户", ""), sizes
            ),
            "risk_eliminated": np.repeat(rng.choice(["是", "否"], households), sizes),
            "identified_month": np.repeat(rng.choice([202301, 202406, 202601], households), sizes),
            "household_size": np.repeat(sizes, sizes),
            "income_per_capita": np.repeat(np.round(rng.lognormal(np.log(15000), 0.45, households)), sizes),
            "wage_income": np.repeat(np.round(rng.lognormal(np.log(30000), 0.5, households)), sizes),
        }
    ).with_columns(pl.col("monitored_category").replace("", None))
    links = []

    def linked(source: str, people: np.ndarray, prefix: str) -> np.ndarray:
        keys = np.char.add(prefix, np.arange(len(people)).astype(str))
        links.append(
            pl.DataFrame(
                {
                    "source": source,
                    "source_record_id": keys,
                    "person_id": pid[people],
                    "household_id": hid[people],
                    "match_status": "matched",
                }
            )
        )
        return keys

    def days(k: int, span: int) -> np.ndarray:
        return np.datetime64(D.isoformat()) - rng.integers(0, span, k).astype("timedelta64[D]")

    k = 3_000_000
    who = rng.integers(0, n, k)
    keys = linked("health_insurance", who, "JS")
    kind = np.where(rng.random(k) < 0.02, "冲销", "正常")
    burden = np.round(rng.lognormal(5, 1.3, k), 2)
    health = pl.DataFrame(
        {
            "source_record_id": keys,
            "settlement_id": keys,
            "settlement_type": kind,
            "original_settlement_id": pl.Series(np.where(kind == "冲销", np.roll(keys, 1), "")).replace(
                "", None
            ),
            "settlement_date": days(k, 400),
            "self_pay": burden * 0.6,
            "self_expense": burden * 0.4,
        }
    )
    workers = rng.choice(n, 100_000, replace=False)
    periods = np.arange(18)
    w = np.repeat(workers, 18)
    month = D.year * 12 + D.month - 1 - np.tile(periods + 1, len(workers))
    stop = np.repeat(rng.random(len(workers)) < 0.05, 18) & (np.tile(periods, len(workers)) < 3)
    keep = ~stop
    keys = linked("human_resources", w[keep], "RC")
    contributions = pl.DataFrame(
        {
            "source_record_id": keys,
            "period": ((month // 12) * 100 + month % 12 + 1)[keep],
            "wage_base": np.repeat(rng.integers(250, 650, len(workers)) * 10.0, 18)[keep],
            "status": "正常缴费",
        }
    )
    e = rng.choice(workers, 100_000)
    keys = linked("human_resources", e, "RE")
    employment = pl.DataFrame(
        {
            "source_record_id": keys,
            "event_type": rng.choice(["就业登记", "失业登记"], len(e)),
            "event_date": days(len(e), 400),
        }
    )
    c = rng.integers(0, n, 100_000)
    keys = linked("civil_affairs", c, "MZ")
    civil = pl.DataFrame(
        {
            "source_record_id": keys,
            "category": rng.choice(["农村低保", "临时救助", "农村特困"], len(c)),
            "change_type": rng.choice(["新增", "调整", "停保"], len(c)),
            "approval_date": days(len(c), 200),
        }
    )
    d = rng.integers(0, n, 100_000)
    keys = linked("emergency_management", d, "YJ")
    disaster = pl.DataFrame(
        {
            "source_record_id": keys,
            "house_damage": rng.choice(
                ["未受损", "一般损坏", "严重损坏", "倒塌"], len(d), p=[0.6, 0.3, 0.07, 0.03]
            ),
            "direct_loss": rng.integers(100, 50_000, len(d)).astype(float),
            "disaster_date": days(len(d), 400),
        }
    )
    return Inputs(register, pl.concat(links), health, civil, disaster, employment, contributions)


def main(households: int) -> None:
    t0 = time.perf_counter()
    inputs = build(households)
    records = sum(
        f.height
        for f in (inputs.health, inputs.civil, inputs.disaster, inputs.employment, inputs.contributions)
    )
    print(
        f"households={households:,} persons={inputs.register.height:,} matched records={records:,} "
        f"(built in {time.perf_counter() - t0:.0f} s)"
    )
    catalogue = Catalogue.load()
    t1 = time.perf_counter()
    features = feature_table(inputs, D)
    t2 = time.perf_counter()
    flags = evaluate(features, catalogue, D)
    exits = exit_candidates(features, flags, catalogue, D)
    t3 = time.perf_counter()
    print(
        f"features {t2 - t1:.1f} s, rules {t3 - t2:.1f} s, total {t3 - t1:.1f} s "
        f"({households / (t3 - t1):,.0f} households/s); {flags.height:,} flags, {exits.height:,} exit candidates; "
        f"peak RSS {peak_mib():,.0f} MiB"
    )
    print(
        "flags by rule: "
        + ", ".join(f"{r} {k:,}" for r, k in flags.group_by("rule_id").len().sort("rule_id").iter_rows())
    )
    pdf = inputs.health.to_pandas()
    t4 = time.perf_counter()
    window = pdf[pdf["settlement_date"] > np.datetime64(D - timedelta(days=365))]
    (window["self_pay"] + window["self_expense"]).groupby(window["source_record_id"].str[:4]).sum()
    print(f"peer: pandas filter + groupby-sum of the settlements alone: {time.perf_counter() - t4:.1f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
