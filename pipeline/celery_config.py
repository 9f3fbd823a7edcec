"""The Celery workers' configuration: Airflow's own, with Great Expectations imported once
per worker instead of once per task.

A Celery worker runs each Airflow task in a process forked from its pool, and Airflow's
Celery provider imports its own costly modules in the worker before the pool starts (its
``import_modules`` handler), so that each task's process begins with them. A validate
task of Guardline spends 2 to 3 s importing Great Expectations (with pandas, pyarrow and
scipy) before it checks a row: five such tasks per county a night. Adding that import to
the worker's preload makes it once per worker. Polars is not preloaded: its threads do not
survive a fork, and its import is cheap; the tasks import it themselves.

Set ``AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=pipeline.celery_config.CELERY_CONFIG`` (the
compose file does) for the scheduler and the workers alike: the configuration is
Airflow's default, unchanged.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import import_modules

CELERY_CONFIG = DEFAULT_CELERY_CONFIG
log = logging.getLogger("guardline.celery")


@import_modules.connect
def preload(*args: Any, **kwargs: Any) -> None:
    """Import Great Expectations in the worker, before its pool forks (and before Airflow's
    own handler freezes the garbage collector over what is loaded)."""
    import great_expectations  # noqa: F401

    log.warning("guardline: Great Expectations preloaded for this worker's tasks")
