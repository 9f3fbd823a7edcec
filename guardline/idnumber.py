"""Resident ID numbers (GB 11643-1999): check characters and the legacy 15-digit form.

Shared by the generator (which must write valid and deliberately broken numbers),
the connectors (validity rates) and matching (normalisation), so that all three
agree on what "valid" means.
"""

from __future__ import annotations

from datetime import date

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


def check_character(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError(f"need 17 digits, got {first17!r}")
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


def is_valid(id18: str) -> bool:
    """True when ``id18`` is 17 digits plus a correct check character (upper-case X)."""
    return (
        len(id18) == 18
        and id18[:17].isdigit()
        and id18[17] in "0123456789X"
        and check_character(id18[:17]) == id18[17]
    )


def make_id(area: str, birth: date, sequence: int) -> str:
    """Build a valid 18-character ID from area code, birth date and 3-digit sequence.

    The sequence's parity carries sex: odd for men, even for women.
    """
    first17 = f"{area}{birth:%Y%m%d}{sequence:03d}"
    return first17 + check_character(first17)


def to_legacy15(id18: str) -> str:
    """The 15-digit form issued before 1999: two-digit year, no check character."""
    return id18[:6] + id18[8:17]


def from_legacy15(id15: str) -> str:
    """Convert a 15-digit ID to 18 digits: insert "19" before the year, add the check."""
    if len(id15) != 15 or not id15.isdigit():
        raise ValueError(f"need 15 digits, got {id15!r}")
    first17 = id15[:6] + "19" + id15[6:]
    return first17 + check_character(first17)


def birth_date(id18: str) -> date:
    """Birth date encoded in digits 7-14."""
    return date(int(id18[6:10]), int(id18[10:12]), int(id18[12:14]))


def sex(id18: str) -> str:
    """男 or 女 from the parity of the 17th digit."""
    return "男" if int(id18[16]) % 2 else "女"


def normalised_expr(expr):  # -> pl.Expr
    """Polars: an ID as clerks mangle it, back to 18 upper-case characters where possible.

    Strips spaces, apostrophes and full-width forms and upper-cases x. The legacy
    15-digit form and the 20-character disability certificate are left to matching,
    which knows what to make of them.
    """
    import polars as pl

    drop = [" ", "\t", "\u3000", "\u00a0", "'", "‘", "’", "`"]
    wide = list("０１２３４５６７８９ｘＸx")
    return expr.str.replace_many(drop + wide, [""] * len(drop) + list("0123456789XXX")).cast(pl.String)


def valid_expr(expr, normalised: bool = False):  # -> pl.Expr
    """Polars: whether the normalised ID is 18 characters with a correct check character.

    Pass ``normalised=True`` for a column that :func:`normalised_expr` already made.
    The check itself runs in numpy over the column's bytes (:func:`valid_array`):
    seventeen string slices per row cost several times more.
    """
    import polars as pl

    s = expr if normalised else normalised_expr(expr)
    return s.map_batches(valid_array, return_dtype=pl.Boolean)


def valid_array(ids):  # pl.Series -> pl.Series
    """Vectorised :func:`is_valid` over a polars String series (nulls are invalid)."""
    import numpy as np
    import polars as pl
    import pyarrow as pa

    arr = ids.cast(pl.String).fill_null("").to_arrow(compat_level=pl.CompatLevel.oldest())
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    if arr.type != pa.large_string():
        arr = arr.cast(pa.large_string())
    n = len(arr)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
    data = (
        np.frombuffer(arr.buffers()[2], dtype=np.uint8)
        if arr.buffers()[2] is not None
        else np.zeros(0, np.uint8)
    )
    lengths = np.diff(offsets)
    ok = lengths == 18
    result = np.zeros(n, dtype=bool)
    if not ok.any():
        return pl.Series(ids.name, result)
    if ok.all() and offsets[-1] - offsets[0] == 18 * n:  # the usual case: one contiguous block
        chars = data[offsets[0] : offsets[-1]].reshape(n, 18)
    else:
        chars = data[offsets[:-1][ok, None] + np.arange(18)]
    digits = chars[:, :17].astype(np.int16) - 48
    shape = ((digits >= 0) & (digits <= 9)).all(axis=1)
    total = (digits.clip(0, 9) * np.array(_WEIGHTS, dtype=np.int16)).sum(axis=1, dtype=np.int32) % 11
    expected = np.frombuffer(_CHECK.encode(), dtype=np.uint8)[total]
    result[ok] = shape & (chars[:, 17] == expected)
    return pl.Series(ids.name, result)


def check_array(first17):  # pl.Series -> pl.Series
    """Vectorised :func:`check_character` over a String series of 17 digits (else null).

    The result is built as a string series whatever the rows' order: the first row
    being null or malformed must not change how polars infers the column.
    """
    import numpy as np
    import polars as pl

    s = first17.cast(pl.String)
    ok = s.str.contains(r"^\d{17}$").fill_null(False)
    checks = pl.Series(s.name, [None] * len(s), dtype=pl.String)
    if ok.any():
        raw = s.filter(ok).str.join("").item().encode()
        digits = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 17).astype(np.int16) - 48
        total = (digits * np.array(_WEIGHTS, dtype=np.int16)).sum(axis=1) % 11
        checks = checks.scatter(
            ok.arg_true(), pl.Series(np.array(list(_CHECK))[total].tolist(), dtype=pl.String)
        )
    return checks
