"""What the DAGs share, without a running Airflow: the night a run is for, settings from
Variables and Connections, which errors are retried, the steps' plain-value contract."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from airflow.sdk.exceptions import AirflowFailException

from connectors.ingest import Landing, extract, ingest, stage, validate
from connectors.validation import Validator
from guardline.errors import DeliveryError, GuardlineError, Unavailable
from pipeline import orchestration as orch
from pipeline import steps
from staging.stage import Stage
from tests.conftest import AS_OF, inbox


@dataclass
class _Event:
    extra: dict = field(default_factory=dict)


@dataclass
class _Run:
    run_after: datetime


def test_the_night_comes_from_the_param_then_the_asset_events_then_the_run_date():
    late = datetime(2026, 11, 27, 17, 30, tzinfo=UTC)  # 01:30 on the 28th in Shanghai
    run = _Run(run_after=late)
    assert orch.as_of({"params": {"as_of": "2026-11-20"}, "logical_date": late}) == date(2026, 11, 20)
    events = {"a": [_Event({"as_of": "2026-11-26"}), _Event({})], "b": [_Event({"as_of": "2026-11-27"})]}
    assert orch.as_of({"params": {"as_of": None}, "triggering_asset_events": events, "dag_run": run}) == date(
        2026, 11, 27
    )
    assert orch.as_of({"params": {}, "logical_date": late, "dag_run": run}) == date(2026, 11, 28)
    # Asset-triggered and manual runs have no logical date: the time the run was due counts.
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


def test_bad_data_fails_at_once_and_unavailable_systems_are_retried():
    @orch.guarded
    def refuse() -> None:
        raise DeliveryError("civil_affairs/x.xlsx", "not a workbook")

    @orch.guarded
    def unreachable() -> None:
        raise Unavailable("human_resources for 433124: connection refused")

    with pytest.raises(AirflowFailException, match=r"civil_affairs/x\.xlsx: not a workbook"):
        refuse()
    with pytest.raises(Unavailable):
        unreachable()


def test_the_failure_callback_names_source_task_and_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_GUARDLINE_STAGE", str(tmp_path))

    @dataclass
    class _Ti:
        dag_id: str = "guardline_sync_health_insurance"
        task_id: str = "extract"
        map_index: int = 2
        run_id: str = "scheduled__2026-11-27"

    orch.alert({"ti": _Ti(), "exception": Unavailable("health_insurance for 433124: disk full")})
    (entry,) = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert (entry["source"], entry["task_id"], entry["map_index"]) == ("health_insurance", "extract", 2)
    assert entry["reason"] == "health_insurance for 433124: disk full"


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
        assert steps.validate(landing) == landing
        staged = steps.stage([landing])
        assert staged["433124"]["status"] == "ok", staged
        assert not Path(landing).exists()
    split, one = Stage(root / "stage" / "433124"), Stage(whole)
    for name in ("registry", "civil_affairs", "health_insurance", "emergency_management"):
        assert split.records(name).equals(one.records(name)), name
    assert split.ledger().equals(one.ledger())
    assert split.quarantine().equals(one.quarantine())
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


def test_the_load_takes_many_counties_and_refuses_a_household_in_two(tmp_path):
    from warehouse.load import _union
    from warehouse.schema import record_links

    links = pl.DataFrame(
        {"source": ["s", "s"], "source_record_id": ["1", "2"], "match_status": ["unmatched", "matched"]}
    )
    other = pl.DataFrame({"source": ["s"], "source_record_id": ["1"], "match_status": ["matched"]})
    union = _union(record_links, [("a", links), ("b", other)]).sort("source_record_id")
    assert union["match_status"].to_list() == ["matched", "matched"]
    from warehouse.schema import households

    with pytest.raises(GuardlineError, match="household_id 042 is in the registers of 433124 and 433125"):
        _union(
            households,
            [
                ("433124", pl.DataFrame({"household_id": ["042"]})),
                ("433125", pl.DataFrame({"household_id": ["042"]})),
            ],
        )
