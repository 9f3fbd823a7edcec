"""health_insurance/: 医保 settlement records, GBK CSV, with 冲销 reversals.

A 冲销 row cancels the settlement its 原结算流水号 names, whichever arrives first:
:func:`effective_settlements` applies reversals to whatever is staged, so a reversal
staged before its original cancels the original the night the original arrives.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from connectors.spec import Check, Column, Identity, Source

MONEY = (
    "total_cost",
    "fund_paid",
    "critical_illness_paid",
    "medical_assistance_paid",
    "self_pay",
    "self_expense",
)

SOURCE = Source(
    name="health_insurance",
    title="医保 结算明细",
    fmt="csv",
    patterns=("*.csv",),
    encoding="gbk",
    columns=(
        Column("结算流水号", "settlement_id", not_empty=True),
        Column("结算类型", "settlement_type", not_empty=True, allowed=("正常", "冲销")),
        Column("原结算流水号", "original_settlement_id"),
        Column("姓名", "name"),
        Column("证件类型", "id_type", required=False),
        Column("证件号码", "id_number", kind="id", aliases=("身份证号码", "社会保障号码")),
        Column("参保地区划", "insured_area", required=False),
        Column("就诊类别", "visit_type", required=False),
        Column("定点医药机构名称", "provider", required=False),
        Column("入院日期", "admission_date", kind="date", required=False),
        Column("出院日期", "discharge_date", kind="date", required=False),
        Column("结算日期", "settlement_date", kind="date", not_empty=True),
        Column("医疗费总额", "total_cost", kind="money"),
        Column("统筹基金支付", "fund_paid", kind="money", required=False),
        Column("大病保险支付", "critical_illness_paid", kind="money", required=False),
        Column("医疗救助支付", "medical_assistance_paid", kind="money", required=False),
        Column("个人自付", "self_pay", kind="money"),
        Column("个人自费", "self_expense", kind="money"),
    ),
    key=("settlement_id",),
    amount=pl.col("self_pay").fill_null(0) + pl.col("self_expense").fill_null(0),  # 个人负担
    identity=Identity("id_number", "name", care_place="provider"),
    event_date="settlement_date",
    checks=(
        Check(
            "原结算流水号",
            "a 冲销 row must name the settlement it cancels",
            (pl.col("settlement_type") == "冲销") & pl.col("original_settlement_id").is_null(),
        ),
        *(
            Check(
                header,
                "is negative on a 正常 settlement (only a 冲销 row is)",
                (pl.col("settlement_type") == "正常") & (pl.col(name) < 0),
            )
            for header, name in (
                ("医疗费总额", "total_cost"),
                ("个人自付", "self_pay"),
                ("个人自费", "self_expense"),
            )
        ),
    ),
)


def effective_settlements(settlements: pl.LazyFrame | pl.DataFrame, as_of: date) -> pl.LazyFrame:
    """正常 settlements with their out-of-pocket burden and whether a 冲销 dated on or
    before ``as_of`` cancels them (docs/rules.md: the pair then contributes nothing).

    A reversal dated after ``as_of`` is ignored; a reversal whose original is unknown
    contributes nothing and waits for its original.
    """
    lf = settlements.lazy()
    reversals = (
        lf.filter((pl.col("settlement_type") == "冲销") & (pl.col("settlement_date") <= as_of))
        .select(pl.col("original_settlement_id").alias("settlement_id"))
        .unique()
        .with_columns(pl.lit(True).alias("cancelled"))
    )
    return (
        lf.filter(pl.col("settlement_type") == "正常")
        .join(reversals, on="settlement_id", how="left")
        .with_columns(
            pl.col("cancelled").fill_null(False),
            (pl.col("self_pay").fill_null(0) + pl.col("self_expense").fill_null(0)).alias("burden"),
        )
    )
