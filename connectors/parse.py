"""Pure polars expressions that read the departments' text as typed values.

Every date form of docs/sources.md (ISO, 2026/11/3, 2026年11月3日, 20261103, an Excel
serial, a date cell), amounts with thousands separators, 6-digit periods. A value
that cannot be read becomes null; the canonicaliser turns "not empty but null" into
a quarantine reason, so nothing is silently dropped.
"""

from __future__ import annotations

from datetime import date

import polars as pl

EXCEL_EPOCH = date(1899, 12, 30)
EXCEL_DAY = (EXCEL_EPOCH - date(1970, 1, 1)).days  # polars' Date counts days from 1970
# A date outside these years is a typo or a mangled cell (the serial 99999 is 2173), not
# a record's date: it is read as no date, and the row quarantined.
EARLIEST, LATEST = date(1900, 1, 1), date(2099, 12, 31)
# No amount a department delivers reaches 10^10 yuan; NaN, inf and 1e300 are not amounts.
LARGEST_AMOUNT = 1e10


def clean(expr: pl.Expr) -> pl.Expr:
    """Surrounding white space (including the ideographic space) removed; '' as null."""
    stripped = expr.str.strip_chars()
    return pl.when(stripped == "").then(None).otherwise(stripped)


def present(expr: pl.Expr) -> pl.Expr:
    """Whether a cell holds anything but white space."""
    return expr.str.strip_chars().str.len_bytes().fill_null(0) > 0


def to_date(expr: pl.Expr) -> pl.Expr:
    """Any delivered date form, or null.

    The forms are rewritten with cheap string operations and each parsed by one format:
    a date cell's ``2026-11-03 00:00:00`` loses its time, ``/ 年 月 .`` become dashes,
    eight digits are ``%Y%m%d``, a five-digit number is an Excel serial (a day count, so
    an integer offset, not a duration).
    """
    s = expr.str.strip_chars().str.split_exact(" ", 1).struct.field("field_0")
    dashed = s.str.replace_many(["/", "年", "月", "."], ["-", "-", "-", "-"]).str.strip_suffix("日")
    compact = pl.when(s.str.contains(r"^\d{8}$")).then(s.str.to_date("%Y%m%d", strict=False))
    serial = s.str.extract(r"^(\d{5})(?:\.0+)?$").cast(pl.Int32) + EXCEL_DAY
    value = pl.coalesce(dashed.str.to_date("%Y-%m-%d", strict=False), compact, serial.cast(pl.Date))
    return pl.when(value.is_between(pl.lit(EARLIEST), pl.lit(LATEST))).then(value)


def to_money(expr: pl.Expr) -> pl.Expr:
    """Yuan as Float64: thousands separators and a trailing 元 allowed."""
    s = expr.str.replace_many([",", "，", " ", "\u3000"], ["", "", "", ""]).str.strip_suffix("元")
    value = s.cast(pl.Float64, strict=False)
    return pl.when(value.is_finite() & (value.abs() < LARGEST_AMOUNT)).then(value)


def to_int(expr: pl.Expr) -> pl.Expr:
    """Whole numbers, also when a spreadsheet wrote them as 3.0."""
    s = expr.str.strip_chars().str.replace_all(",", "", literal=True)
    as_float = s.cast(pl.Float64, strict=False)
    whole = as_float.is_finite() & (as_float.abs() < LARGEST_AMOUNT) & (as_float == as_float.round(0))
    return pl.when(whole).then(as_float.cast(pl.Int64, strict=False))


def to_period(expr: pl.Expr) -> pl.Expr:
    """YYYYMM with a real month, as an integer."""
    n = to_int(expr)
    return pl.when((n // 100 >= 1900) & (n % 100 >= 1) & (n % 100 <= 12)).then(n)


PARSERS = {"date": to_date, "money": to_money, "number": to_money, "int": to_int, "period": to_period}
