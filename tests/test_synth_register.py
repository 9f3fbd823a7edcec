"""The register: format of the export and plausibility of the people in it."""

from __future__ import annotations

from collections import Counter
from datetime import date
from functools import cache
from pathlib import Path

import polars as pl
import pytest

from guardline import idnumber
from synth.deliver_register import REGISTER_HEADER
from tests.conftest import AS_OF
from tests.deliveries import read_csv, read_xlsx


def _register(summary):
    folder = summary.out / "inbox" / "registry"
    (path,) = list(folder.iterdir())
    return path, _rows(path)


@cache
def _rows(path: Path) -> list[dict]:
    if path.suffix == ".xlsx":
        return read_xlsx(path, header_row=3)
    return read_csv(path, "utf-8-sig")


def test_xlsx_export_has_two_title_rows_then_the_header(county):
    import openpyxl

    path, rows = _register(county)
    ws = openpyxl.load_workbook(path).worksheets[0]
    assert "防返贫监测信息系统" in ws.cell(1, 1).value
    assert ws.merged_cells.ranges, "the title rows are merged cells"
    assert tuple(c.value for c in ws[3]) == REGISTER_HEADER
    assert len(rows) == county.persons
    assert all(isinstance(r["证件号码"], str) and isinstance(r["户编号"], str) for r in rows)


def test_csv_export_is_utf8_sig_with_header_on_row_one(clean_county):
    path, rows = _register(clean_county)
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert tuple(rows[0]) == REGISTER_HEADER
    assert len(rows) == clean_county.persons
    assert all(r["户编号"].startswith("0") for r in rows), "opaque IDs keep leading zeros"


def test_every_register_id_is_valid_and_agrees_with_sex_and_age(county):
    _, rows = _register(county)
    assert len({r["证件号码"] for r in rows}) == len(rows)
    for r in rows:
        assert idnumber.is_valid(r["证件号码"]), r
        assert idnumber.sex(r["证件号码"]) == r["性别"]
        assert idnumber.birth_date(r["证件号码"]) <= AS_OF


def test_relations_have_consistent_ages(county):
    _, rows = _register(county)
    frame = pl.DataFrame(rows).with_columns(
        pl.col("证件号码")
        .map_elements(lambda s: idnumber.birth_date(s).year, return_dtype=pl.Int64)
        .alias("born")
    )
    head = frame.filter(pl.col("与户主关系") == "户主").select("户编号", pl.col("born").alias("head_born"))
    joined = frame.join(head, on="户编号")
    children = joined.filter(pl.col("与户主关系").is_in(["之子", "之女"]))
    parents = joined.filter(pl.col("与户主关系").is_in(["之父", "之母"]))
    assert (children["born"] - children["head_born"]).min() >= 15
    assert (parents["head_born"] - parents["born"]).min() >= 15
    assert head.height == frame["户编号"].n_unique(), "one 户主 per household"
    spouses = joined.filter(pl.col("与户主关系") == "配偶")
    assert spouses.height > 0.6 * head.height


def test_households_look_like_a_rural_county(county):
    _, rows = _register(county)
    frame = pl.DataFrame(rows)
    sizes = frame.group_by("户编号").len()["len"]
    assert 3.0 <= sizes.mean() <= 3.6
    heads = frame.filter(pl.col("与户主关系") == "户主")
    poor = (heads["户类型"] == "脱贫户").mean()
    assert 0.2 <= poor <= 0.36
    monitored = heads.filter(pl.col("监测对象类别") != "")
    assert 0.01 <= monitored.height / heads.height <= 0.1
    assert set(monitored["风险是否已消除"]) == {"是", "否"}
    assert set(heads.filter(pl.col("监测对象类别") == "")["风险是否已消除"]) <= {"", None}


def test_household_size_column_matches_members(county):
    _, rows = _register(county)
    frame = pl.DataFrame(rows)
    counted = frame.group_by("户编号").agg(pl.len().alias("n"), pl.col("人数").first().cast(pl.Int64))
    assert (counted["n"] == counted["人数"]).all()


def test_names_follow_real_surname_frequencies_and_include_hard_cases(county):
    _, rows = _register(county)
    names = [r["姓名"] for r in rows]
    surnames = Counter(n[0] for n in names if "·" not in n)
    top = {s for s, _ in surnames.most_common(6)}
    assert {"王", "李", "张"} <= top
    assert any("·" in n for n in names), "minority names with a middle dot"
    assert any(n[0] in "曾单解仇" for n in names), "polyphonic surnames"
    per_village = Counter((r["行政村"], r["姓名"]) for r in rows)
    assert max(per_village.values()) >= 3, "several people of one common name in one village"


def test_incomes_are_consistent(county):
    _, rows = _register(county)
    for r in rows:
        per_capita = float(r["人均纯收入（元）"])
        assert per_capita > 0
        assert float(r["工资性收入"]) >= 0 and float(r["生产经营性收入"]) >= 0
    assert date.fromisoformat("2026-11-26").strftime("%Y%m%d") in _register(county)[0].name


@pytest.mark.parametrize(("code", "name"), [("433125", "保靖县"), ("431226", "麻阳苗族自治县")])
def test_another_county_has_its_own_name_and_keys(clean_county, tmp_path, code, name):
    """Counties made with different codes can share a warehouse: nothing of theirs collides."""
    from synth.generate import generate

    other = generate(
        tmp_path, households=60, seed=3, as_of=AS_OF, noise="clean", register_format="csv", county=code
    )
    _, rows = _register(other)
    _, first = _register(clean_county)
    assert {r["县"] for r in rows} == {name} and {r["县"] for r in first} == {"花垣县"}
    assert all(r["户编号"].startswith(f"0{code}") and r["人编号"].startswith(f"0{code}") for r in rows)
    assert not {r["人编号"] for r in rows} & {r["人编号"] for r in first}
    assert not {r["证件号码"] for r in rows} & {r["证件号码"] for r in first}
    settlements = read_csv(sorted((tmp_path / "inbox" / "health_insurance").iterdir())[-1], "gbk")
    assert all(r["结算流水号"].startswith(code) for r in settlements)
    manifest = (tmp_path / "truth" / "manifest.json").read_text(encoding="utf-8")
    assert f'"county": "{code}"' in manifest
