"""The register as the poverty-monitoring system exports it: ``inbox/registry``'s one
file, xlsx under a title and subtitle or csv, dated the day before the night."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from synth.world import World
from synth.writers import write_csv, write_xlsx

REGISTER_HEADER = (
    "县",
    "乡(镇)",
    "行政村",
    "户编号",
    "人编号",
    "姓名",
    "证件号码",
    "性别",
    "民族",
    "与户主关系",
    "劳动技能",
    "健康状况",
    "户联系电话",
    "户类型",
    "监测对象类别",
    "风险是否已消除",
    "识别监测时间",
    "人数",
    "人均纯收入（元）",
    "工资性收入",
    "生产经营性收入",
)
REGISTER_COLUMNS = (
    "county",
    "township",
    "village",
    "household_id",
    "person_id",
    "name",
    "id_number",
    "sex",
    "ethnicity",
    "relation",
    "labour",
    "health",
    "phone",
    "household_type",
    "monitored_category",
    "risk_eliminated",
    "identified_month",
    "household_size",
    "income_per_capita",
    "wage_income",
    "business_income",
)


def write_register(world: World, folder: Path, fmt: str) -> str:
    export_day = world.days_ago(1)
    reg = world.register.sort("household_id", "person_id").with_columns(
        pl.col("household_size").cast(pl.Int64),
        pl.col("income_per_capita", "wage_income", "business_income").round(2),
    )
    rows = reg.select(REGISTER_COLUMNS).iter_rows()
    name = f"register_{export_day:%Y%m%d}.{fmt}"
    if fmt == "csv":
        write_csv(folder / name, REGISTER_HEADER, ([_num(v) for v in row] for row in rows), "utf-8-sig")
    else:
        write_xlsx(
            folder / name,
            "农村人口",
            REGISTER_HEADER,
            rows,
            title="防返贫监测信息系统 农村人口信息",
            subtitle=f"{world.county.name}  导出日期：{export_day:%Y-%m-%d}",
        )
    return f"registry/{name}"


def _num(v: Any) -> Any:
    """Register money as delivered: whole yuan without a trailing .0."""
    if isinstance(v, float):
        return f"{v:.0f}" if v == int(v) else f"{v:.2f}"
    return v
