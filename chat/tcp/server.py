"""The threaded TCP chat server.

Thread model (see ``report/README.md`` for a diagram)::

    chat-accept        accepts connections, starts two threads for each
    chat-reader-N      reads client N, registers it, runs its commands, queues its lines
    chat-flusher       writes every client's queued lines with non-blocking sends
    chat-writer-N      sends client N's backlog when its socket would block

One lock guards the registry of sessions and names (:mod:`chat.tcp.registry`).
It is held for updates of the registry, never during socket I/O: a broadcast
takes the tuple of members under the lock and queues outside it.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable

from chat import protocol
from chat.protocol import (
    Action,
    ChatMessage,
    CommandDispatch,
    Error,
    Joined,
    LeaveReason,
    Left,
    LineTooLong,
    PrivateMessage,
    PrivateSent,
    Renamed,
    Reply,
    ServerClosing,
)
from chat.tcp.limits import Limits
from chat.tcp.outbox import Flusher
from chat.tcp.registry import Registry, ServerStats
from chat.tcp.session import NoThreadForSession, Session

log = logging.getLogger(__name__)

EventHook = Callable[[protocol.ServerEvent], None]
SHUTDOWN_GRACE_S = 1.0  # how long clients get to read the shutdown notice and close
ACCEPT_RETRY_S = 0.1  # pause after a failed accept (out of descriptors), instead of spinning
BUSY_LOG_EVERY_S = 1.0  # running out of threads or descriptors is logged at most this often
# TCP keepalive: a client that vanishes without a FIN or a reset (cable out, laptop asleep)
# is found dead after about KEEPALIVE_IDLE_S + KEEPALIVE_COUNT * KEEPALIVE_INTERVAL_S.
KEEPALIVE_IDLE_S, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT = 60, 10, 3


class ChatServer(CommandDispatch):
    """A multi-user chat over TCP: one reader and one writer thread per client.

    Methods for the caller:

    - ``ChatServer(host, port, limits, **overrides)`` binds and listens;
      ``server_address`` is the real address (``port=0`` picks a free port).
    - ``start()`` accepts in a background thread; ``serve_forever()`` accepts
      in the calling thread.  ``with ChatServer() as server:`` starts it.
    - ``stop()`` (or ``close()``) tells every client the server is shutting
      down, closes everything and joins every thread it started.
    - ``stats()``, ``users()``, ``broadcast()``.

    Methods for sessions (:class:`~chat.tcp.session.Session` calls them from
    its reader thread, the way a :mod:`socketserver` handler calls its server):

    - ``register(session, line)``: a line from a session that has no name yet;
    - ``execute(session, command)``: any other command but a chat message
      (:class:`~chat.protocol.CommandDispatch` says what each one means);
    - ``broadcast(payload, exclude)``: a block of chat lines for everybody else;
    - ``retire(session)``: the connection has ended; clean up after it;
    - ``handle_error(session, exc)``: an unexpected exception in its thread.

    Methods that may be overridden:

    - ``handle_error(session, exc)``: called with an unexpected exception from a
      client's thread; that client is disconnected, everybody else carries on.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: Limits | None = None,
        *,
        nodelay: bool = True,
        on_event: EventHook | None = None,
        **overrides,
    ) -> None:
        self.limits = dataclasses.replace(limits or Limits(), **overrides)
        self.nodelay = nodelay
        self.on_event = on_event
        self._listener = socket.create_server((host, port), backlog=socket.SOMAXCONN)
        self._listener.setblocking(False)
        self.server_address: tuple = self._listener.getsockname()[:2]
        self._wake_r, self._wake_w = socket.socketpair()
        self._registry = Registry(self.limits.max_clients)
        self._stopping = threading.Event()
        self._accept_thread: threading.Thread | None = None
        self._serving, self._served = threading.Event(), threading.Event()  # serve_forever entered, left
        self._flusher = Flusher()
        self._spare_descriptor = _reserve_descriptor()  # freed to say "busy" when descriptors run out
        self._spare_lock = threading.Lock()  # the accept thread and stop() may both reach for it
        self._busy_log = ThrottledLog(log, BUSY_LOG_EVERY_S)

    def __repr__(self) -> str:
        host, port = self.server_address
        return f"<ChatServer {host}:{port} users={len(self._registry.members())}>"

    # -- life cycle -----------------------------------------------------------

    def start(self) -> ChatServer:
        """Accept connections in a background thread named ``chat-accept``."""
        if self._accept_thread is not None:
            raise RuntimeError("the server is already started")
        self._accept_thread = threading.Thread(target=self.serve_forever, name="chat-accept", daemon=True)
        self._accept_thread.start()
        return self

    def serve_forever(self) -> None:
        """Accept connections until :meth:`stop` is called."""
        host, port = self.server_address
        log.info("chat server listening on %s:%s", host, port)
        self._flusher.start()
        self._serving.set()
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self._listener, selectors.EVENT_READ)
                selector.register(self._wake_r, selectors.EVENT_READ)
                while not self._stopping.is_set():
                    selector.select()
                    self._accept_all()
        finally:
            self._served.set()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Shut down: notify clients, close every connection, join every thread."""
        if self._stopping.is_set():
            return
        deadline = time.monotonic() + timeout_s
        self._stopping.set()
        self._wake_w.send(b"x")
        if self._serving.is_set():  # in our thread (start) or in anybody's (serve_forever)
            self._served.wait(timeout_s)
        if self._accept_thread is not None and self._accept_thread is not threading.current_thread():
            self._accept_thread.join(timeout_s)
        self._turn_away_backlog()
        self._listener.close()
        sessions = self._registry.sessions()
        for session in sessions:
            session.set_leave_reason(LeaveReason.SHUTDOWN)
            session.outbox.put(protocol.encode_event(ServerClosing()), may_wait=False)  # stop() waits for nobody
            session.outbox.close()  # the writer sends the notice, then half-closes
        self._join_sessions(sessions, min(deadline, time.monotonic() + SHUTDOWN_GRACE_S))
        for session in sessions:
            session.drop(LeaveReason.SHUTDOWN)  # those that did not close by themselves
        self._join_sessions(sessions, deadline)
        for session in sessions:
            if session.reader.is_alive():
                log.warning("%r did not stop in time", session)
        self._flusher.stop(max(0.1, deadline - time.monotonic()))
        self._wake_r.close()
        self._wake_w.close()
        with self._spare_lock:
            if self._spare_descriptor is not None:
                os.close(self._spare_descriptor)
                self._spare_descriptor = None
        log.info("chat server stopped")

    close = stop

    def __enter__(self) -> ChatServer:
        if self._accept_thread is None:
            self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @staticmethod
    def _join_sessions(sessions: list[Session], deadline: float) -> None:
        for session in sessions:
            if session.reader.ident is not None:  # a session whose start failed has nothing to join
                session.reader.join(max(0.0, deadline - time.monotonic()))

    # -- accepting ------------------------------------------------------------

    def _accept_all(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE) and self._turn_away_with_the_spare_descriptor():
                    continue
                # No descriptor even to say so, or out of memory: the connection stays in the
                # backlog and the listener stays readable, so pause instead of spinning.
                self._busy_log.warning("accept failed: %s; pausing %g s", exc, ACCEPT_RETRY_S)
                self._stopping.wait(ACCEPT_RETRY_S)
                return
            try:
                self._open_session(sock, address)
            except NoThreadForSession as exc:  # the system's limit, not a bug: this connection only
                self._registry.forget(lambda session: session.sock is sock)
                self._turn_away_busy(sock, f"out of threads ({exc})", told=exc.told)
            except Exception as exc:
                self._abandon(sock, exc)

    def _turn_away_with_the_spare_descriptor(self) -> bool:
        """Out of descriptors: free the one kept in reserve to accept the waiting connection and tell it so.

        Without it the connection would wait in the backlog, unanswered, and
        the listener would stay readable.  False if there was no reserve (or
        the connection went away meanwhile).
        """
        # Under the lock only non-blocking calls: the listener's accept and the one-line refusal.  The
        # connection is closed before the reserve is taken back: it needs the descriptor the reserve freed.
        with self._spare_lock:
            if self._spare_descriptor is None or self._stopping.is_set():
                return False
            os.close(self._spare_descriptor)
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return False
            else:
                self._registry.count("connections_total")
                self._turn_away_busy(sock, "out of file descriptors")
                return True
            finally:
                self._spare_descriptor = _reserve_descriptor()  # None while still out of them: tried again next time

    def _turn_away_busy(self, sock: socket.socket, why: str, told: bool = False) -> None:
        """Tell a connection we can't serve that the server is busy, close it, and count it (not an error)."""
        self._registry.count("refused_busy")
        self._busy_log.warning("turned a connection away: %s", why)
        self._refuse(sock, None if told else protocol.server_busy(why))  # told: its writer said so already

    def _abandon(self, sock: socket.socket, exc: Exception) -> None:
        self._registry.forget(lambda session: session.sock is sock)
        self.handle_error(None, exc)
        sock.close()

    def _open_session(self, sock: socket.socket, address: tuple) -> None:
        sock.setblocking(True)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(self.nodelay))
        if self.limits.socket_sndbuf_bytes:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.limits.socket_sndbuf_bytes)
        _keep_alive(sock)
        session = self._registry.open(lambda number: Session(self, sock, address, number, self._flusher))
        if session is None:
            log.warning("refused %s:%s: at the limit of %d connections", *address[:2], self.limits.max_clients)
            self._refuse(sock, Error(protocol.SERVER_FULL, f"the server is at its limit of "
                                                           f"{self.limits.max_clients} connections; try again later"))
        else:
            log.debug("connection from %s:%s", *address[:2])
            session.start()

    def _turn_away_backlog(self) -> None:
        """Connections still waiting to be accepted hear the shutdown notice instead of a reset."""
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self._refuse(sock, ServerClosing())

    def _refuse(self, sock: socket.socket, event: protocol.ServerEvent | None) -> None:
        """Send one line (if any is still to be said) to a connection we won't serve, and close it."""
        try:
            sock.settimeout(0.0)
            if event is not None:
                sock.send(protocol.encode_event(event))
                sock.shutdown(socket.SHUT_WR)
            sock.recv(65536)  # unread input would turn our close into a reset
        except OSError:
            pass
        sock.close()

    # -- the registry -----------------------------------------------------------

    def sessions(self) -> list[Session]:
        """Every open connection, registered or not (for tests and tools; the server keeps its own)."""
        return self._registry.sessions()

    def users(self) -> list[str]:
        """Names of the registered users, sorted."""
        members = self._registry.members()
        return sorted((member.name for member in members), key=str.casefold)

    def broadcast(self, payload: bytes, exclude: Session | None = None) -> int:
        """Queue ``payload`` (whole encoded lines) for every user but ``exclude``.

        Returns how many users it was queued for.  A user whose outbox is full
        is dropped as too slow; nobody else waits for it.
        """
        members = self._registry.members()
        queued = 0
        for member in members:
            if member is not exclude and member.send_bytes(payload):
                queued += 1
        return queued

    def register(self, session: Session, line: str | LineTooLong) -> None:
        """A line from ``session`` before it has a name: its name, or ``/quit``."""
        match line:
            case LineTooLong(limit):
                session.send_event(_line_too_long(limit))
            case str(raw) if raw.lower().startswith("/quit"):
                session.set_leave_reason(LeaveReason.QUIT)
            case str(raw):
                self._register(session, raw)

    def _register(self, session: Session, raw: str) -> None:
        claimed = protocol.claimed_name(raw)
        if isinstance(claimed, Error):
            session.send_event(claimed)
            return
        name, key = claimed
        # The welcome is queued before the newcomer is a member, so no broadcast can reach it first.
        outcome = self._registry.admit(session, name, key, lambda online: protocol.encode_event(protocol.welcome(name, online)))
        if outcome == "taken":
            session.send_event(protocol.name_refused(name))
            return
        if outcome == "not-reading":  # its queue is full of replies it never read
            session.drop(LeaveReason.TOO_SLOW)
            return
        self._announce(Joined(name), exclude=session)
        log.info("%s joined from %s:%s", name, *session.address[:2])

    def rename(self, session: Session, raw: str) -> None:
        claimed = protocol.claimed_name(raw)
        if isinstance(claimed, Error):
            session.send_event(claimed)
            return
        new, key = claimed
        old = self._registry.rename(session, new, key)
        if old is None:
            session.send_event(protocol.name_refused(new))
            return
        if old == new:
            session.send_event(Reply("nick", f"you are already {new}"))
        else:
            self._announce(Renamed(old, new))

    def retire(self, session: Session) -> None:
        """Clean up after a connection, in its reader thread; nothing here may raise."""
        reason = session.leave_reason or LeaveReason.CONNECTION_LOST
        if self._registry.remove(session, reason.value):
            self._leave(session, reason)
        session.outbox.close()
        session.writer.join(SHUTDOWN_GRACE_S)
        if session.writer.is_alive():  # still blocked sending to a client that doesn't read
            session.drop(reason)
            session.writer.join(SHUTDOWN_GRACE_S)
        session.sock.close()
        self._registry.close(session)

    def _leave(self, session: Session, reason: LeaveReason) -> None:
        event = Left(session.name, reason, session.leave_detail)
        if reason is not LeaveReason.SHUTDOWN:  # at shutdown everybody gets one notice instead
            self.broadcast(protocol.encode_event(event), exclude=session)
        self._emit(event)
        log.info("%s left (%s)", session.name, reason.value)

    # -- commands (the hooks of CommandDispatch) ------------------------------------

    def say(self, session: Session, text: str, seq: int | None) -> None:
        """A chat message that came alone (the reader relays runs of them itself, in blocks)."""
        session.deliveries += self.broadcast(protocol.encode_event(ChatMessage(session.name, text)), exclude=session)

    def act(self, session: Session, text: str, seq: int | None) -> None:
        session.deliveries += self.broadcast(protocol.encode_event(Action(session.name, text)), exclude=session)

    def send_private(self, session: Session, recipient: str, text: str) -> None:
        target = self._registry.find(protocol.name_key(recipient))
        if target is None:
            session.send_event(protocol.no_such_user(recipient))
            return
        if target.send_bytes(protocol.encode_event(PrivateMessage(session.name, text))):
            session.deliveries += 1
        session.send_event(PrivateSent(target.name, text))

    def reply(self, session: Session, event: protocol.ServerEvent) -> None:
        session.send_event(event)

    def quit(self, session: Session, reason: str) -> None:
        session.set_leave_reason(LeaveReason.QUIT, reason)
        session.send_event(Reply("bye", "see you"))

    def execute_other(self, session: Session, command, seq: int | None) -> None:
        match command:
            case LineTooLong(limit):
                session.send_event(_line_too_long(limit))
            case _:
                super().execute_other(session, command, seq)

    def _announce(self, event: protocol.ServerEvent, exclude: Session | None = None) -> None:
        self.broadcast(protocol.encode_event(event), exclude=exclude)
        self._emit(event)

    def _emit(self, event: protocol.ServerEvent) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:
            log.exception("the on_event hook failed on %r", event)

    # -- observability ----------------------------------------------------------

    def stats(self) -> ServerStats:
        """The counters now: closed connections plus the live ones, and the flusher's."""
        return dataclasses.replace(self._registry.stats(), flusher_sweeps=self._flusher.sweeps,
                                   flusher_sends=self._flusher.sends)

    def handle_error(self, session: Session | None, exc: BaseException) -> None:
        """Log an unexpected exception from ``session``'s thread (None: while accepting); it is then disconnected."""
        self._registry.count("errors")
        log.error("error serving %r", session or "a new connection", exc_info=exc)


def _line_too_long(limit: int) -> Error:
    return Error(protocol.LINE_TOO_LONG, f"lines are limited to {protocol.bytes_in_letters(limit)}; that one was discarded")


def _reserve_descriptor() -> int | None:
    try:
        return os.open(os.devnull, os.O_RDONLY)
    except OSError:
        return None


class ThrottledLog:
    """Warnings of one kind, at most one per ``interval_s``; the next one says how many were held back."""

    def __init__(self, logger: logging.Logger, interval_s: float) -> None:
        self._logger, self._interval_s = logger, interval_s
        self._lock = threading.Lock()
        self._next_s = 0.0
        self._held_back = 0

    def warning(self, message: str, *args) -> None:
        now = time.monotonic()
        with self._lock:
            if now < self._next_s:
                self._held_back += 1
                return
            self._next_s, held_back, self._held_back = now + self._interval_s, self._held_back, 0
        if held_back:
            message += f" (and {held_back} more like it since the last such warning)"
        self._logger.warning(message, *args)


def _keep_alive(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", KEEPALIVE_IDLE_S), ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL_S),
                          ("TCP_KEEPCNT", KEEPALIVE_COUNT)):
        if hasattr(socket, option):  # Linux; elsewhere the system's defaults apply
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
