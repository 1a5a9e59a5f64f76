"""What every check uses: its context, its verdict, how it shows what it saw, the titles and hints."""

from __future__ import annotations

from dataclasses import dataclass

from chat.lab.checker.dialect import Dialect
from chat.lab.checker.peers import Crowd
from chat.lab.checker.scorecard import CheckResult, Verdict
from chat.lab.checker.target import LaunchedServer

DELIVERY_S = 3.0  # how long a message may take to reach everybody before it counts as lost
NAGLE_P99_MS = 25.0  # a p99 above this at a light load is Nagle's algorithm at work (delayed ACKs: ~40 ms)
HELD_UP_WARN_S = 1.0  # others waiting longer than this for a message, with a stalled user, is worth a warning
STALLED_WAIT_S = 4.0  # how long the others may wait for the last messages, with a user who reads nothing
GREETING = "привет всем"


@dataclass
class Context:
    """What every check needs: where the server is, how to speak to it, and its process if the checker started it."""

    address: tuple
    dialect: Dialect
    process: LaunchedServer | None = None
    timeout_s: float = 5.0
    crowds: int = 0

    def crowd(self) -> Crowd:
        """A new crowd, whose names no earlier crowd used (a server may not have forgotten those yet)."""
        self.crowds += 1
        return Crowd(self.address, self.dialect, self.timeout_s, suffix=str(self.crowds))

def show(text: str, limit: int = 70) -> str:
    """A received line as evidence: its repr, cut to ``limit`` characters."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 5] + "...'"

def around(text: str, name: str) -> str:
    """The line of ``text`` that first names ``name``, from a little before the name (lines may be long)."""
    at = text.find(name)
    if at < 0:
        return ""
    start = max(text.rfind("\n", 0, at) + 1, at - 12)
    end = text.find("\n", at)
    return text[start : end if end >= 0 else len(text)]

def result(check: str, verdict: Verdict, evidence: str, hint: str = "", **data) -> CheckResult:
    return CheckResult(check, TITLES[check], verdict, evidence, hint if verdict is not Verdict.PASS else "", data=data)


TITLES = {
    "register": "users register",
    "broadcast": "message reaches the others",
    "two-in-one": "two messages in one send",
    "long-message": "2,000-byte message",
    "cyrillic-bytes": "Cyrillic, one byte at a time",
    "join-leave": "join and leave seen",
    "reset-mid-line": "reset in mid-line",
    "invalid-utf8": "invalid UTF-8",
    "stalled-reader": "one user stops reading",
    "light-load": "light load: delivery",
    "latency": "light load: latency",
    "churn": "users come and go",
    "long-line-memory": "endless line: memory",
    "threads-left": "threads after all left",
    "sigint": "Ctrl+C",
}

HINTS = {
    "framing": "TCP is a byte stream: keep a buffer per client, split it at \"\\n\", relay whole lines only",
    "utf8": "decode whole lines, not single recv() results (or use an incremental decoder); "
            "half a letter is not an error",
    "stalled": "don't send to every client from the sender's thread with a blocking send(): give each client a "
               "bounded queue and its own writer, and drop a client whose queue is full",
    "load": "guard the shared list of clients with a lock and send whole lines with sendall()",
    "nagle": "set TCP_NODELAY on every client socket: "
             "sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)",
    "lock": "change the shared list of clients only under a lock, and iterate over a copy",
}
