"""The soak test: a long mixed load with churn, watching for loss and for leaks.

``python -m chat bench soak --seconds N`` runs, against a server with its
default limits (flood control on):

- **steady users** that send at a fixed rate, measured in consecutive windows
  (each window is one load-generator run: they connect, talk and leave);
- **churn**, one action after another from a seeded list: users who join,
  talk and quit, or vanish mid-line, or never register, or send garbage,
  overlong lines, bad names, or stop reading for a while, or stop reading for
  good while flooding themselves with private messages until the server drops
  them as too slow (the soak's server holds at most ``SOAK_SENDQ_BYTES`` per
  client, in its queue and in the kernel's send buffer, so that this takes
  seconds, not minutes).

The first third of the windows is the warm-up; memory and threads must not
grow after it.

Per window it reports the steady users' losses and latency, and the server's
RSS and threads; over the whole run, the churn actions by kind and the
server's unexpected errors.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable

from chat import protocol
from chat.lab.harness import ProcessSampler, ServerProcess, read_proc_status
from chat.lab.loadgen import LoadConfig, run_load

STEADY_USERS = 20
STEADY_RATE_PER_S = 100.0  # 5 lines/s per user, within the default flood limit of 10
CHURN_TIMEOUT_S = 5.0
CHURN_IN_FLIGHT = 1  # churn actions run one after another: at most one of their connections is open
SOAK_SENDQ_BYTES = 64 * 1024  # the soak's server: per-client queue and kernel send buffer (defaults: 1 MiB, system's)
DROP_TIMEOUT_S = 8.0  # a user who never reads is dropped as too slow well within this (about 1 s seen)
WARM_UP_SHARE = 1 / 3  # of the windows; growth is measured after it


def _connect(address: tuple, rcvbuf_bytes: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET)
    sock.settimeout(CHURN_TIMEOUT_S)
    if rcvbuf_bytes:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf_bytes)
    sock.connect(address)
    return sock


def _read_until(sock: socket.socket, wanted: Callable[[protocol.ServerEvent], bool]) -> protocol.ServerEvent:
    """Read events until one is ``wanted``; ConnectionError if the server closes first."""
    decoder = protocol.LineDecoder()
    while data := sock.recv(65536):
        for line in decoder.feed(data):
            event = protocol.parse_event(line) if isinstance(line, str) else None
            if event is not None and wanted(event):
                return event
    raise ConnectionError("the server closed the connection")


def _reply(topic: str) -> Callable[[protocol.ServerEvent], bool]:
    return lambda event: isinstance(event, protocol.Reply) and event.topic == topic


def _error(code: str) -> Callable[[protocol.ServerEvent], bool]:
    return lambda event: isinstance(event, protocol.Error) and event.code == code


def _register(address: tuple, name: str, sndbuf_bytes: int | None = None, **options) -> socket.socket:
    sock = _connect(address, **options)
    if sndbuf_bytes:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf_bytes)
    sock.sendall(protocol.encode_line(name))
    _read_until(sock, _reply("welcome"))
    return sock


def _reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# Each churn action is one misbehaving (or well-behaved) user, start to finish.

def polite(address, name, rng):
    sock = _register(address, name)
    for i in range(rng.randint(1, 3)):
        sock.sendall(protocol.encode_line(f"привет {i} от {name}"))
    sock.sendall(b"/quit bye\n")
    _read_until(sock, _reply("bye"))
    sock.close()


def vanish_mid_line(address, name, rng):
    sock = _register(address, name)
    sock.sendall("недописанная стро".encode())
    _reset(sock)


def never_register(address, name, rng):
    sock = _connect(address)
    _read_until(sock, _reply("hello"))
    sock.close()


def garbage(address, name, rng):
    sock = _register(address, name)
    sock.sendall(bytes(rng.randrange(256) for _ in range(rng.randint(1, 2000))) + b"\n")
    sock.close()


def overlong_line(address, name, rng):
    sock = _register(address, name)
    sock.sendall(b"z" * 20_000 + b"\n")
    _read_until(sock, _error(protocol.LINE_TOO_LONG))
    sock.close()


def bad_names(address, name, rng):
    sock = _connect(address)
    for bad in ("", "два слова", "\x1b[31mred", "a" * 50, "rtl\u202e"):
        sock.sendall(protocol.encode_line(bad))
        _read_until(sock, lambda event: isinstance(event, protocol.Error) and event.code.startswith("name-"))
    sock.close()


def nick_changes(address, name, rng):
    sock = _register(address, name)
    sock.sendall(protocol.encode_line(f"/nick {name}x"))
    sock.sendall(b"/who\n")
    _read_until(sock, _reply("who"))
    sock.close()


def stop_reading(address, name, rng):
    sock = _register(address, name, rcvbuf_bytes=4096)
    time.sleep(rng.uniform(0.2, 1.0))  # a user who looks away for a moment
    sock.close()


def stall_until_dropped(address, name, rng):
    """Never read, and make the server queue ever more for us: it must drop us as too slow."""
    # A small send buffer of our own: sendall() then waits for the server to read, instead of
    # filling megabytes of our kernel's memory that it would take minutes to read.
    sock = _register(address, name, rcvbuf_bytes=4096, sndbuf_bytes=16 * 1024)
    to_self = protocol.encode_line(f"/msg {name} " + "ы" * 1500)  # 3 KB back to us, twice (message and echo)
    deadline = time.monotonic() + DROP_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            sock.sendall(to_self)  # blocks while flood control holds our input back: fine
    except (BrokenPipeError, ConnectionResetError):
        return  # dropped: the server shut our connection
    finally:
        sock.close()
    raise TimeoutError(f"{name} was never dropped as too slow")


CHURN_ACTIONS: dict[str, Callable] = {
    action.__name__: action
    for action in (polite, vanish_mid_line, never_register, garbage, overlong_line, bad_names, nick_changes,
                   stop_reading, stall_until_dropped)
}


class Churn:
    """Runs churn actions one after another in a background thread until stopped."""

    def __init__(self, address: tuple, seed: int = 0) -> None:
        self.address = address
        self.rng = random.Random(seed)
        self.done: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-churn", daemon=True)

    def _run(self) -> None:
        count = 0
        while not self._stop.is_set():
            name, action = self.rng.choice(sorted(CHURN_ACTIONS.items()))
            count += 1
            try:
                action(self.address, f"ч{count}", self.rng)
                self.done[name] += 1
            except OSError:
                self.failed[name] += 1

    def __enter__(self) -> Churn:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(CHURN_TIMEOUT_S * 2)


def _wait_until_users_left(server: ServerProcess, timeout_s: float = 5.0) -> None:
    """The window's users are closing as it ends: sample threads and memory once they are gone."""
    deadline = time.monotonic() + timeout_s
    while server.stats()["connections_now"] > CHURN_IN_FLIGHT and time.monotonic() < deadline:
        time.sleep(0.05)


def run_soak(seconds: float, window_s: float = 5.0, seed: int = 0, step: Callable[[str], None] | None = None) -> dict:
    """Soak a server for about ``seconds``; return the windows and the verdicts."""
    window_s = min(window_s, seconds / 4)  # at least four windows, to see a trend
    windows_total = max(4, round(seconds / window_s))
    messages = max(1, round(STEADY_RATE_PER_S * window_s / STEADY_USERS))
    config = LoadConfig(users=STEADY_USERS, messages=messages, rate_per_s=STEADY_RATE_PER_S,
                        drain_idle_s=1.0, max_duration_s=window_s * 3 + 10)
    windows = []
    started = time.monotonic()
    with ServerProcess("ours", max_clients=200, sendq_bytes=SOAK_SENDQ_BYTES,
                       socket_sndbuf_bytes=SOAK_SENDQ_BYTES) as server, \
            ProcessSampler(server.pid, interval_s=0.1) as sampler:
        with Churn(server.address, seed) as churn:
            for index in range(windows_total):
                if step is not None:
                    step(f"soak: window {index + 1} of {windows_total}")
                result = run_load(server.address, config)
                _wait_until_users_left(server)
                status = read_proc_status(server.pid)
                windows.append({
                    "t_s": round(time.monotonic() - started, 2),
                    "expected": result.expected, "lost": result.lost, "duplicated": result.duplicated,
                    "out_of_order": result.out_of_order, "garbled": result.garbled, "foreign": result.foreign,
                    "latency_ms": {k: round(v, 4) for k, v in result.latency_ms.items()},
                    "server_rss_bytes": status.get("VmRSS", 0), "server_threads": status.get("Threads", 0),
                })
        counters = server.stats()
    return _report(seconds, window_s, windows, churn, counters, sampler)


def _report(seconds, window_s, windows, churn, counters, sampler) -> dict:
    warm_up = max(1, int(len(windows) * WARM_UP_SHARE))
    settled = windows[warm_up - 1:]  # from the last warm-up window's end
    rss = [window["server_rss_bytes"] for window in settled]
    threads = [window["server_threads"] for window in settled]
    return {
        "seconds": seconds,
        "window_s": window_s,
        "steady_users": STEADY_USERS,
        "steady_rate_per_s": STEADY_RATE_PER_S,
        "windows": windows,
        "churn_done": dict(sorted(churn.done.items())),
        "churn_failed": dict(sorted(churn.failed.items())),
        "server_errors": counters.get("errors", 0),
        "server_connections": counters.get("connections_total", 0),
        "server_leaves": counters.get("leaves", {}),
        "warm_up_windows": warm_up,
        "lost_total": sum(window["lost"] for window in windows),
        "rss_after_warm_up_bytes": {"first": rss[0], "last": rss[-1], "max": max(rss)},
        "threads_after_warm_up": {"first": threads[0], "last": threads[-1], "max": max(threads)},
        "rss_samples": [(round(s.t_s, 1), s.rss_bytes, s.threads) for s in sampler.samples[::10]],
    }
