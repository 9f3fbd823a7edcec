"""emergency_management/: 应急管理 disaster verification (灾情核查), xlsx or UTF-8 CSV.

The key is (灾害编号, 户主身份证号), or (灾害编号, 乡镇, 行政村, 户主姓名) where the ID
is blank. The household head may be written down as the spouse: matching links the
person, then takes the household.
"""

from __future__ import annotations

import polars as pl

from connectors.spec import Column, Identity, Source

DAMAGE = ("倒塌", "严重损坏", "一般损坏", "未受损")

SOURCE = Source(
    name="emergency_management",
    title="应急管理 灾情核查",
    fmt="csv_or_xlsx",
    patterns=("*.xlsx", "*.csv"),
    encoding="utf-8-sig",
    sheet="灾情核查",
    columns=(
        Column("灾害编号", "disaster_id", not_empty=True),
        Column(
            "灾害种类",
            "disaster_type",
            allowed=("洪涝", "干旱", "风雹", "地震", "地质灾害", "低温冷冻和雪灾", "森林火灾"),
        ),
        Column("灾害发生日期", "disaster_date", kind="date", not_empty=True),
        Column("乡镇", "township"),
        Column("行政村", "village", aliases=("村",)),
        Column("户主姓名", "head_name", not_empty=True),
        Column("户主身份证号", "head_id_number", kind="id", aliases=("户主身份证号码", "身份证号码")),
        Column("家庭人口", "household_size", kind="int", required=False, minimum=0),
        Column("房屋受损情况", "house_damage", allowed=DAMAGE),
        Column(
            "农作物受灾面积(亩)",
            "crop_area",
            kind="number",
            required=False,
            aliases=("农作物受灾面积",),
            minimum=0,
        ),
        Column(
            "农作物绝收面积(亩)",
            "crop_loss_area",
            kind="number",
            required=False,
            aliases=("农作物绝收面积",),
            minimum=0,
        ),
        Column("直接经济损失(元)", "direct_loss", kind="money", aliases=("直接经济损失",), minimum=0),
        Column("核查日期", "verified_date", kind="date", required=False),
    ),
    key=("disaster_id", "head_id_number"),
    key_fallback=("disaster_id", "township", "village", "head_name"),
    amount=pl.col("direct_loss"),
    identity=Identity(
        "head_id_number",
        "head_name",
        None,
        ("township", "village"),
        household_size="household_size",
        names_head=True,
    ),
    event_date="disaster_date",
)
