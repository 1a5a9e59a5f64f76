"""Test helpers: a raw-socket line client and a condition waiter.  Nothing here sleeps blindly."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable

from chat import protocol

SOCKET_TIMEOUT_S = 5.0


def wait_until(condition: Callable[[], object], timeout_s: float = 5.0, interval_s: float = 0.005) -> object:
    """Poll ``condition`` until it is truthy; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s: {condition}")
        time.sleep(interval_s)


class RawClient:
    """A client on a bare socket, as a test (or ``nc``) would be: every read has a timeout."""

    def __init__(self, address, timeout_s: float = SOCKET_TIMEOUT_S, nodelay: bool = True,
                 rcvbuf_bytes: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET)
        self.sock.settimeout(timeout_s)
        if rcvbuf_bytes is not None:  # before connecting, so the advertised window is small too
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf_bytes)
        self.sock.connect(address)
        if nodelay:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.decoder = protocol.LineDecoder(1 << 20)
        self.pending: list[str] = []
        self.eof = False

    def send_line(self, line: str) -> None:
        self.sock.sendall(protocol.encode_line(line))

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_line(self, timeout_s: float = SOCKET_TIMEOUT_S) -> str:
        """The next line; AssertionError at EOF, TimeoutError if none in time."""
        deadline = time.monotonic() + timeout_s
        while not self.pending:
            if self.eof:
                raise AssertionError("the server closed the connection")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no line from the server in time")
            self.sock.settimeout(remaining)
            data = self.sock.recv(65536)
            self.eof = not data
            self.pending += [line for line in self.decoder.feed(data) if isinstance(line, str)]
        return self.pending.pop(0)

    def read_event(self, timeout_s: float = SOCKET_TIMEOUT_S) -> protocol.ServerEvent:
        return protocol.parse_event(self.read_line(timeout_s))

    def read_until(self, match: Callable[[protocol.ServerEvent], bool], timeout_s: float = SOCKET_TIMEOUT_S) -> list:
        """Events up to and including the first that matches."""
        deadline = time.monotonic() + timeout_s
        seen = []
        while True:
            event = self.read_event(max(0.0, deadline - time.monotonic()))
            seen.append(event)
            if match(event):
                return seen

    def read_to_eof(self, timeout_s: float = SOCKET_TIMEOUT_S) -> list[str]:
        """Every line until the server closes the connection."""
        lines = []
        while True:
            try:
                lines.append(self.read_line(timeout_s))
            except AssertionError:
                return lines

    def register(self, name: str) -> protocol.Reply:
        self.send_line(name)
        events = self.read_until(lambda event: isinstance(event, (protocol.Reply, protocol.Error)) and (
            not isinstance(event, protocol.Reply) or event.topic == "welcome"))
        if not isinstance(events[-1], protocol.Reply):
            raise AssertionError(f"registration refused: {events[-1]}")
        return events[-1]

    def abort(self) -> None:
        """Close with a reset (SO_LINGER 0) instead of a clean FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        self.sock.close()


class TmuxPane:
    """A command in a detached tmux window: a real terminal that reflows its text when resized.

    Its own tmux server (``-L``), killed on close; every tmux call has a timeout.
    """

    def __init__(self, argv: list[str], columns: int, rows: int) -> None:
        import shlex
        import shutil
        import uuid

        if shutil.which("tmux") is None:
            raise FileNotFoundError("tmux is not installed")
        import tempfile

        self._socket = f"chat-test-{uuid.uuid4().hex[:8]}"
        self._status = tempfile.NamedTemporaryFile(prefix="chat-tmux-", suffix=".status", delete=False).name
        command = " ".join(map(shlex.quote, argv))  # its exit code goes to a file, then the pane stays
        self._tmux("new-session", "-d", "-s", "chat", "-x", str(columns), "-y", str(rows),
                   f"{command}; echo $? > {shlex.quote(self._status)}; sleep 60")

    def _tmux(self, *args: str) -> str:
        import subprocess

        done = subprocess.run(["tmux", "-L", self._socket, *args], capture_output=True, text=True, timeout=10)
        if done.returncode:
            raise RuntimeError(f"tmux {args[0]} failed: {done.stderr.strip()}")
        return done.stdout

    def type(self, keys: str) -> None:
        self._tmux("send-keys", "-t", "chat", "-l", keys)

    def press(self, key: str) -> None:
        self._tmux("send-keys", "-t", "chat", key)

    def resize(self, columns: int, rows: int) -> None:
        self._tmux("resize-window", "-t", "chat", "-x", str(columns), "-y", str(rows))

    def rows(self) -> list[str]:
        return [row.rstrip() for row in self._tmux("capture-pane", "-p", "-t", "chat").split("\n")]

    def wait_for(self, condition: Callable[[list[str]], bool], timeout_s: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout_s
        while not condition(rows := self.rows()):
            if time.monotonic() > deadline:
                raise AssertionError("the pane never showed what was expected:\n" + "\n".join(rows))
            time.sleep(0.05)
        return rows

    def exit_status(self, timeout_s: float = 10.0) -> int:
        import os

        deadline = time.monotonic() + timeout_s
        while not (written := open(self._status).read().strip()):
            if time.monotonic() > deadline:
                raise AssertionError("the command in the pane did not exit:\n" + "\n".join(self.rows()))
            time.sleep(0.05)
        os.unlink(self._status)
        return int(written)

    def close(self) -> None:
        import contextlib
        import os

        with contextlib.suppress(RuntimeError):
            self._tmux("kill-server")  # the pane's processes end with it (SIGHUP)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._status)

    def __enter__(self) -> TmuxPane:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
