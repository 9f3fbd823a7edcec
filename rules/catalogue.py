"""The rule catalogue and local thresholds, loaded and checked.

A rule whose expression does not parse, names a feature or parameter that does not
exist, or shows evidence nobody computes, is refused at load with a message naming
the rule: a province's mistake must not surface in the middle of a night.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from guardline.errors import GuardlineError
from rules.features import FEATURES

HERE = Path(__file__).parent
CATALOGUE = HERE / "catalogue.yaml"
CONFIG = HERE / "config.yaml"
# Words the sentences may use besides the evidence: computed when a flag is written
# (disaster_words: each fired disaster record's date, damage and loss, its own).
SENTENCE_WORDS = {"medical_burden_share", "medical_basis", "disaster_words", "assistance_words"}
EXTRA_FEATURES = {"medical_records", "work_records", "disaster_records", "assistance_records"}


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    condition: str
    severity: str
    assistance: str
    thresholds: dict[str, str] = field(default_factory=dict)
    evidence: tuple[str, ...] = ()
    records: str | None = None
    sentence: str = ""
    # The figure of the evidence whose change makes a dismissed flag worth a new visit
    # ("-figure": when it falls); None: a dismissal holds while the rule fires.
    worsens: str | None = None
    # What the rule means and what a cadre checks at the door (the lists' 说明 sheet).
    meaning: str = ""
    at_the_door: str = ""


@dataclass(frozen=True)
class Catalogue:
    parameters: dict[str, Any]
    rules: tuple[Rule, ...]
    exit_months: int
    config: dict[str, Any]

    @classmethod
    def load(cls, catalogue: Path | None = None, config: Path | None = None) -> Catalogue:
        catalogue, config = catalogue or CATALOGUE, config or CONFIG
        raw = _yaml(catalogue)
        cfg = _yaml(config) or {}
        parameters = dict(raw.get("parameters") or {})
        rules = []
        for r in raw.get("rules") or []:
            rid = r.get("id", "?")
            missing = [k for k in ("id", "name", "condition", "severity", "assistance") if k not in r]
            if missing:
                raise GuardlineError(f"rule {rid}: missing {', '.join(missing)}")
            rules.append(
                Rule(
                    r["id"],
                    r["name"],
                    r["condition"],
                    r["severity"],
                    r["assistance"],
                    dict(r.get("thresholds") or {}),
                    tuple(r.get("evidence") or ()),
                    r.get("records"),
                    r.get("sentence", ""),
                    r.get("worsens"),
                    r.get("meaning", ""),
                    r.get("at_the_door", ""),
                )
            )
        out = cls(parameters, tuple(rules), int((raw.get("exit") or {}).get("months", 6)), cfg)
        out.check()
        return out

    def check(self) -> None:
        known = set(FEATURES) | set(self.parameters)
        for rule in self.rules:
            names = known | set(rule.thresholds)
            for label, expression in (
                *((f"threshold {k}", v) for k, v in rule.thresholds.items()),
                ("condition", rule.condition),
                ("severity", rule.severity),
                ("assistance", rule.assistance),
            ):
                try:
                    used = set(pl.sql_expr(expression).meta.root_names())
                except Exception as exc:
                    raise GuardlineError(
                        f"rule {rule.id}: its {label} is not a valid expression "
                        f"({type(exc).__name__}): {expression}"
                    ) from None
                unknown = used - names
                if unknown:
                    raise GuardlineError(
                        f"rule {rule.id}: its {label} names unknown "
                        f"{', '.join(sorted(unknown))} (features, parameters or thresholds)"
                    )
            for e in rule.evidence:
                if e not in names:
                    raise GuardlineError(
                        f"rule {rule.id}: evidence {e!r} is not a feature, parameter or threshold"
                    )
            for word in re.findall(r"{(\w+)", rule.sentence):
                if word not in names | SENTENCE_WORDS:
                    raise GuardlineError(f"rule {rule.id}: its sentence uses unknown {word!r}")
            if rule.worsens and rule.worsens.removeprefix("-") not in rule.evidence:
                raise GuardlineError(f"rule {rule.id}: worsens {rule.worsens!r} is not one of its evidence figures")
            if rule.records and rule.records not in EXTRA_FEATURES:
                raise GuardlineError(f"rule {rule.id}: records {rule.records!r} is not a record list")
        for scope, values in self._scopes():
            unknown = set(values) - set(self.parameters)
            if unknown:
                raise GuardlineError(
                    f"configuration {scope}: unknown parameters {', '.join(sorted(unknown))}"
                )

    def _scopes(self):
        for name, values in (self.config.get("provinces") or {}).items():
            yield f"province {name}", values or {}
        for name, values in (self.config.get("counties") or {}).items():
            yield f"county {name}", values or {}

    def parameters_for(self, counties: list[str], year: int) -> pl.DataFrame:
        """One row per county: every parameter as it applies there in ``year``."""
        province = (self.config.get("provinces") or {}).get(self.config.get("province"), {}) or {}
        rows = []
        for county in counties:
            values = dict(self.parameters)
            values.update(province)
            values.update((self.config.get("counties") or {}).get(county) or {})
            rows.append(
                {"county": county, **{k: _for_year(v, year, self.parameters[k]) for k, v in values.items()}}
            )
        schema = {"county": pl.String, **{k: pl.Float64 for k in self.parameters}}
        return pl.DataFrame(rows, schema=schema)


def _for_year(value: Any, year: int, default: Any) -> float:
    """A parameter's value in ``year``: a number, or a mapping by year with ``default``."""
    if isinstance(value, dict):
        if year in value:
            return float(value[year])
        if str(year) in value:
            return float(value[str(year)])
        fallback = value.get("default", default)
        return float(fallback if not isinstance(fallback, dict) else fallback.get("default"))
    return float(value)


def _yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise GuardlineError(f"no such file: {path}")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise GuardlineError(
            f"{path}: not valid YAML ({exc.problem if hasattr(exc, 'problem') else exc})"
        ) from None
