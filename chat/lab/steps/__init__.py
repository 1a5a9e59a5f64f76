"""The six servers of the build-it-yourself notebook, each a small, complete program a student could write.

1. :mod:`~chat.lab.steps.step1_echo` - one client, an echo: socket, bind, listen, accept, recv/sendall;
2. :mod:`~chat.lab.steps.step2_threads` - a thread per client, a list of users, a broadcast (the textbook design);
3. :mod:`~chat.lab.steps.step3_framing` - a buffer that yields whole lines, decoded once complete;
4. :mod:`~chat.lab.steps.step4_lock` - a lock around the list of users;
5. :mod:`~chat.lab.steps.step5_nodelay` - ``TCP_NODELAY``;
6. :mod:`~chat.lab.steps.step6_queues` - a bounded queue and a writer thread per client.

Each runs on its own (``python -m chat.lab.steps.step3_framing 8000``) and has
the same shape: ``ChatServer(host, port)``, ``serve_forever()``, ``stop()``,
``address``.  :func:`running` starts one in a background thread, as the
notebook and the tests do.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Iterator
from types import ModuleType

STEPS = ("step1_echo", "step2_threads", "step3_framing", "step4_lock", "step5_nodelay", "step6_queues")


def step(number: int) -> ModuleType:
    """The module of step ``number`` (1-6)."""
    return importlib.import_module(f"chat.lab.steps.{STEPS[number - 1]}")


@contextlib.contextmanager
def running(number_or_class: int | type, host: str = "127.0.0.1", port: int = 0) -> Iterator:
    """A step's server (by number, or a class of the same shape: your own), serving in a background thread.

    Port 0: a free one (``server.address`` says which).  Stopped, and its threads joined, afterwards.
    """
    server_class = step(number_or_class).ChatServer if isinstance(number_or_class, int) else number_or_class
    server = server_class(host, port)
    thread = threading.Thread(target=server.serve_forever, name=f"{server_class.__module__}-accept", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop()
        thread.join(5)
