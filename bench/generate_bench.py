"""Generator throughput: rows per second and peak memory for a county of N households.

Usage: python bench/generate_bench.py [households ...]   (default 100000)

The named peer is Faker (the usual way to make synthetic people in Python): the
same number of register rows of Chinese names, ID numbers and phones made with
``Faker("zh_CN")``, with no households, deliveries, noise or truth. It shows what
the realism of the synthetic county costs per row.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from synth.generate import generate


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def faker_rows_per_second(n: int) -> float | None:
    try:
        from faker import Faker
    except ImportError:
        return None
    fake = Faker("zh_CN")
    Faker.seed(7)
    started = time.perf_counter()
    for _ in range(n):
        fake.name(), fake.ssn(), fake.phone_number(), fake.address()
    return n / (time.perf_counter() - started)


def main(sizes: list[int]) -> None:
    for households in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            summary = generate(Path(tmp), households=households, seed=7, as_of=date(2026, 11, 27))
            seconds = time.perf_counter() - started
        rows = sum(summary.rows.values())
        print(
            f"households={households:,} persons={summary.persons:,} rows={rows:,} "
            f"(department rows {summary.department_rows:,}) seconds={seconds:.1f} "
            f"rows/s={rows / seconds:,.0f} peak_rss={peak_mib():,.0f} MiB"
        )
        for source, n in summary.rows.items():
            print(f"  {source:<22} {n:>10,} rows in {summary.files[source]} files")
    sample = 20_000
    peer = faker_rows_per_second(sample)
    if peer is None:
        print("peer: Faker is not installed (uv sync) - no comparison")
    else:
        print(f"peer: Faker zh_CN, name+ID+phone+address only: {peer:,.0f} rows/s ({sample:,} rows)")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100_000])
