"""The floor under the flusher: what the kernel alone charges for its writes.

The flusher's work per client per sweep is one non-blocking ``send`` of the
bytes waiting for that client.  :func:`kernel_send_floor` times exactly that
from a plain loop, with no chat server and no Python bookkeeping around it:
N loopback TCP connections, and one ``send(MSG_DONTWAIT)`` of a few lines to
each, sweep after sweep.  Our flusher's CPU per send divided by this is what
the server adds on top of the kernel (see the scaling benchmark).
"""

from __future__ import annotations

import contextlib
import socket
import time

DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
MAX_BYTES_PER_SOCKET = 256 * 1024  # what a connection is sent in all: far below its buffers, nothing blocks


def kernel_send_floor(clients: int, payload_bytes: int, sweeps: int = 50) -> dict:
    """CPU and wall time per ``send`` of ``payload_bytes`` to each of ``clients`` loopback sockets, per sweep.

    Nobody reads the other ends during the timing; the sweeps are capped so
    that every socket takes all it is given (a send that would block is not
    what the flusher's floor is).  Returns the figures in microseconds.
    """
    sweeps = max(1, min(sweeps, MAX_BYTES_PER_SOCKET // max(1, payload_bytes)))
    payload = b"x" * (max(1, payload_bytes) - 1) + b"\n"
    with contextlib.ExitStack() as stack, socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(5)
        senders = []
        for _ in range(clients):
            sender = stack.enter_context(socket.create_connection(listener.getsockname(), timeout=5))
            sender.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            stack.enter_context(listener.accept()[0])
            senders.append(sender)
        short = 0
        cpu_started, wall_started = time.thread_time_ns(), time.perf_counter_ns()
        for _ in range(sweeps):
            for sender in senders:
                try:
                    short += sender.send(payload, DONTWAIT) < len(payload)
                except BlockingIOError:
                    short += 1
        cpu_ns, wall_ns = time.thread_time_ns() - cpu_started, time.perf_counter_ns() - wall_started
    sends = clients * sweeps
    return {"clients": clients, "payload_bytes": len(payload), "sends": sends, "sends_not_whole": short,
            "cpu_us_per_send": round(cpu_ns / sends / 1000, 3), "wall_us_per_send": round(wall_ns / sends / 1000, 3)}
