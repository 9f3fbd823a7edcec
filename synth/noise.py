"""Defects that real deliveries carry, applied to department records.

Each function takes the true value and the generator and returns what a department
delivers. The profile (settings.yaml) says how often each defect happens; the
applied defect is logged so the tests can hold the generator to its rates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import opencc
import yaml
from pypinyin import Style, lazy_pinyin

from guardline import idnumber
from synth import names

SETTINGS_PATH = Path(__file__).with_name("settings.yaml")
ID_DEFECTS = (
    "check_wrong",
    "digit_typo",
    "transposed",
    "fullwidth",
    "spaces",
    "apostrophe",
    "legacy15",
    "empty",
    "excel_float",
    "disability_cert",
)
NAME_DEFECTS = (
    "homophone",
    "near_homophone",
    "lookalike",
    "missing_char",
    "extra_char",
    "traditional",
    "stray_spaces",
)
DOTS = ("•", ".", "．", "")
FULLWIDTH = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")


def load_settings(path: Path | None = None) -> dict[str, Any]:
    with open(path or SETTINGS_PATH, encoding="utf-8") as f:
        return yaml.safe_load(f)


@dataclass(frozen=True)
class NoiseProfile:
    """Rates of every defect; ``clean`` has them all at zero."""

    name: str
    id: dict[str, float] = field(default_factory=dict)
    name_defects: dict[str, float] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)

    @classmethod
    def load(cls, profile: str, settings: dict[str, Any] | None = None) -> NoiseProfile:
        """A profile by name from settings.yaml, or from a YAML file of the same shape."""
        settings = settings or load_settings()
        profiles = settings["noise_profiles"]
        if profile in profiles:
            raw = dict(profiles[profile] or {})
        elif Path(profile).is_file():
            raw = dict(yaml.safe_load(Path(profile).read_text(encoding="utf-8")) or {})
        else:
            raise ValueError(
                f"unknown noise profile {profile!r}: use one of {sorted(profiles)} or a YAML file"
            )
        unknown_id = set(raw.get("id") or {}) - set(ID_DEFECTS)
        unknown_name = set(raw.get("name") or {}) - set(NAME_DEFECTS)
        if unknown_id or unknown_name:
            raise ValueError(
                f"noise profile {profile!r} names unknown defects: {sorted(unknown_id | unknown_name)}"
            )
        return cls(
            profile,
            dict(raw.pop("id", None) or {}),
            dict(raw.pop("name", None) or {}),
            {k: float(v) for k, v in raw.items()},
        )

    def rate(self, key: str) -> float:
        return self.rates.get(key, 0.0)


def draw(rng: np.random.Generator, rates: dict[str, float], allowed: tuple[str, ...]) -> str | None:
    """At most one defect out of ``allowed``, each with its own probability."""
    u = rng.random()
    acc = 0.0
    for kind in allowed:
        acc += rates.get(kind, 0.0)
        if u < acc:
            return kind
    return None


def _rounded(id18: str, digits: int) -> str:
    """An 18-digit ID rounded half up to ``digits`` significant digits, as Excel rounds."""
    scale = 10 ** (18 - digits)
    return str((int(id18) + scale // 2) // scale)


def excel_float_text(id18: str, rng: np.random.Generator) -> str:
    """How Excel shows an 18-digit ID it took for a number: 4.33124199E+17 (rounded)."""
    digits = int(rng.integers(6, 10))
    kept = _rounded(id18, digits)
    exponent = 17 + len(kept) - digits  # 999… rounded up gains a digit
    mantissa = kept[0] + "." + kept[1:].rstrip("0")
    return f"{mantissa.rstrip('.')}E+{exponent}"


def excel_float_value(id18: str) -> float:
    """The number Excel stores for an 18-digit ID: 15 significant digits, rounded half
    up (…245914 is kept as …246000), the rest zeros."""
    return float(int(_rounded(id18, 15)) * 1000)


def mangle_id(id18: str, kind: str, rng: np.random.Generator) -> str:
    """The delivered text of ``id18`` with one defect of ``kind``."""
    if kind == "check_wrong":
        wrong = [c for c in "0123456789X" if c != id18[17]]
        return id18[:17] + wrong[rng.integers(len(wrong))]
    if kind == "digit_typo":
        pos = int(rng.integers(0, 17))
        digit = str((int(id18[pos]) + int(rng.integers(1, 10))) % 10)
        return id18[:pos] + digit + id18[pos + 1 :]
    if kind == "transposed":
        for _ in range(20):
            pos = int(rng.integers(0, 16))
            if id18[pos] != id18[pos + 1]:
                return id18[:pos] + id18[pos + 1] + id18[pos] + id18[pos + 2 :]
        return id18[:17] + ("0" if id18[17] != "0" else "1")  # pragma: no cover
    if kind == "fullwidth":
        return id18.translate(FULLWIDTH)
    if kind == "spaces":
        style = int(rng.integers(3))
        if style == 0:
            return f" {id18} "
        if style == 1:
            return f"{id18[:6]} {id18[6:14]} {id18[14:]}"
        return id18 + "\u3000"
    if kind == "apostrophe":
        return "'" + id18
    if kind == "legacy15":
        return idnumber.to_legacy15(id18)
    if kind == "empty":
        return ""
    if kind == "excel_float":
        return excel_float_text(id18, rng)
    if kind == "disability_cert":
        return id18 + str(rng.integers(1, 8)) + str(rng.integers(1, 5))
    raise ValueError(kind)


@cache
def _homophones() -> dict[str, list[str]]:
    """Characters of the name material grouped by toneless pinyin."""
    pool = set(names.HOMOPHONE_POOL) | set(names.GIVEN_MALE) | set(names.GIVEN_FEMALE)
    pool |= {c for s in names.SURNAMES for c in s}
    groups: dict[str, list[str]] = {}
    for ch in sorted(pool):
        groups.setdefault(lazy_pinyin(ch, style=Style.NORMAL)[0], []).append(ch)
    return {ch: [o for o in grp if o != ch] for grp in groups.values() for ch in grp if len(grp) > 1}


def _near(reading: str) -> str:
    """The sound a dialect or an input method hears: -ng as -n, zh/ch/sh as z/c/s."""
    for retroflex, flat in (("zh", "z"), ("ch", "c"), ("sh", "s")):
        if reading.startswith(retroflex):
            reading = flat + reading[2:]
            break
    return reading[:-1] if reading.endswith("ng") else reading


@cache
def _near_homophones() -> dict[str, list[str]]:
    """Given-name characters of another pinyin that sound alike (玲/琳, 金/晶, 明/民)."""
    pool = set(names.HOMOPHONE_POOL) | set(names.GIVEN_MALE) | set(names.GIVEN_FEMALE)
    readings = {ch: lazy_pinyin(ch, style=Style.NORMAL)[0] for ch in sorted(pool)}
    groups: dict[str, list[str]] = {}
    for ch, reading in readings.items():
        groups.setdefault(_near(reading), []).append(ch)
    return {
        ch: [o for o in grp if readings[o] != readings[ch]]
        for grp in groups.values()
        for ch in grp
        if any(readings[o] != readings[ch] for o in grp)
    }


@cache
def _to_traditional() -> opencc.OpenCC:
    return opencc.OpenCC("s2t")


def name_defect_applies(name: str, kind: str) -> bool:
    """Whether ``kind`` can change ``name`` at all (a name without look-alikes cannot get one)."""
    if "·" in name and kind != "stray_spaces":
        return False
    if kind == "homophone":
        return any(c in _homophones() for c in name)
    if kind == "near_homophone":
        return any(c in _near_homophones() for c in name[1:])
    if kind == "lookalike":
        return any(c in names.LOOKALIKE for c in name)
    if kind == "traditional":
        return _to_traditional().convert(name) != name
    if kind == "missing_char":
        return len(name) >= 3
    return True


def mangle_name(name: str, kind: str, rng: np.random.Generator) -> str:
    """The delivered text of ``name`` with one defect of ``kind``."""
    if kind == "homophone":
        table = _homophones()
        positions = [i for i, c in enumerate(name) if c in table]
        pos = positions[int(rng.integers(len(positions)))]
        options = table[name[pos]]
        return name[:pos] + options[int(rng.integers(len(options)))] + name[pos + 1 :]
    if kind == "near_homophone":  # in the given name: a surname is read out with care
        table = _near_homophones()
        positions = [i for i, c in enumerate(name) if i > 0 and c in table]
        pos = positions[int(rng.integers(len(positions)))]
        options = table[name[pos]]
        return name[:pos] + options[int(rng.integers(len(options)))] + name[pos + 1 :]
    if kind == "lookalike":
        positions = [i for i, c in enumerate(name) if c in names.LOOKALIKE]
        pos = positions[int(rng.integers(len(positions)))]
        return name[:pos] + names.LOOKALIKE[name[pos]] + name[pos + 1 :]
    if kind == "missing_char":
        pos = int(rng.integers(1, len(name)))
        return name[:pos] + name[pos + 1 :]
    if kind == "extra_char":
        chars = list(names.GIVEN_MALE) + list(names.GIVEN_FEMALE)
        return name + chars[int(rng.integers(len(chars)))]
    if kind == "traditional":
        return _to_traditional().convert(name)
    if kind == "stray_spaces":
        style = int(rng.integers(3))
        if style == 0:
            return name[0] + " " + name[1:]
        if style == 1:
            return name[0] + "\u3000" + name[1:]
        return f" {name} "
    raise ValueError(kind)


def vary_dot(name: str, rng: np.random.Generator, gbk: bool) -> str:
    """A middle-dot name as clerks type it; • does not exist in GBK files."""
    dots = tuple(d for d in DOTS if not (gbk and d == "•"))
    return name.replace("·", dots[int(rng.integers(len(dots)))])
