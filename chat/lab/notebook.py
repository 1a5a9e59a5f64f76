"""What the notebooks call: the scale switch, the measurements, and small demonstrations on real sockets.

The notebooks narrate; this module and the rest of the package compute.

- ``CHAT_LAB_SCALE=quick`` (the default, and CI's): every experiment runs
  live, in seconds; :func:`chat.reporting.canvas.beside_stored` shows the
  report's stored full run beside a live figure, labelled as stored.
- ``CHAT_LAB_SCALE=full``: the notebooks show the measurements of the lab
  report (``report/results``, made by ``python -m chat report``), and save
  their figures under ``report/figures`` with the report's names; where a
  result is missing, the full experiment runs and is stored there.

The measurements read the server's memory, CPU and threads from Linux's
``/proc``.  Elsewhere :func:`results` shows the stored full run instead of
measuring, and says so; the ``%%linux_only`` cell magic (registered when this
module is imported in IPython) skips a cell that shows what only Linux does.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
import time
from dataclasses import dataclass

from chat import protocol
from chat.lab import bench
from chat.lab import results as lab_results
from chat.lab.scale import REPORT_DIR, scale, stored_label, stored_results
from chat.protocol import ChatMessage, Joined, Left
from chat.tcp.client import ChatClient, connect
from chat.tcp.server import ChatServer, ServerStats

log = logging.getLogger(__name__)  # a warning shows under the cell that caused it (stderr), as in any program

SOCKET_TIMEOUT_S = 5.0
MAX_STALLED_MESSAGES = 10_000  # far more than any queue and kernel buffer hold: the stalled user is gone first


LINUX = sys.platform.startswith("linux")


def results(scenario: str, *, users=None, rates=None, seconds=None) -> dict:
    """One scenario's measurements at the current scale (see the module docstring), with a progress bar.

    ``users``, ``rates`` and ``seconds`` change the sizes of a live run (see
    :func:`chat.lab.bench.run_scenario`), for example
    ``results("latency", rates=[250, 1000], seconds=4)``.
    """
    sizes = {key: value for key, value in (("users", users), ("rates", rates), ("seconds", seconds)) if value is not None}
    if not LINUX:
        log.warning("%s: this machine is not Linux, whose /proc the measurements read; here is the %s",
                    scenario, stored_label(stored_results(scenario)))
        return stored_results(scenario)
    if scale() == "quick" or sizes:
        return _with_progress(scenario, "quick" if scale() == "quick" else "full", sizes)
    stored = REPORT_DIR / "results" / f"{scenario}.json"
    if stored.exists():
        return lab_results.load(stored)
    result = _with_progress(scenario, "full", {})
    lab_results.save(result, stored.parent)
    return result


def _with_progress(scenario: str, mode: str, sizes: dict) -> dict:
    from tqdm.auto import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: the notebooks check that no thread is left behind
    with tqdm(desc=scenario, unit=" run", leave=False) as bar:
        def step(label: str) -> None:  # called as each run starts
            bar.update(0 if bar.postfix is None else 1)
            bar.set_postfix_str(label)

        return bench.run_scenario(scenario, mode, step, **sizes)


def _register_linux_only() -> None:
    """``%%linux_only`` at the top of a cell: run it on Linux; elsewhere say that it was skipped, and why."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return

    def linux_only(line: str, cell: str):
        if LINUX:
            shell.run_cell(cell)  # its output and its last value are shown as for any cell
            return None
        log.warning("skipped: this cell shows what Linux does%s, and this is %s",
                    f" ({line.strip()})" if line.strip() else "", sys.platform)
        return None

    shell.register_magic_function(linux_only, magic_kind="cell")


_register_linux_only()


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


JUPYTER_MODULES = ("zmq", "ipykernel", "jupyter_client", "IPython", "tornado")


def threads_left_behind(before: set[threading.Thread]) -> list[str]:
    """The names of threads running now that were not in ``before``, Jupyter's own left out.

    pyzmq, which carries the kernel's messages, starts a garbage-collector
    thread the first time a large output (a figure) is sent: it is the
    kernel's, not the chat's.
    """
    return sorted(thread.name for thread in threading.enumerate()
                  if thread not in before and not type(thread).__module__.startswith(JUPYTER_MODULES))


def wait_until(condition, timeout_s: float = SOCKET_TIMEOUT_S) -> None:
    """Wait until ``condition()`` is true, checking every few milliseconds; TimeoutError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"still not true after {timeout_s} s")
        time.sleep(0.005)


def wait_for_bytes(sock: socket.socket, count: int, timeout_s: float = SOCKET_TIMEOUT_S) -> int:
    """Wait until ``count`` bytes are waiting to be read (without reading them); returns how many."""
    deadline = time.monotonic() + timeout_s
    while (waiting := _bytes_waiting(sock, count + 65536)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {waiting} of {count} bytes arrived")
        time.sleep(0.001)
    return waiting


def _bytes_waiting(sock: socket.socket, up_to: int) -> int:
    """How many bytes are waiting (at most ``up_to``), by peeking: portable, unlike ``ioctl(FIONREAD)``."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return len(sock.recv(up_to, socket.MSG_PEEK))
    except BlockingIOError:
        return 0
    finally:
        sock.settimeout(timeout)


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


@dataclass(frozen=True)
class StalledRun:
    """What :func:`talk_past_stalled_user` saw."""

    messages: int  # messages Алиса sent; each reached Карина before the next one was sent
    seconds: float  # from the first message to Карина hearing that соня left
    ended_by: Left  # what Карина was told at the end
    relayed_bytes: int  # the chat lines the server took on for соня before it dropped her
    stats: ServerStats  # the server's counters at the end

    @property
    def kernel_bytes(self) -> int:
        """About how much of ``relayed_bytes`` the kernel took: all but what was in our queue at the drop."""
        return self.relayed_bytes - self.stats.sendq_peak_bytes


def talk_past_stalled_user(text: str = "ж" * 1000, **server_options) -> StalledRun:
    """Алиса talks to Карина on a fresh ``ChatServer(**server_options)`` while соня never reads.

    The talk ends when Карина is told that соня left (see :func:`talk_until_somebody_leaves`).
    How much was relayed to соня comes from the server's counters: every
    message went to Карина and, until соня was dropped, to соня too.
    """
    with ChatServer(**server_options) as server, stalled_user(server.server_address, "соня"), \
            connect(server.server_address, "Алиса") as sender, \
            connect(server.server_address, "Карина") as reader:
        sender.wait_for(Joined)
        deliveries_before = server.stats().deliveries
        started = time.monotonic()
        messages, left = talk_until_somebody_leaves(sender, reader, text)
        seconds = time.monotonic() - started
        sender.who()  # answered after Алиса's last message was relayed: the counters are complete
        stats = server.stats()
    to_stalled = stats.deliveries - deliveries_before - messages  # Карина got every one of them
    relayed = sum(len(protocol.encode_event(ChatMessage("Алиса", f"{number} {text}")))
                  for number in range(to_stalled))
    return StalledRun(messages, seconds, left, relayed, stats)


def talk_until_somebody_leaves(sender: ChatClient, reader: ChatClient, text: str) -> tuple[int, Left]:
    """Send numbered messages, each once ``reader`` has the one before, until ``reader`` hears somebody left.

    If anything made the server wait for a user who does not read, this loop
    would stop.  Returns how many messages were sent and the departure.
    """
    for number in range(MAX_STALLED_MESSAGES):
        sender.say(f"{number} {text}")
        event = reader.wait_for((ChatMessage, Left))  # each message arrives before the next is sent...
        if isinstance(event, Left):  # ...until a departure is announced
            return number + 1, event
    raise TimeoutError(f"nobody left after {MAX_STALLED_MESSAGES} messages")


# -- the build-it-yourself notebook ------------------------------------------------------------


def step_source(number: int) -> str:
    """The whole source of step ``number``'s server (:mod:`chat.lab.steps`), as the student would type it."""
    import inspect

    from chat.lab import steps

    return inspect.getsource(steps.step(number))


def step_changes(number: int) -> str:
    """What changed in the code from step ``number - 1`` to step ``number``, as a unified diff.

    The module docstrings (each step's explanation) and the line that prints
    the step's number are left out: what remains is what the student changes.
    """
    import ast
    import difflib
    import re

    def code(step: int) -> list[str]:
        source = step_source(step)
        start = ast.parse(source).body[0].end_lineno  # after the docstring
        return [line for line in source.splitlines()[start:] if not re.search(r"step \d listening", line)]

    return "\n".join(difflib.unified_diff(code(number - 1), code(number), f"step {number - 1}", f"step {number}",
                                          lineterm="", n=1))


def side_by_side(cards: dict) -> str:
    """A Markdown table of scorecards (``{label: Scorecard}``): a row per check, a column per card; · if not run."""
    verdicts = {label: {result.id: result.verdict.value for result in card.results} for label, card in cards.items()}
    titles: dict[str, str] = {}
    for card in cards.values():
        for result in card.results:
            if result.verdict.value != "SKIP":
                titles.setdefault(result.id, result.title)
    lines = ["| check | " + " | ".join(cards) + " |", "|---|" + "---|" * len(cards)]
    lines += [f"| {title} | " + " | ".join(verdicts[label].get(check, "·") for label in cards) + " |"
              for check, title in titles.items()]
    return "\n".join(lines)


def load_through_checker(address: tuple, rate_per_s: float = 1000.0, users: int = 20, seconds: float = 2.0) -> dict:
    """The checker's light load at ``rate_per_s`` against any line-based server: delivered, expected, p50, p99 (ms).

    Unlike :func:`chat.lab.loadgen.run_load`, it needs no welcome line, so it
    measures a student's server (or a step's) the same way as ours.
    """
    from chat.lab.checker.common import Context
    from chat.lab.checker.dialect import Dialect
    from chat.lab.checker.load import light_load

    delivery, _ = light_load(Context(tuple(address), Dialect()), users=users, rate_per_s=rate_per_s, seconds=seconds)
    return delivery.data
