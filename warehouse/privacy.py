"""Personal identifiers for people who may not read them: masks and pseudonyms.

ID and phone numbers are sensitive personal information. Analysts see a masked form
(an ID's first 6 and last 4 characters, a phone's first 3 and last 4) and a keyed
pseudonym (HMAC-SHA256 with a key from the environment) that is stable across runs,
so they can count and join without reading anyone's number. Outside demo mode, no key
means a clear refusal to start.
"""

from __future__ import annotations

import hashlib
import hmac
import os

import polars as pl

from guardline.errors import GuardlineError

KEY_VARIABLE = "GUARDLINE_PSEUDONYM_KEY"
DEMO_KEY = b"guardline-demo-key-not-for-real-data"


def pseudonym_key(demo: bool = False) -> bytes:
    """The HMAC key: from the environment, or the demo's fixed key in demo mode only."""
    value = os.environ.get(KEY_VARIABLE, "")
    if value:
        if len(value) < 16:
            raise GuardlineError(f"{KEY_VARIABLE} is too short: use at least 16 characters")
        return value.encode()
    if demo:
        return DEMO_KEY
    raise GuardlineError(
        f"set {KEY_VARIABLE} (a secret of at least 16 characters): pseudonyms need a key, "
        "and without one Guardline does not start outside the demo"
    )


def _mask(expr: pl.Expr, head: int, tail: int) -> pl.Expr:
    """Keep ``head`` leading and ``tail`` trailing characters, star the rest (all of a short value)."""
    s = expr.str.strip_chars()
    n = s.str.len_chars()
    keep = head + tail
    return (
        pl.when(n > keep)
        .then(
            pl.concat_str(
                s.str.slice(0, head), pl.lit("*").repeat_by(n - keep).list.join(""), s.str.slice(-tail)
            )
        )
        .otherwise(pl.lit("*").repeat_by(n).list.join(""))
    )


def mask_id(expr: pl.Expr) -> pl.Expr:
    """``433124********1234``: first 6 and last 4 characters kept, the rest starred."""
    return _mask(expr, 6, 4)


def mask_phone(expr: pl.Expr) -> pl.Expr:
    """``138****5678``: first 3 and last 4 digits kept."""
    return _mask(expr, 3, 4)


def pseudonyms(values: pl.Series, key: bytes) -> pl.Series:
    """HMAC-SHA256 of each value, 20 hex characters; the same value always gets the same
    pseudonym under the same key. Computed once per distinct value."""
    unique = values.drop_nulls().unique()
    table = {v: hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:20] for v in unique.to_list()}
    return values.replace_strict(table, default=None, return_dtype=pl.String)
