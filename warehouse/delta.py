"""What a county's load changes: tonight's rows against the ones its last load wrote.

The stage keeps, per state table, the key and a hash of every row the county's last load
wrote (its *account*, ``<stage>/loaded/``), and the warehouse keeps that load's
fingerprint (``settings``: ``loaded:<county>``). When the two agree, a load deletes the
county's rows whose key is gone or whose values changed and inserts the new and changed
ones; when they do not — the first load, another copy of the stage, a restored
warehouse, a load whose account was not written, another county's load that took over
some of this county's shared rows — it replaces the county's rows of the table as a
whole, and the account starts again. Either way the tables end the same. Pure functions
over frames; the transaction is :mod:`warehouse.load`'s.
"""

from __future__ import annotations

import hashlib

import polars as pl

HASH = "__row_hash"


def row_hashes(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Each row's key and a hash of all its values (as the table receives them)."""
    return frame.select(*keys, frame.hash_rows(seed=20261202).alias(HASH))


def fingerprint(account: dict[str, pl.DataFrame]) -> str:
    """The fingerprint of an account, drawn from what it holds: loading the same rows again
    gives the same one, so that re-running a night changes nothing in the stage either."""
    digest = hashlib.sha256()
    for name in sorted(account):
        digest.update(name.encode())
        digest.update(account[name][HASH].sort().to_numpy().tobytes() if account[name].height else b"")
    return digest.hexdigest()


# A row's hash covers its key too, so two rows agree on the hash alone exactly when they
# agree on key and values: the joins below compare one integer per row, not the keys'
# text beside it (a county's 1.7 million records and links, twice a night).


def stale(before: pl.DataFrame, now: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Keys the last load wrote that tonight no longer holds as they were: gone or changed."""
    return before.join(now.select(HASH), on=HASH, how="anti").select(keys)


def fresh(before: pl.DataFrame, now: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Keys tonight holds that the last load did not write as they are: new or changed."""
    return now.join(before.select(HASH), on=HASH, how="anti").select(keys)
