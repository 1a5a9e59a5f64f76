"""Every bound the server enforces, in one place, and the token bucket behind flood control.

Each limit is named with its unit, has a default that suits a classroom, and
is a command-line flag of ``python -m chat server``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from chat.protocol import MAX_LINE_BYTES

# A queue must hold at least one block of relayed lines (16 KiB, see chat/session.py) and more.
MIN_SENDQ_BYTES = 32 * 1024
MAX_SOCKET_SNDBUF_BYTES = 2**31 - 1  # SO_SNDBUF takes a C int


@dataclass(frozen=True)
class Limits:
    """The bounds of one chat server.

    >>> Limits(max_clients=3).max_clients
    3
    """

    # Connections served at once, registered or not.  One more gets an error line.
    max_clients: int = 500
    # Longest line a client may send (LF excluded).  Longer lines get an error reply.
    max_line_bytes: int = MAX_LINE_BYTES
    # Bytes waiting to be sent to one client.  A client that falls further behind
    # is disconnected as "too slow", so it can't hold the server's memory.
    sendq_bytes: int = 1 << 20
    # The kernel's send buffer for each client (SO_SNDBUF), beyond the queue above.
    # 0 leaves it to the system: Linux grows it up to net.ipv4.tcp_wmem's maximum
    # (4 MiB by default), so a client that stops reading is dropped only once that
    # fills too.  A value here bounds the kernel's share as well (Linux doubles it).
    socket_sndbuf_bytes: int = 0
    # Sustained lines per second one client may send; 0 switches flood control off.
    # Excess lines are not dropped: the reader pauses and TCP pushes back.
    rate_lines_per_s: float = 10.0
    # Lines a client may send at once before the rate applies.
    rate_burst_lines: int = 20
    # Time a new connection has to choose a valid name.
    registration_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not math.isfinite(value):
                raise ValueError(f"{field.name} must be a finite number, not {value}")
            if value < 0:
                raise ValueError(f"{field.name} can't be negative")
        if self.max_line_bytes < 64:
            raise ValueError("max_line_bytes must be at least 64")
        if self.sendq_bytes < MIN_SENDQ_BYTES or self.sendq_bytes < 4 * self.max_line_bytes:
            raise ValueError(f"sendq_bytes must hold a few lines: at least {MIN_SENDQ_BYTES} and 4 × max_line_bytes")
        if self.socket_sndbuf_bytes > MAX_SOCKET_SNDBUF_BYTES:
            raise ValueError(f"socket_sndbuf_bytes is at most {MAX_SOCKET_SNDBUF_BYTES} (a C int)")
        if self.registration_timeout_s <= 0:
            raise ValueError("registration_timeout_s must be positive")
        if self.rate_lines_per_s and self.rate_burst_lines < 1:
            raise ValueError("rate_burst_lines must be at least 1 when a rate is set")


class TokenBucket:
    """Allows ``burst`` events at once and ``rate_per_s`` on average.

    Pure: the caller passes the time, so tests need no clock.

    >>> bucket = TokenBucket(rate_per_s=10, burst=2, now=0.0)
    >>> [bucket.take(now=0.0) for _ in range(3)]  # two free, the third waits 0.1 s
    [0.0, 0.0, 0.1]
    """

    def __init__(self, rate_per_s: float, burst: int, now: float) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = float(burst)
        self._updated = now

    def take(self, now: float) -> float:
        """Spend one token; return how long to wait before acting (0.0 for at once).

        A caller that waits the returned time stays within the rate; the debt
        is recorded, so the next call accounts for it.
        """
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate_per_s)
        self._updated = now
        self._tokens -= 1.0
        if self._tokens >= 0.0:
            return 0.0
        return round(-self._tokens / self.rate_per_s, 9)

    def try_take(self, now: float) -> bool:
        """Spend one token if one is there; False (and nothing spent) if not: for what can't wait, but be dropped.

        >>> bucket = TokenBucket(rate_per_s=10, burst=2, now=0.0)
        >>> [bucket.try_take(now=0.0) for _ in range(3)], bucket.try_take(now=0.1)
        ([True, True, False], True)
        """
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate_per_s)
        self._updated = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True
