"""What the DAG files share: the configuration, the assets, default arguments and
callbacks, the retry policy, the log block of each task, lineage, and how a task learns
its night, its folders and its connections.

Imported at DAG parse time, so it imports nothing heavy (no polars, no Great
Expectations): the tasks import the pipeline inside their bodies.
"""

from __future__ import annotations

import functools
import logging
import os
import traceback
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import yaml
from airflow.providers.standard.decorators.python import _PythonDecoratedOperator
from airflow.sdk import (
    Asset,
    AsyncCallback,
    BaseOperatorLink,
    Connection,
    CronTriggerTimetable,
    DeadlineAlert,
    DeadlineReference,
    Param,
    PokeReturnValue,
    Variable,
    get_current_context,
    task,
)
from airflow.sdk.bases.decorator import task_decorator_factory
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException

from guardline import config as config_
from guardline.errors import Busy, GuardlineError, Unavailable
from guardline.memory import peak_mib, reset_peak
from pipeline import alerting

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
    """The staged data of one source, across the province's counties: each county's
    stage task announces its night (``as_of``, county, status, counts in the extra)."""
    return Asset(name=f"guardline_stage_{source}", uri=f"guardline://stage/{source}", group="guardline")


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
    """What every Guardline DAG shares: one scheduled night at a time and each night
    after the one before (:func:`in_order`, backfills too), no catch-up of missed nights
    (a backfill is asked for), the retry policy (only for what heals: :func:`guarded`),
    the alerts on failure and on retry, a timeout per task, the ``as_of`` param."""
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
            "execution_timeout": timeout("default"),
            "on_failure_callback": [alerting.Notifier("failed")],
            "on_retry_callback": [alerting.Notifier("retry")],
        },
    }


def timeout(step: str) -> timedelta:
    """How long a task of ``step`` may run before Airflow stops it (``timeouts_minutes``)."""
    minutes = config()["timeouts_minutes"]
    return timedelta(minutes=minutes.get(step, minutes["default"]))


def in_order() -> Any:
    """The first task of every DAG: waits while the run of the night before is still
    queued or running (a backfill starts its nights together; each night's state builds
    on the one before), then gives the night (YYYY-MM-DD) the run is for."""

    @task.sensor(task_id="night", poke_interval=30, timeout=timedelta(hours=24), mode="reschedule")
    def night() -> PokeReturnValue:
        ctx = get_current_context()
        before = ctx["ti"].get_previous_dagrun()
        if before is not None and getattr(before.state, "value", before.state) in ("queued", "running"):
            log.info("guardline: waiting for the run of the night before (%s, %s)", before.run_id, before.state)
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=as_of(ctx).isoformat())

    return night()


def lists_deadline() -> DeadlineAlert:
    """A deadline alert: the night's lists out by ``lists_due`` (wall-clock, local), the
    match-and-flag run being due at its schedule's time of day."""
    spec = config()["match_and_flag"]
    minute, hour = (int(v) for v in spec["schedule"].split()[:2])
    due_h, due_m = (int(v) for v in str(spec["lists_due"]).split(":"))
    interval = timedelta(hours=due_h - hour, minutes=due_m - minute)
    if interval <= timedelta(0):
        interval += timedelta(days=1)
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
        interval=interval,
        callback=AsyncCallback(
            alerting.lists_late, kwargs={"due": str(spec["lists_due"]), "dag_id": spec["dag_id"]}
        ),
    )


def as_of(context: Any) -> date:
    """The night a run is for, with or without a logical date.

    In order: the ``as_of`` param given at trigger time; the run's logical date (a
    scheduled or backfilled night), else the time it was due (a manual run has no
    logical date) — as a calendar date in the configured time zone, the one every
    contract date lives in (01:00 in Shanghai on the 27th is the night of the 27th,
    though UTC still says the 26th).
    """
    given = (context.get("params") or {}).get("as_of")
    if given:
        return date.fromisoformat(given)
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
    """A task body retried only for what can heal: a system that did not answer
    (:class:`Unavailable`) or a lock another run holds (:class:`Busy`). A bad delivery or
    setting (:class:`GuardlineError`) and a bug (any other exception, its traceback
    logged) fail at once: trying again gives the same answer and delays the alert."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        reset_peak()  # the task's own peak memory, which its summary reports
        try:
            return fn(*args, **kwargs)
        except (Unavailable, Busy):
            raise
        except GuardlineError as exc:
            raise AirflowFailException(str(exc)) from exc
        except Exception as exc:
            log.error("guardline: a bug, not retried:\n%s", traceback.format_exc())
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc

    return wrapper  # type: ignore[return-value]


def report(step: str, summary: dict[str, Any], county: str = "") -> dict[str, Any]:
    """The task's one summary block in its log (counts, verdicts, seconds, the task's
    peak memory in MiB), from the step's result: what a person reads first. Returns the
    summary for XCom."""
    summary = {**summary, "peak_mib": peak_mib()}
    where = f" {county}" if county else ""
    lines = [f"guardline {step}{where}:"]
    for key, value in summary.items():
        if isinstance(value, dict) and value:
            lines.append(f"  {key}:")
            lines += [f"    {k}: {_inline(v)}" for k, v in value.items()]
        else:
            lines.append(f"  {key}: {_inline(value)}")
    log.info("\n".join(lines))
    return summary


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_inline(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple):
        return "; ".join(_inline(v) for v in value) or "-"
    return str(value)


class ReportLink(BaseOperatorLink):
    """The button "Night report" on a county's publish task: the ``report.html`` it wrote
    (a ``file://`` address on the shared drive), read from the task's own result. Airflow
    keeps the address in XCom when the task ends; the UI shows it without a plugin."""

    name = "Night report"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        result = ti_key.xcom_pull(task_ids=ti_key.task_id, map_indexes=ti_key.map_index)
        page = result.get("report") if isinstance(result, dict) else None
        return Path(page).resolve().as_uri() if page else ""


class _ReportingOperator(_PythonDecoratedOperator):
    operator_extra_links = (ReportLink(),)


def reporting_task(**kwargs: Any) -> Any:
    """``@task`` for a task whose result names the night's report (its ``report`` key):
    the task instance gets the "Night report" link."""
    return task_decorator_factory(decorated_operator_class=_ReportingOperator, **kwargs)


def name_instance(county: str) -> None:
    """A mapped task instance is named by its county (``map_index_template``), in the
    UI, the logs and the alerts."""
    get_current_context()["county"] = county


def stage_root() -> Path | None:
    """The province's stage root, None when the Variable is not set (a callback still alerts)."""
    try:
        return Path(variable("stage"))
    except GuardlineError:
        return None


def source_of(dag_id: str) -> str:
    """The source a DAG syncs, or the DAG's own name for the match-and-flag DAG."""
    return next((name for name, spec in sources().items() if spec["dag_id"] == dag_id), dag_id)


class _Guardline:
    """The lineage collector's name for what Guardline's own steps read and write."""


_LINEAGE = _Guardline()


def lineage(inputs: Iterable[str] = (), outputs: Iterable[str] = (), extra: dict[str, Any] | None = None) -> None:
    """Tell Airflow's lineage collector what the task read and wrote (URIs: inbox files,
    exchange tables, warehouse tables, lists); the OpenLineage provider sends them as the
    inputs and outputs of the task's events, when a transport is configured."""
    from airflow.sdk.lineage import get_hook_lineage_collector

    collector = get_hook_lineage_collector()
    for uri in inputs:
        collector.add_input_asset(context=_LINEAGE, uri=uri)
    for uri in outputs:
        collector.add_output_asset(context=_LINEAGE, uri=uri, asset_extra=extra)


def source_doc(source: str, dag_doc: str | None) -> str:
    """A sync DAG's doc_md: the source's section of docs/sources.md (what arrives, its
    columns and key; read as text, so the dag-processor imports no declaration) after
    the DAG's own description."""
    docs = Path(__file__).resolve().parents[1] / "docs" / "sources.md"
    section = ""
    if docs.exists():
        text = docs.read_text(encoding="utf-8")
        start = text.find(f"\n### {source} ")
        if start >= 0:
            end = text.find("\n## ", start + 1)
            nxt = text.find("\n### ", start + 1)
            stops = [i for i in (end, nxt) if i >= 0]
            section = text[start : min(stops) if stops else len(text)].strip()
    return f"{section}\n\n---\n\n{dag_doc or ''}".strip()
