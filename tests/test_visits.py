"""The loop closes: the lists go out, cadres fill them in and send them back, and the
next nights list exactly who still needs a visit."""

from __future__ import annotations

import csv
import shutil
import uuid
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import openpyxl
import polars as pl
import pytest
import sqlalchemy as sa

from lists.rows import LIST_COLUMNS
from pipeline.cli import invoke
from pipeline.night import run_night
from staging.stage import Stage
from synth.generate import generate
from warehouse.db import engine
from warehouse.load import load_night

D = date(2026, 11, 27)
KEY = "a-test-secret-for-the-closed-loop"


def _night(home: Path, night: date) -> list[Path]:
    run_night(home / "inbox", night, home / "stage", home / "outbox", f"duckdb:///{home / 'warehouse.duckdb'}")
    return sorted((home / "outbox" / night.isoformat()).glob("*.xlsx"))


def _listed(paths: list[Path]) -> dict[str, dict]:
    """户编号 -> row of every township's 核查清单."""
    out = {}
    for path in paths:
        ws = openpyxl.load_workbook(path)["核查清单"]
        rows = list(ws.iter_rows(min_row=2, values_only=True))
        assert tuple(rows[0]) == LIST_COLUMNS
        for r in rows[1:]:
            row = dict(zip(LIST_COLUMNS, r, strict=True))
            out[row["户编号"]] = row
    return out


def _identified(paths: list[Path]) -> set[str]:
    found = set()
    for path in paths:
        ws = openpyxl.load_workbook(path)["已纳入"]
        header = [c.value for c in ws[2]]
        for r in ws.iter_rows(min_row=3, values_only=True):
            if r[0] not in (None, "(无)"):
                found.add(dict(zip(header, r, strict=False))["户编号"])
    return found


@pytest.fixture(scope="module")
def county(tmp_path_factory, monkeypatch_module):
    home = tmp_path_factory.mktemp("loop")
    generate(home / "generated", households=400, seed=3, as_of=D)
    shutil.copytree(home / "generated" / "inbox", home / "inbox")
    monkeypatch_module.setenv("GUARDLINE_PSEUDONYM_KEY", KEY)
    return home


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def _fill_csv(path: Path, answers: dict[str, tuple[str, date | str]], drop: str, out: Path) -> None:
    """The list's CSV filled in and saved as Excel saves a CSV on a Chinese Windows: GBK."""
    with open(path.with_suffix(".csv"), encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], [r for r in rows[1:] if r[rows[0].index("户编号")] != drop]
    for r in body:
        if r[header.index("户编号")] in answers:
            result, when = answers[r[header.index("户编号")]]
            r[header.index("核查结果")], r[header.index("核查人")] = result, "李干部"
            r[header.index("核查日期")] = f"{date.fromisoformat(str(when)):%Y/%-m/%-d}"
    with open(out, "w", encoding="gbk", newline="") as f:
        csv.writer(f).writerows([header, *body[::-1]])


def _fill(path: Path, answers: dict[str, tuple[str, date | str]], drop: str, out: Path) -> None:
    """As a cadre would: the rows re-sorted (reversed), one row deleted, results typed in
    (one of them not a word of the dropdown), saved under another name."""
    if out.suffix == ".csv":
        return _fill_csv(path, answers, drop, out)
    wb = openpyxl.load_workbook(path)
    ws = wb["核查清单"]
    header = [c.value for c in ws[2]]
    col = {name: header.index(name) for name in header}
    body = [list(r) for r in ws.iter_rows(min_row=3, values_only=True)]
    body = [r for r in body if r[col["户编号"]] != drop][::-1]
    ws.delete_rows(3, ws.max_row)
    for i, r in enumerate(body, start=3):
        hid = r[col["户编号"]]
        if hid in answers:
            result, when = answers[hid]
            r[col["核查结果"]], r[col["核查人"]], r[col["核查日期"]] = result, "张干部", when
        for j, value in enumerate(r, start=1):
            ws.cell(row=i, column=j, value=value)
    wb.save(out)


def _yield(url: str) -> pl.DataFrame:
    eng = engine(url)
    try:
        with eng.connect() as c:
            rows = c.execute(sa.text("SELECT * FROM v_visit_yield ORDER BY rule_id, township, month")).mappings().all()
    finally:
        eng.dispose()
    return pl.DataFrame([dict(r) for r in rows]).with_columns(pl.col("median_days_to_visit").cast(pl.Float64))


@contextmanager
def fresh_schema(pg_url: str):
    schema = f"visits_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_url)
    with admin.begin() as c:
        c.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{pg_url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as c:
            c.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


def test_three_nights_of_lists_and_the_visits_between_them(county, tmp_path, capsys, monkeypatch, pg_url):
    first = _night(county, D)
    assert first and all(p.name.endswith(f"_预警核查清单_{D:%Y%m%d}.xlsx") for p in first)
    listed = _listed(first)
    by_rule = {h: r["预警规则"] for h, r in listed.items()}
    stable = sorted(h for h, rules in by_rule.items() if rules == "收入低于监测线")
    others = sorted(h for h in listed if h not in stable)
    assert len(stable) >= 1 and len(others) >= 4, by_rule
    dismissed, identified, deleted, invalid = others[:4]
    unvisited = stable[0]
    township_of = {h: r["乡(镇)"] for h, r in listed.items()}
    csv_before = {p.name: p.with_suffix(".csv").read_bytes() for p in first}

    returned = []
    for path in first:
        mine = {h for h in listed if township_of[h] == openpyxl.load_workbook(path)["核查清单"]["C3"].value}
        answers = {
            h: a
            for h, a in {
                dismissed: ("不符合条件", D + timedelta(days=2)),
                identified: ("符合，纳入监测", (D + timedelta(days=1)).isoformat()),
                invalid: ("不知道", D + timedelta(days=1)),
            }.items()
            if h in mine
        }
        # the dismissed household's township comes back as its CSV, the others as workbooks
        target = tmp_path / f"returned_{len(returned)}.{'csv' if dismissed in mine else 'xlsx'}"
        _fill(path, answers, deleted, target)
        returned.append(target)

    monkeypatch.setattr("guardline.config.today", lambda: D + timedelta(days=3))
    code = invoke(["visits", "import", *map(str, returned), "--stage", str(county / "stage"), "--by", "乡镇专干"])
    err = capsys.readouterr().err
    assert code == 3, err  # the invalid value is refused, the rest recorded
    bad = [line for line in err.splitlines() if "不知道" in line]
    assert len(bad) == 1 and "核查结果" in bad[0] and "returned_" in bad[0] and "row " in bad[0], err
    visits = Stage(county / "stage").visits()
    assert set(visits.filter(pl.col("household_id") == dismissed)["file"].str.extract(r"\.(\w+)$")) == {"csv"}
    again = invoke(["visits", "import", *map(str, returned), "--stage", str(county / "stage")])
    assert "already imported" in capsys.readouterr().out and again == 3, "the refused row is reported again"
    assert Stage(county / "stage").visits().equals(visits), "the same files again change nothing"
    assert set(visits["household_id"]) == {dismissed, identified}
    assert set(visits["recorded_by"]) == {"乡镇专干"} and visits["file"].str.starts_with("returned_").all()

    # Re-running the first night after the import lists what it listed.
    _night(county, D)
    assert {p.name: p.with_suffix(".csv").read_bytes() for p in first} == csv_before

    def firing(night: date) -> set[str]:
        flags = Stage(county / "stage").nightly("flags", night)
        return set(flags.filter(pl.col("status") != "resolved")["household_id"])

    night2 = D + timedelta(days=1)
    second = _listed(paths := _night(county, night2))
    assert {dismissed, identified} <= firing(night2), "the rules still fire on both"
    assert set(second) == firing(night2) - {dismissed, identified}, "exactly the households still to visit"
    assert identified in _identified(paths), "纳入监测: on 已纳入 until the register shows it"
    assert {deleted, invalid} & set(second), "not visited (row deleted, value refused): listed again"
    assert "逾期" not in second[unvisited]["本期状态"]

    # What analysts read: every visit, and the yield per rule, township and month.
    visited = Stage(county / "stage").visits(night2)
    yield_duckdb = _yield(f"duckdb:///{county / 'warehouse.duckdb'}")
    rules = dict(visited.group_by("outcome").agg(pl.len()).iter_rows())
    assert yield_duckdb.select(pl.col("identified", "dismissed", "verified").sum()).row(0) == (
        rules["identified"],
        rules["dismissed"],
        rules["identified"] + rules["dismissed"],
    )
    assert yield_duckdb.filter(pl.col("verified") > 0)["median_days_to_visit"].is_not_null().all()
    assert yield_duckdb["warnings"].sum() >= len(firing(night2))
    with fresh_schema(pg_url) as url:  # the same views on PostgreSQL give the same figures
        for night in (D, night2):  # the nights the embedded warehouse holds
            load_night(engine(url), Stage(county / "stage"), night)
        assert _yield(url).equals(yield_duckdb)

    night3 = D + timedelta(days=15)
    third = _listed(_night(county, night3))
    assert set(third) == firing(night3) - {dismissed, identified}
    assert "逾期" in third[unvisited]["本期状态"], "listed 15 days ago and not visited"
    for row in third.values():  # nobody was visited since night 1: overdue iff listed 15 days ago
        waited = (night3 - date.fromisoformat(row["首次预警日期"])).days
        assert ("逾期" in row["本期状态"]) == (waited >= 15), row


def test_what_a_visit_does_to_the_flags_it_answered():
    """Pure: per outcome, and a dismissal reopened by a worse figure or another department."""
    from rules.catalogue import Catalogue
    from visits.config import VisitConfig
    from visits.dispositions import apply_visits

    list_date, night = D, D + timedelta(days=20)

    def flag(hid: str, burden: float, records: list[str], first: date = D) -> dict:
        return {
            "household_id": hid,
            "rule_id": "medical_burden",
            "status": "continuing",
            "first_flagged_date": first,
            "evidence": f'{{"figures": {{"medical_burden": {burden}}}}}',
            "records": records,
        }

    flags = pl.DataFrame(
        [
            flag("same", 10_000, ["m1"]),  # dismissed, nothing new: stays off
            flag("worse", 12_500, ["m2"]),  # dismissed, burden +25%: back on
            flag("other", 10_000, ["m3", "c1"]),  # dismissed, now a 民政 record too: back on
            flag("found", 10_000, ["m4"]),  # 纳入监测: off
            flag("away", 10_000, ["m5"]),  # 无法核实 on day 10: listed, clock restarted
            flag("nobody", 10_000, ["m6"]),  # never visited, listed 20 days: overdue
            flag("recent", 10_000, ["m7"], first=night - timedelta(days=3)),  # listed 3 days: not overdue
        ]
    )
    links = pl.DataFrame(
        {
            "source": ["health_insurance"] * 7 + ["civil_affairs"],
            "source_record_id": ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "c1"],
        }
    )
    visit = {"rule_id": "medical_burden", "list_date": list_date, "figure": 10_000.0, "sources": "health_insurance"}
    visits = pl.DataFrame(
        [
            {**visit, "household_id": "same", "result": "不符合条件", "outcome": "dismissed", "visit_date": D + timedelta(days=2)},
            {**visit, "household_id": "worse", "result": "不符合条件", "outcome": "dismissed", "visit_date": D + timedelta(days=2)},
            {**visit, "household_id": "other", "result": "信息有误", "outcome": "dismissed", "visit_date": D + timedelta(days=2)},
            {**visit, "household_id": "found", "result": "符合，纳入监测", "outcome": "identified", "visit_date": D + timedelta(days=2)},
            {**visit, "household_id": "away", "result": "无法核实（外出等）", "outcome": "unverified", "visit_date": D + timedelta(days=10)},
        ]
    )
    out = apply_visits(flags, visits, Catalogue.load(), VisitConfig.load(), night, links)
    got = {r["household_id"]: (r["disposition"], r["listed"], r["overdue"]) for r in out.iter_rows(named=True)}
    assert got == {
        "same": ("dismissed", False, False),
        "worse": ("reopened", True, True),
        "other": ("reopened", True, True),
        "found": ("identified", False, False),
        "away": (None, True, False),
        "nobody": (None, True, True),
        "recent": (None, True, False),
    }
