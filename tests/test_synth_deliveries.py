"""The four departments' deliveries: formats, keys, truth, outsiders, defect rates."""

from __future__ import annotations

import json
import math
import sqlite3
import unicodedata
from functools import cache
from pathlib import Path

import openpyxl
import polars as pl
import pytest
from opencc import OpenCC
from pypinyin import Style, lazy_pinyin

from guardline import idnumber
from synth.deliver_civil import CIVIL_HEADER
from synth.deliver_disaster import DISASTER_HEADER
from synth.deliver_health import HEALTH_HEADER
from synth.deliver_hr import EVENT_COLUMNS
from synth.noise import NoiseProfile, load_settings
from tests import deliveries


@cache
def _read(out: Path) -> dict[str, list[dict]]:
    inbox = out / "inbox"
    events, contributions = deliveries.hr(inbox)
    return {
        "health_insurance": deliveries.health(inbox),
        "civil_affairs": deliveries.civil(inbox),
        "emergency_management": deliveries.disaster(inbox),
        "human_resources": events + contributions,
    }


def _links(out: Path) -> pl.DataFrame:
    return pl.read_csv(out / "truth" / "links.csv", infer_schema=False)


def test_files_are_in_their_declared_formats(county):
    inbox = county.out / "inbox"
    for path in (inbox / "health_insurance").glob("*.csv"):
        raw = path.read_bytes()
        text = raw.decode("gbk")
        assert text.split("\r\n", 1)[0].split(",") == list(HEALTH_HEADER)
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")  # real GBK, not UTF-8 that happens to decode
    for path in (inbox / "civil_affairs").glob("*.xlsx"):
        ws = openpyxl.load_workbook(path).worksheets[0]
        assert ws.cell(1, 1).value.startswith("花垣县民政局社会救助对象变动明细(")
        assert next(str(r) for r in ws.merged_cells.ranges).startswith("A1:")
        assert tuple(c.value for c in ws[2]) == CIVIL_HEADER
    kinds = {p.suffix for p in (inbox / "emergency_management").iterdir()}
    assert kinds == {".xlsx", ".csv"}
    for path in (inbox / "emergency_management").glob("*.xlsx"):
        wb = openpyxl.load_workbook(path, read_only=True)
        assert wb.sheetnames == ["灾情核查"]
        assert next(wb["灾情核查"].iter_rows(values_only=True)) == DISASTER_HEADER
    for path in (inbox / "emergency_management").glob("*.csv"):
        assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    con = sqlite3.connect(inbox / "human_resources" / "exchange.sqlite")
    cols = {
        t: [(c[1], c[2]) for c in con.execute(f"pragma table_info({t})")]
        for t in ("rs_employment_event", "rs_contribution_month")
    }
    assert cols["rs_contribution_month"] == [
        ("aac002", "TEXT"),
        ("aac003", "TEXT"),
        ("period", "INTEGER"),
        ("wage_base", "NUMERIC"),
        ("status", "TEXT"),
    ]
    assert [c for c, _ in cols["rs_employment_event"]] == list(EVENT_COLUMNS)
    periods = [r[0] for r in con.execute("select distinct period from rs_contribution_month order by 1")]
    assert len(periods) == 18 and periods[-1] == 202610
    assert {r[0] for r in con.execute("select distinct status from rs_contribution_month")} == {
        "正常缴费",
        "中断",
        "补缴",
    }


def test_every_delivered_row_has_a_truth_link_and_every_link_a_row(county):
    links = _links(county.out)
    for source, rows in _read(county.out).items():
        delivered = {r["_key"] for r in rows}
        truth = set(links.filter(pl.col("source") == source)["source_record_id"])
        assert delivered == truth, source
        assert links.filter(pl.col("source") == source)["source_record_id"].is_unique().all()


def test_manifest_counts_reconcile_with_the_files(county):
    manifest = json.loads((county.out / "truth" / "manifest.json").read_text(encoding="utf-8"))
    rows = _read(county.out)
    for entry in manifest["sources"]:
        source = entry["source"]
        assert entry["rows"] == len(rows[source])
        assert entry["records"] == len({r["_key"] for r in rows[source]})
        assert entry["rows"] == entry["records"] + entry["duplicate_rows"] + entry["superseded_rows"]


def test_about_a_tenth_of_records_are_outsiders_some_named_like_locals(county):
    links = _links(county.out)
    share = links.group_by("source").agg(pl.col("person_id").is_null().mean().alias("out"))
    for source, out in share.iter_rows():
        assert 0.06 <= out <= 0.16, (source, out)
    register = gen_register_names(county)
    outsiders = {
        r["姓名"]
        for r in _read(county.out)["health_insurance"]
        if r["_key"] in set(links.filter(pl.col("person_id").is_null())["source_record_id"])
    }
    assert len(outsiders & register) > 0.1 * len(outsiders), "namesakes of registered people"


def gen_register_names(county) -> set[str]:
    return {r["姓名"] for r in _register_by_person(county).values()}


def test_defect_rates_match_the_profile(county):
    manifest = json.loads((county.out / "truth" / "manifest.json").read_text(encoding="utf-8"))
    profile = NoiseProfile.load("default")
    rates = {**profile.id, **profile.name_defects, **profile.rates}
    seen = manifest["defects"]
    for kind, rate in rates.items():
        n, k = seen[kind]["exposure"], seen[kind]["applied"]
        assert n > 0, f"{kind}: never had a chance"
        expected = n * rate
        tolerance = 4 * math.sqrt(expected * (1 - rate)) + 3
        assert abs(k - expected) <= tolerance, f"{kind}: {k} of {n}, expected {expected:.0f}"
        assert k > 0, f"{kind} never happened"


def _register_by_person(county) -> dict[str, dict]:
    return _register_rows(next((county.out / "inbox" / "registry").iterdir()))


@cache
def _register_rows(path: Path) -> dict[str, dict]:
    return {r["人编号"]: r for r in deliveries.read_xlsx(path, 3)}


def _classify_id(delivered, true_id: str) -> str | None:
    """Which defect turned ``true_id`` into ``delivered``: an independent reading."""
    if isinstance(delivered, float):
        return "excel_float" if int(delivered) // 10**3 == int(true_id[:15]) else "?"
    text = str(delivered or "")
    if text == true_id:
        return None
    if text == "":
        return "empty"
    if text.startswith("'") and text[1:] == true_id:
        return "apostrophe"
    if text.replace(" ", "").replace("\u3000", "") == true_id:
        return "spaces"
    if unicodedata.normalize("NFKC", text) == true_id:
        return "fullwidth"
    if "E+17" in text:
        return "excel_float" if true_id.startswith(text.split("E")[0].replace(".", "")) else "?"
    if len(text) == 15 and idnumber.from_legacy15(text) == true_id:
        return "legacy15"
    if len(text) == 20 and text.startswith(true_id):
        return "disability_cert"
    if text[:17] == true_id[:17] and text[17] == "x" and true_id[17] == "X":
        return "lower_x"
    if text[:17] == true_id[:17]:
        return "check_wrong"
    diffs = [i for i in range(18) if text[i] != true_id[i]]
    if len(diffs) == 1:
        return "digit_typo"
    if len(diffs) == 2 and diffs[1] == diffs[0] + 1 and text[diffs[0]] == true_id[diffs[1]]:
        return "transposed"
    return "?"


@pytest.mark.parametrize(
    "source,field", [("civil_affairs", "身份证号码"), ("emergency_management", "户主身份证号")]
)
def test_id_defects_in_the_files_are_the_ones_the_truth_names(county, source, field):
    links = dict(
        _links(county.out)
        .filter(pl.col("source") == source)
        .select("source_record_id", "person_id")
        .iter_rows()
    )
    defects = pl.read_csv(county.out / "truth" / "defects.csv", infer_schema=False)
    logged = {}
    for key, defect in (
        defects.filter((pl.col("source") == source) & (pl.col("field") == field))
        .select("source_record_id", "defect")
        .iter_rows()
    ):
        logged.setdefault(key, set()).add(defect)
    people = _register_by_person(county)
    checked = 0
    for row in _read(county.out)[source]:
        person = links[row["_key"]]
        if person is None or row.get("_spouse"):
            continue
        true_id = people[person]["证件号码"]
        found = _classify_id(row[field], true_id)
        named = logged.get(row["_key"], set())
        if found is None:
            assert not named, (row["_key"], named)
        else:
            assert found in named or (found == "?" and len(named) >= 1), (row[field], true_id, named)
        checked += 1
    assert checked > 100


def test_name_defects_are_real(county):
    t2s = OpenCC("t2s")
    links = dict(
        _links(county.out)
        .filter(pl.col("source") == "civil_affairs")
        .select("source_record_id", "person_id")
        .iter_rows()
    )
    defects = pl.read_csv(county.out / "truth" / "defects.csv", infer_schema=False).filter(
        pl.col("source") == "health_insurance", pl.col("field") == "姓名"
    )
    people = _register_by_person(county)
    rows = {r["_key"]: r for r in _read(county.out)["health_insurance"]}
    hi_links = dict(
        _links(county.out)
        .filter(pl.col("source") == "health_insurance")
        .select("source_record_id", "person_id")
        .iter_rows()
    )
    kinds = set()
    for key, defect in defects.select("source_record_id", "defect").iter_rows():
        person = hi_links[key]
        if person is None:
            continue
        true, got = people[person]["姓名"], rows[key]["姓名"]
        assert got != true
        kinds.add(defect)
        if defect == "homophone":
            assert len(got) == len(true)
            assert lazy_pinyin(got, style=Style.NORMAL) == lazy_pinyin(true, style=Style.NORMAL)
        elif defect == "traditional":
            assert t2s.convert(got) == true
        elif defect == "stray_spaces":
            assert got.replace(" ", "").replace("\u3000", "") == true
        elif defect == "missing_char":
            assert len(got) == len(true) - 1
        elif defect == "extra_char":
            assert got.startswith(true) and len(got) == len(true) + 1
        elif defect == "dot_variant":
            assert "•" not in got, "• cannot be written in GBK"
    assert {"homophone", "traditional", "stray_spaces", "missing_char"} <= kinds
    assert links  # the civil-affairs truth is readable too


def test_excel_mangled_ids_are_numbers_in_xlsx_and_text_in_csv(county):
    civil = _read(county.out)["civil_affairs"]
    assert any(isinstance(r["身份证号码"], float) for r in civil) or len(civil) < 300
    health = _read(county.out)["health_insurance"]
    assert any("E+17" in r["证件号码"] for r in health)


def test_reversals_point_at_settlements_some_arriving_first(county):
    rows = _read(county.out)["health_insurance"]
    position = {r["_key"]: (r["_file"], i) for i, r in enumerate(rows) if r["结算类型"] == "正常"}
    reversals = [r for r in rows if r["结算类型"] == "冲销"]
    assert reversals
    first = 0
    for i, r in enumerate(rows):
        if r["结算类型"] != "冲销":
            continue
        assert r["原结算流水号"] in position
        assert deliveries.money(r["个人自付"]) <= 0
        if position[r["原结算流水号"]][1] > i:
            first += 1
    assert first > 0, "some reversals arrive before their original"


def test_clean_profile_delivers_true_values(clean_county):
    links = dict(
        pl.read_csv(clean_county.out / "truth" / "links.csv", infer_schema=False)
        .select("source_record_id", "person_id")
        .iter_rows()
    )
    register = {
        r["人编号"]: r
        for r in deliveries.read_csv(next((clean_county.out / "inbox" / "registry").iterdir()), "utf-8-sig")
    }
    rows = _read(clean_county.out)
    for r in rows["health_insurance"]:
        person = links[r["_key"]]
        if person:
            assert r["证件号码"] == register[person]["证件号码"]
            assert r["姓名"] == register[person]["姓名"]
            assert "," not in r["个人自付"]
            assert deliveries.norm_date(r["结算日期"]).isoformat() == r["结算日期"]
    assert pl.read_csv(clean_county.out / "truth" / "defects.csv").height == 0


def test_profiles_are_data_and_unknown_defects_are_refused(tmp_path):
    settings = load_settings()
    assert set(settings["noise_profiles"]) >= {"default", "clean"}
    bad = tmp_path / "p.yaml"
    bad.write_text("id: {teleported: 0.5}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="teleported"):
        NoiseProfile.load(str(bad))
    with pytest.raises(ValueError, match="unknown noise profile"):
        NoiseProfile.load("nope")
