"""``python -m chat demo``: a server and four simulated users talk for a few seconds.

The demo computes; :mod:`chat.cli` prints what it returns.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from chat.protocol import Left
from chat.tcp.client import ChatClient
from chat.tcp.server import ChatServer, ServerStats

USERS = ("Алиса", "bob", "carol", "Дмитрий")
VIEWER = "Алиса"

# (who, what they type).  Together they show every command, a private
# message, a rename, a leave, and an escape sequence made harmless.
SCRIPT = (
    ("Алиса", "Привет всем! Это чат на socket и threading."),
    ("bob", "hi Алиса, hi everyone"),
    ("carol", "/me waves"),
    ("Дмитрий", "Добрый вечер. Кириллица доходит целой?"),
    ("Алиса", "Целой: сервер собирает строки из байтов, а не из recv()."),
    ("bob", "/msg Алиса this one is just for you"),
    ("Алиса", "/who"),
    ("carol", "/nick Карина"),
    ("Дмитрий", "\x1b[2J\x1b[31mthis tried to wipe your screen"),
    ("Алиса", "Карина, красивое имя!"),
    ("bob", "/quit пора бежать"),
)


@dataclass(frozen=True)
class DemoResult:
    viewer: str
    transcript: list[str]  # the lines the viewer received, as the server sent them
    stats: ServerStats
    threads_before: int
    threads_after: int


def run_demo(seconds: float = 3.0) -> DemoResult:
    """Run the scripted conversation over ``seconds`` and return what the viewer saw."""
    threads_before = threading.active_count()
    pause_s = seconds / len(SCRIPT)
    with ChatServer() as server:
        clients = {name: ChatClient().connect(server.server_address, name) for name in USERS}
        try:
            for who, line in SCRIPT:
                time.sleep(pause_s)  # a human pace: this is a demo, not a test
                clients[who].send(line)
            viewer = clients[VIEWER]
            viewer.wait_for(lambda event: isinstance(event, Left) and event.name == "bob")
            stats = server.stats()
        finally:
            for client in clients.values():
                client.close()
    return DemoResult(VIEWER, viewer.lines(), stats, threads_before, threading.active_count())
