"""The load's plain data: its configuration, the groups' plans and results, the message format, the clock.

This module imports nothing else of the package: the load generator
(:mod:`chat.lab.loadgen`), the simulated users (:mod:`chat.lab.usergroup`,
:mod:`chat.lab.udpgroup`) and the blaster all read it, none of them each other.
"""

from __future__ import annotations

import functools
import time
from array import array
from dataclasses import dataclass, field

PAD_CHARS = {"ascii": "x", "cyrillic": "ю"}


@dataclass(frozen=True)
class LoadConfig:
    """One load: who connects, who sends, how much and how fast."""

    users: int = 10
    senders: int | None = None  # default: every user that is not stalled
    messages: int = 100  # per sender
    rate_per_s: float | None = None  # messages per second from all senders together; None: bursts
    burst: int = 50  # messages per burst per sender (rate_per_s=None)
    window_bursts: int = 2  # bursts a sender may have in flight (rate_per_s=None)
    message_bytes: int = 64  # size of each message's text in UTF-8
    alphabet: str = "cyrillic"  # padding letters: "cyrillic" (2 bytes each) or "ascii"
    stalled_users: int = 0  # users that register and then never read
    external_senders: int = 0  # senders outside the generator (the blaster's), `messages` each
    name_prefix: str = "u"  # no other user may have a name that starts with it (lines are counted by it)
    connect_timeout_s: float = 10.0
    drain_idle_s: float = 1.0  # after sending, stop when nothing has moved for this long
    max_duration_s: float = 60.0  # hard stop, whatever happens
    stop_when_complete: bool = True  # stop as soon as every expected line has arrived
    transport: str = "tcp"  # "udp": the users speak to a chat.udp server
    keep_send_times: bool = False  # keep each delivery's send time too, for latency within a time window

    def __post_init__(self) -> None:
        if self.sender_count > self.users - self.stalled_users or self.sender_count < 0:
            raise ValueError("senders must be at most the users that read")
        if self.rate_per_s is not None and self.rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive (or None for bursts)")
        if self.messages < 0 or self.burst < 1 or self.window_bursts < 1:
            raise ValueError("messages, burst and window_bursts must be positive")
        if self.transport not in ("tcp", "udp") or (self.transport == "udp" and self.rate_per_s is None):
            raise ValueError("transport is 'tcp' or 'udp', and UDP needs a rate (it has no flow control)")

    @property
    def sender_count(self) -> int:
        return self.users - self.stalled_users if self.senders is None else self.senders

    def expected_duration_s(self) -> float:
        """How long sending takes at the target rate (0 for bursts: as fast as it goes)."""
        if self.rate_per_s is None:
            return 0.0
        return self.messages * self.sender_count / self.rate_per_s


def now_ns() -> int:
    """The clock every timestamp uses.  CLOCK_MONOTONIC is system-wide on Linux,
    so a time taken in one process can be compared with a time taken in another."""
    return time.monotonic_ns()


def message_text(seq: int, scheduled_ns: int, size_bytes: int, alphabet: str = "cyrillic") -> str:
    """The text of a load message: ``SEQ SCHEDULED_NS PADDING``, about ``size_bytes`` in UTF-8.

    >>> message_text(7, 123, 20, "ascii")
    '7 123 xxxxxxxxxxxxxx'
    """
    head = f"{seq} {scheduled_ns} "
    return head + _padding(size_bytes, alphabet, len(head))


@functools.lru_cache(maxsize=256)
def _padding(size_bytes: int, alphabet: str, head_chars: int) -> str:
    pad = PAD_CHARS[alphabet]
    return pad * max(1, (size_bytes - head_chars) // len(pad.encode()))


def parse_message_text(text: str, size_bytes: int, alphabet: str) -> tuple[int, int] | None:
    """``(seq, scheduled_ns)`` if ``text`` is exactly a load message, else None.

    Every part is checked against what :func:`message_text` would have made,
    so a fragment of a message cut by a server that splits lines can't pass
    for a message.

    >>> parse_message_text(message_text(7, 123, 20, "ascii"), 20, "ascii")
    (7, 123)
    >>> parse_message_text("7 123 xxx", 20, "ascii") is None
    True
    """
    seq, _, rest = text.partition(" ")
    scheduled, _, padding = rest.partition(" ")
    if not (_is_number(seq) and _is_number(scheduled)):
        return None
    if padding != _padding(size_bytes, alphabet, len(seq) + len(scheduled) + 2):
        return None
    return int(seq), int(scheduled)


def _is_number(text: str) -> bool:
    """Digits as str(int) writes them: no sign, no leading zero."""
    return text.isascii() and text.isdigit() and (text[0] != "0" or text == "0")


@dataclass
class GroupPlan:
    """What one group does: the load's settings, this group's users, and which of them send."""

    address: tuple
    load: LoadConfig
    names: list[str]
    sender_slots: list[int | None]  # per user: its index among all senders, or None
    stalled: list[bool]  # per user: registers, then never reads
    sender_names: frozenset[str] = frozenset()  # every sender of this load; others' messages are foreign
    line_starts: tuple[bytes, ...] = (b"<",)  # how this load's chat lines start (a name prefix no one else uses)

    @functools.cached_property  # read for every scheduled message
    def senders_total(self) -> int:
        """Senders in the whole load, every group's and any outside the generator."""
        return self.load.sender_count + self.load.external_senders


@dataclass
class PairCount:
    """What one receiver got from one sender."""

    delivered: int = 0
    duplicated: int = 0
    out_of_order: int = 0


@dataclass
class GroupResult:
    """Everything a group measured, ready to be merged with other groups'."""

    sent: dict[str, int] = field(default_factory=dict)  # per sender
    pairs: dict[tuple[str, str], PairCount] = field(default_factory=dict)  # (receiver, sender)
    latencies_us: array = field(default_factory=lambda: array("d"))
    sent_at_ns: array = field(default_factory=lambda: array("q"))  # each latency's send time (keep_send_times only)
    send_lag_us: array = field(default_factory=lambda: array("d"))
    garbled: int = 0  # lines that were not a whole load message
    foreign: int = 0  # chat messages from users outside this load (they are not counted)
    receivers: int = 0
    receivers_closed: list[str] = field(default_factory=list)  # the server closed them
    first_delivery_ns: int = 0
    last_delivery_ns: int = 0
    timed_out: bool = False
