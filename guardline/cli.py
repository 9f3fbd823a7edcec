"""The ``guardline`` command line."""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import polars as pl
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from guardline.errors import GuardlineError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Guardline: cross-department early warning for households at risk.",
)
console = Console(width=None if sys.stdout.isatty() else 150)


def today() -> date:
    """The calendar date in Asia/Shanghai, where every contract date lives."""
    return datetime.now(ZoneInfo("Asia/Shanghai")).date()


def _as_of(value: str | None) -> date:
    if value is None:
        return today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise GuardlineError(f"--as-of must be a date like 2026-11-27, not {value!r}") from None


def _print_generation(summary) -> None:
    table = Table(
        title=f"Synthetic county as of {summary.as_of}: {summary.households:,} households, "
        f"{summary.persons:,} people"
    )
    table.add_column("source")
    table.add_column("files", justify="right")
    table.add_column("rows", justify="right")
    for source, rows in summary.rows.items():
        table.add_row(source, str(summary.files.get(source, "")), f"{rows:,}")
    console.print(table)
    shocks = Table(title="Planted shocks (truth/shocks.csv)")
    shocks.add_column("rule")
    shocks.add_column("fires", justify="right")
    shocks.add_column("near miss", justify="right")
    for rule in sorted({k.split(":")[0] for k in summary.shocks}):
        shocks.add_row(
            rule, str(summary.shocks.get(f"{rule}:fires", 0)), str(summary.shocks.get(f"{rule}:near_miss", 0))
        )
    console.print(shocks)
    console.print(
        f"inbox: {summary.out / 'inbox'}   truth: {summary.out / 'truth'}   ({summary.seconds:.1f} s)"
    )


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="Folder to write inbox/ and truth/ into.")],
    households: Annotated[int, typer.Option(help="Households in the county.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 7,
    as_of: Annotated[str | None, typer.Option(help="Run date D (YYYY-MM-DD); default today.")] = None,
    noise: Annotated[str, typer.Option(help="Noise profile: default, clean, or a YAML file.")] = "default",
    register_format: Annotated[str, typer.Option(help="Register export as xlsx or csv.")] = "xlsx",
    county: Annotated[
        str, typer.Option(help="County code: 433124 花垣县, 433125 保靖县, 433126 古丈县, 433127 永顺县.")
    ] = "433124",
) -> None:
    """Write a synthetic county's deliveries (inbox/) and their ground truth (truth/)."""
    from synth.generate import generate as run

    try:
        summary = run(out, households, seed, _as_of(as_of), noise, register_format, county)
    except ValueError as exc:
        raise GuardlineError(str(exc)) from None
    _print_generation(summary)


def _print_ingest(result) -> None:
    table = Table(title=f"Deliveries of {result.as_of}")
    for col in (
        "source",
        "status",
        "files",
        "rows read",
        "loaded",
        "quarantined",
        "duplicates",
        "superseded",
        "staged records",
    ):
        table.add_column(col, justify="left" if col in ("source", "status") else "right")
    for s in result.sources:
        status = {"ok": "[green]ok[/]", "failed": "[red]failed[/]", "partial": "[yellow]partial[/]"}.get(
            s.status, s.status
        )
        table.add_row(
            s.source,
            status,
            str(sum(f.status != "skipped" for f in s.files)),
            *(f"{s.total(a):,}" for a in ("rows_read", "loaded", "quarantined", "duplicates", "superseded")),
            f"{s.records:,}",
        )
    console.print(table)
    for s in result.failed:
        console.print(f"[red]{s.source} refused tonight[/]: {s.reason}")
    for s in result.sources:
        for f in s.files:
            for w in f.warnings:
                console.print(f"[yellow]warning[/] {f.file}: {w}")
    if result.data_docs:
        console.print(f"Great Expectations reports: {result.data_docs}")


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
        result = run(inbox, _as_of(as_of), stage, hr_url, reports, source)
    _print_ingest(result)
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
) -> None:
    """Link every department record the night D sees to a person and household of the register."""
    from matching.run import match_stage
    from staging.stage import Stage

    result = match_stage(Stage(stage), _as_of(as_of), settings)
    if result.result is None:
        console.print("no department record staged yet: nothing to link")
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
    console.print("blocking: " + ", ".join(f"{k} {v:,}" for k, v in result.result.blocking.by_rule.items()))
    console.print("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items()))
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
) -> None:
    """Check the rules for every household as of D: flags with evidence, and exit candidates."""
    from rules.catalogue import Catalogue
    from rules.run import flag_stage
    from staging.stage import Stage

    result = flag_stage(Stage(stage), _as_of(as_of), Catalogue.load(catalogue, config))
    table = Table(title=f"Flags as of {result.as_of}")
    for col in ("rule", "new", "continuing", "resolved"):
        table.add_column(col, justify="left" if col == "rule" else "right")
    counts = result.counts()
    for rule in sorted({r for r, _ in counts}):
        table.add_row(rule, *(f"{counts.get((rule, s), 0):,}" for s in ("new", "continuing", "resolved")))
    console.print(table)
    console.print(f"{result.households:,} households to visit; {result.exits.height:,} exit candidates")


def _night(
    inbox: Path,
    day: date,
    stage_dir: Path,
    out: Path,
    url: str,
    hr_url: str | None,
    demo: bool = False,
    lock_timeout: float = 30.0,
    rekey: bool = False,
) -> None:
    """One night, as `run` and `demo` do it: a progress bar, the summary of whatever was
    done, one stderr line per refused file; the exit status tells cron how it went."""
    from guardline.night import run_night

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

        result = run_night(inbox, day, stage_dir, out, url, hr_url, demo, lock_timeout, advance, rekey=rekey)
    _print_night(result)
    for line in result.reported:
        print(f"guardline: {line}", file=sys.stderr)
    if result.exit_status:
        raise typer.Exit(result.exit_status)


def _print_night(result) -> None:
    if result.ingested is not None:
        _print_ingest(result.ingested)
    summary = Table(title=f"The night of {result.as_of}")
    summary.add_column("step")
    summary.add_column("result")
    summary.add_column("time", justify="right")
    seconds = result.seconds
    ingested, matched, flagged, loaded = result.ingested, result.matched, result.flagged, result.loaded
    rows = {
        "extract+validate": ingested
        and f"{sum(s.total('rows_read') for s in ingested.sources):,} rows read, "
        f"{len(ingested.failed)} sources with refusals",
        "match": matched and ", ".join(f"{k} {v:,}" for k, v in sorted(matched.counts().items())),
        "rules": flagged
        and ", ".join(f"{r} {n:,}" for r, n in flagged.by_rule().items())
        + f"; {flagged.households:,} households to visit, {flagged.exits.height:,} exit candidates",
        "load": loaded
        and f"{loaded.rows.get('record_links', 0):,} links, {loaded.rows.get('flags', 0):,} flags "
        f"into {result.url.split('@')[-1]}",
        "publish": result.written is not None
        and f"{len(result.written)} township lists in {result.outbox / result.as_of.isoformat()}",
    }
    for name, text in rows.items():
        summary.add_row(
            name,
            text or "[dim]not run[/]",
            f"{seconds[name]:.1f} s" if name in seconds else "",
        )
    console.print(summary)


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
) -> None:
    """One night without a scheduler: extract, validate, match, check rules, load, publish.

    Exit status: 0 every source read; 3 the night completed but a file or source was
    refused (each named on stderr); 2 the night could not start or go on; 1 a bug.
    """
    from warehouse.db import default_url

    if not inbox.is_dir():
        raise GuardlineError(f"no inbox folder at {inbox}")
    home = inbox.resolve().parent
    _night(
        inbox,
        _as_of(as_of),
        stage or home / "stage",
        outbox or home / "outbox",
        warehouse or default_url(home),
        hr_url,
        lock_timeout=lock_timeout,
        rekey=rekey,
    )


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
) -> None:
    """Load the night into the warehouse in one transaction (re-loading changes nothing)."""
    from staging.stage import Stage
    from warehouse.db import default_url, engine
    from warehouse.load import load_night

    day = _as_of(as_of)
    url = warehouse or default_url(stage.resolve().parent)
    result = load_night(engine(url), Stage(stage), day, rekey=rekey)
    console.print(
        "loaded: "
        + ", ".join(f"{k} {v:,}" for k, v in result.rows.items())
        + f" in {result.seconds:.1f} s into {url.split('@')[-1]}"
    )


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


@app.command()
def lists(
    stage: Annotated[Path, typer.Option(help="Staging folder with the night's flags.")] = Path("stage"),
    as_of: Annotated[str | None, typer.Option(help="Run date D (YYYY-MM-DD); default today.")] = None,
    outbox: Annotated[Path, typer.Option(help="Where the township lists go.")] = Path("outbox"),
) -> None:
    """Write one Excel list (and a CSV) per township of the households to visit."""
    from staging.stage import Stage
    from warehouse.lists import write_stage_lists

    day = _as_of(as_of)
    written = write_stage_lists(Stage(stage), day, outbox)
    console.print(f"{len(written)} township lists in {outbox / day.isoformat()}")


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
    from synth.generate import generate as run_generate
    from warehouse.db import default_url

    as_of = today()
    _fresh_demo_folder(out)
    _print_generation(run_generate(out, households, 7, as_of, "default", "xlsx"))
    _night(out / "inbox", as_of, out / "stage", out / "outbox", default_url(out), None, demo=True)
    evaluate(truth=out / "truth", stage=out / "stage")


DEMO_MARK = ".guardline-demo"
DEMO_PARTS = {"inbox", "truth", "stage", "outbox", "warehouse.duckdb", "warehouse.duckdb.wal", "warehouse.duckdb.lock"}


def _fresh_demo_folder(out: Path) -> None:
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


review = typer.Typer(help="The review queue: export it for a person, import their decisions.")
app.add_typer(review, name="review")


@review.command("export")
def review_export(
    file: Annotated[Path, typer.Argument(help="CSV to write (UTF-8, opens in Excel).")],
    stage: Annotated[Path, typer.Option(help="Staging folder with the night's links.")] = Path("stage"),
) -> None:
    """Write every record in review with its candidates and an empty decision column."""
    from matching.review import export_review
    from matching.run import staged_links
    from staging.stage import Stage

    n = export_review(staged_links(Stage(stage)), file)
    console.print(f"{n:,} records in review written to {file}: fill decision with accept or reject")


@review.command("import")
def review_import(
    file: Annotated[Path, typer.Argument(help="The review CSV with decisions filled in.")],
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


def invoke(args: list[str] | None = None) -> int:
    """Run the command line on ``args`` and return its exit status: 0 done, 3 done with
    refused deliveries, 2 could not start or go on (one line on stderr), 1 a bug (whose
    traceback propagates). Whatever the caller's umask, what it writes is its owner's
    alone: it holds identities."""
    from guardline.files import private

    private()
    try:
        code = app(args=args, prog_name="guardline", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        print("guardline: aborted", file=sys.stderr)
        return 2
    except typer.TyperException as exc:  # usage: a wrong option or argument
        exc.show()
        return 2
    except GuardlineError as exc:
        print(f"guardline: {exc}", file=sys.stderr)
        return 2
    return code if isinstance(code, int) else 0


def main() -> None:
    """Entry point: the exit status of :func:`invoke`."""
    sys.exit(invoke(sys.argv[1:]))


if __name__ == "__main__":
    main()
