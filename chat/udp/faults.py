"""Fault injection for the UDP server's experiments: dropped, delayed and reordered datagrams.

The server draws every choice from a generator seeded with :attr:`Faults.seed`,
so a lossy run can be repeated exactly; delayed datagrams go out from a
thread of their own (:class:`Delayer`), so a delay never holds up the server.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Faults:
    """What the server does to the messages it relays, for experiments.

    ``drop``: the probability that a relayed message is not sent.
    ``delay_s`` + a uniform random ``0..jitter_s``: how late it is sent
    (jitter reorders).  ``seed`` makes the random choices repeatable.
    """

    drop: float = 0.0
    delay_s: float = 0.0
    jitter_s: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.drop <= 1.0:
            raise ValueError("drop is a probability, between 0 and 1")
        if self.delay_s < 0 or self.jitter_s < 0:
            raise ValueError("delay and jitter can't be negative")

    @property
    def has_delay(self) -> bool:
        return self.delay_s > 0 or self.jitter_s > 0



class Delayer:
    """Sends datagrams later (injected delay and jitter), from a thread of its own."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._queue: list[tuple[float, int, bytes, tuple]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="udp-delay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def send_later(self, payload: bytes, address: tuple, delay_s: float) -> None:
        with self._changed:
            heapq.heappush(self._queue, (time.monotonic() + delay_s, next(self._order), payload, address))
            self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._stopping and (not self._queue or self._queue[0][0] > time.monotonic()):
                    self._changed.wait(self._queue[0][0] - time.monotonic() if self._queue else None)
                if self._stopping:
                    return
                _, _, payload, address = heapq.heappop(self._queue)
            try:
                self._sock.sendto(payload, address)
            except OSError:
                pass

    def stop(self, timeout_s: float) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
