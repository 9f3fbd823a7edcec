"""Rules over the staging area for one night: features, flags with their lifecycle and
exit candidates of the night, from the records it sees and its links; the lifecycle
continues the latest earlier night's flags. The step ``guardline flag`` and the DAGs call."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from guardline.errors import GuardlineError
from rules.catalogue import Catalogue
from rules.engine import evaluate, exit_candidates
from rules.features import Inputs, feature_table
from rules.lifecycle import lifecycle
from staging.stage import Stage


@dataclass
class FlagResult:
    as_of: date
    flags: pl.DataFrame  # new, continuing and resolved flags of the night
    exits: pl.DataFrame
    features: pl.DataFrame

    def counts(self) -> dict[tuple[str, str], int]:
        return {(r, s): n for r, s, n in self.flags.group_by("rule_id", "status").len().iter_rows()}

    @property
    def firing(self) -> pl.DataFrame:
        """The flags that send someone to a household tonight: new and continuing."""
        return self.flags.filter(pl.col("status") != "resolved")

    def by_rule(self) -> dict[str, int]:
        """Firing flags per rule, by rule ID."""
        return dict(self.firing.group_by("rule_id").len().sort("rule_id").iter_rows())

    @property
    def households(self) -> int:
        """Households to visit tonight."""
        return self.firing["household_id"].n_unique()

    def summary(self) -> dict:
        """What the step did, as JSON: the CLI, the run audit and XCom render this."""
        return {"flags": self.by_rule(), "households": self.households, "exit_candidates": self.exits.height}


INPUT_STAGES = (
    "registry",
    "health_insurance",
    "civil_affairs",
    "emergency_management",
    "human_resources.rs_employment_event",
    "human_resources.rs_contribution_month",
)


def inputs_from(records: dict[str, pl.DataFrame | None], links: pl.DataFrame) -> Inputs:
    """Feature inputs from staged (or freshly read) records keyed by stage name."""
    register = records.get("registry")
    if register is None or register.height == 0:
        raise GuardlineError("no register staged yet: run `guardline ingest` with a registry/ export first")
    return Inputs(
        register=register,
        links=links,
        health=records.get("health_insurance"),
        civil=records.get("civil_affairs"),
        disaster=records.get("emergency_management"),
        employment=records.get("human_resources.rs_employment_event"),
        contributions=records.get("human_resources.rs_contribution_month"),
    )


def compute(
    inputs: Inputs, as_of: date, catalogue: Catalogue | None = None
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(features, fired flags, exit candidates) of one night: pure."""
    catalogue = catalogue or Catalogue.load()
    features = feature_table(inputs, as_of)
    flags = evaluate(features, catalogue, as_of)
    return features, flags, exit_candidates(features, flags, catalogue, as_of)


def flag_stage(stage: Stage, as_of: date, catalogue: Catalogue | None = None) -> FlagResult:
    """Features, flags and exit candidates for the night ``as_of``, kept by date."""
    links = stage.nightly("links", as_of)
    if links is None:
        raise GuardlineError(f"no links for {as_of} in {stage.root}: run `guardline match --as-of {as_of}` first")
    inputs = inputs_from({n: stage.records(n, as_of) for n in INPUT_STAGES}, links)
    features, fired, exits = compute(inputs, as_of, catalogue)
    flags = lifecycle(fired, stage.before("flags", as_of), as_of)
    with stage.transaction():  # the night's three files together, or none of them
        stage.save_nightly("flags", as_of, flags)
        stage.save_nightly("exit", as_of, exits)
        # in a fixed order: re-running a night writes the same file
        stage.save_nightly("features", as_of, features.sort("household_id"))
    return FlagResult(as_of, flags, exits, features)
