"""A township's workbook, as a cadre uses it: printed, carried to the door, filled in and
returned. xlsxwriter writes it; nothing here decides who is listed (``lists.rows``).

- 核查清单: A4 landscape, fitted to the page width, title and header repeated on every
  page, township and date in the page header, page numbers in the footer; IDs and 户编号
  as text; 核查结果 a dropdown of the province's vocabulary, 核查日期 a date cell; the
  columns a cadre must not edit are locked (the sheet is protected without a password,
  and sorting, filtering, resizing, inserting and deleting rows stay allowed).
- 已纳入: households verified 纳入监测, until the register shows them monitored.
- 汇总: households (not rule firings) by rule and village, overdue ones, a chart.
- 说明: what each rule means, what to check at the door, how to fill in and return.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path

import polars as pl
import xlsxwriter

from lists.rows import IDENTIFIED_COLUMNS, LIST_COLUMNS, VISIT_COLUMNS
from rules.catalogue import Catalogue
from visits.config import VisitConfig

WIDTHS = {
    "序号": 4.5,
    "清单日期": 10,
    "乡(镇)": 8,
    "行政村": 8,
    "户编号": 18,
    "户主姓名": 8,
    "户主证件号码": 20,
    "联系电话": 12.5,
    "人数": 4.5,
    "户类型": 7,
    "监测对象类别": 9,
    "风险等级": 5,
    "预警规则": 12,
    "预警依据": 44,
    "建议帮扶措施": 9,
    "首次预警日期": 10.5,
    "本期状态": 8,
    "核查结果": 16,
    "核查人": 8,
    "核查日期": 11,
    "帮扶措施": 12,
    "备注": 10,
}
# In the file for the import, not on paper: one township and one date per workbook.
HIDDEN = ("清单日期", "乡(镇)")
TEXT = ("户编号", "户主证件号码", "联系电话")
PROTECTION = {
    "objects": True,
    "scenarios": True,
    "format_cells": True,
    "format_columns": True,
    "format_rows": True,
    "insert_columns": True,
    "insert_rows": True,
    "insert_hyperlinks": True,
    "delete_columns": True,
    "delete_rows": True,
    "select_locked_cells": True,
    "sort": True,
    "autofilter": True,
    "pivot_tables": True,
    "select_unlocked_cells": True,
}


def _wrapped(text: pl.Expr, width: float) -> pl.Expr:
    """How many lines ``text`` wraps to in a column ``width`` wide (a Chinese character
    takes two of a column's units, as in 宋体; one unit is kept as margin): a row must be
    as tall as its longest cell, since neither Excel nor LibreOffice grows a row written
    without a height."""
    units = text.str.len_chars() + text.str.count_matches(r"[\x{2E80}-\x{10FFFF}]")
    per = max(1, int(width) - 1)
    return pl.max_horizontal(pl.lit(1), (units + per - 1) // per)


def _lines(text: str, width: float) -> int:
    """:func:`_wrapped` of one text (a summary's or guide's line)."""
    return pl.select(_wrapped(pl.lit(text, pl.String), width)).item()


def _tallest(rows: pl.DataFrame) -> pl.Series:
    """Per list row, the lines of its tallest shown cell (:func:`_wrapped` of each, as the
    sheet writes them), counted by polars over the columns rather than per character in
    Python (5,000 households' lists: a third of the sheet's time)."""

    def lines(name: str) -> pl.Expr:
        if name == "序号":
            return _wrapped(pl.int_range(1, pl.len() + 1).cast(pl.String), WIDTHS[name])
        if name in rows.columns:
            return _wrapped(pl.col(name).cast(pl.String).fill_null(""), WIDTHS[name])
        return pl.lit(1)

    shown = [n for n in LIST_COLUMNS if n not in HIDDEN]
    return rows.select(pl.max_horizontal(*(lines(n) for n in shown)).alias("tallest")).to_series()


MISSING_WHY = {"not settled": "未按时送达", "failed": "被拒收", "partial": "部分文件被拒收"}


def missing_note(missing: Mapping[str, tuple[str, str]], titles: Mapping[str, str]) -> str:
    """One sentence naming the departments whose data the night went without, and why
    (``missing``: source -> (status, reason); ``titles``: source -> its department's name)."""
    if not missing:
        return ""
    parts = [f"{titles.get(s, s)}数据{MISSING_WHY.get(status, status)}" for s, (status, _) in missing.items()]
    return "注意:本期" + "、".join(parts) + ",依据这些数据的预警可能未列出。"


def file_name(county: str, township: str, as_of: date) -> str:
    """``花垣县龙潭镇_预警核查清单_20261127.xlsx``: which list it is, whatever folder it lands in."""
    return f"{county}{township}_预警核查清单_{as_of:%Y%m%d}.xlsx"


class _Formats:
    def __init__(self, wb: xlsxwriter.Workbook) -> None:
        base = {"font_name": "宋体", "font_size": 10, "border": 1, "valign": "top", "text_wrap": True}
        self.title = wb.add_format({"font_name": "宋体", "bold": True, "font_size": 14})
        self.head = wb.add_format({**base, "bold": True, "bg_color": "#DDEBF7", "align": "center", "valign": "vcenter"})
        self.cell = wb.add_format(base)
        self.high = wb.add_format({**base, "font_color": "#C00000", "bold": True})
        self.new = wb.add_format({**base, "bg_color": "#FFF2CC", "bold": True})
        self.late = wb.add_format({**base, "bg_color": "#F8CBAD", "bold": True})
        self.open = wb.add_format({**base, "locked": False, "bg_color": "#F2F2F2"})
        self.open_date = wb.add_format({**base, "locked": False, "bg_color": "#F2F2F2", "num_format": "yyyy-mm-dd"})
        self.text = wb.add_format({"font_name": "宋体", "font_size": 11, "text_wrap": True, "valign": "top"})
        self.bold = wb.add_format({"font_name": "宋体", "font_size": 11, "bold": True, "text_wrap": True, "valign": "top"})


def write_workbook(
    path: Path,
    rows: pl.DataFrame,
    identified: pl.DataFrame,
    county: str,
    township: str,
    as_of: date,
    catalogue: Catalogue,
    config: VisitConfig,
    missing: str = "",
) -> None:
    """``missing``: the sentence naming the sources the night went without (:func:`missing_note`),
    said in the list's title and in the summary, so nobody takes a short list for a quiet night."""
    wb = xlsxwriter.Workbook(str(path))
    wb.set_properties(
        {
            "title": f"{county}{township}防返贫监测预警核查清单",
            "subject": as_of.isoformat(),
            "created": datetime(as_of.year, as_of.month, as_of.day),
        }
    )
    f = _Formats(wb)
    _list_sheet(wb, f, rows, county, township, as_of, config, missing)
    _identified_sheet(wb, f, identified, township, as_of)
    _summary_sheet(wb, f, rows, township, as_of, missing)
    _guide_sheet(wb, f, catalogue, config, as_of)
    wb.close()


def _page(ws, title: str, as_of: date, landscape: bool = True) -> None:
    if landscape:
        ws.set_landscape()
    ws.set_paper(9)  # A4
    ws.set_margins(left=0.4, right=0.4, top=0.75, bottom=0.6)
    ws.set_header(f"&L{title}&R截至 {as_of:%Y-%m-%d}")
    ws.set_footer("&C第 &P 页，共 &N 页")


def _list_sheet(
    wb, f: _Formats, rows: pl.DataFrame, county: str, township: str, as_of: date, config: VisitConfig, missing: str
) -> None:
    ws = wb.add_worksheet("核查清单")
    title = f"{county}{township}防返贫监测预警核查清单"
    _page(ws, title, as_of)
    ws.fit_to_pages(1, 0)
    ws.repeat_rows(0, 1)
    last_col = len(LIST_COLUMNS) - 1
    heading = f"{title}(截至 {as_of:%Y-%m-%d},共 {rows.height} 户)" + (f" {missing}" if missing else "")
    ws.merge_range(0, 0, 0, last_col, heading, f.title)
    ws.set_row(0, 24)
    ws.write_row(1, 0, LIST_COLUMNS, f.head)
    ws.set_row(1, 30)
    for j, name in enumerate(LIST_COLUMNS):
        ws.set_column(j, j, WIDTHS[name], None, {"hidden": name in HIDDEN})
    for i, (row, tallest) in enumerate(zip(rows.iter_rows(named=True), _tallest(rows), strict=True)):
        r = i + 2
        values = {**row, "序号": i + 1, "清单日期": as_of.isoformat()}
        values["首次预警日期"] = row["首次预警日期"].isoformat() if row.get("首次预警日期") else ""
        ws.set_row(r, 13.5 * tallest + 3)
        for j, name in enumerate(LIST_COLUMNS):
            if name in VISIT_COLUMNS:
                fmt = f.open_date if name == "核查日期" else f.open
                ws.write_blank(r, j, None, fmt)
                continue
            value = values.get(name)
            fmt = f.cell
            if name == "风险等级" and value == "高":
                fmt = f.high
            elif name == "本期状态" and value and "逾期" in value:
                fmt = f.late
            elif name == "本期状态" and value == "新增":
                fmt = f.new
            if isinstance(value, int | float) and not isinstance(value, bool) and name not in TEXT:
                ws.write_number(r, j, value, fmt)
            else:
                ws.write_string(r, j, "" if value is None else str(value), fmt)
    last = max(rows.height + 1, 2)
    result, when = LIST_COLUMNS.index("核查结果"), LIST_COLUMNS.index("核查日期")
    ws.data_validation(
        2,
        result,
        last,
        result,
        {
            "validate": "list",
            "source": config.choices,
            "input_title": "核查结果",
            "input_message": "从下拉列表中选择",
            "error_title": "核查结果",
            "error_message": "请从下拉列表中选择:" + " / ".join(config.choices),
        },
    )
    ws.data_validation(
        2,
        when,
        last,
        when,
        {
            "validate": "date",
            "criteria": "between",
            "minimum": datetime(as_of.year, as_of.month, as_of.day),
            "maximum": datetime(as_of.year + 1, as_of.month, min(as_of.day, 28)),
            "input_title": "核查日期",
            "input_message": f"入户核查的日期,不早于 {as_of:%Y-%m-%d}",
            "error_title": "核查日期",
            "error_message": f"请填写 {as_of:%Y-%m-%d} 以后的日期",
        },
    )
    ws.freeze_panes(2, LIST_COLUMNS.index("户主姓名") + 1)
    ws.autofilter(1, 0, last, last_col)
    ws.print_area(0, 0, last, last_col)
    ws.protect("", PROTECTION)


def _identified_sheet(wb, f: _Formats, identified: pl.DataFrame, township: str, as_of: date) -> None:
    ws = wb.add_worksheet("已纳入")
    _page(ws, f"{township} 已核实纳入监测(待系统标注)", as_of, landscape=False)
    ws.fit_to_pages(1, 0)
    ws.repeat_rows(1)
    ws.merge_range(0, 0, 0, len(IDENTIFIED_COLUMNS) - 1, f"{township} 核查确认纳入监测、系统尚未标注的户", f.title)
    ws.write_row(1, 0, IDENTIFIED_COLUMNS, f.head)
    widths = {"序号": 4.5, "行政村": 9, "户编号": 18, "户主姓名": 8, "户主证件号码": 20, "预警规则": 16, "核查结果": 14, "核查日期": 11}
    for j, name in enumerate(IDENTIFIED_COLUMNS):
        ws.set_column(j, j, widths[name])
    for i, row in enumerate(identified.iter_rows(named=True)):
        values = {**row, "序号": i + 1, "核查日期": row["核查日期"].isoformat() if row.get("核查日期") else ""}
        for j, name in enumerate(IDENTIFIED_COLUMNS):
            value = values.get(name)
            if name == "序号":
                ws.write_number(i + 2, j, value, f.cell)
            else:
                ws.write_string(i + 2, j, "" if value is None else str(value), f.cell)
    if identified.height == 0:
        ws.write_string(2, 0, "(无)", f.text)


def _summary_sheet(wb, f: _Formats, rows: pl.DataFrame, township: str, as_of: date, missing: str) -> None:
    """Households by rule and village (a household with two rules counts once in each
    rule's row and once in the village's total), the overdue ones, and a chart of
    households per village with a whole-number axis."""
    ws = wb.add_worksheet("汇总")
    _page(ws, f"{township} 预警汇总", as_of)
    ws.fit_to_pages(1, 1)
    pairs = rows.select("户编号", "行政村", "__overdue", pl.col("预警规则").str.split("、").alias("规则")).explode("规则")
    villages = sorted(rows["行政村"].drop_nulls().unique().to_list())
    rules = sorted(pairs["规则"].drop_nulls().unique().to_list())
    counts = {(v, r): n for v, r, n in pairs.group_by("行政村", "规则").agg(pl.col("户编号").n_unique()).iter_rows()}
    per_village = dict(rows.group_by("行政村").len().iter_rows())
    late = dict(rows.filter(pl.col("__overdue")).group_by("行政村").len().iter_rows())
    ws.merge_range(0, 0, 0, len(villages) + 1, f"{township} 需入户核查户数(按预警规则和行政村,截至 {as_of:%Y-%m-%d})", f.title)
    ws.set_row(0, 24)
    ws.write_row(1, 0, ["预警规则", *villages, "合计"], f.head)
    for i, rule in enumerate(rules, start=2):
        row = [counts.get((v, rule), 0) for v in villages]
        ws.write_string(i, 0, rule, f.cell)
        ws.write_row(i, 1, [*row, int(pairs.filter(pl.col("规则") == rule)["户编号"].n_unique())], f.cell)
    total_row, late_row = len(rules) + 2, len(rules) + 3
    ws.write_string(total_row, 0, "需核查户数(一户只计一次)", f.head)
    ws.write_row(total_row, 1, [per_village.get(v, 0) for v in villages] + [rows.height], f.cell)
    ws.write_string(late_row, 0, "其中逾期未核查户数", f.head)
    ws.write_row(late_row, 1, [late.get(v, 0) for v in villages] + [sum(late.values())], f.cell)
    ws.set_column(0, 0, 24)
    ws.set_column(1, len(villages) + 1, 9)
    below = late_row + 2
    if missing:
        ws.merge_range(late_row + 1, 0, late_row + 1, len(villages) + 1, missing, f.bold)
        ws.set_row(late_row + 1, 13.5 * _lines(missing, 24 + 9 * len(villages)) + 3)
        below += 1
    if not villages:
        return
    chart = wb.add_chart({"type": "column"})
    for r, name in ((total_row, "需核查户数"), (late_row, "逾期户数")):
        chart.add_series(
            {
                "name": name,
                "categories": ["汇总", 1, 1, 1, len(villages)],
                "values": ["汇总", r, 1, r, len(villages)],
                "data_labels": {"value": True},
            }
        )
    top = max(per_village.values(), default=1)
    chart.set_title({"name": "各村需入户核查户数", "name_font": {"size": 12}, "overlay": False})
    chart.set_x_axis({"name": "行政村"})
    chart.set_y_axis(
        {"name": "户数", "min": 0, "major_unit": max(1, -(-top // 8)), "num_format": "0", "major_gridlines": {"visible": True}}
    )
    chart.set_legend({"position": "bottom"})
    chart.set_size({"width": max(560, 70 * len(villages) + 200), "height": 380})
    ws.insert_chart(below, 0, chart)


def _guide_sheet(wb, f: _Formats, catalogue: Catalogue, config: VisitConfig, as_of: date) -> None:
    ws = wb.add_worksheet("说明")
    _page(ws, "核查清单使用说明", as_of, landscape=False)
    ws.fit_to_pages(1, 0)
    ws.set_column(0, 0, 16)
    ws.set_column(1, 2, 40)
    lines: list[tuple[str, ...]] = [
        ("这份清单是什么",),
        ("", "民政、医保、应急管理、人社等部门的数据与防返贫监测信息系统比对后,本乡镇需要入户核实的家庭。一户只列一行,一次入户核实清单上的全部预警。"),
        ("每条预警规则",),
        ("规则", "含义和预警标准", "入户时核实什么"),
        *((rule.name, rule.meaning, rule.at_the_door) for rule in catalogue.rules),
        ("怎样填写",),
        ("核查结果", "从下拉列表中选择:" + ";".join(config.choices) + "。", _consequences(config)),
        ("核查人", "入户核查的干部姓名。", ""),
        ("核查日期", f"入户的日期,不早于清单日期 {as_of:%Y-%m-%d},不晚于交回之日。", ""),
        ("帮扶措施", "已落实或建议的帮扶措施。", ""),
        ("备注", "其他情况。", ""),
        ("逾期",),
        ("", f"列入清单 {config.overdue_days} 天仍未核查的户,本期状态标为“逾期”,并在汇总中单独统计。", ""),
        ("怎样交回",),
        ("", "填好后把本工作簿交回乡镇监测专干(文件可以改名、排序、加列或删行,灰色以外的列不要改),由其导入系统。核查过的户不会在下一期清单中重复出现,除非情况明显变化。", ""),
    ]
    widths = (16, 40, 40)
    for r, line in enumerate(lines):
        if len(line) == 1:
            ws.merge_range(r, 0, r, 2, line[0], f.bold)
            ws.set_row(r, 22)
        elif line[0] == "" and not any(line[2:]):
            ws.merge_range(r, 1, r, 2, line[1], f.text)  # a paragraph across both columns
            ws.set_row(r, 15 * _lines(line[1], sum(widths[1:])) + 4)
        else:
            for j, text in enumerate(line):
                ws.write_string(r, j, text, f.head if line[0] == "规则" else f.text)
            ws.set_row(r, 15 * max(_lines(t, w) for t, w in zip(line, widths, strict=False)) + 4)


def _consequences(config: VisitConfig) -> str:
    words = {
        "identified": "移出预警清单,列入“已纳入”表,直到系统标注为监测对象",
        "dismissed": "该项预警不再列入清单,除非情况明显变化",
        "unverified": "下一期继续列入清单",
    }
    return ";".join(f"{text}:{words[outcome]}" for text, outcome in config.results.items()) + "。"
