"""The facts the report's text quotes: every number, computed once from the results.

A fact is ``None`` where the results lack what it needs (an experiment not
run, or results older than the fact); the templates write that as "not
measured" in the report's language.
"""

from __future__ import annotations

import statistics

from chat.lab import results as lab_results
from chat.lab.soak import SOAK_SENDQ_BYTES
from chat.reporting.tables import median_or_none as _median
from chat.reporting.tables import per_delivery_us
from chat.tcp.limits import Limits


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _total(runs: list[dict], path: str, **match) -> float | None:
    """The sum over the matching runs, or None if the experiment was not run."""
    return lab_results.total_of(runs, path, **match) if runs else None


def _sum(a: float | None, b: float | None) -> float | None:
    return a + b if a is not None and b is not None else None


def _difference(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None


def _share(run: dict | None, key: str = "delivered") -> float | None:
    if run is None or "not_measured" in run or not run.get("expected"):
        return None
    return run[key] / run["expected"]


def _first(runs: list[dict], **match) -> dict | None:
    found = lab_results.matching(runs, **match)
    return found[0] if found else None


def _limit(result: dict, name_start: str) -> float | None:
    """The limit of the scenario's target whose name starts so (None if the results have no such target)."""
    return next((target["limit"] for target in result.get("targets", []) if target["name"].startswith(name_start)), None)


def _probe_range(results: dict[str, dict]) -> dict:
    """The fastest and slowest speed probe over the experiments (None where results predate the probe)."""
    probes = [result["machine"]["probe_loop_ms"] for result in results.values()
              if "probe_loop_ms" in result.get("machine", {})]
    return {"fastest_ms": min(probes, default=None), "slowest_ms": max(probes, default=None)}


def facts(results: dict[str, dict]) -> dict:
    """Every number the report's text quotes, computed from the results (None where not measured)."""
    get = lambda name: results.get(name, {"runs": [], "targets": []})["runs"]
    udp_by = {(run["transport"], run["injected_loss"]): run for run in get("udp")}
    return {
        "machine": next(iter(results.values()), {}).get("machine", {}),
        "probe": _probe_range(results),
        "modes": sorted({result.get("mode") for result in results.values() if result.get("mode")}),
        "framing": _framing_facts(get("framing")),
        "capacity": _capacity_facts(get("capacity"), get("ceiling"), results.get("capacity", {})),
        "ceiling": {
            "one_process": _median(get("ceiling"), "deliveries_per_s", generator_processes=1),
            "two_processes": max((run["deliveries_per_s"] for run in lab_results.matching(get("ceiling"), generator_processes=2)),
                                 default=None),
        },
        "latency": {
            f"{server}_{name}_{rate}": _median(get("latency"), path, server=server, offered_per_s=rate)
            for server in ("ours", "naive") for rate in (500, 4000)
            for name, path in (("p50", "latency_ms.p50"), ("p99", "latency_ms.p99"), ("p999", "latency_ms.p99.9"),
                               ("lost", "lost"), ("cpu", "server_cpu_peak"))
        },
        "scaling": _scaling_facts(get("scaling")),
        "nagle": _nagle_facts(get("nagle")),
        "slow": _slow_facts(get("slow-consumer")),
        "udp": {
            f"{transport}_{int(loss * 100)}": {
                "delivered": _share(udp_by.get((transport, loss))),
                "p99": (udp_by[(transport, loss)]["latency_ms"]["p99"]
                        if (transport, loss) in udp_by and "not_measured" not in udp_by[(transport, loss)] else None),
            }
            for transport in ("udp", "tcp") for loss in (0.0, 0.01, 0.1)
        },
        "soak": _soak_facts(results.get("soak", {})),
        "broker": _broker_facts(**BROKER_EXAMPLE),
        "robustness": _robustness_facts(results.get("robustness", {})),
        "scorecards": _scorecard_facts(results.get("scorecards", {}).get("servers", {})),
    }


def _scorecard_facts(servers: dict) -> dict:
    """How many checks of ``python -m chat check`` each graded server passed, warned and failed."""
    found = {"checks": len(servers["ours"]["checks"]) if "ours" in servers else None}
    for name in ("ours", "naive", *(f"step {number}" for number in range(1, 7))):
        counts = servers.get(name, {}).get("counts", {})
        key = name.replace(" ", "")  # "step 6" -> step6_passed
        found |= {f"{key}_passed": counts.get("PASS"), f"{key}_warned": counts.get("WARN"),
                  f"{key}_failed": counts.get("FAIL")}
    return found


# Section 7's worked example: one chat room on several nodes sharing a broker (all users hear all users).
BROKER_EXAMPLE = {"nodes": 4, "users_per_node": 500, "rate_per_user": 1.0}


def _broker_facts(nodes: int, users_per_node: int, rate_per_user: float) -> dict:
    """What each node and the broker must carry: every message goes to every user but its sender."""
    users = nodes * users_per_node
    messages = users * rate_per_user
    return {
        "nodes": nodes, "users_per_node": users_per_node, "rate": rate_per_user, "users": users,
        "messages": messages,
        "one_node_deliveries": messages * (users - 1),
        "node_deliveries": rate_per_user * users_per_node * (users - 1),  # every message, to each local user
        "broker_in": messages,  # one publish per message
        "broker_out": messages * nodes,  # one copy per subscribed node
    }


def _framing_facts(framing: list[dict]) -> dict:
    naive_ascii = _first(framing, server="naive", alphabet="ascii")
    naive_cyrillic = _first(framing, server="naive", alphabet="cyrillic")
    ours_ascii = _first(framing, server="ours", alphabet="ascii")
    return {
        "naive_ascii_whole": _share(naive_ascii),
        "naive_ascii_garbled": naive_ascii and naive_ascii["garbled"],
        "naive_cyrillic_closed": naive_cyrillic and naive_cyrillic["receivers_closed"],
        "naive_cyrillic_users": naive_cyrillic and naive_cyrillic["users"] - naive_cyrillic["stalled_users"],
        "naive_cyrillic_whole": _share(naive_cyrillic),
        "ours_lost": _sum(_total(framing, "lost", server="ours"), _total(framing, "garbled", server="ours")),
        "sent": ours_ascii and ours_ascii["sent"],
        "deliveries": ours_ascii and ours_ascii["expected"],
    }


def _capacity_facts(capacity: list[dict], ceiling: list[dict], result: dict) -> dict:
    """Ours against the textbook's whole messages (what the target compares) and its lines passed on at all."""
    ours_capacity = [(run["users"], run["deliveries_per_s"]) for run in lab_results.matching(capacity, server="ours")]
    best_users, best = max(ours_capacity, key=lambda pair: pair[1], default=(None, None))
    ceiling_best = max((run["deliveries_per_s"] for run in lab_results.matching(ceiling, generator_processes=2)), default=None)
    ours_50 = _median(capacity, "deliveries_per_s", server="ours", users=50)
    naive_50 = _median(capacity, "deliveries_per_s", server="naive", users=50)
    naive_lines_50 = lab_results.median_passed_on_per_s(capacity, server="naive", users=50)
    target = _limit(result, "our deliveries/s at 50 users")
    return {
        "ours_50": ours_50, "naive_50": naive_50, "ratio_50": _ratio(ours_50, naive_50),
        "naive_lines_50": naive_lines_50, "ratio_lines_50": _ratio(ours_50, naive_lines_50),
        "ours_best": best, "ours_best_users": best_users,
        "best_of_ceiling": _ratio(best, ceiling_best),
        "ours_lost": _total(capacity, "lost", server="ours"),
        "target": target, "target_factor": _ratio(ours_50, target),
    }


def _scaling_facts(scaling: list[dict]) -> dict:
    median = lambda server, path, users: _median(scaling, path, server=server, users=users)
    reader_us, flusher_us, writer_us = (per_delivery_us(scaling, role, 500)
                                        for role in ("chat-reader", "chat-flusher", "chat-writer"))
    total_us = None if reader_us is None else reader_us + flusher_us + writer_us
    rate = median("ours", "deliveries_per_s", 500)
    biggest = lab_results.matching(scaling, server="ours", users=1000)
    cpu_1000 = lambda role: sum(run["server_cpu_by_thread"][role]["cpu_s"] for run in biggest) \
        if biggest and all(run.get("server_cpu_by_thread") for run in biggest) else None
    sending_s_1000 = statistics.mean(run["sent"] / run["offered_per_s"] for run in biggest) if biggest else None
    reader_cpu_1000 = cpu_1000("chat-reader")
    return {
        "drain_idle_s": _median(scaling, "drain_idle_s", server="ours"),
        "sending_s_1000": sending_s_1000,
        "reader_cpu_1000": reader_cpu_1000,
        "flusher_cpu_1000": cpu_1000("chat-flusher"),
        "reader_load_1000": None if reader_cpu_1000 is None else reader_cpu_1000 / len(biggest) / sending_s_1000,
        "reader_us_500": reader_us,
        "flusher_us_500": flusher_us,
        "demand_500": None if total_us is None or rate is None else total_us * rate / 1e6,
        "ours_p99_500": median("ours", "latency_ms.p99", 500),
        "ours_rate_500": median("ours", "deliveries_per_s", 500),
        "ours_p99_1000": median("ours", "latency_ms.p99", 1000),
        "ours_rate_1000": median("ours", "deliveries_per_s", 1000),
        "ours_lost_1000": median("ours", "lost", 1000),
        "naive_p99_500": median("naive", "latency_ms.p99", 500),
        "naive_p99_1000": median("naive", "latency_ms.p99", 1000),
        "naive_lost_1000": median("naive", "lost", 1000),
        "naive_lost_share_1000": lab_results.lost_share(scaling, server="naive", users=1000),
        "ours_lost": _total(scaling, "lost", server="ours"),
        "ours_cpu_200": _median(scaling, "server_cpu_peak", server="ours", users=200),
        "ours_cpu_500": _median(scaling, "server_cpu_peak", server="ours", users=500),
        "ours_cpu_1000": _median(scaling, "server_cpu_peak", server="ours", users=1000),
        "ours_p50_1000": median("ours", "latency_ms.p50", 1000),
    }


def _nagle_facts(nagle: list[dict]) -> dict:
    """``ours_off`` (p99), ``ours_off_p50``, ... for both servers with TCP_NODELAY on and off; and the load."""
    found = {}
    for run in nagle:
        key = f"{'ours' if run['server'] == 'ours' else 'naive'}_{'on' if run['server_options'].get('nodelay') else 'off'}"
        found[key], found[f"{key}_p50"] = run["latency_ms"]["p99"], run["latency_ms"]["p50"]
    keys = [f"{server}_{state}{suffix}" for server in ("ours", "naive") for state in ("on", "off") for suffix in ("", "_p50")]
    return {**dict.fromkeys(keys), **found, "users": nagle[0]["users"] if nagle else None,
            "rate": nagle[0]["offered_per_s"] if nagle else None}


def _slow_facts(slow: list[dict]) -> dict:
    """The others' latency while the stalled user was connected (the target) and over whole runs; the textbook's losses."""
    ours = lambda path, stalled: _median(slow, path, server="ours", stalled_users=stalled)
    naive = lambda path, stalled: _median(slow, path, server="naive", stalled_users=stalled)
    stalled_runs = lab_results.matching(slow, server="ours", stalled_users=1)
    naive_base = lab_results.matching(slow, server="naive", stalled_users=0)
    return {
        "p99_window_base": ours("latency_window_ms.p99", 0),
        "p99_window_stalled": ours("latency_window_ms.p99", 1),
        "p99_window_ratio": _ratio(ours("latency_window_ms.p99", 1), ours("latency_window_ms.p99", 0)),
        "p99_base": ours("latency_ms.p99", 0),
        "p99_stalled": ours("latency_ms.p99", 1),
        "p99_ratio": _ratio(ours("latency_ms.p99", 1), ours("latency_ms.p99", 0)),
        "connected_s": ours("window_s", 1),
        "sendq_peak": max((run["sendq_peak_bytes"] for run in stalled_runs), default=None),
        "sendq_bound": stalled_runs[0]["server_options"].get("sendq_bytes", Limits().sendq_bytes) if stalled_runs else None,
        "rss_extra": _difference(ours("server_rss_peak_bytes", 1), ours("server_rss_peak_bytes", 0)),
        "ours_lost": _total(slow, "lost", server="ours"),
        "naive_lost_share": lab_results.lost_share(slow, server="naive", stalled_users=1),
        "naive_lost_share_base": lab_results.lost_share(slow, server="naive", stalled_users=0),
        "naive_base_garbled": _total(naive_base, "garbled"),
        "naive_base_closed": _median(naive_base, "receivers_closed"),
        "naive_base_users": naive_base[0]["users"] if naive_base else None,
        "naive_p99_base": naive("latency_ms.p99", 0),
        "naive_p99_stalled": naive("latency_ms.p99", 1),
        "naive_last_base_s": naive("duration_s", 0),
        "naive_last_stalled_s": naive("duration_s", 1),
        "naive_delivered_stalled": _ratio(_total(slow, "delivered", server="naive", stalled_users=1),
                                          _total(slow, "expected", server="naive", stalled_users=1)),
    }


def _soak_facts(result: dict) -> dict:
    soak = result.get("soak", {})
    windows, rss, threads = soak.get("windows", []), soak.get("rss_after_warm_up_bytes", {}), soak.get("threads_after_warm_up", {})
    leaves = soak.get("server_leaves")
    return {
        "seconds": soak.get("seconds"),
        "took_s": windows[-1]["t_s"] if windows else None,
        "windows": len(windows) if soak else None,
        "window_s": soak.get("window_s"),
        "warm_up_windows": soak.get("warm_up_windows"),
        "sendq": SOAK_SENDQ_BYTES,
        "churn": sum(soak.get("churn_done", {}).values()) if soak else None,
        "churn_kinds": len(soak.get("churn_done", {})) if soak else None,
        "dropped_too_slow": leaves.get("too slow", 0) if leaves is not None else None,
        "lost": soak.get("lost_total"),
        "errors": soak.get("server_errors"),
        "connections": soak.get("server_connections"),
        "rss_first": rss.get("first"),
        "rss_last": rss.get("last"),
        "rss_growth": _difference(rss.get("last"), rss.get("first")),
        "rss_growth_limit": _limit(result, "server RSS growth"),
        "threads_first": threads.get("first"),
        "threads_max": threads.get("max"),
        "threads_growth_limit": _limit(result, "server threads at window ends"),
        "threads_in_windows": max((sample[2] for sample in soak.get("rss_samples", [])), default=None),
    }


def _robustness_facts(robustness: dict) -> dict:
    """What the battery and the property tests tried; crashes and losses are 0 when every test passed (they assert it)."""
    tried = [robustness.get(key) for key in ("battery_cases", "generated_examples")]
    measured = robustness.get("measured", {})
    all_passed = 0 if robustness.get("tests") and robustness.get("failed") == 0 else None
    return {
        **{key: robustness.get(key) for key in ("tests", "passed", "failed", "seconds", "battery_cases",
                                                "property_tests", "generated_examples")},
        "bad_inputs": sum(tried) if None not in tried else None,
        "crashes": all_passed, "lost": all_passed,
        "rss_100mb": measured.get("rss_growth_bytes"),
        "sendq_peak": measured.get("sendq_peak_bytes"),
        "sendq_bound": measured.get("sendq_bound_bytes"),
    }
