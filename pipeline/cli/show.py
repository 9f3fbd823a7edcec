"""What the commands print: tables of a generated county, of a night's deliveries, of a
night's steps."""

from __future__ import annotations

from rich.table import Table

from pipeline.cli.app import console


def print_generation(summary) -> None:
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


def print_ingest(result) -> None:
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


def print_night(result) -> None:
    if result.ingested is not None:
        print_ingest(result.ingested)
    summary = Table(title=f"The night of {result.as_of}")
    summary.add_column("step")
    summary.add_column("result")
    summary.add_column("time", justify="right")
    summary.add_column("peak memory", justify="right")
    seconds = result.seconds
    ingested, matched, flagged, loaded = result.ingested, result.matched, result.flagged, result.loaded
    rows = {
        "extract+validate": ingested
        and f"{sum(s.total('rows_read') for s in ingested.sources):,} rows read, "
        f"{len(ingested.failed)} sources with refusals",
        "match": matched and ", ".join(f"{k} {v:,}" for k, v in sorted(matched["links"].items())),
        "rules": flagged
        and ", ".join(f"{r} {n:,}" for r, n in flagged["flags"].items())
        + f"; {flagged['households']:,} households to visit, {flagged['exit_candidates']:,} exit candidates",
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
            f"{result.peak_mib[name]:,.0f} MiB" if name in result.peak_mib else "",
        )
    console.print(summary)
    if result.report is not None:
        console.print(f"report: {result.report}")
