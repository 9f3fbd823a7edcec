"""Writing a night's lists: ``outbox/<D>/<县><乡镇>_预警核查清单_<YYYYMMDD>.xlsx`` and its CSV,
one pair per township with households to visit. Monitoring staff may read full
identifiers: these lists carry them.
"""

from __future__ import annotations

import functools
from datetime import date
from pathlib import Path

import polars as pl

from guardline.atomic import Hook, recover, transaction
from guardline.csvsafe import write_csv
from guardline.errors import GuardlineError
from lists.rows import LIST_COLUMNS, VISIT_COLUMNS, identified_rows, visit_rows
from lists.workbook import file_name, missing_note, write_workbook
from rules.catalogue import Catalogue
from rules.incremental import LINKED
from staging.stage import Stage
from visits.config import VisitConfig
from visits.dispositions import apply_visits


def write_lists(
    flags: pl.DataFrame,
    register: pl.DataFrame,
    as_of: date,
    outbox: Path,
    on_step: Hook | None = None,
    *,
    links: pl.DataFrame | None = None,
    visits: pl.DataFrame | None = None,
    catalogue: Catalogue | None = None,
    config: VisitConfig | None = None,
    missing: str = "",
) -> list[Path]:
    """One workbook (and CSV) per township with households to visit; the paths written.

    ``flags`` are the night's, with their lifecycle; the ``visits`` that apply tonight
    take the households they settled off the list. The night's folder is replaced as one
    step: every list is written aside, then all are moved into place together and the
    lists of an earlier attempt that are no longer due removed, so a kill leaves the
    previous lists or the new ones, never half a township. ``missing`` names the sources
    the night went without (:func:`lists.workbook.missing_note`): each workbook says it.
    """
    catalogue = catalogue or Catalogue.load()
    config = config or VisitConfig.load()
    disposed = apply_visits(flags, visits, catalogue, config, as_of, links)
    rows = visit_rows(disposed, register, as_of, links)
    identified = identified_rows(disposed, register)
    folder = outbox / as_of.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    recover(outbox)
    written = []
    unknown = "未知乡镇"
    townships = sorted(set(rows["乡(镇)"].fill_null(unknown)) | set(identified["township"].fill_null(unknown)))
    with transaction(outbox, on_step) as tx:
        for township in townships:
            part = rows.filter(pl.col("乡(镇)").fill_null(unknown) == township)
            done = identified.filter(pl.col("township").fill_null(unknown) == township)
            county = _county(part if part.height else done)
            path = folder / file_name(county, township, as_of)
            draw = functools.partial(
                write_workbook,
                rows=part,
                identified=done,
                county=county,
                township=township,
                as_of=as_of,
                catalogue=catalogue,
                config=config,
                missing=missing,
            )
            tx.put(path, draw)
            tx.put(path.with_suffix(".csv"), functools.partial(_township_csv, part, as_of))
            written.append(path)
        for old in folder.iterdir():
            if old.is_file() and old.suffix in (".xlsx", ".csv") and old.with_suffix(".xlsx") not in written:
                tx.delete(old)
    return sorted(written)


def _county(rows: pl.DataFrame) -> str:
    found = rows["county"].drop_nulls() if "county" in rows.columns else pl.Series([], dtype=pl.String)
    return found[0] if found.len() else ""


def _township_csv(part: pl.DataFrame, as_of: date, path: Path) -> None:
    frame = (
        part.with_row_index("序号", offset=1)
        .with_columns(
            pl.lit(as_of.isoformat()).alias("清单日期"),
            pl.col("首次预警日期").cast(pl.String),
            *(pl.lit("").alias(c) for c in VISIT_COLUMNS),
        )
        .select(LIST_COLUMNS)
    )
    write_csv(path, frame.columns, frame.iter_rows())


def write_stage_lists(stage: Stage, as_of: date, outbox: Path, on_step: Hook | None = None) -> list[Path]:
    """The lists of the night ``as_of`` from a stage's flags, register, links and the
    visits that apply that night."""
    flags = stage.nightly("flags", as_of)
    register = stage.records("registry", as_of)
    if flags is None or register is None:
        raise GuardlineError(
            f"no flags for {as_of} in {stage.root}: run `guardline flag --as-of {as_of}` first"
        )
    from connectors.sources import DEPARTMENTS, department

    titles = {name: department(name).title.split()[0] for name in DEPARTMENTS}  # 民政, 医保, ...
    return write_lists(
        flags,
        register,
        as_of,
        outbox,
        on_step,
        links=stage.nightly("links", as_of, LINKED),
        visits=stage.visits(as_of),
        missing=missing_note(stage.missing(as_of, DEPARTMENTS), titles),
    )
