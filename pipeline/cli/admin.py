"""Administration: the data dictionary, the warehouse's roles, the review queue, the visits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from guardline.errors import GuardlineError
from pipeline.cli.app import app, console


@app.command()
def dictionary() -> None:
    """Print the data dictionary of the analysts' views (Markdown)."""
    from warehouse.dictionary import markdown

    print(markdown())


@app.command()
def roles(
    warehouse: Annotated[str, typer.Option(help="postgresql:// URL of the shared warehouse, as its owner.")],
    login: Annotated[
        str | None, typer.Argument(help="A monitoring login to limit to --county (and --township).")
    ] = None,
    county: Annotated[str | None, typer.Option(help="6-digit county code the login may read.")] = None,
    township: Annotated[str | None, typer.Option(help="The one township (乡镇) the login may read.")] = None,
) -> None:
    """Migrate a PostgreSQL warehouse, create its etl, monitor and analyst roles and grant
    them; with LOGIN --county [--township], a monitoring login that sees its own
    households only (row-level security)."""
    from warehouse.db import engine, upgrade
    from warehouse.roles import ANALYST, ETL, MONITOR, create_roles, create_scoped_login

    if (login is None) != (county is None) or (township is not None and county is None):
        raise GuardlineError("a scoped login needs its name and --county (and, if limited to one, --township)")
    eng = engine(warehouse)
    if eng.dialect.name == "postgresql":
        upgrade(eng)
    create_roles(eng)
    console.print(
        f"roles ready: {ETL} (writes), {MONITOR} (reads full identifiers), {ANALYST} (masked views)"
    )
    if login is not None:
        create_scoped_login(eng, login, county, township)
        console.print(f"login {login} reads the households of {county}{' ' + township if township else ''} only")


review = typer.Typer(help="The review queue: export it for a person, import their decisions.")


app.add_typer(review, name="review")


@review.command("export")
def review_export(
    file: Annotated[Path, typer.Argument(help="Workbook to write (.xlsx, a CSV beside it), or a .csv alone.")],
    stage: Annotated[Path, typer.Option(help="Staging folder with the night's links.")] = Path("stage"),
) -> None:
    """Write every record in review beside its candidates, in Chinese, with a 判断 column
    (是同一人 / 不是 / 无法判断) to fill in."""
    from lists.review import review_rows, write_review
    from matching.run import staged_links
    from staging.stage import Stage

    staged = Stage(stage)
    links = staged_links(staged)
    rows = review_rows(links, staged, staged.nights("links")[-1])
    written = write_review(rows, file)
    records = rows.select("来源", "记录编号").unique().height
    console.print(f"{records:,} records in review ({rows.height:,} candidates) written to {', '.join(map(str, written))}")


@review.command("import")
def review_import(
    file: Annotated[Path, typer.Argument(help="The review workbook (or its CSV) with 判断 filled in.")],
    stage: Annotated[Path, typer.Option(help="Staging folder.")] = Path("stage"),
) -> None:
    """Read a reviewer's decisions, remember them, and apply them to the links."""
    from matching.review import import_review
    from staging.stage import Stage

    if not file.exists():
        raise GuardlineError(f"no review file at {file}")
    decisions, links = import_review(Stage(stage), file)
    counts = dict(decisions.group_by("decision").len().iter_rows())
    console.print(
        f"decisions: {counts.get('accept', 0):,} accepted, {counts.get('reject', 0):,} rejected; "
        f"{links.filter(pl.col('match_status') == 'review').height:,} records still in review"
    )


visits = typer.Typer(help="Verification results: the township lists cadres return, read back.")
app.add_typer(visits, name="visits")


@visits.command("import")
def visits_import(
    files: Annotated[list[Path], typer.Argument(help="Returned workbooks (.xlsx) or their CSVs, any names.")],
    stage: Annotated[Path, typer.Option(help="Staging folder.")] = Path("stage"),
    by: Annotated[str | None, typer.Option(help="Who records the results (default: your login).")] = None,
) -> None:
    """Read returned lists, check every row, and remember each visit for the next lists.

    Every problem is printed (file, row, field, reason) on stderr; the rows without one
    are recorded. Exit status 3 when any row or file was refused, 0 otherwise; the same
    file imported again changes nothing."""
    import sys

    from pipeline.cli.app import today
    from staging.stage import Stage, stage_lock
    from visits.returned import import_visits

    with stage_lock(stage, timeout=60):
        results = import_visits(Stage(stage), files, today(), by)
    problems = 0
    for r in results:
        console.print(f"{r.file}: {r.status}, {r.visits:,} visits of {r.households:,} households, {len(r.problems):,} problems")
        for p in r.problems:
            print(f"guardline: {p}", file=sys.stderr)
        problems += len(r.problems)
    if problems:
        raise typer.Exit(3)
