"""The household feature table as of a run date D: what the rules read.

Pure functions over polars frames: the register, the staged department records and
the links. Only records matched to a member count (review and unmatched records count
for nobody); records dated after D are ignored; money is rounded half away from zero
to 0.01 元. Every feature is documented in FEATURES, where analysts read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

from connectors.health_insurance import effective_settlements

CAN_WORK = ("技能劳动力", "普通劳动力")
# The windows, in days before the night, over which records count (docs/rules.md).
MEDICAL_DAYS, UNEMPLOYMENT_DAYS, DISASTER_DAYS, ASSISTANCE_DAYS = 365, 180, 365, 90
HOUSING_DAMAGE = ("倒塌", "严重损坏", "一般损坏")
SEVERE_DAMAGE = ("倒塌", "严重损坏")

FEATURES: dict[str, str] = {
    "household_id": "户编号",
    "county": "县 (from the 户主's row)",
    "township": "乡(镇)",
    "village": "行政村",
    "household_size": "人数, or the number of the household's rows when 人数 is empty or 0",
    "income_last_year": "人均纯收入（元） × household_size: last year's household net income (元)",
    "wage_income": "工资性收入 (元)",
    "poor": "户类型 is 脱贫户",
    "monitored": "监测对象类别 set and 风险是否已消除 = 否",
    "poor_or_monitored": "poor or monitored",
    "months_identified": "months from 识别监测时间 to D (D's year×12+month minus the identified one)",
    "members_can_work": "members whose 劳动技能 is 技能劳动力 or 普通劳动力",
    "medical_burden": "个人自付 + 个人自费 of the household's settlements dated in the last 365 days, "
    "a settlement cancelled by a 冲销 dated on or before D contributing nothing (元)",
    "members_lost_work": "members who lost work by 失业登记 (a) or stopped contributions (b), docs/rules.md",
    "lost_wages": "min(Σ 12 × mean paid baseline wage of the members who lost work, 工资性收入) (元)",
    "est_income": "max(income_last_year − lost_wages, 0) (元)",
    "est_income_per_capita": "est_income / household_size (元 per person)",
    "can_work_not_lost": "members who can work and did not lose work",
    "disaster_severe": "a disaster record dated in the last 365 days with 房屋受损情况 倒塌 or 严重损坏",
    "disaster_collapsed": "such a record with 倒塌",
    "disaster_max_loss": "the largest positive 直接经济损失 of a single disaster record in the last 365 days (元)",
    "disaster_max_loss_housing": "the same over records whose house was 倒塌, 严重损坏 or 一般损坏 (元)",
    "new_dibao_tekun": "a 民政 record dated in the last 90 days: 新增 农村低保 or 农村特困",
    "temporary_assistance": "a 民政 record dated in the last 90 days: 临时救助 (any 变动类型)",
}


def money(expr: pl.Expr) -> pl.Expr:
    """Yuan rounded half away from zero to 0.01, as docs/rules.md compares money."""
    return expr.round(2, mode="half_away_from_zero")


def in_window(column: str, as_of: date, days: int) -> pl.Expr:
    """Dated in (D − days, D]."""
    return (pl.col(column) > as_of - timedelta(days=days)) & (pl.col(column) <= as_of)


@dataclass
class Inputs:
    """What the features are made of: the register and the matched records by source."""

    register: pl.DataFrame  # staged registry records
    links: pl.DataFrame  # source, source_record_id, person_id, household_id, match_status
    health: pl.DataFrame | None = None
    civil: pl.DataFrame | None = None
    disaster: pl.DataFrame | None = None
    employment: pl.DataFrame | None = None
    contributions: pl.DataFrame | None = None


def _matched(records: pl.DataFrame | None, links: pl.DataFrame, source: str) -> pl.DataFrame | None:
    """Records of ``source`` linked (status matched) to a person, with person and household."""
    if records is None or records.height == 0:
        return None
    chosen = links.filter((pl.col("source") == source) & (pl.col("match_status") == "matched")).select(
        "source_record_id", "person_id", "household_id"
    )
    return records.join(chosen, on="source_record_id", how="inner")


def head_rows(register: pl.DataFrame) -> pl.DataFrame:
    """One register row per household: the 户主's, else its first by 人编号 (docs/rules.md), found
    without sorting the whole register."""
    first = register.group_by("household_id").agg(pl.col("person_id").min().alias("__first"))
    heads = (
        register.filter(pl.col("relation") == "户主")
        .unique("household_id", keep="first")
        .select("household_id", pl.col("person_id").alias("__head"))
    )
    chosen = first.join(heads, on="household_id", how="left").select(
        pl.coalesce("__head", "__first").alias("person_id")
    )
    return register.join(chosen, on="person_id", how="semi")


def households(register: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Household-level register columns read from the 户主's row (else the first by 人编号)."""
    members = register.group_by("household_id").agg(
        pl.len().alias("rows"),
        pl.col("labour").is_in(list(CAN_WORK)).sum().alias("members_can_work"),
    )
    heads = head_rows(register)
    month_index = as_of.year * 12 + as_of.month - 1
    ident = pl.col("identified_month")
    return (
        heads.join(members, on="household_id")
        .select(
            "household_id",
            "county",
            "township",
            "village",
            pl.when(pl.col("household_size").fill_null(0) > 0)
            .then(pl.col("household_size"))
            .otherwise(pl.col("rows"))
            .alias("household_size"),
            pl.col("income_per_capita").fill_null(0.0).alias("income_per_capita"),
            money(pl.col("wage_income").fill_null(0.0)).alias("wage_income"),
            (pl.col("household_type") == "脱贫户").fill_null(False).alias("poor"),
            ((pl.col("monitored_category").fill_null("") != "") & (pl.col("risk_eliminated") == "否"))
            .fill_null(False)
            .alias("monitored"),
            (pl.lit(month_index) - ((ident // 100) * 12 + ident % 100 - 1)).alias("months_identified"),
            "members_can_work",
        )
        .with_columns(
            money(pl.col("income_per_capita") * pl.col("household_size")).alias("income_last_year"),
            (pl.col("poor") | pl.col("monitored")).alias("poor_or_monitored"),
        )
        .drop("income_per_capita")
    )


def medical(inputs: Inputs, as_of: date) -> pl.DataFrame | None:
    settlements = _matched(inputs.health, inputs.links, "health_insurance")
    if settlements is None:
        return None
    # 冲销 rows cancel wherever their originals are linked (or not): take them from all records.
    reversals = inputs.health.filter(pl.col("settlement_type") == "冲销")
    rows = pl.concat(
        [
            settlements.filter(pl.col("settlement_type") == "正常").drop("person_id", "household_id"),
            reversals,
        ],
        how="diagonal_relaxed",
    )
    effective = effective_settlements(rows, as_of).collect()
    counted = effective.filter(~pl.col("cancelled") & in_window("settlement_date", as_of, MEDICAL_DAYS)).join(
        settlements.select("source_record_id", "household_id"), on="source_record_id"
    )
    return counted.group_by("household_id").agg(
        money(pl.col("burden").sum()).alias("medical_burden"),
        pl.col("source_record_id").sort().alias("medical_records"),
    )


def _period_index(period: pl.Expr) -> pl.Expr:
    return (period // 100) * 12 + period % 100 - 1


def work(inputs: Inputs, register: pl.DataFrame, as_of: date) -> pl.DataFrame | None:
    """Members who lost work by (a) or (b), their lost wage, per household."""
    events = _matched(inputs.employment, inputs.links, "human_resources")
    contribs = _matched(inputs.contributions, inputs.links, "human_resources")
    if events is None and contribs is None:
        return None
    now = as_of.year * 12 + as_of.month - 1
    lost_a = pl.DataFrame(
        schema={"person_id": pl.String, "lost_a": pl.Boolean, "records_a": pl.List(pl.String)}
    )
    if events is not None:
        ev = events.filter(pl.col("event_date") <= as_of)
        unemployed = ev.filter((pl.col("event_type") == "失业登记") & in_window("event_date", as_of, UNEMPLOYMENT_DAYS))
        hired = ev.filter(pl.col("event_type").is_in(["就业登记", "灵活就业登记"])).select(
            "person_id", pl.col("event_date").alias("hired")
        )
        lost_a = (
            unemployed.join(hired, on="person_id", how="left")
            .group_by("person_id", "source_record_id", "event_date")
            .agg((pl.col("hired") >= pl.col("event_date")).any().fill_null(False).alias("rehired"))
            .filter(~pl.col("rehired"))
            .group_by("person_id")
            .agg(pl.lit(True).alias("lost_a"), pl.col("source_record_id").sort().alias("records_a"))
        )
    per_member = pl.DataFrame(
        schema={
            "person_id": pl.String,
            "lost_b": pl.Boolean,
            "lost_wage": pl.Float64,
            "records_b": pl.List(pl.String),
        }
    )
    if contribs is not None:
        c = contribs.with_columns(_period_index(pl.col("period")).alias("index"))
        paid = (
            c.filter(pl.col("status") == "正常缴费")
            .group_by("person_id", "index")
            .agg(pl.col("wage_base").sum().alias("wage"))
        )
        baseline = paid.filter((pl.col("index") >= now - 15) & (pl.col("index") <= now - 4))
        recent = (
            c.filter(
                (pl.col("index") >= now - 3)
                & (pl.col("index") <= now - 1)
                & pl.col("status").is_in(["正常缴费", "补缴"])
            )
            .select("person_id")
            .unique()
        )
        per_member = (
            baseline.group_by("person_id")
            .agg(pl.len().alias("paid"), pl.col("wage").mean().alias("mean"))
            .join(recent.with_columns(pl.lit(True).alias("recent")), on="person_id", how="left")
            .join(
                c.filter((pl.col("index") >= now - 15) & (pl.col("index") <= now - 1))
                .group_by("person_id")
                .agg(pl.col("source_record_id").sort().alias("records_b")),
                on="person_id",
                how="left",
            )
            .select(
                "person_id",
                ((pl.col("paid") >= 6) & pl.col("recent").is_null()).alias("lost_b"),
                (12 * pl.col("mean")).alias("lost_wage"),
                "records_b",
            )
        )
    members = (
        register.select("person_id", "household_id", "labour")
        .join(lost_a, on="person_id", how="left")
        .join(per_member, on="person_id", how="left")
        .with_columns(
            (pl.col("lost_a").fill_null(False) | pl.col("lost_b").fill_null(False)).alias("lost"),
            pl.col("labour").is_in(list(CAN_WORK)).alias("can_work"),
        )
    )
    behind = (
        pl.concat(
            [
                members.filter(pl.col("lost_a").fill_null(False)).select(
                    "household_id", pl.col("records_a").alias("r")
                ),
                members.filter(pl.col("lost_b").fill_null(False)).select(
                    "household_id", pl.col("records_b").alias("r")
                ),
            ]
        )
        .explode("r")
        .drop_nulls()
        .unique()
        .group_by("household_id")
        .agg(pl.col("r").sort().alias("work_records"))
    )
    return (
        members.group_by("household_id")
        .agg(
            pl.col("lost").sum().alias("members_lost_work"),
            money(pl.col("lost_wage").filter(pl.col("lost")).fill_null(0.0).sum()).alias("lost_wage_sum"),
            (pl.col("can_work") & ~pl.col("lost")).sum().alias("can_work_not_lost"),
        )
        .join(behind, on="household_id", how="left")
    )


def disasters(inputs: Inputs, as_of: date) -> pl.DataFrame | None:
    records = _matched(inputs.disaster, inputs.links, "emergency_management")
    if records is None:
        return None
    recent = records.filter(in_window("disaster_date", as_of, DISASTER_DAYS))
    loss = pl.when(pl.col("direct_loss") > 0).then(pl.col("direct_loss"))
    return recent.group_by("household_id").agg(
        pl.col("house_damage").is_in(list(SEVERE_DAMAGE)).any().alias("disaster_severe"),
        (pl.col("house_damage") == "倒塌").any().alias("disaster_collapsed"),
        money(loss.max()).fill_null(0.0).alias("disaster_max_loss"),
        money(loss.filter(pl.col("house_damage").is_in(list(HOUSING_DAMAGE))).max())
        .fill_null(0.0)
        .alias("disaster_max_loss_housing"),
        pl.struct("source_record_id", "disaster_date", "house_damage", "direct_loss")
        .sort_by("source_record_id")
        .alias("disaster_records"),
    )


def assistance(inputs: Inputs, as_of: date) -> pl.DataFrame | None:
    records = _matched(inputs.civil, inputs.links, "civil_affairs")
    if records is None:
        return None
    recent = records.filter(in_window("approval_date", as_of, ASSISTANCE_DAYS))
    dibao = (pl.col("change_type") == "新增") & pl.col("category").is_in(["农村低保", "农村特困"])
    temporary = pl.col("category") == "临时救助"
    return (
        recent.filter(dibao | temporary)
        .group_by("household_id")
        .agg(
            dibao.any().alias("new_dibao_tekun"),
            temporary.any().alias("temporary_assistance"),
            pl.col("source_record_id").sort().alias("assistance_records"),
            # which help: 农村低保, 农村特困, 临时救助 (a cadre asks about the one granted)
            pl.col("category").unique().sort().str.join("、").alias("assistance_kinds"),
        )
    )


def feature_table(inputs: Inputs, as_of: date) -> pl.DataFrame:
    """One row per household of the register, every feature of FEATURES."""
    table = households(inputs.register, as_of)
    for part in (
        medical(inputs, as_of),
        work(inputs, inputs.register, as_of),
        disasters(inputs, as_of),
        assistance(inputs, as_of),
    ):
        if part is not None:
            table = table.join(part, on="household_id", how="left")
    defaults = {
        "medical_burden": 0.0,
        "members_lost_work": 0,
        "lost_wage_sum": 0.0,
        "disaster_severe": False,
        "disaster_collapsed": False,
        "disaster_max_loss": 0.0,
        "disaster_max_loss_housing": 0.0,
        "new_dibao_tekun": False,
        "temporary_assistance": False,
        "assistance_kinds": "",
    }
    table = table.with_columns(
        (pl.col(k).fill_null(v) if k in table.columns else pl.lit(v).alias(k)) for k, v in defaults.items()
    )
    if "can_work_not_lost" in table.columns:
        table = table.with_columns(pl.col("can_work_not_lost").fill_null(pl.col("members_can_work")))
    else:
        table = table.with_columns(pl.col("members_can_work").alias("can_work_not_lost"))
    for lst in ("medical_records", "work_records", "assistance_records"):
        if lst not in table.columns:
            table = table.with_columns(pl.lit(None, pl.List(pl.String)).alias(lst))
    if "disaster_records" not in table.columns:
        table = table.with_columns(pl.lit(None).alias("disaster_records"))
    lost_wages = money(pl.min_horizontal(pl.col("lost_wage_sum"), pl.col("wage_income")))
    return (
        table.with_columns(lost_wages.alias("lost_wages"))
        .with_columns(
            money(pl.max_horizontal(pl.col("income_last_year") - pl.col("lost_wages"), pl.lit(0.0))).alias(
                "est_income"
            ),
        )
        .with_columns(
            money(pl.col("est_income") / pl.col("household_size")).alias("est_income_per_capita"),
        )
        .drop("lost_wage_sum")
    )
