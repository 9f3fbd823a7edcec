"""The lists and the visits on hand-made frames: members named in the evidence, 已纳入
until the register shows the household monitored, and every bad row of a returned list
reported — in a workbook with a column added."""

from __future__ import annotations

from datetime import timedelta

import openpyxl
import polars as pl

from lists.write import write_lists
from staging.stage import Stage
from tests.test_lists_privacy import D, _flags, _register
from visits.returned import import_visits


def _sheet(path, name: str) -> list[dict]:
    ws = openpyxl.load_workbook(path)[name]
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    return [dict(zip(rows[0], r, strict=True)) for r in rows[1:] if r[0] not in (None, "(无)")]


def test_the_evidence_names_the_member_its_records_are_about(tmp_path):
    flags = _flags().with_columns(
        pl.when((pl.col("household_id") == "H1") & (pl.col("rule_id") == "medical_burden"))
        .then(pl.lit(["m1"]))
        .otherwise(pl.col("records"))
        .alias("records")
    )
    links = pl.DataFrame(
        {"source": ["health_insurance"], "source_record_id": ["m1"], "person_id": ["H1-1"], "match_status": ["matched"]}
    )
    path = write_lists(flags, _register(), D, tmp_path, links=links)[0]
    h1 = next(r for r in _sheet(path, "核查清单") if r["户编号"] == "H1")
    assert "38,200 元,占家庭年收入 64%(涉及:配偶)" in h1["预警依据"]
    assert "7,639 元" in h1["预警依据"] and h1["预警依据"].count("涉及") == 1, "a flag without records names nobody"


def test_an_identified_household_is_on_已纳入_until_the_register_shows_it_monitored(tmp_path):
    visits = pl.DataFrame(
        {
            "household_id": ["H3"],
            "rule_id": ["disaster_loss"],
            "list_date": [D - timedelta(days=5)],
            "result": ["符合，纳入监测"],
            "outcome": ["identified"],
            "visit_date": [D - timedelta(days=3)],
            "figure": [None],
            "sources": [""],
        },
        schema_overrides={"figure": pl.Float64},
    )
    waiting = write_lists(_flags(), _register(), D, tmp_path / "a", visits=visits)
    longtan = next(p for p in waiting if "龙潭镇" in p.name)
    assert _sheet(longtan, "核查清单") == [], "identified: off the warning list"
    assert [r["户编号"] for r in _sheet(longtan, "已纳入")] == ["H3"]
    monitored = _register().with_columns(
        pl.when(pl.col("household_id") == "H3").then(pl.lit("突发严重困难户")).alias("monitored_category"),
        pl.when(pl.col("household_id") == "H3").then(pl.lit("否")).alias("risk_eliminated"),
    )
    done = write_lists(_flags(), monitored, D, tmp_path / "b", visits=visits)
    assert not any("龙潭镇" in p.name for p in done), "the register shows it monitored: no list left to send"


def test_every_bad_row_of_a_returned_list_is_reported_with_its_field(tmp_path):
    stage = Stage(tmp_path / "stage")
    stage.save_nightly("flags", D, _flags())
    path = write_lists(_flags(), _register(), D, tmp_path / "outbox")[0]  # 双龙镇: H1, H2
    wb = openpyxl.load_workbook(path)
    ws = wb["核查清单"]
    ws.insert_cols(4)  # a column the cadre added
    ws.cell(row=2, column=4, value="村组长意见")
    header = [c.value for c in ws[2]]
    col = {name: header.index(name) + 1 for name in header if name}
    h1, h2 = (r for r in range(3, ws.max_row + 1) if ws.cell(row=r, column=col["户编号"]).value in ("H1", "H2"))
    for row, when in ((h1, D + timedelta(days=10)), (h2, D - timedelta(days=1))):
        ws.cell(row=row, column=col["核查结果"], value="不符合条件")
        ws.cell(row=row, column=col["核查日期"], value=when)
    extra = ws.max_row + 1
    for name, value in (("清单日期", D.isoformat()), ("户编号", "H9"), ("核查结果", "不符合条件"), ("核查日期", D)):
        ws.cell(row=extra, column=col[name], value=value)
    returned = tmp_path / "改过的清单.xlsx"
    wb.save(returned)
    (result,) = import_visits(stage, [returned], today=D + timedelta(days=3), recorded_by="test")
    assert [(p.row, p.field) for p in result.problems] == [(h1, "核查日期"), (h2, "核查日期"), (extra, "户编号")]
    reasons = [p.reason for p in result.problems]
    assert "in the future" in reasons[0] and "before the list's date" in reasons[1] and "not a household" in reasons[2]
    assert result.visits == 0 and stage.visits() is None, "a row with a problem records nothing"
