"""The command line, run as real subprocesses: the server, the console client and the demo."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import sys

import pytest

from chat import protocol
from chat.protocol import ChatMessage, Joined, LeaveReason, Left, PrivateMessage, Reply
from chat.reporting.terminal import TerminalSession, python_command
from tests.helpers import wait_until

PROCESS_TIMEOUT_S = 20


class ServerProcess:
    """``python -m chat server --port 0`` in a subprocess; the address is read from its first line."""

    def __init__(self, *args: str, preexec_fn=None) -> None:
        self.process = subprocess.Popen(
            python_command("server", "--port", "0", *args),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8", preexec_fn=preexec_fn,
        )
        banner = self.process.stdout.readline()
        assert banner.startswith("chat server on 127.0.0.1:"), banner + self.process.stderr.read()
        port = int(banner.split(":", 1)[1].split(";", 1)[0])
        self.address = ("127.0.0.1", port)

    def stop(self, signum: int = signal.SIGINT) -> tuple[int, str]:
        self.process.send_signal(signum)
        out, _ = self.process.communicate(timeout=PROCESS_TIMEOUT_S)
        return self.process.returncode, out

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=PROCESS_TIMEOUT_S)


@pytest.fixture
def server_process():
    started = []

    def start(*args: str, **options) -> ServerProcess:
        started.append(ServerProcess(*args, **options))
        return started[-1]

    yield start
    for process in started:
        process.kill()


def wait_for_empty_prompt(term: TerminalSession) -> None:
    """Control keys typed between two prompts would meet a cooked terminal; wait for the prompt."""
    term.wait_for(lambda: [line for line in term.display() if line][-1:] == [">"])


def run_chat(*args: str, input_text: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(python_command(*args), input=input_text, capture_output=True, text=True,
                          encoding="utf-8", timeout=PROCESS_TIMEOUT_S)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_server_relays_between_raw_clients_and_stops_cleanly_on_signal(server_process, raw_clients, signum):
    server = server_process("--max-rate", "0")
    alice = raw_clients(server.address, "Алиса")
    bob = raw_clients(server.address, "bob")
    assert alice.read_event() == Joined("bob")
    bob.send_line("привет из nc")
    assert alice.read_event() == ChatMessage("bob", "привет из nc")
    code, out = server.stop(signum)
    assert code == 0
    assert "server stopped" in out
    assert protocol.parse_event(alice.read_to_eof()[-1]) == protocol.ServerClosing()


def test_a_second_ctrl_c_during_the_stop_does_not_cut_it_short(server_process, raw_clients):
    server = server_process()
    alice = raw_clients(server.address, "Алиса")  # hears the notice, then keeps the connection open
    server.process.send_signal(signal.SIGINT)
    assert alice.read_until(lambda event: event == protocol.ServerClosing())  # the stop has begun
    server.process.send_signal(signal.SIGINT)  # while the server waits for Алиса to close
    out, err = server.process.communicate(timeout=PROCESS_TIMEOUT_S)
    assert server.process.returncode == 0, err
    assert "server stopped" in out and "Traceback" not in err


def _ignore_ctrl_c() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # what `python -m chat server &` gets from a script


def test_server_started_in_background_by_a_script_still_stops_on_ctrl_c(server_process, raw_clients):
    server = server_process(preexec_fn=_ignore_ctrl_c)
    alice = raw_clients(server.address, "Алиса")
    code, out = server.stop(signal.SIGINT)
    assert code == 0
    assert "server stopped" in out
    assert protocol.parse_event(alice.read_to_eof()[-1]) == protocol.ServerClosing()


def test_server_help_documents_every_limit():
    result = run_chat("server", "--help")
    assert result.returncode == 0
    for flag in ("--host", "--port", "--max-clients", "--max-line", "--max-rate", "--burst", "--sendq",
                 "--sndbuf", "--registration-timeout", "--no-nodelay"):
        assert flag in result.stdout
    assert "127.0.0.1" in result.stdout


@pytest.mark.parametrize("command", ["client", "udp-client"])
def test_client_help_describes_the_server_to_connect_to(command):
    result = run_chat(command, "--help")
    assert result.returncode == 0
    assert "the server's address" in result.stdout
    assert "free one" not in result.stdout and "0.0.0.0" not in result.stdout


def test_server_limits_from_flags_apply(server_process, raw_clients):
    server = server_process("--max-clients", "1")
    raw_clients(server.address, "only")
    extra = raw_clients(server.address)
    assert protocol.parse_event(extra.read_to_eof()[0]).code == protocol.SERVER_FULL


def test_server_refuses_a_port_in_use(server_process):
    server = server_process()
    result = run_chat("server", "--port", str(server.address[1]))
    assert result.returncode == 2
    assert "can't start the server" in result.stderr


@pytest.mark.parametrize("flags", [("--port", "70000"), ("--port", "-1"), ("--registration-timeout", "inf"),
                                   ("--max-rate", "nan"), ("--sendq", "-5")])
def test_server_refuses_impossible_flag_values_with_a_message(flags):
    result = run_chat("server", *flags)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert flags[0] in result.stderr or "can't start the server" in result.stderr


@pytest.mark.parametrize("input_text, code", [("", 0), ("ALICE\n", 3)], ids=["at-the-name-prompt", "a-refused-name"])
def test_console_client_ends_cleanly_before_registering(server, raw_clients, input_text, code):
    raw_clients(server.server_address, "alice")
    result = run_chat("client", "--port", str(server.server_address[1]), input_text=input_text)
    assert result.returncode == code, result.stderr  # piped input: a refused name ends it (3), end of input (0)
    wait_until(lambda: server.stats().connections_now == 1)  # only alice: the client closed its connection


def test_console_client_with_piped_stdin(server, raw_clients):
    alice = raw_clients(server.server_address, "Алиса")
    result = run_chat("client", "bob", "--port", str(server.server_address[1]),
                      input_text="привет, Алиса\n/me машет\n")
    assert result.returncode == 0, result.stderr
    events = alice.read_until(lambda e: isinstance(e, Left))
    assert events == [Joined("bob"), ChatMessage("bob", "привет, Алиса"), protocol.Action("bob", "машет"),
                      Left("bob", LeaveReason.QUIT)]


def test_console_client_reads_stdin_redirected_from_a_file(server, raw_clients, tmp_path):
    alice = raw_clients(server.server_address, "Алиса")
    lines = tmp_path / "lines.txt"
    lines.write_text("привет из файла\n/quit конец файла", encoding="utf-8")  # the last line has no newline
    with lines.open("rb") as stdin:
        result = subprocess.run(python_command("client", "bob", "--port", str(server.server_address[1])),
                                stdin=stdin, capture_output=True, text=True, encoding="utf-8", timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    assert alice.read_until(lambda e: isinstance(e, Left)) == [
        Joined("bob"), ChatMessage("bob", "привет из файла"), Left("bob", LeaveReason.QUIT, "конец файла")]


def test_console_client_with_piped_input_ends_on_a_refused_name_and_never_takes_a_message_for_a_name(server, raw_clients):
    alice = raw_clients(server.server_address, "Алиса")
    result = run_chat("client", "АЛИСА", "--port", str(server.server_address[1]), input_text="привет\n/quit\n")
    assert result.returncode == 3, result.stderr
    assert "name-taken" in result.stderr
    assert server.users() == ["Алиса"]  # nobody joined as "привет"
    alice.send_line("/who")
    assert alice.read_until(lambda e: isinstance(e, Reply)) == [Reply("who", "1 online: Алиса")]


def test_console_client_says_the_server_shut_down_and_exits_zero_on_a_clean_stop(start_server):
    server = start_server()
    process = subprocess.Popen(python_command("client", "bob", "--port", str(server.server_address[1])),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "welcome" in process.stderr.readline()
        server.stop()
        out, err = process.communicate(timeout=PROCESS_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "*** server shutting down" in out
    assert "the chat server shut down" in err and "lost" not in err


def test_console_client_exits_nonzero_when_the_connection_is_lost():
    with socket.create_server(("127.0.0.1", 0)) as listener:  # a server that welcomes, then vanishes unannounced
        listener.settimeout(PROCESS_TIMEOUT_S)
        process = subprocess.Popen(python_command("client", "bob", "--port", str(listener.getsockname()[1])),
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            connection, _ = listener.accept()
            with connection:
                connection.settimeout(PROCESS_TIMEOUT_S)
                connection.recv(100)
                connection.sendall(b"= welcome: bob, 1 online; /help lists the commands\n")
                assert "welcome" in process.stderr.readline()
            process.wait(timeout=PROCESS_TIMEOUT_S)  # stdin still open: the client ends because the server did
            err = process.stderr.read()
            process.communicate()
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 1
    assert "connection to the chat server was lost" in err


@pytest.mark.parametrize("command", ["client", "udp-client"])
def test_console_client_cannot_reach_a_server(command):
    result = run_chat(command, "bob", "--port", "1")
    assert result.returncode == 2
    assert result.stderr == "can't reach the chat server at 127.0.0.1:1: nothing listens on that port\n"


def test_console_client_says_when_what_answers_is_not_a_chat_server_or_nothing_answers():
    with socket.create_server(("127.0.0.1", 0)) as listener:  # a web server, say: it answers and hangs up
        listener.settimeout(PROCESS_TIMEOUT_S)
        port = str(listener.getsockname()[1])
        process = subprocess.Popen(python_command("client", "bob", "--port", port), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        connection, _ = listener.accept()
        with connection:
            connection.recv(100)
            connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        _, err = process.communicate(timeout=PROCESS_TIMEOUT_S)
        assert process.returncode == 2
        assert err == f"the server at 127.0.0.1:{port} closed the connection before welcoming you: is it a chat server?\n"
        silent = run_chat("client", "bob", "--port", port, "--timeout", "0.5")  # accepted by the kernel, never answered
    assert silent.returncode == 2
    assert silent.stderr == f"no answer from 127.0.0.1:{port} within 0.5 s: is a chat server running there?\n"


def test_console_client_on_a_terminal_keeps_the_typed_line_intact(server, raw_clients):
    alice = raw_clients(server.server_address, "Алиса")
    with TerminalSession(python_command("client", "--port", str(server.server_address[1]), "--no-time")) as term:
        term.wait_for_text("your name:")
        term.type("Боб\r")
        term.wait_for_text("welcome")
        assert alice.read_event() == Joined("Боб")
        term.type("half-typed")  # no Enter yet
        term.wait_for_text("> half-typed")
        alice.send_line("сообщение пришло, пока Боб печатал")
        incoming = "<Алиса> сообщение пришло, пока Боб печатал"

        def shown_above_the_intact_input_line():
            screen = [line for line in term.display() if line]
            return screen[-2:] == [incoming, "> half-typed"]

        term.wait_for(shown_above_the_intact_input_line)
        term.type(" and sent\r")
        assert alice.read_event() == ChatMessage("Боб", "half-typed and sent")
        wait_for_empty_prompt(term)
        term.type("\x04")  # Ctrl+D
        assert term.wait_exit() == 0
    assert alice.read_event() == Left("Боб", LeaveReason.QUIT)


def test_console_client_on_a_terminal_keeps_every_line_whole_while_the_chat_is_busy(server, raw_clients):
    """Lines arriving just as Enter is pressed, while the prompt is redrawn, each get a row of their own."""
    alice = raw_clients(server.server_address, "Алиса")
    rounds = 25
    with TerminalSession(python_command("client", "bob", "--port", str(server.server_address[1]), "--no-time"),
                         lines=150) as term:
        term.wait_for_text("= who: 2 online: bob, Алиса")  # the console asks who is here once it is welcomed
        wait_for_empty_prompt(term)
        for i in range(rounds):
            for j in range(3):
                alice.send_line(f"строка {i}.{j}")
            term.type(f"/nick n{i}\r")  # the server answers at once, racing alice's lines to the screen
            term.wait_for_text(f"is now known as n{i}")
        expected = {"= welcome: you are bob, 2 online; /help lists the commands; /quit leaves", ">",
                    "= who: 2 online: bob, Алиса"}
        for i in range(rounds):
            expected |= {f"<Алиса> строка {i}.{j}" for j in range(3)}
            expected |= {f"> /nick n{i}", f"*** {'bob' if i == 0 else f'n{i - 1}'} is now known as n{i}"}
        term.wait_for(lambda: expected <= set(term.display()))
        wait_for_empty_prompt(term)
        term.settle()
        screen = [line for line in term.display() if line]
        assert screen[-1] == ">"
        assert sorted(screen) == sorted(expected), "a line is missing, repeated or glued to another"
        term.type("\x04")  # Ctrl+D
        assert term.wait_exit() == 0


def test_console_client_on_a_terminal_says_when_the_server_goes_away(start_server):
    server = start_server()
    with TerminalSession(python_command("client", "bob", "--port", str(server.server_address[1]), "--no-time")) as term:
        term.wait_for_text("= who: 1 online: bob")
        wait_for_empty_prompt(term)
        server.stop()
        assert term.wait_exit() == 0
        screen = [line for line in term.display() if line]
    assert screen[2:] == ["*** server shutting down", "the chat server shut down"]


def test_console_client_on_a_terminal_exits_cleanly_on_ctrl_c(server, raw_clients):
    alice = raw_clients(server.server_address, "alice")
    with TerminalSession(python_command("client", "bob", "--port", str(server.server_address[1]))) as term:
        wait_for_empty_prompt(term)
        term.type("\x03")  # Ctrl+C
        assert term.wait_exit() == 0
    assert alice.read_until(lambda e: isinstance(e, Left))[-1] == Left("bob", LeaveReason.QUIT)


def test_console_client_in_a_pipe_exits_cleanly_on_sigint(server, raw_clients):
    alice = raw_clients(server.server_address, "alice")
    process = subprocess.Popen(python_command("client", "bob", "--port", str(server.server_address[1])),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "welcome" in process.stderr.readline()
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=PROCESS_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert alice.read_until(lambda e: isinstance(e, Left))[-1] == Left("bob", LeaveReason.QUIT)


def test_demo_runs_and_exits_zero():
    result = run_chat("demo", "--seconds", "1")
    assert result.returncode == 0, result.stderr
    assert "What Алиса saw:" in result.stdout
    assert "<Дмитрий> Добрый вечер. Кириллица доходит целой?" in result.stdout
    assert "*** bob left (quit: пора бежать)" in result.stdout
    assert "threads left behind: 0" in result.stdout


def test_top_level_help_lists_the_commands():
    result = run_chat("--help")
    assert result.returncode == 0
    for command in ("server", "client", "demo"):
        assert command in result.stdout
    assert sys.executable


def test_demo_help_describes_it_like_the_other_commands():
    result = run_chat("demo", "--help")
    assert result.returncode == 0 and "four simulated users" in result.stdout and "--seconds" in result.stdout


@pytest.mark.parametrize("where", ["default", "after-the-command", "before-the-command"])
def test_server_prints_joins_and_leaves_by_default_and_takes_the_log_level_on_either_side(raw_clients, where):
    flags = {"default": ("server",), "after-the-command": ("server", "--log-level", "warning"),
             "before-the-command": ("--log-level", "warning", "server")}[where]
    process = subprocess.Popen(python_command(*flags, "--port", "0"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        wait_until(lambda: _listening_port(process.pid) is not None)
        alice = raw_clients(("127.0.0.1", _listening_port(process.pid)), "Алиса")
        alice.send_line("/quit пока")
        alice.read_to_eof()
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=PROCESS_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    shown = "Алиса joined" in err and "Алиса left (quit)" in err
    assert shown == (where == "default"), err


def _listening_port(pid: int) -> int | None:
    from chat.lab.checker.target import listening_ports

    ports = listening_ports(pid)
    return min(ports) if ports else None


def test_console_client_shows_the_lines_that_came_in_the_same_read_as_the_welcome():
    with socket.create_server(("127.0.0.1", 0)) as listener:  # a busy chat: the welcome and two lines in one send
        listener.settimeout(PROCESS_TIMEOUT_S)
        process = subprocess.Popen(python_command("client", "bob", "--port", str(listener.getsockname()[1])),
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            connection, _ = listener.accept()
            with connection:
                connection.settimeout(PROCESS_TIMEOUT_S)
                connection.recv(100)
                connection.sendall("= welcome: bob, 3 online; /help lists the commands\n<Алиса> раз\n<Алиса> два\n".encode())
                assert process.stderr.readline() == "= welcome: you are bob, 3 online; /help lists the commands; /quit leaves\n"
                connection.sendall("<Алиса> три\n".encode())
                assert [process.stdout.readline() for _ in range(3)] == ["<Алиса> раз\n", "<Алиса> два\n", "<Алиса> три\n"]
            process.wait(timeout=PROCESS_TIMEOUT_S)
            process.communicate()
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 1  # the fake server vanished without a notice


HOSTILE = ("\x1b]0;pwned\x07<bob> \x1b[2J\x1b[31mred\x1b[0m \x9b2J \x07bell\x08\rover "
           "\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\ \u202eesrever\n")


def test_console_client_shows_what_a_hostile_server_sends_made_harmless():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(PROCESS_TIMEOUT_S)
        process = subprocess.Popen(python_command("client", "bob", "--port", str(listener.getsockname()[1])),
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            connection, _ = listener.accept()
            with connection:
                connection.settimeout(PROCESS_TIMEOUT_S)
                connection.recv(100)
                connection.sendall(b"= welcome: bob, 2 online; /help lists the commands\n" + HOSTILE.encode())
                shown = process.stdout.readline()
            process.wait(timeout=PROCESS_TIMEOUT_S)
            process.communicate()
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert shown.startswith("<bob> red") and shown.endswith("\n")
    assert not set(shown[:-1]) & {"\x1b", "\x07", "\x08", "\r", "\x9b", "\u202e"}, repr(shown)
    assert "link" in shown and "evil" not in shown


def test_console_client_on_a_terminal_nobody_reads_stops_reading_the_socket_so_tcp_pushes_back():
    line = ("<Алиса> " + "ж" * 500 + "\n").encode()
    cap = 64 << 20  # far more than the client's bound and every kernel buffer between us: the unbounded client takes it all
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(PROCESS_TIMEOUT_S)
        with TerminalSession(python_command("client", "bob", "--port", str(listener.getsockname()[1]))) as term:
            connection, _ = listener.accept()
            with connection:
                connection.settimeout(PROCESS_TIMEOUT_S)
                connection.recv(100)
                connection.sendall(b"= welcome: bob, 2 online; /help lists the commands\n")
                term.wait_for_text("welcome")  # from here on, nobody reads the terminal
                connection.settimeout(3)
                sent = 0
                with contextlib.suppress(TimeoutError):  # three seconds without taking a byte: pushed back
                    while sent < cap:
                        sent += connection.send(line)
                assert term.process.poll() is None  # still running, only waiting
    assert sent < 32 << 20, f"the client took {sent >> 20} MiB from the socket without showing it"


def test_console_client_on_a_terminal_completes_commands_and_names_with_tab(server, raw_clients):
    alice = raw_clients(server.server_address, "Алиса")
    bob = raw_clients(server.server_address, "bob")
    with TerminalSession(python_command("client", "Вера", "--port", str(server.server_address[1]))) as term:
        term.wait_for_text("= who: 3 online: bob, Алиса, Вера")  # asked at the welcome: Tab knows who is here
        wait_for_empty_prompt(term)
        term.type("/ms\t")
        term.wait_for_text("> /msg")
        term.type("Ал\t")
        term.wait_for_text("> /msg Алиса")
        term.type("тайное\r")
        assert alice.read_until(lambda e: isinstance(e, PrivateMessage))[-1] == PrivateMessage("Вера", "тайное")
        wait_for_empty_prompt(term)
        term.type("привет, b\t")  # a name inside a message: completed too, without a space after it
        term.wait_for_text("> привет, bob")
        term.type("!\r")
        assert bob.read_until(lambda e: isinstance(e, ChatMessage))[-1] == ChatMessage("Вера", "привет, bob!")
        wait_for_empty_prompt(term)
        term.type("\x04")
        assert term.wait_exit() == 0


def test_console_client_shows_the_local_time_on_a_terminal_and_not_with_no_time(server, raw_clients):
    alice = raw_clients(server.server_address, "Алиса")
    for flags, timed in (((), True), (("--no-time",), False)):
        with TerminalSession(python_command("client", "bob", "--port", str(server.server_address[1]), *flags)) as term:
            term.wait_for_text("= who:")
            alice.send_line("который час?")
            term.wait_for_text("<Алиса> который час?")
            shown = next(line for line in term.display() if line.endswith("<Алиса> который час?"))
            assert bool(re.fullmatch(r"\d\d:\d\d <Алиса> который час\?", shown)) == timed, shown
            term.type("\x04")
            assert term.wait_exit() == 0


def test_console_client_in_a_pipe_shows_the_time_only_when_asked(server, raw_clients):
    alice = raw_clients(server.server_address, "Алиса")
    for flags, timed in (((), False), (("--time",), True)):
        process = subprocess.Popen(python_command("client", "bob", "--port", str(server.server_address[1]), *flags),
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert "welcome" in process.stderr.readline()
            alice.send_line("который час?")
            shown = process.stdout.readline()
            process.communicate("", timeout=PROCESS_TIMEOUT_S)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert bool(re.fullmatch(r"\d\d:\d\d <Алиса> который час\?\n", shown)) == timed, shown


def test_console_client_redraws_cleanly_when_a_reflowing_terminal_is_resized_under_a_long_input_line(server, raw_clients):
    from tests.helpers import TmuxPane

    alice = raw_clients(server.server_address, "Алиса")
    typed = "слово " * 15  # 90 columns: one row at 100 columns, three at 40
    try:
        pane = TmuxPane(python_command("client", "bob", "--port", str(server.server_address[1]), "--no-time"), 100, 12)
    except FileNotFoundError as exc:
        pytest.skip(f"{exc}: a terminal that reflows can't be tried here (.ci/run installs tmux)")
    with pane:
        pane.wait_for(lambda rows: "= who: 2 online: bob, Алиса" in rows)
        alice.send_line("до изменения размера")
        pane.wait_for(lambda rows: "<Алиса> до изменения размера" in rows)
        pane.type(typed)
        pane.wait_for(lambda rows: f"> {typed}".rstrip() in rows)
        def drawn_cleanly(rows: list[str]) -> bool:
            rows = [row for row in rows if row]
            start = next((i for i, row in enumerate(rows) if row.startswith("> ")), None)
            if start is None or max(map(len, rows)) > columns:
                return False
            above, input_rows = rows[:start], rows[start:]
            # The capture trims a row ending on a space: compare without spaces.
            return ("".join(input_rows).replace(" ", "") == f">{typed}".replace(" ", "")  # the input line, once
                    and not any("слово" in row for row in above)  # no stale piece of it above the prompt
                    and "".join(above).replace(" ", "").endswith(  # the lines shown before, rewrapped
                        "=who:2online:bob,Алиса<Алиса>доизмененияразмера"))

        for columns in (40, 100, 60):
            pane.resize(columns, 12)
            pane.wait_for(drawn_cleanly)
        pane.press("Enter")
        assert alice.read_until(lambda e: isinstance(e, ChatMessage))[-1] == ChatMessage("bob", typed)
        pane.press("C-d")
        assert pane.exit_status() == 0


def test_console_client_in_a_real_terminal_keeps_the_welcome_on_screen_when_lines_arrive_as_the_prompt_starts(server):
    """In a terminal that answers cursor position reports (tmux does; the pyte tests' doesn't), an answer
    measured before the who-is-here line was printed used to draw the prompt too low and scroll the welcome off."""
    from tests.helpers import TmuxPane

    try:
        pane = TmuxPane(python_command("client", "bob", "--port", str(server.server_address[1]), "--no-time"), 100, 10)
    except FileNotFoundError as exc:
        pytest.skip(f"{exc}: a terminal that answers cursor position reports can't be tried here")
    with pane:
        rows = pane.wait_for(lambda rows: rows[:3] == ["= welcome: you are bob, 1 online; /help lists the commands; /quit leaves",
                                                        "= who: 1 online: bob", ">"])
        pane.type("ещё")  # a redraw after the first: a prompt drawn too low would have scrolled by now
        rows = pane.wait_for(lambda rows: "> ещё" in rows)
        assert rows[:2] == ["= welcome: you are bob, 1 online; /help lists the commands; /quit leaves",
                            "= who: 1 online: bob"]
        pane.press("Enter")
        pane.wait_for(lambda rows: [row for row in rows if row][-1:] == [">"])  # sent: the prompt is empty again
        pane.press("C-d")
        assert pane.exit_status() == 0


def _at_most_40_descriptors() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))


def test_a_server_out_of_descriptors_says_it_is_busy_logs_it_once_a_second_and_serves_the_others(server_process):
    from tests.helpers import RawClient

    server = server_process(preexec_fn=_at_most_40_descriptors)  # a real limit, in a process of its own
    served, busy = [], []
    try:
        for i in range(60):  # far more than 40 descriptors
            client = RawClient(server.address)
            event = client.read_event()
            if isinstance(event, protocol.Error):
                busy.append(event)
                client.close()
                if len(busy) == 20:
                    break
                continue
            served.append(client)
            client.send_line(f"user{i}")
            assert client.read_event().topic == "welcome"
        assert served and len(busy) == 20, "the limit was never reached"
        assert {event.code for event in busy} == {protocol.SERVER_BUSY}
        assert "out of file descriptors" in busy[0].text and "try again later" in busy[0].text
        served[0].send_line("нас не забыли?")  # those already in chat on
        for other in served[1:]:
            assert other.read_until(lambda e: isinstance(e, ChatMessage))[-1] == ChatMessage("user0", "нас не забыли?")
    finally:
        for client in served:
            client.close()
    server.process.send_signal(signal.SIGINT)
    _, log = server.process.communicate(timeout=PROCESS_TIMEOUT_S)
    assert server.process.returncode == 0
    turned_away = [line for line in log.splitlines() if "turned a connection away" in line]
    assert 1 <= len(turned_away) <= 3, log  # 20 turned away within a second or two: a warning a second at most
    assert "more like it" in log or len(turned_away) == 1
    assert "error serving" not in log and "Traceback" not in log, log
