"""A chat client for programs and notebooks: a socket, a receive thread and a queue of events.

>>> from chat import ChatServer, ChatClient                       # doctest: +SKIP
>>> with ChatServer() as server, \\
...      ChatClient().connect(server.server_address, "Алиса") as alice, \\
...      ChatClient().connect(server.server_address, "bob") as bob:
...     alice.say("привет")
...     bob.wait_for(ChatMessage)
ChatMessage(sender='Алиса', text='привет')
"""

from __future__ import annotations

import collections
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from chat import protocol
from chat.protocol import ChatMessage, Error, Renamed, Reply

log = logging.getLogger(__name__)

RECV_BYTES = 64 * 1024
# Server lines are longer than client lines (a name and a prefix are added, and
# /who lists everybody), so the client accepts far more than the server does.
MAX_SERVER_LINE_BYTES = 1 << 20
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_KEEP_EVENTS = 100_000  # events remembered per client; older ones are forgotten


class NameRefused(Exception):
    """The server refused the name; ``code`` is ``name-invalid`` or ``name-taken``."""

    def __init__(self, error: Error) -> None:
        super().__init__(f"{error.code}: {error.text}")
        self.code = error.code
        self.text = error.text


@dataclass(frozen=True, slots=True)
class Disconnected:
    """Not a line from the server: the connection ended; ``reason`` says how."""

    reason: str


ClientEvent = protocol.ServerEvent | Disconnected
Match = type | tuple[type, ...] | Callable[[ClientEvent], bool]


def _matcher(match: Match) -> Callable[[ClientEvent], bool]:
    if isinstance(match, (type, tuple)):
        return lambda event: isinstance(event, match)
    return match


class ChatClient:
    """One chat user.

    Methods for the caller:

    - ``connect(address, name)``: open and register; raises :class:`NameRefused`.
      Or ``open(address)`` then ``register(name)``, which may be retried.
    - ``say``, ``me``, ``msg``, ``nick``, ``who``, ``help``, ``quit``, or ``send``
      for a raw line.
    - ``next_event(timeout_s)``, ``wait_for(match, timeout_s)``, ``drain()``:
      events in order of arrival.  ``transcript`` keeps every event.
    - ``close()``; or use the client as a context manager.

    ``on_event``, if given, is called with each event from the receive thread.
    """

    def __init__(
        self,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        on_event: Callable[[ClientEvent], None] | None = None,
        keep_events: int = DEFAULT_KEEP_EVENTS,
    ) -> None:
        self.timeout_s = timeout_s
        self.on_event = on_event
        self.name: str | None = None
        self.transcript: collections.deque[ClientEvent] = collections.deque(maxlen=keep_events)
        self._unread: collections.deque[ClientEvent] = collections.deque(maxlen=keep_events)
        self._arrived = threading.Condition()
        self._send_lock = threading.Lock()
        self._decoder = protocol.LineDecoder(MAX_SERVER_LINE_BYTES)
        self._sock: socket.socket | None = None
        self._receiver: threading.Thread | None = None
        self._closing = False
        self._disconnected: Disconnected | None = None
        self._replies: dict[str, list[Reply]] = {}

    def __repr__(self) -> str:
        return f"<ChatClient {self.name or '(unregistered)'}>"

    # -- connecting -------------------------------------------------------------

    def connect(self, address: tuple, name: str) -> ChatClient:
        """Open a connection and register ``name``; returns the client."""
        self.open(address)
        try:
            self.register(name)
        except BaseException:
            self.close()
            raise
        return self

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
                self.name = event.text.partition(",")[0]
                self._start_receiver()
                return self.name
            if isinstance(event, Error) and event.code in (protocol.NAME_INVALID, protocol.NAME_TAKEN):
                raise NameRefused(event)
            if isinstance(event, (Error, Disconnected)):
                raise ConnectionError(f"registration failed: {protocol.format_event(event) if isinstance(event, Error) else event.reason}")

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

    def _start_receiver(self) -> None:
        self._receiver = threading.Thread(target=self._receive, name=f"chat-client-{self.name}", daemon=True)
        self._receiver.start()

    # -- receiving ----------------------------------------------------------------

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
        if data:
            events = [self._parse(line) for line in self._decoder.feed(data)]
        else:
            reason = "closed by us" if self._closing else "the server closed the connection"
            events = [Disconnected(reason)]
            self._disconnected = events[0]
        for event in events:
            self._file(event)

    def _parse(self, line: str | protocol.LineTooLong) -> protocol.ServerEvent:
        if isinstance(line, protocol.LineTooLong):
            return protocol.Unparsed(f"(a line over {line.limit_bytes} bytes was discarded)")
        event = protocol.parse_event(line)
        if isinstance(event, Renamed) and event.old == self.name:
            self.name = event.new
        return event

    def _file(self, event: ClientEvent) -> None:
        with self._arrived:
            self.transcript.append(event)
            if isinstance(event, Reply) and event.topic in self._replies:
                self._replies[event.topic].append(event)  # the answer a request waits for
            else:
                self._unread.append(event)
            self._arrived.notify_all()
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                log.exception("the on_event callback failed on %r", event)

    # -- reading events -------------------------------------------------------------

    def next_event(self, timeout_s: float | None = None) -> ClientEvent:
        """The oldest unread event; waits up to ``timeout_s`` (default: the client's timeout)."""
        return self.wait_for(lambda event: True, timeout_s)

    def wait_for(self, match: Match, timeout_s: float | None = None) -> ClientEvent:
        """Read events until one matches (a type, a tuple of types or a predicate).

        Events read on the way are skipped (they stay in ``transcript``).
        Raises TimeoutError if none matches in time.
        """
        accepts = _matcher(match)
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        with self._arrived:
            while True:
                while self._unread:
                    event = self._unread.popleft()
                    if accepts(event):
                        return event
                if self._disconnected is not None:
                    raise ConnectionError(f"{self!r}: {self._disconnected.reason}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{self!r}: no matching event within the timeout")
                self._arrived.wait(remaining)

    def drain(self) -> list[ClientEvent]:
        """All unread events, without waiting."""
        with self._arrived:
            events = list(self._unread)
            self._unread.clear()
        return events

    def events(self, idle_s: float = 0.5) -> Iterator[ClientEvent]:
        """Iterate over events until none arrives for ``idle_s`` seconds."""
        while True:
            try:
                yield self.next_event(idle_s)
            except (TimeoutError, ConnectionError):
                return

    def lines(self) -> list[str]:
        """The transcript as the lines the server sent."""
        return [
            protocol.format_event(event)
            for event in list(self.transcript)
            if not isinstance(event, Disconnected)
        ]

    @property
    def connected(self) -> bool:
        return self._sock is not None and self._disconnected is None

    # -- sending ------------------------------------------------------------------------

    def send(self, line: str) -> None:
        """Send one raw line (a name, a message or a command)."""
        if "\n" in line or "\r" in line:
            raise ValueError("a line can't contain a line break; send each line separately")
        if self._sock is None:
            raise ConnectionError("not connected")
        with self._send_lock:
            self._sock.sendall(protocol.encode_line(line))

    def say(self, text: str) -> None:
        """Send a chat message to everybody else (a leading "/" is escaped)."""
        self.send(protocol.format_command(protocol.Say(text)))

    def me(self, text: str) -> None:
        self.send(protocol.format_command(protocol.Me(text)))

    def msg(self, recipient: str, text: str) -> None:
        self.send(protocol.format_command(protocol.Msg(recipient, text)))

    def nick(self, name: str) -> None:
        self.send(protocol.format_command(protocol.Nick(name)))

    def help(self) -> None:
        self.send(protocol.format_command(protocol.Help()))

    def who(self, timeout_s: float | None = None) -> list[str]:
        """Ask who is online and wait for the answer (other events stay unread)."""
        reply = self._request(protocol.Who(), "who", timeout_s)
        listed = reply.text.partition(": ")[2]
        return listed.split(", ") if listed else []

    def _request(self, command: protocol.Command, topic: str, timeout_s: float | None) -> Reply:
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        with self._arrived:
            answers = self._replies.setdefault(topic, [])
        self.send(protocol.format_command(command))
        with self._arrived:
            while not answers:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._disconnected is not None:
                    raise TimeoutError(f"no {topic!r} reply from the server")
                self._arrived.wait(remaining)
            del self._replies[topic]
            return answers[0]

    def quit(self, reason: str = "") -> None:
        """Leave with a reason others will see, wait for the server to close, and close."""
        try:
            self.send(protocol.format_command(protocol.Quit(reason)))
            if self._receiver is not None:
                self._receiver.join(self.timeout_s)
        except OSError:
            pass
        self.close()

    # -- closing ------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection and join the receive thread."""
        if self._sock is None:
            return
        self._closing = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if self._receiver is not None and self._receiver is not threading.current_thread():
            self._receiver.join(self.timeout_s)
        self._sock.close()
        if self._disconnected is None:
            self._accept(b"")

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def connect(address: tuple, name: str, **options) -> ChatClient:
    """Shorthand for ``ChatClient(**options).connect(address, name)``."""
    return ChatClient(**options).connect(address, name)
