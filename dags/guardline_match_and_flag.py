"""Match and flag: each night, every county on its own.

night → counties → per county: sources (waits until the county's five sources have
settled the night) → match → rules → load → publish; then the night's summary.

Each county is a mapped task group, its instances named by county: one county's failure
or delay never holds up another's lists, and each county loads its night into the
warehouse in a transaction of its own (one at a time, from the warehouse's pool), so the
warehouse holds each county's latest good night. A county whose source has not settled
within the configured wait goes on without it: its lists, the task's summary and an
alert say which source the night went without. The night's summary fails the run when a
county failed, naming it. The run is scheduled for every night (a backfill of missed
nights runs them one at a time, in date order: each night's flags continue the night
before); the lists are due by a configured time (a deadline alert). Data moves through
the stage's Parquet files and the warehouse; XCom carries the date, county names, counts
and paths.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag, task, task_group

from pipeline import alerting
from pipeline import orchestration as orch

SPEC = orch.config()["match_and_flag"]
WAIT = timedelta(minutes=SPEC["wait_for_sources_minutes"])


@dag(
    dag_id=SPEC["dag_id"],
    description="Match every county's records to its register, run the rules, load, publish the lists",
    schedule=orch.cron(SPEC["schedule"]),
    deadline=orch.lists_deadline(),
    **orch.dag_arguments(),
    tags=["guardline", "match", "rules", "warehouse"],
    doc_md=__doc__,
)
def guardline_match_and_flag():
    @task
    @orch.guarded
    def counties() -> list[str]:
        from pipeline import steps

        _, stage_root, _ = orch.folders()
        return steps.staged_counties(stage_root)

    @task_group(group_id="county")
    def county_night(county: str, as_of: str):
        @task.sensor(
            map_index_template="{{ county }}",
            poke_interval=120,
            timeout=WAIT + timedelta(hours=1),
            mode="reschedule",
        )
        @orch.guarded
        def sources(county: str, as_of: str):
            from datetime import UTC, date, datetime

            from airflow.sdk import PokeReturnValue, get_current_context

            from pipeline import steps

            orch.name_instance(county)
            ctx = get_current_context()
            _, stage_root, _ = orch.folders()
            night = date.fromisoformat(as_of)
            waiting = steps.unsettled(stage_root / county, night)
            started = ctx["dag_run"].start_date or datetime.now(UTC)
            if waiting and datetime.now(UTC) - started < WAIT:
                orch.log.info("guardline: %s waits for %s to settle the night %s", county, ", ".join(waiting), as_of)
                return PokeReturnValue(is_done=False)
            missing = steps.missing_sources(stage_root / county, night)
            if missing:
                alerting.send(
                    alerting.Alert(
                        kind="missing",
                        source=SPEC["dag_id"],
                        county=county,
                        night=as_of,
                        dag_id=SPEC["dag_id"],
                        task_id="county.sources",
                        run_id=ctx["run_id"],
                        reason=f"the night goes on without {steps.describe_missing(missing)}",
                    ),
                    stage_root,
                )
            return PokeReturnValue(is_done=True, xcom_value=orch.report("sources", {"missing": missing}, county))

        @task(map_index_template="{{ county }}", execution_timeout=orch.timeout("match"))
        @orch.guarded
        def match(county: str, as_of: str) -> dict:
            from datetime import date

            from pipeline import steps

            orch.name_instance(county)
            _, stage_root, _ = orch.folders()
            result = steps.match(stage_root / county, date.fromisoformat(as_of), SPEC["matching_settings"])
            return orch.report("match", result.summary(), county)

        @task(map_index_template="{{ county }}", execution_timeout=orch.timeout("rules"))
        @orch.guarded
        def rules(county: str, as_of: str) -> dict:
            from datetime import date

            from pipeline import steps

            orch.name_instance(county)
            _, stage_root, _ = orch.folders()
            return orch.report("rules", steps.flag(stage_root / county, date.fromisoformat(as_of)).summary(), county)

        @task(map_index_template="{{ county }}", execution_timeout=orch.timeout("load"), pool=SPEC["pool"])
        @orch.guarded
        def load(county: str, as_of: str, matched: dict, flagged: dict, settled: dict) -> dict:
            from datetime import date

            from airflow.sdk import get_current_context

            from pipeline import steps

            orch.name_instance(county)
            _, stage_root, _ = orch.folders()
            orch.provide_pseudonym_key()
            url = orch.warehouse_url(stage_root)
            loaded = steps.load_county(
                url,
                county,
                stage_root / county,
                date.fromisoformat(as_of),
                f"airflow {get_current_context()['run_id']}",
                {"match": matched, "rules": flagged},
                settled["missing"],
            )
            orch.lineage(outputs=steps.warehouse_tables(url, loaded), extra={"county": county, "as_of": as_of})
            return orch.report("load", loaded, county)

        @orch.reporting_task(map_index_template="{{ county }}", execution_timeout=orch.timeout("publish"))
        @orch.guarded
        def publish(county: str, as_of: str, settled: dict) -> dict:
            from datetime import date

            from pipeline import steps
            from warehouse.db import engine

            orch.name_instance(county)
            _, stage_root, outbox = orch.folders()
            night = date.fromisoformat(as_of)
            written = [str(p) for p in steps.publish(stage_root / county, outbox / county, night)]
            eng = engine(orch.warehouse_url(stage_root))
            try:
                page = str(steps.report(eng, stage_root / county, outbox / county, night, county))
            finally:
                eng.dispose()
            orch.lineage(outputs=[f"file://{p}" for p in [*written, page]], extra={"county": county, "as_of": as_of})
            return orch.report("publish", {"lists": written, "report": page, "missing": settled["missing"]}, county)

        settled = sources(county, as_of)
        matched = match(county, as_of)
        flagged = rules(county, as_of)
        settled >> matched >> flagged
        load(county, as_of, matched, flagged, settled) >> publish(county, as_of, settled)

    @task(trigger_rule="all_done")
    def summary(counties: list[str], as_of: str) -> dict:
        """The night across the province: per county, its lists out or not; fails the run
        naming the counties whose night did not complete (each has alerted already)."""
        from datetime import date

        from airflow.sdk.exceptions import AirflowFailException

        from pipeline import steps

        _, stage_root, outbox = orch.folders()
        night = steps.province_night(stage_root, outbox, counties, date.fromisoformat(as_of))
        orch.report("night", night)
        failed = [c for c, s in night.items() if s["state"] != "lists out"]
        if failed:
            raise AirflowFailException(f"the night {as_of} did not complete in {len(failed)} of {len(counties)} counties: {', '.join(failed)}")
        return night

    as_of, staged = orch.in_order(), counties()
    county_night.partial(as_of=as_of).expand(county=staged) >> summary(staged, as_of)


guardline_match_and_flag()
