"""Shared fixtures: one generated county per session, and the real PostgreSQL."""

from __future__ import annotations

import importlib.util
import os
from datetime import date
from pathlib import Path

import pytest

# Helpers the test modules import (and load as a plugin, for its fixtures): their asserts
# are rewritten too.
pytest.register_assert_rewrite("tests.airflow_env", "tests.airflow_province")

from synth.generate import Summary, generate  # noqa: E402

AS_OF = date(2026, 11, 27)

# Airflow, Celery and Redis are the `airflow` extra: without it (a developer who only runs
# the command line) the scheduler's tests are not collected; CI installs the extra, and
# there a missing Airflow fails the suite rather than thinning it.
AIRFLOW = importlib.util.find_spec("airflow") is not None
AIRFLOW_TESTS = ["test_airflow.py", "test_orchestration.py"]
collect_ignore = [] if AIRFLOW or os.environ.get("CI") else AIRFLOW_TESTS


def pytest_report_header(config) -> str | None:
    if collect_ignore:
        return f"the airflow extra is not installed: {', '.join(AIRFLOW_TESTS)} not collected (uv sync --extra airflow)"
    return None
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def county(tmp_path_factory: pytest.TempPathFactory) -> Summary:
    """A 3,000-household county with the default noise (xlsx register)."""
    return generate(tmp_path_factory.mktemp("county"), households=3000, seed=11, as_of=AS_OF)


@pytest.fixture(scope="session")
def clean_county(tmp_path_factory: pytest.TempPathFactory) -> Summary:
    """A small county without noise and with the CSV register."""
    return generate(
        tmp_path_factory.mktemp("clean"),
        households=400,
        seed=3,
        as_of=AS_OF,
        noise="clean",
        register_format="csv",
    )


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The PostgreSQL server at 127.0.0.1:5432; skipped, with the reason shown, if none answers."""
    import sqlalchemy as sa

    try:
        with sa.create_engine(PG_URL).connect() as con:
            con.execute(sa.text("select 1"))
    except Exception as exc:
        if os.environ.get("CI"):  # CI runs every test: a missing server is a failure there
            pytest.fail(f"no PostgreSQL at 127.0.0.1:5432 ({type(exc).__name__}): CI needs it")
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432 ({type(exc).__name__})")
    return PG_URL


def inbox(summary: Summary) -> Path:
    return summary.out / "inbox"
