"""Child processes for the kill and concurrency tests: each runs one piece of a night with
an ``on_step`` hook that, at the N-th step boundary, kills its own process with SIGKILL
(no clean-up, no ``finally``) or pauses there while a test starts a second run.

Run as ``python -m tests.killer <what> <json arguments>``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from datetime import date
from pathlib import Path


def killer(at: int):
    """A hook that kills this process at its ``at``-th call (0-based)."""
    calls = iter(range(1_000_000))

    def hook(step: str) -> None:
        if next(calls) == at:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def pauser(step: str, signal_file: str, seconds: float):
    """A hook that, at ``step``, touches ``signal_file`` and sleeps ``seconds``."""

    def hook(name: str) -> None:
        if name == step:
            Path(signal_file).touch()
            time.sleep(seconds)

    return hook


def main(what: str, args: dict) -> None:
    hook = killer(args["kill_at"]) if "kill_at" in args else pauser(args["pause_at"], args["signal"], args["seconds"])
    if what == "stage":
        from connectors.ingest import Landing, stage
        from staging.stage import Stage

        stage(Landing.load(Path(args["landing"])), Stage(Path(args["stage"])), on_step=hook)
    elif what == "lists":
        import polars as pl

        from lists.write import write_lists

        write_lists(
            pl.read_parquet(args["flags"]),
            pl.read_parquet(args["register"]),
            date.fromisoformat(args["as_of"]),
            Path(args["outbox"]),
            on_step=hook,
            links=pl.read_parquet(args["links"]),
        )
    elif what == "load":
        from staging.stage import Stage
        from warehouse.db import engine
        from warehouse.load import load_night

        load_night(
            engine(args["warehouse"]),
            Stage(Path(args["stage"])),
            date.fromisoformat(args["as_of"]),
            demo=True,
            on_step=hook,
        )
    elif what == "night":
        from pipeline.night import run_night

        result = run_night(
            Path(args["inbox"]),
            date.fromisoformat(args["as_of"]),
            Path(args["stage"]),
            Path(args["outbox"]),
            args["warehouse"],
            on_step=hook,
        )
        sys.exit(result.exit_status)
    else:
        raise SystemExit(f"unknown child {what!r}")


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]))
