"""Datagrams (UDP): one line each, perhaps numbered, and the counting of numbers at a receiver.

A client's datagram may start with its token, ``~`` and 32 hex digits, which
it chose at ``/join`` and repeats in every datagram: the server then ignores
datagrams from that member's address without it, so nobody who can't see the
traffic can speak for the member by forging its source address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chat.protocol.commands import Command, parse_command
from chat.protocol.framing import ENCODING

MAX_DATAGRAM_BYTES = 1200  # below a typical path MTU (1280 for IPv6), so nothing is fragmented
_SEQUENCE = re.compile(r"#(\d{1,18}) ")
TOKEN_HEX_DIGITS = 32  # 128 random bits
_TOKEN = re.compile(rf"~([0-9a-f]{{{TOKEN_HEX_DIGITS}}}) ")


@dataclass(frozen=True, slots=True)
class Join:
    name: str


@dataclass(frozen=True, slots=True)
class Ping:
    pass


def encode_datagram(line: str, seq: int | None = None, token: str | None = None) -> bytes:
    """One line as a datagram, numbered if ``seq`` is given, ending in a line break (``nc -u`` shows a line each).

    A client passes its ``token`` (see :func:`decode_client_datagram`).

    >>> encode_datagram("<bob> hi", 7)
    b'#7 <bob> hi\\n'
    """
    numbered = line if seq is None else f"#{seq} {line}"
    return (numbered if token is None else f"~{token} {numbered}").encode(ENCODING) + b"\n"


@dataclass(frozen=True, slots=True)
class ClientDatagram:
    token: str | None  # the sender's token, if it sent one
    seq: int | None
    line: str


def decode_client_datagram(data: bytes) -> ClientDatagram:
    """A datagram a client sent: its token (if any), its number (if any), its line.

    >>> decode_client_datagram(("~" + "0" * 32 + " #7 привет\\n").encode())
    ClientDatagram(token='00000000000000000000000000000000', seq=7, line='привет')
    """
    seq, text = decode_datagram(data)
    token = None
    if seq is None and (match := _TOKEN.match(text)) is not None:
        token, (seq, text) = match[1], _numbered(text[match.end():])
    return ClientDatagram(token, seq, text)


def decode_datagram(data: bytes) -> tuple[int | None, str]:
    """``(seq or None, line)`` from a datagram; a trailing line break (``nc -u``) is dropped.

    >>> decode_datagram("#7 привет\\n".encode())
    (7, 'привет')
    """
    text = data.decode(ENCODING, "replace")
    if text.endswith("\n"):
        text = text[:-2] if text.endswith("\r\n") else text[:-1]
    return _numbered(text)


def _numbered(text: str) -> tuple[int | None, str]:
    match = _SEQUENCE.match(text)
    if match is None:
        return None, text
    return int(match[1]), text[match.end():]


def parse_datagram_command(line: str) -> Command | Join | Ping:
    """Like :func:`parse_command`, plus the UDP-only ``/join NAME`` and ``/ping``."""
    word, _, rest = line.partition(" ")
    verb = word.lower()
    if verb == "/join":
        return Join(rest)  # an empty or bad name is refused like any other
    if verb == "/ping":
        return Ping()
    return parse_command(line)

class SequenceTracker:
    """Counts one sender's sequence numbers as they arrive at one receiver.

    >>> tracker = SequenceTracker()
    >>> [tracker.record(seq) for seq in (0, 1, 3, 2, 3)]
    [True, True, True, True, False]
    >>> tracker.received, tracker.duplicated, tracker.out_of_order, tracker.missing()
    (4, 1, 1, 0)
    """

    __slots__ = ("seen", "highest", "lowest", "received", "duplicated", "out_of_order")

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.highest = -1
        self.lowest: int | None = None
        self.received = 0
        self.duplicated = 0
        self.out_of_order = 0

    def record(self, seq: int) -> bool:
        """Count one arrival; True if it is the first time this number arrived."""
        if seq in self.seen:
            self.duplicated += 1
            return False
        self.seen.add(seq)
        self.received += 1
        if self.lowest is None or seq < self.lowest:
            self.lowest = seq
        if seq < self.highest:
            self.out_of_order += 1
        else:
            self.highest = seq
        return True

    def missing(self) -> int:
        """Numbers not (yet) arrived between the lowest and the highest seen: the gaps."""
        if self.lowest is None:
            return 0
        return self.highest - self.lowest + 1 - self.received
