"""A TCP chat client for programs and notebooks: a socket, a receive thread and a queue of events.

>>> from chat import ChatServer, ChatClient, ChatMessage              # doctest: +SKIP
>>> with ChatServer() as server, \\
...      ChatClient().connect(server.server_address, "Алиса") as alice, \\
...      ChatClient().connect(server.server_address, "bob") as bob:
...     alice.say("привет")
...     bob.wait_for(ChatMessage)
ChatMessage(sender='Алиса', text='привет')
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time

from chat import protocol
from chat.clientbase import (
    DEFAULT_KEEP_BYTES,
    DEFAULT_KEEP_EVENTS,
    DEFAULT_TIMEOUT_S,
    ClientBase,
    ClientEvent,
    Disconnected,
    NameRefused,
    check_line,
    stop_thread,
)
from chat.protocol import Error, Reply

__all__ = ["ChatClient", "ClientEvent", "Disconnected", "NameRefused", "connect",
           "DEFAULT_KEEP_BYTES", "DEFAULT_KEEP_EVENTS", "DEFAULT_TIMEOUT_S"]

log = logging.getLogger(__name__)

RECV_BYTES = 64 * 1024
# Server lines are longer than client lines (a name and a prefix are added, and
# /who lists everybody), so the client accepts far more than the server does.
MAX_SERVER_LINE_BYTES = 1 << 20


class LineNotSent(TimeoutError):
    """A send gave up before any byte of its line left (its ``timeout_s`` passed): the connection is intact."""


class ChatClient(ClientBase):
    """One chat user over TCP.

    Methods for the caller:

    - ``connect(address, name)``: open and register; raises :class:`NameRefused`.
      Or ``open(address)`` then ``register(name)``, which may be retried.
    - ``say``, ``me``, ``msg``, ``nick``, ``who``, ``help``, ``quit``, or ``send``
      for a raw line.
    - ``next_event(timeout_s)``, ``wait_for(match, timeout_s)``, ``drain()``:
      events in order of arrival.  ``transcript`` keeps the latest events
      (``keep_events`` of them, ``keep_bytes`` of text at most; older ones are
      forgotten, and unread events too are bounded so).
    - ``close()``; or use the client as a context manager.

    ``on_event``, if given, is called with each event from the receive thread.
    """

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self._send_lock = threading.Lock()
        self._decoder = protocol.LineDecoder(MAX_SERVER_LINE_BYTES)
        self._sock: socket.socket | None = None
        self._receiver: threading.Thread | None = None
        self._closing = False
        self._sending_closed = False  # after a half-close: `connected` is False from then on

    # -- connecting -------------------------------------------------------------------------

    def open(self, address: tuple) -> ChatClient:
        """Connect to the server without registering yet."""
        self._sock = socket.create_connection(address, timeout=self.timeout_s)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self

    def register(self, name: str) -> str:
        """Send ``name`` and wait for the verdict; raises :class:`NameRefused`.

        On success the receive thread starts and the registered name (as the
        server normalised it) is returned.
        """
        self.send(name)
        deadline = time.monotonic() + self.timeout_s
        while True:
            event = self._read_one(deadline)
            if isinstance(event, Reply) and event.topic == "welcome":
                if not protocol.welcome_name(event).strip():
                    raise ConnectionError(f"registration failed: the server's welcome names nobody: {protocol.format_event(event)!r}")
                self.name = protocol.welcome_name(event)
                self._receiver = threading.Thread(target=self._receive, name=f"chat-client-{self.name}", daemon=True)
                self._receiver.start()
                return self.name
            if isinstance(event, Error) and event.code in (protocol.NAME_INVALID, protocol.NAME_TAKEN):
                raise NameRefused(event)
            if isinstance(event, Error):
                raise ConnectionError(f"registration failed: {protocol.format_event(event)}")
            if isinstance(event, Disconnected):
                raise ConnectionError(f"registration failed: {event.reason}")

    def _read_one(self, deadline: float) -> ClientEvent:
        """Before the receive thread runs: read until one event is available."""
        while not self._unread:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no answer from the server")
            self._sock.settimeout(remaining)
            try:
                data = self._sock.recv(RECV_BYTES)
            finally:
                self._sock.settimeout(self.timeout_s)
            self._accept(data)
        with self._arrived:
            return self._unread.popleft()

    # -- receiving ------------------------------------------------------------------------------

    def _receive(self) -> None:
        while self._disconnected is None:
            try:
                data = self._sock.recv(RECV_BYTES)
            except TimeoutError:
                continue  # idle; the timeout only bounds sends
            except OSError as exc:
                data = b""
                if not self._closing:
                    log.debug("%r: receive failed: %s", self, exc)
            self._accept(data)

    def _accept(self, data: bytes) -> None:
        """Parse received bytes (b"" means the connection ended) and file the events."""
        if not data:
            if not self._closing:
                self._half_close()  # the server said all it had to say: so do we
            self._file(Disconnected("closed by us" if self._closing else "the server closed the connection"))
            return
        for line in self._decoder.feed(data):
            if isinstance(line, protocol.LineTooLong):
                self._file(protocol.Unparsed(f"(a line over {line.limit_bytes} bytes was discarded)"))
            else:
                self._file(protocol.parse_event(line))

    def _half_close(self) -> None:
        """Send nothing more; the server reads EOF and ends the connection."""
        self._sending_closed = True
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _is_open(self) -> bool:
        return self._sock is not None and not self._sending_closed

    # -- sending and closing ------------------------------------------------------------------------

    def send(self, line: str, timeout_s: float | None = None) -> None:
        """Send one raw line (a name, a message or a command), whole.

        While the server takes nothing, it waits (TCP pushes back).  With
        ``timeout_s``, it raises TimeoutError if not a byte of the line could
        leave in that time; the connection is untouched.  Once part of a line
        has left, the rest follows, however long that takes: a line is never cut.
        """
        check_line(line)
        if self._sock is None:
            raise ConnectionError("not connected")
        encoded = protocol.encode_line(line)
        data = memoryview(encoded)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._send_lock:
            try:
                while data:
                    may_give_up = deadline is not None and len(data) == len(encoded)  # nothing of it sent yet
                    if may_give_up and time.monotonic() >= deadline:
                        raise LineNotSent(f"the server took nothing for {timeout_s:g} s; the line was not sent")
                    if self._disconnected is not None:
                        raise ConnectionError("the connection has ended")
                    wait = min(self.timeout_s, max(0.0, deadline - time.monotonic())) if may_give_up else self.timeout_s
                    if select.select((), (self._sock,), (), wait)[1]:
                        with contextlib.suppress(TimeoutError):  # taken by nothing after all: wait again
                            data = data[self._sock.send(data):]
            except LineNotSent:
                raise  # nothing of the line left: the connection is as it was
            except OSError:
                # The connection failed with part of the line perhaps sent: it is spoiled, so it ends here.
                self._half_close()
                raise

    def quit(self, reason: str = "") -> None:
        """Leave with a reason others will see, wait for the server to close, and close."""
        try:
            self.send(protocol.format_command(protocol.Quit(reason)), timeout_s=self.timeout_s)
            if self._receiver is not None:
                self._receiver.join(self.timeout_s)
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        """Close the connection and join the receive thread."""
        if self._sock is None:
            return
        self._closing = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if stop_thread(self._receiver, self.timeout_s):
            self._sock.close()
        self._file(Disconnected("closed by us"))


def connect(address: tuple, name: str, **options) -> ChatClient:
    """Shorthand for ``ChatClient(**options).connect(address, name)``."""
    return ChatClient(**options).connect(address, name)
