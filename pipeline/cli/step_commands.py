"""The commands of one step each: generate, ingest, match, flag, load, lists, report, history."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich.table import Table

from guardline.errors import GuardlineError
from pipeline.cli.app import app, console, night_of
from pipeline.cli.show import print_generation, print_ingest


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="Folder to write inbox/ and truth/ into.")],
    households: Annotated[int, typer.Option(help="Households in the county.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 7,
    as_of: Annotated[str | None, typer.Option(help="Run date D (YYYY-MM-DD); default today.")] = None,
    noise: Annotated[str, typer.Option(help="Noise profile: default, clean, or a YAML file.")] = "default",
    register_format: Annotated[str, typer.Option(help="Register export as xlsx or csv.")] = "xlsx",
    county: Annotated[
        str, typer.Option(help="County code: 433124 花垣县, or another of 湘西, 张家界, 怀化 or 邵阳 (the README lists the 21).")
    ] = "433124",
) -> None:
    """Write a synthetic county's deliveries (inbox/) and their ground truth (truth/)."""
    from synth.generate import generate as run

    try:
        summary = run(out, households, seed, night_of(as_of), noise, register_format, county)
    except ValueError as exc:
        raise GuardlineError(str(exc)) from None
    print_generation(summary)


@app.command()
def ingest(
    inbox: Annotated[Path, typer.Option(help="The night's inbox (docs/sources.md layout).")],
    as_of: Annotated[str | None, typer.Option(help="Run date D (YYYY-MM-DD); default today.")] = None,
    stage: Annotated[Path, typer.Option(help="Staging folder: records, quarantine, ledger.")] = Path("stage"),
    hr_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL of the 人社 exchange database.")] = None,
    reports: Annotated[
        Path | None, typer.Option(help="Great Expectations reports (default STAGE/reports).")
    ] = None,
    source: Annotated[list[str] | None, typer.Option(help="Only these sources (repeatable).")] = None,
    lock_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for another run holding the stage.")
    ] = 30.0,
) -> None:
    """Extract, validate and stage one night's deliveries; print what happened to every row."""
    from connectors.ingest import ingest as run
    from connectors.sources import DEPARTMENTS

    if not inbox.is_dir():
        raise GuardlineError(f"no inbox folder at {inbox}")
    unknown = set(source or ()) - set(DEPARTMENTS)
    if unknown:
        raise GuardlineError(f"unknown source {', '.join(sorted(unknown))}: use {', '.join(DEPARTMENTS)}")
    from staging.stage import stage_lock

    with stage_lock(stage, lock_timeout):
        result = run(inbox, night_of(as_of), stage, hr_url, reports, source)
    print_ingest(result)
    for line in result.refusals:
        print(f"guardline: refused: {line}", file=sys.stderr)
    if result.refusals:
        raise typer.Exit(3)


@app.command()
def match(
    stage: Annotated[Path, typer.Option(help="Staging folder written by `guardline ingest`.")] = Path(
        "stage"
    ),
    as_of: Annotated[str | None, typer.Option(help="Run date D (YYYY-MM-DD); default today.")] = None,
    settings: Annotated[str, typer.Option(help="Matching settings: china, or a YAML file.")] = "china",
    show_model: Annotated[
        bool, typer.Option(help="Print what the model learned: m, u and weight per level.")
    ] = False,
    refit: Annotated[
        bool, typer.Option(help="Fit a new model tonight and say how many links it changes.")
    ] = False,
    full: Annotated[
        bool, typer.Option(help="Score every record, not only those new or changed since the night it continues.")
    ] = False,
) -> None:
    """Link every department record the night D sees to a person and household of the
    register, with the model an earlier night saved (a new fit when it is due, or with --refit)."""
    from matching.run import match_stage
    from staging.stage import Stage

    st = Stage(stage)
    result = match_stage(st, night_of(as_of), settings, refit, full)
    if result.result is None:
        console.print(
            f"no record changed since the night this one continues: {result.carried:,} links carried over"
            if result.carried
            else "no department record staged yet: nothing to link"
        )
        return
    table = Table(
        title=f"Links: {result.links.height:,} records, {result.result.pairs_compared:,} pairs compared"
    )
    table.add_column("source")
    for status in ("matched", "review", "unmatched"):
        table.add_column(status, justify="right")
    counts = result.links.group_by("source", "match_status").len()
    for source in sorted(result.links["source"].unique()):
        row = dict(counts.filter(pl.col("source") == source).select("match_status", "len").iter_rows())
        table.add_row(source, *(f"{row.get(s, 0):,}" for s in ("matched", "review", "unmatched")))
    console.print(table)
    if result.carried:
        console.print(f"scored tonight: {result.scored:,} records (new or changed, and their groups); carried over: {result.carried:,}")
    console.print("blocking: " + ", ".join(f"{k} {v:,}" for k, v in result.result.blocking.by_rule.items()))
    console.print("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items()))
    kept = st.model(night_of(as_of)) or {}
    if result.result.fitted:
        drift = result.result.drift
        changed = (
            f": it changes {drift['changed']:,} of {drift['records']:,} links against the model saved before"
            if drift
            else ""
        )
        console.print(f"model: fitted tonight{changed}")
    else:
        console.print(f"model: the one fitted on {kept.get('fitted_on')} (--refit fits a new one)")
    if show_model:
        learned = Table(title="The model")
        for col in ("comparison", "level", "m", "u", "weight"):
            learned.add_column(col, justify="left" if col in ("comparison", "level") else "right")
        for c, level, m, u, w in result.result.model.describe().iter_rows():
            learned.add_row(c, level, f"{m:.4g}", f"{u:.4g}", f"{w:+.2f}")
        console.print(learned)


@app.command()
def flag(
    stage: Annotated[Path, typer.Option(help="Staging folder with records and links.")] = Path("stage"),
    as_of: Annotated[str | None, typer.Option(help="Run date D (YYYY-MM-DD); default today.")] = None,
    catalogue: Annotated[
        Path | None, typer.Option(help="Rule catalogue (default rules/catalogue.yaml).")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="Local thresholds (default rules/config.yaml).")] = None,
    full: Annotated[
        bool,
        typer.Option(help="Compute every household's features, not only those whose inputs changed or windows moved."),
    ] = False,
) -> None:
    """Check the rules for every household as of D: flags with evidence, and exit candidates."""
    from rules.catalogue import Catalogue
    from rules.run import flag_stage
    from staging.stage import Stage

    result = flag_stage(Stage(stage), night_of(as_of), Catalogue.load(catalogue, config), full)
    table = Table(title=f"Flags as of {result.as_of}")
    for col in ("rule", "new", "continuing", "resolved"):
        table.add_column(col, justify="left" if col == "rule" else "right")
    counts = result.counts()
    for rule in sorted({r for r, _ in counts}):
        table.add_row(rule, *(f"{counts.get((rule, s), 0):,}" for s in ("new", "continuing", "resolved")))
    console.print(table)
    console.print(f"{result.households:,} households to visit; {result.exits.height:,} exit candidates")


@app.command()
def load(
    stage: Annotated[Path, typer.Option(help="Staging folder with the night's links and flags.")] = Path(
        "stage"
    ),
    as_of: Annotated[str | None, typer.Option(help="Run date D (YYYY-MM-DD); default today.")] = None,
    warehouse: Annotated[
        str | None,
        typer.Option(
            help="SQLAlchemy URL; default the embedded DuckDB file warehouse.duckdb beside the stage."
        ),
    ] = None,
    rekey: Annotated[
        bool,
        typer.Option(help="The pseudonym key changed on purpose: recompute every pseudonym under it."),
    ] = False,
    full: Annotated[
        bool, typer.Option(help="Replace the county's rows, not only the ones changed since its last load.")
    ] = False,
) -> None:
    """Load the county's night into the warehouse in one transaction (re-loading changes nothing)."""
    from guardline.config import warehouse_url
    from staging.stage import Stage
    from warehouse.db import engine
    from warehouse.load import load_night

    day = night_of(as_of)
    url = warehouse_url(warehouse, stage.resolve().parent)
    result = load_night(engine(url), Stage(stage), day, rekey=rekey, full=full)
    console.print(
        "loaded: "
        + ", ".join(f"{k} {v:,}" for k, v in result.rows.items())
        + f" in {result.seconds:.1f} s into {url.split('@')[-1]}"
    )


@app.command()
def lists(
    stage: Annotated[Path, typer.Option(help="Staging folder with the night's flags.")] = Path("stage"),
    as_of: Annotated[str | None, typer.Option(help="Run date D (YYYY-MM-DD); default today.")] = None,
    outbox: Annotated[Path, typer.Option(help="Where the township lists go.")] = Path("outbox"),
) -> None:
    """Write one Excel list (and a CSV) per township of the households to visit."""
    from lists.write import write_stage_lists
    from staging.stage import Stage

    day = night_of(as_of)
    written = write_stage_lists(Stage(stage), day, outbox)
    console.print(f"{len(written)} township lists in {outbox / day.isoformat()}")


@app.command()
def report(
    stage: Annotated[Path, typer.Option(help="Staging folder of the county's nights.")] = Path("stage"),
    as_of: Annotated[str | None, typer.Option(help="Run date D (YYYY-MM-DD); default today.")] = None,
    outbox: Annotated[Path, typer.Option(help="Where the night's lists are: the page goes beside them.")] = Path(
        "outbox"
    ),
    warehouse: Annotated[
        str | None,
        typer.Option(help="SQLAlchemy URL; default the embedded DuckDB file warehouse.duckdb beside the stage."),
    ] = None,
) -> None:
    """Write the night's report again: OUTBOX/D/report.html, one page that opens with no
    network (the night's warnings, sources, links and run, no full identifiers)."""
    from guardline.config import warehouse_url
    from report.write import write_report
    from staging.stage import Stage
    from warehouse.db import engine

    day = night_of(as_of)
    eng = engine(warehouse_url(warehouse, stage.resolve().parent))
    try:
        path = write_report(eng, Stage(stage), day, outbox)
    finally:
        eng.dispose()
    console.print(f"report: {path}")


@app.command()
def history(
    record: Annotated[str, typer.Argument(help="A record's key (source_record_id), as the links and lists name it.")],
    stage: Annotated[Path, typer.Option(help="Staging folder.")] = Path("stage"),
) -> None:
    """Every version of one record: the night it arrived, the file and row it came in,
    and what it said (full identifiers: the stage is the monitoring role's)."""
    from staging.stage import Stage

    versions = Stage(stage).history(record)
    if versions.height == 0:
        raise GuardlineError(f"no record {record!r} in {stage}")
    hidden = {"source_record_id", "stage_name", "arrived", "version", "file", "row", "source"}
    table = Table(title=f"{record}: {versions.height} version(s)")
    for col in ("source", "arrived", "file", "row", "values"):
        table.add_column(col)
    previous: dict[str, dict] = {}
    for row in versions.iter_rows(named=True):
        values = {k: v for k, v in row.items() if k not in hidden and v is not None}
        before = previous.get(row["stage_name"], {})
        shown = {k: v for k, v in values.items() if before.get(k) != v} if before else values
        previous[row["stage_name"]] = values
        text = "; ".join(f"{k}={v}" for k, v in shown.items()) or "(no change)"
        table.add_row(row["stage_name"], str(row["arrived"]), row["file"], str(row["row"]), text)
    console.print(table)
