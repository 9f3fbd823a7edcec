"""The Fellegi-Sunter model: u from random pairs, m and the prior by EM on the
candidate pairs (over their distinct agreement patterns, so EM costs nothing), term
frequencies for common names, and Bayes factors to match probabilities."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from matching.compare import gamma_name, gammas
from matching.comparisons import MISSING, IdNumber
from matching.normalise import id_value, prefix_range
from matching.settings import Comparison, Settings

EPS = 1e-6


@dataclass
class Model:
    """Fitted parameters: per comparison the m and u probability of each level."""

    settings: Settings
    m: dict[str, np.ndarray] = field(default_factory=dict)
    u: dict[str, np.ndarray] = field(default_factory=dict)
    prior: float = 0.5
    term_frequency: dict[str, pl.DataFrame] = field(default_factory=dict)
    prefix_share: dict[str, pl.DataFrame] = field(default_factory=dict)
    iterations: int = 0
    # EM's share of matches among the candidate pairs; ``prior`` is that over every
    # possible pair of the night (what a decision needs), derived from it each night.
    candidate_prior: float = 0.5

    def saved(self) -> dict:
        """The fitted parameters as JSON (floats round-trip exactly): what a later night
        scores with, so that a link does not move unless its record does."""
        return {
            "settings": self.settings.name,
            "m": {k: v.tolist() for k, v in self.m.items()},
            "u": {k: v.tolist() for k, v in self.u.items()},
            "prior": self.prior,
            "candidate_prior": self.candidate_prior,
            "iterations": self.iterations,
        }

    @classmethod
    def restored(cls, settings: Settings, data: dict) -> Model | None:
        """A saved model for ``settings``; None when it was made for other settings, or for
        other comparisons or levels (a new fit is due then)."""
        m = {k: np.asarray(v, dtype=float) for k, v in data["m"].items()}
        u = {k: np.asarray(v, dtype=float) for k, v in data["u"].items()}
        if data.get("settings") != settings.name or any(
            c.name not in m or len(m[c.name]) != len(c.levels) for c in settings.comparisons
        ):
            return None
        return cls(
            settings,
            m,
            u,
            float(data["prior"]),
            candidate_prior=float(data["candidate_prior"]),
            iterations=data.get("iterations", 0),
        )

    def bayes_factors(self, c: Comparison) -> np.ndarray:
        return np.clip(self.m[c.name], EPS, 1) / np.clip(self.u[c.name], EPS, 1)

    def describe(self) -> pl.DataFrame:
        """m, u and the match weight of every level: what the model learned."""
        rows = []
        for c in self.settings.comparisons:
            for i, label in enumerate(c.levels):
                rows.append(
                    (
                        c.name,
                        label,
                        float(self.m[c.name][i]),
                        float(self.u[c.name][i]),
                        float(np.log2(self.bayes_factors(c)[i])),
                    )
                )
        return pl.DataFrame(rows, schema=["comparison", "level", "m", "u", "weight"], orient="row")


def _level_counts(levels: np.ndarray, n_levels: int, weights: np.ndarray | None = None) -> np.ndarray:
    ok = levels != MISSING
    w = np.ones(len(levels)) if weights is None else weights
    return np.bincount(levels[ok].astype(np.int64), weights=w[ok], minlength=n_levels)[:n_levels]


def _shares(counts: np.ndarray) -> np.ndarray:
    counts = counts + 0.5  # a level never seen still has a small probability
    return counts / counts.sum()


def _level_shares(levels: np.ndarray, n_levels: int, weights: np.ndarray | None = None) -> np.ndarray:
    return _shares(_level_counts(levels, n_levels, weights))


# Random pairs compared at a time for u: the estimate holds one chunk's pairs, not all of them.
U_CHUNK = 50_000


def estimate_u(
    left: pl.DataFrame, right: pl.DataFrame, settings: Settings, seed: int = 7
) -> dict[str, np.ndarray]:
    """u: how often each level occurs between a random record and a random person, over
    ``random_pairs`` pairs drawn at once and compared a chunk at a time."""
    rng = np.random.default_rng(seed)
    n = settings.random_pairs
    li = rng.integers(0, left.height, n)
    ri = rng.integers(0, right.height, n)
    counts = {c.name: np.zeros(len(c.levels)) for c in settings.comparisons}
    for start in range(0, n, U_CHUNK):
        part = slice(start, start + U_CHUNK)
        pairs = pl.concat(
            [left[li[part]].rename(lambda c: f"{c}_l"), right[ri[part]].rename(lambda c: f"{c}_r")],
            how="horizontal",
        )
        g = gammas(pairs, settings.comparisons)
        for c in settings.comparisons:
            counts[c.name] += _level_counts(g[gamma_name(c)].to_numpy(), len(c.levels))
    return {name: _shares(x) for name, x in counts.items()}


def without_matches(
    u: dict[str, np.ndarray], m: dict[str, np.ndarray], prior: float, floor: float
) -> dict[str, np.ndarray]:
    """u with the random pairs' own matches taken out.

    Random pairs include true matches at the rate ``prior``; for a near-unique field
    (an ID number) they are all of its agreements, which would make an exact ID look
    no rarer than picking a person at random. u = (observed - prior * m) / (1 - prior),
    never below ``floor``.
    """
    out = {}
    for name, observed in u.items():
        corrected = np.clip((observed - prior * m[name]) / (1 - prior), floor, 1)
        out[name] = corrected / corrected.sum()
    return out


def term_frequencies(right: pl.DataFrame, settings: Settings) -> dict[str, pl.DataFrame]:
    """For comparisons with ``tf``: the share of register persons holding each value.
    Counted over the one column: grouped over the whole register frame, the count held
    550 MB more for a moment at 1M persons (the link's peak)."""
    out = {}
    for c in settings.comparisons:
        if c.tf:
            out[c.name] = (
                right.select(c.column)
                .group_by(c.column)
                .len()
                .drop_nulls()
                .select(pl.col(c.column).alias(f"{c.column}_l"), (pl.col("len") / right.height).alias("__tf"))
            )
    return out


def prefix_shares(left: pl.DataFrame, right: pl.DataFrame, settings: Settings) -> dict[str, pl.DataFrame]:
    """For ID comparisons with a prefix column: the share of register persons whose ID
    lies in the range each Excel-rounded prefix among the records stands for."""
    out = {}
    for c in settings.comparisons:
        kind = c.of_kind
        if not isinstance(kind, IdNumber) or not kind.prefix or kind.prefix not in left.columns:
            continue
        prefix = f"{kind.prefix}_l"
        prefixes = left.select(pl.col(kind.prefix).alias(prefix)).drop_nulls().unique()
        if prefixes.height == 0:
            continue
        ids = np.sort(right.select(id_value(pl.col(c.column))).to_series().drop_nulls().to_numpy())
        low, high = prefix_range(pl.col(prefix))
        bounds = prefixes.select(low, high)
        inside = np.searchsorted(ids, bounds["high"].to_numpy(), "left") - np.searchsorted(
            ids, bounds["low"].to_numpy(), "left"
        )
        out[c.name] = prefixes.with_columns(pl.Series("__share", inside / right.height))
    return out


def fit(g: pl.DataFrame, settings: Settings, u: dict[str, np.ndarray], max_iterations: int = 100) -> Model:
    """EM for m and the prior on the candidate pairs' agreement patterns, u fixed."""
    cols = [gamma_name(c) for c in settings.comparisons]
    patterns = g.group_by(cols).len()
    counts = patterns["len"].to_numpy().astype(float)
    lv = {c.name: patterns[gamma_name(c)].to_numpy() for c in settings.comparisons}
    m = {}
    for c in settings.comparisons:
        k = len(c.levels)
        init = np.linspace(0.9, 0.02, k)
        m[c.name] = c.with_fixed_m(init / init.sum())
    prior = 0.3
    model = Model(settings, m, u, prior)
    iterations = 0
    while iterations < max_iterations:
        iterations += 1
        log_m = np.full(len(counts), np.log(prior))
        log_u = np.full(len(counts), np.log(1 - prior))
        for c in settings.comparisons:
            levels = lv[c.name]
            ok = levels != MISSING
            log_m[ok] += np.log(np.clip(m[c.name][levels[ok]], EPS, 1))
            log_u[ok] += np.log(np.clip(u[c.name][levels[ok]], EPS, 1))
        post = 1 / (1 + np.exp(np.clip(log_u - log_m, -700, 700)))
        new_prior = float((post * counts).sum() / counts.sum())
        new_m = {
            c.name: c.with_fixed_m(_level_shares(lv[c.name], len(c.levels), post * counts))
            for c in settings.comparisons
        }
        delta = max(abs(new_prior - prior), *(float(np.abs(new_m[k] - m[k]).max()) for k in m))
        m, prior = new_m, new_prior
        if delta < 1e-6:
            break
    model.m, model.prior, model.iterations = m, prior, iterations
    return model


def scored_columns(model: Model) -> list[str]:
    """The record's values a weight depends on beyond the levels (``<column>_l`` in the
    frame :func:`score` takes): a term-frequency value, an ID and its prefix."""
    cols: list[str] = []
    for c in model.settings.comparisons:
        if c.name in model.term_frequency:
            cols.append(c.column)
        if isinstance(c.of_kind, IdNumber) and c.name in model.prefix_share:
            cols += [c.column, c.of_kind.prefix]
    return list(dict.fromkeys(cols))


def score(g: pl.DataFrame, model: Model) -> pl.DataFrame:
    """Match weight per comparison (log2 Bayes factor, 0 when missing), total weight and
    probability, with term-frequency adjustment of exact agreement on common values."""
    out = g
    weight_cols = []
    for c in model.settings.comparisons:
        levels = out[gamma_name(c)].to_numpy()
        w = np.zeros(len(levels))
        ok = levels != MISSING
        w[ok] = np.log2(model.bayes_factors(c)[levels[ok]])
        name = f"w_{c.name}"
        out = out.with_columns(pl.Series(name, w))
        kind = c.of_kind
        if c.name in model.term_frequency:
            tf = model.term_frequency[c.name]
            m_exact = max(float(model.m[c.name][kind.exact]), EPS)
            out = (
                out.join(tf, on=f"{c.column}_l", how="left")
                .with_columns(
                    pl.when((pl.col(gamma_name(c)) == kind.exact) & pl.col("__tf").is_not_null())
                    .then((m_exact / pl.col("__tf").clip(lower_bound=EPS)).log(2))
                    .otherwise(pl.col(name))
                    .alias(name)
                )
                .drop("__tf")
            )
        if isinstance(kind, IdNumber) and c.name in model.prefix_share:
            # A record that has only the prefix of its ID (an Excel-mangled number): given
            # that, its true person's ID always starts with it, and a random person's does
            # as often as register IDs share that prefix.
            share = model.prefix_share[c.name]
            floor = 1 / max(model.settings.random_pairs, 1)
            only_prefix = pl.col(f"{c.column}_l").is_null() & pl.col(f"{kind.prefix}_l").is_not_null()
            out = (
                out.join(share, on=f"{kind.prefix}_l", how="left")
                .with_columns(
                    pl.when(only_prefix & (pl.col(gamma_name(c)) == kind.prefix_agrees))
                    .then((1 / pl.col("__share").clip(lower_bound=floor)).log(2))
                    .when(only_prefix & (pl.col(gamma_name(c)) == kind.disagree))
                    .then((EPS / (1 - pl.col("__share")).clip(lower_bound=EPS)).log(2))
                    .otherwise(pl.col(name))
                    .alias(name)
                )
                .drop("__share")
            )
        weight_cols.append(name)
    prior_weight = float(np.log2(model.prior / (1 - model.prior)))
    return out.with_columns(
        (pl.sum_horizontal(weight_cols) + prior_weight).alias("match_weight"),
    ).with_columns((1 / (1 + (2.0 ** -pl.col("match_weight")))).alias("match_probability"))
