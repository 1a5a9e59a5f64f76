"""One benchmark run, measured: a fresh server process, a load against it, and one row of results.

:func:`measure` starts the server in a process of its own (:mod:`chat.lab.harness`),
runs a load against it (:mod:`chat.lab.loadgen`) while sampling its memory,
CPU and threads from /proc, and returns everything as one flat dictionary,
the form every stored result has.  :mod:`chat.lab.bench` composes runs into
scenarios.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack

from chat.lab.harness import ProcessSampler, ServerProcess, cpu_used_between, read_thread_cpu
from chat.lab.loadgen import LoadConfig, LoadResult, run_load
from chat.lab.netloss import PacketLoss
from chat.lab.stats import subsample

OURS_OPTIONS = {"rate_lines_per_s": 0, "max_clients": 2000}
NAIVE_OPTIONS: dict = {}
UDP_OPTIONS = {"rate_lines_per_s": 0}  # flood control off, as for our TCP server
KEEP_SAMPLES = 4000  # latency samples stored per run, for CDF plots
PER_SENDER_MAX = 50  # runs with up to this many senders store each sender's counts (beyond: only the summary)
USERS_PER_PROCESS = 500  # users per generator process (beyond 100 a group waits with epoll, see usergroup)

Step = Callable[[str], None]  # told what is about to run, for progress bars


def measure(kind: str, config: LoadConfig, step: Step | None = None, label: str = "",
            processes: int | None = None, packet_loss: float = 0.0, window_s: float | None = None,
            thread_cpu: bool = False, **server_options) -> dict:
    """Run one load against a fresh server process; return one row of results.

    ``processes`` is the number of generator processes (default: one per
    ``USERS_PER_PROCESS`` users).  ``packet_loss`` drops
    that share of the packets to and from the server's port, in the kernel,
    from the moment every user has joined (see :mod:`chat.lab.netloss`).  With
    ``config.keep_send_times`` the row also has the latency of the messages
    sent in the first ``window_s`` seconds, or, without it, until the server
    dropped its first user as too slow.  With ``thread_cpu`` (our server) the row
    also has the CPU time of each kind of server thread from the start of
    sending to a moment after the last delivery (see :class:`ThreadCpuReadings`).
    """
    defaults = {"ours": OURS_OPTIONS, "naive": NAIVE_OPTIONS, "udp": UDP_OPTIONS}.get(kind, {})
    options = {**defaults, **server_options}
    if step is not None:
        step(label or f"{kind}, {config.users} users")
    if processes is None:
        processes = max(1, -(-config.users // USERS_PER_PROCESS))
    with ServerProcess(kind, **options) as server, ProcessSampler(server.pid) as sampler, ExitStack() as loss:
        idle_rss = sampler.first_rss_bytes or 0
        readings = ThreadCpuReadings(server) if thread_cpu else None
        at_start: dict = {}

        def before_start() -> None:  # every user has joined; the clock starts next
            if readings is not None:
                readings.start()
                at_start.update(server.stats())  # the flusher's counters, from here on
            if packet_loss:
                loss.enter_context(PacketLoss(server.address[1], packet_loss, config.transport))

        result = run_load(server.address, config, processes=processes, before_start=before_start,
                          window_end=_window_end(config, server, window_s),
                          progress=readings.read if readings is not None else None)
        loss.close()
        counters = server.stats()
    row = result_row(kind, options, result, counters, sampler, idle_rss)
    if readings is not None:
        row["server_cpu_by_thread"], row["server_cpu_window_s"] = readings.used_until(
            counters.get("first_leave_ns"), result.last_delivery_ns)
        row.update(_flusher_figures(at_start, counters, row["server_cpu_by_thread"]))
    row.update(drain_idle_s=config.drain_idle_s, generator_processes=processes, transport=config.transport,
               packet_loss=packet_loss)
    return row


def _flusher_figures(at_start: dict, at_end: dict, cpu_by_thread: dict | None) -> dict:
    """The flusher's sends during the load, their size, and its CPU per send (our server only)."""
    if "flusher_sends" not in at_start or not cpu_by_thread or "chat-flusher" not in cpu_by_thread:
        return {}
    sends = at_end["flusher_sends"] - at_start["flusher_sends"]
    sent_bytes = at_end["bytes_out"] - at_start["bytes_out"]
    cpu_s = cpu_by_thread["chat-flusher"]["cpu_s"]
    return {"flusher_sends": sends, "flusher_sweeps": at_end["flusher_sweeps"] - at_start["flusher_sweeps"],
            "flusher_bytes_per_send": round(sent_bytes / sends) if sends else None,
            "flusher_us_per_send": round(cpu_s / sends * 1e6, 3) if sends else None}


def _window_end(config: LoadConfig, server: ServerProcess, window_s: float | None) -> Callable[[int], int | None] | None:
    """When the latency window ends: ``window_s`` after the start, or when the server first dropped a user."""
    if not config.keep_send_times:
        return None
    if window_s is not None:
        return lambda start_ns: start_ns + int(window_s * 1e9)
    return lambda start_ns: min(server.stats().get("too_slow_drops_ns", []), default=None)


class ThreadCpuReadings:
    """CPU time of each kind of server thread, read from outside the server while a load runs.

    /proc forgets a thread's time when it ends, and the server's threads end
    as the users leave, so the readings are taken while the load runs (from
    this process, not the server's), and the one kept is the last that came
    after the last delivery and before the first user left, with every thread
    still there.  Runs that measure this keep their users connected for
    ``drain_idle_s`` after the last line (``stop_when_complete=False``), so
    with ``interval_s`` below that, such a reading exists.
    """

    def __init__(self, server: ServerProcess, interval_s: float = 0.5) -> None:
        self._server = server
        self._interval_ns = int(interval_s * 1e9)
        self._names: dict[int, str] = {}
        self._readings: list[tuple[int, dict]] = []  # (time.monotonic_ns() once read, reading)

    def start(self) -> None:
        """Take the first reading: every user has joined, sending starts."""
        self._names = self._server.thread_names()
        self._readings = [self._read()]

    def _read(self) -> tuple[int, dict]:
        reading = read_thread_cpu(self._server.pid, self._names)
        return time.monotonic_ns(), reading  # the time after the reading: every thread was there until then

    def read(self, elapsed_s: float, sending_s: float) -> None:
        """The load's progress callback: from the last second of sending on, read every ``interval_s``.

        Not before: reading a thousand threads' counters takes CPU from the
        machine the server and the generator share.
        """
        if elapsed_s < sending_s - 1.0:
            return
        if self._readings and time.monotonic_ns() - self._readings[-1][0] >= self._interval_ns:
            self._readings.append(self._read())

    def used_until(self, end_ns: int | None, after_ns: int | None = None) -> tuple[dict | None, float | None]:
        """Each kind's CPU from the first reading to the kept one, and the time between them (s).

        The kept reading is the last one taken after ``after_ns`` (the last
        delivery) and before ``end_ns`` (the first leave) that still found
        every thread of the first; (None, None) if there is none.
        """
        if not self._readings:
            return None, None
        (start_ns, first) = self._readings[0]
        threads = lambda reading: sum(role["threads"] for role in reading.values())
        kept = [(taken_ns, reading) for taken_ns, reading in self._readings[1:]
                if (end_ns is None or taken_ns <= end_ns) and (after_ns is None or taken_ns >= after_ns)
                and threads(reading) >= threads(first)]
        if not kept:
            return None, None
        last_ns, last = kept[-1]
        return cpu_used_between(first, last), round((last_ns - start_ns) / 1e9, 2)


def result_row(kind: str, options: dict, result: LoadResult, counters: dict, sampler: ProcessSampler, idle_rss: int) -> dict:
    """One run as a row of results: the load's counts and latencies, and the server's memory, threads and CPU."""
    return {
        "server": kind,
        "server_options": options,
        "users": result.config.users,
        "senders": result.config.sender_count,
        "stalled_users": result.config.stalled_users,
        "offered_per_s": result.config.rate_per_s,
        "message_bytes": result.config.message_bytes,
        "alphabet": result.config.alphabet,
        "sent": result.sent,
        "unsent": result.unsent,
        "expected": result.expected,
        "delivered": result.delivered,
        "lost": result.lost,
        "duplicated": result.duplicated,
        "out_of_order": result.out_of_order,
        "garbled": result.garbled,
        "duration_s": round(result.duration_s, 4),
        "deliveries_per_s": round(result.deliveries_per_s, 1),
        "latency_ms": {key: round(value, 4) for key, value in result.latency_ms.items()},
        "send_lag_ms": {key: round(value, 4) for key, value in result.send_lag_ms.items()},
        "window_s": None if result.window_s is None else round(result.window_s, 4),
        "latency_window_ms": None if result.latency_window_ms is None else
        {key: round(value, 4) for key, value in result.latency_window_ms.items()},
        "senders_with_loss": sum(1 for counts in result.per_sender.values() if counts["lost"]),
        "senders_out_of_order": sum(1 for counts in result.per_sender.values() if counts["out_of_order"]),
        "per_sender": result.per_sender if len(result.per_sender) <= PER_SENDER_MAX else None,
        "receivers_closed": len(result.receivers_closed),
        "timed_out": result.timed_out,
        "server_left": counters.get("leaves", {}),
        "sendq_peak_bytes": counters.get("sendq_peak_bytes", 0),
        "server_rss_idle_bytes": idle_rss,
        "server_rss_peak_bytes": sampler.peak_rss_bytes,
        "server_threads_peak": max((sample.threads for sample in sampler.samples), default=0),
        "server_cpu_peak": sampler.peak_cpu_busy(),  # CPU-seconds per second over its busiest second
        "latency_samples_ms": [round(value, 3) for value in subsample(result.latency_samples_ms, KEEP_SAMPLES)],
    }


def measure_points(points: list[tuple], reps: int, step: Step | None) -> list[dict]:
    """Run ``(kind, config, label, server_options)`` points ``reps`` times, interleaved.

    Interleaving (A, B, A, B, ...) spreads the machine's noise over both
    sides of a comparison instead of giving all of it to one.
    """
    runs = []
    for rep in range(reps):
        for kind, config, label, options in points:
            suffix = f" (run {rep + 1} of {reps})" if reps > 1 else ""
            row = measure(kind, config, step, label + suffix, **options)
            row["rep"] = rep
            runs.append(row)
    return runs
