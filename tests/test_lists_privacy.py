"""Township lists read back from the workbooks, and the analysts' masks and pseudonyms."""

from __future__ import annotations

import csv
import hashlib
import hmac
import zipfile
from datetime import date

import openpyxl
import polars as pl
import pytest

from guardline.errors import GuardlineError
from lists.rows import LIST_COLUMNS, VISIT_COLUMNS
from lists.write import write_lists
from warehouse.privacy import KEY_VARIABLE, mask_id, mask_phone, pseudonym_key, pseudonyms

D = date(2026, 11, 27)


def _register() -> pl.DataFrame:
    rows = []
    for hid, town, village, name in (
        ("H1", "双龙镇", "十八洞村", "张伟"),
        ("H2", "双龙镇", "金坪村", "李娜"),
        ("H3", "龙潭镇", "石溪村", "王芳"),
    ):
        rows.append(
            {
                "household_id": hid,
                "county": "花垣县",
                "person_id": f"{hid}-0",
                "relation": "户主",
                "township": town,
                "village": village,
                "name": name,
                "id_number": "43312419700101123X",
                "phone": "13800005678",
                "household_size": 3,
                "household_type": "脱贫户",
                "monitored_category": None,
                "risk_eliminated": None,
            }
        )
        rows.append({**rows[-1], "person_id": f"{hid}-1", "relation": "配偶", "name": "配偶"})
    return pl.DataFrame(rows, schema_overrides={"monitored_category": pl.String, "risk_eliminated": pl.String})


def _flags() -> pl.DataFrame:
    return pl.DataFrame(
        [
            (
                "H1",
                "medical_burden",
                "因病支出骤增",
                "medium",
                "医疗救助",
                "近12个月医疗个人负担 38,200 元,占家庭年收入 64%",
                "new",
                D,
            ),
            (
                "H1",
                "below_line",
                "收入低于监测线",
                "high",
                "产业帮扶",
                "预计人均年收入 7,639 元,低于监测线 8,700 元",
                "continuing",
                date(2026, 10, 1),
            ),
            (
                "H2",
                "new_social_assistance",
                "新纳入社会救助",
                "low",
                "兜底保障",
                "近90天获临时救助",
                "new",
                D,
            ),
            (
                "H3",
                "disaster_loss",
                "因灾",
                "high",
                "住房救助",
                "近12个月受灾,房屋倒塌,直接经济损失 90,000 元",
                "new",
                D,
            ),
            ("H2", "income_drop", "收入骤减", "medium", "就业帮扶", "resolved sentence", "resolved", D),
        ],
        schema=[
            "household_id",
            "rule_id",
            "rule_name",
            "severity",
            "assistance",
            "sentence",
            "status",
            "first_flagged_date",
        ],
        orient="row",
    ).with_columns(pl.lit('{"figures": {}}').alias("evidence"), pl.lit([], pl.List(pl.String)).alias("records"))


def test_one_workbook_per_township_one_row_per_household(tmp_path):
    paths = write_lists(_flags(), _register(), D, tmp_path)
    assert [p.name for p in paths] == ["花垣县双龙镇_预警核查清单_20261127.xlsx", "花垣县龙潭镇_预警核查清单_20261127.xlsx"]
    ws = openpyxl.load_workbook(paths[0])["核查清单"]
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    assert rows[0] == LIST_COLUMNS
    body = [dict(zip(LIST_COLUMNS, r, strict=True)) for r in rows[1:]]
    assert [r["户编号"] for r in body] == ["H1", "H2"], "by village (十八洞村 before 金坪村), then severity"
    h1 = body[0]
    assert h1["风险等级"] == "高" and h1["预警规则"] == "收入低于监测线、因病支出骤增"
    assert "38,200 元" in h1["预警依据"] and "7,639 元" in h1["预警依据"]
    assert h1["本期状态"] == "持续·逾期" and h1["首次预警日期"] == "2026-10-01", "listed 57 days ago, never visited"
    assert body[1]["本期状态"] == "新增" and body[1]["预警规则"] == "新纳入社会救助", (
        "resolved flags are not visits"
    )
    assert h1["户主证件号码"] == "43312419700101123X", "monitoring staff read full identifiers"
    assert h1["清单日期"] == "2026-11-27" and all(h1[c] is None for c in VISIT_COLUMNS)


def test_the_workbook_prints_and_fills_in_as_a_cadre_needs(tmp_path):
    """A4 landscape fitted to the width, title and header on every page, township and
    date in the page header, page numbers; IDs as text; 核查结果 a dropdown of the
    vocabulary and 核查日期 a date; only the visit columns editable; 说明 and 已纳入 sheets."""
    from visits.config import VisitConfig

    path = write_lists(_flags(), _register(), D, tmp_path)[0]
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["核查清单", "已纳入", "汇总", "说明"]
    ws = wb["核查清单"]
    setup = ws.page_setup
    # fitToWidth 1 is the file format's default: written as absent
    assert (setup.orientation, setup.paperSize, setup.fitToWidth or 1, setup.fitToHeight) == ("landscape", 9, 1, 0)
    assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.print_title_rows == "$1:$2"
    assert "双龙镇" in ws.oddHeader.left.text and "2026-11-27" in ws.oddHeader.right.text and "&P" in ws.oddFooter.center.text
    assert ws.protection.sheet and not ws.protection.password and ws.protection.sort is False  # False: allowed
    header = [c.value for c in ws[2]]
    first = {name: ws.cell(row=3, column=header.index(name) + 1) for name in header}
    assert first["户编号"].data_type == "s" and first["户主证件号码"].data_type == "s"
    assert {n for n, c in first.items() if not c.protection.locked} == set(VISIT_COLUMNS)
    assert first["核查日期"].number_format == "yyyy-mm-dd"
    validations = {str(v.sqref).split(":")[0][0]: v for v in ws.data_validations.dataValidation}
    letter = lambda name: openpyxl.utils.get_column_letter(header.index(name) + 1)  # noqa: E731
    assert validations[letter("核查结果")].type == "list"
    assert validations[letter("核查结果")].formula1.strip('"').split(",") == VisitConfig.load().choices
    assert validations[letter("核查日期")].type == "date"
    assert ws.column_dimensions[letter("户编号")].width >= 16 and ws.column_dimensions[letter("清单日期")].hidden
    guide = " ".join(str(c) for r in wb["说明"].iter_rows(values_only=True) for c in r if c)
    assert all(word in guide for word in ("因病支出骤增", "入户", "核查结果", "交回", "逾期"))


def test_summary_sheet_counts_households_and_a_csv_stands_beside(tmp_path):
    paths = write_lists(_flags(), _register(), D, tmp_path)
    wb = openpyxl.load_workbook(paths[0])
    summary = list(wb["汇总"].iter_rows(values_only=True))
    assert summary[1][:3] == ("预警规则", "十八洞村", "金坪村")
    totals = next(r for r in summary if r[0] and str(r[0]).startswith("需核查户数"))
    assert totals[1:4] == (1, 1, 2), "H1 has two rules and counts once"
    with zipfile.ZipFile(paths[0]) as z:
        charts = [n for n in z.namelist() if n.startswith("xl/charts/chart")]
        chart = z.read(charts[0]).decode()
    assert '<c:majorUnit val="1"/>' in chart, "whole households on the axis, no half-household ticks"
    with open(paths[0].with_suffix(".csv"), encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == LIST_COLUMNS and len(rows) == 3


def test_masks_keep_what_the_contract_says():
    frame = pl.DataFrame({"id": ["433124197001011234", None], "phone": ["13800005678", None]})
    out = frame.select(mask_id(pl.col("id")), mask_phone(pl.col("phone")))
    assert out.row(0) == ("433124********1234", "138****5678")
    assert out.row(1) == (None, None)


@pytest.mark.parametrize("key", [b"k" * 16, b"a key longer than SHA-256's block " * 3, "钥匙-0123456789abcdef".encode()])
def test_a_pseudonym_is_the_hmac_sha256_of_its_domain_and_value_in_letters(key):
    values = ["433124197001011234", "黄小明", "", "hi:2026:000001"]
    letters = str.maketrans("0123456789abcdef", "abcdefghijklmnop")
    for domain in ("", "record:"):
        expected = [
            hmac.new(key, (domain + v).encode(), hashlib.sha256).hexdigest()[:20].translate(letters) for v in values
        ]
        assert pseudonyms(pl.Series(values), key, domain).to_list() == expected


def test_pseudonyms_are_keyed_and_stable(monkeypatch):
    values = pl.Series(["433124197001011234", "433124197001011234", "110105194912310021", None])
    a = pseudonyms(values, b"k" * 16)
    assert a[0] == a[1] and a[0] != a[2] and a[3] is None and len(a[0]) == 20
    assert pseudonyms(values, b"k" * 16).equals(a)
    assert pseudonyms(values, b"j" * 16)[0] != a[0]
    monkeypatch.delenv(KEY_VARIABLE, raising=False)
    with pytest.raises(GuardlineError, match=KEY_VARIABLE):
        pseudonym_key()
    assert pseudonym_key(demo=True)
    monkeypatch.setenv(KEY_VARIABLE, "short")
    with pytest.raises(GuardlineError, match="too weak"):
        pseudonym_key()
    monkeypatch.setenv(KEY_VARIABLE, "a-real-secret-of-enough-length")
    assert pseudonym_key() == b"a-real-secret-of-enough-length"
