"""One client connection on the server: its reader thread, its writer thread, its state.

The reader owns the connection: it registers the name, turns lines into
commands, relays chat messages, and cleans up when the connection ends.  The
writer sends whatever the server's flusher could not send without blocking
(see :mod:`chat.tcp.outbox`), so a client that stops reading stalls nothing but
its own writer.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
import time
from typing import Protocol

from chat import protocol
from chat.protocol import Error, LeaveReason, LineTooLong, Reply
from chat.tcp.limits import Limits, TokenBucket
from chat.tcp.outbox import Flusher, Outbox

log = logging.getLogger(__name__)

RECV_BYTES = 64 * 1024  # one read takes up to this much; a full read holds many lines
# A block of chat lines is relayed, and queued, whole; past this size the reader relays what it
# has and starts a new block, so a block stays far below the per-client queue bound.
BATCH_BYTES = 16 * 1024
HELLO = Reply("hello", f"chat lab; send your name ({protocol.NAME_RULES})")
_WAIT_SELECTOR = getattr(selectors, "PollSelector", selectors.SelectSelector)  # see _readable_before_deadline


class NoThreadForSession(RuntimeError):
    """A session's threads could not start: the system's or the process's limit on threads.

    ``told``: the writer had started and has told the client the server is busy.
    """

    def __init__(self, reason: str, told: bool) -> None:
        super().__init__(reason)
        self.told = told


class SessionHost(Protocol):
    """What a session needs of its server: the methods a :class:`~chat.tcp.server.ChatServer` offers sessions.

    Written out here so that this module needs nothing of the server's (the
    server imports the session, never the other way round).
    """

    limits: Limits

    def register(self, session: Session, line: str | LineTooLong) -> None: ...

    def execute(self, session: Session, command, seq: int | None = None) -> None: ...

    def broadcast(self, payload: bytes, exclude: Session | None = None) -> int: ...

    def retire(self, session: Session) -> None: ...

    def handle_error(self, session: Session | None, exc: BaseException) -> None: ...


class Session:
    """A connection from accept to close.  Created and driven by a :class:`~chat.tcp.server.ChatServer`."""

    def __init__(self, server: SessionHost, sock: socket.socket, address: tuple, number: int, flusher: Flusher) -> None:
        limits = server.limits
        self.server = server
        self.sock = sock
        self.address = address
        self.number = number
        self.name: str | None = None  # set once registered
        self.key: str | None = None
        self.outbox = Outbox(limits.sendq_bytes, sock, flusher)
        self.decoder = protocol.LineDecoder(limits.max_line_bytes)
        self.bucket = (
            TokenBucket(limits.rate_lines_per_s, limits.rate_burst_lines, time.monotonic())
            if limits.rate_lines_per_s
            else None
        )
        self.registration_deadline = time.monotonic() + limits.registration_timeout_s
        self.leave_reason: LeaveReason | None = None
        self.leave_detail = ""
        self.leaving = threading.Event()  # set with the leave reason: the reader stops at its next step
        self._reason_lock = threading.Lock()
        self.timed_out = False
        # Counters; each is written by one thread only, read by anyone.
        self.lines_in = 0
        self.bytes_in = 0
        self.deliveries = 0
        self.reader = threading.Thread(target=self._run_reader, name=f"chat-reader-{number}", daemon=True)
        self.writer = threading.Thread(target=self._run_writer, name=f"chat-writer-{number}", daemon=True)

    @property
    def bytes_out(self) -> int:
        return self.outbox.sent_bytes

    def __repr__(self) -> str:
        return f"<Session #{self.number} {self.name or '(unregistered)'} {self.address}>"

    def start(self) -> None:
        """Start the writer, then the reader; if the reader can't start, the writer is stopped too.

        Raises :class:`NoThreadForSession` when the system has no thread to give.
        """
        try:
            self.writer.start()
        except RuntimeError as exc:  # both threads are new: "can't start new thread"
            raise NoThreadForSession(str(exc), told=False) from exc
        try:
            self.reader.start()
        except BaseException as exc:
            out_of_threads = isinstance(exc, RuntimeError)
            if out_of_threads:  # the writer says so, then half-closes
                self.outbox.put(protocol.encode_event(protocol.server_busy(f"out of threads ({exc})")))
            self.outbox.close()
            self.writer.join(5)  # it returns at once: nothing else is queued before the reader runs
            if out_of_threads:
                raise NoThreadForSession(str(exc), told=True) from exc
            raise

    # -- called from any thread -------------------------------------------

    def send_event(self, event: protocol.ServerEvent) -> None:
        """Queue one line for this client; drop the client if it is too far behind."""
        self.send_bytes(protocol.encode_event(event))

    def send_bytes(self, data: bytes) -> bool:
        if self.outbox.put(data):
            return True
        self.drop(LeaveReason.TOO_SLOW)
        return False

    def drop(self, reason: LeaveReason) -> None:
        """End the connection now: both threads wake up and the reader cleans up."""
        self.set_leave_reason(reason)
        self.outbox.close()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed by the peer or by us

    def set_leave_reason(self, reason: LeaveReason, detail: str = "") -> None:
        """Record why the client leaves (the first reason wins) and tell the reader to stop."""
        with self._reason_lock:
            if self.leave_reason is None:
                self.leave_reason, self.leave_detail = reason, detail
        self.leaving.set()

    # -- writer thread ------------------------------------------------------

    def _run_writer(self) -> None:
        try:
            while (data := self.outbox.take()) is not None:
                self.sock.sendall(data)
                self.outbox.sent(len(data))
            self.sock.shutdown(socket.SHUT_WR)  # all said: the client reads EOF
        except OSError:
            self.drop(LeaveReason.CONNECTION_LOST)

    # -- reader thread ------------------------------------------------------

    def _run_reader(self) -> None:
        try:
            self.send_event(HELLO)
            self._read_until_done()
        except OSError:
            self.set_leave_reason(LeaveReason.CONNECTION_LOST)
        except Exception as exc:  # a bug must not take the server down
            self.set_leave_reason(LeaveReason.CONNECTION_LOST)
            self.server.handle_error(self, exc)
        finally:
            self.server.retire(self)

    def _read_until_done(self) -> None:
        while not self.leaving.is_set():
            data = self._recv()
            if not data:
                self.set_leave_reason(LeaveReason.CONNECTION_LOST)
                return
            self.bytes_in += len(data)
            self._handle(self.decoder.feed(data))

    def _recv(self) -> bytes:
        """The next bytes; before registration, b"" once the registration time is up.

        The deadline is kept with a selector, never with a socket timeout: a timeout
        applies to every thread using the socket, the flusher's sends included.
        """
        if self.name is None and not self._readable_before_deadline():
            self._time_out()
            return b""
        return self.sock.recv(RECV_BYTES)

    def _readable_before_deadline(self) -> bool:
        remaining = self.registration_deadline - time.monotonic()
        if remaining <= 0:
            return False
        # poll() holds no descriptor of its own (epoll would: two per waiting connection) and, unlike
        # select.select(), works with descriptors above 1023; where there is no poll() (Windows), select().
        with _WAIT_SELECTOR() as selector:
            selector.register(self.sock, selectors.EVENT_READ)
            return bool(selector.select(remaining))

    def _time_out(self) -> None:
        self.timed_out = True
        seconds = self.server.limits.registration_timeout_s
        self.send_event(Error(protocol.TIMEOUT, f"no valid name within {seconds:g} s; goodbye"))
        self.set_leave_reason(LeaveReason.CONNECTION_LOST)

    def _handle(self, items: list[str | LineTooLong]) -> None:
        """Act on the lines of one read; consecutive chat messages are relayed in batches."""
        batch: list[bytes] = []
        batch_bytes = 0
        for item in items:
            if self._must_stop() or (self.bucket is not None and self._wait_for_token(batch)):
                return
            batch_bytes = batch_bytes if batch else 0  # a pause relays the batch
            self.lines_in += 1
            if self.name is None:  # registration: the first lines are a name (or /quit)
                self.server.register(self, item)
                continue
            command = protocol.parse_command(item) if type(item) is str else item
            if type(command) is protocol.Say:
                text = protocol.sanitize_text(command.text)
                batch.append(protocol.encode_event(protocol.ChatMessage(self.name, text)))
                batch_bytes += len(batch[-1])
                if batch_bytes >= BATCH_BYTES:
                    self._relay(batch)
                    batch_bytes = 0
                continue
            self._relay(batch)
            batch_bytes = 0
            self.server.execute(self, command)
        self._relay(batch)

    def _must_stop(self) -> bool:
        """Checked before every line: a read can hold thousands, and the reader must not outlive its client."""
        if self.leaving.is_set():
            return True
        if self.name is None and time.monotonic() > self.registration_deadline:
            self._time_out()
            return True
        return False

    def _wait_for_token(self, batch: list[bytes]) -> bool:
        """Flood control: pause this reader until the client may send again.

        While we wait, TCP's flow control pushes back on the sender.  Returns
        True if the client is leaving meanwhile (dropped, or the server stops).
        """
        delay = self.bucket.take(time.monotonic())
        if delay <= 0:
            return False
        self._relay(batch)  # what was read before the pause goes out now
        return self.leaving.wait(delay)

    def _relay(self, batch: list[bytes]) -> None:
        if batch:
            payload = batch[0] if len(batch) == 1 else b"".join(batch)
            self.deliveries += len(batch) * self.server.broadcast(payload, exclude=self)
            batch.clear()
