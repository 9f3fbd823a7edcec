# One image for every Airflow service of docker-compose.yml: Python 3.11 and the project
# installed from its lock file, Airflow included — so the Airflow that runs the DAGs is
# exactly the version uv.lock pins, on the scheduler and on every worker.
FROM python:3.11-slim-bookworm

ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    PATH=/opt/venv/bin:$PATH \
    AIRFLOW_HOME=/opt/airflow \
    PYTHONUNBUFFERED=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends curl tini \
    && rm -rf /var/lib/apt/lists/* \
    && pip install --no-cache-dir uv

WORKDIR /opt/guardline
# Dependencies first (cached while only the code changes), then the project itself.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --extra airflow --no-install-project
COPY . .
RUN uv sync --frozen --no-dev --extra airflow \
    && useradd --uid 50000 --gid 0 --create-home airflow \
    && mkdir -p /opt/airflow /data/inbox /data/stage /data/outbox \
    && chown -R 50000:0 /opt/airflow /data

USER 50000
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["airflow", "version"]
