"""Record keys as text, exactly as docs/sources.md "Record keys" defines them.

The generator's ground truth and the connectors both build ``source_record_id``
with these functions, so there is one definition of the key's text form.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal


def field_text(value: object) -> str:
    """One key field: text stripped, dates ``YYYY-MM-DD``, numeric cells as integer digits."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        raise TypeError("a boolean is not a key field")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # The digits of the stored value as Excel would show it, not the binary double's.
        return format(Decimal(repr(value)).to_integral_value(), "f")
    return str(value).strip()


def record_key(*fields: object) -> str:
    """Fields joined by ``|``."""
    return "|".join(field_text(f) for f in fields)
