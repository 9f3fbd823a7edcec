"""The warehouse: one schema on DuckDB and on the real PostgreSQL, idempotent atomic loads,
the contract's views, masked identifiers for analysts."""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from connectors.ingest import ingest
from matching.run import match_stage
from rules.run import flag_stage
from staging.stage import Stage
from synth.generate import generate
from tests.conftest import AS_OF
from warehouse import load as load_module
from warehouse.db import engine
from warehouse.load import load_night, record_run
from warehouse.schema import metadata

# Every table but the audit log, which records each run (re-running a night adds a row).
TABLES = sorted(t for t in metadata.tables if t != "run_audit")


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    county = generate(tmp_path_factory.mktemp("wh_county"), households=300, seed=9, as_of=AS_OF)
    stage = Stage(tmp_path_factory.mktemp("wh_stage"))
    ingest(county.out / "inbox", AS_OF, stage.root)
    match_stage(stage, AS_OF)
    flag_stage(stage, AS_OF)
    return stage


@pytest.fixture(params=["duckdb", "postgresql"])
def warehouse(request, tmp_path):
    if request.param == "duckdb":
        eng = engine(f"duckdb:///{tmp_path / 'w.duckdb'}")
        yield eng
        eng.dispose()
        return
    pg_url = request.getfixturevalue("pg_url")
    schema_name = f"wh_{tmp_path.name[-20:].replace('-', '_').lower()}"
    admin = sa.create_engine(pg_url)
    with admin.begin() as c:
        c.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema_name} CASCADE"))
        c.execute(sa.text(f"CREATE SCHEMA {schema_name}"))
    eng = engine(f"{pg_url}?options=-csearch_path%3D{schema_name}")
    yield eng
    eng.dispose()
    with admin.begin() as c:
        c.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema_name} CASCADE"))
    admin.dispose()


def _head_revision() -> str:
    """The newest migration, as Alembic reads the versions folder."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from warehouse.db import MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg).get_current_head()


def _digest(eng: sa.Engine) -> dict[str, str]:
    out = {}
    with eng.connect() as c:
        for name in TABLES:
            rows = c.execute(sa.text(f"SELECT * FROM {name}")).fetchall()
            out[name] = hashlib.sha256(repr(sorted(map(repr, rows))).encode()).hexdigest()
    return out


def test_loading_a_night_twice_leaves_every_table_identical(night, warehouse):
    first = load_night(warehouse, night, AS_OF, demo=True)
    assert first.rows["persons"] == night.records("registry").height
    assert first.rows["record_links"] == night.nightly("links", AS_OF).height
    staged = sum(
        night.records(n).height
        for n in (
            "civil_affairs",
            "health_insurance",
            "emergency_management",
            "human_resources.rs_employment_event",
            "human_resources.rs_contribution_month",
        )
        if night.records(n) is not None
    )
    assert first.rows["source_records"] == staged
    before = _digest(warehouse)
    record_run(warehouse, AS_OF, {"links": {"matched": 1}}, datetime(2026, 11, 27, 23))
    load_night(warehouse, night, AS_OF, demo=True)
    record_run(warehouse, AS_OF, {"links": {"matched": 1}}, datetime(2026, 11, 27, 23, 30))
    assert _digest(warehouse) == before
    with warehouse.connect() as c:
        audit = c.execute(sa.text("SELECT run_id, code_version, counts FROM run_audit")).fetchall()
    assert len(audit) == 2 and all(r.code_version and '"matched": 1' in r.counts for r in audit)


def test_a_load_written_in_slices_writes_what_one_slice_writes(night, tmp_path, monkeypatch):
    """A county's rows are completed and inserted a slice at a time: slices of 37 rows
    (every table of the night in several, the last one short) leave every table as
    one slice does."""
    whole = engine(f"duckdb:///{tmp_path / 'whole.duckdb'}")
    sliced = engine(f"duckdb:///{tmp_path / 'sliced.duckdb'}")
    try:
        load_night(whole, night, AS_OF, demo=True)
        monkeypatch.setattr(load_module, "SLICE_ROWS", 37)
        assert night.nightly("links", AS_OF).height > 10 * 37
        loaded = load_night(sliced, night, AS_OF, demo=True)
        assert loaded.rows["record_links"] == night.nightly("links", AS_OF).height
        assert _digest(sliced) == _digest(whole) | {"warehouse_settings": _digest(sliced)["warehouse_settings"]}
        settings = "SELECT name, value FROM warehouse_settings ORDER BY name"  # not when they were set
        with whole.connect() as a, sliced.connect() as b:
            assert a.execute(sa.text(settings)).all() == b.execute(sa.text(settings)).all()
    finally:
        whole.dispose()
        sliced.dispose()


@pytest.mark.parametrize("missing", ["links", "flags"])
def test_a_night_not_matched_or_flagged_is_refused_before_anything_is_written(night, tmp_path, missing):
    import shutil

    from guardline.errors import GuardlineError

    stage = Stage(shutil.copytree(night.root, tmp_path / "stage"))
    stage.layout.nightly(missing, AS_OF).unlink()
    eng = engine(f"duckdb:///{tmp_path / 'w.duckdb'}")
    with pytest.raises(GuardlineError, match="not complete"):
        load_night(eng, stage, AS_OF, demo=True)
    assert sa.inspect(eng).get_table_names() == [], "refused before the warehouse was touched"
    eng.dispose()


def test_a_failed_load_leaves_the_previous_state(night, warehouse, monkeypatch):
    load_night(warehouse, night, AS_OF, demo=True)
    before = _digest(warehouse)
    real = load_module.bulk_insert

    def failing(conn, table, frame):
        if table.name == "flags":
            raise RuntimeError("the load died here")
        return real(conn, table, frame)

    monkeypatch.setattr(load_module, "bulk_insert", failing)
    with pytest.raises(RuntimeError):
        load_night(warehouse, night, AS_OF, demo=True)
    assert _digest(warehouse) == before, "one transaction: nothing of the failed load remains"
    monkeypatch.setattr(load_module, "bulk_insert", real)
    load_night(warehouse, night, AS_OF, demo=True)
    assert _digest(warehouse) == before


def test_views_have_the_contracts_columns_and_analysts_see_no_full_identifier(night, warehouse):
    load_night(warehouse, night, AS_OF, demo=True)
    with warehouse.connect() as c:
        links = c.execute(sa.text("SELECT * FROM v_record_links"))
        assert list(links.keys()) == [
            "source",
            "record_pseudonym",
            "event_date",
            "amount",
            "person_id",
            "household_id",
            "match_status",
            "match_probability",
            "match_method",
        ]
        flagged = c.execute(sa.text("SELECT * FROM v_flagged_households"))
        assert list(flagged.keys()) == [
            "household_id",
            "rule_id",
            "as_of_date",
            "severity",
            "first_flagged_date",
            "status",
            "evidence",
            "assistance",
        ]
        assert len(flagged.fetchall()) == night.nightly("flags", AS_OF).height
        masked = c.execute(sa.text("SELECT * FROM v_persons_masked")).mappings().fetchall()
        summary = c.execute(sa.text("SELECT sum(households) FROM v_township_summary")).scalar_one()
        version = c.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
    assert version == _head_revision()
    firing = night.nightly("flags", AS_OF).filter(pl.col("status") != "resolved")
    assert summary == firing.select("household_id", "rule_id", "severity").unique().height
    full = set(night.records("registry")["id_number"])
    assert masked and not any(row["id_masked"] in full for row in masked)
    assert all(row["id_masked"][6:-4].strip("*") == "" for row in masked)


@pytest.mark.parametrize("warehouse", ["postgresql"], indirect=True)
def test_the_analyst_role_reads_masked_views_and_is_refused_identifiers(night, warehouse):
    from warehouse.roles import ANALYST, create_roles

    load_night(warehouse, night, AS_OF, demo=True)
    create_roles(warehouse)
    create_roles(warehouse)  # again: nothing changes, nothing fails
    url = warehouse.url.set(username=ANALYST)
    analyst = sa.create_engine(url)
    try:
        with analyst.connect() as c:
            assert c.execute(sa.text("SELECT count(*) FROM v_persons_masked")).scalar_one() > 0
            assert c.execute(sa.text("SELECT count(*) FROM v_record_links")).scalar_one() > 0
        for table in ("persons", "households", "record_links"):
            with analyst.connect() as c, pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
                c.execute(sa.text(f"SELECT * FROM {table}"))
    finally:
        analyst.dispose()


@pytest.mark.parametrize("warehouse", ["postgresql"], indirect=True)
def test_the_roles_take_their_passwords_from_the_environment_and_are_no_superusers(warehouse, monkeypatch):
    """As docker-compose's warehouse-migrate job creates them."""
    from warehouse.db import upgrade
    from warehouse.roles import ANALYST, ETL, MONITOR, create_roles, password_variable

    secret = "a-password-with-'quote"
    monkeypatch.setenv(password_variable(ANALYST), secret)
    upgrade(warehouse)
    assert password_variable(ETL) == "GUARDLINE_ETL_PASSWORD"
    create_roles(warehouse)
    with warehouse.connect() as c:
        rows = c.execute(
            sa.text(
                "SELECT rolname, rolsuper, rolcreaterole, rolpassword FROM pg_authid WHERE rolname IN (:a, :e, :m)"
            ),
            {"a": ANALYST, "e": ETL, "m": MONITOR},
        ).all()
    assert {r.rolname for r in rows} == {ANALYST, ETL, MONITOR}
    assert not any(r.rolsuper or r.rolcreaterole for r in rows)
    analyst = next(r for r in rows if r.rolname == ANALYST)
    assert analyst.rolpassword and secret not in analyst.rolpassword, "stored hashed"


def test_roles_need_postgresql(tmp_path):
    from guardline.errors import GuardlineError
    from warehouse.roles import create_roles

    with pytest.raises(GuardlineError, match="PostgreSQL"):
        create_roles(engine(f"duckdb:///{tmp_path / 'x.duckdb'}"))


def test_the_data_dictionary_describes_every_column_of_every_view(night, tmp_path):
    from warehouse.dictionary import DICTIONARY, markdown
    from warehouse.schema import VIEWS

    eng = engine(f"duckdb:///{tmp_path / 'd.duckdb'}")
    load_night(eng, night, AS_OF, demo=True)
    with eng.connect() as c:
        for view in VIEWS:
            columns = list(c.execute(sa.text(f"SELECT * FROM {view} LIMIT 0")).keys())
            assert list(DICTIONARY[view][1]) == columns, view
    eng.dispose()
    assert "## `v_record_links`" in markdown()


def test_a_load_killed_mid_way_leaves_the_previous_state_and_the_next_completes(night, warehouse, tmp_path):
    import json
    import signal
    import subprocess
    import sys
    import time

    load_night(warehouse, night, AS_OF, demo=True)
    before = _digest(warehouse)
    url = warehouse.url.render_as_string(hide_password=False)
    warehouse.dispose()  # DuckDB: one process may hold the file
    signal_file = tmp_path / "paused"
    args = {
        "warehouse": url,
        "stage": str(night.root),
        "as_of": AS_OF.isoformat(),
        "pause_at": "load:flags",
        "signal": str(signal_file),
        "seconds": 60,
    }
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-m", "tests.killer", "load", json.dumps(args)], cwd=repo)
    try:
        deadline = time.time() + 120
        while not signal_file.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert signal_file.exists(), "the load reached the middle of its transaction"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _digest(warehouse) == before, "nothing of the killed load remains"
    load_night(warehouse, night, AS_OF, demo=True)
    assert _digest(warehouse) == before


def test_a_load_builds_again_only_the_tables_whose_inputs_changed(night, warehouse, tmp_path):
    import shutil

    stage = Stage(shutil.copytree(night.root, tmp_path / "stage"))
    first = load_night(warehouse, stage, AS_OF, demo=True)
    assert first.unread == []  # a warehouse the stage never loaded: every table built
    before = _digest(warehouse)
    again = load_night(warehouse, stage, AS_OF, demo=True)
    assert set(again.unread) == {"households", "persons", "source_records", "record_links"}
    assert again.rows == first.rows and _digest(warehouse) == before
    # A reviewer's decision changes one link and nothing else: the links are built again,
    # and only they (the register and the records are what they were).
    links = stage.nightly("links", AS_OF)
    moved = links.filter(pl.col("match_status") == "matched").row(0, named=True)
    changed = links.with_columns(
        pl.when((pl.col("source") == moved["source"]) & (pl.col("source_record_id") == moved["source_record_id"]))
        .then(pl.lit("unmatched"))
        .otherwise(pl.col("match_status"))
        .alias("match_status")
    )
    stage.save_nightly("links", AS_OF, changed)
    kept = {n: stage.layout.loaded(n).stat().st_ino for n in ("households", "persons", "source_records", "record_links")}
    third = load_night(warehouse, stage, AS_OF, demo=True)
    assert set(third.unread) == {"households", "persons", "source_records"}
    assert third.changed["record_links"] == 2  # the one link's old row out, its new row in
    # The account keeps the tables left unread as their files were; the links' file is new.
    now = {n: stage.layout.loaded(n).stat().st_ino for n in kept}
    assert {n for n in kept if now[n] != kept[n]} == {"record_links"}
    assert set(load_night(warehouse, stage, AS_OF, demo=True).unread) == set(kept), "the account read back whole"
    with warehouse.connect() as c:
        status = c.execute(
            sa.text("SELECT match_status FROM record_links WHERE source = :s AND source_record_id = :r"),
            {"s": moved["source"], "r": moved["source_record_id"]},
        ).scalar_one()
    assert status == "unmatched"
    # The same stage into a warehouse whose rows are not the account's: every table built.
    fresh = engine(f"duckdb:///{tmp_path / 'other.duckdb'}")
    try:
        assert load_night(fresh, stage, AS_OF, demo=True).unread == []
    finally:
        fresh.dispose()


def test_a_duckdb_warehouse_of_single_precision_is_widened_to_double(tmp_path):
    """Warehouses made before migration 0004 held money and probabilities as 4-byte
    FLOAT on DuckDB; upgrading widens them in place, views and rows intact."""
    from warehouse.db import upgrade

    eng = engine(f"duckdb:///{tmp_path / 'old.duckdb'}")
    upgrade(eng, "0003")
    with eng.begin() as c:
        c.execute(sa.text("ALTER TABLE households ALTER COLUMN wage_income TYPE FLOAT"))
        c.execute(sa.text("INSERT INTO households (household_id, wage_income) VALUES ('h1', 12345.67)"))
        assert c.execute(sa.text("SELECT wage_income FROM households")).scalar_one() != 12345.67
    upgrade(eng)
    with eng.begin() as c:
        kind = c.execute(
            sa.text(
                "SELECT data_type FROM information_schema.columns "
                "WHERE table_name = 'households' AND column_name = 'wage_income'"
            )
        ).scalar_one()
        c.execute(sa.text("UPDATE households SET wage_income = 12345.67"))
        assert (kind, c.execute(sa.text("SELECT wage_income FROM households")).scalar_one()) == (
            "DOUBLE",
            12345.67,
        )
        assert c.execute(sa.text("SELECT count(*) FROM v_persons_masked")).scalar_one() == 0
    eng.dispose()


@pytest.mark.parametrize("order", ["433125 first", "433124 first"])
def test_a_record_two_counties_hold_is_one_row_the_best_link_whoever_loads_first(warehouse, order):
    """A provincial 人社 exchange pulled by two counties: the record is one row, its
    match wins over an unmatched copy, and between equals the smaller county code wins,
    in whichever order the counties load."""
    from warehouse.db import upgrade
    from warehouse.schema import record_links

    def links(county: str, statuses: dict[str, str]) -> pl.DataFrame:
        return pl.DataFrame(
            [
                {
                    "source": "human_resources",
                    "source_record_id": record,
                    "person_id": f"P{county}{record}" if status == "matched" else None,
                    "match_status": status,
                    "county_code": county,
                }
                for record, status in statuses.items()
            ]
        )

    counties = {
        "433125": links("433125", {"r1": "unmatched", "r2": "matched", "r3": "unmatched"}),
        "433124": links("433124", {"r1": "matched", "r2": "unmatched", "r3": "unmatched", "r4": "unmatched"}),
    }
    upgrade(warehouse)
    for county in sorted(counties, reverse=order == "433125 first"):
        with warehouse.begin() as conn:
            kept = load_module._merge_shared(conn, record_links, counties[county], county)
            load_module.bulk_insert(conn, record_links, kept)
    with warehouse.connect() as conn:
        rows = conn.execute(
            sa.select(
                record_links.c.source_record_id, record_links.c.match_status, record_links.c.county_code
            )
        ).all()
    assert sorted(tuple(r) for r in rows) == [
        ("r1", "matched", "433124"),  # the match wins
        ("r2", "matched", "433125"),  # the match stays
        ("r3", "unmatched", "433124"),  # equals: the smaller county code
        ("r4", "unmatched", "433124"),
    ]


def test_bulk_rows_arrive_exactly_as_given_whatever_the_column_type(warehouse):
    """The bulk path (binary COPY from Arrow on PostgreSQL, Arrow on DuckDB) writes each
    column as its own type: 64-bit integers into an integer column, a column that is all
    null (polars types it Null), text with Chinese, a NUL-free ``|``, dates and times."""
    table = sa.Table(
        "bulk_types",
        sa.MetaData(),
        sa.Column("k", sa.String, primary_key=True),
        sa.Column("small", sa.Integer),
        sa.Column("big", sa.BigInteger),
        sa.Column("amount", sa.Double),
        sa.Column("flag", sa.Boolean),
        sa.Column("day", sa.Date),
        sa.Column("stamped", sa.DateTime),
        sa.Column("nothing", sa.String),
    )
    table.create(warehouse)
    rows = [
        (
            "石娟红|433124",
            7,
            4_331_241_990_010_100_00,
            -12.5,
            True,
            date(2026, 11, 30),
            datetime(2026, 12, 1, 3, 4, 5, 600),
        ),
        ("王芳", -1, None, None, None, None, None),
        ("", None, 0, 1e9, False, date(1900, 1, 1), datetime(2099, 12, 31, 23, 59, 59)),
    ]
    frame = pl.DataFrame(
        rows, schema=["k", "small", "big", "amount", "flag", "day", "stamped"], orient="row"
    ).with_columns(pl.lit(None).alias("nothing"))
    assert frame.schema["small"] == pl.Int64 and frame.schema["nothing"] == pl.Null
    with warehouse.begin() as conn:
        assert load_module.bulk_insert(conn, table, frame) == 3
    with warehouse.connect() as conn:
        back = conn.execute(sa.select(table).order_by(table.c.k)).all()
    assert sorted(tuple(r) for r in back) == sorted((*r, None) for r in rows)
