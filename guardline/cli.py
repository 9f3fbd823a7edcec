"""The ``guardline`` command line."""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

from guardline.errors import GuardlineError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Guardline: cross-department early warning for households at risk.",
)
console = Console()


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
) -> None:
    """Write a synthetic county's deliveries (inbox/) and their ground truth (truth/)."""
    from synth.generate import generate as run

    try:
        summary = run(out, households, seed, _as_of(as_of), noise, register_format)
    except ValueError as exc:
        raise GuardlineError(str(exc)) from None
    _print_generation(summary)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Working folder of the demo.")] = Path("demo"),
    households: Annotated[int, typer.Option(help="Households in the county.")] = 10_000,
) -> None:
    """Generate the default synthetic county and show what arrived tonight."""
    from synth.generate import generate as run

    _print_generation(run(out, households, 7, today(), "default", "xlsx"))


def main() -> None:
    """Entry point: user mistakes become one line on stderr and exit status 2."""
    try:
        app(standalone_mode=True)
    except GuardlineError as exc:
        print(f"guardline: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
