"""The header search shared by the readers: which of the first rows is the header, and
which column holds which field, headers compared as clerks type them.
"""

from __future__ import annotations

import re

from connectors.spec import Source
from guardline.errors import DeliveryError

HEADER_SEARCH_ROWS = 10
_SPACES = re.compile(r"[\s\u3000]+")


def normalise_header(text: object) -> str:
    """Headers as clerks type them: spaces gone, full-width brackets as ASCII."""
    s = _SPACES.sub("", str(text or ""))
    return s.replace("（", "(").replace("）", ")")


def header_map(source: Source) -> dict[str, str]:
    """Normalised header or alias -> canonical column name."""
    out: dict[str, str] = {}
    for c in source.columns:
        for h in (c.header, *c.aliases):
            out.setdefault(normalise_header(h), c.name)
    return out


def locate_header(
    rows: list[list[str | None]], source: Source, file: str
) -> tuple[int, dict[int, str], list[str]]:
    """The header row among the first rows, and which column holds which field."""
    known = header_map(source)
    required = [c for c in source.columns if c.required]
    best, best_hits = -1, 0
    for i, row in enumerate(rows[:HEADER_SEARCH_ROWS]):
        hits = len({known[h] for h in map(normalise_header, row) if h in known})
        if hits > best_hits:
            best, best_hits = i, hits
    if best < 0 or best_hits < max(2, len(required) // 2):
        raise DeliveryError(
            file,
            f"no header row of {source.title} found in the first {HEADER_SEARCH_ROWS} rows "
            f"(expected columns such as {', '.join(c.header for c in required[:4])})",
        )
    positions: dict[int, str] = {}
    warnings: list[str] = []
    for j, h in enumerate(rows[best]):
        name = known.get(normalise_header(h))
        if name is None:
            if normalise_header(h):
                warnings.append(f"column {h!r} is not in the contract and is ignored")
        elif name in positions.values():
            warnings.append(f"column {h!r} appears twice; the first is read")
        else:
            positions[j] = name
    missing = [c.header for c in required if c.name not in positions.values()]
    if missing:
        found = ", ".join(str(h) for h in rows[best] if h)
        raise DeliveryError(
            file, f"missing column {', '.join(missing)} (header row {best + 1} has: {found})", row=best + 1
        )
    return best, positions, warnings
