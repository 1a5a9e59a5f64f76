"""The report's text: a tiny template language, the facts it draws on, and source listings.

A template is Markdown with placeholders:

- ``{{ capacity.ours_50 | int }}`` - a fact (see :func:`facts`), formatted for the language;
- ``{{ table capacity }}`` - a Markdown table made from the results (see :data:`TABLES`);
- ``{{ listing chat/server.py ChatServer.broadcast }}`` - that function's source, as it is now;
- ``{{ include session.txt }}`` - a file of the report folder, verbatim.

English and Russian use the same facts, tables and listings, so the two
reports can't disagree with each other or with the measurements.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable
from pathlib import Path

from chat import bench
from chat.reporttables import TABLES

PLACEHOLDER = re.compile(r"\{\{\s*(.+?)\s*\}\}")
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
NOT_MEASURED = {"en": "n/a", "ru": "нет данных"}


# -- numbers, in two languages ------------------------------------------------------------------


def number(value: float, decimals: int, language: str) -> str:
    """``1234567.8 -> "1,234,568"`` in English, ``"1 234 568"`` in Russian (no-break spaces)."""
    text = f"{value:,.{decimals}f}"
    if language == "ru":
        text = text.replace(",", "\u00a0").replace(".", ",")
    return text


def _milliseconds(value: float, language: str) -> str:
    decimals = 2 if value < 10 else 1 if value < 100 else 0
    return f"{number(value, decimals, language)}\u00a0{'мс' if language == 'ru' else 'ms'}"


FILTERS: dict[str, Callable[[float, str], str]] = {
    "int": lambda v, lang: number(v, 0, lang),
    "float1": lambda v, lang: number(v, 1, lang),
    "float2": lambda v, lang: number(v, 2, lang),
    "ms": _milliseconds,
    "pct": lambda v, lang: f"{number(100 * v, 1, lang)}{chr(0xa0) if lang == 'ru' else ''}%",
    "x": lambda v, lang: f"{number(v, 1, lang)}×",
    "mib": lambda v, lang: f"{number(v / 2**20, 1, lang)}\u00a0{'МиБ' if lang == 'ru' else 'MiB'}",
    "text": lambda v, lang: str(v),
}


def render(template: str, context: dict, language: str, report_dir: Path) -> str:
    """Replace every placeholder; an unknown one is an error, never left in the text."""

    def replace(match: re.Match) -> str:
        expression = match[1]
        word, _, rest = expression.partition(" ")
        if word == "listing":
            path, _, name = rest.partition(" ")
            return listing(path, name)
        if word == "table":
            return TABLES[rest](context["results"], language)
        if word == "include":
            return (report_dir / rest).read_text(encoding="utf-8").rstrip("\n")
        path, _, kind = (part.strip() for part in expression.partition("|"))
        return format_fact(lookup(context["facts"], path), kind or "text", language)

    return PLACEHOLDER.sub(replace, template)


def lookup(facts: dict, path: str):
    value = facts
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise KeyError(f"the report refers to an unknown fact: {path}")
        value = value[key]
    return value


def format_fact(value, kind: str, language: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NOT_MEASURED[language]
    return FILTERS[kind](value, language)


# -- listings from the source, as it is now -------------------------------------------------------


def listing(path: str, qualified_name: str) -> str:
    """A fenced block with the source of ``Class.method`` or ``function`` in ``path``, with its place."""
    source = (PACKAGE_ROOT / path).read_text(encoding="utf-8")
    node = _find(ast.parse(source), qualified_name.split("."))
    first = min([node.lineno, *(decorator.lineno for decorator in getattr(node, "decorator_list", []))])
    lines = source.splitlines()[first - 1 : node.end_lineno]
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    body = "\n".join(line[indent:] for line in lines)
    return f"```python\n# {path}, lines {first}-{node.end_lineno}\n{body}\n```"


def _find(tree: ast.AST, names: list[str]) -> ast.AST:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == names[0]:
            return node if len(names) == 1 else _find(node, names[1:])
    raise KeyError(f"no {'.'.join(names)} in the source")


# -- facts: the numbers the text quotes ---------------------------------------------------------------


def _median(runs: list[dict], path: str, **match) -> float | None:
    try:
        return bench.median_of(runs, path, **match)
    except KeyError:
        return None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _total(runs: list[dict], path: str, **match) -> float | None:
    """The sum over the matching runs, or None if the experiment was not run."""
    return bench.total_of(runs, path, **match) if runs else None


def _sum(a: float | None, b: float | None) -> float | None:
    return a + b if a is not None and b is not None else None


def _difference(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None


def _share(run: dict | None, key: str = "delivered") -> float | None:
    if run is None or "not_measured" in run or not run.get("expected"):
        return None
    return run[key] / run["expected"]


def _first(runs: list[dict], **match) -> dict | None:
    found = bench.matching(runs, **match)
    return found[0] if found else None


def facts(results: dict[str, dict]) -> dict:
    """Every number the report's text quotes, computed from the results (None where not measured)."""
    get = lambda name: results.get(name, {"runs": [], "targets": []})["runs"]
    capacity, latency, scaling, nagle, slow, udp, framing, ceiling = (
        get(n) for n in ("capacity", "latency", "scaling", "nagle", "slow-consumer", "udp", "framing", "ceiling"))
    ours_capacity = [(run["users"], run["deliveries_per_s"]) for run in bench.matching(capacity, server="ours")]
    best_users, best = max(ours_capacity, key=lambda pair: pair[1], default=(None, None))
    naive_ascii = _first(framing, server="naive", alphabet="ascii")
    naive_cyrillic = _first(framing, server="naive", alphabet="cyrillic")
    ours_ascii = _first(framing, server="ours", alphabet="ascii")
    soak = results.get("soak", {}).get("soak", {})
    robustness = results.get("robustness", {})
    udp_by = {(run["transport"], run["injected_loss"]): run for run in udp}
    slow_p99_base = _median(slow, "latency_ms.p99", server="ours", stalled_users=0)
    slow_p99_stalled = _median(slow, "latency_ms.p99", server="ours", stalled_users=1)
    return {
        "machine": next(iter(results.values()), {}).get("machine", {}),
        "modes": sorted({result.get("mode") for result in results.values() if result.get("mode")}),
        "framing": {
            "naive_ascii_whole": _share(naive_ascii),
            "naive_ascii_garbled": naive_ascii and naive_ascii["garbled"],
            "naive_cyrillic_closed": naive_cyrillic and naive_cyrillic["receivers_closed"],
            "naive_cyrillic_users": naive_cyrillic and naive_cyrillic["users"] - naive_cyrillic["stalled_users"],
            "naive_cyrillic_whole": _share(naive_cyrillic),
            "ours_lost": _sum(_total(framing, "lost", server="ours"), _total(framing, "garbled", server="ours")),
            "sent": ours_ascii and ours_ascii["sent"],
            "deliveries": ours_ascii and ours_ascii["expected"],
        },
        "capacity": {
            "ours_50": _median(capacity, "deliveries_per_s", server="ours", users=50),
            "naive_50": _median(capacity, "deliveries_per_s", server="naive", users=50),
            "ratio_50": _ratio(_median(capacity, "deliveries_per_s", server="ours", users=50),
                               _median(capacity, "deliveries_per_s", server="naive", users=50)),
            "ours_best": best, "ours_best_users": best_users,
            "best_of_ceiling": _ratio(best, max((run["deliveries_per_s"] for run in
                                                 bench.matching(ceiling, generator_processes=2)), default=None)),
            "ours_lost": _total(capacity, "lost", server="ours"),
        },
        "ceiling": {
            "one_process": _median(ceiling, "deliveries_per_s", generator_processes=1),
            "two_processes": max((run["deliveries_per_s"] for run in bench.matching(ceiling, generator_processes=2)),
                                 default=None),
        },
        "latency": {
            "ours_p50_500": _median(latency, "latency_ms.p50", server="ours", offered_per_s=500),
            "ours_p99_500": _median(latency, "latency_ms.p99", server="ours", offered_per_s=500),
            "ours_p999_500": _median(latency, "latency_ms.p99.9", server="ours", offered_per_s=500),
            "naive_p50_500": _median(latency, "latency_ms.p50", server="naive", offered_per_s=500),
            "naive_p99_500": _median(latency, "latency_ms.p99", server="naive", offered_per_s=500),
            "ours_p99_4000": _median(latency, "latency_ms.p99", server="ours", offered_per_s=4000),
            "naive_lost_4000": _median(latency, "lost", server="naive", offered_per_s=4000),
        },
        "scaling": {
            "ours_p99_500": _median(scaling, "latency_ms.p99", server="ours", users=500),
            "ours_p99_1000": _median(scaling, "latency_ms.p99", server="ours", users=1000),
            "ours_rate_1000": _median(scaling, "deliveries_per_s", server="ours", users=1000),
            "naive_p99_500": _median(scaling, "latency_ms.p99", server="naive", users=500),
            "ours_lost_1000": _median(scaling, "lost", server="ours", users=1000),
            "naive_p99_1000": _median(scaling, "latency_ms.p99", server="naive", users=1000),
            "naive_lost_1000": _median(scaling, "lost", server="naive", users=1000),
            "ours_lost": _total(scaling, "lost", server="ours"),
        },
        "nagle": {
            f"{'ours' if run['server'] == 'ours' else 'naive'}_{'on' if run['server_options'].get('nodelay') else 'off'}":
                run["latency_ms"]["p99"] for run in nagle
        },
        "slow": {
            "p99_base": slow_p99_base,
            "p99_stalled": slow_p99_stalled,
            "p99_ratio": _ratio(slow_p99_stalled, slow_p99_base),
            "sendq_peak": max((run["sendq_peak_bytes"] for run in bench.matching(slow, server="ours", stalled_users=1)), default=None),
            "rss_extra": _difference(_median(slow, "server_rss_peak_bytes", server="ours", stalled_users=1),
                                     _median(slow, "server_rss_peak_bytes", server="ours", stalled_users=0)),
            "ours_lost": _total(slow, "lost", server="ours"),
            "naive_lost_share": bench.lost_share(slow, server="naive", stalled_users=1),
            "naive_lost_share_base": bench.lost_share(slow, server="naive", stalled_users=0),
        },
        "udp": {
            f"{transport}_{int(loss * 100)}": {
                "delivered": _share(udp_by.get((transport, loss))),
                "p99": (udp_by[(transport, loss)]["latency_ms"]["p99"]
                        if (transport, loss) in udp_by and "not_measured" not in udp_by[(transport, loss)] else None),
            }
            for transport in ("udp", "tcp") for loss in (0.0, 0.01, 0.1)
        },
        "soak": {
            "seconds": soak.get("seconds"),
            "churn": sum(soak.get("churn_done", {}).values()) if soak else None,
            "churn_kinds": len(soak.get("churn_done", {})) if soak else None,
            "lost": soak.get("lost_total"),
            "errors": soak.get("server_errors"),
            "connections": soak.get("server_connections"),
            "rss_first": soak.get("rss_after_warm_up_bytes", {}).get("first"),
            "rss_last": soak.get("rss_after_warm_up_bytes", {}).get("last"),
            "threads_max": soak.get("threads_after_warm_up", {}).get("max"),
        },
        "robustness": {key: robustness.get(key) for key in ("tests", "passed", "failed", "seconds")},
    }
