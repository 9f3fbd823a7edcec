"""The province the Airflow tests run on: three synthetic counties in the province layout,
a fresh Airflow metadata database and warehouse on the local PostgreSQL, a local SMTP
server and webhook receiver, the Airflow environment that points at them. Test modules
import these fixtures: each module gets its own province (module scope), so two modules
run side by side on the suite's two processes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from synth.generate import generate
from tests.airflow_env import airflow, base_env, connection, fresh_database, receivers
from tests.conftest import AS_OF

# A province of three counties: different sizes and register formats; the first reaches
# its 人社 exchange through its own connection, the others through the provincial one. (Seed 6:
# with seeds 4 and 5 this small county gets a one-row monthly file whose only ID Excel
# mangled, and the valid-ID expectation refuses it whole; the refusal path has its own test.)
# The third county's match raises: a staged file of it is damaged on disk.
COUNTIES = {
    "433124": {"households": 400, "seed": 3, "register_format": "csv"},
    "433125": {"households": 250, "seed": 6, "register_format": "xlsx"},
    "433126": {"households": 120, "seed": 6, "register_format": "csv"},
}
COUNTY, BROKEN = "433124", "433126"
HEALTHY = [c for c in COUNTIES if c != BROKEN]
KEY = "a-test-secret-of-enough-length"
# 01:00 in Shanghai on the 27th is still the 26th in UTC: the night is the local date.
LOGICAL = "2026-11-26T17:00:00+00:00"
SOURCES = ("registry", "civil_affairs", "health_insurance", "emergency_management", "human_resources")
SYNC_DAGS = {
    "registry": "guardline_register_refresh",
    **{s: f"guardline_sync_{s}" for s in SOURCES[1:]},
}
MATCH_DAG = "guardline_match_and_flag"
PG = "postgresql+psycopg://postgres@127.0.0.1:5432"


@pytest.fixture(scope="module")
def province(tmp_path_factory) -> Path:
    """Three counties' deliveries in the province layout (inbox/<county>/...); their 人社
    exchange databases outside the inbox, reached through Airflow connections."""
    root = tmp_path_factory.mktemp("province")
    (root / "exchange").mkdir()
    for code, spec in COUNTIES.items():
        county = generate(root / "generated" / code, as_of=AS_OF, county=code, **spec)
        inbox = root / "inbox" / code
        shutil.copytree(county.out / "inbox", inbox)
        shutil.move(inbox / "human_resources" / "exchange.sqlite", exchange(root, code))
        (inbox / "human_resources").rmdir()
    return root


def exchange(province: Path, county: str) -> Path:
    return province / "exchange" / f"{county}.sqlite"


@pytest.fixture(scope="module")
def databases():
    with fresh_database("guardline_airflow") as meta_db, fresh_database("guardline_wh") as warehouse:
        yield meta_db, warehouse


@pytest.fixture(scope="module")
def told():
    """The local SMTP server and webhook receiver the alerts go to."""
    with receivers() as got:
        yield got


@pytest.fixture(scope="module")
def env(tmp_path_factory, province, databases, told) -> dict[str, str]:
    meta_db, warehouse = databases
    env = base_env(
        tmp_path_factory.mktemp("airflow_home"),
        meta_db,
        guardline_inbox=str(province / "inbox"),
        guardline_stage=str(province / "stage"),
        guardline_outbox=str(province / "outbox"),
        guardline_pseudonym_key=KEY,
    )
    env["AIRFLOW_CONN_GUARDLINE_WAREHOUSE"] = connection(
        "postgres", host="127.0.0.1", port=5432, login="postgres", schema=warehouse
    )
    first, second, third = COUNTIES
    for county in (first, third):
        env[f"AIRFLOW_CONN_GUARDLINE_HR_EXCHANGE_{county}"] = connection(
            "sqlite", extra={"sqlalchemy_url": f"sqlite:///{exchange(province, county)}"}
        )
    env["AIRFLOW_CONN_GUARDLINE_HR_EXCHANGE"] = connection(
        "sqlite", extra={"sqlalchemy_url": f"sqlite:///{exchange(province, second)}"}
    )
    env.update(told.connections())
    env["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps(
        {
            "type": "file",
            "log_file_path": str(Path(env["AIRFLOW_HOME"]) / "openlineage.jsonl"),
            "append": True,
        }
    )
    for args in (
        ("db", "migrate"),
        ("dags", "reserialize"),
        ("pools", "set", "guardline_warehouse", "1", "one county's load at a time"),
    ):
        done = airflow(env, *args)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return env


@pytest.fixture
def isolated_env(env):
    """The module's Airflow on a copy of its metadata database: a test whose runs and asset
    events must not reach the module's other tests (whatever their order) uses it."""
    with fresh_database(
        "guardline_airflow_copy", template=env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].rsplit("/", 1)[1]
    ) as copy:
        yield {
            **env,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://postgres@127.0.0.1:5432/{copy}",
        }


def metadata(env: dict[str, str]) -> str:
    return env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("psycopg2", "psycopg")


def rows(url: str, query: str, **params: object) -> list[dict]:
    eng = sa.create_engine(url)
    try:
        with eng.connect() as c:
            return [dict(r._mapping) for r in c.execute(sa.text(query), params)]
    finally:
        eng.dispose()


def read(url: str, query: str) -> pl.DataFrame:
    return pl.DataFrame(rows(url, query), infer_schema_length=None)


def finish(procs: dict[str, subprocess.Popen], env: dict[str, str]) -> None:
    for dag_id, proc in procs.items():
        assert proc.wait(timeout=600) == 0, (Path(env["AIRFLOW_HOME"]) / f"{dag_id}.log").read_text()[-3000:]


def log_of(env: dict[str, str], dag_id: str) -> str:
    return (Path(env["AIRFLOW_HOME"]) / f"{dag_id}.log").read_text()


# Each table with its key: rows are compared in key order (sorted here, not by the
# databases, whose text collations differ).
NIGHT_TABLES = {
    "flags": ("as_of_date", "household_id", "rule_id"),
    "exit_candidates": ("as_of_date", "household_id"),
    "record_links": ("source", "source_record_id"),
}


def table_of(url: str | list[str], name: str, query: str = "SELECT * FROM {table}") -> pl.DataFrame:
    """A table (of one warehouse, or of several stacked) in key order."""
    urls = [url] if isinstance(url, str) else url
    frames = [read(u, query.format(table=name)) for u in urls]
    return pl.concat(frames, how="vertical_relaxed").sort(NIGHT_TABLES.get(name, "person_id"))
