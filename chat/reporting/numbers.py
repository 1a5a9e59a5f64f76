"""Numbers written the way each of the report's languages writes them.

``1234567.8`` is ``1,234,568`` in English and ``1 234 568`` in Russian (with
no-break spaces), units follow the number (``мс``, ``МиБ``), and a value that
was not measured reads "n/a" or "нет данных".  This is written by hand rather
than through ``locale`` or Babel on purpose: the output must be the same on
every machine (``locale`` depends on what the machine has installed) and it
needs only these few rules.
"""

from __future__ import annotations

import math
from collections.abc import Callable

NOT_MEASURED = {"en": "n/a", "ru": "нет данных"}


def number(value: float, decimals: int, language: str) -> str:
    """``1234567.8 -> "1,234,568"`` in English, ``"1 234 568"`` in Russian (no-break spaces)."""
    text = f"{value:,.{decimals}f}"
    if language == "ru":
        text = text.replace(",", "\u00a0").replace(".", ",")
    return text


def _milliseconds(value: float, language: str) -> str:
    decimals = 2 if value < 10 else 1 if value < 100 else 0
    return f"{number(value, decimals, language)}\u00a0{'мс' if language == 'ru' else 'ms'}"


FORMATS: dict[str, Callable[[float, str], str]] = {
    "int": lambda v, lang: number(v, 0, lang),
    "float1": lambda v, lang: number(v, 1, lang),
    "float2": lambda v, lang: number(v, 2, lang),
    "ms": _milliseconds,
    "pct": lambda v, lang: f"{number(100 * v, 1, lang)}{chr(0xa0) if lang == 'ru' else ''}%",
    "x": lambda v, lang: f"{number(v, 2 if v < 10 else 1 if v < 100 else 0, lang)}×",
    "times": lambda v, lang: _times(v, lang),
    "s": lambda v, lang: f"{number(v, 1, lang)}\u00a0{'с' if lang == 'ru' else 's'}",
    "mib": lambda v, lang: f"{number(v / 2**20, 1, lang)}\u00a0{'МиБ' if lang == 'ru' else 'MiB'}",
    "kib": lambda v, lang: f"{number(v / 2**10, 0, lang)}\u00a0{'КиБ' if lang == 'ru' else 'KiB'}",
    "text": lambda v, lang: str(v),
}


def _times(value: float, language: str) -> str:
    """A ratio in words: "114 times" / "в 114 раз", "1.10 times" / "в 1,10 раза" (Russian agrees with the number)."""
    shown = number(value, 2 if value < 10 else 1 if value < 100 else 0, language)
    if language != "ru":
        return f"{shown} times"
    whole = shown.replace("\u00a0", "").isdigit()
    last_two = int(shown.replace("\u00a0", "")) % 100 if whole else None
    form = "раза" if not whole or (last_two % 10 in (2, 3, 4) and last_two // 10 != 1) else "раз"
    return f"в {shown} {form}"


def format_fact(value, kind: str, language: str) -> str:
    """A value in one of :data:`FORMATS`; "not measured" for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NOT_MEASURED[language]
    return FORMATS[kind](value, language)
