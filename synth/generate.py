"""One synthetic night: the register, four departments' deliveries and the truth.

``generate`` is what ``guardline generate`` and ``guardline demo`` call. It draws
everything from one seeded generator in a fixed order, so the same arguments give
the same bytes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from synth import civil_affairs, emergency_management, health_insurance, human_resources
from synth.deliver_civil import deliver_civil
from synth.deliver_disaster import deliver_disaster
from synth.deliver_health import deliver_health
from synth.deliver_hr import deliver_hr
from synth.deliver_register import write_register
from synth.noise import NoiseProfile, load_settings
from synth.places import COUNTIES
from synth.register import generate_register
from synth.truth_files import write_truth, write_truth_flags
from synth.world import Shock, World


@dataclass
class Summary:
    """What one generation wrote: counts a person (and the benchmark) can read."""

    out: Path
    as_of: date
    households: int
    persons: int
    rows: dict[str, int] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)
    shocks: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def department_rows(self) -> int:
        return sum(v for k, v in self.rows.items() if k != "registry")


def generate(
    out: Path,
    households: int = 10_000,
    seed: int = 7,
    as_of: date | None = None,
    noise: str = "default",
    register_format: str = "xlsx",
    county: str = "433124",
) -> Summary:
    """Write ``out/inbox`` and ``out/truth`` for a county of ``households`` households.

    ``county`` (a code of ``synth.places.COUNTIES``) names the county and prefixes its
    register keys, ID numbers and settlement numbers: counties made with different codes
    can share one warehouse, as a province's do."""
    started = time.perf_counter()
    if households < 10:
        raise ValueError("a county needs at least 10 households")
    if register_format not in ("xlsx", "csv"):
        raise ValueError(f"register format must be xlsx or csv, not {register_format!r}")
    if county not in COUNTIES:
        raise ValueError(f"county must be one of {', '.join(COUNTIES)}, not {county!r}")
    as_of = as_of or date.today()
    settings = load_settings()
    profile = NoiseProfile.load(noise, settings)
    rng = np.random.default_rng(seed)
    place = COUNTIES[county]
    register = generate_register(households, as_of, rng, float(settings["monitoring_line"]), place)
    world = World(as_of, rng, register, settings, noise=profile, county=place)

    hr_events, contributions = human_resources.generate(world)
    _plant_low_income(world)
    health = health_insurance.generate(world)
    events, disasters = emergency_management.generate(world)
    civil = civil_affairs.generate(world)

    inbox, truth = out / "inbox", out / "truth"
    delivered = [
        deliver_health(world, health, inbox / "health_insurance"),
        deliver_civil(world, civil, inbox / "civil_affairs"),
        deliver_disaster(world, events, disasters, inbox / "emergency_management"),
        deliver_hr(world, hr_events, contributions, inbox / "human_resources" / "exchange.sqlite"),
    ]
    register_file = write_register(world, inbox / "registry", register_format)
    summary = Summary(out, as_of, households, world.register.height)
    summary.rows["registry"] = world.register.height
    summary.files["registry"] = 1
    person_of = {r["_uid"]: r["_person_id"] for r in health + civil + disasters + hr_events}
    person_of.update(zip(contributions["_uid"], contributions["_person_id"], strict=True))
    write_truth(world, delivered, person_of, truth, summary, register_file, seed, noise)
    write_truth_flags(inbox, truth, as_of)
    summary.seconds = time.perf_counter() - started
    return summary


def _plant_low_income(world: World) -> None:
    """Households nobody monitors whose last-year income sits just under or at the line."""
    rng = world.rng
    line = world.line
    households = world.households().filter(
        ~((pl.col("monitored_category") != "") & (pl.col("risk_eliminated") == "否"))
    )
    rates = world.settings["shocks"]["low_income"]
    for expected in ("fires", "near_miss"):
        for hh in world.take_households(households, rates["fires" if expected == "fires" else "near"]):
            if expected == "fires":
                variant = ("one_yuan_below", "below")[int(rng.integers(2))]
                per_capita = line - 1 if variant == "one_yuan_below" else line - float(rng.integers(2, 2500))
            else:
                variant = ("at_line", "just_above")[int(rng.integers(2))]
                per_capita = line if variant == "at_line" else line + float(rng.integers(1, 300))
            income = per_capita * hh["household_size"]
            world.set_household(
                hh["household_id"],
                income_per_capita=per_capita,
                wage_income=float(round(income * 0.55)),
                business_income=float(round(income * 0.3)),
            )
            world.shocks.append(
                Shock(hh["household_id"], "low_income", "below_line", expected, variant, per_capita, line, [])
            )
