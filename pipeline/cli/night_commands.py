"""The whole night: ``run`` (a county's night without a scheduler), ``demo`` and
``evaluate`` (a night against a synthetic county's truth)."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from guardline.errors import GuardlineError
from pipeline.cli.app import app, console, night_of, today
from pipeline.cli.show import print_generation, print_night


def run_and_report(
    inbox: Path,
    day: date,
    stage_dir: Path,
    out: Path,
    url: str,
    hr_url: str | None,
    demo: bool = False,
    lock_timeout: float = 30.0,
    rekey: bool = False,
    full: bool = False,
) -> None:
    """One night, as `run` and `demo` do it: a progress bar, the summary of whatever was
    done, one stderr line per refused file; the exit status tells cron how it went."""
    from pipeline.night import run_night

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("pre-flight", total=5)

        def advance(name: str) -> None:
            progress.update(task, description=name)
            progress.advance(task)

        result = run_night(
            inbox, day, stage_dir, out, url, hr_url, demo, lock_timeout, advance, rekey=rekey, full=full
        )
    print_night(result)
    for line in result.reported:
        print(f"guardline: {line}", file=sys.stderr)
    if result.exit_status:
        raise typer.Exit(result.exit_status)


@app.command()
def run(
    inbox: Annotated[Path, typer.Option(help="The night's inbox (docs/sources.md layout).")],
    as_of: Annotated[str | None, typer.Option(help="Run date D (YYYY-MM-DD); default today.")] = None,
    warehouse: Annotated[
        str | None,
        typer.Option(
            help="SQLAlchemy URL; default the embedded DuckDB file warehouse.duckdb beside the inbox."
        ),
    ] = None,
    hr_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL of the 人社 exchange database.")] = None,
    outbox: Annotated[
        Path | None, typer.Option(help="Where the township lists go (default beside the inbox).")
    ] = None,
    stage: Annotated[Path | None, typer.Option(help="Staging folder (default beside the inbox).")] = None,
    lock_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for another run holding the stage or warehouse.")
    ] = 30.0,
    rekey: Annotated[
        bool,
        typer.Option(help="The pseudonym key changed on purpose: recompute every pseudonym under it."),
    ] = False,
    full: Annotated[
        bool,
        typer.Option(
            help="Score every record, compute every household's features and replace the county's "
            "warehouse rows, rather than pay for "
            "tonight's changes only (the tables end the same)."
        ),
    ] = False,
) -> None:
    """One night without a scheduler: extract, validate, match, check rules, load, publish.

    Exit status: 0 every source read; 3 the night completed but a file or source was
    refused (each named on stderr); 2 the night could not start or go on; 1 a bug.
    """
    from guardline.config import warehouse_url

    if not inbox.is_dir():
        raise GuardlineError(f"no inbox folder at {inbox}")
    home = inbox.resolve().parent
    run_and_report(
        inbox,
        night_of(as_of),
        stage or home / "stage",
        outbox or home / "outbox",
        warehouse_url(warehouse, home),
        hr_url,
        lock_timeout=lock_timeout,
        rekey=rekey,
        full=full,
    )


@app.command()
def evaluate(
    truth: Annotated[
        Path, typer.Option(help="A truth folder (links.csv, flags.csv), as `guardline generate` writes.")
    ],
    stage: Annotated[Path, typer.Option(help="Staging folder with the night's links and flags.")] = Path(
        "stage"
    ),
) -> None:
    """Precision, recall and F1 of the links, and of the flags, against a ground truth."""
    import json

    from matching.evaluate import link_metrics, read_truth
    from matching.run import staged_links
    from rules.evaluate import flag_metrics
    from staging.stage import Stage

    st = Stage(stage)
    manifest = truth / "manifest.json"
    night = date.fromisoformat(json.loads(manifest.read_text(encoding="utf-8"))["as_of"]) if manifest.exists() else None
    m = link_metrics(staged_links(st, night if night in st.nights("links") else None), read_truth(truth))
    table = Table(title=f"Against {truth}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("records", f"{m.records:,}"),
        ("in the register", f"{m.in_register:,}"),
        ("matched", f"{m.matched:,}"),
        ("link precision", f"{m.precision:.4f}"),
        ("link recall", f"{m.recall:.4f}"),
        ("link F1", f"{m.f1:.4f}"),
        ("sent to review", f"{m.review:,} ({m.review_share:.2%})"),
        (
            "outside the register, linked",
            f"{m.outsiders_linked:,} of {m.outsiders:,} ({m.outsiders_linked_share:.2%})",
        ),
    ]
    flags_file = truth / "flags.csv"
    if night is not None and flags_file.exists():
        ours = st.nightly("flags", night)
        if ours is not None:
            f = flag_metrics(ours, pl.read_csv(flags_file, infer_schema=False))
            rows += [
                ("flags expected", f"{f.expected:,}"),
                ("flags raised", f"{f.flagged:,}"),
                ("flag precision", f"{f.precision:.4f}"),
                ("flag recall", f"{f.recall:.4f}"),
            ]
        else:
            rows.append(("flags", f"none for {night}: run `guardline flag --as-of {night}`"))
    for label, value in rows:
        table.add_row(label, value)
    console.print(table)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Working folder of the demo.")] = Path("demo"),
    households: Annotated[int, typer.Option(help="Households in the county.")] = 10_000,
) -> None:
    """Generate the default synthetic county, run the night on the embedded warehouse
    (extract, validate, match, rules, load, lists) and measure it against the truth."""
    from guardline.config import embedded_url
    from synth.generate import generate as run_generate

    as_of = today()
    fresh_demo_folder(out)
    print_generation(run_generate(out, households, 7, as_of, "default", "xlsx"))
    run_and_report(out / "inbox", as_of, out / "stage", out / "outbox", embedded_url(out), None, demo=True)
    evaluate(truth=out / "truth", stage=out / "stage")


DEMO_MARK = ".guardline-demo"


DEMO_PARTS = {"inbox", "truth", "stage", "outbox", "warehouse.duckdb", "warehouse.duckdb.wal", "warehouse.duckdb.lock"}


def fresh_demo_folder(out: Path) -> None:
    """An earlier demo's folder emptied (a demo of another day would mix its inbox and stage
    with today's); a folder that holds anything else is refused, never emptied."""
    import shutil

    if out.exists():
        found = {p.name for p in out.iterdir()}
        if not (out / DEMO_MARK).exists() and not found <= DEMO_PARTS:
            raise GuardlineError(f"{out} holds files that are not a demo's: give the demo another --out")
        for name in found:
            path = out / name
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / DEMO_MARK).write_text("made by `guardline demo`: emptied by the next demo\n", encoding="utf-8")
