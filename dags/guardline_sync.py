"""One sync DAG per source in pipeline/orchestration.yaml: the register refresh and the
nightly department syncs.

night, counties → extract → validate → stage → verdict. Extract and validate map over
the province's counties; stage merges every county's landing and updates the source's
Asset (the source has settled its night, with new data or none), and match-and-flag
runs once all five have. A refused delivery (a file that cannot be read, a critical
expectation) is quarantined and staged as "failed" like the rest, so the night goes on
with the county's earlier data; then the verdict fails the run, naming the source, the
county and the reason. A system that does not answer is retried; if it still does not,
the asset waits, and so does match-and-flag. Tasks call pipeline.steps, as the CLI's
steps do.
"""

from __future__ import annotations

from airflow.sdk import dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from pipeline import orchestration as orch


def sync_dag(source: str, spec: dict):
    stage_asset = orch.asset(source)

    @dag(
        dag_id=spec["dag_id"],
        description=spec["description"],
        schedule=orch.cron(spec["schedule"]),
        **orch.dag_arguments(),
        tags=["guardline", "sync", source],
        doc_md=__doc__,
    )
    def sync():
        @task
        @orch.guarded
        def counties() -> list[str]:
            from pipeline import steps

            inbox, _, _ = orch.folders()
            return steps.inbox_counties(inbox)

        @task(map_index_template="{{ county }}")
        @orch.guarded
        def extract(county: str, as_of: str) -> str:
            from datetime import date

            from pipeline import steps

            get_current_context()["county"] = county
            inbox, stage_root, _ = orch.folders()
            url = orch.exchange_url(county) if "connection" in spec else None  # a database source
            return steps.extract(source, inbox, stage_root, county, date.fromisoformat(as_of), url)

        @task
        @orch.guarded
        def validate(landing: str) -> str:
            from pipeline import steps

            return steps.validate(landing)

        @task(outlets=[stage_asset])
        @orch.guarded
        def stage(landings: list[str], as_of: str) -> dict:
            from pipeline import steps

            staged = steps.stage(list(landings))
            get_current_context()["outlet_events"][stage_asset].extra = {
                "as_of": as_of,
                "counties": {county: s["status"] for county, s in staged.items()},
            }
            return staged

        @task
        def verdict(staged: dict) -> None:
            from pipeline import steps

            refused = steps.refusals(source, staged)
            if refused:
                raise AirflowFailException(refused)

        as_of = task(orch.night, task_id="night")()
        landed = extract.partial(as_of=as_of).expand(county=counties())
        verdict(stage(validate.expand(landing=landed), as_of))

    return sync()


for _source, _spec in orch.sources().items():
    globals()[_spec["dag_id"]] = sync_dag(_source, _spec)
