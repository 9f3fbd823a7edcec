"""Telling someone: the alerts of the nightly DAGs, by e-mail and by webhook.

Every alert — a task failed, a task will be retried, a source was refused tonight, a
county's night went on without a source, a night's lists are late — is one
:class:`Alert`: what happened, to which source and county, in which task and run, why.
It is always logged and appended to ``<stage>/alerts.jsonl``; it is also sent to each
channel configured in ``pipeline/orchestration.yaml`` (``alerts:``), off by default:

- ``email``: to the addresses of the Airflow Variable named there (comma-separated),
  through the SMTP Connection named there (host, port, login, ``from_email`` in its extra);
- ``webhook``: a JSON POST of the alert to the URL of the HTTP Connection named there
  (its host and schema, or ``{"url": ...}`` in its extra), for a chat bot or a ticket
  system.

A channel whose Connection is not defined is skipped with one log line; a channel that
fails is logged and never fails the task it reports on. Imported when the DAG files
are parsed: nothing heavy at module level.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import Connection
from airflow.sdk.bases.notifier import BaseNotifier
from airflow.sdk.exceptions import AirflowNotFoundException

from guardline import config as config_

log = logging.getLogger("guardline.alerts")

KINDS = {
    "failed": "failed",
    "retry": "will be retried",
    "refused": "refused tonight",
    "missing": "went on without a source",
    "late": "lists late",
}
WEBHOOK_TIMEOUT = 10  # seconds


def settings() -> dict[str, Any]:
    """The ``alerts:`` section of the orchestration configuration."""
    from pipeline import orchestration as orch

    return orch.config().get("alerts") or {}


@dataclass
class Alert:
    """One thing someone must know about a night."""

    kind: str  # a key of KINDS
    source: str  # the source, or the DAG's own name for match-and-flag
    reason: str
    county: str = ""  # the county of a mapped task, else every county of the run
    dag_id: str = ""
    task_id: str = ""
    run_id: str = ""
    night: str = ""
    try_number: int = 0
    at: str = field(default_factory=lambda: datetime.now(config_.timezone()).isoformat(timespec="seconds"))

    @property
    def subject(self) -> str:
        where = f" {self.county}" if self.county else ""
        task = f" ({self.task_id})" if self.task_id else ""
        night = f" night {self.night}" if self.night else ""
        return f"[Guardline]{where} {self.source} {KINDS.get(self.kind, self.kind)}{task}{night}"

    @property
    def text(self) -> str:
        lines = [self.subject, "", self.reason, ""]
        for label, value in (
            ("county", self.county),
            ("source", self.source),
            ("DAG", self.dag_id),
            ("task", self.task_id),
            ("run", self.run_id),
            ("try", self.try_number or ""),
            ("at", self.at),
        ):
            if value:
                lines.append(f"{label}: {value}")
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "subject": self.subject}


def send(alert: Alert, stage_root: Path | None = None) -> dict[str, str]:
    """Log the alert, append it to ``<stage>/alerts.jsonl`` and send it to every
    configured channel; per channel, ``sent``, ``skipped: ...`` or ``failed: ...``."""
    log.error("guardline alert: %s: %s", alert.subject, alert.reason)
    if stage_root is not None:
        stage_root.mkdir(parents=True, exist_ok=True)
        with (stage_root / "alerts.jsonl").open("a", encoding="utf-8") as out:
            out.write(json.dumps(alert.as_json(), ensure_ascii=False) + "\n")
    channels = settings()
    outcome = {}
    for name, deliver in (("email", _email), ("webhook", _webhook)):
        spec = channels.get(name) or {}
        if not spec.get("connection"):
            continue
        try:
            outcome[name] = deliver(alert, spec)
        except Exception as exc:  # a channel that fails must not fail the task it reports on
            outcome[name] = f"failed: {exc}"
            log.warning("guardline alert: %s could not be sent: %s", name, exc)
    return outcome


def _connection(conn_id: str) -> Connection | None:
    try:
        return Connection.get(conn_id)
    except AirflowNotFoundException:
        log.info("guardline alert: no Connection %s, channel skipped", conn_id)
        return None


def _email(alert: Alert, spec: dict[str, Any]) -> str:
    from airflow.sdk import Variable

    to = [a.strip() for a in (Variable.get(spec["to_variable"], default=None) or "").split(",") if a.strip()]
    if not to:
        return f"skipped: no addresses in the Variable {spec['to_variable']}"
    if _connection(spec["connection"]) is None:
        return f"skipped: no Connection {spec['connection']}"
    from html import escape

    from airflow.providers.smtp.hooks.smtp import SmtpHook

    with SmtpHook(smtp_conn_id=spec["connection"]) as smtp:
        smtp.send_email_smtp(
            to=to,
            subject=alert.subject,
            html_content=f"<pre>{escape(alert.text)}</pre>",
        )
    return "sent"


def _webhook(alert: Alert, spec: dict[str, Any]) -> str:
    conn = _connection(spec["connection"])
    if conn is None:
        return f"skipped: no Connection {spec['connection']}"
    import urllib.request

    extra = conn.extra_dejson or {}
    url = extra.get("url") or _url(conn)
    request = urllib.request.Request(
        url,
        data=json.dumps(alert.as_json(), ensure_ascii=False).encode("utf-8"),
        headers={"Content-Type": "application/json; charset=utf-8", **extra.get("headers", {})},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT) as response:
        return f"sent ({response.status})"


def _url(conn: Connection) -> str:
    host = conn.host or ""
    if "://" in host:
        return host
    port = f":{conn.port}" if conn.port else ""
    return f"{conn.schema or 'http'}://{host}{port}/{(conn.extra_dejson or {}).get('endpoint', '').lstrip('/')}"


def _county(ti: Any) -> str:
    """A mapped task's county: its rendered map index (the tasks name their instances)."""
    return str(getattr(ti, "rendered_map_index", None) or "")


class Notifier(BaseNotifier):
    """The task callbacks: ``kind`` is ``failed`` (on failure, retries exhausted or none
    allowed) or ``retry`` (on retry). The reason is the exception's message."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def notify(self, context: Any) -> None:
        from pipeline import orchestration as orch

        ti = context.get("ti") or context.get("task_instance")
        dag_id = getattr(ti, "dag_id", "") or getattr(context.get("dag"), "dag_id", "")
        county = _county(ti) or (context.get("county") or "")
        send(
            Alert(
                kind=self.kind,
                source=orch.source_of(dag_id),
                reason=str(context.get("exception") or "unknown"),
                county=county,
                dag_id=dag_id,
                task_id=getattr(ti, "task_id", ""),
                run_id=getattr(ti, "run_id", ""),
                night=_night(context),
                try_number=getattr(ti, "try_number", 0) or 0,
            ),
            orch.stage_root(),
        )


def _night(context: Any) -> str:
    from pipeline import orchestration as orch

    try:
        return orch.as_of(context).isoformat()
    except Exception:  # a callback names the night when it can, and alerts regardless
        return ""


async def lists_late(context: dict | None = None, **kwargs: Any) -> None:
    """The deadline callback (run by the triggerer): the night's lists were not out by
    the configured time. A backfill's old night is late by definition: not alerted."""
    run = (context or {}).get("dag_run") or {}
    get = run.get if isinstance(run, dict) else functools.partial(getattr, run)
    if "backfill" in str(get("run_type", "") or ""):
        return
    logical = get("logical_date", None)
    if isinstance(logical, str):
        logical = datetime.fromisoformat(logical)
    alert = Alert(
        kind="late",
        source=kwargs.get("dag_id", ""),
        reason=f"the night's lists were not out by {kwargs.get('due', '?')} ({config_.timezone()})",
        dag_id=kwargs.get("dag_id", ""),
        run_id=str(get("run_id", "") or ""),
        night=config_.night_of(logical).isoformat() if logical else "",
    )
    await asyncio.to_thread(send, alert, None)
