"""Who is connected and who is registered: the TCP server's one lock and everything it guards.

Every method takes the lock for a few dictionary and tuple operations and
never does socket I/O under it; the one exception queues a newcomer's welcome
(an append to memory, see :meth:`Registry.admit`) before it becomes a member,
so that no broadcast can reach it first.  Lock order: ``Registry.lock``, then
an ``Outbox._lock``, then the ``Flusher._lock``; never the other way.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chat import protocol

if TYPE_CHECKING:  # annotations only: the registry never calls into a session's module
    from chat.tcp.session import Session

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
    refused_busy: int = 0  # connections turned away because the system had no thread or descriptor to spare
    registration_timeouts: int = 0
    leaves: dict[str, int] = field(default_factory=dict)  # users who left, by reason
    sendq_peak_bytes: int = 0  # the most bytes ever queued for one client (bounded by sendq_bytes)
    errors: int = 0  # unexpected exceptions handled (a bug if not 0)
    flusher_sweeps: int = 0  # passes of the flusher over the clients with bytes waiting
    flusher_sends: int = 0  # non-blocking sends it made (one per client with bytes, per sweep)


SESSION_COUNTERS = ("lines_in", "bytes_in", "deliveries", "bytes_out")


class Registry:
    """The open connections, the registered users by name key, and the counters of closed ones."""

    def __init__(self, max_clients: int) -> None:
        self.max_clients = max_clients
        self.lock = threading.Lock()
        self._sessions: set[Session] = set()  # every open connection
        # Registered users by every key of their names (protocol.name_keys; the first is the name_key).
        self._claims: dict[str, Session] = {}
        # The same users, for broadcasts: a new tuple on every change, so a reader takes it
        # whole under the lock and iterates it outside.
        self._members: tuple[Session, ...] = ()
        self.counted = Counter()  # totals of closed sessions, and server-wide counts
        self.leaves: Counter[str] = Counter()
        self._next_number = 0
        self.users_peak = 0
        self.sendq_peak = 0

    # -- connections ---------------------------------------------------------------------------

    def open(self, make_session: Callable[[int], Session]) -> Session | None:
        """Count a new connection and make its session (numbered from 1); None if the server is full."""
        with self.lock:
            self.counted["connections_total"] += 1
            if len(self._sessions) >= self.max_clients:
                self.counted["refused_full"] += 1
                return None
            self._next_number += 1
            session = make_session(self._next_number)
            self._sessions.add(session)
            return session

    def forget(self, matches: Callable[[Session], bool]) -> None:
        """Drop the sessions of a connection that could not be served (it never started)."""
        with self.lock:
            for session in [s for s in self._sessions if matches(s)]:
                self._sessions.discard(session)

    def sessions(self) -> list[Session]:
        """Every open connection, registered or not."""
        with self.lock:
            return list(self._sessions)

    def close(self, session: Session) -> None:
        """Move a closed session's counters into the totals (it leaves the live set here)."""
        with self.lock:
            self._sessions.discard(session)
            for name in SESSION_COUNTERS:
                self.counted[name] += getattr(session, name)
            self.counted["registration_timeouts"] += session.timed_out
            self.sendq_peak = max(self.sendq_peak, session.outbox.peak_queued_bytes)

    def count(self, counter: str) -> None:
        with self.lock:
            self.counted[counter] += 1

    # -- users ---------------------------------------------------------------------------------

    def members(self) -> tuple[Session, ...]:
        """The registered users now (a snapshot: iterate it without the lock)."""
        with self.lock:
            return self._members

    def find(self, key: str) -> Session | None:
        with self.lock:
            return self._claims.get(key)

    def admit(self, session: Session, name: str, key: str, welcome: Callable[[int], bytes]) -> str:
        """Register ``session`` as ``name`` if the name is free and its welcome can be queued.

        ``welcome(online)`` gives the welcome line; it is queued before the
        session becomes a member.  Returns ``"welcomed"``, ``"taken"``, or
        ``"not-reading"`` (its queue is full of replies it never read).
        """
        claims = protocol.name_keys(name)
        with self.lock:
            if any(claim in self._claims for claim in claims):
                return "taken"
            if not session.outbox.put(welcome(len(self._members) + 1), may_wait=False):  # never wait under the lock
                return "not-reading"
            session.name, session.key = name, key
            self._claims.update(dict.fromkeys(claims, session))
            self._members += (session,)
            self.users_peak = max(self.users_peak, len(self._members))
            return "welcomed"

    def rename(self, session: Session, name: str, key: str) -> str | None:
        """Give ``session`` a new name; its old name, or None if another user has the new one."""
        claims, old_claims = protocol.name_keys(name), protocol.name_keys(session.name)  # out of the lock
        with self.lock:
            if {self._claims.get(claim) for claim in claims} - {None, session}:
                return None
            old = session.name
            for claim in old_claims:
                self._claims.pop(claim, None)
            self._claims.update(dict.fromkeys(claims, session))
            session.name, session.key = name, key
            return old

    def remove(self, session: Session, reason: str) -> bool:
        """Unregister ``session`` (counted as leaving for ``reason``); False if it was no member."""
        claims = protocol.name_keys(session.name) if session.name is not None else ()  # out of the lock
        with self.lock:
            if session.key is None or self._claims.get(session.key) is not session:
                return False
            for claim in claims:
                if self._claims.get(claim) is session:
                    del self._claims[claim]
            self._members = tuple(member for member in self._members if member is not session)
            self.leaves[reason] += 1
            return True

    def stats(self) -> ServerStats:
        """The counters now: closed connections plus the live ones."""
        with self.lock:
            live, totals, leaves = list(self._sessions), Counter(self.counted), dict(self.leaves)
            users_now, users_peak = len(self._members), self.users_peak
        sendq_peak = self.sendq_peak
        for session in live:
            for name in SESSION_COUNTERS:
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
            refused_busy=totals["refused_busy"],
            registration_timeouts=totals["registration_timeouts"],
            leaves=leaves,
            sendq_peak_bytes=sendq_peak,
            errors=totals["errors"],
        )
