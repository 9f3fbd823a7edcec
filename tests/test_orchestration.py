"""What the DAGs share, without a running Airflow: the night a run is for, settings from
Variables and Connections, which errors are retried, the steps' plain-value contract."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from airflow.sdk.exceptions import AirflowFailException

from connectors.ingest import Landing, extract, ingest, stage, validate
from connectors.validation import Validator
from guardline.errors import Busy, DeliveryError, GuardlineError, Unavailable
from pipeline import orchestration as orch
from pipeline import steps
from staging.stage import Stage
from tests.conftest import AS_OF, inbox


@dataclass
class _Run:
    run_after: datetime


def test_the_night_comes_from_the_param_then_the_run_date_in_local_time():
    late = datetime(2026, 11, 27, 17, 30, tzinfo=UTC)  # 01:30 on the 28th in Shanghai
    run = _Run(run_after=late)
    assert orch.as_of({"params": {"as_of": "2026-11-20"}, "logical_date": late}) == date(2026, 11, 20)
    assert orch.as_of({"params": {"as_of": None}, "logical_date": late, "dag_run": run}) == date(2026, 11, 28)
    # A manual run has no logical date: the time the run was due counts.
    assert orch.as_of({"params": {}, "logical_date": None, "dag_run": run}) == date(2026, 11, 28)


def test_settings_come_from_variables_and_connections(monkeypatch):
    monkeypatch.delenv("AIRFLOW_VAR_GUARDLINE_STAGE", raising=False)
    with pytest.raises(GuardlineError, match="AIRFLOW_VAR_GUARDLINE_STAGE"):
        orch.variable("stage")
    monkeypatch.setenv("AIRFLOW_VAR_GUARDLINE_STAGE", "/srv/stage")
    assert orch.variable("stage") == "/srv/stage"

    for name in ("AIRFLOW_CONN_GUARDLINE_HR_EXCHANGE", "AIRFLOW_CONN_GUARDLINE_HR_EXCHANGE_433124"):
        monkeypatch.delenv(name, raising=False)
    assert orch.exchange_url("433124") is None  # the county's own exchange.sqlite, if any
    monkeypatch.setenv(
        "AIRFLOW_CONN_GUARDLINE_HR_EXCHANGE",
        json.dumps(
            {
                "conn_type": "postgres",
                "host": "10.0.0.12",
                "port": 5432,
                "login": "reader",
                "password": "s@cret",
                "schema": "rs",
            }
        ),
    )
    assert orch.exchange_url("433124") == "postgresql+psycopg://reader:s%40cret@10.0.0.12:5432/rs"
    monkeypatch.setenv(
        "AIRFLOW_CONN_GUARDLINE_HR_EXCHANGE_433124",
        json.dumps({"conn_type": "generic", "extra": {"sqlalchemy_url": "sqlite:////data/433124.sqlite"}}),
    )
    assert orch.exchange_url("433124") == "sqlite:////data/433124.sqlite"
    assert orch.exchange_url("433125") == "postgresql+psycopg://reader:s%40cret@10.0.0.12:5432/rs"

    monkeypatch.delenv("AIRFLOW_CONN_GUARDLINE_WAREHOUSE", raising=False)
    monkeypatch.delenv("GUARDLINE_WAREHOUSE_URL", raising=False)
    with pytest.raises(GuardlineError, match="no warehouse: the Airflow Connection guardline_warehouse is not defined"):
        orch.warehouse_url(Path("/srv/stage"))  # a missing Connection is an error, not a DuckDB file
    monkeypatch.setenv("GUARDLINE_WAREHOUSE_URL", "postgresql+psycopg://etl@db/guardline")
    assert orch.warehouse_url(Path("/srv/stage")) == "postgresql+psycopg://etl@db/guardline"


def test_only_what_can_heal_is_retried():
    def raising(exc: Exception):
        @orch.guarded
        def task() -> None:
            raise exc

        return task

    # A bad delivery and a bug fail at once (AirflowFailException: no retry)...
    with pytest.raises(AirflowFailException, match=r"civil_affairs/x\.xlsx: not a workbook"):
        raising(DeliveryError("civil_affairs/x.xlsx", "not a workbook"))()
    with pytest.raises(AirflowFailException, match="ComputeError: cannot cast 'Object'"):
        raising(pl.exceptions.ComputeError("cannot cast 'Object'"))()
    # ...a system that does not answer and a lock another run holds are retried.
    with pytest.raises(Unavailable):
        raising(Unavailable("human_resources for 433124: connection refused"))()
    with pytest.raises(Busy):
        raising(Busy("the warehouse is in use by another night"))()


@dataclass
class _Ti:
    dag_id: str = "guardline_sync_health_insurance"
    task_id: str = "county.extract"
    map_index: int = 2
    rendered_map_index: str = "433126"
    run_id: str = "scheduled__2026-11-27"
    try_number: int = 4


def test_an_alert_names_source_county_task_and_reason_and_reaches_every_channel(tmp_path, monkeypatch):
    from pipeline import alerting
    from tests.airflow_env import receivers

    monkeypatch.setenv("AIRFLOW_VAR_GUARDLINE_STAGE", str(tmp_path))
    with receivers() as told:
        for name, value in told.connections().items():
            monkeypatch.setenv(name, value)
        context = {"ti": _Ti(), "exception": Unavailable("health_insurance for 433126: disk full"), "params": {}}
        context["dag_run"] = _Run(run_after=datetime(2026, 11, 27, 17, 0, tzinfo=UTC))
        alerting.Notifier("failed").notify(context)
        # The deadline's callback, as the triggerer calls it: a scheduled night alerts, a
        # backfill's old night does not.
        import asyncio

        run = {"run_id": "scheduled__2026-11-28", "run_type": "scheduled", "logical_date": "2026-11-27T18:00:00+00:00"}
        asyncio.run(alerting.lists_late({"dag_run": run}, due="07:30", dag_id="guardline_match_and_flag"))
        asyncio.run(alerting.lists_late({"dag_run": {**run, "run_type": "backfill"}}, due="07:30", dag_id="x"))
    (entry,) = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert (entry["kind"], entry["source"], entry["county"], entry["task_id"], entry["try_number"]) == (
        "failed",
        "health_insurance",
        "433126",
        "county.extract",
        4,
    )
    assert entry["reason"] == "health_insurance for 433126: disk full" and entry["night"] == "2026-11-28"
    failed, late = told.posts
    assert failed["subject"] == "[Guardline] 433126 health_insurance failed (county.extract) night 2026-11-28"
    assert (late["kind"], late["night"], late["run_id"]) == ("late", "2026-11-28", "scheduled__2026-11-28")
    assert "07:30" in late["reason"]
    assert [m["Subject"] for m in told.mails] == [failed["subject"], late["subject"]]


def test_an_alert_channel_without_its_connection_is_skipped_and_a_dead_one_never_raises(tmp_path, monkeypatch):
    from pipeline import alerting
    from tests.airflow_env import free_port

    for name in ("AIRFLOW_CONN_GUARDLINE_SMTP", "AIRFLOW_CONN_GUARDLINE_WEBHOOK"):
        monkeypatch.delenv(name, raising=False)
    alert = alerting.Alert(kind="refused", source="civil_affairs", county="433124", reason="x.xlsx: not a workbook")
    assert alerting.send(alert, tmp_path) == {
        "email": "skipped: no addresses in the Variable guardline_alert_to",
        "webhook": "skipped: no Connection guardline_webhook",
    }
    port = free_port()  # nobody listens there
    monkeypatch.setenv("AIRFLOW_CONN_GUARDLINE_WEBHOOK", json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": port}))
    assert alerting.send(alert, tmp_path)["webhook"].startswith("failed: ")
    assert len((tmp_path / "alerts.jsonl").read_text().splitlines()) == 2  # both kept


def test_a_landing_saved_between_steps_stages_what_one_process_does(clean_county, tmp_path):
    """The sync DAG's tasks pass the landing through disk; the CLI keeps it in memory.
    Both must leave the same stage."""
    whole = tmp_path / "whole"
    ingest(inbox(clean_county), AS_OF, whole)
    root = tmp_path / "province"
    shutil.copytree(inbox(clean_county), root / "inbox" / "433124")
    assert steps.inbox_counties(root / "inbox") == ["433124"]
    for source in (
        "registry",
        "civil_affairs",
        "health_insurance",
        "emergency_management",
        "human_resources",
    ):
        landing = steps.extract(source, root / "inbox", root / "stage", "433124", AS_OF, None)
        assert Path(landing) == steps.landing_folder(root / "stage", "433124", AS_OF, source)
        checked = steps.validate(landing)  # the verdict per file, for the task's log
        assert (checked["source"], checked["verdict"]) == (source, "valid"), checked
        assert checked["files"] and all(v.startswith("valid, ") for v in checked["files"].values()), checked
        staged = steps.stage([landing])
        assert staged["433124"]["status"] == "ok", staged
        assert not Path(landing).exists()
    split, one = Stage(root / "stage" / "433124"), Stage(whole)
    for name in ("registry", "civil_affairs", "health_insurance", "emergency_management"):
        assert split.records(name).equals(one.records(name)), name
    assert split.ledger().equals(one.ledger())
    assert split.quarantine().equals(one.quarantine())
    # Both record that every source settled the night, and how.
    assert split.settled(AS_OF) == one.settled(AS_OF) == {s: ("ok", "") for s in split.settled(AS_OF)}
    assert len(split.settled(AS_OF)) == 5
    assert steps.staged_counties(root / "stage") == ["433124"]
    assert steps.refusals("civil_affairs", staged) == ""


def test_a_landing_keeps_failed_files_and_validation_across_a_save(clean_county, tmp_path):
    st = Stage(tmp_path / "stage")
    folder = tmp_path / "inbox"
    shutil.copytree(inbox(clean_county) / "civil_affairs", folder / "civil_affairs")
    (folder / "civil_affairs" / "mz_changes_209912.xlsx").write_bytes(b"garbage, not a workbook")
    landing = extract("civil_affairs", folder, AS_OF, st)
    assert [r.file for r, _ in landing.failures] == ["civil_affairs/mz_changes_209912.xlsx"]
    validated = validate(Landing.load(landing.save(tmp_path / "landing")), Validator(tmp_path / "reports"))
    again = Landing.load(validated.save(tmp_path / "landing"))
    assert [b.raw.file for b in again.batches] == [b.raw.file for b in landing.batches]
    assert all(b.canonical is not None for b in again.batches)
    result = stage(again, st)
    # The refused file is refused alone: the county's other 民政 files are staged.
    assert result.status == "partial" and "mz_changes_209912.xlsx" in result.reason
    assert st.records("civil_affairs").height > 0
    assert set(st.quarantine().filter(pl.col("reason").str.contains("not a readable"))["file"]) == {
        "civil_affairs/mz_changes_209912.xlsx"
    }
    staged = {
        "433124": {"status": result.status, "reason": result.reason},
        "433125": {"status": "ok", "reason": ""},
    }
    line = steps.refusals("civil_affairs", staged)
    assert line.startswith("civil_affairs refused tonight in 1 of 2 counties") and "433124:" in line


def test_an_inbox_without_counties_is_a_clear_error(tmp_path):
    (tmp_path / "registry").mkdir()  # a single county's layout, not a province's
    with pytest.raises(GuardlineError, match="no county inbox"):
        steps.inbox_counties(tmp_path)
    with pytest.raises(GuardlineError, match=r"no county .* has a staged register"):
        steps.staged_counties(tmp_path)


def test_a_register_key_belongs_to_one_county(tmp_path):
    from warehouse.db import engine, upgrade
    from warehouse.load import _registered_elsewhere, bulk_insert
    from warehouse.schema import households

    eng = engine(f"duckdb:///{tmp_path / 'w.duckdb'}")
    upgrade(eng)
    with eng.begin() as conn:
        bulk_insert(conn, households, pl.DataFrame({"household_id": ["042", "043"], "county_code": ["433125"] * 2}))
        _registered_elsewhere(conn, households, pl.DataFrame({"household_id": ["044"]}), "433124")
        with pytest.raises(GuardlineError, match="household_id 042 is in the registers of 433125 and 433124"):
            _registered_elsewhere(conn, households, pl.DataFrame({"household_id": ["042"]}), "433124")
    eng.dispose()

