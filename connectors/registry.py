"""registry/: the rural population register (防返贫监测信息系统 export).

Delivered whole (``snapshot``): a new export replaces the previous one as a whole; a
run for date D reads the latest export made on or before D (connectors.arrival).
"""

from __future__ import annotations

from connectors.spec import Column, Identity, Source

SOURCE = Source(
    name="registry",
    title="农村人口信息 (register)",
    fmt="csv_or_xlsx",
    patterns=("*.csv", "*.xlsx"),
    encoding="utf-8-sig",
    columns=(
        Column("县", "county"),
        Column("乡(镇)", "township", aliases=("乡镇", "乡（镇）")),
        Column("行政村", "village", aliases=("村",)),
        Column("户编号", "household_id", not_empty=True),
        Column("人编号", "person_id", not_empty=True),
        Column("姓名", "name", not_empty=True),
        Column("证件号码", "id_number", kind="id", aliases=("身份证号码", "身份证号")),
        Column("性别", "sex", allowed=("男", "女")),
        Column("民族", "ethnicity", required=False),
        Column("与户主关系", "relation", not_empty=True),
        Column("劳动技能", "labour", required=False),
        Column("健康状况", "health", required=False),
        Column("户联系电话", "phone", aliases=("联系电话",), required=False),
        Column("户类型", "household_type"),
        Column("监测对象类别", "monitored_category"),
        Column("风险是否已消除", "risk_eliminated", allowed=("是", "否")),
        Column("识别监测时间", "identified_month", kind="period", required=False),
        Column("人数", "household_size", kind="int"),
        Column(
            "人均纯收入（元）", "income_per_capita", kind="money", aliases=("人均纯收入", "人均纯收入(元)")
        ),
        Column("工资性收入", "wage_income", kind="money", aliases=("工资性收入(元)",)),
        Column("生产经营性收入", "business_income", kind="money", aliases=("生产经营性收入(元)",)),
    ),
    key=("person_id",),
    identity=Identity("id_number", "name", "phone", ("township", "village")),
    event_date=None,
    key_conflicts="quarantine",
    snapshot=True,
)
