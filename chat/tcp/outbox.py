"""The bytes waiting to go to each client, and the two ways they leave.

- **The flusher** (one thread for the whole server) sweeps every outbox that
  has bytes and writes them with *non-blocking* sends.  While it sweeps, new
  lines pile up in the outboxes and leave together in the next sweep: the
  busier the server, the bigger each write (smart batching, no timer).  At low
  load a sweep carries one line, a few microseconds after it was queued.
- **The client's own writer** takes over when its socket would block: it
  sends with a blocking ``sendall``, so a client that stops reading stalls
  nothing but its own writer.  Once the backlog is gone, the flusher takes
  the client back.

Whoever writes to a socket first sets ``_busy``; the small per-client lock
guards that flag and the queue and is never held during a send, so bytes
never interleave and stay in order.

"Too slow" means the client, never the server: a queue over its bound drops
the client only if its socket refused bytes (its writer is on it).  If the
socket took all it was given and the queue filled because the server's own
writes fell behind (the flusher starved of CPU), the thread putting waits for
room instead: a reader, it stops reading, and TCP pushes back on its sender.
"""

from __future__ import annotations

import collections
import logging
import socket
import threading
import time

# Non-blocking for one call, without changing the socket's mode (Linux, macOS).
# Where it does not exist, every client is sent to by its own writer.
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)

log = logging.getLogger(__name__)

# How long a sender waits for the server's own writes to make room before the recipient is
# dropped anyway: far longer than a sweep takes, short enough that nothing waits forever.
SERVER_BEHIND_WAIT_S = 2.0


class Outbox:
    """The queue of one client, at most ``limit_bytes`` waiting.

    Any thread may :meth:`put`.  The flusher calls :meth:`flush`.  The
    client's writer thread loops on :meth:`take`, sends the batch with a
    blocking ``sendall``, and reports it with :meth:`sent`.

    >>> box = Outbox(limit_bytes=8)          # no socket, no flusher: the writer sends all
    >>> box.put(b"abc"), box.put(b"def"), box.put(b"ghi")
    (True, True, False)
    >>> box.take()
    b'abcdef'
    """

    def __init__(self, limit_bytes: int, sock: socket.socket | None = None, flusher: Flusher | None = None) -> None:
        self.limit_bytes = limit_bytes
        self._sock = sock
        self._flusher = flusher if sock is not None and _DONTWAIT else None
        self._lock = threading.Lock()
        self._writer_may_go = threading.Condition(self._lock)
        self._room = threading.Condition(self._lock)  # senders waiting for the server's writes to catch up
        self._waiting_for_room = 0  # how many: the flusher's sweep notifies only when somebody waits
        self._chunks: collections.deque[bytes] = collections.deque()
        self._queued_bytes = 0
        self._busy = False  # somebody is writing to the socket right now
        self._behind = self._flusher is None  # the client's writer, not the flusher, sends
        self._closed = False
        self._marked = False  # on the flusher's list already (guarded by the flusher's lock)
        self.sent_bytes = 0
        self.peak_queued_bytes = 0  # the most this client ever had waiting

    @property
    def queued_bytes(self) -> int:
        """Bytes queued or being sent."""
        return self._queued_bytes

    def put(self, data: bytes, may_wait: bool = True) -> bool:
        """Queue ``data``; False (and nothing queued) if that would pass the bound because the client is too slow.

        If the bound is reached while the client's socket takes everything it
        is given, the server is what is behind: the caller waits for room
        (unless ``may_wait`` is False, as under another lock), up to
        :data:`SERVER_BEHIND_WAIT_S`.  After :meth:`close` data is dropped and
        True returned: the client is leaving.
        """
        with self._lock:
            if self._closed:
                return True
            if self._queued_bytes + len(data) > self.limit_bytes and not (may_wait and self._room_made(len(data))):
                return False
            if self._closed:
                return True
            self._chunks.append(data)
            self._queued_bytes += len(data)
            if self._queued_bytes > self.peak_queued_bytes:
                self.peak_queued_bytes = self._queued_bytes
            if self._behind:
                self._writer_may_go.notify()
                return True
        # Already on the flusher's list?  Then the next sweep takes these bytes too.  (The
        # sweep clears the mark before it flushes, so a stale True can't strand them.)
        if not self._marked:
            self._flusher.mark(self)
        return True

    def _room_made(self, size: int) -> bool:
        """Under the lock, over the bound: wait while only the server's writes are behind; False if the client is."""
        deadline = time.monotonic() + SERVER_BEHIND_WAIT_S
        while self._queued_bytes + size > self.limit_bytes and not self._closed:
            remaining = deadline - time.monotonic()
            if self._behind or remaining <= 0:  # the socket refused bytes: the client doesn't keep up
                return False
            self._waiting_for_room += 1
            try:
                self._room.wait(remaining)
            finally:
                self._waiting_for_room -= 1
        return True

    def _made_room(self) -> None:
        """Under the lock: bytes left, or the outbox closed; a sender waiting for room looks again."""
        if self._waiting_for_room:
            self._room.notify_all()

    def close(self) -> None:
        """Accept nothing more; the writer sends what is queued, then :meth:`take` returns None."""
        with self._lock:
            self._closed = True
            self._writer_may_go.notify()
            self._made_room()

    # -- the flusher's side ---------------------------------------------------------

    def flush(self) -> bool:
        """Write what the socket takes without blocking; hand the rest to the writer.  True if it called ``send``."""
        with self._lock:
            if self._busy or self._behind or self._closed or not self._chunks:
                return False
            data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
            self._chunks.clear()
            self._busy = True
        try:
            sent = self._sock.send(data, _DONTWAIT)
        except OSError:  # full (EAGAIN) or broken: the writer takes over and finds out which
            sent = 0
        with self._lock:
            self._busy = False
            self.sent_bytes += sent
            self._queued_bytes -= sent
            if sent < len(data):
                self._chunks.appendleft(data[sent:])
                self._behind = True
            if self._behind or self._closed:
                self._writer_may_go.notify()
            self._made_room()
        return True

    # -- the writer's side -------------------------------------------------------------

    def take(self) -> bytes | None:
        """For the writer: wait until it is its turn, and return all that is queued.

        Returns None once the outbox is closed and empty.
        """
        with self._lock:
            while self._busy or not (self._chunks and (self._behind or self._closed)):
                if self._closed and not self._chunks and not self._busy:
                    return None
                self._writer_may_go.wait()
            data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
            self._chunks.clear()
            self._busy = True
            return data

    def sent(self, size_bytes: int) -> None:
        """For the writer: the batch from :meth:`take` is sent.  Caught up?  The flusher takes over."""
        with self._lock:
            self._busy = False
            self._queued_bytes -= size_bytes
            self.sent_bytes += size_bytes
            caught_up = not self._chunks and self._flusher is not None
            if caught_up:
                self._behind = False
            self._made_room()


class Flusher:
    """One thread that sweeps outboxes with bytes and writes them without ever blocking.

    Methods for the caller: ``start()``, ``mark(outbox)``, ``stop()``.
    """

    def __init__(self, name: str = "chat-flusher") -> None:
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._marked: list[Outbox] = []
        self._waiting = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        # Written by the flusher's thread only: its sweeps, and the sends they made (one per client with bytes).
        self.sweeps = 0
        self.sends = 0

    def start(self) -> None:
        self._thread.start()

    def mark(self, outbox: Outbox) -> None:
        """``outbox`` has bytes for the next sweep."""
        with self._lock:
            if outbox._marked:
                return
            outbox._marked = True
            self._marked.append(outbox)
            if self._waiting:
                self._work.notify()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._marked and not self._stopping:
                    self._waiting = True
                    self._work.wait()
                    self._waiting = False
                if self._stopping:
                    return
                batch, self._marked = self._marked, []
                for outbox in batch:
                    outbox._marked = False
            self.sweeps += 1
            for outbox in batch:
                try:
                    self.sends += outbox.flush()
                except Exception:  # a bug here must not stop the writes of every client
                    log.exception("flushing %r failed", outbox)

    def stop(self, timeout_s: float = 5.0) -> None:
        with self._lock:
            self._stopping = True
            self._work.notify()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
