"""Pure polars expressions that read the departments' text as typed values.

Every date form of SOURCES.md (ISO, 2026/11/3, 2026年11月3日, 20261103, an Excel
serial, a date cell), amounts with thousands separators, 6-digit periods. A value
that cannot be read becomes null; the canonicaliser turns "not empty but null" into
a quarantine reason, so nothing is silently dropped.
"""

from __future__ import annotations

from datetime import date

import polars as pl

EXCEL_EPOCH = date(1899, 12, 30)


def clean(expr: pl.Expr) -> pl.Expr:
    """Surrounding white space (including the ideographic space) removed; '' as null."""
    stripped = expr.str.strip_chars(" \t\r\n\u3000\u00a0")
    return pl.when(stripped == "").then(None).otherwise(stripped)


def to_date(expr: pl.Expr) -> pl.Expr:
    """Any delivered date form, or null."""
    s = clean(expr).str.split(" ").list.first()
    serial = pl.when(s.str.contains(r"^\d{5}(\.0+)?$")).then(
        pl.lit(EXCEL_EPOCH) + pl.duration(days=s.str.extract(r"^(\d{5})").cast(pl.Int64))
    )
    compact = pl.when(s.str.contains(r"^\d{8}$")).then(s.str.to_date("%Y%m%d", strict=False))
    return pl.coalesce(
        s.str.to_date("%Y-%m-%d", strict=False),
        s.str.to_date("%Y/%m/%d", strict=False),
        s.str.to_date("%Y年%m月%d日", strict=False),
        s.str.to_date("%Y.%m.%d", strict=False),
        compact,
        serial.cast(pl.Date),
    )


def to_money(expr: pl.Expr) -> pl.Expr:
    """Yuan as Float64: thousands separators and a trailing 元 allowed."""
    s = clean(expr).str.replace_all(r"[,，\s]", "").str.strip_suffix("元")
    return s.cast(pl.Float64, strict=False)


def to_int(expr: pl.Expr) -> pl.Expr:
    """Whole numbers, also when a spreadsheet wrote them as 3.0."""
    s = clean(expr).str.replace_all(",", "")
    as_float = s.cast(pl.Float64, strict=False)
    return pl.when(as_float == as_float.round(0)).then(as_float.cast(pl.Int64))


def to_period(expr: pl.Expr) -> pl.Expr:
    """YYYYMM with a real month, as an integer."""
    n = to_int(expr)
    return pl.when((n // 100 >= 1900) & (n % 100 >= 1) & (n % 100 <= 12)).then(n)


PARSERS = {"date": to_date, "money": to_money, "number": to_money, "int": to_int, "period": to_period}
