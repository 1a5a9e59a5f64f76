"""What every chat client shares, whatever carries its lines: events in, commands out.

A client's receive thread files each event here; the program reads them in
order with :meth:`ClientBase.next_event` or :meth:`ClientBase.wait_for`, or
gets them pushed through ``on_event``.  The command helpers build lines with
:mod:`chat.protocol` and hand them to the transport's ``send``.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from chat import protocol
from chat.protocol import Error, Renamed, Reply

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_KEEP_EVENTS = 10_000  # events remembered per client (transcript, and unread); older ones are forgotten
DEFAULT_KEEP_BYTES = 16 << 20  # and at most this much of their text, however long the lines


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

_TEXT_FIELDS: dict[type, tuple[str, ...]] = {}


def text_bytes(event: ClientEvent) -> int:
    """About how much memory an event's text takes: the length of its strings (at least 1)."""
    names = _TEXT_FIELDS.get(type(event))
    if names is None:
        names = _TEXT_FIELDS[type(event)] = tuple(field.name for field in dataclasses.fields(event))
    return 1 + sum(len(value) for value in map(event.__getattribute__, names) if isinstance(value, str))


class EventLog:
    """Events in order of arrival, bounded in count and in text: the oldest are forgotten first.

    Iterates like a deque; ``forgotten`` counts what was dropped to stay
    within ``max_events`` and ``max_bytes`` (the newest event is always kept).
    """

    def __init__(self, max_events: int = DEFAULT_KEEP_EVENTS, max_bytes: int = DEFAULT_KEEP_BYTES) -> None:
        if max_events < 1 or max_bytes < 1:
            raise ValueError("an event log keeps at least one event")
        self.max_events, self.max_bytes = max_events, max_bytes
        self._events: collections.deque[tuple[ClientEvent, int]] = collections.deque()
        self.bytes = 0
        self.forgotten = 0

    def append(self, event: ClientEvent, size: int | None = None) -> None:
        """Keep ``event`` (its :func:`text_bytes`, if the caller has them already, in ``size``)."""
        size = text_bytes(event) if size is None else size
        self._events.append((event, size))
        self.bytes += size
        while len(self._events) > 1 and (len(self._events) > self.max_events or self.bytes > self.max_bytes):
            self.bytes -= self._events.popleft()[1]
            self.forgotten += 1

    def popleft(self) -> ClientEvent:
        event, size = self._events.popleft()
        self.bytes -= size
        return event

    def clear(self) -> None:
        self._events.clear()
        self.bytes = 0

    def __iter__(self) -> Iterator[ClientEvent]:
        # A snapshot, taken in one step: the receive thread may append while the caller iterates.
        return iter([event for event, _ in tuple(self._events)])

    def __getitem__(self, index: int) -> ClientEvent:
        return self._events[index][0]

    def __len__(self) -> int:
        return len(self._events)

    def __repr__(self) -> str:
        return f"<EventLog of {len(self)} events, {self.bytes} bytes of text, {self.forgotten} forgotten>"


def _matcher(match: Match) -> Callable[[ClientEvent], bool]:
    if isinstance(match, (type, tuple)):
        return lambda event: isinstance(event, match)
    return match


class ClientBase:
    """The events and commands of one chat user; subclasses carry the lines.

    Methods for the caller: ``connect``, ``say``, ``me``, ``msg``, ``nick``,
    ``who``, ``help``, ``next_event``, ``wait_for``, ``drain``, ``events``,
    ``lines``, ``transcript``, ``connected``, and the context manager.

    Methods a subclass provides: ``open``, ``register``, ``send``, ``quit``, ``close``.
    """

    def __init__(self, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 on_event: Callable[[ClientEvent], None] | None = None,
                 keep_events: int = DEFAULT_KEEP_EVENTS, keep_bytes: int = DEFAULT_KEEP_BYTES) -> None:
        self.timeout_s = timeout_s
        self.on_event = on_event
        self.name: str | None = None
        # Both bounded: a chatty server (or a hostile one sending megabyte lines) can't fill the memory.
        self.transcript = EventLog(keep_events, keep_bytes)
        self._unread = EventLog(keep_events, keep_bytes)
        self._arrived = threading.Condition()
        self._replies: dict[str, list[Reply]] = {}
        self._disconnected: Disconnected | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name or '(unregistered)'}>"

    def connect(self, address: tuple, name: str):
        """Open and register ``name``; returns the client.  Raises :class:`NameRefused`."""
        self.open(address)
        try:
            self.register(name)
        except BaseException:
            self.close()
            raise
        return self

    # -- filing, in the receive thread ---------------------------------------------------

    def _file(self, event: ClientEvent) -> None:
        if isinstance(event, Renamed) and event.old == self.name:
            self.name = event.new
        with self._arrived:
            if isinstance(event, Disconnected):
                if self._disconnected is not None:
                    return
                self._disconnected = event
            size = text_bytes(event)
            self.transcript.append(event, size)
            if isinstance(event, Reply) and event.topic in self._replies:
                self._replies[event.topic].append(event)  # the answer a request waits for
            else:
                self._unread.append(event, size)
            self._arrived.notify_all()
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                log.exception("the on_event callback failed on %r", event)

    # -- reading events -------------------------------------------------------------------

    def next_event(self, timeout_s: float | None = None) -> ClientEvent:
        """The oldest unread event; waits up to ``timeout_s`` (default: the client's timeout)."""
        return self.wait_for(lambda event: True, timeout_s)

    def wait_for(self, match: Match, timeout_s: float | None = None) -> ClientEvent:
        """Read events until one matches (a type, a tuple of types or a predicate).

        Events read on the way are skipped (they stay in ``transcript``).
        Raises TimeoutError if none matches in time, ConnectionError once the
        connection has ended and every event is read.
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
        return [protocol.format_event(event) for event in list(self.transcript) if not isinstance(event, Disconnected)]

    @property
    def connected(self) -> bool:
        return self._is_open() and self._disconnected is None

    def _is_open(self) -> bool:
        raise NotImplementedError

    # -- commands -----------------------------------------------------------------------------

    def say(self, text: str, timeout_s: float | None = None) -> None:
        """Send a chat message to everybody else (a leading "/" is escaped).

        It waits while the server takes nothing (TCP pushes back: flood control,
        or a busy server); with ``timeout_s``, it gives up with TimeoutError if
        not a byte of the line could leave in that time, and the connection stays
        as it was.
        """
        self.send(protocol.format_command(protocol.Say(text)), timeout_s=timeout_s)

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
        reply = self._request(protocol.format_command(protocol.Who()), "who", timeout_s)
        return protocol.who_names(reply)

    def _request(self, line: str, topic: str, timeout_s: float | None, attempts: int = 1) -> Reply:
        """Send ``line`` and wait for the reply on ``topic``; resend up to ``attempts`` times."""
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        with self._arrived:
            answers = self._replies.setdefault(topic, [])
        try:
            for _ in range(attempts):
                self.send(line)
                deadline = time.monotonic() + timeout_s / attempts
                with self._arrived:
                    while not answers and self._disconnected is None and time.monotonic() < deadline:
                        self._arrived.wait(deadline - time.monotonic())
                    if answers:
                        return answers[0]
                    if self._disconnected is not None:
                        break
            raise TimeoutError(f"no {topic!r} reply from the server")
        finally:
            with self._arrived:
                self._replies.pop(topic, None)

    def send(self, line: str) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        """The end of a ``with`` block leaves politely (the others see ``quit``); after an exception it just closes."""
        if exc_type is None and self.connected and self.name is not None:
            self.quit()
        else:
            self.close()

    def quit(self, reason: str = "") -> None:
        raise NotImplementedError


def stop_thread(thread: threading.Thread | None, timeout_s: float) -> bool:
    """Join ``thread`` (unless it is the caller); False if it is still running.

    A socket must not be closed while a thread still uses it: its number could
    be reused by the next socket, and the old thread would read the new one's data.
    """
    if thread is None or thread is threading.current_thread():
        return True
    thread.join(timeout_s)
    if thread.is_alive():
        log.warning("%s did not stop (is an on_event callback blocked?); its socket stays open", thread.name)
        return False
    return True


def check_line(line: str) -> None:
    if "\n" in line or "\r" in line:
        raise ValueError("a line can't contain a line break; send each line separately")
