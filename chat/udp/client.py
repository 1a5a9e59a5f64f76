"""The UDP chat client: one datagram per line, a receive thread that also sends the heartbeats.

The same API as :class:`chat.client.ChatClient` (``connect``, ``say``,
``who``, ``wait_for``, ...), plus :meth:`UDPChatClient.sequence_stats`: per
sender, how many numbered messages arrived and how many are missing,
duplicated or out of order.  See :mod:`chat.udp` for the server.
"""

from __future__ import annotations

import itertools
import secrets
import selectors
import socket
import threading
import time

from chat import protocol
from chat.clientbase import ClientBase, Disconnected, NameRefused, check_line, stop_thread
from chat.protocol import Action, ChatMessage, Error, Reply, SequenceTracker, ServerClosing

HEARTBEAT_S = 5.0  # a client pings this often; well under the server's member timeout (30 s)
DEAD_AFTER_HEARTBEATS = 3  # a client that hears nothing for this many heartbeats gives up
JOIN_ATTEMPTS = 3  # /join is resent if no answer comes: datagrams get lost
RECV_BYTES = 65536  # the largest datagram


class UDPChatClient(ClientBase):
    """One chat user over UDP, with the same API as :class:`chat.client.ChatClient`.

    One thread receives (as the assignment asks) and sends the heartbeats.
    ``sequence_stats()`` tells, per sender, how many messages arrived, how
    many are missing (gaps in the numbering), duplicated or out of order.
    """

    def __init__(self, *, heartbeat_s: float = HEARTBEAT_S, **options) -> None:
        super().__init__(**options)
        self.heartbeat_s = heartbeat_s
        self._sock: socket.socket | None = None
        self._receiver: threading.Thread | None = None
        self._closing = False
        self._seq = itertools.count()
        self._trackers: dict[str, SequenceTracker] = {}
        self._last_sent = self._last_heard = time.monotonic()
        self._send_lock = threading.Lock()
        # Sent in every datagram from the /join on: the server ignores datagrams from our address without it.
        self._token = secrets.token_hex(protocol.TOKEN_HEX_DIGITS // 2)

    def open(self, address: tuple) -> UDPChatClient:
        """Point the socket at the server and start receiving (UDP has nothing to connect)."""
        self._sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.connect(address)  # a connected UDP socket hears only the server
        self._sock.setblocking(False)
        self._wake_r, self._wake_w = socket.socketpair()  # close() wakes the receive thread with it
        self._last_heard = time.monotonic()
        self._receiver = threading.Thread(target=self._receive, name="udp-client", daemon=True)
        self._receiver.start()
        return self

    def register(self, name: str) -> str:
        """Join as ``name``; the join is resent if no answer comes.  Raises :class:`NameRefused`."""
        for _ in range(JOIN_ATTEMPTS):
            self.send(f"/join {name}")
            try:
                event = self.wait_for(lambda e: (isinstance(e, Reply) and e.topic == "welcome")
                                      or isinstance(e, Error), self.timeout_s / JOIN_ATTEMPTS)
            except TimeoutError:
                continue
            if isinstance(event, Error) and event.code in (protocol.NAME_INVALID, protocol.NAME_TAKEN):
                raise NameRefused(event)
            if isinstance(event, Error):
                raise ConnectionError(f"joining failed: {protocol.format_event(event)}")
            if not protocol.welcome_name(event).strip():
                raise ConnectionError(f"joining failed: the server's welcome names nobody: {protocol.format_event(event)!r}")
            self.name = protocol.welcome_name(event)
            self._receiver.name = f"udp-client-{self.name}"
            return self.name
        raise TimeoutError(f"no answer from the UDP server at {self._sock.getpeername()}")

    def _is_open(self) -> bool:
        return self._sock is not None

    @property
    def local_address(self) -> tuple | None:
        """The address our datagrams come from (None before ``open``)."""
        return self._sock.getsockname()[:2] if self._sock is not None else None

    # -- receiving and heartbeats ---------------------------------------------------------------------

    def _receive(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._sock, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            reason = None
            while reason is None and not self._closing:
                selector.select(self._until_heartbeat_s())
                reason = self._receive_waiting() or self._heartbeat()
        self._file(Disconnected(reason or "closed by us"))

    def _receive_waiting(self) -> str | None:
        """File every datagram waiting; a reason to stop, or None."""
        while not self._closing:
            try:
                data = self._sock.recv(RECV_BYTES)
            except BlockingIOError:
                return None
            except OSError as exc:  # e.g. ECONNREFUSED: nobody listens at the server's port
                return f"the server can't be reached ({exc.strerror or exc})"
            self._last_heard = time.monotonic()
            if isinstance(self._accept(data), ServerClosing):
                return "the server is shutting down"
        return None

    def _until_heartbeat_s(self) -> float:
        return max(0.0, self._last_sent + self.heartbeat_s - time.monotonic())

    def _accept(self, data: bytes) -> protocol.ServerEvent:
        seq, line = protocol.decode_datagram(data)
        event = protocol.parse_event(line)
        if seq is not None and isinstance(event, (ChatMessage, Action)):
            self._trackers.setdefault(event.sender, SequenceTracker()).record(seq)
        if not (isinstance(event, Reply) and event.topic == "pong"):  # the answer to our own heartbeat: not news
            self._file(event)
        return event

    def _heartbeat(self) -> str | None:
        """Ping when due; a reason to stop if the server has been silent too long (it answers pings)."""
        now = time.monotonic()
        if now - self._last_sent >= self.heartbeat_s:
            try:
                self.send("/ping")
            except OSError:
                pass
        if now - self._last_heard > self.heartbeat_s * DEAD_AFTER_HEARTBEATS:
            return "no answer from the server"
        return None

    def sequence_stats(self) -> dict[str, dict[str, int]]:
        """Per sender: messages received, missing (gaps), duplicated, out of order."""
        return {
            sender: {"received": t.received, "missing": t.missing(), "duplicated": t.duplicated,
                     "out_of_order": t.out_of_order}
            for sender, t in sorted(self._trackers.items())
        }

    # -- sending ------------------------------------------------------------------------------------------------

    def send(self, line: str, seq: int | None = None, timeout_s: float | None = None) -> None:
        """Send one raw line as one datagram (numbered if ``seq`` is given); a datagram never waits (``timeout_s``: unused)."""
        check_line(line)
        if self._sock is None:
            raise ConnectionError("not open")
        with self._send_lock:
            try:
                self._sock.send(protocol.encode_datagram(line, seq, token=self._token))
            except BlockingIOError:
                pass  # the socket's buffer is full: like any datagram, this one is lost
            self._last_sent = time.monotonic()

    def say(self, text: str) -> None:
        """Send a numbered chat message to everybody else."""
        self.send(protocol.format_command(protocol.Say(text)), next(self._seq))

    def me(self, text: str) -> None:
        self.send(protocol.format_command(protocol.Me(text)), next(self._seq))

    def who(self, timeout_s: float | None = None) -> list[str]:
        reply = self._request("/who", "who", timeout_s, attempts=JOIN_ATTEMPTS)
        return protocol.who_names(reply)

    def quit(self, reason: str = "") -> None:
        """Leave (the /quit is resent if the goodbye does not come back) and close."""
        if self._sock is not None and self.name is not None and self._disconnected is None:
            try:
                self._request(protocol.format_command(protocol.Quit(reason)), "bye", self.timeout_s, attempts=JOIN_ATTEMPTS)
            except (OSError, TimeoutError):
                pass
        self.close()

    def close(self) -> None:
        """Stop the receive thread, then close the socket (never under a running thread)."""
        if self._sock is None or self._closing:
            return
        self._closing = True
        self._wake_w.send(b"x")  # ends the receive thread's wait at once
        if stop_thread(self._receiver, self.timeout_s):
            for sock in (self._sock, self._wake_r, self._wake_w):
                sock.close()
        self._file(Disconnected("closed by us"))


def connect(address: tuple, name: str, **options) -> UDPChatClient:
    """Shorthand for ``UDPChatClient(**options).connect(address, name)``."""
    return UDPChatClient(**options).connect(address, name)
