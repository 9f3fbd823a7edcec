"""A night ends cleanly: killed at any step boundary it leaves the previous state or the
new one and the next run completes; two runs on one stage or one warehouse never
interleave; the roles `guardline roles` makes run the night; the synthetic county reads
every source on every night; the demo is clean on any day."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from datetime import date
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from connectors.ingest import Landing, extract, ingest, stage, validate
from connectors.validation import Validator
from guardline.atomic import recover
from guardline.config import today
from pipeline.cli import invoke
from staging.stage import Stage
from synth.generate import generate
from tests.conftest import AS_OF

REPO = Path(__file__).resolve().parents[1]
KEY = "a-test-secret-of-enough-length"


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("GUARDLINE_PSEUDONYM_KEY", KEY)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """A 100-household county's inbox (default noise)."""
    return generate(tmp_path_factory.mktemp("night_county"), households=100, seed=3, as_of=AS_OF).out / "inbox"


def _child(what: str, timeout: float = 240, **args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.killer", what, json.dumps(args, default=str)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _state(root: Path) -> dict[str, object]:
    """What a stage holds, file by file (frames compared by value, JSON as text); the
    Great Expectations reports, locks, scratch folders and the account of each run
    (``runs/``: its timings, like the warehouse's run_audit) aside."""
    out: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if not path.is_file() or rel.startswith(("reports/", ".tx/", "landing/", "runs/")) or path.name == ".lock":
            continue
        out[rel] = pl.read_parquet(path) if path.suffix == ".parquet" else path.read_text("utf-8")
    return out


def _same(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    return all(x.equals(y) if isinstance(x, pl.DataFrame) else x == y for x, y in zip(a.values(), b.values(), strict=True))


def _boundaries(fn) -> list[str]:
    seen: list[str] = []
    fn(seen.append)
    return seen


@pytest.mark.parametrize("source", ["health_insurance", "human_resources", "registry"])
def test_a_source_killed_at_any_boundary_of_its_commit_leaves_the_previous_night_or_the_new(small, tmp_path, source):
    """SIGKILL at every boundary of one source's stage commit (scratch files written,
    journal durable, each file moved, done): the stage is the previous state or the new
    one, never a mix, and re-running the night completes it."""
    before = tmp_path / "before"
    validator = Validator(tmp_path / "reports")
    ingest(small, AS_OF, before, sources=[s for s in ("registry",) if s != source])
    landing = validate(extract(source, small, AS_OF, Stage(before)), validator)
    folder = landing.save(tmp_path / "landing")
    after = tmp_path / "after"
    shutil.copytree(before, after)
    steps = _boundaries(lambda hook: stage(Landing.load(folder), Stage(after), on_step=hook))
    assert steps[0] == "tx:written" and steps[-1] == "tx:done" and len(steps) >= 4
    old, new = _state(before), _state(after)
    assert not _same(old, new)
    for at, step in enumerate(steps):
        killed = tmp_path / f"killed-{at}"
        shutil.copytree(before, killed)
        child = _child("stage", landing=folder, stage=killed, kill_at=at)
        child.wait(240)
        assert child.returncode == -9, (step, child.stderr.read())
        Stage(killed)  # opening a stage finishes (or drops) what the killed commit left
        expected = old if step == "tx:written" else new
        assert _same(_state(killed), expected), f"killed at {step}: neither the previous state nor the new one"
        # The next run completes the night: the same state as a run never killed.
        again = validate(extract(source, small, AS_OF, Stage(killed)), validator)
        stage(again, Stage(killed))
        assert _same(_state(killed), new), f"after a kill at {step}, the re-run differs"


def test_lists_killed_at_any_boundary_are_the_previous_lists_or_the_new(small, tmp_path):
    home = tmp_path / "home"
    assert invoke(_run_args(small, home)) == 0
    register = tmp_path / "register.parquet"  # the register the night saw, for the child process
    Stage(home / "stage").records("registry", AS_OF).write_parquet(register)
    flags_path = home / "stage" / "flags" / f"{AS_OF}.parquet"
    links_path = home / "stage" / "links" / f"{AS_OF}.parquet"  # the members the evidence names
    links = pl.read_parquet(links_path)
    flags = pl.read_parquet(flags_path)
    day = home / "outbox" / AS_OF.isoformat()
    new = {p.name: p.read_bytes() for p in day.glob("*.csv")}
    assert len(new) >= 2, "the county has lists of several townships"
    # The previous attempt listed one township only, with one household.
    first = flags.filter(pl.col("status") != "resolved").head(1)
    from lists.write import write_lists

    steps = _boundaries(
        lambda hook: write_lists(
            flags, pl.read_parquet(register), AS_OF, tmp_path / "probe", on_step=hook, links=links
        )
    )
    for at, step in enumerate(steps):
        outbox = tmp_path / f"outbox-{at}"
        write_lists(first, pl.read_parquet(register), AS_OF, outbox, links=links)
        old = {p.name: p.read_bytes() for p in (outbox / AS_OF.isoformat()).glob("*.csv")}
        child = _child(
            "lists", flags=flags_path, register=register, links=links_path, as_of=AS_OF, outbox=outbox, kill_at=at
        )
        child.wait(240)
        assert child.returncode == -9, (step, child.stderr.read())
        recover(outbox)
        now = {p.name: p.read_bytes() for p in (outbox / AS_OF.isoformat()).glob("*.csv")}
        xlsx = {p.with_suffix(".csv").name for p in (outbox / AS_OF.isoformat()).glob("*.xlsx")}
        assert now in (old, new), f"killed at {step}: a mix of two nights' lists"
        assert xlsx == set(now), f"killed at {step}: a workbook without its CSV or the reverse"
        assert now == (old if step == "tx:written" else new)
        assert sorted(p.suffix for p in (outbox / AS_OF.isoformat()).iterdir()) == sorted(
            [".csv", ".xlsx"] * len(now)
        ), "nothing but the lists in the night's folder"


def _run_args(inbox: Path, home: Path, warehouse: str | None = None, as_of: date = AS_OF) -> list[str]:
    return [
        "run",
        "--inbox",
        str(inbox),
        "--as-of",
        as_of.isoformat(),
        "--stage",
        str(home / "stage"),
        "--outbox",
        str(home / "outbox"),
        "--warehouse",
        warehouse or f"duckdb:///{home / 'warehouse.duckdb'}",
    ]


def _tables(url: str) -> dict[str, pl.DataFrame]:
    eng = sa.create_engine(url)
    out = {}
    with eng.connect() as c:
        for name in ("flags", "record_links", "processed_files", "quarantine", "source_records", "persons"):
            rows = c.execute(sa.text(f"SELECT * FROM {name}")).mappings().all()
            frame = pl.DataFrame([dict(r) for r in rows], infer_schema_length=None)
            out[name] = frame.sort(frame.columns) if frame.height else frame
    eng.dispose()
    return out


@pytest.fixture(scope="module")
def reference(small, tmp_path_factory) -> tuple[Path, list[str]]:
    """A night never killed, and the boundaries its hook saw, in order."""
    from pipeline.night import run_night

    home = tmp_path_factory.mktemp("reference")
    seen: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GUARDLINE_PSEUDONYM_KEY", KEY)
        result = run_night(
            small, AS_OF, home / "stage", home / "outbox", f"duckdb:///{home / 'warehouse.duckdb'}", on_step=seen.append
        )
    assert result.exit_status == 0
    assert [s for s in seen if s.startswith("step:")] == [
        "step:extract+validate",
        "step:match",
        "step:rules",
        "step:load",
        "step:publish",
    ]
    return home, seen


@pytest.mark.parametrize("step", ["step:extract+validate", "step:load"])
def test_a_night_killed_between_steps_is_completed_by_the_next_run(small, reference, tmp_path, step):
    home, seen = tmp_path / "home", reference[1]
    child = _child(
        "night",
        inbox=small,
        as_of=AS_OF,
        stage=home / "stage",
        outbox=home / "outbox",
        warehouse=f"duckdb:///{home / 'warehouse.duckdb'}",
        kill_at=seen.index(step),
    )
    child.wait(300)
    assert child.returncode == -9, child.stderr.read()
    assert invoke(_run_args(small, home)) == 0
    ours = _tables(f"duckdb:///{home / 'warehouse.duckdb'}")
    theirs = _tables(f"duckdb:///{reference[0] / 'warehouse.duckdb'}")
    for name in ours:
        assert ours[name].equals(theirs[name]), name
    assert sorted(p.name for p in (home / "outbox" / AS_OF.isoformat()).iterdir()) == sorted(
        p.name for p in (reference[0] / "outbox" / AS_OF.isoformat()).iterdir()
    )


def _wait_for(path: Path, child: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert child.poll() is None, f"the first run ended early: {child.stderr.read()}"
        assert time.monotonic() < deadline, "the first run never reached its pause"
        time.sleep(0.1)


def test_two_runs_on_one_stage_never_interleave(small, tmp_path, capsys):
    home = tmp_path / "home"
    signal = tmp_path / "paused"
    first = _child(
        "night",
        inbox=small,
        as_of=AS_OF,
        stage=home / "stage",
        outbox=home / "outbox",
        warehouse=f"duckdb:///{home / 'warehouse.duckdb'}",
        pause_at="step:match",
        signal=signal,
        seconds=6,
    )
    _wait_for(signal, first)
    started = time.monotonic()
    assert invoke([*_run_args(small, home), "--lock-timeout", "1"]) == 2
    assert time.monotonic() - started < 15
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the stage" in err[0] and "in use by pid" in err[0], err
    assert first.wait(300) == 0, first.stderr.read()
    # The first run's account is whole, and a second night on top of it changes nothing.
    ledger = Stage(home / "stage").ledger()
    assert (ledger["rows_read"] == ledger["loaded"] + ledger["quarantined"] + ledger["duplicates"]).all()
    before = _state(home / "stage")
    assert invoke(_run_args(small, home)) == 0
    assert _same(_state(home / "stage"), before)


def test_two_runs_on_one_postgresql_warehouse_never_interleave(small, tmp_path, pg_url, capsys):
    schema = f"night_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_url)
    with admin.begin() as c:
        c.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = f"{pg_url}?options=-csearch_path%3D{schema}"
    try:
        signal = tmp_path / "paused"
        first = _child(
            "night",
            inbox=small,
            as_of=AS_OF,
            stage=tmp_path / "a" / "stage",
            outbox=tmp_path / "a" / "outbox",
            warehouse=url,
            pause_at="step:match",
            signal=signal,
            seconds=6,
        )
        _wait_for(signal, first)
        assert invoke([*_run_args(small, tmp_path / "b", url), "--lock-timeout", "1"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "in use by another night" in err[0] and "backend pid" in err[0], err
        assert first.wait(300) == 0, first.stderr.read()
        assert invoke(_run_args(small, tmp_path / "b", url)) == 0  # its turn now
    finally:
        with admin.begin() as c:
            c.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


def test_the_etl_role_runs_the_night_on_postgresql(small, tmp_path, pg_url):
    from warehouse.db import engine, upgrade
    from warehouse.roles import ETL, create_roles

    schema = f"etl_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_url)
    with admin.begin() as c:
        c.execute(sa.text(f"CREATE SCHEMA {schema}"))
    owner = engine(f"{pg_url}?options=-csearch_path%3D{schema}")
    try:
        upgrade(owner)
        create_roles(owner)
        etl_url = sa.make_url(pg_url).set(username=ETL).render_as_string(hide_password=False)
        assert invoke(_run_args(small, tmp_path, f"{etl_url}?options=-csearch_path%3D{schema}")) == 0
        with owner.connect() as c:
            assert c.execute(sa.text("SELECT count(*) FROM flags")).scalar() > 0
            assert c.execute(sa.text("SELECT count(*) FROM run_audit")).scalar() == 1
            # The etl login may not change the schema: the owner migrates.
            etl = sa.create_engine(f"{etl_url}?options=-csearch_path%3D{schema}")
            with pytest.raises(sa.exc.ProgrammingError), etl.begin() as e:
                e.execute(sa.text("CREATE TABLE not_allowed (x int)"))
            etl.dispose()
    finally:
        owner.dispose()
        with admin.begin() as c:
            c.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


@pytest.mark.parametrize("seed", range(1, 11))
def test_the_synthetic_county_reads_every_source_on_every_night(seed, tmp_path):
    made = generate(tmp_path / "county", households=300, seed=seed, as_of=AS_OF)
    for night in (AS_OF, date(2026, 11, 28)):
        result = ingest(made.out / "inbox", night, tmp_path / "stage")
        statuses = {s.source: (s.status, s.reason) for s in result.sources}
        assert all(status in ("ok", "nothing new") for status, _ in statuses.values()), statuses


def test_the_demo_is_clean_on_any_day_however_often_it_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("GUARDLINE_PSEUDONYM_KEY")
    out = tmp_path / "demo"
    assert invoke(["demo", "--out", str(out), "--households", "150"]) == 0
    first = {n: Stage(out / "stage").records(n).height for n in ("registry", "health_insurance")}
    links = Stage(out / "stage").nightly("links", today())
    # A demo of another day left behind: its inbox and stage must not mix with today's.
    (out / "inbox" / "health_insurance" / "yb_settlement_190001.csv").write_bytes(
        (out / "inbox" / "health_insurance").glob("*.csv").__next__().read_bytes().replace(b"JS", b"OLD")
    )
    assert invoke(["demo", "--out", str(out), "--households", "150"]) == 0
    assert {n: Stage(out / "stage").records(n).height for n in first} == first
    again = Stage(out / "stage").nightly("links", today())
    assert again.group_by("match_status").len().sort("match_status").equals(
        links.group_by("match_status").len().sort("match_status")
    )
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.docx").write_bytes(b"not a demo's")
    capsys.readouterr()
    assert invoke(["demo", "--out", str(foreign), "--households", "150"]) == 2
    assert (foreign / "thesis.docx").exists()
    assert "not a demo's" in capsys.readouterr().err


def test_warehouse_urls_as_users_write_them():
    from warehouse.db import normalise_url

    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgresql://u@h:5433/db") == "postgresql+psycopg://u@h:5433/db"
    assert normalise_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("duckdb:///x.duckdb") == "duckdb:///x.duckdb"
