"""Read a generated inbox back the simple way, independently of the connectors, so
that the generator is held to the contracts rather than to its own code."""

from __future__ import annotations

import csv
import io
import re
import sqlite3
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl

EXCEL_EPOCH = date(1899, 12, 30)


def norm_date(value: Any) -> date:
    """Any form docs/sources.md allows: date cell, serial, ISO, 2026/11/3, 2026年11月3日, 20261103."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, int | float):
        return EXCEL_EPOCH + timedelta(days=int(value))
    text = str(value).strip()
    if re.fullmatch(r"\d{5}", text):
        return EXCEL_EPOCH + timedelta(days=int(text))
    if re.fullmatch(r"\d{8}", text):
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    m = re.fullmatch(r"(\d{4})[-/年](\d{1,2})[-/月](\d{1,2})日?", text)
    if not m:
        raise ValueError(f"not a date: {value!r}")
    return date(*map(int, m.groups()))


def money(value: Any) -> float:
    if value is None or value == "":
        return 0.0
    return float(str(value).replace(",", "")) if isinstance(value, str) else float(value)


def key_field(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return norm_date(value).isoformat()
    if isinstance(value, float):
        return format(Decimal(repr(value)).to_integral_value(), "f")
    if isinstance(value, int):
        return str(value)
    return str(value).strip()


def read_csv(path: Path, encoding: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_bytes().decode(encoding))))


def read_xlsx(path: Path, header_row: int, sheet: str | None = None) -> list[dict[str, Any]]:
    wb = openpyxl.load_workbook(path, read_only=True)
    ws = wb[sheet] if sheet else wb.worksheets[0]
    rows = list(ws.iter_rows(values_only=True))
    wb.close()
    header = rows[header_row - 1]
    return [dict(zip(header, r, strict=True)) for r in rows[header_row:]]


def health(inbox: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted((inbox / "health_insurance").glob("*.csv")):
        for row in read_csv(path, "gbk"):
            out.append({**row, "_file": path.name, "_key": row["结算流水号"].strip()})
    return out


def civil(inbox: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted((inbox / "civil_affairs").glob("*.xlsx")):
        for row in read_xlsx(path, header_row=2):
            key = "|".join(
                [
                    key_field(row["身份证号码"]),
                    key_field(row["姓名"]),
                    key_field(row["救助类别"]),
                    norm_date(row["审批日期"]).isoformat(),
                ]
            )
            out.append({**row, "_file": path.name, "_key": key})
    return out


def disaster(inbox: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted((inbox / "emergency_management").iterdir()):
        rows = read_xlsx(path, 1, "灾情核查") if path.suffix == ".xlsx" else read_csv(path, "utf-8-sig")
        for row in rows:
            ident = key_field(row["户主身份证号"])
            parts = (
                [row["灾害编号"], ident]
                if ident
                else [row["灾害编号"], row["乡镇"], row["行政村"], row["户主姓名"]]
            )
            out.append({**row, "_file": path.name, "_key": "|".join(key_field(p) for p in parts)})
    return out


def hr(inbox: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    con = sqlite3.connect(inbox / "human_resources" / "exchange.sqlite")
    con.row_factory = sqlite3.Row
    events = [dict(r) for r in con.execute("select * from rs_employment_event")]
    contributions = [dict(r) for r in con.execute("select * from rs_contribution_month")]
    con.close()
    for e in events:
        e["_key"] = f"rs_employment_event|{e['aac002'].strip()}|{e['event_type']}|{e['event_date']}"
    for c in contributions:
        c["_key"] = f"rs_contribution_month|{c['aac002'].strip()}|{c['period']}"
    return events, contributions
