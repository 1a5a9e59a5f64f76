"""What the notebooks call: the scale switch, the measurements, and small socket demonstrations.

The notebooks narrate; this module and the rest of the package compute.

- ``CHAT_LAB_SCALE=quick`` (the default, and CI's): every experiment runs
  live, in seconds.
- ``CHAT_LAB_SCALE=full``: the notebooks show the measurements of the lab
  report (``report/results``, made by ``python -m chat report``), and save
  their figures under ``report/figures`` with the report's names; where a
  result is missing, the full experiment runs and is stored there.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import struct
import termios
import time
from pathlib import Path

from chat import bench, plots, protocol

SCALE_VARIABLE = "CHAT_LAB_SCALE"
SCALES = ("quick", "full")
REPORT_DIR = Path(__file__).resolve().parent.parent / "report"  # the repository's, with the editable install
SOCKET_TIMEOUT_S = 5.0


def scale() -> str:
    """``quick`` or ``full``, from the environment (default ``quick``)."""
    value = os.environ.get(SCALE_VARIABLE, "quick").strip().lower()
    if value not in SCALES:
        raise ValueError(f"{SCALE_VARIABLE} is 'quick' or 'full', not {value!r}")
    return value


def results(scenario: str) -> dict:
    """One scenario's measurements at the current scale (see the module docstring)."""
    if scale() == "quick":
        return bench.run_scenario(scenario, "quick")
    stored = REPORT_DIR / "results" / f"{scenario}.json"
    if stored.exists():
        return bench.load(stored)
    result = bench.run_scenario(scenario, "full")
    bench.save(result, stored.parent)
    return result


def figure(name: str, drawing):
    """Show a figure; at full scale also save it as ``report/figures/NAME.svg``."""
    if scale() == "full" and REPORT_DIR.is_dir():
        plots.save(drawing, REPORT_DIR / "figures" / f"{name}.svg")
    return drawing


# -- small demonstrations with real sockets --------------------------------------------------


@contextlib.contextmanager
def tcp_pair(timeout_s: float = SOCKET_TIMEOUT_S):
    """Two connected TCP sockets on 127.0.0.1, ``(sender, receiver)``, closed afterwards."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        sender = socket.create_connection(listener.getsockname(), timeout=timeout_s)
        receiver, _ = listener.accept()
    receiver.settimeout(timeout_s)
    with sender, receiver:
        yield sender, receiver


def wait_for_bytes(sock: socket.socket, count: int, timeout_s: float = SOCKET_TIMEOUT_S) -> int:
    """Wait until ``count`` bytes are waiting to be read (without reading them); returns how many."""
    deadline = time.monotonic() + timeout_s
    while (waiting := _bytes_waiting(sock)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {waiting} of {count} bytes arrived")
        time.sleep(0.001)
    return waiting


def _bytes_waiting(sock: socket.socket) -> int:
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0" * 4))[0]


def stalled_user(address: tuple, name: str) -> socket.socket:
    """A user who registers and then never reads again (with a tiny receive buffer): the slow consumer."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(SOCKET_TIMEOUT_S)
    sock.connect(address)
    sock.sendall(protocol.encode_line(name))
    decoder = protocol.LineDecoder()
    while data := sock.recv(4096):  # read up to the welcome; after that, never again
        for line in decoder.feed(data):
            event = protocol.parse_event(line) if isinstance(line, str) else None
            if isinstance(event, protocol.Error):
                raise ConnectionError(f"{name} was refused: {protocol.format_event(event)}")
            if isinstance(event, protocol.Reply) and event.topic == "welcome":
                return sock
    raise ConnectionError(f"{name}: the server closed the connection")
