"""The stage remembers: every version of every record with the night it arrived, so that
a night is computed from what had arrived by it, whichever nights ran since."""

from __future__ import annotations

import csv
import io
import shutil
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from connectors.ingest import ingest
from matching.run import match_stage
from pipeline.cli import invoke
from pipeline.night import run_night
from staging.stage import Stage
from staging.versions import as_of, merge_versions
from synth.generate import generate
from tests.airflow_env import PG_SERVER, fresh_database

D = date(2026, 11, 27)
KEY = "a-test-secret-for-the-replay-of-nights"
NIGHTS = (D, D + timedelta(days=1), D + timedelta(days=2))


# -- the pure core -------------------------------------------------------------------


def _rows(ids: list[str], values: list[int], file: str) -> pl.DataFrame:
    return pl.DataFrame(
        {"source_record_id": ids, "v": values, "file": [file] * len(ids), "row": list(range(2, 2 + len(ids)))}
    )


def test_a_night_sees_the_versions_arrived_by_it_and_nothing_later():
    first = merge_versions(None, _rows(["a", "b"], [1, 1], "f1"), ["v"], D, 0)
    seen_d = as_of(first.added, D)
    second = merge_versions(seen_d, _rows(["a", "b", "c"], [2, 1, 5], "f2"), ["v"], D + timedelta(days=1), 2)
    assert second.outcome["duplicate"].to_list() == [False, True, False]  # b came again unchanged
    versions = pl.concat([first.added, second.added])
    assert versions.height == 4  # a twice, b once, c once
    assert as_of(versions, D).select("source_record_id", "v").rows() == [("a", 1), ("b", 1)]
    later = as_of(versions, D + timedelta(days=5)).select("source_record_id", "v").rows()
    assert later == [("a", 2), ("b", 1), ("c", 5)]
    assert as_of(versions, D - timedelta(days=1)).height == 0


def test_versions_staged_before_a_column_existed_merge_with_the_new_rows():
    old = merge_versions(None, _rows(["a"], [1], "f1"), ["v"], D, 0).added
    new = _rows(["a", "b"], [1, 2], "f2").with_columns(pl.lit(True).alias("id_cell"))
    merged = merge_versions(as_of(old, D), new, ["v"], D + timedelta(days=1), 1)
    assert merged.outcome["duplicate"].to_list() == [True, False]
    assert merged.added["source_record_id"].to_list() == ["b"]


def test_records_tonight_does_not_name_pass_through_a_merge_as_they_were():
    seen = as_of(merge_versions(None, _rows(["a", "b", "z"], [1, 1, 9], "f1"), ["v"], D, 0).added, D)
    tonight = _rows(["b", "c"], [2, 5], "f2").with_columns(pl.lit(True).alias("id_cell"))
    merged = merge_versions(seen, tonight, ["v"], D + timedelta(days=1), 3)
    got = merged.records.select("source_record_id", "v", "file", "id_cell").rows()
    # a and z untouched (from f1, no id_cell: staged before the column), b superseded, c new
    assert got == [("a", 1, "f1", None), ("b", 2, "f2", True), ("c", 5, "f2", True), ("z", 9, "f1", None)]
    assert merged.added["source_record_id"].to_list() == ["b", "c"]
    assert merged.outcome.select("duplicate", "superseded", "replaced").rows() == [(False, False, True), (False, False, False)]


def test_a_snapshot_night_sees_the_latest_whole_delivery_only():
    first = merge_versions(None, _rows(["p1", "p2"], [1, 1], "r1"), ["v"], D, 0).added
    second = merge_versions(None, _rows(["p1"], [1], "r2"), ["v"], D + timedelta(days=1), 2).added
    versions = pl.concat([first, second])
    assert as_of(versions, D, snapshot=True)["source_record_id"].to_list() == ["p1", "p2"]
    assert as_of(versions, D + timedelta(days=1), snapshot=True)["source_record_id"].to_list() == ["p1"]


def test_the_newest_nights_records_are_read_as_kept_and_older_nights_as_of_their_versions(tmp_path):
    """What the newest night sees is kept beside the versions (current/), written in the
    same step; every night reads the same records as before it was kept."""
    stage = Stage(tmp_path)
    deliveries = [
        (D, _rows(["a", "b"], [1, 1], "f1")),
        (D + timedelta(days=1), _rows(["b", "c"], [2, 5], "f2")),  # b changed, c new
        (D + timedelta(days=3), _rows(["a"], [7], "f3")),  # a changed, nothing on the 29th
    ]
    for night, rows in deliveries:
        seen = stage.records("s", night)
        merged = merge_versions(seen, rows, ["v"], night, stage.next_version("s"))
        stage.add_versions("s", merged.added)
    registers = [(D, ["p1", "p2"]), (D + timedelta(days=2), ["p2", "p3"])]
    for night, ids in registers:
        rows = merge_versions(None, _rows(ids, [1] * len(ids), "r"), ["v"], night, stage.next_version("r")).added
        stage.add_versions("r", rows, snapshot=True)
    truth = {  # by hand: per night, each record's latest value by then
        D - timedelta(days=1): None,
        D: [("a", 1), ("b", 1)],
        D + timedelta(days=1): [("a", 1), ("b", 2), ("c", 5)],
        D + timedelta(days=2): [("a", 1), ("b", 2), ("c", 5)],
        D + timedelta(days=3): [("a", 7), ("b", 2), ("c", 5)],
        D + timedelta(days=9): [("a", 7), ("b", 2), ("c", 5)],
    }
    for night, expected in truth.items():
        got = stage.records("s", night)
        assert (got.select("source_record_id", "v").rows() if got is not None else None) == expected, night
        narrow = stage.records("s", night, columns=["v", "source_record_id"])  # only these, kept file or not
        flipped = [(v, r) for r, v in expected] if expected is not None else None
        assert (narrow.rows() if narrow is not None else None) == flipped, night
    assert stage.records("s").select("source_record_id", "v").rows() == truth[D + timedelta(days=3)]
    assert stage.records("r", D + timedelta(days=1))["source_record_id"].to_list() == ["p1", "p2"]
    assert stage.records("r", D + timedelta(days=5))["source_record_id"].to_list() == ["p2", "p3"]
    # the newest nights read the kept file, an older night does not
    kept = pl.read_parquet(tmp_path / "current" / "s.parquet")
    assert kept.select("source_record_id", "v", "arrived").rows() == [
        ("a", 7, D + timedelta(days=3)),
        ("b", 2, D + timedelta(days=1)),
        ("c", 5, D + timedelta(days=1)),
    ]
    assert stage.current("s", D + timedelta(days=3)) is not None and stage.current("s", D + timedelta(days=2)) is None
    for night, numbers in ((D + timedelta(days=3), [4, 2, 3]), (D + timedelta(days=2), [0, 2, 3])):
        assert stage.latest_versions("s", night).sort("source_record_id")["version"].to_list() == numbers
    # a stage that never kept them (staged before they were) reads the same records
    shutil.rmtree(tmp_path / "current")
    for night, expected in truth.items():
        got = Stage(tmp_path).records("s", night)
        assert (got.select("source_record_id", "v").rows() if got is not None else None) == expected, night


# -- three nights of a county ----------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _key():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GUARDLINE_PSEUDONYM_KEY", KEY)
        yield


@pytest.fixture(scope="module")
def deliveries(tmp_path_factory) -> tuple[dict[date, list[Path]], Path]:
    """Three nights' deliveries of one county, as files arriving night after night, each
    named with the day it was made: D the register and most files; D+1 the last 医保
    month; D+2 a re-delivery of that month with every 个人自付 ten times higher (each
    record superseded) and a new register export with lower incomes."""
    made = generate(tmp_path_factory.mktemp("three"), households=300, seed=5, as_of=D, register_format="csv")
    src = made.out / "inbox"
    later = tmp_path_factory.mktemp("later")
    last = sorted((src / "health_insurance").glob("*.csv"))[-1]

    def rewrite(path: Path, encoding: str, column: str, factor: float, name: str, rows: int | None = None) -> Path:
        table = list(csv.reader(io.StringIO(path.read_bytes().decode(encoding))))
        col = table[0].index(column)
        for row in table[1 : rows and rows + 1]:
            try:
                row[col] = f"{float(row[col]) * factor:.2f}"
            except ValueError:
                continue
        out = io.StringIO()
        csv.writer(out, lineterminator="\r\n").writerows(table)
        target = later / path.parent.name / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(out.getvalue().encode(encoding))
        return target

    on_d1 = rewrite(last, "gb18030", "个人自付", 1.0, f"{last.stem}_20261128.csv")
    on_d2 = rewrite(last, "gb18030", "个人自付", 10.0, f"{last.stem}_20261129.csv")
    (register,) = (src / "registry").iterdir()
    export = rewrite(register, "utf-8-sig", "人均纯收入（元）", 0.5, "register_20261129.csv", rows=200)
    first = [p for p in src.rglob("*") if p.is_file() and p != last]
    return {NIGHTS[0]: first, NIGHTS[1]: [on_d1], NIGHTS[2]: [on_d2, export]}, src


def _arrive(deliveries, night: date, inbox: Path) -> None:
    files, src = deliveries
    for path in files[night]:
        target = inbox / (path.relative_to(src) if path.is_relative_to(src) else Path(path.parent.name, path.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)


def _tables(url: str, skip: tuple[str, ...] = ("run_audit",)) -> dict[str, list[tuple]]:
    """Every warehouse table but the log of runs, as sorted rows."""
    from warehouse import schema

    eng = sa.create_engine(url)
    try:
        with eng.connect() as conn:
            return {
                name: sorted(map(tuple, conn.execute(sa.select(table)).all()), key=repr)
                for name, table in schema.metadata.tables.items()
                if name not in skip
            }
    finally:
        eng.dispose()


def _stage_files(root: Path) -> dict[str, pl.DataFrame]:
    return {
        p.relative_to(root).as_posix(): pl.read_parquet(p)
        for p in sorted(root.rglob("*.parquet"))
        if p.relative_to(root).parts[0] not in ("reports", "landing")
    }


def _lists(outbox: Path) -> dict[str, bytes]:
    return {p.relative_to(outbox).as_posix(): p.read_bytes() for p in sorted(outbox.rglob("*.csv"))}


def _three_nights(deliveries, home: Path, url: str, synced_first: bool = False) -> None:
    """The three nights run in order; with ``synced_first``, every night's deliveries
    were staged on their night (the sync DAGs ran) before any night was matched, flagged,
    loaded and listed (a backfill of the nights the rest missed)."""
    inbox = home / "inbox"
    for night in NIGHTS if synced_first else ():
        _arrive(deliveries, night, inbox)
        ingest(inbox, night, home / "stage")
    for night in NIGHTS:
        if not synced_first:
            _arrive(deliveries, night, inbox)
        result = run_night(inbox, night, home / "stage", home / "outbox", url)
        assert result.exit_status == 0, result.reported


def _state(home: Path, url: str, skip: tuple[str, ...] = ("run_audit",)) -> dict:
    return {
        "tables": _tables(url, skip),
        "stage": _stage_files(home / "stage"),
        "lists": _lists(home / "outbox"),
    }


def _assert_same(state: dict, expected: dict) -> None:
    assert state["tables"] == expected["tables"]
    assert state["stage"].keys() == expected["stage"].keys()
    for name, frame in expected["stage"].items():
        assert state["stage"][name].equals(frame), name
    assert state["lists"] == expected["lists"]


def _replay(deliveries, home: Path, url: str) -> None:
    _three_nights(deliveries, home, url)
    flags = {n: Stage(home / "stage").nightly("flags", n) for n in NIGHTS}
    # The later deliveries change the result: the test can tell a night from the next.
    assert not flags[NIGHTS[2]].equals(flags[NIGHTS[1]])
    before = _state(home, url)
    result = run_night(home / "inbox", NIGHTS[1], home / "stage", home / "outbox", url)  # the middle night again
    assert result.exit_status == 0, result.reported
    _assert_same(_state(home, url), before)
    arrived = Stage(home / "stage").versions("health_insurance")["arrived"]
    assert set(arrived) == set(NIGHTS)  # each night's versions kept, none lost


@pytest.fixture(scope="module")
def on_time(deliveries, tmp_path_factory) -> tuple[Path, dict]:
    """The three nights run on time on DuckDB, and what they left (warehouse settings
    aside: they hold when each was made)."""
    home = tmp_path_factory.mktemp("on_time")
    url = f"duckdb:///{home / 'warehouse.duckdb'}"
    _three_nights(deliveries, home, url)
    return home, _state(home, url, ("run_audit", "warehouse_settings"))


def test_rerunning_a_night_after_later_ones_reproduces_it_on_duckdb(deliveries, tmp_path):
    _replay(deliveries, tmp_path, f"duckdb:///{tmp_path / 'warehouse.duckdb'}")


def test_rerunning_a_night_after_later_ones_reproduces_it_on_postgresql(deliveries, tmp_path, pg_url):
    with fresh_database("gl_replay") as name:
        _replay(deliveries, tmp_path, f"{PG_SERVER}/{name}")


def test_a_backfill_of_missed_nights_flags_each_night_as_if_run_on_time(deliveries, on_time, tmp_path):
    """Three nights staged as they arrived but never run further: the backfill runs each
    from what had arrived by it, and leaves what the nights run on time left."""
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    _three_nights(deliveries, tmp_path, url, synced_first=True)
    _assert_same(_state(tmp_path, url, ("run_audit", "warehouse_settings")), on_time[1])


# -- the record's history, and the old layout ---------------------------------------------


def test_history_shows_every_version_of_a_record(on_time, capsys):
    stage = on_time[0] / "stage"
    versions = Stage(stage).versions("health_insurance")
    arrivals = versions.group_by("source_record_id").agg(pl.col("arrived").sort())
    twice = arrivals.filter(pl.col("arrived") == [NIGHTS[1], NIGHTS[2]]).sort("source_record_id")["source_record_id"][0]
    capsys.readouterr()
    assert invoke(["history", twice, "--stage", str(stage)]) == 0
    out = capsys.readouterr().out
    assert out.count("health_insurance") >= 2 and str(NIGHTS[1]) in out and str(NIGHTS[2]) in out
    assert invoke(["history", "no-such-record", "--stage", str(stage)]) == 2


def test_a_stage_of_the_old_layout_is_migrated_once_and_its_files_stay_known(clean_county, tmp_path):
    from tests.conftest import AS_OF, inbox

    ingest(inbox(clean_county), AS_OF, tmp_path)
    stage = Stage(tmp_path)
    match_stage(stage, AS_OF)
    names = stage.sources()
    records = {n: stage.records(n) for n in names}
    ledger, links = stage.ledger(), stage.nightly("links", AS_OF)
    # The layout of before: the latest version of each record, one ledger, one links file.
    (tmp_path / "records").mkdir()
    for n, frame in records.items():
        frame.write_parquet(tmp_path / "records" / f"{n}.parquet")
    ledger.write_parquet(tmp_path / "ledger.parquet")
    links.write_parquet(tmp_path / "links.parquet")
    for gone in ("versions", "ledger", "links"):
        shutil.rmtree(tmp_path / gone)
    (tmp_path / "layout.json").unlink()
    migrated = Stage(tmp_path)
    assert all(migrated.records(n, AS_OF).equals(frame) for n, frame in records.items())
    assert migrated.ledger().equals(ledger)
    assert migrated.nightly("links", AS_OF).equals(links)
    assert not (tmp_path / "records").exists() and not (tmp_path / "ledger.parquet").exists()
    again = ingest(inbox(clean_county), AS_OF, tmp_path)
    assert all(f.status == "skipped" for s in again.sources if s.source != "human_resources" for f in s.files)
