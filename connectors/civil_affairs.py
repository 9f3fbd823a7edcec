"""civil_affairs/: 民政 social-assistance changes, one xlsx a month with a merged title row."""

from __future__ import annotations

import polars as pl

from connectors.spec import Check, Column, Identity, Source

CATEGORIES = ("农村低保", "农村特困", "临时救助", "困难残疾人生活补贴", "重度残疾人护理补贴")

SOURCE = Source(
    name="civil_affairs",
    title="民政 社会救助对象变动",
    fmt="xlsx",
    patterns=("*.xlsx",),
    columns=(
        Column("序号", "seq", kind="int", required=False, compared=False),
        Column("姓名", "name"),
        Column("身份证号码", "id_number", kind="id", aliases=("身份证号", "证件号码", "公民身份号码")),
        Column("救助类别", "category", not_empty=True, allowed=CATEGORIES),
        Column("变动类型", "change_type", not_empty=True, allowed=("新增", "停保", "调整")),
        Column("保障人数", "covered", kind="int", required=False, minimum=0),
        Column("月保障金额(元)", "monthly_amount", kind="money", aliases=("月保障金额",), minimum=0),
        Column("临时救助金额(元)", "one_off_amount", kind="money", aliases=("临时救助金额",), minimum=0),
        Column("审批日期", "approval_date", kind="date", not_empty=True),
        Column("户籍地址", "address", required=False),
        Column("联系电话", "phone", required=False),
        Column("备注", "remarks", required=False),
    ),
    key=("id_number", "name", "category", "approval_date"),
    amount=pl.coalesce("monthly_amount", "one_off_amount"),
    identity=Identity("id_number", "name", "phone", ("address",)),
    event_date="approval_date",
    checks=(
        Check(
            "姓名",
            "neither an ID number nor a name: the record names nobody",
            pl.col("id_number").str.strip_chars().fill_null("").eq("") & pl.col("name").fill_null("").eq(""),
        ),
    ),
)
