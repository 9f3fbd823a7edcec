"""The civil affairs department's delivery: one xlsx of social-assistance changes per
month (``inbox/civil_affairs/mz_changes_{ym}.xlsx``), numbered rows under the bureau's
title; a row's key is its ID cell, name, category and approval date."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synth import civil_affairs
from synth.deliver import Delivered, Presenter, key_of, month_files, unique_keys
from synth.noisy import Fields, noisy_rows, reset_identity
from synth.world import World
from synth.writers import write_xlsx

CIVIL_HEADER = (
    "序号",
    "姓名",
    "身份证号码",
    "救助类别",
    "变动类型",
    "保障人数",
    "月保障金额(元)",
    "临时救助金额(元)",
    "审批日期",
    "户籍地址",
    "联系电话",
    "备注",
)


def deliver_civil(world: World, records: list[dict[str, Any]], folder: Path) -> Delivered:
    out = Delivered("civil_affairs")
    fields = Fields("civil_affairs", "身份证号码", "姓名", per_identity=False)
    remarks = civil_affairs.REMARKS
    correct = {
        "备注": lambda r, rng: remarks[int(rng.integers(len(remarks)))] or "更正",
        "联系电话": lambda r, rng: f"1{rng.choice([3, 5, 8])}{rng.integers(0, 10**9):09d}",
    }
    rows = noisy_rows(world, records, fields, "审批日期", correct, out)
    present = Presenter(world.noise, world.rng, out.defects, world.exposure, world.applied)
    for row in rows:
        row["_id_cell"] = present.id_cell(
            row["_uid"], row["身份证号码"], row["_true_id"], row["_id_defects"], xlsx=True
        )
    key = key_of(("_id_cell", "姓名", "救助类别", "审批日期"))
    reset = reset_identity(fields)
    unique_keys(rows, key, lambda r: (reset(r), r.update(_id_cell=r["身份证号码"])))
    first = world.days_ago(civil_affairs.HISTORY_DAYS)
    addresses: dict[int, str] = {}
    for name, file_rows in month_files(rows, world.as_of, first, "mz_changes_{ym}.xlsx").items():
        ym = name[-11:-5]
        table = []
        for n, r in enumerate(file_rows, start=1):
            uid = r["_uid"]
            if uid not in addresses:
                addresses[uid] = (
                    f"{world.county.name}{present.place(uid, '户籍地址', r['_township'])}"
                    f"{present.place(uid, '户籍地址', r['_village'])}{r['_group']}组"
                )
            addr = addresses[uid]
            table.append(
                [
                    n,
                    r["姓名"],
                    r["_id_cell"],
                    r["救助类别"],
                    r["变动类型"],
                    r["保障人数"],
                    present.amount(uid, "月保障金额(元)", r["月保障金额(元)"], xlsx=True),
                    present.amount(uid, "临时救助金额(元)", r["临时救助金额(元)"], xlsx=True),
                    present.date(uid, "审批日期", r["审批日期"], xlsx=True),
                    addr,
                    r["联系电话"],
                    r["备注"],
                ]
            )
            out.add(uid, key(r), f"civil_affairs/{name}", r.get("_copy") or "")
        title = f"{world.county.name}民政局社会救助对象变动明细({ym[:4]}年{int(ym[4:])}月)"
        write_xlsx(folder / name, "Sheet1", CIVIL_HEADER, table, title=title)
    return out
