"""The ``guardline`` command line: the commands of each step, the whole night, and
administration, on one typer application."""

from __future__ import annotations

import sys
from importlib import import_module

import typer

from guardline.errors import GuardlineError
from pipeline.cli.app import app

# The commands register themselves on ``app`` when imported, listed in this order: the
# steps of a night, the whole night, administration.
for _module in ("step_commands", "night_commands", "admin"):
    import_module(f"pipeline.cli.{_module}")

__all__ = ["app", "invoke", "main"]


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
