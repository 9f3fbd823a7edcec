"""Warehouse connections and migrations: the embedded DuckDB file by default, a
``postgresql://`` URL for a shared warehouse.

:func:`open_warehouse` is the night's pre-flight: the URL as users write it
(``postgres://``, ``postgresql://`` and ``postgresql+psycopg://`` alike), the server
reached within seconds, the schema at the code's revision (migrated when the login may,
else one line saying who must), and the night's lock taken — a PostgreSQL advisory lock,
or a lock file beside the DuckDB file — so that two nights never write one warehouse at
once. Every failure is a :class:`GuardlineError` of one line.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from guardline.atomic import file_lock, holder_text
from guardline.errors import Busy, GuardlineError

MIGRATIONS = Path(__file__).with_name("migrations")
CONNECT_TIMEOUT = 5  # seconds: an unreachable server is said within seconds, not minutes
NIGHT_LOCK = 0x6775_6172_646C  # the advisory lock key of "one night at a time" ("guardl")


def normalise_url(url: str) -> str:
    """``postgres://`` and ``postgresql://`` as users write them, on the installed driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def engine(url: str) -> sa.Engine:
    """An engine for the warehouse URL (DuckDB without its progress bar on the console)."""
    url = normalise_url(url)
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise GuardlineError(f"not a database URL: {url!r} (e.g. postgresql://user@host/db)") from None
    connect_args = {"connect_timeout": CONNECT_TIMEOUT} if parsed.get_backend_name() == "postgresql" else {}
    try:
        eng = sa.create_engine(parsed, connect_args=connect_args)
    except (sa.exc.ArgumentError, ImportError, sa.exc.NoSuchModuleError) as exc:
        raise GuardlineError(f"cannot use the warehouse URL {describe(url)}: {exc}") from None
    if parsed.get_backend_name() == "duckdb":

        @sa.event.listens_for(eng, "connect")
        def _quiet(dbapi_connection, _record) -> None:
            dbapi_connection.execute("SET enable_progress_bar = false")

    return eng


def describe(url: str | sa.URL) -> str:
    """The URL without its password, for messages."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparsable URL>"


def unreachable(eng: sa.Engine, exc: Exception) -> GuardlineError:
    """One line for a warehouse that cannot be opened: down, refused, or a DuckDB file
    another process holds."""
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = detail[0] if detail else type(exc).__name__
    return GuardlineError(f"cannot open the warehouse {describe(eng.url)}: {first}")


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    return ScriptDirectory.from_config(_config()).get_current_head()


def upgrade(eng: sa.Engine, revision: str = "head") -> None:
    """Bring the warehouse to the latest schema, or to ``revision`` (idempotent).

    A warehouse already at the revision is only read, so a login that may not change the
    schema (``guardline_etl``) runs nights; one behind it says who must migrate.
    """
    cfg = _config()
    try:
        with eng.connect() as conn:
            current = (
                conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
                if sa.inspect(conn).has_table("alembic_version")
                else None
            )
    except sa.exc.DBAPIError as exc:
        raise unreachable(eng, exc) from None
    if revision == "head" and current == head_revision():
        return
    try:
        with eng.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except sa.exc.DBAPIError as exc:
        detail = str(exc.orig).splitlines()[0]
        if getattr(exc.orig, "sqlstate", None) == "42501":  # insufficient privilege
            user = eng.url.username or "this login"
            raise GuardlineError(
                f"the warehouse {describe(eng.url)} is at schema {current or 'none'}, the code needs "
                f"{head_revision()}, and {user} may not migrate it ({detail}): "
                "run `guardline roles --warehouse <owner URL>` once as its owner"
            ) from None
        raise GuardlineError(
            f"the warehouse {describe(eng.url)} cannot be migrated from {current or 'none'} to "
            f"{head_revision()}: {detail}"
        ) from None


@contextlib.contextmanager
def night_lock(eng: sa.Engine, timeout: float) -> Iterator[None]:
    """One night at a time on this warehouse; :class:`Busy` names the holder after
    ``timeout`` seconds. Released when the holder ends, killed or not."""
    if eng.dialect.name == "postgresql":
        with eng.connect() as conn:
            deadline = time.monotonic() + timeout
            while not conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": NIGHT_LOCK}).scalar():
                if time.monotonic() >= deadline:
                    holder = conn.execute(
                        sa.text(
                            "SELECT a.pid, a.usename, a.client_addr, a.application_name, a.backend_start "
                            "FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                            "WHERE l.locktype = 'advisory' AND l.granted AND l.objid = :lo"
                        ),
                        {"lo": NIGHT_LOCK & 0xFFFFFFFF},
                    ).first()
                    who = (
                        f"backend pid {holder.pid} ({holder.usename} from {holder.client_addr or 'local'}, "
                        f"since {holder.backend_start:%Y-%m-%d %H:%M:%S})"
                        if holder
                        else "another session"
                    )
                    raise Busy(
                        f"the warehouse {describe(eng.url)} is in use by another night: {who}; "
                        f"waited {timeout:g} s (--lock-timeout)"
                    )
                time.sleep(0.2)
            conn.commit()
            conn.execute(sa.text("SELECT set_config('application_name', :a, false)"), {"a": holder_text()[:63]})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": NIGHT_LOCK})
                conn.commit()
    elif eng.dialect.name == "duckdb" and eng.url.database not in (None, "", ":memory:"):
        path = Path(eng.url.database)
        with file_lock(path.with_name(path.name + ".lock"), f"the warehouse {path}", timeout):
            yield
    else:
        yield


def reach(eng: sa.Engine) -> None:
    """Connect once: an unreachable, refused or locked warehouse is one line, now."""
    try:
        with eng.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except (sa.exc.DBAPIError, OSError) as exc:
        raise unreachable(eng, exc) from None
    except Exception as exc:  # duckdb raises its own IOException for a file another process holds
        if type(exc).__module__.startswith(("duckdb", "_duckdb")):
            raise unreachable(eng, exc) from None
        raise
