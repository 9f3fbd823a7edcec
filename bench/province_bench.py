"""A province's nights under Airflow: twenty counties through the Celery executor, two workers.

Usage: python bench/province_bench.py [counties] [households]      (default 20 x 5,000)

Generates the counties once (``bench/out/province_<C>x<H>/``, each a county code of its
own, so that they share one warehouse), lays them out as a province (``inbox/<county>/``),
and runs a real Airflow on this machine: its metadata and the province's warehouse in
fresh databases of the local PostgreSQL, the Redis broker, a scheduler, an api-server, a
dag-processor and two Celery workers of one process each. Each night, the five sync DAGs
are triggered for the night and, once they have settled it, match-and-flag; a night is
timed from its first trigger until its last run has ended. Two nights:

1. the first (every record new);
2. the next, with one day's deliveries in every county (as ``night_bench.py`` makes them:
   a thirtieth of the latest 医保 and 民政 month files again as new records, a thirtieth
   of the 人社 rows new or changed).

Printed per night: the wall time of the syncs, of match-and-flag and of the night; per
step, its tasks' count, median and largest seconds, and the largest task's peak memory
(each task reports the kernel's high-water mark of its own process); how busy the two
workers were (the tasks' seconds over twice the wall time) and how long a task waited
between being queued and starting. The peer is the same night of every county run by
``guardline run``, one county after the other, each in a fresh process on the same
PostgreSQL (another database): the work without the orchestration.

Last, per night, what a province's extrapolation starts from: the night's task seconds
per county, and the CPU seconds the scheduler, the api-server, the dag-processor and the
workers (their tasks included) spent, against what the machine had (its cores times the
wall time). The workers import Great Expectations once each
(``pipeline.celery_config``), as the compose file's do.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from night_bench import FIRST, KEY, OUT, one_days_deliveries  # noqa: E402

from tests.airflow_env import (  # noqa: E402
    PG_SERVER,
    airflow,
    base_env,
    connection,
    free_port,
    fresh_database,
    run_state,
    services,
)
from tests.airflow_province import MATCH_DAG, SYNC_DAGS, metadata, rows  # noqa: E402

# Each sync DAG's source, to name its steps (``health_insurance.validate``).
SOURCE_OF = {dag_id: source for source, dag_id in SYNC_DAGS.items()}


def province(counties: int, households: int) -> Path:
    """The generated counties (made once): ``generated/<code>/inbox``."""
    from synth.generate import generate
    from synth.places import COUNTIES

    codes = list(COUNTIES)[:counties]
    if len(codes) < counties:
        raise SystemExit(f"the generator knows {len(codes)} counties, not {counties}")
    folder = OUT / f"province_{counties}x{households}"
    for i, code in enumerate(codes):
        if not (folder / code / "inbox").is_dir():
            shutil.rmtree(folder / code, ignore_errors=True)
            generate(folder / code, households=households, seed=100 + i, as_of=FIRST, county=code)
    return folder


def logical_date(night: date) -> str:
    """A night's runs are due at 01:00 in Shanghai."""
    return f"{night.isoformat()}T01:00:00+08:00"


def run_id(night: date) -> str:
    return f"bench_{night.isoformat()}"


def trigger(env: dict[str, str], dag_id: str, night: date) -> None:
    done = airflow(
        env,
        "dags",
        "trigger",
        dag_id,
        "--logical-date",
        logical_date(night),
        "--run-id",
        run_id(night),
        "--conf",
        json.dumps({"as_of": night.isoformat()}),
    )
    if done.returncode != 0:
        raise SystemExit(f"airflow dags trigger {dag_id} failed: {done.stderr[-2000:]}")


def wait(env: dict[str, str], dags: list[str], night: date, limit: float = 7200) -> None:
    """Until the run of the night of every DAG of ``dags`` has ended; a failed one ends the bench."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        states = {d: run_state(metadata(env), d, logical=logical_date(night)) for d in dags}
        if all(s and s[-1] in ("success", "failed") for s in states.values()):
            failed = [d for d, s in states.items() if s[-1] == "failed"]
            if failed:
                raise SystemExit(f"{', '.join(failed)} failed for {night}: see {env['AIRFLOW_HOME']}")
            return
        time.sleep(2)
    raise SystemExit(f"the night {night} did not end within {limit:.0f} s: see {env['AIRFLOW_HOME']}")


def tasks(env: dict[str, str], night: date) -> list[dict]:
    """The night's task instances: step, county, seconds, seconds queued, and the peak MiB
    the task's own account logged (extract and the bookkeeping tasks log none)."""
    found = rows(
        metadata(env),
        "SELECT dag_id, task_id, map_index, rendered_map_index AS county, start_date, end_date, queued_dttm, "
        "try_number FROM task_instance WHERE run_id = :r",
        r=run_id(night),
    )
    logs = Path(env["AIRFLOW_HOME"]) / "logs"
    out = []
    for t in found:
        folder = logs / f"dag_id={t['dag_id']}" / f"run_id={run_id(night)}" / f"task_id={t['task_id']}"
        if t["map_index"] >= 0:
            folder /= f"map_index={t['map_index']}"
        log = folder / f"attempt={t['try_number']}.log"
        peaks = re.findall(r"peak_mib: ([0-9.]+)", log.read_text("utf-8")) if log.is_file() else []
        step = t["task_id"].removeprefix("county.")
        source = SOURCE_OF.get(t["dag_id"])
        out.append(
            {
                "step": f"{source}.{step}" if source and step != "counties" else step,
                "county": t["county"] if t["map_index"] >= 0 else None,
                "seconds": (t["end_date"] - t["start_date"]).total_seconds(),
                "queued": (t["start_date"] - t["queued_dttm"]).total_seconds() if t["queued_dttm"] else 0.0,
                "peak_mib": max(float(v) for v in peaks) if peaks else None,
            }
        )
    return out


def airflow_night(env: dict[str, str], night: date) -> tuple[float, float, list[dict]]:
    """One night of the province: the syncs, then match-and-flag; their wall seconds and
    the night's task instances."""
    started = time.perf_counter()
    for dag_id in SYNC_DAGS.values():
        trigger(env, dag_id, night)
    wait(env, list(SYNC_DAGS.values()), night)
    synced = time.perf_counter()
    trigger(env, MATCH_DAG, night)
    wait(env, [MATCH_DAG], night)
    return synced - started, time.perf_counter() - synced, tasks(env, night)


def cpu_seconds(pid: int) -> float:
    """The CPU seconds of a process and all its descendants, alive or ended (reaped)."""
    import psutil

    total = 0.0
    try:
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                t = proc.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
    except psutil.NoSuchProcess:
        pass
    return total


def deliver_a_day(inboxes: list[Path], night: date) -> None:
    """The night's deliveries of every county: a day's (``night_bench.one_days_deliveries``)."""
    for inbox in inboxes:
        one_days_deliveries(inbox, night)


def cli_night(folder: Path, codes: list[str], night: date, url: str) -> float:
    """The peer: the night of every county by ``guardline run``, one after the other, each in
    a fresh process; its seconds."""
    env = {**os.environ, "GUARDLINE_PSEUDONYM_KEY": KEY}
    started = time.perf_counter()
    for code in codes:
        home = folder / code
        done = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "run", "--inbox", str(home / "inbox"), "--stage",
             str(home / "stage"), "--outbox", str(home / "outbox"), "--warehouse", url, "--as-of", night.isoformat()],
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode not in (0, 3):
            raise SystemExit(f"guardline run {code} {night} ended {done.returncode}: {done.stderr[-2000:]}")
    return time.perf_counter() - started


def report(label: str, sync_s: float, match_s: float, ran: list[dict], workers: int, peer_s: float) -> None:
    wall = sync_s + match_s
    busy = sum(t["seconds"] for t in ran)
    print(
        f"{label}: {wall:7.1f} s (syncs {sync_s:.1f} s, match-and-flag {match_s:.1f} s), {len(ran)} tasks; "
        f"workers busy {100 * busy / (workers * wall):.0f}%; "
        f"peer (guardline run, county after county) {peer_s:.1f} s = {wall / peer_s:.2f}x"
    )
    steps: dict[str, list[dict]] = {}
    for t in ran:
        steps.setdefault(t["step"], []).append(t)
    print(f"  {'step':<36} {'tasks':>5} {'median s':>9} {'max s':>7} {'sum s':>8} {'max MiB':>8} {'queued s (median)':>18}")
    for step, group in sorted(steps.items(), key=lambda kv: -sum(t["seconds"] for t in kv[1])):
        peaks = [t["peak_mib"] for t in group if t["peak_mib"] is not None]
        print(
            f"  {step:<36} {len(group):5d} {statistics.median(t['seconds'] for t in group):9.1f} "
            f"{max(t['seconds'] for t in group):7.1f} {sum(t['seconds'] for t in group):8.1f} "
            f"{max(peaks) if peaks else float('nan'):8,.0f} {statistics.median(t['queued'] for t in group):18.1f}"
        )
    counties = {t["county"] for t in ran if t["county"] is not None}
    per_county = busy / max(len(counties), 1)
    tasks_per_county = len([t for t in ran if t["county"] in counties]) / max(len(counties), 1)
    print(
        f"  per county: {per_county:.1f} task seconds in {tasks_per_county:.0f} tasks "
        f"(median task {statistics.median(t['seconds'] for t in ran):.1f} s); "
        f"largest task peak {max((t['peak_mib'] or 0) for t in ran):,.0f} MiB"
    )


def main(counties: int = 20, households: int = 5_000) -> None:
    import redis

    redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2).ping()
    folder = province(counties, households)
    codes = sorted(p.name for p in folder.iterdir() if (p / "inbox").is_dir())[:counties]
    home = OUT / f"province_run_{counties}x{households}"
    shutil.rmtree(home, ignore_errors=True)
    for code in codes:
        shutil.copytree(folder / code / "inbox", home / "inbox" / code)
    nights = [FIRST, FIRST + timedelta(days=1)]
    workers = 2
    with (
        fresh_database("guardline_bench_airflow") as meta_db,
        fresh_database("guardline_bench_wh") as warehouse,
        fresh_database("guardline_bench_peer") as peer_db,
    ):
        (home / "airflow").mkdir()
        env = base_env(
            home / "airflow",
            meta_db,
            guardline_inbox=str(home / "inbox"),
            guardline_stage=str(home / "stage"),
            guardline_outbox=str(home / "outbox"),
            guardline_pseudonym_key=KEY,
        )
        port = free_port()
        env.update(
            {
                "AIRFLOW_CONN_GUARDLINE_WAREHOUSE": connection(
                    "postgres", host="127.0.0.1", port=5432, login="postgres", schema=warehouse
                ),
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CELERY__BROKER_URL": "redis://127.0.0.1:6379/0",
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://postgres@127.0.0.1:5432/{meta_db}",
                "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "pipeline.celery_config.CELERY_CONFIG",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
                "AIRFLOW__API__PORT": str(port),
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only the bench's runs
                "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "64",
            }
        )
        from pipeline import orchestration as orch

        slots = str(orch.config()["pools"]["guardline_warehouse"])
        for args in (
            ("db", "migrate"),
            ("dags", "reserialize"),
            ("pools", "set", "guardline_warehouse", slots, "one county's load at a time"),
            *(("dags", "unpause", d) for d in [*SYNC_DAGS.values(), MATCH_DAG]),
        ):
            done = airflow(env, *args)
            if done.returncode != 0:
                raise SystemExit(f"airflow {' '.join(args)}: {done.stderr[-2000:]}")
        queue = env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"]
        measured, cpu = [], []
        with services(
            env,
            ("api-server", "--port", str(port), "--workers", "1"),
            ("scheduler",),
            ("dag-processor",),
            *(("celery", "worker", "--queues", queue, "--concurrency", "1", "--celery-hostname", f"w{i}@%h")
              for i in range(1, workers + 1)),
        ) as procs:
            names = ["api-server", "scheduler", "dag-processor", *(["workers (tasks included)"] * workers)]
            for i, night in enumerate(nights):
                if i:
                    deliver_a_day([home / "inbox" / code for code in codes], night)
                before = [cpu_seconds(p.pid) for p in procs]
                measured.append(airflow_night(env, night))
                spent: dict[str, float] = {}
                for name, p, b in zip(names, procs, before, strict=True):
                    spent[name] = spent.get(name, 0.0) + cpu_seconds(p.pid) - b
                cpu.append(spent)
        # The peer: the same counties and nights, county after county, on fresh copies.
        peer = home / "peer"
        for code in codes:
            shutil.copytree(folder / code / "inbox", peer / code / "inbox")
        peer_s = []
        for i, night in enumerate(nights):
            if i:
                deliver_a_day([peer / code / "inbox" for code in codes], night)
            peer_s.append(cli_night(peer, codes, night, f"{PG_SERVER}/{peer_db}"))
    print(f"province: {counties} counties x {households:,} households; Airflow CeleryExecutor, {workers} workers")
    labels = ("first night", "second night (one day's deliveries)")
    for (sync_s, match_s, ran), label, p, spent in zip(measured, labels, peer_s, cpu, strict=True):
        report(label, sync_s, match_s, ran, workers, p)
        print("  CPU seconds: " + ", ".join(f"{name} {s:,.0f}" for name, s in spent.items())
              + f" (the machine had {os.cpu_count() * (sync_s + match_s):,.0f})")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
