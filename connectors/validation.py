"""Great Expectations: one suite per source, kept as readable JSON in ``suites/``.

A batch (one delivered file, or one pull of an exchange table) is validated as a
whole. A failed expectation of severity ``critical`` fails the batch with a one-line
reason; ``warning`` expectations (records dated after the run date) are reported and
the batch goes on. A share check (``mostly``) refuses only a batch of at least the
suite's ``min_rows_for_shares`` rows: below it, one bad row is a large share of a small
file, and is reported as a warning instead (the row itself is quarantined anyway).

Key uniqueness is judged on ``__key``: the record key (never shown: it holds ID numbers),
null on a row that repeats an earlier one exactly (a duplicate, counted as such, not a
conflict) and on a row already quarantined for its own problems.

What a check asks of each row (in a set, between bounds, not null, unique) is computed by
polars, one narrow 0/1 column per check (null where the check does not apply, as GX
leaves nulls out of a share); Great Expectations judges every check on those columns,
shares, ``mostly`` and severities as the suite states them, so the suite stays the
authority and GX never walks a column of strings (:func:`judged`). The table-level
checks (row count, the latest date) read the batch's own columns. Every result is kept as
GX's JSON and rendered into Data Docs under the reports folder. Great Expectations is
imported here, lazily, never at DAG parse time.
"""

from __future__ import annotations

import fcntl
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl

from connectors.canonical import ID_VALID, PROBLEMS
from connectors.spec import Source

# Before any import of it: Great Expectations logs a line per function it registers while
# importing (about 200), which would bury the task's own summary.
logging.getLogger("great_expectations").setLevel(logging.ERROR)

SUITES = Path(__file__).with_name("suites")
ROW_OK = "__row_ok"
KEY = "__key"
# Counts and shares, never the values that missed: a key check's misses are record keys,
# which hold ID numbers and names, and no result or Data Docs page may show one.
RESULT_FORMAT = {
    "result_format": "SUMMARY",
    "partial_unexpected_count": 0,
    "include_unexpected_rows": False,
    "return_unexpected_index_query": False,
}


@dataclass
class Verdict:
    """What the suite said of one batch."""

    success: bool
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    result_file: Path | None = None
    seconds: float = 0.0

    @property
    def reason(self) -> str:
        return "; ".join(self.failures)


@cache
def suite_definition(stage_name: str) -> dict[str, Any]:
    """The suite of a source as stored beside its connector."""
    return json.loads((SUITES / f"{stage_name}.json").read_text(encoding="utf-8"))


# The checks that ask something of each row: polars answers them per row, GX judges the answers.
ROW_CHECKS = (
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_be_between",
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_unique",
)


@dataclass(frozen=True)
class Judged:
    """One expectation of a suite as GX runs it: per-row checks rewritten to judge the
    0/1 column ``answer`` computes (``column`` names it), table checks as written."""

    expectation: dict[str, Any]
    column: str | None  # the batch column GX reads
    answer: pl.Expr | None = None  # the per-row answer (1 meets, 0 misses, null not judged)


def _row_answer(kind: str, column: str, kwargs: dict[str, Any]) -> tuple[str, pl.Expr]:
    """A readable name and the polars answer of one per-row check, null where GX leaves a
    row out (a null value: GX's column checks judge the values present)."""
    value = pl.col(column)
    if kind == "expect_column_values_to_not_be_null":
        return f"{column}: not null", value.is_not_null().cast(pl.Int8)
    if kind == "expect_column_values_to_be_in_set":
        allowed = kwargs["value_set"]
        name = f"{column}: in {{{', '.join(map(str, allowed))}}}"
        return name, pl.when(value.is_not_null()).then(value.is_in(allowed).cast(pl.Int8))
    if kind == "expect_column_values_to_be_unique":
        # Repeats found among the values' hashes, then confirmed among those values only:
        # exact, and 0.09 s for 1M record keys against 0.13 s over the strings themselves.
        maybe = value.hash(seed=7).is_duplicated()
        repeated = maybe & pl.when(maybe).then(value).is_duplicated()
        return f"{column}: unique", pl.when(value.is_not_null()).then((~repeated).cast(pl.Int8))
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    meets = pl.lit(True)
    if low is not None:
        meets &= value > low if kwargs.get("strict_min") else value >= low
    if high is not None:
        meets &= value < high if kwargs.get("strict_max") else value <= high
    return f"{column}: between {low} and {high}", pl.when(value.is_not_null()).then(meets.cast(pl.Int8))


@cache
def judged(stage_name: str) -> tuple[Judged, ...]:
    """The suite of a source as GX runs it: each per-row check judged on its 0/1 answer
    (``value_set`` [1], the suite's ``mostly``, severity and explanation kept, the check as
    written kept in ``meta``), the table checks as they are."""
    out = []
    for e in suite_definition(stage_name)["expectations"]:
        kwargs = e["kwargs"]
        if e["type"] not in ROW_CHECKS:
            out.append(Judged(e, kwargs.get("column")))
            continue
        name, answer = _row_answer(e["type"], kwargs["column"], kwargs)
        rewritten = {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {
                "column": name,
                "value_set": [1],
                **({"mostly": kwargs["mostly"]} if "mostly" in kwargs else {}),
            },
            "meta": {**(e.get("meta") or {}), "checks": {"type": e["type"], "kwargs": kwargs}},
            "severity": e.get("severity", "critical"),
        }
        out.append(Judged(rewritten, name, answer.alias(name)))
    return tuple(out)


def _describe(outcome: Any) -> str:
    config = outcome.expectation_config
    explain = (config.meta or {}).get("explain") or config.type
    result = outcome.result or {}
    mostly = config.kwargs.get("mostly")
    if "unexpected_percent" in result and result.get("element_count"):
        ok = 100 - float(result["unexpected_percent"] or 0)
        need = f", needs at least {100 * mostly:.0f}%" if mostly else ""
        return f"{explain}: {ok:.1f}% of rows{need}"
    if "observed_value" in result:
        return f"{explain}: observed {result['observed_value']}"
    return f"{explain}: not met"


class Validator:
    """A Great Expectations file context under ``reports``: suites, results, Data Docs."""

    def __init__(self, reports: Path) -> None:
        self.reports = reports
        self._context: Any = None  # opened by the first batch to judge: a night with none pays nothing
        self._checkpoints: dict[str, Any] = {}
        self._validated: list[Any] = []  # tonight's results and their suites: the pages to render

    def _open(self) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.gx = gx
        self.reports.mkdir(parents=True, exist_ok=True)
        with _locked(self.reports):
            self._context = gx.get_context(mode="file", project_root_dir=str(self.reports))
            self._context.variables.progress_bars = ProgressBarsConfig(globally=False)
            self.datasource = self._context.data_sources.add_or_update_pandas("guardline")

    @property
    def context(self) -> Any:
        """The Great Expectations file context under the reports folder, opened on first use."""
        if self._context is None:
            self._open()
        return self._context

    def _checkpoint(self, stage_name: str) -> Any:
        if stage_name not in self._checkpoints:
            if self._context is None:
                self._open()
            with _locked(self.reports):
                self._checkpoints[stage_name] = self._add_checkpoint(stage_name)
        return self._checkpoints[stage_name]

    def _add_checkpoint(self, stage_name: str) -> Any:
        gx = self.gx
        from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

        definition = suite_definition(stage_name)
        suite = gx.ExpectationSuite(name=stage_name, meta=definition.get("meta") or {})
        for e in (j.expectation for j in judged(stage_name)):
            config = ExpectationConfiguration(
                type=e["type"],
                kwargs=e["kwargs"],
                meta=e.get("meta") or {},
                severity=e.get("severity", "critical"),
            )
            suite.add_expectation_configuration(config)
        suite = self.context.suites.add_or_update(suite)
        try:
            asset = self.datasource.get_asset(stage_name)
        except LookupError:
            asset = self.datasource.add_dataframe_asset(stage_name)
        try:
            batch = asset.get_batch_definition("batch")
        except KeyError:
            batch = asset.add_batch_definition_whole_dataframe("batch")
        definition_ = self.context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=stage_name, data=batch, suite=suite)
        )
        return self.context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=stage_name, validation_definitions=[definition_], actions=[], result_format=RESULT_FORMAT
            )
        )

    def validate(
        self, source: Source, frame: pl.DataFrame, run_date: date, batch_name: str, compared: list[str]
    ) -> Verdict:
        """Run the source's suite on one canonical batch (every row, usable or not);
        ``compared`` are the columns whose equality makes a repeated row a duplicate."""
        import pandas as pd
        from great_expectations.core.run_identifier import RunIdentifier

        started = time.perf_counter()
        checkpoint = self._checkpoint(source.stage_name)
        if ID_VALID not in frame.columns:
            raise ValueError("the canonical frame carries its ID validity")
        usable = pl.col(PROBLEMS).list.len() == 0
        # Hashed apart from the first-occurrence test, and as rows rather than one struct
        # expression: 0.03 s for 1M settlement rows, against 0.09 s (and several times
        # more when both are one expression).
        row = frame.select("source_record_id", *compared).hash_rows(seed=7)
        data = frame.with_columns(
            usable.alias(ROW_OK),
            pl.when(usable & row.is_first_distinct()).then(pl.col("source_record_id")).alias(KEY),
        )
        checks = judged(source.stage_name)
        answers = data.select(
            *(j.answer for j in checks if j.answer is not None),
            *{j.column for j in checks if j.answer is None and j.column in data.columns},
        )
        result = checkpoint.run(
            batch_parameters={"dataframe": answers.to_pandas()},
            expectation_parameters={"run_date": pd.Timestamp(run_date)},
            # the Data Docs page of the batch names its night and file, not "__none__"
            run_id=RunIdentifier(run_name=f"{run_date}_{_safe(batch_name)}"),
        )
        ((identifier, outcome),) = result.run_results.items()
        self._validated += [identifier, identifier.expectation_suite_identifier]
        verdict = Verdict(success=True)
        small = data.height < suite_definition(source.stage_name).get("meta", {}).get(
            "min_rows_for_shares", 0
        )
        for r in outcome.results:
            if r.success:
                continue
            severity = str(getattr(r.expectation_config.severity, "value", r.expectation_config.severity))
            if severity == "critical" and small and "mostly" in r.expectation_config.kwargs:
                verdict.warnings.append(f"{_describe(r)} (a warning: the file has only {data.height} rows)")
            elif severity == "critical":
                verdict.success = False
                verdict.failures.append(_describe(r))
            else:
                verdict.warnings.append(_describe(r))
        out = result_file(self.reports, run_date, source.stage_name, batch_name)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            json.dumps(outcome.to_json_dict(), ensure_ascii=False, indent=1, default=str), encoding="utf-8"
        )
        verdict.result_file = out
        verdict.seconds = time.perf_counter() - started
        return verdict

    def build_docs(self) -> Path | None:
        """Render tonight's results (and their suites) as Data Docs pages beside the
        earlier nights' pages, and the index over all of them, which a data engineer
        opens (None while no night has validated anything). Earlier pages are not
        rendered again: they do not change."""
        if self._validated:
            with _locked(self.reports):
                self.context.build_data_docs(resource_identifiers=self._validated)
            self._validated = []
        index = data_docs_index(self.reports)
        return index if index.exists() else None


def result_file(reports: Path, run_date: date, stage_name: str, batch_name: str) -> Path:
    """Where the validation result of one batch (a file, or a table's pull) of a night is
    kept, as JSON: the night's report reads it back from here."""
    return reports / "results" / run_date.isoformat() / f"{stage_name}__{_safe(batch_name)}.json"


def data_docs_index(reports: Path) -> Path:
    """The Data Docs site's index under a reports folder."""
    return reports / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


@contextmanager
def _locked(reports: Path) -> Iterator[None]:
    """One writer at a time in a reports folder: the sync DAGs of several departments
    validate the same county at the same time, and GX's file context is not safe for
    concurrent writers (its config, stores and Data Docs are plain files)."""
    with (reports / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
