"""The rows of a night's lists, as frames: pure functions of the night's flags (with what
the visits made of them), the register and the links.

One row per household to visit, all its listed rules on that row, each rule's evidence
naming the member(s) its records are about; sorted by village, then severity, so that a
cadre walks a village once. Households verified 纳入监测 and not yet monitored in the
register are the 已纳入 rows.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from rules.features import head_rows

SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}
SEVERITY_WORDS = {"high": "高", "medium": "中", "low": "低"}
# The columns a cadre fills in: every other one is locked in the workbook.
VISIT_COLUMNS = ("核查结果", "核查人", "核查日期", "帮扶措施", "备注")
LIST_COLUMNS = (
    "序号",
    "清单日期",
    "乡(镇)",
    "行政村",
    "户编号",
    "户主姓名",
    "户主证件号码",
    "联系电话",
    "人数",
    "户类型",
    "监测对象类别",
    "风险等级",
    "预警规则",
    "预警依据",
    "建议帮扶措施",
    "首次预警日期",
    "本期状态",
    *VISIT_COLUMNS,
)
IDENTIFIED_COLUMNS = ("序号", "行政村", "户编号", "户主姓名", "户主证件号码", "预警规则", "核查结果", "核查日期")


def heads(register: pl.DataFrame, households: pl.DataFrame) -> pl.DataFrame:
    """One row per household of ``households`` (its ``household_id``): what a list shows
    of it, and whether it is monitored (监测对象类别 set and 风险是否已消除 not 是). The
    register is narrowed to those households first: a night lists a few thousand of
    100,000, and finding every household's 户主 cost 0.06 s a list."""
    monitored = pl.col("monitored_category").is_not_null() & (pl.col("risk_eliminated").fill_null("否") == "否")
    theirs = register.join(households.select("household_id"), on="household_id", how="semi")
    return head_rows(theirs).select(
        "household_id",
        pl.col("county").fill_null(""),
        "township",
        "village",
        pl.col("name").alias("户主姓名"),
        pl.col("id_number").alias("户主证件号码"),
        pl.col("phone").alias("联系电话"),
        pl.col("household_size").alias("人数"),
        pl.col("household_type").alias("户类型"),
        pl.col("monitored_category").fill_null("").alias("监测对象类别"),
        monitored.alias("__monitored"),
    )


def members(flags: pl.DataFrame, register: pl.DataFrame, links: pl.DataFrame | None) -> pl.DataFrame:
    """Per flag, the names of the members its records are about ("张三、李四"), or null."""
    if links is None or links.height == 0:
        return flags.select("household_id", "rule_id", pl.lit(None, pl.String).alias("__members"))
    cited = flags.select("household_id", "rule_id", "records").explode("records")
    persons = (
        links.filter(pl.col("match_status") == "matched")
        .select("source_record_id", "person_id")
        .join(cited.select(pl.col("records").alias("source_record_id")), on="source_record_id", how="semi")
        .unique()
    )
    names = register.select("person_id", "name").unique("person_id")
    return (
        cited.join(persons, left_on="records", right_on="source_record_id", how="inner")
        .join(names, on="person_id", how="inner")
        .group_by("household_id", "rule_id")
        .agg(pl.col("name").unique(maintain_order=True).sort().str.join("、").alias("__members"))
    )


def _evidence() -> pl.Expr:
    told = pl.col("sentence")
    return pl.when(pl.col("__members").is_not_null()).then(
        pl.concat_str(told, pl.lit("(涉及:"), pl.col("__members"), pl.lit(")"))
    ).otherwise(told)


def visit_rows(
    flags: pl.DataFrame, register: pl.DataFrame, as_of: date, links: pl.DataFrame | None = None
) -> pl.DataFrame:
    """One row per household with a listed flag (firing, not settled by a visit):
    ``flags`` as :func:`visits.dispositions.apply_visits` returns them."""
    listed = flags.filter(pl.col("listed"))
    told = (
        listed.join(members(listed, register, links), on=["household_id", "rule_id"], how="left")
        .with_columns(
            pl.col("severity").replace_strict(SEVERITY_ORDER, default=3).alias("__rank"),
            _evidence().alias("__evidence"),
            pl.col("overdue").alias("__overdue"),
        )
        .sort("__rank", "rule_id")
    )
    per_household = told.group_by("household_id", maintain_order=True).agg(
        pl.col("__rank").min().alias("__rank"),
        pl.col("rule_name").str.join("、").alias("预警规则"),
        pl.col("rule_id").alias("__rules"),
        pl.col("__evidence").str.join("；").alias("预警依据"),
        pl.col("assistance").unique(maintain_order=True).str.join("、").alias("建议帮扶措施"),
        pl.col("first_flagged_date").min().alias("首次预警日期"),
        (pl.col("status") == "new").all().alias("__new"),
        pl.col("__overdue").any().alias("__overdue"),
    )
    state = pl.when(pl.col("__new")).then(pl.lit("新增")).otherwise(pl.lit("持续"))
    return (
        per_household.join(heads(register, per_household), on="household_id", how="left")
        .with_columns(
            pl.col("__rank")
            .replace_strict({v: SEVERITY_WORDS[k] for k, v in SEVERITY_ORDER.items()}, default="低")
            .alias("风险等级"),
            pl.when(pl.col("__overdue")).then(pl.concat_str(state, pl.lit("·逾期"))).otherwise(state).alias("本期状态"),
            pl.col("household_id").alias("户编号"),
            pl.col("township").alias("乡(镇)"),
            pl.col("village").alias("行政村"),
            pl.lit(as_of).alias("清单日期"),
        )
        .sort("行政村", "__rank", "户编号", nulls_last=True)
    )


def identified_rows(flags: pl.DataFrame, register: pl.DataFrame) -> pl.DataFrame:
    """Households verified 纳入监测 that the register does not show monitored yet."""
    chosen = flags.filter(pl.col("disposition") == "identified", pl.col("status") != "resolved")
    per_household = chosen.group_by("household_id", maintain_order=True).agg(
        pl.col("rule_name").unique(maintain_order=True).str.join("、").alias("预警规则"),
        pl.col("visit_result").first().alias("核查结果"),
        pl.col("visit_date").max().alias("核查日期"),
    )
    return (
        per_household.join(heads(register, per_household), on="household_id", how="inner")
        .filter(~pl.col("__monitored"))
        .with_columns(pl.col("household_id").alias("户编号"), pl.col("village").alias("行政村"))
        .sort("行政村", "户编号")
    )
