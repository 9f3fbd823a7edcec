"""Rules over the staging area for one night: features, flags with their lifecycle and
exit candidates of the night, from the records it sees and its links; the lifecycle
continues the latest earlier night's flags. The step ``guardline flag`` and the DAGs call."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from guardline.errors import GuardlineError
from matching.incremental import fingerprint, rows_digest
from rules.catalogue import Catalogue
from rules.engine import evaluate, exit_candidates
from rules.features import Inputs, feature_table
from rules.incremental import (
    LINKED,
    RECORD_SOURCES,
    Earlier,
    changed_since,
    continued,
    households_to_compute,
    link_hashes,
    links_digest,
    same_month,
)
from rules.lifecycle import lifecycle
from staging.stage import Stage
from staging.versions import VERSION


@dataclass
class FlagResult:
    as_of: date
    flags: pl.DataFrame  # new, continuing and resolved flags of the night
    exits: pl.DataFrame
    features: pl.DataFrame
    computed: int = 0  # households whose features were computed tonight (the others continued)

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
        return {
            "flags": self.by_rule(),
            "households": self.households,
            "exit_candidates": self.exits.height,
            "features_computed": self.computed,
        }


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
    inputs: Inputs, as_of: date, catalogue: Catalogue | None = None, features: pl.DataFrame | None = None
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(features, fired flags, exit candidates) of one night: pure. ``features``: the
    night's, when already computed (from an earlier night's, :mod:`rules.incremental`)."""
    catalogue = catalogue or Catalogue.load()
    features = feature_table(inputs, as_of) if features is None else features
    flags = evaluate(features, catalogue, as_of)
    return features, flags, exit_candidates(features, flags, catalogue, as_of)


def flag_stage(stage: Stage, as_of: date, catalogue: Catalogue | None = None, full: bool = False) -> FlagResult:
    """Features, flags and exit candidates for the night ``as_of``, kept by date.

    The features continue the latest earlier night's where they can (only the households
    whose inputs changed or whose windows moved are computed again: :mod:`rules.incremental`);
    ``full`` computes every household, which gives the same table. The flags and exit
    candidates are always judged over every household."""
    links = stage.nightly("links", as_of, LINKED)  # what the features read of a link
    if links is None:
        raise GuardlineError(f"no links for {as_of} in {stage.root}: run `guardline match --as-of {as_of}` first")
    inputs = inputs_from({n: stage.records(n, as_of) for n in INPUT_STAGES}, links)
    hashes = link_hashes(links)
    versions = _kept_versions(stage, as_of)
    basis = _basis(inputs, versions, hashes)
    continuing = None if full or basis is None else _continued(stage, inputs, as_of, basis, hashes, versions)
    features, computed = continuing if continuing is not None else (None, inputs.register["household_id"].n_unique())
    features, fired, exits = compute(inputs, as_of, catalogue, features)
    flags = lifecycle(fired, stage.before("flags", as_of), as_of)
    with stage.transaction():  # the night's files together, or none of them
        stage.save_nightly("flags", as_of, flags)
        stage.save_nightly("exit", as_of, exits)
        # in a fixed order: re-running a night writes the same file
        stage.save_nightly("features", as_of, features.sort("household_id"))
        stage.save_features_basis(as_of, basis)
    return FlagResult(as_of, flags, exits, features, computed)


def _kept_versions(stage: Stage, as_of: date) -> dict[str, pl.DataFrame] | None:
    """Per stage name the features read, each record's ``source_record_id`` and
    ``version`` as the night sees them (nothing, for a source never staged); None when
    the night does not see every version staged (an older night re-run, or a stage that
    has not kept what the newest night sees)."""
    versions = {}
    staged = stage.sources()
    for stage_name in RECORD_SOURCES:
        if stage_name in staged:
            kept = stage.current(stage_name, as_of, ["source_record_id", VERSION])
            if kept is None:
                return None
            versions[stage_name] = kept
    return versions


def _basis(inputs: Inputs, versions: dict[str, pl.DataFrame] | None, hashes: pl.DataFrame) -> dict | None:
    """What the night's features are computed from, as a later night compares it: the
    register and the code (``basis``), the highest record version of each source, and
    the links (``hashes``: :func:`rules.incremental.link_hashes`); None without the
    night's versions (:func:`_kept_versions`), so that no later night continues it."""
    if versions is None:
        return None
    return {
        "basis": fingerprint(rows_digest(inputs.register), "features"),
        "versions": {
            name: int(versions[name][VERSION].max()) if name in versions and versions[name].height else -1
            for name in RECORD_SOURCES
        },
        "links": links_digest(hashes),
    }


def _continued(
    stage: Stage, inputs: Inputs, as_of: date, basis: dict, hashes: pl.DataFrame, versions: dict[str, pl.DataFrame]
) -> tuple[pl.DataFrame, int] | None:
    """The night's features from the latest earlier night's, and how many households were
    computed again, if that night's can be continued (the same month and basis, its links
    as they were); None otherwise."""
    earlier_nights = [d for d in stage.nights("features") if d < as_of]
    if not earlier_nights or not same_month(earlier_nights[-1], as_of):
        return None
    night = earlier_nights[-1]
    before = stage.features_basis(night)
    links = stage.nightly("links", night, LINKED)
    features = stage.nightly("features", night)
    if before is None or before["basis"] != basis["basis"] or links is None or features is None:
        return None
    earlier_hashes = link_hashes(links)
    if links_digest(earlier_hashes) != before["links"]:  # the night was matched again after its rules
        return None
    earlier = Earlier(night, features)
    changed = changed_since(versions, before["versions"])
    households = households_to_compute(inputs, earlier, changed, as_of, (hashes, earlier_hashes))
    features = continued(earlier, inputs, households, as_of)
    return (features, households.len()) if features is not None else None
