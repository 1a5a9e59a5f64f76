"""A real session, for the report: the server and four console clients, each on its own terminal.

Nothing here is staged: ``python -m chat server`` runs as a process, each
user is ``python -m chat client NAME`` on a pseudo-terminal, keystrokes are
typed into those terminals, and what each screen shows at the end is read
back through a terminal emulator (see :mod:`chat.terminal`).
"""

from __future__ import annotations

import signal
import subprocess

from chat.reporting.terminal import TerminalSession, python_command

USERS = ("Алиса", "bob", "carol", "Дмитрий")
COLUMNS, LINES = 78, 24
TIMEOUT_S = 15.0

# (who types, what they type, whose screen shows it next, what that screen shows)
SCRIPT = (
    ("Алиса", "Привет! Кто здесь?", "bob", "<Алиса> Привет! Кто здесь?"),
    ("bob", "/who", "bob", "= who: 4 online"),
    ("bob", "hi Алиса, bob here", "Алиса", "<bob> hi Алиса, bob here"),
    ("carol", "/me waves", "Алиса", "* carol waves"),
    ("Дмитрий", "Добрый вечер. Кириллица доходит целой?", "Алиса", "<Дмитрий> Добрый вечер."),
    ("Алиса", "Целой: сервер собирает строки из байтов, а не из recv().", "Дмитрий", "<Алиса> Целой"),
    ("bob", "/msg Дмитрий psst, this one is just for you", "Дмитрий", "*bob* psst"),
    ("carol", "/nick Карина", "Алиса", "*** carol is now known as Карина"),
    ("Дмитрий", "/quit пора спать", "Алиса", "*** Дмитрий left (quit: пора спать)"),
)


def capture_session() -> str:
    """Run the session and return its transcript: the server's output, then every user's screen."""
    server = subprocess.Popen(python_command("--log-level", "info", "server", "--port", "0"),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, encoding="utf-8")
    terminals: dict[str, TerminalSession] = {}
    try:
        banner = server.stdout.readline()
        port = banner.split(":", 1)[1].split(";", 1)[0]
        for name in USERS:
            terminals[name] = TerminalSession(python_command("client", name, "--port", port), COLUMNS, LINES)
            terminals[name].wait_for_text("welcome", TIMEOUT_S)
            _wait_for_prompt(terminals[name])
        for who, text, watcher, shown in SCRIPT:
            terminals[who].type(text + "\r")
            terminals[watcher].wait_for_text(shown, TIMEOUT_S)
            for terminal in terminals.values():
                if terminal.process.poll() is None:
                    _wait_for_prompt(terminal)
        for name in USERS:
            if terminals[name].process.poll() is None:
                terminals[name].type("\x04")  # Ctrl+D
            terminals[name].wait_exit(TIMEOUT_S)  # and read what is left to read
        server.send_signal(signal.SIGINT)
        try:
            log, _ = server.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            server.kill()
            log, _ = server.communicate()
            raise RuntimeError(f"the server did not stop within {TIMEOUT_S:g} s of Ctrl+C; it printed:\n{log}") from exc
        return _transcript(banner + log, port, terminals)
    finally:
        for terminal in terminals.values():
            terminal.close()
        if server.poll() is None:
            server.kill()
            server.communicate()


def _wait_for_prompt(terminal: TerminalSession) -> None:
    """Wait until the screen is current and shows an empty prompt (keys typed earlier may meet a cooked terminal)."""
    while True:
        terminal.settle()
        if [line for line in terminal.display() if line][-1:] == [">"] or terminal.process.poll() is not None:
            return
        terminal.wait_for(lambda: [line for line in terminal.display() if line][-1:] == [">"], TIMEOUT_S)


def _transcript(server_output: str, port: str, terminals: dict[str, TerminalSession]) -> str:
    parts = [f"$ python -m chat --log-level info server --port {port}", server_output.rstrip(), ""]
    for name, terminal in terminals.items():
        screen = "\n".join(terminal.display()).rstrip()
        parts += [f"$ python -m chat client {name} --port {port}", screen, ""]
    return "\n".join(parts)
