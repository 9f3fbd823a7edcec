"""What the DAG files share: the configuration, the assets, default arguments, the
failure callback, and how a task learns its night, its folders and its connections.

Imported at DAG parse time, so it imports nothing heavy (no polars, no Great
Expectations): the tasks import the pipeline inside their bodies.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import yaml
from airflow.sdk import (
    Asset,
    AssetAll,
    Connection,
    CronTriggerTimetable,
    Param,
    Variable,
    get_current_context,
)
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException

from guardline import config as config_
from guardline.errors import GuardlineError, Unavailable

CONFIG = Path(__file__).with_name("orchestration.yaml")
log = logging.getLogger("guardline.airflow")
F = TypeVar("F", bound=Callable[..., Any])


@functools.cache
def config() -> dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text(encoding="utf-8"))


def timezone() -> ZoneInfo:
    return config_.timezone()


def start_date() -> datetime:
    return datetime.combine(config()["start_date"], datetime.min.time(), tzinfo=timezone())


def cron(expression: str) -> CronTriggerTimetable:
    """A wall-clock schedule in the configured time zone (01:00 is 01:00 in Shanghai)."""
    return CronTriggerTimetable(expression, timezone=str(timezone()))


def sources() -> dict[str, dict[str, Any]]:
    return config()["sources"]


def asset(source: str) -> Asset:
    """The staged data of one source, across the province's counties."""
    return Asset(name=f"guardline_stage_{source}", uri=f"guardline://stage/{source}", group="guardline")


def night_assets() -> AssetAll:
    """When the match-and-flag DAG runs: once every source (the register and the four
    departments) has settled the night, with new data or none."""
    return AssetAll(*(asset(s) for s in sources()))


def params() -> dict[str, Param]:
    return {
        "as_of": Param(
            None,
            type=["null", "string"],
            format="date",
            description="The night to run (YYYY-MM-DD). Empty: the night the run belongs to.",
        )
    }


def dag_arguments() -> dict[str, Any]:
    """What every Guardline DAG shares: one night at a time (with the embedded DuckDB
    warehouse the load is the only writer), no catch-up of missed nights, the retry
    policy and callback, the ``as_of`` param."""
    c = config()
    return {
        "start_date": start_date(),
        "catchup": False,
        "max_active_runs": 1,
        "params": params(),
        "default_args": {
            "owner": "guardline",
            "retries": c["retries"],
            "retry_delay": timedelta(minutes=c["retry_delay_minutes"]),
            "retry_exponential_backoff": True,
            "max_retry_delay": timedelta(minutes=c["max_retry_delay_minutes"]),
            "on_failure_callback": alert,
        },
    }


def night() -> str:
    """The first task of every DAG: the night (YYYY-MM-DD) its run is for."""
    return as_of(get_current_context()).isoformat()


def as_of(context: Any) -> date:
    """The night a run is for, with or without a logical date.

    In order: the ``as_of`` param given at trigger time; the latest ``as_of`` carried by
    the asset events that triggered the run; the run's logical date, else the time it
    was due (manual and asset-triggered runs have no logical date) — as a calendar date
    in the configured time zone, the one every contract date lives in.
    """
    given = (context.get("params") or {}).get("as_of")
    if given:
        return date.fromisoformat(given)
    events = context.get("triggering_asset_events") or {}
    nights = [
        date.fromisoformat(e.extra["as_of"])
        for key in events
        for e in events[key]
        if isinstance(e.extra, dict) and e.extra.get("as_of")
    ]
    if nights:
        return max(nights)
    moment = context.get("logical_date") or context["dag_run"].run_after
    return config_.night_of(moment)


def variable(name: str) -> str:
    """The configured Airflow Variable ``name`` (inbox, stage, outbox, ...)."""
    key = config()["variables"][name]
    value = Variable.get(key, default=None)
    if not value:
        raise GuardlineError(
            f"the Airflow Variable {key} is not set (or AIRFLOW_VAR_{key.upper()} in the environment)"
        )
    return value


def folders() -> tuple[Path, Path, Path]:
    """The province's inbox, stage and outbox roots."""
    return Path(variable("inbox")), Path(variable("stage")), Path(variable("outbox"))


def sqlalchemy_url(conn_id: str) -> str | None:
    """A connection as a SQLAlchemy URL: its extra's ``sqlalchemy_url``, else built from its
    fields (postgres → postgresql+psycopg). None when no such connection is defined."""
    try:
        conn = Connection.get(conn_id)
    except AirflowNotFoundException:
        return None
    extra = conn.extra_dejson or {}
    if extra.get("sqlalchemy_url"):
        return extra["sqlalchemy_url"]
    from urllib.parse import quote

    driver = {"postgres": "postgresql+psycopg", "postgresql": "postgresql+psycopg", "sqlite": "sqlite"}.get(
        conn.conn_type, conn.conn_type
    )
    auth = f"{quote(conn.login or '', safe='')}:{quote(conn.password or '', safe='')}@" if conn.login else ""
    port = f":{conn.port}" if conn.port else ""
    return f"{driver}://{auth}{conn.host or ''}{port}/{conn.schema or ''}"


def exchange_url(county: str) -> str | None:
    """The 人社 exchange of a county: ``<connection>_<county>``, else ``<connection>``; None
    leaves the county's own ``human_resources/exchange.sqlite`` (the synthetic layout)."""
    conn_id = sources()["human_resources"]["connection"]
    return sqlalchemy_url(f"{conn_id}_{county}") or sqlalchemy_url(conn_id)


def warehouse_url(stage_root: Path) -> str:
    """The warehouse: the configured connection, else GUARDLINE_WAREHOUSE_URL. Neither is
    an error, not a quiet fallback: a province whose Connection went missing must not
    load its night into a DuckDB file nobody reads (name that file in
    GUARDLINE_WAREHOUSE_URL to choose it)."""
    conn_id = config()["connections"]["warehouse"]
    url = sqlalchemy_url(conn_id) or os.environ.get(config_.WAREHOUSE_VARIABLE)
    if not url:
        raise GuardlineError(
            f"no warehouse: the Airflow Connection {conn_id} is not defined (AIRFLOW_CONN_{conn_id.upper()}), "
            f"nor {config_.WAREHOUSE_VARIABLE}; for the embedded file set "
            f"{config_.WAREHOUSE_VARIABLE}={config_.embedded_url(stage_root)}"
        )
    return url


def provide_pseudonym_key() -> None:
    """Put the pseudonym key where the warehouse looks for it (the environment), from the
    Airflow Variable when the workers' environment does not carry it."""
    from warehouse.privacy import KEY_VARIABLE

    if not os.environ.get(KEY_VARIABLE):
        key = Variable.get(config()["variables"]["pseudonym_key"], default=None)
        if key:
            os.environ[KEY_VARIABLE] = key


def guarded(fn: F) -> F:
    """A task body whose GuardlineErrors (bad delivery, missing setting) fail at once:
    retrying cannot fix them. Unavailable systems are retried with back-off."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Unavailable:
            raise
        except GuardlineError as exc:
            raise AirflowFailException(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


def source_of(dag_id: str) -> str:
    """The source a DAG syncs, or the DAG's own name for the match-and-flag DAG."""
    return next((name for name, spec in sources().items() if spec["dag_id"] == dag_id), dag_id)


def alert(context: Any) -> None:
    """Failure callback: one line naming the source, the county (for a mapped task) and
    the reason, logged and appended to ``<stage>/alerts.jsonl`` for whoever watches."""
    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(ti, "dag_id", "") or context["dag"].dag_id
    entry = {
        "at": datetime.now(timezone()).isoformat(timespec="seconds"),
        "source": source_of(dag_id),
        "dag_id": dag_id,
        "task_id": getattr(ti, "task_id", ""),
        "map_index": getattr(ti, "map_index", -1),
        "run_id": getattr(ti, "run_id", ""),
        "reason": str(context.get("exception") or "unknown"),
    }
    log.error("guardline: %s failed (%s): %s", entry["source"], entry["task_id"], entry["reason"])
    try:
        stage_root = Path(variable("stage"))
    except GuardlineError:
        return
    stage_root.mkdir(parents=True, exist_ok=True)
    with (stage_root / "alerts.jsonl").open("a", encoding="utf-8") as out:
        out.write(json.dumps(entry, ensure_ascii=False) + "\n")
