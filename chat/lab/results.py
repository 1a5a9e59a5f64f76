"""Stored results: saving and loading a scenario's JSON, and the few queries everything reads them with.

A result is a plain dictionary (see :mod:`chat.lab.bench`): ``runs`` is a list
of flat-ish dictionaries, one per run, and ``targets`` what was judged.  This
module imports nothing else of the package, so the plots, the report and the
notebooks read results without pulling in the benchmark machinery.
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path


def value_of(run: dict, path: str):
    """``value_of(run, "latency_ms.p99.9")``: a value, or one inside a dict (split at the first dot)."""
    key, _, inner = path.partition(".")
    return run[key][inner] if inner else run[key]


def matching(runs: list[dict], **match) -> list[dict]:
    """The runs whose fields equal every ``match`` given."""
    return [run for run in runs if all(run.get(key) == value for key, value in match.items())]


def median_of(runs: list[dict], path: str, **match) -> float:
    """The median of a value over the runs that match (the middle one for an odd count)."""
    values = [value_of(run, path) for run in matching(runs, **match)]
    if not values:
        raise KeyError(f"no run matches {match}")
    return statistics.median(values)


def total_of(runs: list[dict], path: str, **match) -> float:
    """The sum of a value over the runs that match."""
    return sum(value_of(run, path) for run in matching(runs, **match))


def lost_share(runs: list[dict], **match) -> float | None:
    """Messages lost over all the matching runs, as a share of those expected (None if none were)."""
    expected = total_of(runs, "expected", **match)
    return total_of(runs, "lost", **match) / expected if expected else None


def run_lost_share(run: dict) -> float:
    """The share of one run's expected deliveries that never arrived."""
    return run["lost"] / run["expected"]


def lines_passed_on_per_s(run: dict) -> float | None:
    """Lines one run's server passed on per second, whole or not (None for a run of no duration).

    The textbook server relays whatever one ``recv`` returned, so besides the
    whole messages it delivers it passes on pieces that arrive garbled; both
    count here, which is the fairest reading of how fast it relays.
    """
    return (run["delivered"] + run["garbled"]) / run["duration_s"] if run["duration_s"] else None


def median_passed_on_per_s(runs: list[dict], **match) -> float | None:
    """The median of :func:`lines_passed_on_per_s` over the matching runs (None if none has a duration)."""
    rates = [rate for run in matching(runs, **match) if (rate := lines_passed_on_per_s(run)) is not None]
    return statistics.median(rates) if rates else None


def save(result: dict, out_dir: Path, write_csv: bool = False) -> list[Path]:
    """Write ``SCENARIO.json`` (and ``SCENARIO.csv``) under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{result['scenario']}.json"
    path.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    written = [path]
    if write_csv:
        csv_path = out_dir / f"{result['scenario']}.csv"
        with csv_path.open("w", newline="", encoding="utf-8") as handle:
            rows = [flatten(run) for run in result["runs"] or result.get("soak", {}).get("windows", [])]
            columns = list(dict.fromkeys(column for row in rows for column in row))  # every row's, in order
            writer = csv.DictWriter(handle, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(rows)
        written.append(csv_path)
    return written


def load(path: Path) -> dict:
    """One stored scenario result."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def flatten(run: dict) -> dict:
    """One run as flat columns (for CSV): nested dicts get dotted names, samples are left out."""
    flat = {}
    for key, value in run.items():
        if key in ("latency_samples_ms", "per_sender"):
            continue
        if isinstance(value, dict):
            for inner, inner_value in flatten(value).items():
                flat[f"{key}.{inner}"] = inner_value
        else:
            flat[key] = value
    return flat
