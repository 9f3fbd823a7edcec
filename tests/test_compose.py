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


# Services that run the project's image (Airflow, and the warehouse's migration job).
IMAGE_SERVICES = AIRFLOW_SERVICES | {"warehouse-migrate"}


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def _required() -> set[str]:
    """The variables the compose file requires (``${NAME:?why}``)."""
    return set(re.findall(r"(?<!\$)\$\{(\w+):\?", (ROOT / "docker-compose.yml").read_text(encoding="utf-8")))


def _locked(name: str) -> str:
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    (version,) = {p["version"] for p in lock["package"] if p["name"] == name}
    return version


def test_the_services_of_a_celery_deployment():
    services = _compose()["services"]
    assert set(services) == AIRFLOW_SERVICES | {"redis", "airflow-db", "warehouse", "warehouse-migrate"}
    commands = {name: " ".join(services[name]["command"]) for name in AIRFLOW_SERVICES}
    assert commands["airflow-api-server"] == "airflow api-server"
    assert commands["airflow-scheduler"] == "airflow scheduler"
    assert commands["airflow-dag-processor"] == "airflow dag-processor"
    assert commands["airflow-triggerer"] == "airflow triggerer"
    assert commands["airflow-worker"] == "airflow celery worker"
    assert "airflow db migrate" in commands["airflow-init"] and "airflow users create" in commands["airflow-init"]
    assert "guardline roles" in " ".join(services["warehouse-migrate"]["command"])
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        assert services[name]["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}
        assert services[name]["healthcheck"]["test"], name
        for backing in ("redis", "airflow-db", "warehouse"):
            assert services[name]["depends_on"][backing] == {"condition": "service_healthy"}, name
        assert services[name]["depends_on"]["warehouse-migrate"] == {"condition": "service_completed_successfully"}
    # Workers carry no published port and no container name: `--scale airflow-worker=N` works.
    assert "ports" not in services["airflow-worker"] and "container_name" not in services["airflow-worker"]


def test_one_airflow_version_everywhere_and_it_is_the_lock_files():
    services = _compose()["services"]
    airflow = _locked("apache-airflow")
    images = {services[name]["image"] for name in IMAGE_SERVICES}
    assert images == {f"guardline-airflow:{airflow}"}
    assert all(services[name]["build"]["context"] == "." for name in IMAGE_SERVICES)
    others = [s.get("image", "") for n, s in services.items() if n not in IMAGE_SERVICES]
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
        assert env["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"] == "pipeline.celery_config.CELERY_CONFIG"
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
    required = _required()
    assert required >= {"AIRFLOW_UID", "AIRFLOW_FERNET_KEY", "AIRFLOW_API_SECRET_KEY", "WAREHOUSE_ETL_PASSWORD"}
    for variable in required:  # every variable compose requires, .env.example names
        assert re.search(rf"^{variable}=", example, re.M), variable


def test_a_deployment_without_default_secrets_or_a_superuser_at_work():
    """No secret falls back to a default (compose refuses to start without it); the
    warehouse is published on this host only; the services run as AIRFLOW_UID, prepared
    by an init step as root; the nights write as guardline_etl, which is not the
    warehouse's owner; Flask AppBuilder's auth manager; Fernet and API secret keys shared."""
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert not re.search(r"\$\{\w+:?-", text), "a variable with a default"
    services = _compose()["services"]
    assert all(str(port).startswith("127.0.0.1:") for port in services["warehouse"]["ports"])
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        assert services[name]["user"].startswith("${AIRFLOW_UID:?"), name
    init = services["airflow-init"]
    assert init["user"] == "0:0" and 'chown -R "$${AIRFLOW_UID}:0" /data/stage /data/outbox' in init["command"][-1]
    env = services["airflow-worker"]["environment"]
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("fab_auth_manager.FabAuthManager")
    assert env["AIRFLOW__CORE__FERNET_KEY"].startswith("${AIRFLOW_FERNET_KEY:?")
    assert env["AIRFLOW__API__SECRET_KEY"].startswith("${AIRFLOW_API_SECRET_KEY:?")
    assert env["AIRFLOW_CONN_GUARDLINE_WAREHOUSE"].startswith("postgres://guardline_etl:${WAREHOUSE_ETL_PASSWORD:?")
    owner = services["warehouse"]["environment"]["POSTGRES_USER"]
    assert owner != "guardline_etl" and f"{owner}:" in services["warehouse-migrate"]["environment"]["GUARDLINE_OWNER_URL"]
    assert "SIMPLE_AUTH_MANAGER" not in text


def test_the_compose_file_is_valid_compose():
    """Parsed by a Compose Specification implementation (no Docker engine runs here), as
    `docker compose config` sees it: variables interpolated from an .env (every one the
    file requires, filled in), `$$` unescaped, YAML's anchors and merge keys resolved."""
    from compose_spec import PyCompose

    env = {name: "1000" if name == "AIRFLOW_UID" else f"test-{name.lower()}" for name in _required()}
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    text = re.sub(r"(?<!\$)\$\{(\w+)(?::\?[^}]*)?\}", lambda m: env[m.group(1)], text).replace("$$", "$")
    resolved = yaml.safe_dump(yaml.safe_load(text), allow_unicode=True, sort_keys=False)
    compose = PyCompose.from_yaml(resolved)
    assert set(compose.service_names()) == set(_compose()["services"])
