"""Loading a night from the stage into the warehouse: idempotent and atomic.

Everything a night writes goes in one transaction, so a run killed mid-load leaves the
previous state intact. Each table is replaced by its keys (the register and links as a
whole, flags and exit candidates for the night's date), so loading the same night twice
leaves every table identical. Rows go in bulk — DuckDB reads the Arrow table directly,
PostgreSQL takes COPY — never row by row.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import polars as pl
import sqlalchemy as sa

from connectors.stage import Stage
from guardline.errors import GuardlineError
from matching.prepare import DEPARTMENT_STAGES
from matching.review import decisions_of
from rules.features import head_rows
from warehouse import schema
from warehouse.db import upgrade
from warehouse.privacy import mask_id, mask_phone, pseudonym_key, pseudonyms


@dataclass
class LoadResult:
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def bulk_insert(conn: sa.Connection, table: sa.Table, frame: pl.DataFrame) -> int:
    """Append ``frame`` (columns named as the table's) in bulk, inside the open transaction."""
    frame = frame.select([c.name for c in table.columns if c.name in frame.columns])
    if frame.height == 0:
        return 0
    raw = conn.connection.driver_connection
    cols = ", ".join(frame.columns)
    if conn.dialect.name == "duckdb":
        arrow = frame.to_arrow()
        raw.register("__incoming", arrow)
        try:
            raw.execute(f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM __incoming")
        finally:
            raw.unregister("__incoming")
    elif conn.dialect.name == "postgresql":
        with raw.cursor() as cursor, cursor.copy(f"COPY {table.name} ({cols}) FROM STDIN") as copy:
            for row in frame.iter_rows():
                copy.write_row(row)
    else:  # pragma: no cover - other backends take the portable path
        conn.execute(table.insert(), frame.to_dicts())
    return frame.height


def _replace(
    conn: sa.Connection, table: sa.Table, frame: pl.DataFrame, where: sa.ColumnElement | None = None
) -> int:
    conn.execute(table.delete() if where is None else table.delete().where(where))
    return bulk_insert(conn, table, frame)


PAUSE = "GUARDLINE_FAULT_PAUSE"  # seconds to stop mid-load, with a signal file: for the kill test


def _pause_for_fault_injection() -> None:
    """Stop in the middle of the load's transaction when the kill test asks for it."""
    spec = os.environ.get(PAUSE)
    if spec:
        seconds, _, signal_file = spec.partition(":")
        if signal_file:
            Path(signal_file).touch()
        time.sleep(float(seconds))


def staged_records(stage: Stage) -> pl.DataFrame:
    """Every staged department record: its key, origin, date and the canonical values as JSON."""
    frames = []
    for stage_name in DEPARTMENT_STAGES:
        records = stage.records(stage_name)
        if records is None or records.height == 0:
            continue
        values = [
            c for c in records.columns if c not in ("source", "source_record_id", "file", "row", "event_date")
        ]
        frames.append(
            records.select(
                "source",
                "source_record_id",
                "file",
                pl.col("row").cast(pl.Int64),
                "event_date",
                pl.struct(values).struct.json_encode().alias("payload"),
            )
        )
    return pl.concat(frames) if frames else pl.DataFrame()


def record_run(eng: sa.Engine, as_of: date, counts: dict, started_at: datetime) -> str:
    """The audit row of one run (its own transaction: the log of runs, not part of a night's
    state, so re-running a night adds a row here and changes nothing else)."""
    run_id = f"{as_of.isoformat()}:{uuid.uuid4().hex[:12]}"
    row = pl.DataFrame(
        [
            {
                "run_id": run_id,
                "as_of_date": as_of,
                "started_at": started_at,
                "code_version": code_version(),
                "counts": json.dumps(counts, ensure_ascii=False, default=str),
            }
        ]
    )
    with eng.begin() as conn:
        bulk_insert(conn, schema.run_audit, row)
    return run_id


def code_version() -> str:
    """The package version, and the git commit when run from a checkout."""
    try:
        from importlib.metadata import version

        v = version("guardline")
    except Exception:
        v = "unknown"
    head = Path(__file__).resolve().parents[1] / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            ref = (head.parent / ref[5:]).read_text().strip()
        return f"{v}+{ref[:12]}"
    except OSError:
        return v


def _night_frames(stage: Stage, as_of: date, key: bytes) -> dict[str, pl.DataFrame]:
    """What one county's stage contributes to the warehouse for the night ``as_of``."""
    register = stage.records("registry")
    if register is None:
        raise GuardlineError(f"no register staged yet in {stage.root}: run `guardline ingest` first")
    links_path = stage.root / "links.parquet"
    flags_path = stage.root / "flags" / f"{as_of.isoformat()}.parquet"
    if not links_path.exists() or not flags_path.exists():
        raise GuardlineError(
            f"the night of {as_of} is not complete in {stage.root}: run match and flag first"
        )
    exits_path = stage.root / "exit" / f"{as_of.isoformat()}.parquet"
    decisions = decisions_of(stage.root)
    return {
        "households": head_rows(register).with_columns(mask_phone(pl.col("phone")).alias("phone_masked")),
        "persons": register.with_columns(
            mask_id(pl.col("id_number")).alias("id_masked"),
            pseudonyms(register["id_number"], key).alias("id_pseudonym"),
        ),
        "record_links": pl.read_parquet(links_path),
        "flags": pl.read_parquet(flags_path),
        "exit_candidates": pl.read_parquet(exits_path) if exits_path.exists() else pl.DataFrame(),
        "processed_files": stage.ledger(),
        "source_records": staged_records(stage),
        "quarantine": stage.quarantine(),
        "review_decisions": decisions if decisions is not None else pl.DataFrame(),
    }


# A record seen by several counties (a provincial 人社 exchange pulled by each) is one
# record in the warehouse: its best link wins, a match before a review before nothing.
_LINK_ORDER = {"matched": 0, "review": 1, "unmatched": 2}


def _union(table: sa.Table, parts: list[tuple[str, pl.DataFrame]]) -> pl.DataFrame:
    """The counties' rows of one table; a register key in two counties is refused."""
    frames = [f.with_columns(pl.lit(county).alias("__county")) for county, f in parts if f.height]
    if not frames:
        return pl.DataFrame()
    rows = pl.concat(frames, how="diagonal_relaxed")
    keys = [c.name for c in table.primary_key.columns]
    if table.name in ("households", "persons"):
        twice = (
            rows.group_by(keys)
            .agg(pl.col("__county").unique().sort())
            .filter(pl.col("__county").list.len() > 1)
        )
        if twice.height:
            first = twice.row(0, named=True)
            raise GuardlineError(
                f"{table.name}: {keys[0]} {first[keys[0]]} is in the registers of "
                f"{' and '.join(first['__county'])} ({twice.height} such keys): a register key "
                "belongs to one county"
            )
    elif table.name == "record_links":
        rows = rows.sort(pl.col("match_status").replace_strict(_LINK_ORDER, default=3), maintain_order=True)
    return rows.unique(keys, keep="first", maintain_order=True).drop("__county")


def load_night(
    eng: sa.Engine, stages: Stage | Mapping[str, Stage], as_of: date, demo: bool = False
) -> LoadResult:
    """The register, links, the night's flags and exit candidates, processed files — of one
    stage, or of many counties' stages (``{county: stage}``) in one transaction."""
    started = time.perf_counter()
    key = pseudonym_key(demo)
    counties = {"": stages} if isinstance(stages, Stage) else dict(stages)
    if not counties:
        raise GuardlineError("no county to load")
    nights = {county: _night_frames(stage, as_of, key) for county, stage in counties.items()}
    tables = {name: schema.metadata.tables[name] for name in next(iter(nights.values()))}
    frames = {
        name: _union(table, [(c, n[name]) for c, n in nights.items()]) for name, table in tables.items()
    }
    night_scoped = {"flags", "exit_candidates"}
    upgrade(eng)
    result = LoadResult()
    with eng.begin() as conn:
        for name, table in tables.items():
            if name == "flags":
                _pause_for_fault_injection()
            where = table.c.as_of_date == as_of if name in night_scoped else None
            result.rows[name] = _replace(conn, table, frames[name], where)
    result.seconds = time.perf_counter() - started
    return result
