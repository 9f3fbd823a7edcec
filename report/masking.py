"""Sample rows of a refused delivery, fit for analysts: the report is read outside the
monitoring role, so no full ID number, phone or name appears in it. The identity
columns a source declares are masked as the warehouse's views mask them (ID
``433124********1234``, phone ``138****5678``), names keep their surname (``张*``),
addresses and remarks — free text about people — are left out, and any other run of 11
or more digits is masked wherever it stands (a reason quoting a value included).
"""

from __future__ import annotations

import json
import re
from typing import Any

from connectors.sources import ALL
from connectors.spec import Source

LONG_DIGITS = re.compile(r"\d{11,}[\dXx]?")
FREE_TEXT = ("地址", "备注", "住址", "情况说明")
OMITTED = "…"
NAME_LIKE = re.compile(r"[\u4e00-\u9fff·]{2,4}")
ADDRESS_LIKE = re.compile(r"[省市县区镇乡村组路街号]")


def mask_id(value: str) -> str:
    return _keep(value, 6, 4)


def mask_phone(value: str) -> str:
    return _keep(value, 3, 4)


def mask_name(value: str) -> str:
    value = value.strip()
    return value[:1] + "*" * max(len(value) - 1, 1) if value else value


def _keep(value: str, head: int, tail: int) -> str:
    value = value.strip()
    if len(value) <= head + tail:
        return "*" * len(value)
    return value[:head] + "*" * (len(value) - head - tail) + value[-tail:]


def _unknown(text: str) -> str:
    """A cell whose column is not known (a row whose header could not be read): masked as
    a name when it could be one (two to four Chinese characters), left out when it reads
    like an address, its long digit runs masked otherwise. Over-masking is the safe side."""
    if NAME_LIKE.fullmatch(text.strip()):
        return mask_name(text)
    if len(text) > 4 and ADDRESS_LIKE.search(text):
        return OMITTED
    return mask_text(text)


def mask_text(text: str) -> str:
    """Every run of 11 or more digits (an ID, a phone, an ID Excel turned to digits) masked."""
    return LONG_DIGITS.sub(
        lambda m: mask_phone(m.group()) if len(m.group()) == 11 else mask_id(m.group()), text
    )


def _source(stage_name: str) -> Source | None:
    return next((s for s in ALL if stage_name in (s.stage_name, s.name)), None)


def masked_row(stage_name: str, raw: str | None) -> dict[str, str]:
    """A quarantined row's delivered values (JSON keyed by header), masked."""
    if not raw:
        return {}
    try:
        parsed: Any = json.loads(raw)
    except ValueError:
        return {"(row)": mask_text(raw)}
    if isinstance(parsed, list):  # a row whose header could not be read: its cells in order
        values = {f"第{i}列": v for i, v in enumerate(parsed, start=1)}
    elif isinstance(parsed, dict):
        values = parsed
    else:
        return {"(row)": mask_text(str(parsed))}
    source = _source(stage_name)
    by_name = {c.header: c.name for c in source.columns} if source else {}
    ident = source.identity if source else None
    ids = {ident.id_number} if ident else set()
    phones = {ident.phone} if ident and ident.phone else set()
    names = {ident.name} if ident else set()
    places = set(ident.place) if ident else set()
    out = {}
    for header, value in values.items():
        text = "" if value is None else str(value)
        canonical = by_name.get(header, "")
        if not text:
            out[header] = ""
        elif header not in by_name and not any(
            word in header for word in ("号码", "身份证", "电话", "手机", "姓名")
        ):
            out[header] = _unknown(text)
        elif canonical in ids or header.endswith("号码") or "身份证" in header:
            out[header] = mask_id(text)
        elif canonical in phones or "电话" in header or "手机" in header:
            out[header] = mask_phone(text)
        elif canonical in names or "姓名" in header:
            out[header] = mask_name(text)
        elif (canonical in places and len(places) == 1) or any(word in header for word in FREE_TEXT):
            out[header] = OMITTED
        else:
            out[header] = mask_text(text)
    return out
