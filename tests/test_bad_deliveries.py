"""A night of bad deliveries never crashes, names what it refused and loses no row.

One tiny synthetic county per module; night 1 (2026-11-27) runs once into a template
folder (inbox, stage, outbox, warehouse.duckdb). Each case copies the template, adds its
bad delivery (``tests/bad_deliveries.py``) and runs night 2 (2026-11-28) — or a first
night on a fresh stage — through ``pipeline.cli.invoke`` in this process, twice.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import io
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import openpyxl
import polars as pl
import pytest
import sqlalchemy as sa

from pipeline.cli import invoke
from synth.generate import generate
from tests.bad_deliveries import BY_ID, CASES, POSTGRESQL, Case

# Every bad delivery, twice each: minutes in all, run by `make test-scenarios` (and CI).
pytestmark = pytest.mark.scenario

NIGHT_1, NIGHT_2 = date(2026, 11, 27), date(2026, 11, 28)
KEY = "bad-deliveries-24-chars!"
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
COMPARED = ("processed_files", "quarantine", "flags")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
assert len(KEY) == 24


@dataclass
class Run:
    rc: int
    out: str
    err: str
    seconds: float

    @property
    def lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]

    def describe(self) -> str:
        """Exit status and the first line of the error (the exception line of a traceback)."""
        lines = self.lines
        if "Traceback" in self.err:
            last = next((x for x in reversed(lines) if not x.startswith(" ")), "")
            return f"exit {self.rc}, traceback: {last}"
        return f"exit {self.rc}: {lines[0] if lines else '(stderr empty)'}"


def night(home: Path, day: date, warehouse: str, hr_url: str | None = None) -> list[str]:
    args = [
        "run",
        "--inbox",
        str(home / "inbox"),
        "--as-of",
        day.isoformat(),
        "--stage",
        str(home / "stage"),
        "--outbox",
        str(home / "outbox"),
        "--warehouse",
        warehouse,
    ]
    return args + (["--hr-url", hr_url] if hr_url else [])


def run_night(args: list[str], read: Callable[[], tuple[str, str]]) -> Run:
    read()  # drop what was printed before
    started = time.perf_counter()
    rc = invoke(args)
    seconds = time.perf_counter() - started
    out, err = read()
    return Run(rc, out, err, seconds)


# ---------------------------------------------------------------------------------------
# Fixtures: the template county after night 1, and a fresh PostgreSQL database


@dataclass
class Template:
    home: Path
    night1: Run
    generate_seconds: float

    @property
    def warehouse(self) -> str:
        return f"duckdb:///{self.home / 'warehouse.duckdb'}"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    home = tmp_path_factory.mktemp("bad_template")
    started = time.perf_counter()
    generate(home, households=150, seed=5, as_of=NIGHT_1)
    generated = time.perf_counter() - started
    out, err = io.StringIO(), io.StringIO()

    def read() -> tuple[str, str]:
        text = out.getvalue(), err.getvalue()
        out.seek(0), out.truncate(), err.seek(0), err.truncate()
        return text

    with (
        pytest.MonkeyPatch.context() as mp,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        mp.setenv("GUARDLINE_PSEUDONYM_KEY", KEY)
        first = run_night(night(home, NIGHT_1, f"duckdb:///{home / 'warehouse.duckdb'}"), read)
    assert first.rc == 0, first.describe() + "\n" + first.err
    shutil.rmtree(home / "truth")
    return Template(home, first, generated)


@pytest.fixture(scope="module")
def pg_warehouse() -> str:
    """A fresh database on the PostgreSQL server of this machine, dropped afterwards.
    No server is a failure here, never a skip."""
    admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    name = f"gl_bad_{uuid.uuid4().hex[:12]}"
    with admin.connect() as con:
        con.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        gc.collect()
        with admin.connect() as con:
            con.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# ---------------------------------------------------------------------------------------
# Reading back what the night left


def tables(url: str, names: tuple[str, ...] = COMPARED) -> dict:
    eng = sa.create_engine(url)
    try:
        with eng.connect() as con:
            out = {}
            for name in names:
                result = con.execute(sa.text(f"SELECT * FROM {name}"))
                out[name] = pl.DataFrame(
                    [tuple(r) for r in result.fetchall()],
                    schema=list(result.keys()),
                    orient="row",
                    infer_schema_length=None,
                )
            return out
    finally:
        eng.dispose()


def canonical(frame: pl.DataFrame) -> str:
    """A frame as sorted CSV text: equal text, equal table."""
    text = frame.select(pl.all().cast(pl.String))
    return text.sort(text.columns, nulls_last=True).write_csv()


def outbox_cells(home: Path) -> list[tuple[str, str]]:
    cells = []
    for path in sorted((home / "outbox").rglob("*.csv")):
        with path.open(encoding="utf-8-sig", newline="") as handle:
            cells += [(path.name, cell) for row in csv.reader(handle) for cell in row]
    return cells


def named(line: str, file_named: str | tuple[str, ...]) -> bool:
    return any(n in line for n in ((file_named,) if isinstance(file_named, str) else file_named))


# ---------------------------------------------------------------------------------------
# The checks of one night


def check_run(case: Case, run: Run) -> None:
    assert "Traceback" not in run.err and run.rc == case.expect_exit, (
        f"{run.describe()} (expected exit {case.expect_exit})\n{run.err[-3000:]}"
    )
    if case.file_named is not None:
        naming = [line for line in run.lines if named(line, case.file_named)]
        assert len(naming) == 1, f"one stderr line names {case.file_named}: {run.lines}"
    if case.one_line:
        assert len(run.lines) == 1, run.lines
    if case.seconds is not None:
        assert run.seconds < case.seconds, f"{run.seconds:.1f} s"
    if case.summary or case.expect_exit in (0, 3):
        assert "extract+validate" in run.out, "the summary table is printed"


def check_warehouse(case: Case, got: dict, home: Path, day: date) -> None:
    pf, q = got["processed_files"], got["quarantine"]
    # Every row accounted for, file by file.
    unbalanced = pf.filter(
        pl.col("rows_read") != pl.col("loaded") + pl.col("quarantined") + pl.col("duplicates")
    )
    assert unbalanced.height == 0, unbalanced.to_dicts()
    assert q["row"].null_count() == 0, q.filter(pl.col("row").is_null()).to_dicts()
    for f in pf.filter(pl.col("quarantined") > 0).iter_rows(named=True):
        held = q.filter((pl.col("source") == f["source"]) & (pl.col("sha256") == f["sha256"])).height
        assert held == f["quarantined"], (f["file"], held, f["quarantined"])
    # Only the refused file failed; every other source was read.
    failed = sorted(set(pf.filter(pl.col("status") == "failed")["file"]))
    if case.expect_exit == 3:
        assert failed == [case.file_named], failed
        (bad,) = (
            pf.filter(pl.col("file") == case.file_named).filter(pl.col("as_of") == day).iter_rows(named=True)
        )
        assert bad["reason"], bad
        held = q.filter((pl.col("source") == bad["source"]) & (pl.col("sha256") == bad["sha256"]))
        assert held.height >= 1, "the refused file is in the quarantine"
        if bad["quarantined"] == 0:  # rows that cannot be counted: one entry for the file
            assert held.select("row", "field").rows() == [(0, "(file)")], held.to_dicts()
    else:
        assert failed == [], pf.filter(pl.col("status") == "failed").select("file", "reason").rows()
    # Row-level cases: the expected rows quarantined, with the contract's header as field.
    if case.delivered is not None:
        mine = pf.filter((pl.col("file") == case.delivered) & (pl.col("as_of") == day))
        assert mine.height >= 1 and "failed" not in mine["status"].to_list(), mine.to_dicts()
        fields = q.filter((pl.col("file") == case.delivered) & (pl.col("as_of") == day))["field"]
        assert sorted(fields.to_list()) == sorted(case.fields), (
            q.filter(pl.col("file") == case.delivered).select("row", "field", "reason").rows()
        )
    for file, loaded, quarantined, duplicates in case.counts:
        (f,) = pf.filter((pl.col("file") == file) & (pl.col("as_of") == day)).iter_rows(named=True)
        assert (f["loaded"], f["quarantined"], f["duplicates"]) == (loaded, quarantined, duplicates), f
    for file in case.not_processed:
        assert file not in pf["file"].to_list() and file not in q["file"].to_list(), file
    # The load and the lists happened even so.
    assert got["flags"].filter(pl.col("as_of_date") == day).height > 0, "flags for the night"
    lists = sorted((home / "outbox" / day.isoformat()).glob("*.xlsx"))
    assert lists, "township lists"
    # A night that refused a file says so at the top of every list (the first one read).
    title = openpyxl.load_workbook(lists[0], read_only=True)["核查清单"]["A1"].value
    assert ("注意:本期" in title) == (case.expect_exit == 3), title
    cells = outbox_cells(home)
    formulas = [(f, c) for f, c in cells if c.startswith(FORMULA_START)]
    assert formulas == [], f"outbox CSV cells that a spreadsheet runs: {formulas[:5]}"
    for text in case.outbox_has:
        assert any(text in c for _, c in cells), f"{text!r} in the lists"
    for text in case.absent:
        for name in ("source_records", "quarantine", "record_links"):
            assert text not in got[name].write_csv(), f"{text} in {name}"
        assert not any(text in c for _, c in cells), f"{text} in the lists"


@contextlib.contextmanager
def warehouse_for(case: Case, home: Path, pg_url: str | None):
    """The --warehouse URL of the case (and, for 'locked', another process holding it)."""
    duck = f"duckdb:///{home / 'warehouse.duckdb'}"
    if case.warehouse == "duckdb":
        yield duck, duck
    elif case.warehouse in ("postgresql", "postgres-scheme"):
        assert pg_url is not None
        given = (
            pg_url.replace("postgresql+psycopg://", "postgres://")
            if case.warehouse == "postgres-scheme"
            else pg_url
        )
        yield given, pg_url
    elif case.warehouse == "locked":
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); "
                "time.sleep(120)",
                str(home / "warehouse.duckdb"),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout.readline().strip() == "ready"
            yield duck, None
        finally:
            holder.kill()
            holder.wait(timeout=30)
    else:
        yield case.warehouse, None


def run_case(case: Case, template: Template, tmp_path: Path, capsys, monkeypatch, pg_url=None) -> None:
    monkeypatch.setenv("GUARDLINE_PSEUDONYM_KEY", KEY)
    home = tmp_path / "county"
    if case.night == 1:
        home.mkdir()
        shutil.copytree(template.home / "inbox", home / "inbox")
    else:
        shutil.copytree(template.home, home)
    case.make(home)
    day = NIGHT_1 if case.night == 1 else NIGHT_2

    def read() -> tuple[str, str]:
        captured = capsys.readouterr()
        return captured.out, captured.err

    with warehouse_for(case, home, pg_url) as (url, read_url):
        args = night(home, day, url, case.hr_url)
        first = run_night(args, read)
        check_run(case, first)
        wanted = (*COMPARED, "source_records", "record_links") if case.absent else COMPARED
        got = tables(read_url, wanted) if read_url and case.expect_exit != 2 else None
        if got is not None:
            check_warehouse(case, got, home, day)
        # The same night again: same exit status, the same account in the warehouse.
        again = run_night(args, read)
        check_run(case, again)
        if got is not None:
            after = tables(read_url)
            for name in COMPARED:
                assert canonical(after[name]) == canonical(got[name]), f"{name} changed on the re-run"
    shutil.rmtree(tmp_path, ignore_errors=True)  # kept only when the case fails


# ---------------------------------------------------------------------------------------
# The tests


def test_the_template_night_loads_and_lists(template: Template) -> None:
    """Night 1 of the template county: every source read, flags and lists written."""
    got = tables(template.warehouse)
    check_warehouse(Case("template", "", "", lambda home: None, 0, night=1), got, template.home, NIGHT_1)
    assert "Traceback" not in template.night1.err
    print(
        f"template county: generated in {template.generate_seconds:.1f} s, "
        f"night 1 in {template.night1.seconds:.1f} s"
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_delivery(case: Case, template: Template, tmp_path: Path, capsys, monkeypatch, request) -> None:
    pg_url = request.getfixturevalue("pg_warehouse") if case.warehouse.startswith("postgres") else None
    run_case(case, template, tmp_path, capsys, monkeypatch, pg_url)


@pytest.mark.parametrize("case", [BY_ID[i] for i in POSTGRESQL], ids=lambda c: f"pg-{c.id}")
@pytest.mark.usefixtures("pg_warehouse")
def test_bad_delivery_into_postgresql(
    case: Case, template: Template, pg_warehouse: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    run_case(replace(case, warehouse="postgresql"), template, tmp_path, capsys, monkeypatch, pg_warehouse)


def test_the_corpus_covers_every_source_and_class() -> None:
    by_source: dict[str, int] = {}
    for c in CASES:
        by_source[c.source] = by_source.get(c.source, 0) + 1
    assert len(CASES) >= 45
    assert all(
        by_source.get(s, 0) >= 3
        for s in ("registry", "civil_affairs", "health_insurance", "emergency_management", "human_resources")
    ), by_source
    assert {c.kind for c in CASES} == {"whole file", "row", "inbox", "exchange", "warehouse"}
    assert len(POSTGRESQL) >= 6
