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


class SequenceTracker:
    """Counts one sender's sequence numbers as they arrive at one receiver.

    >>> tracker = SequenceTracker()
    >>> [tracker.record(seq) for seq in (0, 1, 3, 2, 3)]
    [True, True, True, True, False]
    >>> tracker.received, tracker.duplicated, tracker.out_of_order, tracker.missing()
    (4, 1, 1, 0)
    """

    __slots__ = ("seen", "highest", "lowest", "received", "duplicated", "out_of_order")

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.highest = -1
        self.lowest: int | None = None
        self.received = 0
        self.duplicated = 0
        self.out_of_order = 0

    def record(self, seq: int) -> bool:
        """Count one arrival; True if it is the first time this number arrived."""
        if seq in self.seen:
            self.duplicated += 1
            return False
        self.seen.add(seq)
        self.received += 1
        if self.lowest is None or seq < self.lowest:
            self.lowest = seq
        if seq < self.highest:
            self.out_of_order += 1
        else:
            self.highest = seq
        return True

    def missing(self) -> int:
        """Numbers not (yet) arrived between the lowest and the highest seen: the gaps."""
        if self.lowest is None:
            return 0
        return self.highest - self.lowest + 1 - self.received
