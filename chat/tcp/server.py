"""The threaded TCP chat server.

Thread model (see ``report/README.md`` for a diagram)::

    chat-accept        accepts connections, starts two threads for each
    chat-reader-N      reads client N, registers it, runs its commands, queues its lines
    chat-flusher       writes every client's queued lines with non-blocking sends
    chat-writer-N      sends client N's backlog when its socket would block

One lock (``ChatServer._lock``) guards the registry of sessions and names.
It is held for updates of the registry, never during socket I/O: a broadcast
takes the tuple of members under the lock and queues outside it.  The one
exception queues a newcomer's welcome (memory only) before it becomes a member,
so that no broadcast can reach it first.  Lock order: ``ChatServer._lock``,
then an ``Outbox._lock``, then the ``Flusher._lock``; never the other way.
"""

from __future__ import annotations

import dataclasses
import logging
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from chat import protocol
from chat.protocol import (
    Action,
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
from chat.tcp.session import Session

log = logging.getLogger(__name__)

EventHook = Callable[[protocol.ServerEvent], None]
SHUTDOWN_GRACE_S = 1.0  # how long clients get to read the shutdown notice and close
ACCEPT_RETRY_S = 0.1  # pause after a failed accept (out of descriptors), instead of spinning
# TCP keepalive: a client that vanishes without a FIN or a reset (cable out, laptop asleep)
# is found dead after about KEEPALIVE_IDLE_S + KEEPALIVE_COUNT * KEEPALIVE_INTERVAL_S.
KEEPALIVE_IDLE_S, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT = 60, 10, 3
_SESSION_COUNTERS = ("lines_in", "bytes_in", "deliveries", "bytes_out")


@dataclass(frozen=True)
class ServerStats:
    """A snapshot of the server's counters."""

    connections_total: int = 0  # accepted since start, refused ones included
    connections_now: int = 0
    users_now: int = 0
    users_peak: int = 0
    lines_in: int = 0  # lines read from clients
    deliveries: int = 0  # chat, action and private lines queued to a recipient (one line to 49 others is 49)
    bytes_in: int = 0
    bytes_out: int = 0
    refused_full: int = 0  # connections refused because max_clients were connected
    registration_timeouts: int = 0
    leaves: dict[str, int] = field(default_factory=dict)  # users who left, by reason
    sendq_peak_bytes: int = 0  # the most bytes ever queued for one client (bounded by sendq_bytes)
    errors: int = 0  # unexpected exceptions handled (a bug if not 0)


class ChatServer:
    """A multi-user chat over TCP: one reader and one writer thread per client.

    Methods for the caller:

    - ``ChatServer(host, port, limits, **overrides)`` binds and listens;
      ``server_address`` is the real address (``port=0`` picks a free port).
    - ``start()`` accepts in a background thread; ``serve_forever()`` accepts
      in the calling thread.  ``with ChatServer() as server:`` starts it.
    - ``stop()`` (or ``close()``) tells every client the server is shutting
      down, closes everything and joins every thread it started.
    - ``stats()``, ``users()``, ``broadcast()``.

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
        self._lock = threading.Lock()
        self._sessions: set[Session] = set()  # every open connection
        self._by_key: dict[str, Session] = {}  # registered users, by name_key
        self._members: tuple[Session, ...] = ()  # the same users, for broadcasts
        self._stopping = threading.Event()
        self._accept_thread: threading.Thread | None = None
        self._serving, self._served = threading.Event(), threading.Event()  # serve_forever entered, left
        self._flusher = Flusher()
        self._counted = Counter()  # totals of closed sessions, and server-wide counts
        self._leaves: Counter[str] = Counter()
        self._next_number = 0
        self._users_peak = 0
        self._sendq_peak = 0

    def __repr__(self) -> str:
        host, port = self.server_address
        return f"<ChatServer {host}:{port} users={len(self._members)}>"

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
        with self._lock:
            sessions = list(self._sessions)
        for session in sessions:
            session.set_leave_reason(LeaveReason.SHUTDOWN)
            session.send_event(ServerClosing())
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
                # Out of file descriptors, say: the connection stays in the backlog and the
                # listener stays readable, so pause instead of spinning; the others carry on.
                log.warning("accept failed: %s; pausing %g s", exc, ACCEPT_RETRY_S)
                self._stopping.wait(ACCEPT_RETRY_S)
                return
            try:
                self._open_session(sock, address)
            except Exception as exc:  # e.g. no thread could be started: this connection only
                self._abandon(sock, exc)

    def _abandon(self, sock: socket.socket, exc: Exception) -> None:
        with self._lock:
            for session in [s for s in self._sessions if s.sock is sock]:
                self._sessions.discard(session)
        self.handle_error(None, exc)
        sock.close()

    def _open_session(self, sock: socket.socket, address: tuple) -> None:
        sock.setblocking(True)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(self.nodelay))
        if self.limits.socket_sndbuf_bytes:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.limits.socket_sndbuf_bytes)
        _keep_alive(sock)
        with self._lock:
            self._counted["connections_total"] += 1
            full = len(self._sessions) >= self.limits.max_clients
            if full:
                self._counted["refused_full"] += 1
            else:
                self._next_number += 1
                session = Session(self, sock, address, self._next_number)
                self._sessions.add(session)
        if full:
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

    def _refuse(self, sock: socket.socket, event: protocol.ServerEvent) -> None:
        """Send one line to a connection we won't serve, and close it."""
        try:
            sock.settimeout(0.0)
            sock.send(protocol.encode_event(event))
            sock.shutdown(socket.SHUT_WR)
            sock.recv(65536)  # unread input would turn our close into a reset
        except OSError:
            pass
        sock.close()

    # -- the registry -----------------------------------------------------------

    def users(self) -> list[str]:
        """Names of the registered users, sorted."""
        with self._lock:
            members = self._members
        return sorted((member.name for member in members), key=str.casefold)

    def broadcast(self, payload: bytes, exclude: Session | None = None) -> int:
        """Queue ``payload`` (whole encoded lines) for every user but ``exclude``.

        Returns how many users it was queued for.  A user whose outbox is full
        is dropped as too slow; nobody else waits for it.
        """
        with self._lock:
            members = self._members
        queued = 0
        for member in members:
            if member is not exclude and member.send_bytes(payload):
                queued += 1
        return queued

    def _register(self, session: Session, raw: str) -> None:
        try:
            name = protocol.normalize_name(raw)
        except protocol.InvalidName as exc:
            session.send_event(protocol.name_refused(exc))
            return
        key = protocol.name_key(name)
        with self._lock:
            taken = key in self._by_key
            # Queued before the newcomer is a member, so no broadcast can reach it before its
            # welcome.  Queuing only appends to memory: no socket I/O under the lock.
            welcomed = not taken and session.outbox.put(
                protocol.encode_event(protocol.welcome(name, len(self._members) + 1)))
            if welcomed:
                session.name, session.key = name, key
                self._by_key[key] = session
                self._members += (session,)
                self._users_peak = max(self._users_peak, len(self._members))
        if taken:
            session.send_event(protocol.name_refused(name))
            return
        if not welcomed:  # its queue is full of replies it never read: it is not reading
            session.drop(LeaveReason.TOO_SLOW)
            return
        self._announce(Joined(name), exclude=session)
        log.info("%s joined from %s:%s", name, *session.address[:2])

    def _rename(self, session: Session, raw: str) -> None:
        try:
            new = protocol.normalize_name(raw)
        except protocol.InvalidName as exc:
            session.send_event(protocol.name_refused(exc))
            return
        key = protocol.name_key(new)
        with self._lock:
            holder = self._by_key.get(key)
            free = holder is None or holder is session
            if free:
                old = session.name
                del self._by_key[session.key]
                self._by_key[key] = session
                session.name, session.key = new, key
        if not free:
            session.send_event(protocol.name_refused(new))
            return
        if old == new:
            session.send_event(Reply("nick", f"you are already {new}"))
        else:
            self._announce(Renamed(old, new))

    def _retire(self, session: Session) -> None:
        """Clean up after a connection, in its reader thread; nothing here may raise."""
        reason = session.leave_reason or LeaveReason.CONNECTION_LOST
        with self._lock:
            was_member = session.key is not None and self._by_key.get(session.key) is session
            if was_member:
                del self._by_key[session.key]
                self._members = tuple(member for member in self._members if member is not session)
                self._leaves[reason.value] += 1
        if was_member:
            self._leave(session, reason)
        session.outbox.close()
        session.writer.join(SHUTDOWN_GRACE_S)
        if session.writer.is_alive():  # still blocked sending to a client that doesn't read
            session.drop(reason)
            session.writer.join(SHUTDOWN_GRACE_S)
        session.sock.close()
        self._count_closed(session)

    def _leave(self, session: Session, reason: LeaveReason) -> None:
        event = Left(session.name, reason, session.leave_detail)
        if reason is not LeaveReason.SHUTDOWN:  # at shutdown everybody gets one notice instead
            self.broadcast(protocol.encode_event(event), exclude=session)
        self._emit(event)
        log.info("%s left (%s)", session.name, reason.value)

    def _count_closed(self, session: Session) -> None:
        """Move a closed session's counters into the totals (it leaves the live set here)."""
        with self._lock:
            self._sessions.discard(session)
            for name in _SESSION_COUNTERS:
                self._counted[name] += getattr(session, name)
            self._counted["registration_timeouts"] += session.timed_out
            self._sendq_peak = max(self._sendq_peak, session.outbox.peak_queued_bytes)

    # -- commands -------------------------------------------------------------

    def _execute(self, session: Session, command) -> None:
        """Carry out one line from ``session`` (in its reader thread)."""
        match command:
            case LineTooLong(limit):
                session.send_event(Error(protocol.LINE_TOO_LONG, f"lines are limited to {limit} bytes; that one was discarded"))
            case str(raw) if session.name is None:
                if raw.lower().startswith("/quit"):
                    session.set_leave_reason(LeaveReason.QUIT)
                else:
                    self._register(session, raw)
            case protocol.Me(text):
                event = Action(session.name, protocol.sanitize_text(text))
                session.deliveries += self.broadcast(protocol.encode_event(event), exclude=session)
            case protocol.Msg(recipient, text):
                self._send_private(session, recipient, protocol.sanitize_text(text))
            case protocol.Nick(name):
                self._rename(session, name)
            case protocol.Who():
                names = self.users()
                session.send_event(Reply("who", f"{len(names)} online: {', '.join(names)}"))
            case protocol.Help():
                for usage, meaning in protocol.COMMAND_HELP:
                    session.send_event(Reply("help", f"{usage} - {meaning}"))
            case protocol.Quit(reason):
                session.set_leave_reason(LeaveReason.QUIT, protocol.sanitize_text(reason))
                session.send_event(Reply("bye", "see you"))
            case protocol.BadCommand(error):
                session.send_event(error)
            case protocol.Empty():
                pass

    def _send_private(self, session: Session, recipient: str, text: str) -> None:
        with self._lock:
            target = self._by_key.get(protocol.name_key(recipient))
        if target is None:
            shown = protocol.sanitize_text(recipient[: protocol.MAX_NAME_CHARS])
            session.send_event(Error(protocol.NO_SUCH_USER, f'nobody here is called "{shown}"'))
            return
        if target.send_bytes(protocol.encode_event(PrivateMessage(session.name, text))):
            session.deliveries += 1
        session.send_event(PrivateSent(target.name, text))

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
        """The counters now: closed connections plus the live ones."""
        with self._lock:
            live = list(self._sessions)
            totals = Counter(self._counted)
            leaves = dict(self._leaves)
            users_now, users_peak = len(self._members), self._users_peak
        sendq_peak = self._sendq_peak
        for session in live:
            for name in _SESSION_COUNTERS:
                totals[name] += getattr(session, name)
            sendq_peak = max(sendq_peak, session.outbox.peak_queued_bytes)
        return ServerStats(
            connections_total=totals["connections_total"],
            connections_now=len(live),
            users_now=users_now,
            users_peak=users_peak,
            lines_in=totals["lines_in"],
            deliveries=totals["deliveries"],
            bytes_in=totals["bytes_in"],
            bytes_out=totals["bytes_out"],
            refused_full=totals["refused_full"],
            registration_timeouts=totals["registration_timeouts"],
            leaves=leaves,
            sendq_peak_bytes=sendq_peak,
            errors=totals["errors"],
        )

    def handle_error(self, session: Session | None, exc: BaseException) -> None:
        """Log an unexpected exception from ``session``'s thread (None: while accepting); it is then disconnected."""
        with self._lock:
            self._counted["errors"] += 1
        log.error("error serving %r", session or "a new connection", exc_info=exc)


def _keep_alive(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", KEEPALIVE_IDLE_S), ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL_S),
                          ("TCP_KEEPCNT", KEEPALIVE_COUNT)):
        if hasattr(socket, option):  # Linux; elsewhere the system's defaults apply
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
