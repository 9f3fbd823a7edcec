"""The health insurance department's delivery: one GBK csv of settlements per month
(``inbox/health_insurance/yb_settlement_{ym}.csv``), its rows shuffled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synth import health_insurance
from synth.deliver import Delivered, Presenter, month_files
from synth.noisy import Fields, noisy_rows
from synth.world import World
from synth.writers import write_csv

HEALTH_HEADER = (
    "结算流水号",
    "结算类型",
    "原结算流水号",
    "姓名",
    "证件类型",
    "证件号码",
    "参保地区划",
    "就诊类别",
    "定点医药机构名称",
    "入院日期",
    "出院日期",
    "结算日期",
    "医疗费总额",
    "统筹基金支付",
    "大病保险支付",
    "医疗救助支付",
    "个人自付",
    "个人自费",
)
HEALTH_MONEY = HEALTH_HEADER[12:]


def deliver_health(world: World, records: list[dict[str, Any]], folder: Path) -> Delivered:
    out = Delivered("health_insurance")
    fields = Fields("health_insurance", "证件号码", "姓名", per_identity=True, gbk=True)
    hospitals = health_insurance.HOSPITALS

    def another_hospital(r: dict, rng) -> str:  # a correction that changes nothing would be a duplicate
        others = [h for h in hospitals if h != r["定点医药机构名称"]]
        return others[int(rng.integers(len(others)))]

    correct = {"定点医药机构名称": another_hospital}
    rows = noisy_rows(world, records, fields, "结算日期", correct, out)
    present = Presenter(world.noise, world.rng, out.defects, world.exposure, world.applied)
    first = world.days_ago(health_insurance.HISTORY_DAYS)
    for name, file_rows in month_files(rows, world.as_of, first, "yb_settlement_{ym}.csv").items():
        order = world.rng.permutation(len(file_rows))
        table = []
        for i in order:
            r = file_rows[int(i)]
            uid = r["_uid"]
            table.append(
                [
                    r["结算流水号"],
                    r["结算类型"],
                    r["原结算流水号"],
                    r["姓名"],
                    r["证件类型"],
                    present.id_cell(uid, r["证件号码"], r["_true_id"], r["_id_defects"], xlsx=False),
                    r["参保地区划"],
                    r["就诊类别"],
                    r["定点医药机构名称"],
                    present.date(uid, "入院日期", r["入院日期"], xlsx=False),
                    present.date(uid, "出院日期", r["出院日期"], xlsx=False),
                    present.date(uid, "结算日期", r["结算日期"], xlsx=False),
                    *(present.amount(uid, m, r[m], xlsx=False) for m in HEALTH_MONEY),
                ]
            )
            out.add(uid, r["结算流水号"].strip(), f"health_insurance/{name}", r.get("_copy") or "")
        write_csv(folder / name, HEALTH_HEADER, table, "gbk")
    return out
