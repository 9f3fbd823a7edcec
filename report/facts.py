"""What the night's report shows, read from where the steps left it: the warehouse (the
flags of the night and the 30 before, the visits, the files and rows each source
delivered, the quarantine, the key's fingerprint, the code version) and the county's
stage (the night's links, the model it scored with and the one before, the Great
Expectations results per file, the run's seconds and peak memory per step). Nothing is
computed again: a figure of the report is a count of rows a step wrote.

The reads are the I/O edge of the report; :mod:`report.page` turns :class:`NightFacts`
into a page without touching a file or a database.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
import yaml

from connectors.validation import data_docs_index, result_file
from staging.stage import LEDGER_SCHEMA, QUARANTINE_SCHEMA, Stage
from warehouse import schema
from warehouse.load import KEY_SETTING

TREND_NIGHTS = 30
SAMPLE_ROWS = 5  # quarantined rows shown per refused file
FILE_COLUMNS = (
    "source",
    "file",
    "status",
    "reason",
    "rows_read",
    "loaded",
    "quarantined",
    "duplicates",
    "warnings",
)
CONFIG = Path(__file__).with_name("config.yaml")


def _reports(stage: Stage) -> Path:
    """Where a night's validation results are: ``<stage>/reports``, ingest's default."""
    return stage.root / "reports"


@dataclass(frozen=True)
class SourceCadence:
    """How often a source delivers (days), and so when its silence is news."""

    source: str
    label: str
    days: int | None  # None: delivers when something happens (应急 after a disaster)


def cadences(path: Path = CONFIG) -> list[SourceCadence]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [SourceCadence(name, s["label"], s.get("cadence_days")) for name, s in raw["sources"].items()]


@dataclass
class NightFacts:
    """One county's night, as the steps and the warehouse hold it."""

    county: str
    as_of: date
    county_name: str
    nights_run: list[date]  # the nights of the trend window the county's rules ran
    flags: (
        pl.DataFrame
    )  # tonight: household_id, rule_id, rule_name, status, listed, overdue, disposition, township
    trend: pl.DataFrame  # as_of_date, rule_id, warnings (not resolved) over the last 30 nights
    exit_candidates: int
    visits: pl.DataFrame  # per rule: listed, verified, identified, dismissed, overdue
    files: pl.DataFrame  # processed_files of the night
    deliveries: pl.DataFrame  # per source: last night it delivered anything, latest record date
    still_refused: pl.DataFrame  # files refused on an earlier night and not delivered again since
    quarantine: pl.DataFrame  # the first quarantined rows of each file: source, file, row, field, reason, raw
    checks: pl.DataFrame  # GX results per file: source, file, check, column, severity, success, observed
    data_docs: Path | None
    links: pl.DataFrame  # per source and status: records
    review_age: pl.DataFrame  # records in review tonight and the nights they have waited
    weights: pl.DataFrame  # comparison, level, weight (tonight's model), previous (the model before)
    model: dict[str, Any] = field(default_factory=dict)  # fitted_on, drift, training
    run: dict[str, Any] = field(default_factory=dict)  # seconds and peak_mib per step, stopped
    code_version: str = ""
    key_fingerprint: str = ""
    missing_sources: dict[str, str] = field(default_factory=dict)


def _frame(conn: sa.Connection, sql: str, schema: dict[str, Any], **params: Any) -> pl.DataFrame:
    rows = conn.execute(sa.text(sql), params).mappings().all()
    return pl.DataFrame([dict(r) for r in rows], schema=schema, orient="row")


def gather(eng: sa.Engine, stage: Stage, county: str, as_of: date) -> NightFacts:
    """Everything the report of ``county``'s night ``as_of`` shows."""
    night = {"c": county, "d": as_of}
    since = as_of - timedelta(days=TREND_NIGHTS)
    with eng.connect() as conn:
        flags = _frame(
            conn,
            "SELECT f.household_id, f.rule_id, f.rule_name, f.status, f.listed, f.overdue, f.disposition, h.township "
            "FROM flags f LEFT JOIN households h ON h.household_id = f.household_id "
            "WHERE f.as_of_date = :d AND f.county_code = :c",
            {
                "household_id": pl.String,
                "rule_id": pl.String,
                "rule_name": pl.String,
                "status": pl.String,
                "listed": pl.Boolean,
                "overdue": pl.Boolean,
                "disposition": pl.String,
                "township": pl.String,
            },
            **night,
        )
        trend = _frame(
            conn,
            "SELECT as_of_date, rule_id, COUNT(*) AS warnings FROM flags "
            "WHERE county_code = :c AND as_of_date > :since AND as_of_date <= :d AND status <> 'resolved' "
            "GROUP BY as_of_date, rule_id",
            {"as_of_date": pl.Date, "rule_id": pl.String, "warnings": pl.Int64},
            since=since,
            **night,
        )
        exits = conn.execute(
            sa.text("SELECT COUNT(*) FROM exit_candidates WHERE as_of_date = :d AND county_code = :c"),
            night,
        ).scalar_one()
        visited = _frame(
            conn,
            "SELECT DISTINCT household_id, rule_id FROM visits "
            "WHERE county_code = :c AND visit_date <= :d AND list_date <= :d",
            {"household_id": pl.String, "rule_id": pl.String},
            **night,
        )
        files = _frame(
            conn,
            f"SELECT {', '.join(FILE_COLUMNS)} FROM processed_files WHERE county_code = :c AND as_of = :d "
            "ORDER BY source, file",
            {c: LEDGER_SCHEMA.get(c, pl.String) for c in FILE_COLUMNS},
            **night,
        )
        delivered = _frame(
            conn,
            "SELECT source, MAX(as_of) AS last_delivered FROM processed_files "
            "WHERE county_code = :c AND as_of <= :d AND status <> 'failed' AND (loaded > 0 OR superseded > 0) "
            "GROUP BY source",
            {"source": pl.String, "last_delivered": pl.Date},
            **night,
        )
        latest = _frame(
            conn,
            "SELECT source, MAX(event_date) AS latest_record FROM source_records "
            "WHERE county_code = :c AND event_date <= :d GROUP BY source",
            {"source": pl.String, "latest_record": pl.Date},
            **night,
        )
        still_refused = _frame(
            conn,
            "SELECT f.source, f.file, f.as_of, f.reason FROM processed_files f WHERE f.county_code = :c "
            "AND f.status = 'failed' AND f.as_of < :d AND NOT EXISTS (SELECT 1 FROM processed_files g "
            "WHERE g.county_code = f.county_code AND g.source = f.source AND g.file = f.file "
            "AND g.as_of > f.as_of AND g.as_of <= :d) ORDER BY f.source, f.file",
            {"source": pl.String, "file": pl.String, "as_of": pl.Date, "reason": pl.String},
            **night,
        )
        quarantine = _frame(  # the first rows of each file quarantined by tonight: the samples
            conn,
            "SELECT source, file, row, field, reason, raw FROM (SELECT q.*, ROW_NUMBER() OVER "
            "(PARTITION BY source, file ORDER BY row) AS n FROM quarantine q WHERE county_code = :c AND as_of <= :d) "
            f"s WHERE n <= {SAMPLE_ROWS} ORDER BY source, file, row",
            {c: QUARANTINE_SCHEMA[c] for c in ("source", "file", "row", "field", "reason", "raw")},
            **night,
        )
        run_row = conn.execute(
            sa.text(
                "SELECT code_version, counts FROM run_audit WHERE as_of_date = :d ORDER BY started_at DESC"
            ),
            {"d": as_of},
        ).all()
        county_name = conn.execute(
            sa.text("SELECT MIN(county) FROM households WHERE county_code = :c"), {"c": county}
        ).scalar()
        kept = schema.settings
        fingerprint = conn.execute(sa.select(kept.c.value).where(kept.c.name == KEY_SETTING)).scalar()
    code_version = next(
        (v for v, counts in run_row if county in json.loads(counts or "{}").get("counties", {})), ""
    )
    if not code_version and run_row:
        code_version = run_row[0][0] or ""
    run = stage.run(as_of) or {}
    return NightFacts(
        county=county,
        as_of=as_of,
        county_name=county_name or "",
        nights_run=[d for d in stage.nights("flags") if since < d <= as_of],
        flags=flags,
        trend=trend,
        exit_candidates=int(exits),
        visits=_visit_yield(flags, visited),
        files=files,
        deliveries=_deliveries(delivered, latest, as_of),
        still_refused=still_refused,
        quarantine=quarantine,
        checks=_checks(stage, as_of, files),
        data_docs=_data_docs(stage),
        links=_links(stage, as_of),
        review_age=_review_age(stage, as_of),
        weights=_weights(stage, as_of),
        model=_model(stage, as_of, run, county),
        run={
            "seconds": run.get("seconds", {}),
            "peak_mib": run.get("peak_mib", {}),
            "stopped": run.get("stopped", ""),
        },
        code_version=code_version,
        key_fingerprint=fingerprint or "",
        missing_sources=dict(run.get("failed_sources", {})),
    )


def _visit_yield(flags: pl.DataFrame, visited: pl.DataFrame) -> pl.DataFrame:
    """Per rule, of tonight's warnings: listed, visited since, identified (纳入监测),
    dismissed, overdue — what the visits made of the rule's warnings."""
    keyed = flags.filter(pl.col("status") != "resolved").join(
        visited.with_columns(pl.lit(True).alias("verified")), on=["household_id", "rule_id"], how="left"
    )
    return (
        keyed.group_by("rule_id")
        .agg(
            pl.col("listed").fill_null(False).sum().alias("listed"),
            pl.col("verified").fill_null(False).sum().alias("verified"),
            (pl.col("disposition") == "identified").fill_null(False).sum().alias("identified"),
            (pl.col("disposition") == "dismissed").fill_null(False).sum().alias("dismissed"),
            pl.col("overdue").fill_null(False).sum().alias("overdue"),
        )
        .sort("rule_id")
    )


def _deliveries(delivered: pl.DataFrame, latest: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Per configured source: the last night it delivered anything new, the latest record
    date it holds, and whether it is silent for longer than its cadence (stale)."""
    known = pl.DataFrame(
        [(c.source, c.label, c.days) for c in cadences()],
        schema={"source": pl.String, "label": pl.String, "cadence_days": pl.Int64},
        orient="row",
    )
    family = pl.col("source").str.split(".").list.first()
    delivered = (
        delivered.with_columns(family.alias("source")).group_by("source").agg(pl.col("last_delivered").max())
    )
    latest = latest.with_columns(family.alias("source")).group_by("source").agg(pl.col("latest_record").max())
    out = known.join(delivered, on="source", how="left").join(latest, on="source", how="left")
    silent = (pl.lit(as_of) - pl.col("last_delivered")).dt.total_days()
    return out.with_columns(
        silent.alias("silent_days"),
        (
            pl.col("cadence_days").is_not_null()
            & (pl.col("last_delivered").is_null() | (silent > pl.col("cadence_days")))
        ).alias("stale"),
    )


def _checks(stage: Stage, as_of: date, files: pl.DataFrame) -> pl.DataFrame:
    """Every Great Expectations check of the night's files (each file's result read where
    the validator wrote it), as judged, with what it saw."""
    rows = []
    for source, file in files.select("source", "file").iter_rows():
        path = result_file(_reports(stage), as_of, source, file)
        result = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        for r in result.get("results", []):
            config = r.get("expectation_config", {})
            # a per-row check is judged on its answer column: the report names it as written
            written = (config.get("meta") or {}).get("checks") or config
            kwargs = written.get("kwargs", {})
            observed = r.get("result", {})
            seen = observed.get("observed_value", observed.get("unexpected_count"))
            rows.append(
                {
                    "source": source,
                    "file": file,
                    "check": written.get("type", ""),
                    "column": kwargs.get("column") or "",
                    "explain": (config.get("meta") or {}).get("explain", ""),
                    "severity": config.get("severity") or "critical",
                    "success": bool(r.get("success")),
                    "observed": "" if seen is None else str(seen),
                }
            )
    schema = {
        "source": pl.String,
        "file": pl.String,
        "check": pl.String,
        "column": pl.String,
        "explain": pl.String,
        "severity": pl.String,
        "success": pl.Boolean,
        "observed": pl.String,
    }
    return pl.DataFrame(rows, schema=schema)


def _data_docs(stage: Stage) -> Path | None:
    index = data_docs_index(_reports(stage))
    return index if index.exists() else None


def _links(stage: Stage, as_of: date) -> pl.DataFrame:
    links = stage.nightly("links", as_of, ["source", "match_status"])
    if links is None:
        return pl.DataFrame(schema={"source": pl.String, "match_status": pl.String, "records": pl.UInt32})
    return (
        links.group_by("source", "match_status").agg(pl.len().alias("records")).sort("source", "match_status")
    )


def _review_age(stage: Stage, as_of: date, horizon: int = 90) -> pl.DataFrame:
    """Each record in review tonight, and how many nights it has been waiting: counted
    back over the nights matched while it stayed in review (at most ``horizon``)."""
    nights = [d for d in stage.nights("links") if as_of - timedelta(days=horizon) <= d <= as_of]
    read = ["source", "source_record_id", "match_status"]  # of the links, not their explanations
    tonight = stage.nightly("links", as_of, read)
    schema = {"source": pl.String, "source_record_id": pl.String, "waiting_nights": pl.Int64}
    if tonight is None:
        return pl.DataFrame(schema=schema)
    waiting = tonight.filter(pl.col("match_status") == "review").select("source", "source_record_id")
    since = {key: as_of for key in waiting.iter_rows()}
    open_keys = set(since)
    for night in reversed(nights[:-1] if nights and nights[-1] == as_of else nights):
        frame = stage.nightly("links", night, read) if open_keys else None
        if frame is None:
            break
        still = set(
            frame.filter(pl.col("match_status") == "review").select("source", "source_record_id").iter_rows()
        )
        for key in list(open_keys):
            if key in still:
                since[key] = night
            else:
                open_keys.discard(key)
    return pl.DataFrame(
        [(s, r, (as_of - since[(s, r)]).days) for s, r in waiting.iter_rows()], schema=schema, orient="row"
    )


def _weights(stage: Stage, as_of: date) -> pl.DataFrame:
    """Match weight (log2 m/u) per comparison level of the model the night scored with,
    beside the weight of the model the night before scored with."""
    from matching.settings import Settings

    schema = {"comparison": pl.String, "level": pl.String, "weight": pl.Float64, "previous": pl.Float64}
    model = stage.model(as_of)
    if model is None:
        return pl.DataFrame(schema=schema)
    before = stage.model(as_of - timedelta(days=1))
    china = Settings.load("china")
    labels = {c.name: c.levels for c in china.comparisons} if model.get("settings") == china.name else {}
    rows = []
    order = [c for c in labels if c in model["m"]] + [c for c in model["m"] if c not in labels]
    for comparison in order:
        m = model["m"][comparison]
        u = model["u"][comparison]
        prev = before["m"].get(comparison) if before else None
        prev_u = before["u"].get(comparison) if before else None
        for i, (mi, ui) in enumerate(zip(m, u, strict=True)):
            level = labels.get(comparison, ())[i] if i < len(labels.get(comparison, ())) else f"level {i}"
            then = (
                _weight(prev[i], prev_u[i])
                if prev is not None and prev_u is not None and i < len(prev)
                else None
            )
            rows.append((comparison, level, _weight(mi, ui), then))
    return pl.DataFrame(rows, schema=schema, orient="row")


def _weight(m: float, u: float) -> float:
    return round(math.log2(max(m, 1e-12) / max(u, 1e-12)), 3)


def _model(stage: Stage, as_of: date, run: dict, county: str) -> dict[str, Any]:
    model = stage.model(as_of) or {}
    counties = run.get("counties", {})
    summary = counties.get(county) or next(iter(counties.values()), {})
    return {
        "fitted_on": model.get("fitted_on", ""),
        "training": model.get("training", {}),
        "drift": (summary.get("model") or {}).get("drift"),
        "fitted": (summary.get("model") or {}).get("fitted"),
    }
