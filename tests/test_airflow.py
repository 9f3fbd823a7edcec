"""The DAGs under a real Airflow 3, on a province of three counties: they parse fast and
light; `airflow dags test` runs the whole night against a PostgreSQL warehouse, one
county's match raising — the other two land exactly the flags `guardline run` makes of
them, and a real SMTP server and a real webhook receiver are told which county failed;
a refused delivery fails its county's verdict with an alert naming the source, the
county and the reason. (The backfill under a real scheduler: test_airflow_backfill.py.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from tests.airflow_env import ROOT, dags_test, run_state
from tests.airflow_province import (
    BROKEN,
    COUNTIES,
    COUNTY,
    HEALTHY,
    KEY,
    LOGICAL,
    MATCH_DAG,
    NIGHT_TABLES,
    PG,
    SOURCES,
    SYNC_DAGS,
    exchange,
    finish,
    log_of,
    metadata,
    read,
    rows,
    table_of,
)
from tests.conftest import AS_OF

# The province, its Airflow environment and the alert receivers: a module of their own.
pytest_plugins = ["tests.airflow_province"]
pytestmark = pytest.mark.usefixtures("pg_url")


def test_every_dag_file_parses_in_under_a_second_without_heavy_imports():
    # A fresh interpreter, as the dag-processor has: what parsing imports is what it costs.
    code = """
import json, sys, time
from airflow.dag_processing.dagbag import DagBag
t = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
total = time.perf_counter() - t
print(json.dumps({
    "errors": {k: v[-300:] for k, v in bag.import_errors.items()},
    "files": {s.file: s.duration.total_seconds() for s in bag.dagbag_stats},
    "dags": sorted(bag.dags),
    "heavy": [m for m in ("polars", "great_expectations", "pandas", "rapidfuzz", "duckdb") if m in sys.modules],
    "total": total,
}))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    out = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "dags")], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["errors"] == {}
    assert report["dags"] == sorted([*SYNC_DAGS.values(), MATCH_DAG])
    assert set(report["files"]) == {"guardline_sync.py", "guardline_match_and_flag.py"}
    assert all(seconds < 1.0 for seconds in report["files"].values()), report["files"]
    assert report["heavy"] == []


def test_the_dags_are_what_the_configuration_says():
    from airflow.dag_processing.dagbag import DagBag

    from pipeline import orchestration as orch

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    config = orch.config()
    group = {"county.extract", "county.validate", "county.stage", "county.verdict"}
    for source, dag_id in SYNC_DAGS.items():
        dag = bag.dags[dag_id]
        assert dag.timetable.expression == config["sources"][source]["schedule"]
        assert str(dag.timetable.timezone) == "Asia/Shanghai"
        # A periodic schedule is what `airflow backfill create` asks of a DAG (of the
        # serialized DAG, as the scheduler sees it).
        assert _serialized(dag).timetable.periodic and dag.max_active_runs == 1 and not dag.catchup
        assert set(dag.task_dict) == {"night", "counties", *group}
        # Each county is a mapped unit: its instances are named by county.
        assert type(dag.task_group_dict["county"]).__name__ == "MappedTaskGroup"
        for task_id in group:
            assert dag.task_dict[task_id].map_index_template == "{{ county }}", task_id
        assert [a.name for a in dag.task_dict["county.stage"].outlets] == [f"guardline_stage_{source}"]
        # The source's own section of docs/sources.md, headed by its name.
        assert dag.doc_md.startswith(f"### {source} "), dag.doc_md[:80]
        for task in dag.tasks:
            kwargs = getattr(task, "partial_kwargs", None) or vars(task)
            assert kwargs["retries"] == config["retries"], task.task_id
            assert kwargs["execution_timeout"] == orch.timeout(task.task_id.split(".")[-1]), task.task_id
            assert kwargs["on_retry_callback"], task.task_id
            kinds = [n.kind for n in kwargs["on_failure_callback"]]
            assert kinds == (["refused"] if task.task_id == "county.verdict" else ["failed"]), task.task_id
    assert len({bag.dags[d].doc_md for d in SYNC_DAGS.values()}) == len(SYNC_DAGS)  # one doc per source
    match = bag.dags[MATCH_DAG]
    assert (
        match.timetable.expression == config["match_and_flag"]["schedule"]
        and _serialized(match).timetable.periodic
    )
    assert set(match.task_dict) == {
        "night",
        "counties",
        "county.sources",
        "county.match",
        "county.rules",
        "county.load",
        "county.publish",
        "summary",
    }
    assert type(match.task_group_dict["county"]).__name__ == "MappedTaskGroup"
    assert match.task_dict["county.load"].pool == "guardline_warehouse"
    assert match.task_dict["summary"].trigger_rule == "all_done"
    (deadline,) = match.deadline
    # lists due 07:30, the run due 02:00: five and a half hours after the night's logical date
    assert deadline.interval.total_seconds() == 5.5 * 3600
    assert type(deadline.reference).__name__ == "DagRunLogicalDateDeadline"


def _serialized(dag):
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.from_dict(DagSerialization.to_dict(dag))


@pytest.fixture(scope="module")
def night(env, province, databases) -> str:
    """The whole night under `airflow dags test`: the register refresh, the four
    department syncs side by side (they stage into the same counties at the same time);
    then a staged file of the third county is damaged on disk, and match-and-flag runs
    the night. The warehouse's URL."""
    finish({SYNC_DAGS["registry"]: dags_test(env, SYNC_DAGS["registry"], LOGICAL)}, env)
    finish({SYNC_DAGS[s]: dags_test(env, SYNC_DAGS[s], LOGICAL) for s in SOURCES[1:]}, env)
    for kept in ("versions", "current"):
        (province / "stage" / BROKEN / kept / "health_insurance.parquet").write_bytes(b"not a parquet file")
    dags_test(env, MATCH_DAG, "--conf", json.dumps({"as_of": AS_OF.isoformat()})).wait(timeout=600)
    return f"{PG}/{databases[1]}"


@pytest.fixture(scope="module")
def cli_night(province, tmp_path_factory) -> list[str]:
    """`guardline run` on the healthy counties' deliveries, county by county; their
    embedded warehouses' URLs."""
    urls = []
    for code in HEALTHY:
        home = tmp_path_factory.mktemp(f"cli_night_{code}")
        shutil.copytree(province / "inbox" / code, home / "inbox")
        url = f"duckdb:///{home / 'warehouse.duckdb'}"
        args = ["run", "--inbox", str(home / "inbox"), "--as-of", AS_OF.isoformat(), "--warehouse", url]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipeline.cli",
                *args,
                "--hr-url",
                f"sqlite:///{exchange(province, code)}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "GUARDLINE_PSEUDONYM_KEY": KEY},
        )
        assert done.returncode == 0, done.stderr[-2000:]
        urls.append(url)
    return urls


@pytest.mark.scenario
def test_one_countys_failure_leaves_the_others_lists_and_warehouse_rows(night, cli_night, env, province):
    """The two healthy counties in one warehouse hold exactly what `guardline run` made of
    each; the broken county holds nothing, and the run is red naming it."""
    for table in NIGHT_TABLES:
        dags, cli = table_of(night, table), table_of(cli_night, table)
        assert dags.height > 0, table
        assert dags.drop("county_code").equals(cli.drop("county_code")), (
            table,
            dags.join(cli, on=list(dags.columns), how="anti").head(3),
        )
    flags = table_of(night, "flags")
    assert set(flags["as_of_date"]) == {AS_OF}
    assert set(flags["county_code"]) == {h[1:7] for h in flags["household_id"]} == set(HEALTHY)
    assert BROKEN not in set(read(night, "SELECT DISTINCT county_code FROM households")["county_code"])
    # Every sync succeeded; match-and-flag failed, and only the broken county's unit did.
    for dag_id in SYNC_DAGS.values():
        assert run_state(metadata(env), dag_id, logical=LOGICAL) == ["success"], dag_id
    assert run_state(metadata(env), MATCH_DAG, run_type="manual") == ["failed"]
    tis = read(
        metadata(env), f"SELECT task_id, map_index, state FROM task_instance WHERE dag_id = '{MATCH_DAG}'"
    )
    # The counties map in the order the stage lists them (by name).
    states = {(t, sorted(COUNTIES)[i]): s for t, i, s in tis.iter_rows() if t.startswith("county.")}
    for county in HEALTHY:
        for step in ("sources", "match", "rules", "load", "publish"):
            assert states[(f"county.{step}", county)] == "success", (step, county)
    assert states[("county.match", BROKEN)] == "failed"
    assert {states[(f"county.{s}", BROKEN)] for s in ("rules", "load", "publish")} == {"upstream_failed"}
    assert dict(zip(tis["task_id"], tis["state"], strict=False))["summary"] == "failed"
    for code in HEALTHY:
        lists = sorted((province / "outbox" / code / AS_OF.isoformat()).glob("*.xlsx"))
        assert lists and all(p.stat().st_size > 0 for p in lists), code
    assert not (province / "outbox" / BROKEN / AS_OF.isoformat()).exists()
    # Each healthy county's publish wrote its night's report beside its lists, and the task
    # instance carries the "Night report" link to it (kept in XCom when the task ended).
    pages = {province / "outbox" / code / AS_OF.isoformat() / "report.html" for code in HEALTHY}
    assert all(p.exists() and "<svg data-chart=" in p.read_text(encoding="utf-8") for p in pages)
    links = rows(
        metadata(env),
        f"SELECT value FROM xcom WHERE dag_id = '{MATCH_DAG}' AND task_id = 'county.publish' AND key = '_link_ReportLink'",
    )
    assert sorted(x["value"] for x in links) == sorted(p.as_uri() for p in pages)
    # The pseudonym key came from the Airflow Variable: the CLI, given the same key in its
    # environment, made the same pseudonyms.
    query = "SELECT person_id, id_pseudonym FROM {table}"
    assert table_of(night, "persons", query).equals(table_of(cli_night, "persons", query))
    # The same lists, byte for byte, and one audit schema whoever ran the night.
    for code, url in zip(HEALTHY, cli_night, strict=True):
        cli_day = Path(url.removeprefix("duckdb:///")).parent / "outbox" / AS_OF.isoformat()
        dag_day = province / "outbox" / code / AS_OF.isoformat()
        lists = {p.name: p.read_bytes() for p in sorted(dag_day.glob("*.csv"))}
        assert lists and lists == {p.name: p.read_bytes() for p in sorted(cli_day.glob("*.csv"))}, code
    schemas = {
        frozenset(json.loads(c))
        for u in [night, *cli_night]
        for c in read(u, "SELECT counts FROM run_audit")["counts"]
    }
    assert schemas == {frozenset(json.loads(read(cli_night[0], "SELECT counts FROM run_audit")["counts"][0]))}


@pytest.mark.scenario
def test_the_failing_county_is_named_in_the_alerts_and_the_logs(night, env, told):
    """A real SMTP server and a real webhook receiver were told: the broken county's match
    failed (once: a bug is not retried), and the night did not complete there."""
    posts = [p for p in told.posts if p["dag_id"] == MATCH_DAG]
    failed = [p for p in posts if p["task_id"] == "county.match"]
    assert [(p["kind"], p["county"], p["try_number"]) for p in failed] == [("failed", BROKEN, 1)]
    assert "parquet" in failed[0]["reason"].lower(), failed[0]["reason"]
    assert failed[0]["path"] == "/alerts" and failed[0]["night"] == AS_OF.isoformat()
    (night_alert,) = [p for p in posts if p["task_id"] == "summary"]
    assert BROKEN in night_alert["reason"] and not any(c in night_alert["reason"] for c in HEALTHY)
    assert not [p for p in posts if p["kind"] == "retry"]
    mails = [m for m in told.mails if BROKEN in m["Subject"] and "county.match" in m["Subject"]]
    assert len(mails) == 1
    assert mails[0]["X-Envelope-To"] == "data-team@example.test, county-office@example.test"
    body = "".join(p.get_payload(decode=True).decode() for p in mails[0].walk() if not p.is_multipart())
    assert f"county: {BROKEN}" in body and "county.match" in body
    # The logs: the failing task's instance is the county's, and the night's summary
    # block names every county's outcome.
    log = log_of(env, MATCH_DAG)
    assert "guardline night:" in log
    for county in HEALTHY:
        assert f"  {county}:\n    state: lists out\n" in log, county
    assert f"  {BROKEN}:\n    state: not complete\n" in log
    # Each mapped instance that ran is named by its county (one skipped after its
    # county's failure never ran, so never rendered its name: Airflow shows its index).
    tis = read(
        metadata(env),
        "SELECT task_id, map_index, state, rendered_map_index FROM task_instance "
        f"WHERE dag_id = '{MATCH_DAG}' AND map_index >= 0",
    )
    ran = tis.filter(pl.col("state") != "upstream_failed")
    assert set(ran["rendered_map_index"]) == set(COUNTIES)
    assert (
        ran.group_by("map_index").agg(pl.col("rendered_map_index").n_unique())["rendered_map_index"].to_list()
        == [1] * 3
    )


@pytest.mark.scenario
def test_each_task_logs_one_summary_and_lineage_names_inputs_and_outputs(night, env):
    # The sync's tasks: a summary block per county, the verdict per file; no GX noise.
    log = log_of(env, SYNC_DAGS["civil_affairs"])
    for county in COUNTIES:
        assert f"guardline validate {county}:" in log and f"guardline stage {county}:" in log
    assert "  verdict: valid\n" in log and "    civil_affairs/mz_changes_202611.xlsx: valid, " in log
    assert "great_expectations" not in log.lower().replace("great_expectations_", "")
    # OpenLineage: the inbox files a sync read, the warehouse tables and lists a load and
    # a publish wrote.
    events = [
        json.loads(line)
        for line in (Path(env["AIRFLOW_HOME"]) / "openlineage.jsonl").read_text().splitlines()
    ]
    complete = [e for e in events if e["eventType"] == "COMPLETE"]
    inputs = {i["namespace"] + "/" + i["name"] for e in complete for i in e.get("inputs", [])}
    outputs = {o["namespace"] + "/" + o["name"] for e in complete for o in e.get("outputs", [])}
    assert any("civil_affairs/mz_changes_202611.xlsx" in i for i in inputs), sorted(inputs)[:5]
    assert any(o.endswith("public.flags") or o.endswith("/flags") for o in outputs), sorted(outputs)[:10]
    assert any("预警核查清单" in o and o.endswith(".xlsx") for o in outputs), sorted(outputs)[:10]


@pytest.mark.scenario
def test_each_sync_announces_its_night_and_xcom_carries_only_small_values(night, env):
    events = read(
        metadata(env),
        "SELECT a.name, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id ORDER BY e.id",
    )
    extras = [e if isinstance(e, dict) else json.loads(e) for e in events["extra"]]
    # The chain's night (the module's other tests announce other nights of their own):
    # one event per source and county.
    ours = [
        (n, e["county"], e["status"])
        for n, e in zip(events["name"], extras, strict=True)
        if e["as_of"] == AS_OF.isoformat()
    ]
    assert sorted(ours) == sorted((f"guardline_stage_{s}", c, "ok") for s in SOURCES for c in COUNTIES)
    xcoms = rows(metadata(env), "SELECT dag_id, task_id, map_index, value FROM xcom")
    assert {x["task_id"] for x in xcoms} >= {
        "night",
        "counties",
        "county.extract",
        "county.validate",
        "county.stage",
        "county.match",
        "county.load",
    }
    for x in xcoms:
        value = x["value"]  # JSONB: decoded by the driver
        # Dates, county names, paths, counts and seconds: plain JSON, small, no frames,
        # no NaN (json.dumps refuses one).
        assert isinstance(value, str | int | float | list | dict | None), x
        assert len(json.dumps(value, allow_nan=False)) < 4000, x


@pytest.mark.scenario
def test_a_refused_delivery_fails_its_countys_verdict_and_alerts_with_source_county_and_reason(
    isolated_env, province, tmp_path, told
):
    """A broken 民政 workbook: the county's rows are quarantined, the night's asset is still
    announced (the other sources go on), the county's verdict goes red and the alert says
    why, to the log, the alerts file and the webhook."""
    env = isolated_env
    inbox = tmp_path / "inbox" / COUNTY / "civil_affairs"
    inbox.mkdir(parents=True)
    shutil.copy(province / "inbox" / COUNTY / "civil_affairs" / "mz_changes_202611.xlsx", inbox)
    (inbox / "mz_changes_202612.xlsx").write_bytes(b"PK\x03\x04 this is not a workbook")
    stage = tmp_path / "stage"
    broken = {
        **env,
        "AIRFLOW_HOME": str(tmp_path / "airflow_home"),  # its own logs
        "AIRFLOW_VAR_GUARDLINE_INBOX": str(tmp_path / "inbox"),
        "AIRFLOW_VAR_GUARDLINE_STAGE": str(stage),
    }
    dag_id = SYNC_DAGS["civil_affairs"]
    (tmp_path / "airflow_home").mkdir()
    proc = dags_test(broken, dag_id, "2026-11-27T17:00:00+00:00")
    proc.wait(timeout=600)
    log = log_of(broken, dag_id)
    assert run_state(metadata(env), dag_id)[-1] == "failed", log[-3000:]
    alerts = [json.loads(line) for line in (stage / "alerts.jsonl").read_text().splitlines()]
    assert [(a["kind"], a["source"], a["task_id"], a["county"]) for a in alerts] == [
        ("refused", "civil_affairs", "county.verdict", COUNTY)
    ]
    assert COUNTY in alerts[0]["reason"] and "mz_changes_202612.xlsx" in alerts[0]["reason"]
    assert [p["run_id"] for p in told.posts if p["kind"] == "refused"].count(alerts[0]["run_id"]) == 1
    from staging.stage import Stage

    quarantined = Stage(stage / COUNTY).quarantine()
    refused = quarantined.filter(pl.col("reason").str.contains("not a readable"))
    assert set(refused["file"]) == {"civil_affairs/mz_changes_202612.xlsx"}
    ledger = Stage(stage / COUNTY).ledger()
    # The broken workbook is refused alone: the county's other 民政 file is staged.
    assert dict(zip(ledger["file"], ledger["status"], strict=True)) == {
        "civil_affairs/mz_changes_202611.xlsx": "loaded",
        "civil_affairs/mz_changes_202612.xlsx": "failed",
    }
    # The source settled the night for the county, as partial: match-and-flag goes on
    # with it and says so in the lists.
    assert (
        Stage(stage / COUNTY).missing(date(2026, 11, 28), ["civil_affairs"])["civil_affairs"][0] == "partial"
    )
    events = read(
        metadata(env),
        "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
        "WHERE a.name = 'guardline_stage_civil_affairs' ORDER BY e.id DESC LIMIT 1",
    )
    extra = events["extra"][0]
    extra = extra if isinstance(extra, dict) else json.loads(extra)
    assert (extra["as_of"], extra["county"], extra["status"]) == ("2026-11-28", COUNTY, "partial")
