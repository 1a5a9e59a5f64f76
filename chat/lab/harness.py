"""A server under measurement, in a process of its own, and what we read about it from outside.

The load generator must not share a process (and its GIL) with the server it
measures, so benchmarks start the server with :class:`ServerProcess`.  Its
memory and thread count are read from ``/proc`` by :class:`ProcessSampler`.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import threading
import time
from dataclasses import dataclass, field

from chat.lab.loadgen import raise_file_limit

KINDS = ("ours", "naive", "blaster", "udp")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
SAMPLE_INTERVAL_S = 0.02


def _serve(kind: str, options: dict, conn) -> None:
    """Entry point of the server process: start, report the address, obey 'stats' and 'stop'."""
    raise_file_limit()
    drops_ns: list[int] = []  # when users were dropped as too slow (time.monotonic_ns: comparable across processes)
    first_leave_ns: list[int] = []  # when the first user left otherwise
    if kind == "ours":
        options = {**options, "on_event": lambda event: _note_leave(event, drops_ns, first_leave_ns)}
    server = _make_server(kind, options)
    server.start()
    conn.send(tuple(server.server_address))
    while True:
        command = conn.recv()
        if command == "threads":
            conn.send({thread.native_id: thread.name for thread in threading.enumerate()})
            continue
        if command == "stop":
            server.stop()
        conn.send({**_stats_of(server), "too_slow_drops_ns": drops_ns,
                   "first_leave_ns": first_leave_ns[0] if first_leave_ns else None})
        if command == "stop":
            return


def _note_leave(event, drops_ns: list[int], first_leave_ns: list[int]) -> None:
    from chat.protocol import LeaveReason, Left

    if isinstance(event, Left):
        if event.reason is LeaveReason.TOO_SLOW:
            drops_ns.append(time.monotonic_ns())
        elif not first_leave_ns:
            first_leave_ns.append(time.monotonic_ns())


def thread_role(name: str) -> str:
    """A thread's kind: its name without a trailing number.

    >>> thread_role("chat-reader-12"), thread_role("chat-flusher")
    ('chat-reader', 'chat-flusher')
    """
    head, _, tail = name.rpartition("-")
    return head if head and tail.isdigit() else name


def read_thread_cpu(pid: int, names: dict[int, str]) -> dict[str, dict]:
    """CPU time of a process's threads so far, added up by :func:`thread_role` (Linux).

    ``names`` maps thread ids to thread names (:meth:`ServerProcess.thread_names`);
    a thread that has ended is missing, since /proc forgets its time.  The time
    is the scheduler's exact count (``/proc/PID/task/TID/schedstat``): the
    tick-sampled ``stat`` misses most of a thread that runs in bursts shorter
    than a tick, as a reader does.  Read by hand rather than through psutil:
    psutil gives a thread's user and system times, which are tick-sampled, and
    not schedstat's count, nor the threads' names.
    """
    roles: dict[str, dict] = {}
    for tid, name in names.items():
        seconds = _thread_cpu_seconds(pid, tid)
        if seconds is None:
            continue
        role = roles.setdefault(thread_role(name), {"threads": 0, "cpu_s": 0.0})
        role["threads"] += 1
        role["cpu_s"] += seconds
    return roles


def _thread_cpu_seconds(pid: int, tid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/task/{tid}/schedstat") as schedstat:
            return int(schedstat.read().split()[0]) / 1e9  # nanoseconds on a CPU
    except (OSError, IndexError, ValueError):
        return _stat_cpu_seconds(f"/proc/{pid}/task/{tid}/stat")  # no schedstat in this kernel: tick-sampled


def cpu_used_between(before: dict[str, dict], after: dict[str, dict]) -> dict[str, dict]:
    """What each kind of thread used between two :func:`read_thread_cpu` readings."""
    return {role: {"threads": end["threads"],
                   "cpu_s": round(max(0.0, end["cpu_s"] - before.get(role, {}).get("cpu_s", 0.0)), 6)}
            for role, end in after.items()}


def _make_server(kind: str, options: dict):
    if kind == "ours":
        from chat.tcp.server import ChatServer

        return ChatServer(**options)
    if kind == "naive":
        from chat.lab.naive import NaiveServer

        return NaiveServer(**options)
    if kind == "udp":
        from chat.udp import Faults, UDPChatServer

        return UDPChatServer(**{**options, "faults": Faults(**options.get("faults", {}))})
    from chat.lab.blaster import Blaster, build_block

    users = options.pop("users")
    return Blaster(build_block(**options), users)


def _stats_of(server) -> dict:
    stats = getattr(server, "stats", None)
    if stats is None:
        return {"connections_now": len(getattr(server, "clients", ()))}
    import dataclasses

    return dataclasses.asdict(stats())


class ServerProcess:
    """``ChatServer`` ("ours"), ``NaiveServer`` ("naive"), ``Blaster`` or ``UDPChatServer`` ("udp"), in a spawned process.

    >>> with ServerProcess("ours", rate_lines_per_s=0) as server:    # doctest: +SKIP
    ...     run_load(server.address, LoadConfig(users=50))
    """

    def __init__(self, kind: str = "ours", **options) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind is one of {', '.join(KINDS)}")
        self.kind = kind
        self.options = options
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(kind, options, child), name=f"{kind}-server", daemon=True)
        self.address: tuple | None = None

    @property
    def pid(self) -> int:
        return self._process.pid

    def __enter__(self) -> ServerProcess:
        self._process.start()
        if not self._conn.poll(START_TIMEOUT_S):
            self._process.kill()
            raise RuntimeError(f"the {self.kind} server did not start")
        self.address = self._conn.recv()
        return self

    def stats(self) -> dict:
        """The server's counters now (ours), or its number of clients (naive)."""
        return self._ask("stats")

    def thread_names(self) -> dict[int, str]:
        """The server's threads now: thread id -> name."""
        return self._ask("threads")

    def _ask(self, command: str):
        self._conn.send(command)
        if not self._conn.poll(STOP_TIMEOUT_S):
            raise TimeoutError("the server did not answer")
        return self._conn.recv()

    def __exit__(self, *exc_info) -> None:
        try:
            self._conn.send("stop")
            if self._conn.poll(STOP_TIMEOUT_S):
                self._conn.recv()  # the counters at the end; stats() gave them already
        except (OSError, EOFError):
            pass
        self._process.join(STOP_TIMEOUT_S)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        self._conn.close()


def read_proc_status(pid: int) -> dict[str, int]:
    """Resident memory (bytes) and threads of a process, from /proc (Linux)."""
    values = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0]) * 1024
                elif key == "Threads":
                    values[key] = int(rest)
    except OSError:
        pass
    return values


def read_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc (0.0 if it is gone)."""
    return _stat_cpu_seconds(f"/proc/{pid}/stat") or 0.0


def _stat_cpu_seconds(path: str) -> float | None:
    """utime + stime from a /proc ``stat`` file (a process's or a thread's); None if it is gone."""
    try:
        with open(path) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # in clock ticks
    except (OSError, IndexError, ValueError):
        return None


@dataclass
class ProcessSample:
    t_s: float
    rss_bytes: int
    threads: int
    cpu_s: float = 0.0  # CPU time used so far


@dataclass
class ProcessSampler:
    """Samples a process's RSS and threads every ``interval_s`` in a background thread."""

    pid: int
    interval_s: float = SAMPLE_INTERVAL_S
    samples: list[ProcessSample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="process-sampler", daemon=True)
        self._started = time.monotonic()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _sample(self) -> None:
        status = read_proc_status(self.pid)
        if status:
            self.samples.append(ProcessSample(time.monotonic() - self._started, status.get("VmRSS", 0),
                                              status.get("Threads", 0), read_cpu_seconds(self.pid)))

    def __enter__(self) -> ProcessSampler:
        self._sample()  # the first sample is taken before anything else happens
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_rss_bytes(self) -> int:
        return max((sample.rss_bytes for sample in self.samples), default=0)

    @property
    def first_rss_bytes(self) -> int:
        return self.samples[0].rss_bytes if self.samples else 0

    def peak_cpu_busy(self, window_s: float = 1.0) -> float:
        """The most CPU the process used over any ``window_s`` (1.0 is one core busy all the time).

        One CPython process runs Python on one core at a time (the GIL), so a
        server near 1.0 is as busy as its Python code can be.
        """
        busiest, start = 0.0, 0
        for sample in self.samples:
            while sample.t_s - self.samples[start].t_s > window_s:
                start += 1
            span = sample.t_s - self.samples[start].t_s
            if span >= window_s / 2:
                busiest = max(busiest, (sample.cpu_s - self.samples[start].cpu_s) / span)
        return round(busiest, 3)


PROBE_ITERATIONS = 1_000_000
PROBE_REPEATS = 5


def speed_probe_ms() -> float:
    """How fast this machine runs Python right now: the median time of a fixed loop, in ms.

    A shared virtual machine's speed changes with its neighbours' load; each
    result records this probe, so a slow run can be told from a slow server.
    """
    times = []
    for _ in range(PROBE_REPEATS):
        started = time.perf_counter()
        total = 0
        for i in range(PROBE_ITERATIONS):
            total += i
        times.append((time.perf_counter() - started) * 1000)
    return round(sorted(times)[PROBE_REPEATS // 2], 1)


def machine_info() -> dict:
    """What the numbers were measured on, and how fast it ran Python when they were."""
    model = ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    except OSError:
        pass
    memory_gib = 0.0
    try:
        memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        pass
    return {
        "cpu": model or platform.processor(),
        "cpus": os.cpu_count(),
        "memory_gib": round(memory_gib, 1),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "probe_loop_ms": speed_probe_ms(),
    }
