"""A real Airflow for the tests and the province bench: its own metadata database on the
local PostgreSQL, its own AIRFLOW_HOME, the project's dags/ folder, and the CLI run as users
run it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


@contextmanager
def fresh_database(prefix: str, template: str | None = None) -> Iterator[str]:
    """A new PostgreSQL database for one test module (a copy of ``template`` when given,
    which no one may be connected to), dropped afterwards; its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    copy = f' TEMPLATE "{template}"' if template else ""
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"{copy}'))
    try:
        yield name
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def base_env(home: Path, metadata_db: str, **variables: str) -> dict[str, str]:
    """The environment of every Airflow process of a test: nothing inherited from the
    developer's own Airflow or Guardline settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "GUARDLINE_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://postgres@127.0.0.1:5432/{metadata_db}",
            "AIRFLOW__API_AUTH__JWT_SECRET": f"test-jwt-{uuid.uuid4().hex}",
            # A queue of the test's own on the shared Redis: serialised tasks carry it, the
            # test's worker alone listens to it.
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": f"guardline-test-{uuid.uuid4().hex[:8]}",
            "PYTHONWARNINGS": "ignore",
        }
    )
    env.update({f"AIRFLOW_VAR_{k.upper()}": v for k, v in variables.items()})
    return env


def connection(conn_type: str, **fields: object) -> str:
    """An Airflow connection as the JSON an AIRFLOW_CONN_<ID> variable holds."""
    return json.dumps({"conn_type": conn_type, **fields})


def airflow(env: dict[str, str], *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [AIRFLOW, *args], env=env, cwd=env["AIRFLOW_HOME"], capture_output=True, text=True, timeout=timeout
    )


def dags_test(env: dict[str, str], dag_id: str, *args: str) -> subprocess.Popen:
    """``airflow dags test`` started in the background; its output in AIRFLOW_HOME."""
    log = Path(env["AIRFLOW_HOME"]) / f"{dag_id}.log"
    return subprocess.Popen(
        [AIRFLOW, "dags", "test", dag_id, *args],
        env=env,
        cwd=env["AIRFLOW_HOME"],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def run_state(metadata_url: str, dag_id: str, logical: str | None = None, run_type: str | None = None) -> list[str]:
    """The states of a DAG's runs, oldest first; only those of one logical date, or of one
    run type, when asked (other tests of the module add runs of their own, in any order)."""
    query = "SELECT state FROM dag_run WHERE dag_id = :d"
    params: dict = {"d": dag_id}
    if logical is not None:
        query += " AND logical_date = :l"
        params["l"] = datetime.fromisoformat(logical)
    if run_type is not None:
        query += " AND run_type = :t"
        params["t"] = run_type
    eng = sa.create_engine(metadata_url)
    try:
        with eng.connect() as c:
            return list(c.execute(sa.text(query + " ORDER BY id"), params).scalars())
    finally:
        eng.dispose()


@contextmanager
def services(env: dict[str, str], *commands: tuple[str, ...]) -> Iterator[list[subprocess.Popen]]:
    """Airflow components (scheduler, api-server, worker, ...) running for the block (their
    processes, in the order given); each in its own process group, so that stopping it
    stops its children too."""
    home = Path(env["AIRFLOW_HOME"])
    procs = []
    try:
        for args in commands:
            log = (home / f"{args[0]}-{args[-1]}.log").open("w")
            procs.append(
                subprocess.Popen(
                    [AIRFLOW, *args],
                    env=env,
                    cwd=home,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        yield procs
    finally:
        for p in procs:
            with suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for p in procs:
            with suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            with suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()


@dataclass
class Receivers:
    """What the local SMTP server and the local webhook receiver were sent."""

    smtp_port: int
    http_port: int
    mails: list = field(default_factory=list)  # email.message.Message
    posts: list = field(default_factory=list)  # decoded JSON bodies

    def connections(self) -> dict[str, str]:
        """The Airflow Connections (as AIRFLOW_CONN_* values) that point Guardline's alerts here."""
        return {
            "AIRFLOW_CONN_GUARDLINE_SMTP": connection(
                "smtp",
                host="127.0.0.1",
                port=self.smtp_port,
                extra={"disable_ssl": True, "disable_tls": True, "from_email": "guardline@example.test"},
            ),
            "AIRFLOW_CONN_GUARDLINE_WEBHOOK": connection(
                "http", host="127.0.0.1", port=self.http_port, schema="http", extra={"endpoint": "alerts"}
            ),
            "AIRFLOW_VAR_GUARDLINE_ALERT_TO": "data-team@example.test, county-office@example.test",
        }


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def receivers() -> Iterator[Receivers]:
    """A real SMTP server (aiosmtpd) and a real HTTP server on localhost for the block."""
    import email
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from aiosmtpd.controller import Controller

    got = Receivers(free_port(), free_port())

    class Mailbox:
        async def handle_DATA(self, server, session, envelope):
            message = email.message_from_bytes(envelope.content)
            message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
            got.mails.append(message)
            return "250 OK"

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            got.posts.append({"path": self.path, **json.loads(body)})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    smtp = Controller(Mailbox(), hostname="127.0.0.1", port=got.smtp_port)
    smtp.start()
    http = ThreadingHTTPServer(("127.0.0.1", got.http_port), Hook)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        http.shutdown()
        smtp.stop()
