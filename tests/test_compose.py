"""docker-compose.yml and its Dockerfile, read as data (no Docker engine runs here): the
CeleryExecutor deployment the README promises, one Airflow version everywhere and the
lock file's."""

from __future__ import annotations

import re
import tomllib

import yaml

from tests.airflow_env import ROOT

AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def _locked(name: str) -> str:
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    (version,) = {p["version"] for p in lock["package"] if p["name"] == name}
    return version


def test_the_services_of_a_celery_deployment():
    services = _compose()["services"]
    assert set(services) == AIRFLOW_SERVICES | {"redis", "airflow-db", "warehouse"}
    commands = {name: " ".join(services[name]["command"]) for name in AIRFLOW_SERVICES}
    assert commands["airflow-api-server"] == "airflow api-server"
    assert commands["airflow-scheduler"] == "airflow scheduler"
    assert commands["airflow-dag-processor"] == "airflow dag-processor"
    assert commands["airflow-triggerer"] == "airflow triggerer"
    assert commands["airflow-worker"] == "airflow celery worker"
    assert "airflow db migrate" in commands["airflow-init"] and "guardline roles" in commands["airflow-init"]
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        assert services[name]["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}
        assert services[name]["healthcheck"]["test"], name
        for backing in ("redis", "airflow-db", "warehouse"):
            assert services[name]["depends_on"][backing] == {"condition": "service_healthy"}, name
    # Workers carry no published port and no container name: `--scale airflow-worker=N` works.
    assert "ports" not in services["airflow-worker"] and "container_name" not in services["airflow-worker"]


def test_one_airflow_version_everywhere_and_it_is_the_lock_files():
    services = _compose()["services"]
    airflow = _locked("apache-airflow")
    images = {services[name]["image"] for name in AIRFLOW_SERVICES}
    assert images == {f"guardline-airflow:{airflow}"}
    assert all(services[name]["build"]["context"] == "." for name in AIRFLOW_SERVICES)
    others = [s.get("image", "") for n, s in services.items() if n not in AIRFLOW_SERVICES]
    assert not any("airflow" in image for image in others)
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    # The image installs the project from the lock (Airflow with it), nothing else brings Airflow.
    assert re.search(r"^FROM python:3\.11", dockerfile, re.M)
    assert "uv sync --frozen --no-dev" in dockerfile
    assert "apache-airflow" not in dockerfile and "apache/airflow" not in dockerfile


def test_the_environment_the_dags_and_workers_need():
    services = _compose()["services"]
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
        assert "@airflow-db:5432/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert "@airflow-db:5432/airflow" in env["AIRFLOW__CELERY__RESULT_BACKEND"]
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-api-server:8080/execution/"
        # The JWT secret is shared by every service and required: compose refuses to start without it.
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"].startswith("${AIRFLOW_JWT_SECRET:?")
        assert env["GUARDLINE_PSEUDONYM_KEY"].startswith("${GUARDLINE_PSEUDONYM_KEY:?")
        assert "@warehouse:5432/guardline" in env["AIRFLOW_CONN_GUARDLINE_WAREHOUSE"]
        assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/guardline/dags"
        mounts = {v.split(":")[1]: v for v in services[name]["volumes"]}
        for variable in ("INBOX", "STAGE", "OUTBOX"):
            assert env[f"AIRFLOW_VAR_GUARDLINE_{variable}"] in mounts, (name, variable)
        assert mounts["/data/inbox"].endswith(":ro")  # deliveries are read, never changed


def test_the_variables_and_connections_are_the_ones_the_dags_read():
    from pipeline import orchestration as orch

    env = _compose()["services"]["airflow-worker"]["environment"]
    config = orch.config()
    for name in ("inbox", "stage", "outbox"):
        assert f"AIRFLOW_VAR_{config['variables'][name].upper()}" in env
    assert f"AIRFLOW_CONN_{config['connections']['warehouse'].upper()}" in env
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    assert f"AIRFLOW_CONN_{config['sources']['human_resources']['connection'].upper()}=" in example
    for secret in ("AIRFLOW_JWT_SECRET", "GUARDLINE_PSEUDONYM_KEY", "WAREHOUSE_PASSWORD"):
        assert re.search(rf"^{secret}=", example, re.M)
