"""Incremental nights pay for tonight's changes and end with the tables a full night makes.

One county, three nights, run twice side by side: once as every night runs (records
scored only when new or changed, the warehouse given only the rows that changed), once
with ``--full`` (every record scored, the county's rows replaced). The second night
brings new 医保 records, new versions of others and changed 人社 contributions; the third
brings nothing (its windows still move). After every night the stage's nightly results
and every warehouse table, on PostgreSQL and on DuckDB, are the same both ways, and the
incremental way did less.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import uuid
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from pipeline.night import run_night
from synth.generate import generate
from tests.conftest import AS_OF
from warehouse import schema

NIGHTS = [AS_OF, AS_OF + timedelta(days=1), AS_OF + timedelta(days=2)]
KEY = "a-test-secret-of-enough-length"
NIGHTLY = ("links", "scored", "flags", "exit", "features")


def _second_delivery(inbox: Path) -> None:
    """Night two: a 医保 file with every row of the latest month's twice over — once under
    new settlement numbers (new records), once with its amounts doubled (new versions of
    the records it had) — and a tenth of the 人社 contributions of the latest period halved."""
    month = sorted((inbox / "health_insurance").glob("*.csv"))[-1]
    table = list(csv.reader(io.StringIO(month.read_bytes().decode("gb18030"))))
    header, rows = table[0], table[1:]
    key, total = header.index("结算流水号"), header.index("医疗费总额")
    new = [[*r[:key], f"{r[key]}N", *r[key + 1 :]] for r in rows if r[key]]
    changed = []
    for r in rows:
        try:
            doubled = f"{2 * float(r[total].replace(',', '')):.2f}"
        except ValueError:
            continue
        changed.append([*r[:total], doubled, *r[total + 1 :]])
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([header, *new, *changed])
    (inbox / "health_insurance" / "yb_settlement_zz_second_night.csv").write_bytes(out.getvalue().encode("gb18030"))
    with sqlite3.connect(inbox / "human_resources" / "exchange.sqlite") as db:
        db.execute(
            "UPDATE rs_contribution_month SET wage_base = wage_base / 2 "
            "WHERE period = (SELECT max(period) FROM rs_contribution_month) AND rowid % 10 = 0"
        )


def _warehouse(url: str) -> dict[str, pl.DataFrame]:
    """Every table but the log of runs, as sorted frames (settings without their clock)."""
    eng = sa.create_engine(url)
    out = {}
    try:
        with eng.connect() as conn:
            for name, table in schema.metadata.tables.items():
                if name == "run_audit":
                    continue
                columns = [c for c in table.c if c.name != "changed_at"]
                rows = conn.execute(sa.select(*columns)).all()
                frame = pl.DataFrame(
                    [tuple(r) for r in rows], schema=[c.name for c in columns], orient="row", infer_schema_length=None
                )
                out[name] = frame.sort(frame.columns, nulls_last=True)
    finally:
        eng.dispose()
    return out


def _nightly(stage: Path, night) -> dict[str, pl.DataFrame]:
    return {kind: pl.read_parquet(stage / kind / f"{night.isoformat()}.parquet") for kind in NIGHTLY}


@pytest.fixture(scope="module")
def nights(tmp_path_factory, pg_url):
    """Both ways, three nights: per way its home, warehouse URL and night results."""
    home = tmp_path_factory.mktemp("incremental")
    inbox = generate(home / "county", households=150, seed=11, as_of=AS_OF).out / "inbox"
    pg_schema = f"incr_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_url)
    with admin.begin() as c:
        c.execute(sa.text(f"CREATE SCHEMA {pg_schema}"))
    ways = {
        "incremental": f"{pg_url}?options=-csearch_path%3D{pg_schema}",
        "full": f"duckdb:///{home / 'full.duckdb'}",
        "incremental duckdb": f"duckdb:///{home / 'incremental.duckdb'}",
    }
    done: dict[str, list] = {way: [] for way in ways}
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("GUARDLINE_PSEUDONYM_KEY", KEY)
            for i, night in enumerate(NIGHTS):
                if i == 1:
                    _second_delivery(inbox)
                for way, url in ways.items():
                    r = run_night(inbox, night, home / way / "stage", home / way / "outbox", url, full=way == "full")
                    assert r.exit_status == 0, r.reported
                    done[way].append((r, _nightly(home / way / "stage", night), _warehouse(url)))
        yield done
    finally:
        with admin.begin() as c:
            c.execute(sa.text(f"DROP SCHEMA IF EXISTS {pg_schema} CASCADE"))
        admin.dispose()


@pytest.mark.parametrize("way", ["incremental", "incremental duckdb"])
@pytest.mark.parametrize("night", [0, 1, 2])
def test_an_incremental_night_ends_with_the_tables_of_a_full_one(nights, way, night):
    _, stage_full, tables_full = nights["full"][night]
    _, stage_incr, tables_incr = nights[way][night]
    for kind, frame in stage_full.items():
        assert stage_incr[kind].equals(frame), f"{kind} of night {night + 1} differs"
    assert tables_incr.keys() == tables_full.keys()
    for name, frame in tables_full.items():
        other = tables_incr[name]
        assert other.height == frame.height, (name, other.height, frame.height)
        assert other.to_dicts() == frame.to_dicts(), f"warehouse table {name} of night {night + 1} differs"


def test_the_incremental_nights_did_less(nights):
    full = [r for r, _, _ in nights["full"]]
    incr = [r for r, _, _ in nights["incremental"]]
    # The first night has nothing to continue: both ways score and write everything.
    def links(night: dict) -> int:
        return sum(night["links"].values())

    assert incr[0].matched["scored"] == full[0].matched["scored"] == links(incr[0].matched)
    # The second scores its new and changed records (and their groups), carries the rest.
    second = incr[1].matched
    assert 0 < second["scored"] < links(second) and second["carried"] == links(second) - second["scored"]
    assert full[1].matched["scored"] == links(full[1].matched)
    # The third has nothing new: no record scored, no row of the state tables written but
    # the accounts of its two 人社 pulls (each night's pull is a file of its own).
    assert incr[2].matched["scored"] == 0 and incr[2].matched["carried"] == links(incr[2].matched)
    changed = dict(incr[2].loaded.changed)
    assert changed.pop("processed_files") == 2 and changed.pop("flags") > 0, changed
    changed.pop("exit_candidates")
    assert changed and all(n == 0 for n in changed.values()), changed
    assert sum(incr[1].loaded.changed.values()) < sum(full[1].loaded.changed.values())
    # Tables made of what the last load's were made of are not even built: the register's
    # on the second night, the records' and links' too on the third; --full builds all.
    assert set(incr[1].loaded.unread) == {"households", "persons"}
    assert set(incr[2].loaded.unread) == {"households", "persons", "source_records", "record_links"}
    assert all(r.loaded.unread == [] for r in full)
    # The rules computed the features of the households whose inputs changed or windows
    # moved only, and continued the others'.
    for n in (1, 2):
        assert incr[n].flagged["features_computed"] < full[n].flagged["features_computed"], n
    assert incr[0].flagged["features_computed"] == full[0].flagged["features_computed"] > 0
    # The 人社 pull of the third night types and validates none of the rows it re-read.
    hr = next(s for s in incr[2].ingested.sources if s.source == "human_resources")
    assert hr.total("rows_read") > 0 and hr.total("duplicates") == hr.total("rows_read") and hr.total("loaded") == 0


def test_the_register_prepared_for_matching_is_kept_while_the_register_and_code_stay(nights, monkeypatch):
    """A scoring night prepares the register once and keeps it; the nights after it take
    the kept one while the register's rows are the same (the full way, which prepares it
    afresh every night, made the same links above), and never when they changed."""
    from matching import incremental, run
    from matching.prepare import register_frame
    from staging.stage import Stage

    stage = Stage(nights["incremental"][-1][0].outbox.parent / "stage")
    persons = stage.records("registry", NIGHTS[-1])
    digest = incremental.rows_digest(persons)
    assert stage.prepared_register(incremental.fingerprint(digest, "prepared register")).equals(register_frame(persons))

    def refuse(_persons):
        raise AssertionError("prepared again")

    monkeypatch.setattr(run, "register_frame", refuse)
    assert run._prepared_register(stage, persons, digest).equals(register_frame(persons))
    moved = persons.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("新村")).otherwise("village").alias("village"))
    with pytest.raises(AssertionError, match="prepared again"):
        run._prepared_register(stage, moved, incremental.rows_digest(moved))


def test_features_continue_only_the_night_they_were_computed_from(nights, tmp_path):
    """A night continues the earlier night's features only while that night's links are
    the ones they were computed from: rewritten links (the night matched again) make the
    night compute every household, with the same table."""
    import shutil

    from rules.run import flag_stage
    from staging.stage import Stage

    shutil.copytree(nights["incremental"][-1][0].outbox.parent / "stage", tmp_path / "stage")
    stage = Stage(tmp_path / "stage")
    last, before = NIGHTS[-1], NIGHTS[-2]
    kept = stage.nightly("features", last)
    again = flag_stage(stage, last)
    households = kept.height
    assert again.computed < households and stage.nightly("features", last).equals(kept)
    links = stage.nightly("links", before)
    moved = links.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("unmatched")).otherwise("match_status").alias("match_status")
    )
    stage.save_nightly("links", before, moved)
    rewritten = flag_stage(stage, last)
    assert rewritten.computed == households and stage.nightly("features", last).equals(kept)
