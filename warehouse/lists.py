"""The lists for monitoring staff: one workbook per township, in Chinese.

``outbox/<as_of>/<township>.xlsx``: one row per household to verify (入户核查), all its
fired rules on that row, sorted by severity, the evidence in words, new households
marked, columns for the visit's result; a summary sheet with a native Excel chart of
households by rule and village; and a CSV of the list beside each workbook. Monitoring
staff may read full identifiers: these lists carry them.
"""

from __future__ import annotations

import functools
from datetime import date, datetime
from pathlib import Path

import polars as pl
import xlsxwriter

from guardline.atomic import Hook, recover, transaction
from guardline.csvsafe import write_csv
from guardline.errors import GuardlineError
from rules.features import head_rows
from staging.stage import Stage

SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}
SEVERITY_WORDS = {"high": "高", "medium": "中", "low": "低"}
LIST_COLUMNS = (
    "序号",
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
    "核查结果",
    "核查人",
    "核查日期",
)


def visit_list(flags: pl.DataFrame, register: pl.DataFrame) -> pl.DataFrame:
    """One row per household with a firing rule (new or continuing): what a cadre needs."""
    firing = flags.filter(pl.col("status") != "resolved").with_columns(
        pl.col("severity").replace_strict(SEVERITY_ORDER, default=3).alias("__rank")
    )
    heads = head_rows(register).select(
        "household_id",
        "township",
        "village",
        pl.col("name").alias("户主姓名"),
        pl.col("id_number").alias("户主证件号码"),
        pl.col("phone").alias("联系电话"),
        pl.col("household_size").alias("人数"),
        pl.col("household_type").alias("户类型"),
        pl.col("monitored_category").fill_null("").alias("监测对象类别"),
    )
    per_household = (
        firing.sort("__rank", "rule_id")
        .group_by("household_id", maintain_order=True)
        .agg(
            pl.col("__rank").min().alias("__rank"),
            pl.col("rule_name").str.join("、").alias("预警规则"),
            pl.col("sentence").str.join("；").alias("预警依据"),
            pl.col("assistance").unique(maintain_order=True).str.join("、").alias("建议帮扶措施"),
            pl.col("first_flagged_date").min().alias("首次预警日期"),
            (pl.col("status") == "new").all().alias("__new"),
        )
    )
    return (
        per_household.join(heads, on="household_id", how="left")
        .with_columns(
            pl.col("__rank")
            .replace_strict({v: SEVERITY_WORDS[k] for k, v in SEVERITY_ORDER.items()}, default="低")
            .alias("风险等级"),
            pl.when(pl.col("__new")).then(pl.lit("新增")).otherwise(pl.lit("持续")).alias("本期状态"),
            pl.col("household_id").alias("户编号"),
            pl.col("township").alias("乡(镇)"),
            pl.col("village").alias("行政村"),
        )
        .sort("__rank", "行政村", "户编号")
    )


def _workbook(rows: pl.DataFrame, township: str, as_of: date, path: Path) -> None:
    wb = xlsxwriter.Workbook(str(path))
    wb.set_properties(
        {
            "title": f"{township}防返贫监测预警核查清单",
            "created": datetime(as_of.year, as_of.month, as_of.day),
        }
    )
    title = wb.add_format({"bold": True, "font_size": 14})
    head = wb.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True})
    cell = wb.add_format({"border": 1, "text_wrap": True, "valign": "top"})
    high = wb.add_format({"border": 1, "valign": "top", "font_color": "#C00000", "bold": True})
    new = wb.add_format({"border": 1, "valign": "top", "bg_color": "#FFF2CC", "bold": True})
    ws = wb.add_worksheet("核查清单")
    ws.write(0, 0, f"{township}防返贫监测预警核查清单(截至 {as_of:%Y-%m-%d})", title)
    ws.write_row(1, 0, LIST_COLUMNS, head)
    widths = {"预警依据": 60, "预警规则": 22, "户主证件号码": 21, "建议帮扶措施": 16, "行政村": 12}
    for j, name in enumerate(LIST_COLUMNS):
        ws.set_column(j, j, widths.get(name, 11))
    for i, row in enumerate(rows.iter_rows(named=True), start=1):
        values = {
            **row,
            "序号": i,
            "首次预警日期": row["首次预警日期"].isoformat() if row["首次预警日期"] else "",
            "核查结果": "",
            "核查人": "",
            "核查日期": "",
        }
        for j, name in enumerate(LIST_COLUMNS):
            value = values.get(name)
            fmt = (
                high
                if name == "风险等级" and value == "高"
                else new
                if name == "本期状态" and value == "新增"
                else cell
            )
            if isinstance(value, int | float) and name != "户主证件号码":
                ws.write_number(i + 1, j, value, fmt)
            else:
                ws.write_string(i + 1, j, "" if value is None else str(value), fmt)
    ws.freeze_panes(2, 4)
    ws.autofilter(1, 0, rows.height + 1, len(LIST_COLUMNS) - 1)
    _summary(wb, rows, township, as_of, head, cell)
    wb.close()


def _summary(wb, rows: pl.DataFrame, township: str, as_of: date, head, cell) -> None:
    """Households by rule and village, and a stacked column chart of the same."""
    ws = wb.add_worksheet("汇总")
    pairs = rows.select("行政村", pl.col("预警规则").str.split("、").alias("规则")).explode("规则")
    villages = sorted(pairs["行政村"].drop_nulls().unique().to_list())
    rules = sorted(pairs["规则"].unique().to_list())
    counts = {(v, r): n for v, r, n in pairs.group_by("行政村", "规则").len().iter_rows()}
    ws.write(0, 0, f"{township} 预警户数(按规则和行政村,截至 {as_of:%Y-%m-%d})", head)
    ws.write_row(1, 0, ["预警规则", *villages, "合计"], head)
    for i, rule in enumerate(rules, start=2):
        row = [counts.get((v, rule), 0) for v in villages]
        ws.write_string(i, 0, rule, cell)
        ws.write_row(i, 1, [*row, sum(row)], cell)
    ws.write_string(len(rules) + 2, 0, "需入户核查户数", head)
    ws.write_number(len(rules) + 2, 1, rows.height, cell)
    chart = wb.add_chart({"type": "column", "subtype": "stacked"})
    for i in range(2, len(rules) + 2):
        chart.add_series(
            {
                "name": ["汇总", i, 0],
                "categories": ["汇总", 1, 1, 1, len(villages)],
                "values": ["汇总", i, 1, i, len(villages)],
            }
        )
    chart.set_title({"name": "预警户数(按规则和行政村)"})
    chart.set_x_axis({"name": "行政村"})
    chart.set_y_axis({"name": "户数"})
    chart.set_size({"width": 720, "height": 400})
    ws.insert_chart(len(rules) + 4, 0, chart)
    ws.set_column(0, 0, 18)


def write_lists(
    flags: pl.DataFrame, register: pl.DataFrame, as_of: date, outbox: Path, on_step: Hook | None = None
) -> list[Path]:
    """One workbook (and CSV) per township with households to visit; the paths written.

    The night's folder is replaced as one step: every list is written aside, then all are
    moved into place together and the lists of an earlier attempt that are no longer due
    removed, so a kill leaves the previous lists or the new ones, never half a township.
    The scratch space is the outbox's, not the night's folder that cadres open.
    """
    rows = visit_list(flags, register)
    folder = outbox / as_of.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    recover(outbox)
    written = []
    with transaction(outbox, on_step) as tx:
        for (township,), part in rows.group_by("乡(镇)", maintain_order=True):
            name = township or "未知乡镇"
            path = folder / f"{name}.xlsx"
            tx.put(path, functools.partial(_workbook, part, name, as_of))
            tx.put(path.with_suffix(".csv"), functools.partial(_township_csv, part))
            written.append(path)
        for old in folder.iterdir():
            if old.is_file() and old.suffix in (".xlsx", ".csv") and old.with_suffix(".xlsx") not in written:
                tx.delete(old)
    return sorted(written)


def _township_csv(part: pl.DataFrame, path: Path) -> None:
    frame = (
        part.with_row_index("序号", offset=1)
        .with_columns(
            pl.col("首次预警日期").cast(pl.String),
            pl.lit("").alias("核查结果"),
            pl.lit("").alias("核查人"),
            pl.lit("").alias("核查日期"),
        )
        .select(LIST_COLUMNS)
    )
    write_csv(path, frame.columns, frame.iter_rows())


def write_stage_lists(stage: Stage, as_of: date, outbox: Path, on_step: Hook | None = None) -> list[Path]:
    """The lists of the night ``as_of`` from a stage's flags and register."""
    flags = stage.nightly("flags", as_of)
    register = stage.records("registry", as_of)
    if flags is None or register is None:
        raise GuardlineError(
            f"no flags for {as_of} in {stage.root}: run `guardline flag --as-of {as_of}` first"
        )
    return write_lists(flags, register, as_of, outbox, on_step)
