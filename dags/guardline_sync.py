"""One sync DAG per source in pipeline/orchestration.yaml: the register refresh and the
nightly department syncs.

night → counties → per county: extract → validate → stage → verdict. Each county is a
mapped task group, its instances named by county: a county whose system does not answer
is retried on its own (and, if it still does not, its source stays unsettled for the
night while the other counties go on). Stage commits the county's night of the source —
records, quarantine, ledger, and that the source has settled the night — and announces
it on the source's Asset. A refused delivery (a file that cannot be read, a critical
expectation) is quarantined and staged as "failed" like the rest, so the night goes on
with the county's earlier data; then the county's verdict fails, alerting with the
source, the county and the reason. Tasks call pipeline.steps, as the command line does.
"""

from __future__ import annotations

from airflow.sdk import dag, get_current_context, task, task_group
from airflow.sdk.exceptions import AirflowFailException

from pipeline import alerting
from pipeline import orchestration as orch


def sync_dag(source: str, spec: dict):
    stage_asset = orch.asset(source)

    @dag(
        dag_id=spec["dag_id"],
        description=spec["description"],
        schedule=orch.cron(spec["schedule"]),
        **orch.dag_arguments(),
        tags=["guardline", "sync", source],
        doc_md=orch.source_doc(source, __doc__),
    )
    def sync():
        @task
        @orch.guarded
        def counties() -> list[str]:
            from pipeline import steps

            inbox, _, _ = orch.folders()
            return steps.inbox_counties(inbox)

        @task_group(group_id="county")
        def county_sync(county: str, as_of: str):
            @task(map_index_template="{{ county }}", execution_timeout=orch.timeout("extract"))
            @orch.guarded
            def extract(county: str, as_of: str) -> str:
                from datetime import date

                from pipeline import steps

                orch.name_instance(county)
                inbox, stage_root, _ = orch.folders()
                url = orch.exchange_url(county) if "connection" in spec else None  # a database source
                landing = steps.extract(source, inbox, stage_root, county, date.fromisoformat(as_of), url)
                orch.lineage(inputs=steps.landing_inputs(landing, inbox / county, url))
                return landing

            @task(map_index_template="{{ county }}", execution_timeout=orch.timeout("validate"))
            @orch.guarded
            def validate(county: str, landing: str) -> str:
                from pipeline import steps

                orch.name_instance(county)
                orch.report("validate", steps.validate(landing), county)
                return landing

            @task(map_index_template="{{ county }}", outlets=[stage_asset])
            @orch.guarded
            def stage(county: str, landing: str, as_of: str) -> dict:
                from pipeline import steps

                orch.name_instance(county)
                staged = steps.stage([landing])[county]
                get_current_context()["outlet_events"][stage_asset].extra = {
                    "as_of": as_of,
                    "county": county,
                    **{k: staged[k] for k in ("status", "records", "loaded", "quarantined")},
                }
                return orch.report("stage", staged, county)

            @task(map_index_template="{{ county }}", on_failure_callback=[alerting.Notifier("refused")])
            def verdict(county: str, staged: dict) -> None:
                from pipeline import steps

                orch.name_instance(county)
                refused = steps.refusals(source, {county: staged})
                if refused:
                    raise AirflowFailException(refused)

            verdict(county, stage(county, validate(county, extract(county, as_of)), as_of))

        county_sync.partial(as_of=orch.in_order()).expand(county=counties())

    return sync()


for _source, _spec in orch.sources().items():
    globals()[_spec["dag_id"]] = sync_dag(_source, _spec)
