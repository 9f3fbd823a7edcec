"""The synthetic county: its code, townships and villages.

Village names are composed from syllables used in place names of western Hunan, so
that the county looks like one: some share a stem, which is what makes the
`双龙镇` / `双龙` and `十八洞村` / `十八洞` variants hard for a naive match.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class County:
    """A county of western Hunan the generator can make: its name and GB/T 2260 code."""

    code: str
    name: str


# The default county, and the others a synthetic province can hold: each gets its own
# register keys, ID area code and settlement numbers, so several can share a warehouse.
COUNTIES = {
    c.code: c
    for c in (
        County("433124", "花垣县"),
        County("433125", "保靖县"),
        County("433126", "古丈县"),
        County("433127", "永顺县"),
        # The rest of 湘西 and its neighbours in 张家界, 怀化 and 邵阳: enough for a
        # province of twenty counties (bench/province_bench.py).
        County("433101", "吉首市"),
        County("433122", "泸溪县"),
        County("433123", "凤凰县"),
        County("433130", "龙山县"),
        County("430821", "慈利县"),
        County("430822", "桑植县"),
        County("431221", "中方县"),
        County("431222", "沅陵县"),
        County("431223", "辰溪县"),
        County("431224", "溆浦县"),
        County("431225", "会同县"),
        County("431226", "麻阳苗族自治县"),
        County("431227", "新晃侗族自治县"),
        County("431228", "芷江侗族自治县"),
        County("431229", "靖州苗族侗族自治县"),
        County("431230", "通道侗族自治县"),
        County("430529", "城步苗族自治县"),
    )
}
DEFAULT_COUNTY = COUNTIES["433124"]
# Counties that people marry in from or work beside: their ID area codes.
NEIGHBOUR_CODES = ("433122", "433123", "433125", "433126", "433127", "433130", "522229", "500241")
OTHER_COUNTIES = ("430102", "430181", "431202", "433101", "440304", "330206", "500112")

TOWNSHIPS = (
    "花垣镇",
    "双龙镇",
    "龙潭镇",
    "边城镇",
    "吉卫镇",
    "麻栗场镇",
    "雅酉镇",
    "民乐镇",
    "长乐乡",
    "石栏镇",
    "补抽乡",
    "董马库镇",
    "猫儿乡",
    "道二乡",
    "排碧乡",
    "团结镇",
)
_FIRST = "十八洞金龙石竹桃花新老上下大小高黄白岩青茶枫梨杉马牛羊鸡凉水望月双排夯"
_SECOND = "坪溪寨湾坡冲塘岭桥田坝岩山河沟林塔坳场园洞垭"


@dataclass(frozen=True)
class Village:
    township: str
    name: str


def make_villages(n_villages: int, rng: np.random.Generator) -> list[Village]:
    """Spread ``n_villages`` uniquely named villages over the townships."""
    n_town = min(len(TOWNSHIPS), max(4, n_villages // 15))
    towns = TOWNSHIPS[:n_town]
    villages: list[Village] = []
    used: set[str] = set()
    i = 0
    while len(villages) < n_villages:
        town = towns[i % n_town]
        i += 1
        for _ in range(1000):
            stem = rng.choice(list(_FIRST)) + rng.choice(list(_SECOND))
            if rng.random() < 0.25:
                stem = rng.choice(list(_FIRST)) + stem
            name = stem + "村"
            if name not in used:
                break
        else:  # pragma: no cover - only for absurd village counts
            name = f"第{i}村"
        used.add(name)
        villages.append(Village(town, name))
    return villages


def short_place(name: str) -> str:
    """The variant without 镇/乡/村 that clerks often write (`双龙镇` -> `双龙`)."""
    for suffix in ("镇", "乡", "村"):
        if name.endswith(suffix) and len(name) > 2:
            return name[: -len(suffix)]
    return name
