"""Connectors and validation: every delivery read exactly, nothing lost."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from connectors import health_insurance, human_resources, readers
from connectors.canonical import canonicalize
from connectors.ingest import ingest
from guardline.errors import DeliveryError
from staging.stage import Stage
from tests import handmade
from tests.conftest import AS_OF


def _by_source(result):
    return {s.source: s for s in result.sources}


def _digest(folder: Path) -> dict[str, str]:
    out = {}
    for p in [*sorted(folder.rglob("*.parquet")), folder / "watermarks.json"]:
        if p.suffix == ".parquet":
            frame = pl.read_parquet(p)
            out[p.name] = hashlib.sha256(frame.sort(frame.columns).write_csv().encode()).hexdigest()
        elif p.exists():
            out[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def noisy_night(county, tmp_path_factory):
    stage = tmp_path_factory.mktemp("stage")
    result = ingest(county.out / "inbox", AS_OF, stage)
    return county, stage, result


def test_every_row_of_a_noisy_night_is_accounted_for(noisy_night):
    county, _, result = noisy_night
    manifest = json.loads((county.out / "truth" / "manifest.json").read_text(encoding="utf-8"))
    truth = {e["source"]: e for e in manifest["sources"]}
    sources = _by_source(result)
    assert not result.failed, [(s.source, s.reason) for s in result.failed]
    for name in ("civil_affairs", "health_insurance", "emergency_management", "human_resources"):
        s = sources[name]
        for f in s.files:
            assert f.balanced, f
        assert s.total("rows_read") == truth[name]["rows"]
        assert s.total("duplicates") == truth[name]["duplicate_rows"]
        assert s.total("superseded") == truth[name]["superseded_rows"]
        assert s.total("quarantined") == 0
        assert s.records == truth[name]["records"]
    assert sources["registry"].records == county.persons


def test_staged_keys_are_exactly_the_truths(noisy_night):
    county, stage, _ = noisy_night
    links = pl.read_csv(county.out / "truth" / "links.csv", infer_schema=False)
    st = Stage(stage)
    for name in ("civil_affairs", "health_insurance", "emergency_management"):
        staged = set(st.records(name)["source_record_id"])
        assert staged == set(links.filter(pl.col("source") == name)["source_record_id"]), name
    hr = set(st.records("human_resources.rs_employment_event")["source_record_id"]) | set(
        st.records("human_resources.rs_contribution_month")["source_record_id"]
    )
    assert hr == set(links.filter(pl.col("source") == "human_resources")["source_record_id"])


def test_rerunning_the_night_changes_nothing(noisy_night):
    county, stage, _ = noisy_night
    before = _digest(stage)
    again = _by_source(ingest(county.out / "inbox", AS_OF, stage))
    assert _digest(stage) == before
    for name in ("registry", "civil_affairs", "health_insurance", "emergency_management"):
        assert again[name].status == "nothing new"
        assert all(f.status == "skipped" for f in again[name].files)
    hr = again["human_resources"]
    assert hr.total("loaded") == 0 and hr.total("duplicates") > 0, (
        "the look-back window comes back as duplicates"
    )


def test_validation_results_and_data_docs_are_kept(noisy_night):
    _, stage, result = noisy_night
    assert result.data_docs is not None and result.data_docs.exists()
    assert "<html" in result.data_docs.read_text(encoding="utf-8").lower()
    results = list((stage / "reports" / "results" / AS_OF.isoformat()).glob("*.json"))
    assert {p.name.split("__")[0] for p in results} >= {"health_insurance", "civil_affairs", "registry"}
    one = json.loads(results[0].read_text(encoding="utf-8"))
    assert "results" in one and "success" in one
    # Records dated after the run date are loaded, and validation warns.
    warnings = [w for s in result.sources for f in s.files for w in f.warnings]
    assert any("on or before the run date" in w for w in warnings)


def test_clean_night_stages_the_register_and_every_source(clean_county, tmp_path):
    result = _by_source(ingest(clean_county.out / "inbox", AS_OF, tmp_path))
    assert all(s.status == "ok" for s in result.values()), result
    manifest = json.loads((clean_county.out / "truth" / "manifest.json").read_text(encoding="utf-8"))
    for entry in manifest["sources"]:
        s = result[entry["source"]]
        assert all(f.balanced for f in s.files)
        assert (s.total("rows_read"), s.total("duplicates"), s.records) == (
            entry["rows"],
            0,
            entry["records"],
        )
    register = Stage(tmp_path).records("registry")
    assert register.height == clean_county.persons
    assert register.schema["household_size"] == pl.Int64
    assert register["household_id"].str.starts_with("0").all()


def test_handmade_health_file_reads_every_form(tmp_path):
    path = handmade.write_health(tmp_path / "health_insurance")
    source = health_insurance.SOURCE
    frame = canonicalize(source, readers.read_file(source, path, "health_insurance/x.csv")).frame
    rows = {r["settlement_id"]: r for r in frame.iter_rows(named=True)}
    assert [r["settlement_date"] for r in frame.iter_rows(named=True)] == [
        date(2026, 10, 10),
        date(2026, 11, 5),
        date(2026, 11, 3),
        date(2026, 11, 4),
        date(2026, 11, 4),
        date(2026, 11, 6),
        date(2026, 10, 21),
    ]
    assert rows["JS001"]["total_cost"] == 12_000.0 and rows["JS001"]["self_pay"] == 2_500.0
    assert rows["JS002R"]["self_pay"] == -100.0
    assert rows["JS003"]["id_number"] == "4.33124199E+17", "identifiers stay as delivered"
    assert rows["JS006"]["admission_date"] == date(2026, 10, 1)
    assert frame["__problems"].list.len().sum() == 0
    assert frame.filter(pl.col("settlement_id") == "JS002")["source_record_id"].item() == "JS002"
    valid = dict(zip(frame["settlement_id"], frame["__id_valid"], strict=True))
    assert valid["JS002"] and valid["JS004"] and valid["JS006"] and not valid["JS003"] and not valid["JS005"]


def test_dates_and_periods_repeated_or_not_read_as_row_by_row(tmp_path):
    # Dates and periods are parsed once per distinct text and looked up: every row still
    # gets its own value, and a text that is no date or period its own reason.
    texts = ["2026-11-03", "2026/11/3", None, "2026年11月3日", "20261103", " ", "2026-13-01", "46329"]
    expected = [date(2026, 11, 3), date(2026, 11, 3), None, date(2026, 11, 3), date(2026, 11, 3), None, None]
    expected += [date(2026, 11, 3)]
    source = health_insurance.SOURCE
    frame = pl.DataFrame(
        {"__row": range(2, 2 + 3 * len(texts)), **{c.name: None if c.kind == "date" else "1" for c in source.columns}},
        schema_overrides={c.name: pl.String for c in source.columns},
    ).with_columns(
        pl.Series("settlement_date", texts * 3),
        settlement_type=pl.lit("正常"),
        id_number=pl.lit("433124199001010013"),
    )
    batch = readers.batch.RawBatch("health_insurance", "x.csv", "", 0, frame, 1)
    out = canonicalize(source, batch).frame
    assert out["settlement_date"].to_list() == expected * 3
    assert out["admission_date"].null_count() == out.height, "a column of no dates reads as none"
    reasons = out["__problems"].to_list()[: len(texts)]
    assert reasons[2] == reasons[5] == ["结算日期: empty"]
    assert reasons[6] == ["结算日期: 2026-13-01 is not a date"]
    assert not any(reasons[i] for i in (0, 1, 3, 4, 7))

    months = ["202611", "202611.0", "202613", None, "202611", "abc"]
    source = human_resources.CONTRIBUTIONS
    frame = pl.DataFrame(
        {"__row": range(2, 2 + len(months)), "period": months}
    ).with_columns(
        id_number=pl.lit("433124199001010013"), name=pl.lit("张三"), wage_base=pl.lit("3000"), status=pl.lit("正常缴费")
    )
    out = canonicalize(source, readers.batch.RawBatch("human_resources", "t", "", 0, frame, 1)).frame
    assert out["period"].to_list() == [202611, 202611, None, None, 202611, None]
    assert [len(p) for p in out["__problems"].to_list()] == [0, 0, 1, 1, 0, 1]


def _gbk_names(folder: Path, *names: bytes) -> Path:
    """The handmade settlement file with its first rows' names replaced by raw bytes."""
    rows = tuple(
        r.replace(r.split(",")[3], f"@{i}@", 1) if i < len(names) else r for i, r in enumerate(handmade.HEALTH_ROWS)
    )
    path = handmade.write_health(folder, rows=rows)
    data = path.read_bytes()
    for i, name in enumerate(names):
        data = data.replace(f"@{i}@".encode(), name)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("iconv", [True, False], ids=["iconv", "python codec"])
def test_gbk_names_read_as_gb18030_2022_whichever_converter(iconv, tmp_path, monkeypatch):
    # FE51 and A6D9 were private-use code points in GB 18030-2005 and are characters in
    # 2022. 82359037 is 龴 in 2005 (2022 gives that to FE59): glibc's iconv refuses it,
    # so that file is read by Python's codec wherever it is read.
    if not iconv:
        monkeypatch.setenv("PATH", str(tmp_path))  # a machine without iconv
    source = health_insurance.SOURCE
    path = _gbk_names(tmp_path / "hi", "王".encode("gbk") + b"\xfe\x51", b"\xa6\xd9")
    names = readers.read_file(source, path, "health_insurance/x.csv").frame["name"].to_list()
    assert names[:2] == ["王\U00020087", "\ufe10"]
    assert names[2:] == [r.split(",")[3] for r in handmade.HEALTH_ROWS[2:]]
    path = _gbk_names(tmp_path / "old", b"\x82\x35\x90\x37", b"\xfe\x59")
    assert readers.read_file(source, path, "x.csv").frame["name"].to_list()[:2] == ["\u9fb4", "\u9fb4"]
    broken = _gbk_names(tmp_path / "broken", b"\x81\x20", b"\xa6\xd9")
    with pytest.raises(DeliveryError, match="not GBK text: invalid bytes at line 2"):
        readers.read_file(source, broken, "health_insurance/x.csv")


def test_reversal_cancels_its_original_whichever_arrives_first(tmp_path):
    inbox = tmp_path / "inbox"
    reversal = [r for r in handmade.HEALTH_ROWS if r.startswith("JS002R")]
    others = [r for r in handmade.HEALTH_ROWS if not r.startswith("JS002R")]
    handmade.write_health(inbox / "health_insurance", "yb_a.csv", tuple(reversal))
    ingest(inbox, date(2026, 11, 10), tmp_path / "stage", sources=["health_insurance"])
    staged = Stage(tmp_path / "stage").records("health_insurance")
    before = health_insurance.effective_settlements(staged, date(2026, 11, 10)).collect()
    assert before.height == 0, "a reversal alone contributes nothing"
    handmade.write_health(inbox / "health_insurance", "yb_b.csv", tuple(others))
    ingest(inbox, date(2026, 11, 10), tmp_path / "stage", sources=["health_insurance"])
    staged = Stage(tmp_path / "stage").records("health_insurance")
    effective = health_insurance.effective_settlements(staged, date(2026, 11, 10)).collect()
    by_id = dict(zip(effective["settlement_id"], effective["cancelled"], strict=True))
    assert by_id["JS002"] is True and by_id["JS001"] is False
    # Seen from a date before the reversal, the original still counts.
    early = health_insurance.effective_settlements(staged, date(2026, 11, 4)).collect()
    assert dict(zip(early["settlement_id"], early["cancelled"], strict=True))["JS002"] is False


def test_redelivery_supersedes_and_identical_rows_are_duplicates(tmp_path):
    inbox = tmp_path / "inbox"
    handmade.write_health(inbox / "health_insurance", "yb_1.csv")
    first = _by_source(ingest(inbox, AS_OF, tmp_path / "stage", sources=["health_insurance"]))
    assert first["health_insurance"].total("loaded") == 7
    changed = tuple(
        r.replace("花垣县人民医院", "湘西州人民医院") if r.startswith("JS001") else r
        for r in handmade.HEALTH_ROWS
    )
    handmade.write_health(inbox / "health_insurance", "yb_2.csv", changed)
    second = _by_source(ingest(inbox, AS_OF, tmp_path / "stage", sources=["health_insurance"]))[
        "health_insurance"
    ]
    (f,) = [f for f in second.files if f.file.endswith("yb_2.csv")]
    assert (f.rows_read, f.loaded, f.duplicates, f.replaced) == (7, 1, 6, 1)
    staged = Stage(tmp_path / "stage").records("health_insurance")
    assert staged.filter(pl.col("settlement_id") == "JS001")["provider"].item() == "湘西州人民医院"
    assert staged.height == 7


def test_xlsx_title_rows_numeric_ids_and_every_date_form(tmp_path):
    path = handmade.write_civil(tmp_path / "civil_affairs")
    from connectors import civil_affairs

    batch = readers.read_file(civil_affairs.SOURCE, path, "civil_affairs/m.xlsx")
    assert batch.header_row == 2
    frame = canonicalize(civil_affairs.SOURCE, batch).frame
    keys = frame["source_record_id"].to_list()
    assert keys[0] == "43312419700101123X|张伟|农村低保|2026-11-02"
    assert keys[1] == "433124198502022000|李娜|临时救助|2026-11-04", "Excel float: its integer digits"
    assert keys[2] == "'433124199003033456|王芳|农村特困|2026-10-15"
    assert keys[3] == "|赵敏|困难残疾人生活补贴|2026-09-01"
    assert frame["one_off_amount"].to_list()[1] == 3000.0
    assert frame["__problems"].list.len().sum() == 0


def test_xlsx_rows_of_only_spaces_are_left_out_and_the_rest_keep_their_sheet_row(tmp_path):
    import openpyxl

    from connectors import civil_affairs
    from connectors.readers.batch import ID_CELL, ROW

    sheet = openpyxl.load_workbook(handmade.write_civil(tmp_path / "first")).active
    rows = [list(r) for r in sheet.iter_rows(min_row=3, values_only=True)]
    width = len(handmade.CIVIL_HEADER)
    spaces = [" ", "\u3000", "\u2003", "\t", None, ""] * width
    beyond = [None] * width + ["备注: 已核实"]  # text only in a column the contract does not name
    path = handmade.write_civil(tmp_path / "civil_affairs", rows=[rows[0], spaces[:width], rows[1], beyond, *rows[2:]])
    batch = readers.read_file(civil_affairs.SOURCE, path, "civil_affairs/m.xlsx")
    # Title row 1, header row 2: the rows are 3, (4 blank), 5, 6, 7, ...
    assert batch.frame[ROW].to_list() == [3, 5, 6, *range(7, 7 + len(rows) - 2)]
    assert batch.frame.row(2, named=True)["name"] is None, "the row with text beyond the columns is kept"
    id_cells = dict(zip(batch.frame[ROW], batch.frame[ID_CELL], strict=True))
    assert id_cells[3] is False and id_cells[5] is True and id_cells[6] is None, "text, number, empty ID cell"


def test_a_row_that_cannot_be_read_is_quarantined_with_file_row_field_and_raw(tmp_path):
    inbox = tmp_path / "inbox"
    # Twenty ordinary rows, so that two bad ones are rows to set aside, not a broken batch.
    ordinary = tuple(handmade.HEALTH_ROWS[0].replace("JS001", f"JS1{i:02d}") for i in range(20))
    rows = (
        *handmade.HEALTH_ROWS[:3],
        handmade.HEALTH_ROWS[3].replace("20261104", "2026-13-45"),
        "JS009,退费,,周杰,居民身份证,43312419700101123X,433124,普通门诊,x,,,2026-11-01,10,5,0,0,3,2",
        *ordinary,
    )
    handmade.write_health(inbox / "health_insurance", rows=rows)
    result = _by_source(ingest(inbox, AS_OF, tmp_path / "stage", sources=["health_insurance"]))[
        "health_insurance"
    ]
    (f,) = result.files
    assert (f.rows_read, f.loaded, f.quarantined, f.duplicates) == (25, 23, 2, 0)
    q = Stage(tmp_path / "stage").quarantine("health_insurance").sort("row")
    assert q["row"].to_list() == [5, 6]
    assert q["field"].to_list() == ["结算日期", "结算类型"]
    assert "2026-13-45 is not a date" in q["reason"][0]
    assert json.loads(q["raw"][0])["结算流水号"] == "JS003"
    assert q["file"].unique().to_list() == ["health_insurance/yb_settlement_202611.csv"]


BAD_INPUTS = {
    "empty": (lambda d: (d / "yb_1.csv").write_bytes(b""), "the file is empty"),
    "header only": (
        lambda d: (d / "yb_1.csv").write_bytes(handmade.HEALTH_HEADER.encode("gbk") + b"\r\n"),
        "header but no rows",
    ),
    "missing column": (
        lambda d: handmade.write_health(
            d,
            header=handmade.HEALTH_HEADER.replace(",结算日期", ""),
            rows=tuple(",".join(r.split(",")[:11] + r.split(",")[12:]) for r in handmade.HEALTH_ROWS[:1]),
        ),
        "missing column 结算日期",
    ),
    "renamed column": (
        lambda d: handmade.write_health(d, header=handmade.HEALTH_HEADER.replace("结算日期", "结算时间")),
        "missing column 结算日期",
    ),
    "wrong encoding": (
        lambda d: handmade.write_health(d, encoding="utf-8"),
        "UTF-8 encoded; the contract says GBK",
    ),
    "truncated": (
        lambda d: (d / "yb_1.csv").write_bytes(
            (handmade.HEALTH_HEADER + "\r\n" + "\r\n".join(handmade.HEALTH_ROWS))[:-60].encode("gbk")
        ),
        "truncated",
    ),
    "binary garbage": (lambda d: (d / "yb_1.csv").write_bytes(bytes(range(256)) * 20), "binary"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_its_source_with_a_clear_reason_and_the_others_go_on(case, tmp_path):
    inbox = tmp_path / "inbox"
    make, words = BAD_INPUTS[case]
    (inbox / "health_insurance").mkdir(parents=True)
    make(inbox / "health_insurance")
    handmade.write_disaster_csv(inbox / "emergency_management")
    result = _by_source(
        ingest(inbox, AS_OF, tmp_path / "stage", sources=["health_insurance", "emergency_management"])
    )
    hi = result["health_insurance"]
    assert hi.status == "failed"
    assert words in hi.reason
    assert hi.reason.startswith("health_insurance/")
    assert "Traceback" not in hi.reason and "\n" not in hi.reason
    assert result["emergency_management"].status == "ok"
    assert Stage(tmp_path / "stage").records("health_insurance") is None, (
        "nothing staged from a failed source"
    )
    assert Stage(tmp_path / "stage").quarantine("health_insurance").height >= 1


def _settlements(n: int, id_number: str) -> tuple[str, ...]:
    """``n`` plain 正常 settlements of one patient, numbered JSB001..."""
    return tuple(
        f"JSB{i:03d},正常,,张伟,居民身份证,{id_number},433124,普通门诊,花垣镇卫生院,,,2026-11-0{1 + i % 9},"
        "100,50,0,0,30,20"
        for i in range(1, n + 1)
    )


def test_a_refused_file_is_refused_alone_and_reported_until_corrected(tmp_path):
    inbox = tmp_path / "inbox"
    handmade.write_health(inbox / "health_insurance", "yb_1.csv")
    handmade.write_health(inbox / "health_insurance", "yb_2.csv", _settlements(40, "99312419700101123X"))
    handmade.write_health(inbox / "health_insurance", "yb_3.csv", handmade.HEALTH_ROWS[:1])
    result = _by_source(ingest(inbox, AS_OF, tmp_path / "stage", sources=["health_insurance"]))[
        "health_insurance"
    ]
    assert result.status == "partial" and "health_insurance/yb_2.csv: valid ID numbers" in result.reason
    statuses = {f.file.rsplit("/", 1)[1]: f.status for f in result.files}
    assert statuses == {"yb_1.csv": "loaded", "yb_2.csv": "failed", "yb_3.csv": "loaded"}
    refused = Stage(tmp_path / "stage").quarantine("health_insurance").filter(pl.col("file").str.ends_with("yb_2.csv"))
    assert refused.height == 40 and refused["reason"].str.contains("file refused: valid ID numbers").all()
    assert sorted(refused["row"]) == list(range(2, 42))
    # The next night the refused file is still there: refused again, reported again, and
    # nothing in the stage changes; once a corrected delivery replaces it, it loads.
    before = {n: Stage(tmp_path / "stage").ledger(n) for n in ("health_insurance",)}
    later = _by_source(ingest(inbox, AS_OF.replace(day=28), tmp_path / "stage", sources=["health_insurance"]))
    assert later["health_insurance"].status == "failed" and "yb_2.csv" in later["health_insurance"].reason
    assert Stage(tmp_path / "stage").ledger("health_insurance").equals(before["health_insurance"])
    handmade.write_health(inbox / "health_insurance", "yb_2.csv", _settlements(40, "43312419700101123X"))
    fixed = _by_source(ingest(inbox, AS_OF.replace(day=29), tmp_path / "stage", sources=["health_insurance"]))
    assert fixed["health_insurance"].status == "ok" and fixed["health_insurance"].total("loaded") == 40


def test_share_checks_warn_on_a_small_file_and_identical_rows_are_duplicates(tmp_path):
    inbox = tmp_path / "inbox"
    rows = _settlements(8, "43312419700101123X")
    handmade.write_health(inbox / "health_insurance", "yb_1.csv", (*rows, rows[3]))  # 9 rows, one repeated
    handmade.write_health(inbox / "health_insurance", "yb_2.csv", _settlements(3, "99312419700101123X"))
    result = _by_source(ingest(inbox, AS_OF, tmp_path / "stage", sources=["health_insurance"]))[
        "health_insurance"
    ]
    assert result.status == "ok", result.reason
    by_file = {f.file.rsplit("/", 1)[1]: f for f in result.files}
    assert (by_file["yb_1.csv"].loaded, by_file["yb_1.csv"].duplicates) == (8, 1)
    assert any("only 3 rows" in w for w in by_file["yb_2.csv"].warnings)


def test_sheets_with_another_name(tmp_path):
    from connectors import emergency_management as em

    folder = tmp_path / "emergency_management"
    wb_path = handmade.write_civil(
        folder,
        "yj_x.xlsx",
        sheet="Sheet1",
        title=False,
        header=handmade.DISASTER_HEADER,
        rows=[
            [
                "2026ZH001",
                "洪涝",
                "2026-10-18",
                "双龙镇",
                "十八洞村",
                "张伟",
                "43312419700101123X",
                4,
                "倒塌",
                1,
                1,
                90000,
                "2026-10-20",
            ]
        ],
    )
    batch = readers.read_file(em.SOURCE, wb_path, "emergency_management/yj_x.xlsx")
    assert batch.frame.height == 1
    assert any("no sheet '灾情核查'" in w for w in batch.warnings)
    other = handmade.write_civil(folder, "yj_y.xlsx", sheet="统计表")  # a workbook of something else
    with pytest.raises(DeliveryError, match="no header row"):
        readers.read_file(em.SOURCE, other, "emergency_management/yj_y.xlsx")


def test_an_xlsx_that_is_not_a_workbook(tmp_path):
    from connectors import civil_affairs

    path = tmp_path / "m.xlsx"
    path.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(DeliveryError, match=r"not a readable \.xlsx") as err:
        readers.read_file(civil_affairs.SOURCE, path, "civil_affairs/m.xlsx")
    assert str(err.value).startswith("civil_affairs/m.xlsx: ")


def _exchange_copy(county, tmp_path) -> Path:
    path = tmp_path / "exchange.sqlite"
    shutil.copy(county.out / "inbox" / "human_resources" / "exchange.sqlite", path)
    return path


def test_exchange_pulls_incrementally_and_never_writes(county, tmp_path):
    db = _exchange_copy(county, tmp_path)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    url = f"sqlite:///{db}"
    empty_inbox = tmp_path / "inbox"
    empty_inbox.mkdir()
    first = _by_source(
        ingest(empty_inbox, AS_OF, tmp_path / "stage", hr_url=url, sources=["human_resources"])
    )["human_resources"]
    assert first.status == "ok" and first.total("loaded") > 1000
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before, "the exchange database is only read"
    # Late rows (补缴) arrive: one inside the look-back window, one older than it.
    con = sqlite3.connect(db)
    con.execute("INSERT INTO rs_contribution_month VALUES ('43312419700101123X','张伟',202601,3000,'补缴')")
    con.execute("INSERT INTO rs_contribution_month VALUES ('43312419700101123X','张伟',202301,3000,'补缴')")
    con.commit()
    con.close()
    stage = Stage(tmp_path / "stage")  # a new process: the watermark comes from disk
    assert stage.watermark("human_resources.rs_contribution_month").period == 202610
    second = _by_source(
        ingest(empty_inbox, AS_OF, tmp_path / "stage", hr_url=url, sources=["human_resources"])
    )["human_resources"]
    assert second.total("loaded") == 1
    keys = set(stage.records("human_resources.rs_contribution_month")["source_record_id"])
    assert "rs_contribution_month|43312419700101123X|202601" in keys
    assert "rs_contribution_month|43312419700101123X|202301" not in keys


def test_exchange_on_postgresql(county, tmp_path, pg_url):
    import sqlalchemy as sa

    rows = pl.read_database(
        "select * from rs_contribution_month limit 500",
        sa.create_engine(f"sqlite:///{county.out / 'inbox/human_resources/exchange.sqlite'}"),
    )
    events = pl.read_database(
        "select * from rs_employment_event limit 50",
        sa.create_engine(f"sqlite:///{county.out / 'inbox/human_resources/exchange.sqlite'}"),
    )
    engine = sa.create_engine(pg_url)
    schema = "guardline_exchange_test"
    with engine.begin() as con:
        con.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        con.execute(sa.text(f"CREATE SCHEMA {schema}"))
        con.execute(
            sa.text(
                f"CREATE TABLE {schema}.rs_contribution_month (aac002 text, aac003 text, period integer, "
                "wage_base numeric, status text)"
            )
        )
        con.execute(
            sa.text(
                f"CREATE TABLE {schema}.rs_employment_event (aac002 text, aac003 text, aac004 text, "
                "event_type text, event_date date, employer_name text, work_area text)"
            )
        )
        con.execute(
            sa.text(
                f"INSERT INTO {schema}.rs_contribution_month VALUES (:aac002,:aac003,:period,:wage_base,"
                ":status)"
            ),
            rows.to_dicts(),
        )
        con.execute(
            sa.text(
                f"INSERT INTO {schema}.rs_employment_event VALUES (:aac002,:aac003,:aac004,:event_type,"
                "CAST(:event_date AS date),:employer_name,:work_area)"
            ),
            events.to_dicts(),
        )
    url = f"{pg_url}?options=-csearch_path%3D{schema}"
    try:
        inbox = tmp_path / "inbox"
        inbox.mkdir()
        result = _by_source(
            ingest(inbox, AS_OF, tmp_path / "stage", hr_url=url, sources=["human_resources"])
        )["human_resources"]
        assert result.status == "ok", result.reason
        assert result.total("loaded") == 550
        staged = Stage(tmp_path / "stage").records("human_resources.rs_employment_event")
        assert staged["event_date"].dtype == pl.Date
        # Read as Arrow by the PostgreSQL driver (its search path and read-only option
        # carried over), the same text as the portable path reads.
        _same_pull_both_ways(url)
        with (
            human_resources._engine(url).connect() as con,
            pytest.raises(sa.exc.DBAPIError, match="read-only"),
        ):
            con.execute(sa.text(f"DELETE FROM {schema}.rs_employment_event"))
    finally:
        with engine.begin() as con:
            con.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        engine.dispose()


def _same_pull_both_ways(url: str) -> None:
    from staging.stage import Watermark

    for table in human_resources.TABLES:
        arrow = human_resources.pull(table, url, Watermark())
        columns = ", ".join(c.header for c in table.columns)
        direct = human_resources._read_arrow(url, f"SELECT {columns} FROM {table.table}", {}, table)
        assert direct is not None and direct.height == arrow.frame.height, "the driver read it"
        portable = human_resources.arrow_uri
        try:
            human_resources.arrow_uri = lambda _url: None  # the SQLAlchemy path alone
            plain = human_resources.pull(table, url, Watermark())
        finally:
            human_resources.arrow_uri = portable
        assert arrow.frame.height > 0 and arrow.frame.equals(plain.frame), table.table


def test_the_exchange_is_read_as_arrow_as_the_portable_path_reads_it(county):
    url = f"sqlite:///{county.out / 'inbox/human_resources/exchange.sqlite'}"
    assert human_resources.arrow_uri(url).endswith("?mode=ro")
    _same_pull_both_ways(url)


def test_the_arrow_pull_gives_no_text_that_is_not_utf8_and_needs_no_pyarrow(tmp_path):
    """SQLite's driver hands a TEXT value that is not UTF-8 over as a string, and polars
    takes an Arrow stream as it comes: the Arrow path refuses the pull (the portable path
    then names what failed) rather than give strings no later step can read."""
    import subprocess
    import sys

    path = tmp_path / "exchange.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE rs_employment_event (aac002 TEXT, aac003 TEXT, aac004 TEXT, event_type TEXT, "
                   "event_date DATE, employer_name TEXT, work_area TEXT)")
        db.executemany(
            "INSERT INTO rs_employment_event VALUES (?, '张三', '1', '失业登记', '2026-11-02', '', '')",
            [(f"43312419700101{i:04d}",) for i in range(20)],
        )
    url = f"sqlite:///{path}"
    table = human_resources.EMPLOYMENT
    query = f"SELECT {', '.join(c.header for c in table.columns)} FROM {table.table}"
    good = human_resources._read_arrow(url, query, {}, table)
    assert good is not None and good.height == 20 and good["name"].unique().to_list() == ["张三"]
    with sqlite3.connect(path) as db:
        db.execute("UPDATE rs_employment_event SET aac003 = CAST(x'ff41' AS TEXT) WHERE rowid = 15")
    assert human_resources._read_arrow(url, query, {}, table) is None
    # and the pull reads through the driver's own interface, not the DB-API layer that
    # imports pyarrow and pandas
    probe = (
        "import sys; from connectors import human_resources as h; "
        f"f = h._read_arrow({url!r}, {query!r}, {{}}, h.EMPLOYMENT); "
        "print(f is None, 'pyarrow' in sys.modules, 'pandas' in sys.modules)"
    )
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", probe], cwd=repo, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "False", "False"]


def test_a_pulled_row_is_numbered_by_what_it_holds_and_twins_by_their_order():
    rows = pl.DataFrame({"aac002": ["A", "B", "A", "C", "A", "B"], "period": ["1", "1", "1", "2", "1", "1"]})
    numbered = human_resources.row_ids(rows)
    assert numbered.columns == [human_resources.ROW, "aac002", "period"]
    row = numbered[human_resources.ROW].to_list()
    # the three A rows and the two B rows share their content's number, told apart 0, 1, 2
    assert [row[2] - row[0], row[4] - row[0], row[5] - row[1]] == [1, 2, 1]
    assert row[0] % 1000 == row[1] % 1000 == row[3] % 1000 == 0
    assert len({row[0], row[1], row[3]}) == 3
    # the same rows pulled again in another order keep their numbers (twins by their order)
    again = human_resources.row_ids(rows.reverse())[human_resources.ROW].to_list()[::-1]
    assert sorted(again) == sorted(row) and again[3] == row[3]
    assert human_resources.row_ids(rows.head(0)).height == 0


def test_missing_exchange_database_fails_only_human_resources(tmp_path):
    inbox = tmp_path / "inbox"
    handmade.write_disaster_csv(inbox / "emergency_management")
    result = _by_source(
        ingest(
            inbox,
            AS_OF,
            tmp_path / "stage",
            hr_url="sqlite:////nonexistent/x.sqlite",
            sources=["human_resources", "emergency_management"],
        )
    )
    assert result["human_resources"].status == "failed"
    assert "exchange:rs_employment_event: the exchange database does not answer" in result["human_resources"].reason
    assert result["emergency_management"].status == "ok"
    fallback = _by_source(
        ingest(inbox, AS_OF, tmp_path / "stage2", sources=["emergency_management", "human_resources"])
    )
    assert "no exchange database" in fallback["human_resources"].reason


def test_the_register_is_the_latest_export_received_by_the_run_date(clean_county, tmp_path):
    from connectors import arrival

    folder = tmp_path / "registry"
    folder.mkdir()
    (original,) = (clean_county.out / "inbox" / "registry").iterdir()
    for day in ("20261101", "20261120", "20261201"):
        shutil.copy(original, folder / f"register_{day}.csv")
    paths = sorted(folder.iterdir())
    assert [p.name for p in arrival.current_export(paths, date(2026, 11, 27))] == ["register_20261120.csv"]
    assert arrival.current_export(paths, date(2026, 10, 1)) == []


