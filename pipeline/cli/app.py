"""The command line's application object, its console and its date option."""

from __future__ import annotations

import sys
from datetime import date

import typer
from rich.console import Console

from guardline import config
from guardline.errors import GuardlineError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Guardline: cross-department early warning for households at risk.",
)


console = Console(width=None if sys.stdout.isatty() else 150)



def today() -> date:
    """The calendar date where every contract date lives (guardline.config)."""
    return config.today()


def night_of(value: str | None) -> date:
    if value is None:
        return today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise GuardlineError(f"--as-of must be a date like 2026-11-27, not {value!r}") from None
