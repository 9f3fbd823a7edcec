"""One county's night without a scheduler, as ``guardline run`` and ``guardline demo`` do it.

Pre-flight before any work: the pseudonym key, the stage's lock, the warehouse reached,
migrated and locked for the night, the 人社 exchange opened. Each failure is one line
within seconds (:class:`GuardlineError`), and nothing has been touched. Then the steps —
extract+validate+stage, match, rules, load, publish — each timed; what they did is kept
in :class:`NightResult` even when a later step stops the night, so that the summary of
the work done is printed in every case.

How a night ends (the exit status of ``guardline run``): every source read (0); the
night completed but a file or source was refused (3); the night could not start or go
on (2); a bug (1).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from guardline.atomic import Hook
from guardline.errors import GuardlineError, Unavailable
from guardline.files import private_folder
from guardline.memory import peak_mib, reset_peak
from staging.stage import stage_lock

LOCK_TIMEOUT = 30.0  # seconds a second run waits for the first before it gives up


@dataclass
class NightResult:
    """What each step of a night returned, and how long it took; ``None`` for a step
    that did not run. Of matching and the rules only their accounts (``summary()``) are
    kept: their frames are on the stage, and holding them would carry a county's links
    and records through the load."""

    as_of: date
    url: str
    outbox: Path
    ingested: Any = None
    matched: dict | None = None
    flagged: dict | None = None
    loaded: Any = None
    written: list[Path] | None = None
    report: Path | None = None  # the night's page (outbox/<D>/report.html)
    seconds: dict[str, float] = field(default_factory=dict)
    peak_mib: dict[str, float] = field(default_factory=dict)  # each step's own peak memory
    stopped: str = ""  # the one-line reason the night could not go on

    @property
    def refusals(self) -> list[str]:
        return self.ingested.refusals if self.ingested is not None else []

    @property
    def reported(self) -> list[str]:
        """The stderr lines of the night: each refusal once (one that stopped the night is
        said by the line that stops it), then the reason it stopped, if it did."""
        refusals = [line for line in self.refusals if not self.stopped or line.split(": ")[1] not in self.stopped]
        return [f"refused: {line}" for line in refusals] + ([self.stopped] if self.stopped else [])

    @property
    def exit_status(self) -> int:
        return 2 if self.stopped else 3 if self.refusals else 0


def open_exchange(url: str) -> None:
    """The 人社 exchange answers and can be read: one line within seconds if not."""
    from connectors.human_resources import _engine

    try:
        eng = _engine(url)
    except (sa.exc.ArgumentError, ImportError, sa.exc.NoSuchModuleError) as exc:
        raise GuardlineError(f"cannot use the 人社 exchange URL: {exc}") from None
    try:
        with eng.connect() as conn:
            sa.inspect(conn).get_table_names()
    except sa.exc.SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise Unavailable(f"cannot open the 人社 exchange {_describe(url)}: {detail}") from None
    finally:
        eng.dispose()


def _describe(url: str) -> str:
    from warehouse.db import describe

    return describe(url)


@contextlib.contextmanager
def preflight(
    inbox: Path,
    stage_dir: Path,
    url: str,
    hr_url: str | None,
    demo: bool,
    lock_timeout: float,
    rekey: bool = False,
) -> Iterator[sa.Engine]:
    """Everything a night needs, checked before any work, and held for the night."""
    from connectors.extract import default_hr_url
    from warehouse.db import engine, night_lock, reach, upgrade
    from warehouse.load import check_key
    from warehouse.privacy import pseudonym_key

    if not inbox.is_dir():
        raise GuardlineError(f"no inbox folder at {inbox}")
    key = pseudonym_key(demo)  # refuse before any work when the key is missing or weak
    private_folder(stage_dir)
    with stage_lock(stage_dir, lock_timeout):
        eng = engine(url)
        try:
            reach(eng)
            with night_lock(eng, lock_timeout):
                upgrade(eng)
                with eng.connect() as conn:
                    check_key(conn, key, rekey)  # a changed key: refused now, not after the work
                exchange = hr_url or default_hr_url(inbox)
                if exchange is not None:
                    open_exchange(exchange)
                yield eng
        finally:
            eng.dispose()


def run_night(
    inbox: Path,
    as_of: date,
    stage_dir: Path,
    outbox: Path,
    url: str,
    hr_url: str | None = None,
    demo: bool = False,
    lock_timeout: float = LOCK_TIMEOUT,
    progress: Callable[[str], None] = lambda _step: None,
    on_step: Hook | None = None,
    rekey: bool = False,
    full: bool = False,
) -> NightResult:
    """The night ``as_of`` of one county. Pre-flight failures raise; a step that stops the
    night sets ``stopped`` and the result keeps what the earlier steps did.

    ``on_step`` is called at every step boundary, inside commits too (the kill tests
    stop the process there). ``full``: every record scored, every household's features
    computed, the county's warehouse rows replaced, rather than tonight's changes only
    (the same tables).
    """
    from connectors.ingest import ingest
    from pipeline import steps
    from staging.stage import Stage
    from warehouse.db import unreachable
    from warehouse.load import record_run

    hook = on_step or (lambda _step: None)
    result = NightResult(as_of, url, outbox)
    started = datetime.now()
    private_folder(outbox)
    with preflight(inbox, stage_dir, url, hr_url, demo, lock_timeout, rekey) as eng:

        def step(name: str, attribute: str, fn: Callable[[], Any]) -> None:
            progress(name)
            t = time.perf_counter()
            reset_peak()
            setattr(result, attribute, fn())
            result.seconds[name] = time.perf_counter() - t
            result.peak_mib[name] = peak_mib()
            hook(f"step:{name}")

        try:
            step("extract+validate", "ingested", lambda: ingest(inbox, as_of, stage_dir, hr_url, on_step=on_step))
            _register_or_stop(result, stage_dir, as_of)
            step("match", "matched", lambda: steps.match(stage_dir, as_of, full=full).summary())
            step("rules", "flagged", lambda: steps.flag(stage_dir, as_of, full=full).summary())
            step("load", "loaded", lambda: steps.load(eng, stage_dir, as_of, demo=demo, rekey=rekey, full=full))
            step("publish", "written", lambda: steps.publish(stage_dir, outbox, as_of, on_step))
        except GuardlineError as exc:
            result.stopped = str(exc)
        except sa.exc.DBAPIError as exc:  # the warehouse went away in the middle of the night
            result.stopped = str(unreachable(eng, exc))
        if result.ingested is not None:
            try:
                counts = audit(result, stage_dir)
                record_run(eng, as_of, counts, started)
                Stage(stage_dir).save_run(as_of, counts)  # the night's account, beside its results
                if result.loaded is not None:
                    progress("report")
                    result.report = steps.report(eng, stage_dir, outbox, as_of)
            except sa.exc.DBAPIError as exc:
                result.stopped = result.stopped or str(unreachable(eng, exc))
            except GuardlineError as exc:
                result.stopped = result.stopped or str(exc)
    return result


def _register_or_stop(result: NightResult, stage_dir: Path, as_of: date) -> None:
    """No register staged, not even an earlier one: the night cannot go on, and the line
    says why (the register refused tonight, or none delivered)."""
    from connectors.sources import REGISTER
    from staging.stage import Stage

    if Stage(stage_dir).records(REGISTER.stage_name, as_of) is not None:
        return
    registry = next((s for s in result.ingested.sources if s.source == REGISTER.name), None)
    if registry is not None and registry.refused:
        f = registry.refused[0]
        raise GuardlineError(f"no register to match against: {f.file} was refused ({f.reason})")
    raise GuardlineError("no register to match against: no registry/ export delivered on or before tonight")


def audit(result: NightResult, stage_dir: Path) -> dict:
    """The run audit of one county's night, in the one schema of :func:`steps.audit`."""
    from pipeline import steps

    summaries: dict[str, dict[str, dict]] = {}
    for name, done in (("match", result.matched), ("rules", result.flagged)):
        if done is not None:
            summaries[name] = {"": done}
    if result.loaded is not None:
        summaries["load"] = {"*": result.loaded.summary()}
    failed = result.ingested.summary()["failed_sources"] if result.ingested is not None else {}
    return steps.audit(
        "guardline run", result.as_of, {"": stage_dir}, summaries, result.seconds, result.stopped, failed, result.peak_mib
    )
