"""Missed nights, caught up: the sync DAGs staged three nights of a province, match-and-flag
ran none (its scheduler was down); `airflow backfill create` for the three nights, under
a real scheduler, api-server, dag-processor and Celery worker (Redis broker, PostgreSQL
result backend), flags them one after the other in date order, and the warehouse ends as
running the nights on time leaves it. Its own module: it runs beside test_airflow.py."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest

from tests.airflow_env import airflow, connection, free_port, fresh_database, run_state, services
from tests.airflow_province import HEALTHY, KEY, MATCH_DAG, PG, exchange, metadata, read, table_of
from tests.conftest import AS_OF

# The province, its Airflow environment and the alert receivers: a module of their own.
pytest_plugins = ["tests.airflow_province"]
pytestmark = [pytest.mark.usefixtures("pg_url"), pytest.mark.scenario]

DEADLINES = (
    "SELECT d.missed, c.state FROM deadline d JOIN callback c ON c.id = d.callback_id "
    f"JOIN dag_run r ON r.id = d.dagrun_id WHERE r.dag_id = '{MATCH_DAG}' AND r.run_type = 'backfill'"
)
NIGHTS = [AS_OF, AS_OF + timedelta(days=1), AS_OF + timedelta(days=2)]  # the register arrives on AS_OF


@pytest.fixture(scope="module")
def on_time(province, tmp_path_factory) -> list[str]:
    """The healthy counties' three nights run on time by `guardline run`, night after night;
    their embedded warehouses."""
    from pipeline.night import run_night

    urls = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GUARDLINE_PSEUDONYM_KEY", KEY)
        for code in HEALTHY:
            home = tmp_path_factory.mktemp(f"on_time_{code}")
            url = f"duckdb:///{home / 'warehouse.duckdb'}"
            for day in NIGHTS:
                hr = f"sqlite:///{exchange(province, code)}"
                result = run_night(province / "inbox" / code, day, home / "stage", home / "outbox", url, hr)
                assert result.exit_status == 0, result.reported
            urls.append(url)
    return urls


def test_a_backfill_of_three_nights_flags_them_in_order_as_on_time(
    env, province, tmp_path, on_time, told, monkeypatch
):
    """The sync DAGs staged three nights, match-and-flag ran none (the scheduler was
    down): `airflow backfill create` for the three nights, executed by a real scheduler
    and a real Celery worker (Redis broker, PostgreSQL result backend), flags each night
    from its own deliveries, one night after the other, and the warehouse ends as the
    nights run on time leave it."""
    from connectors.ingest import ingest

    monkeypatch.setenv("GUARDLINE_PSEUDONYM_KEY", KEY)
    stage = tmp_path / "stage"
    for day in NIGHTS:  # what the sync DAGs would have staged
        for code in HEALTHY:
            ingest(province / "inbox" / code, day, stage / code, f"sqlite:///{exchange(province, code)}")
    with fresh_database("guardline_wh_backfill") as warehouse:
        _require_redis()
        port = free_port()
        queue = env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"]
        metadata_db = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].rsplit("/", 1)[1]
        celery = {
            **env,
            "AIRFLOW_VAR_GUARDLINE_STAGE": str(stage),
            "AIRFLOW_VAR_GUARDLINE_OUTBOX": str(tmp_path / "outbox"),
            "AIRFLOW_CONN_GUARDLINE_WAREHOUSE": connection(
                "postgres", host="127.0.0.1", port=5432, login="postgres", schema=warehouse
            ),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": "redis://127.0.0.1:6379/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://postgres@127.0.0.1:5432/{metadata_db}",
            "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "pipeline.celery_config.CELERY_CONFIG",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            # Only the backfill's runs: no scheduled night of today besides them.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "10",
            # Two cores run the api-server, scheduler, dag-processor and worker at once: the
            # default 5 s for a worker's call to the api-server is too short under that load.
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
        }
        for args in (("dags", "unpause", MATCH_DAG),):
            done = airflow(celery, *args)
            assert done.returncode == 0, done.stderr[-2000:]
        created = airflow(
            celery,
            "backfill",
            "create",
            "--dag-id",
            MATCH_DAG,
            "--from-date",
            f"{NIGHTS[0].isoformat()}T00:00:00+08:00",
            "--to-date",
            f"{NIGHTS[-1].isoformat()}T03:00:00+08:00",
        )
        assert created.returncode == 0, created.stdout[-2000:] + created.stderr[-2000:]
        with services(
            celery,
            ("api-server", "--port", str(port), "--workers", "1"),
            ("scheduler",),
            ("dag-processor",),
            ("celery", "worker", "--concurrency", "2", "--queues", queue),
            ("triggerer",),
        ):
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                states = run_state(metadata(env), MATCH_DAG, run_type="backfill")
                if len(states) == 3 and all(s in ("success", "failed") for s in states):
                    break
                time.sleep(3)
            # The lists deadline of each backfilled night (07:30 of a past day) is missed
            # at once; the triggerer runs its callback, which does not alert for a backfill.
            while time.monotonic() < deadline:
                called = read(metadata(env), DEADLINES)
                if called.height == 3 and set(called["state"]) <= {"success", "failed"}:
                    break
                time.sleep(3)
        logs = "".join(p.read_text()[-1500:] for p in Path(env["AIRFLOW_HOME"]).glob("*-*.log"))
        runs = read(
            metadata(env),
            "SELECT run_id, logical_date, state FROM dag_run "
            f"WHERE dag_id = '{MATCH_DAG}' AND run_type = 'backfill' ORDER BY logical_date",
        )
        assert runs["state"].to_list() == ["success"] * 3, logs
        # One night after the other: each night's first county task started after the
        # night before had published its last list.
        spans = (
            read(
                metadata(env),
                "SELECT run_id, min(start_date) FILTER (WHERE task_id LIKE 'county.%') AS first, max(end_date) AS last "
                f"FROM task_instance WHERE dag_id = '{MATCH_DAG}' GROUP BY run_id",
            )
            .join(runs, on="run_id")
            .sort("logical_date")
        )
        for before, after in zip(
            spans.iter_rows(named=True), list(spans.iter_rows(named=True))[1:], strict=False
        ):
            assert after["first"] >= before["last"], (before, after)
        # The worker imported Great Expectations once, for all its tasks.
        worker_log = next(Path(env["AIRFLOW_HOME"]).glob("celery-*.log")).read_text()
        assert "guardline: Great Expectations preloaded" in worker_log, worker_log[-2000:]
        # Each county's tasks ran on the Celery worker.
        done = read(metadata(env), "SELECT task_id, status FROM celery_taskmeta")
        assert (done["status"] == "SUCCESS").sum() >= 3 * (2 + 5 * len(HEALTHY))
        called = read(metadata(env), DEADLINES)
        assert called.select("missed", "state").rows() == [(True, "success")] * 3, (called, logs)
        assert [p for p in told.posts if p["kind"] == "late"] == []
        url = f"{PG}/{warehouse}"
        for table in ("flags", "exit_candidates"):
            backfilled, cli = table_of(url, table), table_of(on_time, table)
            assert sorted(set(backfilled["as_of_date"])) == NIGHTS, table
            assert backfilled.drop("county_code").equals(cli.drop("county_code")), table
        assert (
            table_of(url, "record_links")
            .drop("county_code")
            .equals(table_of(on_time, "record_links").drop("county_code"))
        )


def _require_redis() -> None:
    redis = pytest.importorskip("redis")
    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2).ping()
    except redis.exceptions.ConnectionError as exc:
        if os.environ.get("CI"):  # CI runs every test: a missing server is a failure there
            pytest.fail(f"no Redis at 127.0.0.1:6379 ({exc}): CI needs it")
        pytest.skip(f"no Redis at 127.0.0.1:6379 ({exc})")
