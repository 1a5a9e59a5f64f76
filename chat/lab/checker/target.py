"""A server the checker starts itself (``python -m chat check -- COMMAND``): its port, memory, threads, Ctrl+C.

The command runs in a process of its own, its output drained by a thread (a
student's server prints every message, and a full pipe would stop it).  The
port is the one given, or ``{port}`` in the command is replaced by a free
one, or it is found out: the first TCP port the process listens on, read
from ``/proc`` (Linux).  However it ends, the process is gone when the
checker is (:meth:`LaunchedServer.stop`).
"""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from chat.lab.harness import read_proc_status

LISTEN = "0A"  # the state of a listening socket in /proc/net/tcp


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def listening_ports(pid: int) -> list[int]:
    """The TCP ports process ``pid`` listens on (IPv4 and IPv6), from its descriptors and /proc/net/tcp."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return []
    ports = []
    for table in ("tcp", "tcp6"):
        try:
            rows = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == LISTEN and fields[9] in inodes:
                ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return sorted(set(ports))


class LaunchedServer:
    """A server command in a process of its own, with what the process-level checks need."""

    def __init__(self, command: list[str], host: str = "127.0.0.1", port: int | None = None,
                 startup_s: float = 15.0) -> None:
        if not command:
            raise ValueError("no command to start the server with")
        if any("{port}" in part for part in command):
            port = port or free_port(host)
            command = [part.replace("{port}", str(port)) for part in command]
        self.command, self.host, self.port, self.startup_s = command, host, port, startup_s
        self.output: collections.deque[str] = collections.deque(maxlen=40)  # the last lines it printed
        self.process: subprocess.Popen | None = None
        self._drain: threading.Thread | None = None
        self._interrupted_at: float | None = None
        self.exit_seconds = 0.0

    def __enter__(self) -> LaunchedServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> LaunchedServer:
        """Start the command and wait until it accepts connections; RuntimeError if it does not."""
        self.process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self._drain = threading.Thread(target=self._read_output, name="check-server-output", daemon=True)
        self._drain.start()
        deadline = time.monotonic() + self.startup_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited at once (code {self.process.returncode}): {self.last_output()}")
            ports = listening_ports(self.process.pid)
            if self.port is None and ports:
                self.port = ports[0]
            if self.port is not None and (self.port in ports if Path("/proc/self/net/tcp").exists() else self._accepts()):
                return self  # listening, seen without connecting: a probe would be a user to some servers
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the server did not accept connections within {self.startup_s:g} s: {self.last_output()}")

    def _accepts(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0):
                pass  # a probe, where /proc can't tell: the server sees a connection come and go
            return True
        except OSError:
            return False

    def _read_output(self) -> None:
        for raw in self.process.stdout:
            self.output.append(raw.decode("utf-8", errors="replace").rstrip())

    def last_output(self, lines: int = 3) -> str:
        shown = " | ".join(list(self.output)[-lines:])
        return repr(shown[-200:]) if shown else "(it printed nothing)"

    @property
    def address(self) -> tuple:
        return self.host, self.port

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def rss_bytes(self) -> int:
        return read_proc_status(self.pid).get("VmRSS", 0)

    def threads(self) -> int:
        return read_proc_status(self.pid).get("Threads", 0)

    def interrupt(self) -> None:
        """Ctrl+C: SIGINT to the process."""
        self._interrupted_at = time.monotonic()
        self.process.send_signal(signal.SIGINT)

    def wait(self, timeout_s: float) -> bool:
        """True if the process exited within ``timeout_s``."""
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return False
        if self._interrupted_at is not None:
            self.exit_seconds = time.monotonic() - self._interrupted_at
        return True

    def stop(self) -> None:
        """Make sure the process is gone: SIGTERM, then SIGKILL; the output thread is joined."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(3.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5.0)
        if self._drain is not None:
            self._drain.join(5.0)
        self.process.stdout.close()
