"""Incremental nights: which records a night must score, and which links it carries over.

A link is a function of its record, the register, the model and the settings: blocking
joins one record with persons, and the comparisons, the score and the decision are the
record's own. The one exception is a ``shares`` blocking rule, under which the records of
one group (one department's records of the same name and delivered ID cell) share their
candidates. So a night scores the records whose version changed since the night it
continues (new records included), and every record of a group one of them is in; every
other record keeps the link it had. What else a link depends on — the register's rows,
the model, the settings, the code — is the night's *basis*: a night continues only an
earlier night of the same basis, and scores every record otherwise (a new register
export, a new fit, a new release). Pure functions over frames; the stage's I/O is in
:mod:`matching.run`.
"""

from __future__ import annotations

import hashlib
import json

import polars as pl

from guardline.version import code_version
from matching.blocking import rule_records
from matching.settings import Settings

KEYS = ["source", "source_record_id"]
VERSION = "version"  # the staged version of the record a link was scored on


SHARE = "__share_"  # the group of a record under each ``shares`` rule: __share_0, __share_1, ...


def rows_digest(frame: pl.DataFrame) -> str:
    """A fingerprint of a frame's rows, in whatever order they come."""
    return hashlib.sha256(frame.hash_rows(seed=20261202).sort().to_numpy().tobytes()).hexdigest()


def basis(register: str, settings: Settings, model: dict) -> str:
    """A fingerprint of everything a link depends on besides its own record (``register``:
    the :func:`rows_digest` of the night's register)."""
    model_text = json.dumps({k: v for k, v in model.items() if k != "basis"}, sort_keys=True, default=str)
    return fingerprint(register, repr(settings), model_text)


def fingerprint(*parts: str) -> str:
    """``parts`` with the code's and polars' versions, hashed: what a result kept in the
    stage was made from (a new release makes it anew)."""
    return hashlib.sha256("|".join((*parts, code_version(), pl.__version__)).encode()).hexdigest()


def share_keys(left: pl.DataFrame, settings: Settings) -> pl.DataFrame:
    """Per prepared record, its group under each ``shares`` rule (null outside the rule)."""
    out = left.select(KEYS)
    for i, rule in enumerate(r for r in settings.blocking if r.shares):
        member = rule_records(left, rule, *KEYS).select(*KEYS, pl.struct(rule.columns).hash(seed=3).alias(f"{SHARE}{i}"))
        out = out.join(member, on=KEYS, how="left")
    return out


def changed(versions: pl.DataFrame, scored: pl.DataFrame) -> pl.DataFrame:
    """The records (``KEYS``) whose version the earlier night did not score: new ones, and
    ones with a newer version."""
    return versions.join(scored.select(*KEYS, VERSION), on=[*KEYS, VERSION], how="anti").select(KEYS)


def partners(scored: pl.DataFrame, groups: pl.DataFrame, excluded: pl.DataFrame) -> pl.DataFrame:
    """The records of the earlier night, not in ``excluded``, that share a group with one
    of ``groups`` (share keys of records being scored tonight)."""
    found = []
    for col in (c for c in groups.columns if c.startswith(SHARE)):
        if col not in scored.columns:
            continue
        values = groups.select(pl.col(col).drop_nulls().unique())
        found.append(scored.join(values, on=col, how="semi").select(KEYS))
    if not found:
        return pl.DataFrame(schema={k: pl.String for k in KEYS})
    return pl.concat(found).unique().join(excluded, on=KEYS, how="anti")


def carried(scored: pl.DataFrame, rescored: pl.DataFrame) -> pl.DataFrame:
    """The earlier night's links with tonight's scored records in place of theirs."""
    kept = scored.join(rescored.select(KEYS), on=KEYS, how="anti")
    return pl.concat([kept, rescored.select(kept.columns)]).sort(KEYS)
