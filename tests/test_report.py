"""The night's report: one self-contained page per county and night, rendered by a real
Chromium (Debian's, headless) with the network off; its charts drew, its figures are the
warehouse's (read here with SQL of the test's own), a refused file shows its reason and
masked sample rows, a source silent past its cadence shows as stale, and no full ID
number, phone or name of anyone appears in it."""

from __future__ import annotations

import re
import shutil
from datetime import date, timedelta
from pathlib import Path

import openpyxl
import polars as pl
import pytest
import sqlalchemy as sa

from pipeline.cli import invoke
from pipeline.night import run_night
from report.masking import mask_id, mask_name, mask_phone, masked_row
from staging.stage import Stage
from synth.generate import generate
from tests.bad_deliveries import HEALTH_COLUMNS, csv_bytes

D = date(2026, 11, 27)
SECOND, LATE = D + timedelta(days=1), D + timedelta(days=41)
KEY = "a-test-secret-for-the-night-report"
CHROMIUM = Path("/usr/bin/chromium")
BAD_FILE = "health_insurance/yb_settlement_202611_bad.csv"
SHOTS = Path("/tmp/guardline-report-shots")


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def _bad_settlements(stage: Stage, n: int = 40, bad: int = 16) -> list[dict]:
    """``n`` settlements of register persons, ``bad`` of them with an amount nobody can
    read: more than the contract's tenth of unreadable rows in a file of 30 or more, so
    the file is refused."""
    persons = stage.records("registry", D).head(n).to_dicts()
    rows = []
    for i, p in enumerate(persons):
        rows.append(
            {
                **dict.fromkeys(HEALTH_COLUMNS, ""),
                "结算流水号": f"RPT{i:05d}",
                "结算类型": "正常",
                "姓名": p["name"],
                "证件类型": "居民身份证",
                "证件号码": p["id_number"],
                "参保地区划": "433124",
                "就诊类别": "普通门诊",
                "定点医药机构名称": "花垣县人民医院",
                "结算日期": "2026-11-25",
                "医疗费总额": "30.00",
                "个人自付": "NaN" if i < bad else "10.00",
                "个人自费": "5.00",
            }
        )
    return rows


def _answer_first_list(outbox: Path, returned: Path) -> int:
    """Two households of the first township's list answered: one 纳入, one dismissed."""
    path = sorted((outbox / D.isoformat()).glob("*.xlsx"))[0]
    wb = openpyxl.load_workbook(path)
    ws = wb["核查清单"]
    header = [c.value for c in ws[2]]
    col = {name: header.index(name) + 1 for name in header}
    answers = ["符合，纳入监测", "不符合条件"]
    for row, result in zip(range(3, 3 + len(answers)), answers, strict=True):
        ws.cell(row=row, column=col["核查结果"], value=result)
        ws.cell(row=row, column=col["核查人"], value="张干部")
        ws.cell(row=row, column=col["核查日期"], value=D + timedelta(days=1))
    wb.save(returned)
    return len(answers)


@pytest.fixture(scope="module")
def nights(tmp_path_factory, monkeypatch_module) -> Path:
    """Three nights of a county: a first night; visits returned and a refused 医保 file on
    the second; forty nights later a night with nothing new (every monthly source silent
    past its cadence)."""
    monkeypatch_module.setenv("GUARDLINE_PSEUDONYM_KEY", KEY)
    home = tmp_path_factory.mktemp("report")
    generate(home / "generated", households=250, seed=5, as_of=D)
    shutil.copytree(home / "generated" / "inbox", home / "inbox")
    url = f"duckdb:///{home / 'warehouse.duckdb'}"
    first = run_night(home / "inbox", D, home / "stage", home / "outbox", url)
    assert first.report == home / "outbox" / D.isoformat() / "report.html" and first.report.exists()
    assert _answer_first_list(home / "outbox", home / "returned.xlsx") == 2
    monkeypatch_module.setattr("guardline.config.today", lambda: SECOND)
    assert invoke(["visits", "import", str(home / "returned.xlsx"), "--stage", str(home / "stage")]) == 0
    bad = home / "inbox" / BAD_FILE
    bad.write_bytes(csv_bytes(HEALTH_COLUMNS, _bad_settlements(Stage(home / "stage")), "gbk"))
    second = run_night(home / "inbox", SECOND, home / "stage", home / "outbox", url)
    assert second.exit_status == 3 and any(BAD_FILE in line for line in second.refusals), second.refusals
    late = run_night(home / "inbox", LATE, home / "stage", home / "outbox", url)
    assert late.report is not None and late.exit_status == 3  # the refused file is reported again
    return home


def _page(path: Path, shots: str | None = None) -> dict:
    """The page as Chromium drew it, offline: what it asked the network for, every chart's
    marks and drawn size, every figure's text."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail("Chromium is not installed: run `make system-packages` (Debian package chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            context = browser.new_context(offline=True, viewport={"width": 1050, "height": 1100})
            page = context.new_page()
            asked: list[str] = []
            page.on("request", lambda r: asked.append(r.url))
            page.goto(path.as_uri())
            drawn = page.evaluate(
                """() => [...document.querySelectorAll('svg[data-chart]')].map(s => {
                    const box = s.getBBox();
                    const marks = [...s.querySelectorAll('[data-value]')];
                    return {chart: s.dataset.chart, marks: marks.length, width: box.width, height: box.height,
                            drawn: marks.filter(m => { const b = m.getBBox(); return b.width > 0 && b.height > 0; }).length};
                })"""
            )
            figures = page.evaluate(
                "() => Object.fromEntries([...document.querySelectorAll('[data-figure]')].map(e => [e.dataset.figure, e.textContent.trim()]))"
            )
            text = page.evaluate("() => document.body.innerText")
            if shots:
                SHOTS.mkdir(exist_ok=True)
                height = page.evaluate("document.body.scrollHeight")
                for i, y in enumerate(range(0, height, 1100)):
                    page.screenshot(
                        path=str(SHOTS / f"{shots}_{i}.png"),
                        clip={"x": 0, "y": y, "width": 1050, "height": min(1100, height - y)},
                        full_page=True,
                    )
        finally:
            browser.close()
    return {"asked": asked, "charts": {c["chart"]: c for c in drawn}, "figures": figures, "text": text}


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def _sql(home: Path, query: str, **params) -> list[tuple]:
    eng = sa.create_engine(f"duckdb:///{home / 'warehouse.duckdb'}")
    try:
        with eng.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(query), params)]
    finally:
        eng.dispose()


def test_the_page_draws_offline_and_says_what_the_warehouse_holds(nights):
    path = nights / "outbox" / SECOND.isoformat() / "report.html"
    seen = _page(path, shots="second")
    assert seen["asked"] == [path.as_uri()], "nothing but the file itself is fetched"
    html = path.read_text(encoding="utf-8")
    assert not re.search(r"<script|<link|@import|url\(|src=", html), (
        "no script, style sheet or picture from anywhere"
    )
    for chart in (
        "households_by_township",
        "warnings_trend",
        "visit_outcomes",
        "links_by_source",
        "match_weights",
        "step_seconds",
    ):
        c = seen["charts"][chart]
        assert c["marks"] > 0 and c["drawn"] == c["marks"] and c["width"] > 100 and c["height"] > 10, c
    fig = seen["figures"]
    county = _sql(nights, "SELECT DISTINCT county_code FROM households")[0][0]

    def one(query: str) -> int:
        return _sql(nights, query, d=SECOND, c=county)[0][0]

    assert _number(fig["households_to_visit"]) == one(
        "SELECT COUNT(DISTINCT household_id) FROM flags WHERE as_of_date = :d AND county_code = :c AND listed"
    )
    for status in ("new", "continuing", "resolved"):
        assert _number(fig[f"flags_{status}"]) == one(
            f"SELECT COUNT(*) FROM flags WHERE as_of_date = :d AND county_code = :c AND status = '{status}'"
        )
    assert one("SELECT COUNT(*) FROM flags WHERE as_of_date = :d AND status = 'continuing'") > 0
    assert _number(fig["exit_candidates"]) == one(
        "SELECT COUNT(*) FROM exit_candidates WHERE as_of_date = :d AND county_code = :c"
    )
    per_township = _sql(
        nights,
        "SELECT h.township, f.rule_id, COUNT(DISTINCT f.household_id) FROM flags f JOIN households h USING (household_id) "
        "WHERE f.as_of_date = :d AND f.listed GROUP BY 1, 2",
        d=SECOND,
    )
    assert per_township and all(_number(fig[f"visit:{t}:{r}"]) == n for t, r, n in per_township)
    dispositions = _sql(
        nights,
        "SELECT rule_id, SUM(CASE WHEN disposition = 'identified' THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN disposition = 'dismissed' THEN 1 ELSE 0 END) FROM flags "
        "WHERE as_of_date = :d AND status <> 'resolved' GROUP BY rule_id",
        d=SECOND,
    )
    assert sum(i + x for _, i, x in dispositions) == 2, "the two answers the visits gave"
    for rule, identified, dismissed in dispositions:
        assert _number(fig.get(f"identified:{rule}", "0")) == identified
        assert _number(fig.get(f"dismissed:{rule}", "0")) == dismissed
    files = _sql(
        nights,
        "SELECT split_part(source, '.', 1), COUNT(*), SUM(rows_read), SUM(quarantined) FROM processed_files "
        "WHERE as_of = :d GROUP BY 1",
        d=SECOND,
    )
    for source, n, rows, quarantined in files:
        assert _number(fig[f"files:{source}"]) == n
        assert _number(fig[f"rows:{source}"]) == rows
        assert _number(fig[f"quarantined:{source}"]) == quarantined
    warned = _sql(
        nights,
        "SELECT file FROM processed_files WHERE as_of = :d AND status = 'loaded' AND warnings <> ''",
        d=D,
    )
    first = _page(nights / "outbox" / D.isoformat() / "report.html")
    assert warned, "the first night has files loaded with a warning"
    for (file,) in warned:
        source = file.split("/")[0]
        assert first["figures"][f"verdict:{source}:{Path(file).name}"] == "通过,有警告", file
    assert "未通过" not in first["text"], "no check of a loaded file reads as failed"
    # Every file validated shows its checks, the 人社 pulls' included (the first night);
    # a pull that brought back only rows already staged says so instead (the second).
    for night, page in ((D, (nights / "outbox" / D.isoformat() / "report.html").read_text("utf-8")), (SECOND, html)):
        results = list((nights / "stage" / "reports" / "results" / night.isoformat()).glob("*.json"))
        assert page.count("<code>expect_table_row_count_to_be_between</code>") == len(results), night
    first_results = [p.name for p in (nights / "stage" / "reports" / "results" / D.isoformat()).glob("*.json")]
    assert sum(name.startswith("human_resources") for name in first_results) == 2
    pulls = _sql(
        nights,
        "SELECT rows_read, duplicates FROM processed_files WHERE as_of = :d AND file LIKE 'exchange:%'",
        d=SECOND,
    )
    assert len(pulls) == 2 and all(read == dup > 0 for read, dup in pulls), pulls
    assert html.count("均为已入库的重复行") == 2
    links = Stage(nights / "stage").nightly("links", SECOND).group_by("source", "match_status").len()
    for source, status, n in links.iter_rows():
        assert _number(fig[f"{status}:{source}"]) == n
    fingerprint = _sql(
        nights, "SELECT value FROM warehouse_settings WHERE name = 'pseudonym_key_fingerprint'"
    )[0][0]
    assert fig["key_fingerprint"] == fingerprint and len(fingerprint) == 16
    assert (
        fig["code_version"]
        == _sql(nights, "SELECT code_version FROM run_audit WHERE as_of_date = :d", d=SECOND)[0][0]
    )
    assert all(
        float(fig[f"seconds:{step}"]) > 0
        for step in ("extract+validate", "match", "rules", "load", "publish")
    )
    assert all(
        float(fig[f"peak:{step}"]) > 50 for step in ("extract+validate", "match", "rules", "load", "publish")
    )


def test_a_refused_file_shows_its_reason_and_masked_sample_rows(nights):
    seen = _page(nights / "outbox" / SECOND.isoformat() / "report.html")
    name = Path(BAD_FILE).name
    assert f"refused:health_insurance:{name}" in seen["figures"]
    assert seen["figures"][f"verdict:health_insurance:{name}"] == "拒收"
    reason = _sql(
        nights, "SELECT reason FROM processed_files WHERE file LIKE :f AND as_of = :d", f=f"%{name}", d=SECOND
    )[0][0]
    assert reason and reason.split(":")[0][:20] in seen["text"]
    samples = _bad_settlements(Stage(nights / "stage"))[:5]
    for row in samples:
        assert mask_id(row["证件号码"]) in seen["text"], "the sample names its rows by masked ID"
        assert mask_name(row["姓名"]) in seen["text"]
    assert "个人自付" in seen["text"] and "NaN" in seen["text"]
    assert "居民身份证" in seen["text"], "the kind of ID is no identifier: shown as delivered"
    later = _page(nights / "outbox" / LATE.isoformat() / "report.html")
    still = later["figures"][f"refused:health_insurance:{name}"]
    assert f"自 {SECOND} 起拒收" in still and mask_id(samples[0]["证件号码"]) in later["text"], (
        "a refused file is news every night until it is delivered again"
    )


def test_a_source_silent_past_its_cadence_is_stale(nights):
    first = _page(nights / "outbox" / D.isoformat() / "report.html")["figures"]
    late = _page(nights / "outbox" / LATE.isoformat() / "report.html", shots="late")["figures"]
    assert first["stale:civil_affairs"] == "正常" and first["stale:health_insurance"] == "正常"
    assert late["stale:civil_affairs"].startswith("停更") and "41" in late["stale:civil_affairs"]
    assert late["stale:emergency_management"] == "正常", "应急 delivers when a disaster happens: never stale"


def test_no_full_identifier_is_anywhere_in_a_report(nights):
    register = Stage(nights / "stage").records("registry", LATE)
    ids = set(register["id_number"].drop_nulls()) | {
        r["证件号码"] for r in _bad_settlements(Stage(nights / "stage"))
    }
    phones = set(register["phone"].drop_nulls())
    names = {n for n in register["name"].drop_nulls() if len(n) >= 2}
    for path in sorted((nights / "outbox").glob("*/report.html")):
        html = path.read_text(encoding="utf-8")
        digits = set(re.findall(r"\d{11,18}[\dXx]?", html))
        assert not digits & ids and not digits & phones, path
        found = [n for n in names if n in html]
        assert not found, (path, found[:5])


def test_the_report_command_makes_the_same_page_again(nights, capsys, monkeypatch):
    """Given relative folders, as a person types them (the demo's are): the same bytes."""
    path = nights / "outbox" / LATE.isoformat() / "report.html"
    before = path.read_bytes()
    path.unlink()
    monkeypatch.chdir(nights)
    code = invoke(["report", "--stage", "stage", "--as-of", LATE.isoformat(), "--outbox", "outbox"])
    assert code == 0 and "report.html" in capsys.readouterr().out
    assert path.read_bytes() == before


def test_sample_rows_mask_what_names_a_person():
    row = masked_row(
        "civil_affairs",
        '{"姓名": "张三丰", "身份证号码": "433124198001010016", "联系电话": "13812345678", '
        '"户籍地址": "花垣县边城镇牛园村10组", "救助类别": "农村低保", "申请人": "李四", "月保障金额(元)": "x13812345678"}',
    )
    assert (
        row["姓名"] == "张**" and row["身份证号码"] == mask_id("433124198001010016") == "433124********0016"
    )
    assert row["联系电话"] == mask_phone("13812345678") == "138****5678"
    assert row["户籍地址"] == "…" and row["救助类别"] == "农村低保"
    assert row["申请人"] == "李*", "a column the contract does not know is masked when it could hold a name"
    assert row["月保障金额(元)"] == "x138****5678"
    assert pl.Series([masked_row("registry", None)]).to_list() == [{}]
    # a row of a file whose header could not be read comes as its cells in order
    assert masked_row("civil_affairs", '["张三", "433124198001010016", 5, "花垣县边城镇牛园村10组"]') == {
        "第1列": "张*",
        "第2列": "433124********0016",
        "第3列": "5",
        "第4列": "…",
    }
    assert masked_row("health_insurance", '"433124198001010016"') == {"(row)": "433124********0016"}
    assert masked_row("health_insurance", "not json 13812345678") == {"(row)": "not json 138****5678"}
