"""The emergency management department's delivery: one file per disaster
(``inbox/emergency_management/yj_{id}.xlsx`` or ``.csv``, each disaster in its own
format), corrections as a ``yj_{id}_fuhe.xlsx`` 复核 file; a row's key is the disaster and the
head's ID cell, or the disaster, township, village and name where the ID is blank."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synth.deliver import Delivered, Presenter, key_of, unique_keys
from synth.noisy import Fields, noisy_rows, reset_identity
from synth.world import World
from synth.writers import write_csv, write_xlsx

DISASTER_HEADER = (
    "灾害编号",
    "灾害种类",
    "灾害发生日期",
    "乡镇",
    "行政村",
    "户主姓名",
    "户主身份证号",
    "家庭人口",
    "房屋受损情况",
    "农作物受灾面积(亩)",
    "农作物绝收面积(亩)",
    "直接经济损失(元)",
    "核查日期",
)


def deliver_disaster(world: World, events: list, records: list[dict[str, Any]], folder: Path) -> Delivered:
    out = Delivered("emergency_management")
    fields = Fields("emergency_management", "户主身份证号", "户主姓名", per_identity=False)
    correct = {
        "农作物受灾面积(亩)": lambda r, rng: round(float(r["农作物受灾面积(亩)"]) + 0.5, 1),
        "核查日期": lambda r, rng: r["核查日期"],
    }
    rows = noisy_rows(world, records, fields, "灾害发生日期", correct, out)
    present = Presenter(world.noise, world.rng, out.defects, world.exposure, world.applied)
    by_event = {e.disaster_id: e for e in events}
    places: dict[int, tuple[str, str]] = {}
    for row in rows:
        # Corrections arrive as a 复核 xlsx whatever the first delivery's format was.
        xlsx = row.get("_copy") == "supersede" or by_event[row["_event"]].fmt == "xlsx"
        row["_id_cell"] = present.id_cell(
            row["_uid"], row["户主身份证号"], row["_true_id"], row["_id_defects"], xlsx=xlsx
        )
        if row["_uid"] not in places:
            places[row["_uid"]] = (
                present.place(row["_uid"], "乡镇", row["乡镇"]),
                present.place(row["_uid"], "行政村", row["行政村"]),
            )
        row["乡镇"], row["行政村"] = places[row["_uid"]]

    def key(r: dict[str, Any]) -> str:
        if str(r["_id_cell"]).strip() == "":
            return key_of(("灾害编号", "乡镇", "行政村", "户主姓名"))(r)
        return key_of(("灾害编号", "_id_cell"))(r)

    reset = reset_identity(fields)
    unique_keys(rows, key, lambda r: (reset(r), r.update(_id_cell=r["户主身份证号"])))
    files: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        event = by_event[row["_event"]]
        name = (
            f"yj_{event.disaster_id}_fuhe.xlsx"
            if row.get("_copy") == "supersede"
            else f"yj_{event.disaster_id}.{event.fmt}"
        )
        files.setdefault(name, []).append(row)
    for name, file_rows in sorted(files.items()):
        xlsx = name.endswith(".xlsx")
        table = []
        for r in file_rows:
            uid = r["_uid"]
            table.append(
                [
                    r["灾害编号"],
                    r["灾害种类"],
                    present.date(uid, "灾害发生日期", r["灾害发生日期"], xlsx),
                    r["乡镇"],
                    r["行政村"],
                    r["户主姓名"],
                    r["_id_cell"],
                    r["家庭人口"],
                    r["房屋受损情况"],
                    r["农作物受灾面积(亩)"] if xlsx else f"{r['农作物受灾面积(亩)']:.1f}",
                    r["农作物绝收面积(亩)"] if xlsx else f"{r['农作物绝收面积(亩)']:.1f}",
                    present.amount(uid, "直接经济损失(元)", r["直接经济损失(元)"], xlsx),
                    present.date(uid, "核查日期", r["核查日期"], xlsx),
                ]
            )
            out.add(uid, key(r), f"emergency_management/{name}", r.get("_copy") or "")
        if xlsx:
            write_xlsx(folder / name, "灾情核查", DISASTER_HEADER, table)
        else:
            write_csv(folder / name, DISASTER_HEADER, table, "utf-8-sig")
    return out
