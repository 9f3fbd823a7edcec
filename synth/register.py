"""The rural population register of the synthetic county.

One row per person with the household-level columns repeated, as the national
monitoring system exports it. Internal columns (birth date, insured work and wage
base) drive the department records and are never written to the register file.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl

from guardline import idnumber
from synth import names
from synth.places import DEFAULT_COUNTY, NEIGHBOUR_CODES, County, make_villages

HOUSEHOLD_SIZES = np.array([1, 2, 3, 4, 5, 6, 7])
HOUSEHOLD_SIZE_P = np.array([0.13, 0.21, 0.21, 0.23, 0.13, 0.06, 0.03])
ETHNICITIES = ("苗族", "土家族", "汉族", "维吾尔族")
ETHNICITY_P = (0.60, 0.15, 0.24, 0.01)
COMMON_NAMES = ("王伟", "张伟", "李伟", "王芳", "李娜", "张敏", "刘洋", "王静", "李强", "张丽")
NEIGHBOUR_SPOUSE_RATE = 0.3


class _Sampler:
    """Weighted draws of surnames and given-name characters from one generator."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.surnames = list(names.SURNAMES)
        p = np.array(list(names.SURNAMES.values()))
        self.surname_p = p / p.sum()
        self.given = {}
        for sex, table in (("男", names.GIVEN_MALE), ("女", names.GIVEN_FEMALE)):
            w = np.array(list(table.values()), dtype=float)
            self.given[sex] = (list(table), w / w.sum())

    def surname(self) -> str:
        return self.surnames[self.rng.choice(len(self.surnames), p=self.surname_p)]

    def given_name(self, sex: str) -> str:
        chars, p = self.given[sex]
        n = 2 if self.rng.random() < 0.7 else 1
        return "".join(chars[i] for i in self.rng.choice(len(chars), size=n, p=p))

    def minority_given(self) -> str:
        return names.MINORITY_GIVEN[self.rng.integers(len(names.MINORITY_GIVEN))]


def _labour(age: int, rng: np.random.Generator) -> str:
    if age < 16:
        return "无劳动力"
    if age < 60:
        options, p = (
            ("技能劳动力", "普通劳动力", "弱劳动力或半劳动力", "丧失劳动力", "无劳动力"),
            (0.2, 0.65, 0.08, 0.04, 0.03),
        )
    elif age < 70:
        options, p = ("普通劳动力", "弱劳动力或半劳动力", "丧失劳动力", "无劳动力"), (0.35, 0.45, 0.15, 0.05)
    else:
        options, p = ("弱劳动力或半劳动力", "丧失劳动力", "无劳动力"), (0.3, 0.4, 0.3)
    return options[rng.choice(len(options), p=p)]


def _health(age: int, rng: np.random.Generator) -> str:
    chronic = 0.04 + 0.004 * max(age - 40, 0)
    p = np.array([0.0, chronic, 0.02, 0.04])
    p[0] = 1 - p[1:].sum()
    return ("健康", "长期慢性病", "患有大病", "残疾")[rng.choice(4, p=p)]


def _members(size: int, head_age: int, rng: np.random.Generator) -> list[tuple[str, str, int]]:
    """(relation, sex, age) of each member, head first, ages consistent with relations."""
    head_sex = "男" if rng.random() < 0.85 else "女"
    out = [("户主", head_sex, head_age)]
    if size >= 2 and rng.random() < 0.9:
        out.append(
            ("配偶", "女" if head_sex == "男" else "男", int(np.clip(head_age + rng.normal(-2, 3), 18, 95)))
        )
    if len(out) < size and head_age < 50 and size >= 4 and rng.random() < 0.5:
        out.append(("之母", "女", min(head_age + int(rng.integers(22, 33)), 95)))
    child_ages: list[int] = []
    while len(out) < size:
        if head_age >= 58 and child_ages and rng.random() < 0.5:
            son_age = max(child_ages)
            if not any(r == "之儿媳" for r, _, _ in out):
                out.append(("之儿媳", "女", max(son_age + int(rng.integers(-4, 3)), 20)))
                continue
            age = max(son_age - int(rng.integers(20, 32)), 0)
            out.append(("之孙子", "男", age) if rng.random() < 0.5 else ("之孙女", "女", age))
            continue
        age = head_age - int(rng.integers(20, 35))
        if age < 0:
            out.append(("其他", "男" if rng.random() < 0.5 else "女", int(rng.integers(20, 70))))
            continue
        child_ages.append(age)
        out.append(("之子", "男", age) if rng.random() < 0.5 else ("之女", "女", age))
    return out


def generate_register(
    n_households: int,
    as_of: date,
    rng: np.random.Generator,
    monitoring_line: float,
    county: County = DEFAULT_COUNTY,
) -> pl.DataFrame:
    """Draw the county's households and people; incomes above the line unless shocked later."""
    sampler = _Sampler(rng)
    villages = make_villages(max(8, n_households // 40), rng)
    used_ids: set[str] = set()
    rows: list[dict] = []
    person_seq = 0
    sizes = rng.choice(HOUSEHOLD_SIZES, size=n_households, p=HOUSEHOLD_SIZE_P)
    village_of = rng.integers(len(villages), size=n_households)
    for h in range(n_households):
        village = villages[village_of[h]]
        household_id = f"0{county.code}{h + 1:07d}"
        ethnicity = ETHNICITIES[rng.choice(4, p=ETHNICITY_P)]
        head_age = int(np.clip(rng.normal(54, 13), 22, 88))
        members = _members(int(sizes[h]), head_age, rng)
        family_name = sampler.surname()
        father_given = sampler.minority_given()
        phone = f"1{rng.choice([3, 5, 8, 9])}{rng.integers(0, 10**9):09d}"
        household = {
            "county": county.name,
            "township": village.township,
            "village": village.name,
            "group_no": int(rng.integers(1, 12)),
            "household_id": household_id,
            "phone": phone,
        }
        for relation, sex, age in members:
            person_seq += 1
            birth = as_of - timedelta(days=int(age * 365.25 + rng.integers(0, 365)))
            married_in = relation in ("配偶", "之儿媳")
            area = (
                NEIGHBOUR_CODES[rng.integers(len(NEIGHBOUR_CODES))]
                if married_in and rng.random() < NEIGHBOUR_SPOUSE_RATE
                else county.code
            )
            while True:
                seq = int(rng.integers(0, 500)) * 2 + (1 if sex == "男" else 0)
                id_number = idnumber.make_id(area, birth, seq)
                if id_number not in used_ids:
                    used_ids.add(id_number)
                    break
            if ethnicity == "维吾尔族":
                name = f"{sampler.minority_given()}·{father_given}"
            elif relation in ("户主", "之子", "之女", "之孙子", "之孙女"):
                name = family_name + sampler.given_name(sex)
            else:
                name = sampler.surname() + sampler.given_name(sex)
            labour = _labour(age, rng)
            insured = labour in ("技能劳动力", "普通劳动力") and 18 <= age <= 55 and rng.random() < 0.35
            rows.append(
                {
                    **household,
                    "person_id": f"0{county.code}{person_seq:09d}",
                    "name": name,
                    "id_number": id_number,
                    "sex": sex,
                    "ethnicity": ethnicity,
                    "relation": relation,
                    "labour": labour,
                    "health": _health(age, rng),
                    "birth_date": birth,
                    "age": age,
                    "insured_worker": insured,
                    "wage_base": float(rng.integers(250, 650) * 10) if insured else 0.0,
                }
            )
    persons = pl.DataFrame(rows)
    persons = _plant_common_names(persons, rng)
    return _add_household_columns(persons, rng, as_of, monitoring_line)


def _plant_common_names(persons: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """Give a few villages several adults of the same common name (several 王伟 in one place)."""
    name = persons["name"].to_list()
    eligible = (
        persons.with_row_index("i")
        .filter(pl.col("age") >= 18, pl.col("ethnicity") != "维吾尔族", pl.col("relation") != "户主")
        .group_by("village", maintain_order=True)
        .agg("i", "sex")
    )
    for village_rows, sexes in zip(eligible["i"], eligible["sex"], strict=True):
        if rng.random() >= 0.15:
            continue
        full = COMMON_NAMES[rng.integers(len(COMMON_NAMES))]
        want = "女" if full[-1] in names.GIVEN_FEMALE and full[-1] not in names.GIVEN_MALE else "男"
        idx = [i for i, s in zip(village_rows, sexes, strict=True) if s == want]
        for i in idx[: int(rng.integers(2, 5))]:
            name[i] = full
    return persons.with_columns(pl.Series("name", name))


def _add_household_columns(
    persons: pl.DataFrame, rng: np.random.Generator, as_of: date, line: float
) -> pl.DataFrame:
    """Household type, monitoring status and last year's incomes, one draw per household."""
    hh = persons.group_by("household_id", maintain_order=True).agg(
        pl.len().alias("household_size"),
        (pl.col("wage_base") * 12).sum().alias("insured_wages"),
    )
    n = hh.height
    poor = rng.random(n) < 0.28
    u = rng.random(n)
    category = np.where(
        poor & (u < 0.08),
        "脱贫不稳定户",
        np.where(~poor & (u < 0.03), "边缘易致贫户", np.where(u > 0.99, "突发严重困难户", "")),
    )
    eliminated = np.where(category != "", np.where(rng.random(n) < 0.55, "是", "否"), "")
    months_back = rng.integers(0, 60, size=n)
    ident_month = [
        f"{(as_of.year * 12 + as_of.month - 1 - m) // 12}{(as_of.month - 1 - m) % 12 + 1:02d}" if c else ""
        for c, m in zip(category, months_back, strict=True)
    ]
    monitored = (category != "") & (eliminated == "否")
    median = np.where(monitored, 10_500, np.where(poor, 14_000, 17_000))
    per_capita = median * np.exp(rng.normal(0, 0.4, size=n))
    per_capita = np.where(monitored, per_capita, np.maximum(per_capita, line * 1.12))
    size = hh["household_size"].to_numpy()
    insured = hh["insured_wages"].to_numpy()
    # Households with insured migrant workers earn at least those wages.
    wage = np.maximum(
        per_capita * size * rng.uniform(0.35, 0.7, size=n), insured * rng.uniform(1.0, 1.15, size=n)
    )
    business = per_capita * size * rng.uniform(0.15, 0.4, size=n)
    per_capita = np.maximum(per_capita, (wage + business) / size)
    hh = hh.with_columns(
        pl.Series("household_type", np.where(poor, "脱贫户", "一般农户")),
        pl.Series("monitored_category", category),
        pl.Series("risk_eliminated", eliminated),
        pl.Series("identified_month", ident_month),
        pl.Series("income_per_capita", np.round(per_capita)),
        pl.Series("wage_income", np.round(wage)),
        pl.Series("business_income", np.round(business)),
    ).drop("insured_wages")
    return persons.join(hh, on="household_id", how="left", maintain_order="left")
