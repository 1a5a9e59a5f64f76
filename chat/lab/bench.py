"""Benchmarks: ``python -m chat bench SCENARIO [--quick | --full]``.

The comparisons run our server and the textbook one side by side, in one run,
each in a process of its own, with the load generator in another (``udp``
compares our TCP and UDP servers; ``ceiling`` and ``soak`` measure one thing).  Results
are plain dictionaries, saved as JSON (and CSV on request) for the plots, the
notebooks and the report.  Targets are checked here and reported as ratios
and percentiles; nothing is a timed test.

Benchmark servers run with flood control off (``rate_lines_per_s=0``): the
point is to measure the server, and the default limit of 10 lines/s per user
would be the first thing measured.  ``max_clients`` is raised for 1000 users.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from chat.lab import netloss
from chat.lab.harness import ProcessSampler, ServerProcess, machine_info
from chat.lab.loadgen import LoadConfig, run_load
from chat.lab.measure import Step, measure, measure_points, result_row
from chat.lab.results import median_of, total_of
from chat.tcp.limits import Limits


@dataclass(frozen=True)
class Mode:
    """Sizes for one scenario: ``quick`` runs in seconds (CI, notebooks), ``full`` gives the report's figures."""

    name: str
    seconds: float  # sending time per run at a target rate
    deliveries: int  # deliveries per run in capacity runs
    reps: int  # repetitions of the runs a target compares; targets use the median
    users: tuple[int, ...] = ()  # chosen instead of a scenario's own users (see run_scenario)
    rates: tuple[float, ...] = ()  # chosen instead of a scenario's own offered loads, messages/s in all
    chosen_seconds: float | None = None  # chosen instead of the scenario's own sending time

    @property
    def quick(self) -> bool:
        return self.name == "quick"

    def users_or(self, default: Sequence[int]) -> list[int]:
        return list(self.users or default)

    def rates_or(self, default: Sequence[float]) -> list[float]:
        return list(self.rates or default)

    def one_user_count(self, default: int) -> int:
        return _only_one(self.users_or([default]), "users")

    def one_rate(self, default: float) -> float:
        return _only_one(self.rates_or([default]), "rates")


def _only_one(values: list, what: str):
    if len(values) != 1:
        raise ValueError(f"this scenario runs at one size: give one value of {what}, not {values}")
    return values[0]


QUICK = Mode("quick", seconds=2.0, deliveries=600_000, reps=1)
FULL = Mode("full", seconds=8.0, deliveries=15_000_000, reps=3)
MODES = {"quick": QUICK, "full": FULL}


def _rate_config(users: int, rate_per_s: float, mode: Mode, **overrides) -> LoadConfig:
    senders = users - overrides.get("stalled_users", 0)
    messages = max(1, round(rate_per_s * mode.seconds / senders))
    settings = {"drain_idle_s": 1.0, "max_duration_s": mode.seconds * 4 + 30, **overrides}
    return LoadConfig(users=users, messages=messages, rate_per_s=rate_per_s, **settings)


# -- scenarios -----------------------------------------------------------------------------


def capacity(mode: Mode, step: Step | None = None) -> dict:
    """Deliveries per second when every user sends as fast as the window allows."""
    users_list = mode.users_or([50] if mode.quick else [10, 25, 50, 100, 200])
    at = 50 if 50 in users_list else users_list[-1]  # the size the targets judge (they are set at 50)
    runs = []
    for users in users_list:
        messages = max(20, min(5000, mode.deliveries // (users * (users - 1))))
        config = LoadConfig(users=users, messages=messages, burst=capacity_burst(users, messages), alphabet="ascii",
                            drain_idle_s=1.0, max_duration_s=120)
        # Two generator processes: one alone comes close to its own ceiling here (see `ceiling`).
        points = [(kind, config, f"capacity: {kind}, {users} users", {"processes": 2}) for kind in ("ours", "naive")]
        runs += measure_points(points, mode.reps if users == at else 1, step)
    ours = median_of(runs, "deliveries_per_s", server="ours", users=at)
    naive = median_of(runs, "deliveries_per_s", server="naive", users=at)
    judged = at == 50
    return _scenario("capacity", mode, runs, [
        _target(f"our deliveries/s at {at} users", ours, *((">=", 600_000) if judged else ("info", None))),
        _target(f"our lost messages at {at} users", total_of(runs, "lost", server="ours", users=at), "==", 0),
        _target(f"ours / textbook deliveries/s at {at} users", _ratio(ours, naive), *((">=", 1.2) if judged else ("info", None))),
    ])


def capacity_burst(users: int, messages: int, window_bursts: int = 2, message_bytes: int = 64) -> int:
    """Messages per burst such that the bursts in flight fit in half of a client's queue.

    Every other user's bursts can be queued for one client at once; a burst so
    big that they pass its bound gets clients dropped as too slow, which is the
    server doing its job but not a measure of its capacity.
    """
    line_bytes = message_bytes + len(f"<u{users}> \n")
    budget = Limits().sendq_bytes // 2
    return max(1, min(50, messages, budget // (window_bursts * (users - 1) * line_bytes)))


def latency(mode: Mode, step: Step | None = None) -> dict:
    """Latency percentiles against offered load, at 50 users."""
    rates = mode.rates_or([500] if mode.quick else [100, 250, 500, 1000, 2000, 4000])
    users = mode.one_user_count(50)
    at = 500 if 500 in rates else rates[-1]  # the load the targets judge (the target is set at 50 users, 500/s)
    runs = []
    for rate in rates:
        points = [(kind, _rate_config(users, rate, mode), f"latency: {kind}, {rate:g}/s", {}) for kind in ("ours", "naive")]
        runs += measure_points(points, mode.reps if rate == at else 1, step)
    judged = (users, at) == (50, 500)
    return _scenario("latency", mode, runs, [
        _target(f"our p99 latency (ms) at {users} users, {at:g} msg/s",
                median_of(runs, "latency_ms.p99", server="ours", offered_per_s=at), *(("<=", 2.0) if judged else ("info", None))),
        _target("our lost messages, all loads", total_of(runs, "lost", server="ours"), "==", 0),
        _target(f"textbook p99 latency (ms) at {at:g} msg/s", median_of(runs, "latency_ms.p99", server="naive", offered_per_s=at), "info", None),
    ])


SCALING_DRAIN_IDLE_S = 5.0  # see scaling()


def scaling(mode: Mode, step: Step | None = None) -> dict:
    """Latency and deliveries as users grow, each user sending one message per second.

    Each generator process waits for ``SCALING_DRAIN_IDLE_S`` without a line to
    any of its users before it concludes that nothing more is coming.  At 1000
    users a thousand readers queuing lines need more than the core, lines wait
    in the queues for seconds, and with a one-second wait, lines that were only
    late (still queued) counted as lost.
    """
    sizes = mode.users_or([10, 50, 200] if mode.quick else [10, 50, 200, 500, 1000])
    runs = []
    for users in sizes:
        # Users stay connected for the whole wait, so the CPU reading after the last delivery finds all threads.
        config = _rate_config(users, users, mode, drain_idle_s=SCALING_DRAIN_IDLE_S, stop_when_complete=False)
        points = [(kind, config, f"scaling: {kind}, {users} users",
                   {"thread_cpu": kind == "ours"}) for kind in ("ours", "naive")]
        runs += measure_points(points, mode.reps if users == 500 else 1, step)
    targets = [_target("our lost messages, all sizes", total_of(runs, "lost", server="ours"), "==", 0)]
    if 500 in sizes:
        targets.append(_target("our p99 latency (ms) at 500 users, 1 msg/s each",
                               median_of(runs, "latency_ms.p99", server="ours", users=500), "<=", 20.0))
    targets += _floor_targets(runs, max(sizes))
    if 1000 in sizes:
        big = _pick(runs, "ours", users=1000)
        connected = big["users"] if big["receivers_closed"] == 0 and big["lost"] == 0 else 0
        targets.append(_target("users connected at once, every line delivered, however late (latency not judged)", connected, ">=", 1000))
    return _scenario("scaling", mode, runs, targets)


def _floor_targets(runs: list[dict], users: int) -> list[dict]:
    """Our flusher's CPU per send at ``users``, beside what the kernel alone charges for such a send (the floor)."""
    from chat.lab.floor import kernel_send_floor

    ours = _pick(runs, "ours", users=users)
    per_send = ours.get("flusher_us_per_send")
    if per_send is None:
        return []
    floor = kernel_send_floor(users, ours["flusher_bytes_per_send"])
    ours["kernel_floor"] = floor
    return [
        _target(f"flusher CPU per send (µs) at {users} users, {ours['flusher_bytes_per_send']} bytes a send", per_send, "info", None),
        _target(f"the kernel alone, one non-blocking send to each of {users} sockets (µs)", floor["cpu_us_per_send"], "info", None),
        _target(f"flusher per send / the kernel's floor, at {users} users", _ratio(per_send, floor["cpu_us_per_send"]), "info", None),
    ]


def nagle(mode: Mode, step: Step | None = None) -> dict:
    """The same load with TCP_NODELAY on and off, on both servers: 50 users, 500 messages/s (the latency target's load)."""
    config = _rate_config(mode.one_user_count(50), mode.one_rate(500), mode)
    runs = [
        measure("ours", config, step, "nagle: ours, TCP_NODELAY on", nodelay=True),
        measure("ours", config, step, "nagle: ours, TCP_NODELAY off", nodelay=False),
        measure("naive", config, step, "nagle: textbook, TCP_NODELAY off (as written)", nodelay=False),
        measure("naive", config, step, "nagle: textbook, TCP_NODELAY on", nodelay=True),
    ]
    on, off = runs[0], runs[1]
    return _scenario("nagle", mode, runs, [
        _target("our p99 (ms), TCP_NODELAY on", on["latency_ms"]["p99"], "info", None),
        _target("our p99 (ms), TCP_NODELAY off", off["latency_ms"]["p99"], "info", None),
        _target("p99 off / on", _ratio(off["latency_ms"]["p99"], on["latency_ms"]["p99"]), "info", None),
    ])


def slow_consumer(mode: Mode, step: Step | None = None) -> dict:
    """One user that never reads, among 20 users that send a lot; the same run without it.

    Our server drops the stalled user once its queue is full, a second or so
    into the run; after that it costs nothing.  So the others' latency is
    judged on the messages sent *while it was connected* (the run's
    ``latency_window_ms``), against the same stretch of time from the start of
    a run without it (each baseline runs right after its stalled run, with
    that run's window).
    """
    runs = _slow_consumer_runs(mode, step)
    return _scenario("slow-consumer", mode, runs, _slow_consumer_targets(runs))


def _slow_consumer_runs(mode: Mode, step: Step | None) -> list[dict]:
    """Each repetition: a stalled run, then a baseline over the stalled run's window, for each server."""
    sized = replace(mode, seconds=mode.chosen_seconds or (4.0 if mode.quick else 10.0))
    senders, rate = mode.one_user_count(20), mode.one_rate(4000)
    runs = []
    for rep in range(mode.reps):
        for kind in ("ours", "naive"):
            suffix = f" (run {rep + 1} of {mode.reps})" if mode.reps > 1 else ""
            # ASCII text: with Cyrillic the textbook server also disconnects users whose letters its recv(1024)
            # cuts (the framing scenario), and its losses would mix that failure with the stalled user's.
            config = _rate_config(senders + 1, rate, sized, stalled_users=1, message_bytes=512, alphabet="ascii",
                                  keep_send_times=True)
            stalled = measure(kind, config, step, f"slow consumer: {kind}, one stalled user{suffix}")
            if stalled["window_s"] is None:  # never dropped: it was there all along
                stalled["window_s"], stalled["latency_window_ms"] = stalled["duration_s"], stalled["latency_ms"]
            config = _rate_config(senders, rate, sized, message_bytes=512, alphabet="ascii",
                                  keep_send_times=True)  # the same load, nobody stalled
            baseline = measure(kind, config, step, f"slow consumer: {kind}, baseline{suffix}", window_s=stalled["window_s"])
            runs += [{**stalled, "rep": rep}, {**baseline, "rep": rep}]
    return runs


def _slow_consumer_targets(runs: list[dict]) -> list[dict]:
    p99_base = median_of(runs, "latency_window_ms.p99", server="ours", stalled_users=0)
    p99_stalled = median_of(runs, "latency_window_ms.p99", server="ours", stalled_users=1)
    p99_stalled_whole_run = median_of(runs, "latency_ms.p99", server="ours", stalled_users=1)
    p99_base_whole_run = median_of(runs, "latency_ms.p99", server="ours", stalled_users=0)
    rss_extra = (median_of(runs, "server_rss_peak_bytes", server="ours", stalled_users=1)
                 - median_of(runs, "server_rss_peak_bytes", server="ours", stalled_users=0))
    sendq = Limits().sendq_bytes
    stalled_runs = [run for run in runs if run["server"] == "ours" and run["stalled_users"] == 1]
    return [
        _target("lost by the others, with a stalled user", total_of(runs, "lost", server="ours", stalled_users=1), "==", 0),
        _target("others' p99 while the stalled user was connected / the same stretch without it",
                _ratio(p99_stalled, p99_base), "<=", 2.0),
        _target("others' p99 over the whole run with / without the stalled user",
                _ratio(p99_stalled_whole_run, p99_base_whole_run), "info", None),
        _target("seconds the stalled user stayed connected (median)",
                median_of(runs, "window_s", server="ours", stalled_users=1), "info", None),
        _target("runs in which the stalled user was dropped as too slow",
                sum(run["server_left"].get("too slow", 0) for run in stalled_runs), "==", len(stalled_runs)),
        _target("most bytes queued for one client / sendq bound", _ratio(max(run["sendq_peak_bytes"] for run in stalled_runs), sendq), "<=", 1.0),
        _target("server RSS with a stalled user minus without (MiB)", round(rss_extra / 2**20, 3), "info", None),
        _target("textbook: lost by the others, with a stalled user",
                total_of(runs, "lost", server="naive", stalled_users=1), "info", None),
    ]


def framing(mode: Mode, step: Step | None = None) -> dict:
    """The textbook server's framing failures: 10 users sending as fast as they can, ASCII and Cyrillic text."""
    messages = 300 if mode.quick else 1000
    users = mode.one_user_count(10)
    runs = []
    for alphabet in ("ascii", "cyrillic"):
        config = LoadConfig(users=users, messages=messages, burst=50, alphabet=alphabet, drain_idle_s=1.0, max_duration_s=60)
        for kind in ("ours", "naive"):
            runs.append(measure(kind, config, step, f"framing: {kind}, {alphabet} text"))
    naive_ascii = _pick(runs, "naive", alphabet="ascii")
    naive_cyrillic = _pick(runs, "naive", alphabet="cyrillic")
    return _scenario("framing", mode, runs, [
        _target("our lost or garbled messages", total_of(runs, "lost", server="ours") + total_of(runs, "garbled", server="ours"), "==", 0),
        _target("textbook, ASCII: messages delivered whole (share)", round(naive_ascii["delivered"] / naive_ascii["expected"], 4), "info", None),
        _target("textbook, Cyrillic: users disconnected by a split letter", naive_cyrillic["receivers_closed"], "info", None),
    ])


def ceiling(mode: Mode, step: Step | None = None) -> dict:
    """The load generator's own limit: lines from a server that does no work per line.

    A blaster sends every receiving user the same block of valid load lines,
    from 50 fake senders, as fast as TCP allows; the generator parses and
    counts them as it does real ones.  Compare with the capacity scenario:
    where our server's deliveries/s come close to this, the generator is what
    the capacity run measured.
    """
    fake_senders = 50
    runs = []
    for processes, users in ((1, 50), (2, 50), (2, 100)):
        messages = max(10, mode.deliveries // (users * fake_senders))
        config = LoadConfig(users=users, senders=0, external_senders=fake_senders, messages=messages,
                            alphabet="ascii", drain_idle_s=1.0, max_duration_s=120)
        block = {"users": users, "senders": fake_senders, "messages": messages,
                 "message_bytes": config.message_bytes, "alphabet": config.alphabet}
        if step is not None:
            step(f"ceiling: {users} users, {processes} generator process{'es' if processes > 1 else ''}")
        with ServerProcess("blaster", **block) as server, ProcessSampler(server.pid) as sampler:
            result = run_load(server.address, config, processes=processes)
        row = result_row("blaster", block, result, {}, sampler, sampler.first_rss_bytes)
        row["generator_processes"] = processes
        # timed from the first line: the blaster starts a moment after the generator's clock
        receiving_s = result.duration_s - result.first_delivery_s
        row["deliveries_per_s"] = round(result.delivered / receiving_s, 1) if receiving_s > 0 else 0.0
        runs.append(row)
    return _scenario("ceiling", mode, runs, [
        *(_target(f"generator ceiling, deliveries/s, {run['users']} users, {run['generator_processes']} process(es)",
                  run["deliveries_per_s"], "info", None) for run in runs),
        _target("lines lost or garbled on the way", sum(run["lost"] + run["garbled"] for run in runs), "==", 0),
    ])


def soak(mode: Mode, step: Step | None = None, seconds: float | None = None) -> dict:
    """A long mixed load with churn (see :mod:`chat.soak`): no loss, no growth."""
    from chat.lab.soak import run_soak

    seconds = seconds or (10.0 if mode.quick else 60.0)
    report = run_soak(seconds, step=step)
    rss, threads = report["rss_after_warm_up_bytes"], report["threads_after_warm_up"]
    result = _scenario("soak", mode, [], [
        _target("messages lost by steady users", report["lost_total"], "==", 0),
        _target("unexpected errors in the server", report["server_errors"], "==", 0),
        _target("churn actions the server failed", sum(report["churn_failed"].values()), "==", 0),
        _target("churn actions done", sum(report["churn_done"].values()), "info", None),
        _target("users dropped as too slow", report["server_leaves"].get("too slow", 0), "info", None),
        _target("server RSS growth after warm-up (MiB)", round((rss["last"] - rss["first"]) / 2**20, 3), "<=", 2.0),
        _target("server threads at window ends, growth after warm-up", threads["max"] - threads["first"], "<=", 4),
    ])
    result["soak"] = report
    result["command"] = f"python -m chat bench soak --seconds {seconds:g}"
    return result


def udp(mode: Mode, step: Step | None = None) -> dict:
    """TCP against UDP at the same offered load, with 0%, 1% and 10% loss.

    UDP: the server drops that share of the messages it relays (seeded, see
    :class:`chat.udp.Faults`), and nothing brings them back.  TCP: the kernel
    drops that share of the packets to and from the server's port, both ways
    (:mod:`chat.netloss`, needs root and iptables), and TCP retransmits them.
    Where TCP loss can't be made, those rows say why instead of a number.
    """
    users, rate = mode.one_user_count(20), mode.one_rate(200.0)
    can_drop, why_not = netloss.available()
    runs = []
    for loss in (0.0, 0.01, 0.10):
        udp_config = _rate_config(users, rate, mode, transport="udp", drain_idle_s=0.5)
        udp_run = measure("udp", udp_config, step, f"udp: UDP, {loss:.0%} loss", faults={"drop": loss, "seed": 1})
        udp_run["injected_loss"] = loss
        runs.append(udp_run)
        if loss and not can_drop:
            runs.append({"server": "ours", "transport": "tcp", "injected_loss": loss, "not_measured": why_not})
            continue
        # TCP's retransmission timer backs off (0.2 s, 0.4 s, 0.8 s, ...): give late messages time to arrive.
        tcp_config = _rate_config(users, rate, mode, drain_idle_s=6.0 if loss else 1.0)
        tcp_run = measure("ours", tcp_config, step, f"udp: TCP, {loss:.0%} loss", packet_loss=loss)
        tcp_run["injected_loss"] = loss
        runs.append(tcp_run)
    targets = []
    for run in runs:
        label = f"{run['transport'].upper()} at {run['injected_loss']:.0%} loss"
        if "not_measured" in run:
            targets.append(_target(f"{label}: not measured", run["not_measured"], "info", None))
            continue
        targets.append(_target(f"{label}: delivery ratio", round(run["delivered"] / run["expected"], 4), "info", None))
        targets.append(_target(f"{label}: p99 latency (ms)", run["latency_ms"]["p99"], "info", None))
    return _scenario("udp", mode, runs, targets)


SCENARIOS: dict[str, Callable[..., dict]] = {
    "framing": framing,
    "ceiling": ceiling,
    "capacity": capacity,
    "latency": latency,
    "scaling": scaling,
    "nagle": nagle,
    "slow-consumer": slow_consumer,
    "soak": soak,
    "udp": udp,
}


# -- results --------------------------------------------------------------------------------


def _pick(runs: list[dict], server: str, **match) -> dict:
    for run in runs:
        if run["server"] == server and all(run.get(key) == value for key, value in match.items()):
            return run
    raise KeyError(f"no {server} run with {match}")


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _target(name: str, value, relation: str, limit) -> dict:
    """A target, judged on the exact value; the value is stored rounded (4 decimals) for reading."""
    checks = {">=": lambda: value >= limit, "<=": lambda: value <= limit, "==": lambda: value == limit}
    met = None if relation == "info" or value is None else bool(checks[relation]())
    shown = round(value, 4) if isinstance(value, float) else value
    return {"name": name, "value": shown, "relation": relation, "limit": limit, "met": met}


def _scenario(name: str, mode: Mode, runs: list[dict], targets: list[dict]) -> dict:
    return {
        "scenario": name,
        "mode": mode.name,
        "command": f"python -m chat bench {name} --{mode.name}",
        "machine": machine_info(),
        "finished": time.strftime("%Y-%m-%d %H:%M"),
        "runs": runs,
        "targets": targets,
    }


SIZES = {  # what each scenario lets its caller choose (run_scenario)
    "framing": {"users"},
    "ceiling": set(),
    "capacity": {"users"},
    "latency": {"users", "rates", "seconds"},
    "scaling": {"users", "seconds"},
    "nagle": {"users", "rates", "seconds"},
    "slow-consumer": {"users", "rates", "seconds"},
    "soak": {"seconds"},
    "udp": {"users", "rates", "seconds"},
}


def run_scenario(name: str, mode: str = "quick", step: Step | None = None, *,
                 users: int | Sequence[int] | None = None, rates: float | Sequence[float] | None = None,
                 seconds: float | None = None) -> dict:
    """Run one scenario at ``mode``'s sizes, or at the sizes given.

    ``users``: the numbers of users a scenario compares (``capacity``,
    ``scaling``), or its one number (the others; ``slow-consumer`` counts the
    senders besides the stalled user).  ``rates``: the total messages/s it
    offers.  ``seconds``: how long each run sends (the soak: how long it
    runs).  Targets are judged only at the sizes they are set for; elsewhere
    they are shown as information.  A size a scenario has no use for is an error.
    """
    if name not in SCENARIOS:
        raise KeyError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    given = {key: value for key, value in (("users", users), ("rates", rates), ("seconds", seconds)) if value is not None}
    if unused := set(given) - SIZES[name]:
        accepted = ", ".join(sorted(SIZES[name])) or "none"
        raise TypeError(f"{name} does not take {', '.join(sorted(unused))} (it takes: {accepted})")
    if name == "soak":
        return soak(MODES[mode], step, seconds=seconds)
    sized = replace(MODES[mode], users=_as_tuple(users), rates=_as_tuple(rates), chosen_seconds=seconds,
                    seconds=seconds or MODES[mode].seconds)
    result = SCENARIOS[name](sized, step)
    if given:
        result["sizes"] = {key: list(_as_tuple(value)) if key != "seconds" else value for key, value in given.items()}
        result["command"] += "".join(f" --{key} {','.join(f'{v:g}' for v in _as_tuple(value))}"
                                     for key, value in given.items())
    return result


def _as_tuple(values) -> tuple:
    if values is None:
        return ()
    return tuple(values) if isinstance(values, Sequence) else (values,)
