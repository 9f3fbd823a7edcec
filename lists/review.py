"""The review workbook: the records matching could not decide, each beside its candidates,
in Chinese, for a person of the monitoring side to decide in (是同一人 / 不是 / 无法判断).

One row per (record, candidate): the record's name, masked ID, place, date and source
beside the candidate's name, masked ID, village and household, the probability and the
reasons for and against. ``guardline review import`` reads the 判断 column back
(``matching.review``). The same rows go to a CSV beside the workbook.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import polars as pl
import xlsxwriter

from connectors.sources import BY_STAGE_NAME, RECORD_STAGES
from guardline.csvsafe import write_csv
from matching.review import CHOICES, SOURCE_WORDS
from staging.stage import Stage
from warehouse.privacy import mask_id

COLUMNS = (
    "来源",
    "记录编号",
    "记录姓名",
    "记录证件号码",
    "记录地址或村",
    "记录日期",
    "候选人编号",
    "候选户编号",
    "候选人姓名",
    "候选人证件号码",
    "候选人村",
    "概率",
    "依据",
    "判断",
)
WIDTHS = (7, 24, 9, 20, 16, 11, 18, 18, 9, 20, 10, 7, 60, 12)


def _records(stage: Stage, night: date) -> pl.DataFrame:
    """Every department record the night saw: source, key, name, ID, place and date as delivered."""
    frames = []
    for name in RECORD_STAGES:
        records = stage.records(name, night)
        if records is None or records.height == 0:
            continue
        source = BY_STAGE_NAME[name]
        ident = source.identity
        place = pl.concat_str([pl.col(c) for c in ident.place], separator=" ", ignore_nulls=True) if ident.place else pl.lit("")
        frames.append(
            records.select(
                pl.lit(source.name).alias("source"),
                "source_record_id",
                pl.col(ident.name).alias("记录姓名"),
                mask_id(pl.col(ident.id_number)).alias("记录证件号码"),
                place.alias("记录地址或村"),
                pl.col("event_date").cast(pl.String).alias("记录日期"),
            )
        )
    return pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame(schema={"source": pl.String, "source_record_id": pl.String})


def review_rows(links: pl.DataFrame, stage: Stage, night: date) -> pl.DataFrame:
    """One row per candidate of every record in review, in the workbook's columns."""
    review = links.filter(pl.col("match_status") == "review")
    pairs = [
        (source, record, c["person_id"], c["household_id"], c["probability"], c["reasons"])
        for source, record, candidates in review.select("source", "source_record_id", "candidates").iter_rows()
        for c in json.loads(candidates or "[]")
    ]
    frame = pl.DataFrame(
        pairs, schema=["source", "source_record_id", "候选人编号", "候选户编号", "概率", "依据"], orient="row"
    )
    persons = stage.records("registry", night)
    people = persons.select(
        pl.col("person_id").alias("候选人编号"),
        pl.col("name").alias("候选人姓名"),
        mask_id(pl.col("id_number")).alias("候选人证件号码"),
        pl.col("village").alias("候选人村"),
    )
    return (
        frame.join(_records(stage, night), on=["source", "source_record_id"], how="left")
        .join(people, on="候选人编号", how="left")
        .with_columns(
            pl.col("source").replace_strict(SOURCE_WORDS, default=pl.col("source")).alias("来源"),
            pl.col("source_record_id").alias("记录编号"),
            pl.lit("").alias("判断"),
        )
        .sort("来源", "记录编号", pl.col("概率"), descending=[False, False, True])
        .select(COLUMNS)
    )


def write_review(rows: pl.DataFrame, path: Path) -> list[Path]:
    """The workbook at ``path`` (.xlsx) and its CSV beside it; or only the CSV when
    ``path`` names one. The paths written."""
    csv_path = path.with_suffix(".csv")
    write_csv(csv_path, COLUMNS, rows.iter_rows())
    if path.suffix.lower() != ".xlsx":
        return [csv_path]
    wb = xlsxwriter.Workbook(str(path))
    head = wb.add_format({"font_name": "宋体", "bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True})
    cell = wb.add_format({"font_name": "宋体", "border": 1, "text_wrap": True, "valign": "top"})
    record = wb.add_format({"font_name": "宋体", "border": 1, "text_wrap": True, "valign": "top", "bg_color": "#FFF2CC"})
    decide = wb.add_format({"font_name": "宋体", "border": 1, "locked": False, "bg_color": "#F2F2F2"})
    ws = wb.add_worksheet("待审核")
    ws.set_landscape()
    ws.set_paper(9)
    ws.fit_to_pages(1, 0)
    ws.repeat_rows(0)
    ws.write_row(0, 0, COLUMNS, head)
    for j, width in enumerate(WIDTHS):
        ws.set_column(j, j, width)
    for i, row in enumerate(rows.iter_rows(), start=1):
        for j, value in enumerate(row):
            name = COLUMNS[j]
            if name == "判断":
                ws.write_blank(i, j, None, decide)
            elif name == "概率":
                ws.write_number(i, j, float(value or 0), cell)
            else:
                ws.write_string(i, j, "" if value is None else str(value), record if name.startswith("记录") else cell)
    last = max(rows.height, 1)
    ws.data_validation(
        1,
        len(COLUMNS) - 1,
        last,
        len(COLUMNS) - 1,
        {"validate": "list", "source": list(CHOICES), "error_message": "请选择:" + " / ".join(CHOICES)},
    )
    ws.freeze_panes(1, 2)
    ws.autofilter(0, 0, last, len(COLUMNS) - 1)
    ws.protect("", {"sort": True, "autofilter": True, "format_columns": True, "format_rows": True, "select_locked_cells": True, "select_unlocked_cells": True})
    wb.close()
    return [path, csv_path]
