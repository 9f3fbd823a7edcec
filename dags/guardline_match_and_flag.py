"""Match and flag: runs when every source has settled its night, for the night their
asset events carry.

night, counties → match (per county) → rules (per county) → load → publish. Matching and rules map
over the counties whose register is staged, so a province's counties spread over the
workers; the load takes every county in one warehouse transaction (re-running a night
replaces that night: loads are idempotent), then each county's township lists are
written. Data moves through the stage's Parquet files and the warehouse; XCom carries
the date, county names, counts and paths.
"""

from __future__ import annotations

from airflow.sdk import dag, get_current_context, task

from pipeline import orchestration as orch

SPEC = orch.config()["match_and_flag"]


@dag(
    dag_id=SPEC["dag_id"],
    description="Match every county's records to its register, run the rules, load, publish the lists",
    schedule=orch.night_assets(),
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

    @task(map_index_template="{{ county }}")
    @orch.guarded
    def match(county: str, as_of: str) -> dict:
        from datetime import date

        from pipeline import steps

        get_current_context()["county"] = county
        _, stage_root, _ = orch.folders()
        result = steps.match(stage_root / county, date.fromisoformat(as_of), SPEC["matching_settings"])
        return {"county": county, **result.summary()}

    @task(map_index_template="{{ county }}")
    @orch.guarded
    def rules(county: str, as_of: str) -> dict:
        from datetime import date

        from pipeline import steps

        get_current_context()["county"] = county
        _, stage_root, _ = orch.folders()
        return {"county": county, **steps.flag(stage_root / county, date.fromisoformat(as_of)).summary()}

    @task
    @orch.guarded
    def load(counties: list[str], as_of: str, matched: list[dict], flagged: list[dict]) -> dict:
        from datetime import date

        from pipeline import steps

        _, stage_root, _ = orch.folders()
        orch.provide_pseudonym_key()
        ctx = get_current_context()
        return steps.load_province(
            orch.warehouse_url(stage_root),
            {c: stage_root / c for c in counties},
            date.fromisoformat(as_of),
            f"airflow {ctx['run_id']}",
            {"match": {m["county"]: m for m in matched}, "rules": {f["county"]: f for f in flagged}},
        )

    @task
    @orch.guarded
    def publish(counties: list[str], as_of: str) -> list[str]:
        from datetime import date

        from pipeline import steps

        _, stage_root, outbox = orch.folders()
        day = date.fromisoformat(as_of)
        return [str(p) for c in counties for p in steps.publish(stage_root / c, outbox / c, day)]

    as_of, staged = task(orch.night, task_id="night")(), counties()
    matched = match.partial(as_of=as_of).expand(county=staged)
    flagged = rules.partial(as_of=as_of).expand(county=staged)
    matched >> flagged >> load(staged, as_of, matched, flagged) >> publish(staged, as_of)


guardline_match_and_flag()
