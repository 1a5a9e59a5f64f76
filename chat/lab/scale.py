"""The notebooks' scale switch, ``CHAT_LAB_SCALE``: ``quick`` (the default, and CI's) or ``full``.

At ``quick`` every experiment runs live, in seconds; at ``full`` the notebooks
show the report's stored measurements (``report/results``) and save their
figures under ``report/figures``.  See :mod:`chat.lab.notebook`.
"""

from __future__ import annotations

import os
from pathlib import Path

from chat.lab import results as lab_results

SCALE_VARIABLE = "CHAT_LAB_SCALE"
SCALES = ("quick", "full")
REPORT_DIR = Path(__file__).resolve().parents[2] / "report"  # the repository's, with the editable install


def scale() -> str:
    """``quick`` or ``full``, from the environment (default ``quick``)."""
    value = os.environ.get(SCALE_VARIABLE, "quick").strip().lower()
    if value not in SCALES:
        raise ValueError(f"{SCALE_VARIABLE} is 'quick' or 'full', not {value!r}")
    return value


def stored_results(scenario: str) -> dict | None:
    """The report's full run of ``scenario`` (``report/results``), or None where there is none."""
    path = REPORT_DIR / "results" / f"{scenario}.json"
    return lab_results.load(path) if path.exists() else None


def stored_label(result: dict | None) -> str:
    """How a stored result is labelled: when and where it was measured."""
    if result is None:
        return "no stored run (report/results is missing)"
    machine = result["machine"]
    return (f"stored {result['mode']} run of {result['finished']}, on {machine['cpus']} CPUs of {machine['cpu']}, "
            f"{machine['system']}, Python {machine['python']}")
