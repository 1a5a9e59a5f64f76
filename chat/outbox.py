"""A bounded queue of bytes for one client, drained by that client's writer thread."""

from __future__ import annotations

import queue
import threading

_CLOSED = None  # sentinel: nothing more will be queued


class Outbox:
    """Bytes waiting to go to one client, at most ``limit_bytes`` of them.

    Any thread may :meth:`put`; one writer thread calls :meth:`take`, sends
    the bytes, then reports them with :meth:`sent`.  ``take`` returns
    everything queued since the last call as one ``bytes``, so a writer that
    fell behind catches up with one ``sendall`` instead of many.

    The bound counts bytes from ``put`` until ``sent``, so it also covers the
    batch the writer is sending.  A ``put`` over the bound returns False: the
    caller decides what to do with a client that can't keep up.

    >>> box = Outbox(limit_bytes=8)
    >>> box.put(b"abc"), box.put(b"def"), box.put(b"ghi")
    (True, True, False)
    >>> box.take()
    b'abcdef'
    """

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._queued_bytes = 0
        self._closed = False

    @property
    def queued_bytes(self) -> int:
        """Bytes put and not yet reported sent."""
        return self._queued_bytes

    def put(self, data: bytes) -> bool:
        """Queue ``data``; False if that would pass the bound (nothing is queued then).

        After :meth:`close` the data is silently dropped and True is returned:
        the client is leaving anyway.
        """
        with self._lock:
            if self._closed:
                return True
            if self._queued_bytes + len(data) > self.limit_bytes:
                return False
            self._queued_bytes += len(data)
        self._queue.put(data)
        return True

    def close(self) -> None:
        """Accept nothing more; ``take`` returns what is queued, then None."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(_CLOSED)

    def take(self) -> bytes | None:
        """Block until bytes are queued and return all of them; None once closed and empty."""
        first = self._queue.get()
        if first is _CLOSED:
            self._queue.put(_CLOSED)  # closed stays closed for any later take
            return None
        chunks = [first]
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _CLOSED:
                self._queue.put(_CLOSED)  # seen again by the next take
                break
            chunks.append(item)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def sent(self, size_bytes: int) -> None:
        """Report that ``size_bytes`` taken earlier have left the process."""
        with self._lock:
            self._queued_bytes -= size_bytes
