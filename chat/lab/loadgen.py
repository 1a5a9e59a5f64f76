"""The load generator: N simulated users, S of them sending M messages each.

>>> from chat.lab.loadgen import LoadConfig, run_load                    # doctest: +SKIP
>>> result = run_load(server.server_address, LoadConfig(users=50, messages=200, rate_per_s=500))
>>> result.lost, result.latency_ms["p99"]
(0, 0.61)

Two ways to send:

- at a target rate (``rate_per_s``, all senders together): open loop, each
  message goes out at its scheduled time and carries that time, so a stalled
  server shows up as latency (no coordinated omission);
- as fast as possible (``rate_per_s=None``): every sender sends bursts of
  ``burst`` messages, and the next burst goes once the one ``window_bursts``
  before it has been received by everybody.  This keeps the server busy
  without asking it to queue without bound.

The users live in one or more *groups*, each a selector loop in its own
worker process (``processes=N``, the default 1, so the generator never shares
a process with the server it measures) or in a thread of this process
(``processes=0``, for small notebook demos).

Every receiver records when each message arrives; the result counts sent,
expected, delivered, lost, duplicated and out-of-order messages per sender,
deliveries per second, and latency percentiles with their raw samples.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import multiprocessing.connection
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from chat.lab import stats
from chat.lab.config import GroupPlan, GroupResult, LoadConfig, PairCount, now_ns
from chat.lab.udpgroup import UDPUserGroup
from chat.lab.usergroup import UserGroup

START_LEAD_S = 0.2  # groups learn the start time this long before it comes
RESULT_MARGIN_S = 60.0  # time allowed to parse and return results after a run
KEEP_SAMPLES = 20_000  # latency samples kept in a result for plots (percentiles use all)

Progress = Callable[[float, float], None]  # (seconds elapsed, seconds expected)


@dataclass
class LoadResult:
    """What one load measured.  ``to_dict()`` gives a JSON-ready form."""

    config: LoadConfig
    sent: int  # messages written to the server
    unsent: int  # scheduled but never written: the server stopped reading, or closed the sender
    expected: int  # deliveries the scheduled messages should make (unsent ones included)
    delivered: int
    lost: int  # expected - delivered: an unsent message is lost to every user it was for
    duplicated: int
    out_of_order: int
    garbled: int  # lines that were not a whole message (the textbook server merges and splits)
    foreign: int  # messages from users outside this load (ignored)
    duration_s: float  # from the start to the last delivery
    deliveries_per_s: float
    first_delivery_s: float  # from the start to the first delivery
    latency_ms: dict[str, float]  # count, p50, p90, p99, p99.9, max, mean
    send_lag_ms: dict[str, float]  # how late the generator itself sent (rate mode)
    per_sender: dict[str, dict[str, int]]
    receivers: int
    receivers_closed: list[str]  # readers the server disconnected
    timed_out: bool
    latency_samples_ms: list[float] = field(repr=False, default_factory=list)
    window_s: float | None = None  # with run_load(window_end=...): the window's length, from the start
    latency_window_ms: dict[str, float] | None = None  # percentiles of the messages sent within the window
    last_delivery_ns: int = 0  # when the last line arrived, on the now_ns() clock (0: none did)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["config"] = dataclasses.asdict(self.config)
        return data


def plan_groups(address: tuple, config: LoadConfig, groups: int) -> list[GroupPlan]:
    """Share the users among ``groups``: senders are the first users, stalled ones the last."""
    names = [f"{config.name_prefix}{i}" for i in range(config.users)]
    senders = frozenset(names[: config.sender_count]) | frozenset(external_sender_names(config))
    stalled_from = config.users - config.stalled_users
    plans = []
    for group in range(groups):
        members = range(group, config.users, groups)
        plans.append(GroupPlan(
            address=tuple(address),
            load=config,
            names=[names[i] for i in members],
            sender_slots=[i if i < config.sender_count else None for i in members],
            stalled=[i >= stalled_from for i in members],
            sender_names=senders,
            line_starts=tuple(f"<{prefix}".encode() for prefix in _name_prefixes(config)),
        ))
    return [plan for plan in plans if plan.names]


def run_load(address: tuple, config: LoadConfig, processes: int = 1, progress: Progress | None = None,
             before_start: Callable[[], None] | None = None,
             window_end: Callable[[int], int | None] | None = None) -> LoadResult:
    """Connect the users, run the load, and return what it measured.

    ``processes=0`` runs the users in a thread of this process (small demos
    only: the generator then competes with anything else in the process).
    ``before_start`` is called once every user has joined, just before the
    clock starts (the TCP-under-loss experiment switches the loss on there).
    ``window_end`` (with ``config.keep_send_times``) is called after the run
    with the start time and gives a moment (:func:`now_ns` clock); the result
    then also gives the latency of the messages sent before it (the
    slow-consumer experiment: until the stalled user was dropped).
    """
    plans = plan_groups(address, config, max(1, processes))
    runner = _ThreadRunner(plans) if processes == 0 else _ProcessRunner(plans)
    with runner:
        runner.wait_ready(config.connect_timeout_s + 0.01 * config.users + 5)
        if before_start is not None:
            before_start()
        start_ns = now_ns() + int(START_LEAD_S * 1e9)
        runner.go(start_ns)
        results = runner.wait_results(config.max_duration_s + RESULT_MARGIN_S, start_ns, config, progress)
    end_ns = window_end(start_ns) if window_end is not None else None
    return merge(config, results, start_ns, end_ns)


def merge(config: LoadConfig, results: list[GroupResult], start_ns: int, window_end_ns: int | None = None) -> LoadResult:
    """Combine the groups' counts into one result (and, given a window's end, its latency within it)."""
    per_sender = _per_sender(config, results)
    latencies_ms = [value / 1e3 for result in results for value in result.latencies_us]
    lags_ms = [value / 1e3 for result in results for value in result.send_lag_us]
    last_ns = max((result.last_delivery_ns for result in results), default=0)
    firsts = [result.first_delivery_ns for result in results if result.first_delivery_ns]
    duration_s = max(0.0, (last_ns - start_ns) / 1e9)
    delivered = sum(entry["delivered"] for entry in per_sender.values())
    total = {key: sum(entry[key] for entry in per_sender.values())
             for key in ("sent", "unsent", "expected", "lost", "duplicated", "out_of_order")}
    return LoadResult(
        config=config,
        delivered=delivered,
        garbled=sum(result.garbled for result in results),
        foreign=sum(result.foreign for result in results),
        duration_s=duration_s,
        last_delivery_ns=last_ns,
        deliveries_per_s=delivered / duration_s if duration_s > 0 else 0.0,
        first_delivery_s=max(0.0, (min(firsts) - start_ns) / 1e9) if firsts else 0.0,
        latency_ms=stats.summarize(latencies_ms),
        send_lag_ms=stats.summarize(lags_ms),
        per_sender=per_sender,
        receivers=sum(result.receivers for result in results),
        receivers_closed=sorted(name for result in results for name in result.receivers_closed),
        timed_out=any(result.timed_out for result in results),
        latency_samples_ms=stats.subsample(latencies_ms, KEEP_SAMPLES),
        **_window(config, results, start_ns, window_end_ns),
        **total,
    )


def _per_sender(config: LoadConfig, results: list[GroupResult]) -> dict[str, dict[str, int]]:
    """For each sender: what it sent, and what its messages did at every receiver."""
    sent = {name: n for result in results for name, n in result.sent.items()}
    sent.update({name: config.messages for name in external_sender_names(config)})
    pairs: dict[tuple[str, str], PairCount] = {}
    for result in results:
        pairs.update(result.pairs)
    receiver_names = _receiver_names(config)
    per_sender = {}
    for sender in sent:
        expected = config.messages * sum(1 for name in receiver_names if name != sender)
        counts = [pairs.get((receiver, sender), PairCount()) for receiver in receiver_names if receiver != sender]
        delivered = sum(c.delivered for c in counts)
        per_sender[sender] = {
            "sent": sent[sender], "unsent": config.messages - sent[sender],
            "expected": expected, "delivered": delivered, "lost": expected - delivered,
            "duplicated": sum(c.duplicated for c in counts), "out_of_order": sum(c.out_of_order for c in counts),
        }
    return per_sender


def _window(config: LoadConfig, results: list[GroupResult], start_ns: int, end_ns: int | None) -> dict:
    """Latency percentiles of the messages sent between the start and ``end_ns``."""
    if end_ns is None or not config.keep_send_times:
        return {}
    within = [latency / 1e3 for result in results
              for latency, sent_ns in zip(result.latencies_us, result.sent_at_ns) if sent_ns < end_ns]
    return {"window_s": (end_ns - start_ns) / 1e9, "latency_window_ms": stats.summarize(within)}


def _name_prefixes(config: LoadConfig) -> list[str]:
    return [config.name_prefix] + (["fake"] if config.external_senders else [])


def external_sender_names(config: LoadConfig) -> list[str]:
    """The names the blaster's fake senders use (see :mod:`chat.blaster`)."""
    return [f"fake{i}" for i in range(config.external_senders)]


def _receiver_names(config: LoadConfig) -> list[str]:
    readers = config.users - config.stalled_users
    return [f"{config.name_prefix}{i}" for i in range(readers)]


# -- running groups ----------------------------------------------------------------------------


def _run_group(plan: GroupPlan, report: Callable[[tuple], None], wait_go: Callable[[], int | None]) -> None:
    """The life of one group, the same in a thread and in a worker process."""
    group = UDPUserGroup(plan) if plan.load.transport == "udp" else UserGroup(plan)
    try:
        try:
            group.connect()
        except Exception as exc:
            report(("error", f"connecting failed: {exc!r}"))
            return
        report(("ready", None))
        start_ns = wait_go()
        if start_ns is None:
            return
        try:
            group.run(start_ns)
            report(("result", group.collect()))
        except Exception as exc:
            report(("error", f"the load failed: {exc!r}"))
    finally:
        group.close()


def _group_process(plan: GroupPlan, conn) -> None:
    """Entry point of a worker process (spawned: nothing is inherited but the plan)."""
    raise_file_limit()
    _run_group(plan, conn.send, conn.recv)
    conn.close()


def raise_file_limit() -> None:
    """Let this process open as many sockets as the system allows (a thousand users need more than 1024)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


def _results(messages: list[tuple]) -> list[GroupResult]:
    for kind, payload in messages:
        if kind != "result":
            raise RuntimeError(f"a load group failed: {payload}")
    return [payload for _, payload in messages]


class _ProcessRunner:
    def __init__(self, plans: list[GroupPlan]) -> None:
        context = multiprocessing.get_context("spawn")
        self._conns = []
        self._processes = []
        for index, plan in enumerate(plans):
            parent, child = context.Pipe()
            process = context.Process(target=_group_process, args=(plan, child), name=f"loadgen-group-{index}", daemon=True)
            self._conns.append(parent)
            self._processes.append(process)

    def __enter__(self):
        for process in self._processes:
            process.start()
        return self

    def wait_ready(self, timeout_s: float) -> None:
        for message in self._receive_all(timeout_s):
            if message[0] != "ready":
                raise RuntimeError(f"a load group failed: {message[1]}")

    def go(self, start_ns: int) -> None:
        for conn in self._conns:
            conn.send(start_ns)

    def wait_results(self, timeout_s, start_ns, config, progress) -> list[GroupResult]:
        return _results(self._receive_all(timeout_s, start_ns, config, progress))

    def _receive_all(self, timeout_s, start_ns=None, config=None, progress=None) -> list[tuple]:
        deadline = time.monotonic() + timeout_s
        pending = dict(enumerate(self._conns))
        received: dict[int, tuple] = {}
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("load groups did not answer in time")
            ready = multiprocessing.connection.wait(list(pending.values()), min(remaining, 0.25))
            for index, conn in list(pending.items()):
                if conn in ready:
                    try:
                        received[index] = conn.recv()
                    except EOFError:
                        received[index] = ("error", "the worker process died")
                    del pending[index]
            if progress is not None and start_ns is not None:
                progress((now_ns() - start_ns) / 1e9, config.expected_duration_s())
        return [received[index] for index in sorted(received)]

    def __exit__(self, *exc_info):
        for conn in self._conns:
            try:
                conn.send(None)  # releases a worker still waiting for "go"
            except OSError:
                pass
        for process in self._processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(5)
        for conn in self._conns:
            conn.close()


class _ThreadRunner:
    """Groups in threads of this process, with the same protocol as the worker processes."""

    def __init__(self, plans: list[GroupPlan]) -> None:
        self._reports: list[list[tuple]] = [[] for _ in plans]
        self._start: list[int | None] = []
        self._go = threading.Event()
        self._changed = threading.Condition()
        self._threads = [
            threading.Thread(target=_run_group, args=(plan, self._reporter(index), self._wait_go),
                             name=f"loadgen-group-{index}", daemon=True)
            for index, plan in enumerate(plans)
        ]

    def _reporter(self, index: int) -> Callable[[tuple], None]:
        def report(message: tuple) -> None:
            with self._changed:
                self._reports[index].append(message)
                self._changed.notify_all()
        return report

    def _wait_go(self) -> int | None:
        self._go.wait()
        return self._start[0] if self._start else None

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def _wait_for(self, count: int, timeout_s: float) -> list[tuple]:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not all(len(reports) >= count for reports in self._reports):
                if any(reports and reports[0][0] == "error" for reports in self._reports):
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("load groups did not answer in time")
                self._changed.wait(remaining)
            return [reports[count - 1] if len(reports) >= count else reports[-1] for reports in self._reports]

    def wait_ready(self, timeout_s: float) -> None:
        for message in self._wait_for(1, timeout_s):
            if message[0] != "ready":
                raise RuntimeError(f"a load group failed: {message[1]}")

    def go(self, start_ns: int) -> None:
        self._start.append(start_ns)
        self._go.set()

    def wait_results(self, timeout_s, start_ns, config, progress) -> list[GroupResult]:
        return _results(self._wait_for(2, timeout_s))

    def __exit__(self, *exc_info):
        self._go.set()
        for thread in self._threads:
            thread.join(timeout=RESULT_MARGIN_S)
