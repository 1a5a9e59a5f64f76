"""Run a program on a pseudo-terminal and keep what its screen shows.

Used by the tests of the console client and by the report, whose session
transcript is the rendered screens of real console clients.  Rendering uses
pyte, a terminal emulator, imported only when a screen is needed.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable

DEFAULT_COLUMNS, DEFAULT_LINES = 100, 30
READ_BYTES = 65536


class TerminalSession:
    """A command on its own pseudo-terminal.

    >>> with TerminalSession(["python", "-m", "chat", "client", "bob"]) as term:  # doctest: +SKIP
    ...     term.wait_for_text("welcome")
    ...     term.type("hello\\r")
    """

    def __init__(self, argv: list[str], columns: int = DEFAULT_COLUMNS, lines: int = DEFAULT_LINES,
                 env: dict[str, str] | None = None) -> None:
        import pyte

        self.screen = pyte.Screen(columns, lines)
        self._stream = pyte.ByteStream(self.screen)
        self.output = bytearray()
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
        child_env = {**os.environ, "TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1", **(env or {})}
        try:
            self.process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=child_env,
                                            start_new_session=True, close_fds=True)
        finally:
            os.close(slave)
        self._master = master
        self._eof = False

    def type(self, text: str) -> None:
        """Send keystrokes ("\\r" is Enter, "\\x04" is Ctrl+D, "\\x03" is Ctrl+C)."""
        os.write(self._master, text.encode())

    def read(self, timeout_s: float) -> bool:
        """Read what the program wrote within ``timeout_s``; False once it closed the terminal."""
        if self._eof:
            return False
        ready, _, _ = select.select([self._master], [], [], timeout_s)
        if ready:
            try:
                data = os.read(self._master, READ_BYTES)
            except OSError:  # EIO: every process closed the terminal
                data = b""
            self._eof = not data
            self.output += data
            self._stream.feed(data)
        return not self._eof

    def wait_for(self, condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
        """Read until ``condition()`` holds; TimeoutError (showing the screen) if it doesn't in time."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._eof:
                raise TimeoutError("the screen never showed what was expected:\n" + self.text())
            self.read(min(remaining, 0.5))

    def settle(self, quiet_s: float = 0.1, timeout_s: float = 10.0) -> None:
        """Read until the program has written nothing for ``quiet_s``: the screen is then current."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self._eof:
            before = len(self.output)
            self.read(quiet_s)
            if len(self.output) == before:
                return

    def wait_for_text(self, text: str, timeout_s: float = 10.0) -> None:
        self.wait_for(lambda: text in self.text(), timeout_s)

    def display(self) -> list[str]:
        """The screen's lines, trailing blanks removed."""
        return [line.rstrip() for line in self.screen.display]

    def text(self) -> str:
        return "\n".join(self.display()).rstrip("\n")

    def wait_exit(self, timeout_s: float = 10.0) -> int:
        """Read until the program exits and return its exit code."""
        deadline = time.monotonic() + timeout_s
        while self.read(max(0.0, min(0.2, deadline - time.monotonic()))):
            if time.monotonic() > deadline:
                break
        return self.process.wait(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        os.close(self._master)

    def __enter__(self) -> TerminalSession:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def python_command(*args: str) -> list[str]:
    """``python -m chat ARGS`` with this interpreter."""
    return [sys.executable, "-m", "chat", *args]
