"""Statistics for measurements: pure functions, no I/O.

Percentiles use the nearest-rank method on sorted samples: the p-th
percentile is a value that was actually measured, never an interpolation.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def percentile(sorted_samples: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile of already sorted samples.

    >>> percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90)
    9
    >>> percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 99.9)
    10
    """
    if not sorted_samples:
        return math.nan
    if not 0 < q <= 100:
        raise ValueError("q must be in (0, 100]")
    rank = math.ceil(q / 100 * len(sorted_samples))
    return sorted_samples[max(rank, 1) - 1]


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """Count, percentiles (p50, p90, p99, p99.9) and max of unsorted samples.

    >>> summarize([3.0, 1.0, 2.0])["p50"]
    2.0
    """
    ordered = sorted(samples)
    summary = {"count": len(ordered)}
    for q in PERCENTILES:
        summary[percentile_label(q)] = percentile(ordered, q)
    summary["max"] = ordered[-1] if ordered else math.nan
    summary["mean"] = sum(ordered) / len(ordered) if ordered else math.nan
    return summary


def percentile_label(q: float) -> str:
    """``99.9 -> "p99.9"``, ``50.0 -> "p50"``."""
    return f"p{q:g}"


def subsample(samples: Sequence[float], limit: int, seed: int = 0) -> list[float]:
    """At most ``limit`` samples chosen at random (reproducibly), for plots and storage."""
    if len(samples) <= limit:
        return list(samples)
    return random.Random(seed).sample(list(samples), limit)


def ecdf(samples: Sequence[float]) -> tuple[list[float], list[float]]:
    """Points of the empirical CDF: sorted values and the fraction of samples at or below each.

    >>> ecdf([2.0, 1.0])
    ([1.0, 2.0], [0.5, 1.0])
    """
    ordered = sorted(samples)
    count = len(ordered)
    return ordered, [(i + 1) / count for i in range(count)]
