"""The DAGs under a real Airflow 3: they parse fast and light; `airflow dags test` runs the
whole night against a PostgreSQL warehouse and lands exactly the flags `guardline run`
does; the asset events it leaves trigger match-and-flag under a real scheduler, whose
mapped tasks a real Celery worker (Redis broker) executes; a refused delivery fails its
run with a callback that names the source and the reason."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from synth.generate import generate
from tests.airflow_env import (
    ROOT,
    airflow,
    base_env,
    connection,
    dags_test,
    fresh_database,
    run_state,
    services,
)
from tests.conftest import AS_OF

# A province of two counties: different sizes and register formats; the first reaches its
# 人社 exchange through its own connection, the second through the provincial one. (Seed 6:
# with seeds 4 and 5 this small county gets a one-row monthly file whose only ID Excel
# mangled, and the valid-ID expectation refuses it whole; the refusal path has its own test.)
COUNTIES = {
    "433124": {"households": 400, "seed": 3, "register_format": "csv"},
    "433125": {"households": 250, "seed": 6, "register_format": "xlsx"},
}
COUNTY = "433124"
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

pytestmark = pytest.mark.usefixtures("pg_url")


def test_every_dag_file_parses_in_under_a_second_without_heavy_imports():
    # A fresh interpreter, as the dag-processor has: what parsing imports is what it costs.
    code = """
import json, sys, time
from airflow.dag_processing.dagbag import DagBag
t = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
total = time.perf_counter() - t
print(json.dumps({
    "errors": {k: v[-300:] for k, v in bag.import_errors.items()},
    "files": {s.file: s.duration.total_seconds() for s in bag.dagbag_stats},
    "dags": sorted(bag.dags),
    "heavy": [m for m in ("polars", "great_expectations", "pandas", "rapidfuzz", "duckdb") if m in sys.modules],
    "total": total,
}))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    out = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "dags")], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["errors"] == {}
    assert report["dags"] == sorted([*SYNC_DAGS.values(), MATCH_DAG])
    assert set(report["files"]) == {"guardline_sync.py", "guardline_match_and_flag.py"}
    assert all(seconds < 1.0 for seconds in report["files"].values()), report["files"]
    assert report["heavy"] == []


def test_the_dags_are_what_the_configuration_says():
    from airflow.dag_processing.dagbag import DagBag

    from pipeline import orchestration as orch

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    config = orch.config()
    for source, dag_id in SYNC_DAGS.items():
        dag = bag.dags[dag_id]
        assert dag.timetable.expression == config["sources"][source]["schedule"]
        assert str(dag.timetable.timezone) == "Asia/Shanghai"
        assert dag.max_active_runs == 1 and not dag.catchup
        assert set(dag.task_dict) == {"night", "counties", "extract", "validate", "stage", "verdict"}
        for task in dag.tasks:
            kwargs = getattr(task, "partial_kwargs", None) or vars(task)
            assert kwargs["retries"] == config["retries"], task.task_id
            assert kwargs["retry_exponential_backoff"], task.task_id
            assert kwargs["on_failure_callback"], task.task_id
        assert [a.name for a in dag.task_dict["stage"].outlets] == [f"guardline_stage_{source}"]
        assert type(dag.task_dict["extract"]).__name__ == "DecoratedMappedOperator"
        assert type(dag.task_dict["validate"]).__name__ == "DecoratedMappedOperator"
    match = bag.dags[MATCH_DAG]
    condition = match.timetable.asset_condition
    assert type(condition).__name__ == "AssetAll"
    assert sorted(a.name for a in condition.objects) == sorted(f"guardline_stage_{s}" for s in SOURCES)
    assert set(match.task_dict) == {"night", "counties", "match", "rules", "load", "publish"}
    assert type(match.task_dict["match"]).__name__ == "DecoratedMappedOperator"
    assert type(match.task_dict["rules"]).__name__ == "DecoratedMappedOperator"


@pytest.fixture(scope="module")
def province(tmp_path_factory) -> Path:
    """Two counties' deliveries in the province layout (inbox/<county>/...); their 人社
    exchange databases outside the inbox, reached through Airflow connections."""
    root = tmp_path_factory.mktemp("province")
    (root / "exchange").mkdir()
    for code, spec in COUNTIES.items():
        county = generate(root / "generated" / code, as_of=AS_OF, county=code, **spec)
        inbox = root / "inbox" / code
        shutil.copytree(county.out / "inbox", inbox)
        shutil.move(inbox / "human_resources" / "exchange.sqlite", _exchange(root, code))
        (inbox / "human_resources").rmdir()
    return root


def _exchange(province: Path, county: str) -> Path:
    return province / "exchange" / f"{county}.sqlite"


@pytest.fixture(scope="module")
def databases():
    with fresh_database("guardline_airflow") as metadata, fresh_database("guardline_wh") as warehouse:
        yield metadata, warehouse


@pytest.fixture(scope="module")
def env(tmp_path_factory, province, databases) -> dict[str, str]:
    metadata, warehouse = databases
    env = base_env(
        tmp_path_factory.mktemp("airflow_home"),
        metadata,
        guardline_inbox=str(province / "inbox"),
        guardline_stage=str(province / "stage"),
        guardline_outbox=str(province / "outbox"),
        guardline_pseudonym_key=KEY,
    )
    env["AIRFLOW_CONN_GUARDLINE_WAREHOUSE"] = connection(
        "postgres", host="127.0.0.1", port=5432, login="postgres", schema=warehouse
    )
    first, second = COUNTIES
    env[f"AIRFLOW_CONN_GUARDLINE_HR_EXCHANGE_{first}"] = connection(
        "sqlite", extra={"sqlalchemy_url": f"sqlite:///{_exchange(province, first)}"}
    )
    env["AIRFLOW_CONN_GUARDLINE_HR_EXCHANGE"] = connection(
        "sqlite", extra={"sqlalchemy_url": f"sqlite:///{_exchange(province, second)}"}
    )
    for args in (("db", "migrate"), ("dags", "reserialize"), ("dags", "unpause", MATCH_DAG)):
        done = airflow(env, *args)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return env


@pytest.fixture
def isolated_env(env):
    """The module's Airflow on a copy of its metadata database: a test whose runs and asset
    events must not reach the module's other tests (whatever their order) uses it."""
    with fresh_database("guardline_airflow_copy", template=env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].rsplit("/", 1)[1]) as copy:
        yield {**env, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://postgres@127.0.0.1:5432/{copy}"}


def _metadata(env: dict[str, str]) -> str:
    return env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("psycopg2", "psycopg")


def _rows(url: str, query: str) -> list[dict]:
    eng = sa.create_engine(url)
    try:
        with eng.connect() as c:
            return [dict(r._mapping) for r in c.execute(sa.text(query))]
    finally:
        eng.dispose()


def _read(url: str, query: str) -> pl.DataFrame:
    return pl.DataFrame(_rows(url, query), infer_schema_length=None)


def _finish(procs: dict[str, subprocess.Popen], env: dict[str, str]) -> None:
    for dag_id, proc in procs.items():
        assert proc.wait(timeout=600) == 0, (Path(env["AIRFLOW_HOME"]) / f"{dag_id}.log").read_text()[-3000:]


@pytest.fixture(scope="module")
def night(env, province, databases) -> str:
    """The whole night under `airflow dags test`: the register refresh, the four
    department syncs side by side (they stage into the same county at the same time),
    then match-and-flag for the night. The warehouse's URL."""
    _finish({SYNC_DAGS["registry"]: dags_test(env, SYNC_DAGS["registry"], LOGICAL)}, env)
    _finish({SYNC_DAGS[s]: dags_test(env, SYNC_DAGS[s], LOGICAL) for s in SOURCES[1:]}, env)
    _finish({MATCH_DAG: dags_test(env, MATCH_DAG, "--conf", json.dumps({"as_of": AS_OF.isoformat()}))}, env)
    return f"{PG}/{databases[1]}"


@pytest.fixture(scope="module")
def cli_night(province, tmp_path_factory) -> list[str]:
    """`guardline run` on the same deliveries, county by county; their embedded
    warehouses' URLs."""
    urls = []
    for code in COUNTIES:
        home = tmp_path_factory.mktemp(f"cli_night_{code}")
        shutil.copytree(province / "inbox" / code, home / "inbox")
        url = f"duckdb:///{home / 'warehouse.duckdb'}"
        args = ["run", "--inbox", str(home / "inbox"), "--as-of", AS_OF.isoformat(), "--warehouse", url]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipeline.cli",
                *args,
                "--hr-url",
                f"sqlite:///{_exchange(province, code)}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "GUARDLINE_PSEUDONYM_KEY": KEY},
        )
        assert done.returncode == 0, done.stderr[-2000:]
        urls.append(url)
    return urls


# Each table with its key: rows are compared in key order (sorted here, not by the
# databases, whose text collations differ).
NIGHT_TABLES = {
    "flags": ("as_of_date", "household_id", "rule_id"),
    "exit_candidates": ("as_of_date", "household_id"),
    "record_links": ("source", "source_record_id"),
}


def _table(url: str | list[str], table: str, query: str = "SELECT * FROM {table}") -> pl.DataFrame:
    """A table (of one warehouse, or of several stacked) in key order."""
    urls = [url] if isinstance(url, str) else url
    frames = [_read(u, query.format(table=table)) for u in urls]
    return pl.concat(frames, how="vertical_relaxed").sort(NIGHT_TABLES.get(table, "person_id"))


def test_the_dag_chain_lands_exactly_the_flags_guardline_run_does(night, cli_night, env, province):
    """Both counties in one warehouse hold exactly what `guardline run` made of each."""
    for table in NIGHT_TABLES:
        dags, cli = _table(night, table), _table(cli_night, table)
        assert dags.height > 0, table
        assert dags.equals(cli), (table, dags.join(cli, on=list(dags.columns), how="anti").head(3))
    flags = _table(night, "flags")
    assert set(flags["as_of_date"]) == {AS_OF}
    assert {h[1:7] for h in flags["household_id"]} == set(COUNTIES)  # both counties flagged
    # Every run succeeded; each county's lists went to its own outbox.
    # Every run of the chain succeeded (the module's other tests add runs of their own).
    for dag_id in SYNC_DAGS.values():
        assert run_state(_metadata(env), dag_id, logical=LOGICAL) == ["success"], dag_id
    assert run_state(_metadata(env), MATCH_DAG, run_type="manual") == ["success"]
    for code in COUNTIES:
        lists = sorted((province / "outbox" / code / AS_OF.isoformat()).glob("*.xlsx"))
        assert lists and all(p.stat().st_size > 0 for p in lists), code
    # The pseudonym key came from the Airflow Variable: the CLI, given the same key in its
    # environment, made the same pseudonyms.
    query = "SELECT person_id, id_pseudonym FROM {table}"
    assert _table(night, "persons", query).equals(_table(cli_night, "persons", query))
    # The same lists, byte for byte, and one audit schema whoever ran the night.
    for code, url in zip(COUNTIES, cli_night, strict=True):
        cli_day = Path(url.removeprefix("duckdb:///")).parent / "outbox" / AS_OF.isoformat()
        dag_day = province / "outbox" / code / AS_OF.isoformat()
        lists = {p.name: p.read_bytes() for p in sorted(dag_day.glob("*.csv"))}
        assert lists and lists == {p.name: p.read_bytes() for p in sorted(cli_day.glob("*.csv"))}, code
    schemas = {
        frozenset(json.loads(c)) for u in [night, *cli_night] for c in _read(u, "SELECT counts FROM run_audit")["counts"]
    }
    assert schemas == {frozenset(json.loads(_read(cli_night[0], "SELECT counts FROM run_audit")["counts"][0]))}


def test_each_sync_announces_its_night_and_xcom_carries_only_small_values(night, env):
    events = _read(
        _metadata(env),
        "SELECT a.name, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id ORDER BY e.id",
    )
    extras = [e if isinstance(e, dict) else json.loads(e) for e in events["extra"]]
    # The chain's night (the module's other tests announce other nights of their own).
    names = [n for n, e in zip(events["name"], extras, strict=True) if e["as_of"] == AS_OF.isoformat()]
    assert sorted(names) == sorted(f"guardline_stage_{s}" for s in SOURCES)
    for extra in extras:
        if extra["as_of"] == AS_OF.isoformat():
            assert extra["counties"] == dict.fromkeys(COUNTIES, "ok")
    xcoms = _rows(_metadata(env), "SELECT dag_id, task_id, map_index, value FROM xcom")
    assert {x["task_id"] for x in xcoms} >= {
        "night",
        "counties",
        "extract",
        "validate",
        "stage",
        "match",
        "load",
    }
    for x in xcoms:
        value = x["value"]  # JSONB: decoded by the driver
        # Dates, county names, paths, counts and seconds: plain JSON, small, no frames,
        # no NaN (json.dumps refuses one).
        assert isinstance(value, str | int | float | list | dict | None), x
        assert len(json.dumps(value, allow_nan=False)) < 4000, x


def test_a_new_night_arrives_by_assets_and_runs_on_a_celery_worker(night, env, cli_night):
    """The asset events of the synced night have queued match-and-flag; a real scheduler
    picks it up with no logical date, and a real Celery worker (Redis broker, PostgreSQL
    result backend) executes its tasks, the mapped match among them."""
    redis = pytest.importorskip("redis")
    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2).ping()
    except redis.exceptions.ConnectionError as exc:
        if os.environ.get("CI"):  # CI runs every test: a missing server is a failure there
            pytest.fail(f"no Redis at 127.0.0.1:6379 ({exc}): CI needs it")
        pytest.skip(f"no Redis at 127.0.0.1:6379 ({exc})")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    queue = env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"]
    metadata_db = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].rsplit("/", 1)[1]
    celery = {
        **env,
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": "redis://127.0.0.1:6379/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://postgres@127.0.0.1:5432/{metadata_db}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        # Two cores run the api-server, scheduler, dag-processor and worker at once: the
        # default 5 s for a worker's call to the api-server is too short under that load.
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
    }
    before = _table(night, "flags")
    with services(
        celery,
        ("api-server", "--port", str(port), "--workers", "1"),
        ("scheduler",),
        ("dag-processor",),
        ("celery", "worker", "--concurrency", "2", "--queues", queue),
    ):
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline:
            states = run_state(_metadata(env), MATCH_DAG)
            if len(states) == 2 and states[-1] in ("success", "failed"):
                break
            time.sleep(3)
    logs = "".join(p.read_text()[-1500:] for p in Path(env["AIRFLOW_HOME"]).glob("*-*.log"))
    runs = _read(
        _metadata(env),
        f"SELECT run_id, run_type, state, logical_date FROM dag_run WHERE dag_id = '{MATCH_DAG}' ORDER BY id",
    )
    assert runs.height == 2, logs
    run = runs.row(1, named=True)
    assert (run["run_type"], run["state"], run["logical_date"]) == ("asset_triggered", "success", None), logs
    tis = _read(
        _metadata(env),
        "SELECT task_id, map_index, state, queue, rendered_map_index, external_executor_id FROM task_instance "
        f"WHERE dag_id = '{MATCH_DAG}' AND run_id = '{run['run_id']}' ORDER BY task_id, map_index",
    )
    # The mapped match: one task instance per county, named after it, each done by Celery.
    match = tis.filter(pl.col("task_id") == "match")
    assert match.select("map_index", "state", "rendered_map_index").rows() == [
        (i, "success", code) for i, code in enumerate(COUNTIES)
    ]
    assert set(tis["queue"]) == {queue} and set(tis["state"]) == {"success"}
    # Celery's own record of the work: one successful Celery task per task instance.
    done = _read(_metadata(env), "SELECT task_id, status FROM celery_taskmeta")
    assert set(tis["external_executor_id"]) <= set(done.filter(pl.col("status") == "SUCCESS")["task_id"])
    # The night the run found in the asset events is the synced one: re-running it
    # changed nothing, and the audit names the Airflow run.
    assert _table(night, "flags").equals(before)
    audit = _read(night, "SELECT as_of_date, counts FROM run_audit")
    assert any(run["run_id"] in str(c) for c in audit["counts"]) and set(audit["as_of_date"]) == {AS_OF}


def test_a_refused_delivery_fails_its_run_and_names_source_county_and_reason(isolated_env, province, tmp_path):
    """A broken 民政 workbook: the county's rows are quarantined, the night's asset is still
    announced (the other sources go on), the run goes red and the callback says why."""
    env = isolated_env
    inbox = tmp_path / "inbox" / COUNTY / "civil_affairs"
    inbox.mkdir(parents=True)
    shutil.copy(province / "inbox" / COUNTY / "civil_affairs" / "mz_changes_202611.xlsx", inbox)
    (inbox / "mz_changes_202612.xlsx").write_bytes(b"PK\x03\x04 this is not a workbook")
    stage = tmp_path / "stage"
    broken = {
        **env,
        "AIRFLOW_VAR_GUARDLINE_INBOX": str(tmp_path / "inbox"),
        "AIRFLOW_VAR_GUARDLINE_STAGE": str(stage),
    }
    dag_id = SYNC_DAGS["civil_affairs"]
    proc = dags_test(broken, dag_id, "2026-11-27T17:00:00+00:00")
    proc.wait(timeout=600)
    log = (Path(env["AIRFLOW_HOME"]) / f"{dag_id}.log").read_text()
    assert run_state(_metadata(env), dag_id)[-1] == "failed", log[-3000:]
    alerts = [json.loads(line) for line in (stage / "alerts.jsonl").read_text().splitlines()]
    assert [(a["source"], a["task_id"]) for a in alerts] == [("civil_affairs", "verdict")]
    assert COUNTY in alerts[0]["reason"] and "mz_changes_202612.xlsx" in alerts[0]["reason"]
    from staging.stage import Stage

    quarantined = Stage(stage / COUNTY).quarantine()
    refused = quarantined.filter(pl.col("reason").str.contains("not a readable"))
    assert set(refused["file"]) == {"civil_affairs/mz_changes_202612.xlsx"}
    ledger = Stage(stage / COUNTY).ledger()
    # The broken workbook is refused alone: the county's other 民政 file is staged.
    assert dict(zip(ledger["file"], ledger["status"], strict=True)) == {
        "civil_affairs/mz_changes_202611.xlsx": "loaded",
        "civil_affairs/mz_changes_202612.xlsx": "failed",
    }
    events = _read(
        _metadata(env),
        "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
        "WHERE a.name = 'guardline_stage_civil_affairs' ORDER BY e.id DESC LIMIT 1",
    )
    extra = events["extra"][0]
    extra = extra if isinstance(extra, dict) else json.loads(extra)
    assert extra == {"as_of": "2026-11-28", "counties": {COUNTY: "partial"}}
