"""The checker's simulated users: sockets to the server under test, one thread reading them all.

A :class:`Peer` keeps everything it received, decoded as it came (invalid
UTF-8 shown as U+FFFD), and notes when each message token first appeared in
it.  A :class:`Crowd` connects and registers peers in the server's
:class:`~chat.lab.checker.dialect.Dialect`, and reads every one of them from a
single thread (``check-reader``) until it is closed.  Every socket has a
timeout and every wait a deadline: a server that hangs makes a check fail,
never the checker hang.
"""

from __future__ import annotations

import codecs
import re
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable

from chat.lab.checker.dialect import Dialect

TOKEN = re.compile(r"ck(\d{2})m(\d{5})k")
TOKEN_CHARS = 11
RECV_BYTES = 65536
STALLED_RCVBUF_BYTES = 4096  # a peer that never reads also advertises a tiny window
MAX_RECEIVED_BYTES = 16 << 20  # a peer that gets more than this stops reading: a server that floods can't fill our memory
JOIN_BATCH = 16  # users connecting at once
PROMPTED_JOIN_BATCH = 4  # ... to a server that prompts for the name, often one at a time in its accept loop:
# below the smallest listen backlog seen in submissions (5)
CONNECT_HINT = ("accept every connection at once and register it in its own thread: a user who is slow to give "
                "a name must not keep the others from connecting")


def token(sender: int, seq: int) -> str:
    """The unique mark of one message: ``ck`` sender ``m`` sequence ``k``.

    >>> token(3, 17)
    'ck03m00017k'
    """
    return f"ck{sender:02d}m{seq:05d}k"


class CheckFailed(Exception):
    """The server did something that fails the check outright (refused a user, closed on it, ...)."""

    def __init__(self, evidence: str, hint: str = "take the name as it is sent (see --name and --prompt) and keep "
                                                  "the user connected") -> None:
        super().__init__(evidence)
        self.hint = hint


class Peer:
    """One simulated user of the server under test."""

    def __init__(self, index: int, name: str, address: tuple, dialect: Dialect, timeout_s: float,
                 stalled: bool = False) -> None:
        self.index, self.name, self.dialect, self.stalled = index, name, dialect, stalled
        self.sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET)
        if stalled:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RCVBUF_BYTES)
        self.sock.settimeout(timeout_s)
        try:
            self.sock.connect(address)
        except OSError:
            self.sock.close()
            raise
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # our own sends are never delayed
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pieces: list[str] = []  # everything received, decoded, chunk by chunk (joined on demand)
        self._joined = ""
        self._joined_pieces = 0
        self._length = 0
        self._tail = ""  # the last characters: a token cut between two chunks is found whole
        self.received_bytes = 0
        self.seen: dict[str, float] = {}  # token -> when it first arrived (time.monotonic())
        self.closed = False  # the server closed this connection (EOF or reset), or flooded it
        self.flooded = False  # the server sent more than MAX_RECEIVED_BYTES: no longer read
        self.send_failed = False
        self.name_sent_at: int | None = None  # len(text) when the name went out
        self.next_seq = 0

    def __repr__(self) -> str:
        return f"<Peer {self.name}>"

    # -- sending ----------------------------------------------------------------------------------

    def send(self, data: bytes) -> bool:
        """Send all of ``data`` within the socket's timeout; False if the server would not take it."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            self.send_failed = True
            return False

    def message(self, words: str = "", seq: int | None = None) -> tuple[str, str]:
        """``(token, text)`` for this peer's next message: the token, then ``words``."""
        if seq is None:
            seq = self.next_seq
            self.next_seq += 1
        mark = token(self.index, seq)
        return mark, f"{mark} {words}".rstrip()

    def say(self, text: str) -> bool:
        return self.send(self.dialect.message(self.name, text))

    def reset(self) -> None:
        """Vanish with a reset (RST), as a crashed or unplugged client does."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    # -- what arrived -----------------------------------------------------------------------------

    def feed(self, data: bytes, now: float) -> None:
        """Called by the reader thread with each chunk received (``b""`` once the server closed)."""
        if not data:
            self._append(self._decoder.decode(b"", final=True))
            self.closed = True
            return
        self.received_bytes += len(data)
        if self.received_bytes > MAX_RECEIVED_BYTES:
            self.flooded = self.closed = True
            return
        piece = self._decoder.decode(data)
        for match in TOKEN.finditer(self._tail + piece):
            self.seen.setdefault(match[0], now)
        self._append(piece)

    def _append(self, piece: str) -> None:
        if piece:
            self._pieces.append(piece)
            self._length += len(piece)
            self._tail = (self._tail + piece)[-TOKEN_CHARS:]

    @property
    def text(self) -> str:
        """Everything received so far, decoded (invalid UTF-8 as U+FFFD)."""
        if self._joined_pieces != len(self._pieces):
            self._joined = "".join(self._pieces)
            self._pieces = [self._joined]
            self._joined_pieces = 1
        return self._joined

    @property
    def length(self) -> int:
        """``len(self.text)``, without joining."""
        return self._length

    def lines(self) -> list[str]:
        """Every line received so far (the last one perhaps incomplete), without CR."""
        return [line.removesuffix("\r") for line in self.text.split("\n")]

    def lines_with(self, text: str) -> list[str]:
        return [line for line in self.lines() if text in line]

    def since_name(self) -> str:
        return self.text[self.name_sent_at or 0:]

    def close(self) -> None:
        self.sock.close()


class Crowd:
    """Peers on one server, read by one thread; a context manager that closes them all."""

    def __init__(self, address: tuple, dialect: Dialect, timeout_s: float = 5.0, suffix: str = "") -> None:
        self.address, self.dialect, self.timeout_s = address, dialect, timeout_s
        self.suffix = suffix  # added to every name: a crowd's names are its own, whatever the server still remembers
        self.peers: list[Peer] = []
        self._changed = threading.Condition()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._stopping = False
        self._thread = threading.Thread(target=self._read_all, name="check-reader", daemon=True)
        self._thread.start()

    def __enter__(self) -> Crowd:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- joining ----------------------------------------------------------------------------------

    def connect(self, names: Iterable[str], first_index: int = 0, stalled: bool = False) -> list[Peer]:
        """Open a connection for each name (not yet registered); each name gets the crowd's suffix."""
        peers = []
        for offset, stem in enumerate(names):
            name = f"{stem}{self.suffix}"
            try:
                peer = Peer(first_index + offset, name, self.address, self.dialect, self.timeout_s, stalled)
            except OSError as exc:
                raise CheckFailed(f"could not connect user {name}: {exc}", CONNECT_HINT) from exc
            with self._changed:
                self.peers.append(peer)
            if not stalled:
                self._selector.register(peer.sock, selectors.EVENT_READ, peer)
                self._wake()
            peers.append(peer)
        return peers

    def join(self, names: Iterable[str], first_index: int = 0, stalled: bool = False) -> list[Peer]:
        """Connect and register users, a few at a time; CheckFailed if the server refuses or closes on one.

        A few at a time, as people arrive: a server that prompts for names one
        by one in its accept loop, with a small listen backlog, would leave the
        rest of a crowd arriving at once unanswered.
        """
        names, peers = list(names), []
        batch = PROMPTED_JOIN_BATCH if self.dialect.prompt else JOIN_BATCH
        for start in range(0, len(names), batch):
            group = self.connect(names[start : start + batch], first_index + start, stalled)
            self.register(group)
            peers += group
        return peers

    def register(self, peers: list[Peer]) -> None:
        """Send each peer's name (after its prompt, if the dialect waits for one), then let the server settle."""
        deadline = time.monotonic() + self.timeout_s
        pending = list(peers)
        while pending:
            if self.dialect.prompt:
                waiting = [peer for peer in pending if not peer.stalled]
                if waiting and not self.wait(lambda: any(p.received_bytes or p.closed for p in waiting),
                                             deadline - time.monotonic()):
                    raise CheckFailed(f"no prompt from the server for {waiting[0].name} within {self.timeout_s:g} s")
                ready = [peer for peer in pending if peer.stalled or peer.received_bytes or peer.closed]
                if any(peer.stalled for peer in ready):
                    time.sleep(self.dialect.settle_s)  # a stalled peer is not read: give its prompt time to come
            else:
                ready = pending
            for peer in ready:
                self._check_open(peer, "before it could give its name")
                with self._changed:
                    peer.name_sent_at = peer.length
                if not peer.send(self.dialect.name(peer.name)):
                    raise CheckFailed(f"the server did not take {peer.name}'s name")
                pending.remove(peer)
        readers = [peer for peer in peers if not peer.stalled]
        self.wait(lambda: all(p.length > (p.name_sent_at or 0) or p.closed for p in readers), self.dialect.settle_s)
        time.sleep(0.05)  # the rest of a welcome, or the server reading the name before anything follows it
        for peer in readers:
            self._check_open(peer, "while registering")

    def _check_open(self, peer: Peer, when: str) -> None:
        if peer.closed:
            said = " ".join(peer.since_name().split())[:120] or peer.text.strip()[:120]
            raise CheckFailed(f"the server closed {peer.name}'s connection {when}" + (f"; it said {said!r}" if said else ""))

    # -- waiting ----------------------------------------------------------------------------------

    def wait(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Wait until ``predicate()`` holds (checked whenever something arrives); False at the deadline."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.1))
            return True

    def wait_for_tokens(self, expected: dict[Peer, set[str]], timeout_s: float, idle_s: float | None = None) -> bool:
        """Wait until every peer has seen every token expected of it (or was closed).

        With ``idle_s``, give up sooner if nothing at all arrives for that long:
        what is missing then is not on its way.
        """
        pending = dict(expected)
        progress = {"bytes": -1, "at": time.monotonic()}

        def all_seen() -> bool:
            for peer, tokens in list(pending.items()):
                if peer.closed or (len(peer.seen) >= len(tokens) and tokens <= peer.seen.keys()):
                    del pending[peer]
            if not pending or idle_s is None:
                return not pending
            received = sum(peer.received_bytes for peer in pending)
            now = time.monotonic()
            if received != progress["bytes"]:
                progress.update(bytes=received, at=now)
            return now - progress["at"] > idle_s

        return self.wait(all_seen, timeout_s) and not pending

    def quiet(self, seconds: float) -> None:
        """Let late lines arrive."""
        time.sleep(seconds)

    # -- the reader thread ------------------------------------------------------------------------------

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def _read_all(self) -> None:
        while not self._stopping:
            for key, _ in self._selector.select(0.2):
                peer = key.data
                if peer is None:
                    self._wake_r.recv(4096)
                    continue
                try:
                    data = peer.sock.recv(RECV_BYTES)
                except (BlockingIOError, TimeoutError):
                    continue
                except OSError:
                    data = b""
                with self._changed:
                    peer.feed(data, time.monotonic())
                    self._changed.notify_all()
                if peer.closed:
                    self._unregister(peer)

    def _unregister(self, peer: Peer) -> None:
        try:
            self._selector.unregister(peer.sock)
        except (KeyError, ValueError, OSError):
            pass

    def leave(self, peer: Peer) -> None:
        """Close one peer politely (FIN), as a user who quits the program does."""
        self._unregister(peer)
        self._wake()
        peer.close()

    def vanish(self, peer: Peer) -> None:
        """Close one peer with a reset (RST), as a crashed or unplugged client does."""
        self._unregister(peer)
        self._wake()
        peer.reset()

    def close(self) -> None:
        """Stop reading and close every connection; the reader thread is joined."""
        self._stopping = True
        self._wake()
        self._thread.join(5.0)
        for peer in self.peers:
            peer.close()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
