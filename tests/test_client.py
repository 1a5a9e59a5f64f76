"""ChatClient, the client library for programs and notebooks."""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading

import pytest

from chat import ChatClient, ChatMessage, Disconnected, Joined, NameRefused, Renamed, ServerClosing, connect
from chat.protocol import NAME_INVALID, NAME_TAKEN, LeaveReason, Left, PrivateMessage
from tests.helpers import wait_until


def test_connect_registers_and_exchanges_messages(server):
    with connect(server.server_address, "Алиса") as alice, connect(server.server_address, "bob") as bob:
        assert alice.name == "Алиса"
        assert alice.wait_for(Joined) == Joined("bob")
        alice.say("привет")
        alice.say("/not a command")
        assert bob.wait_for(ChatMessage) == ChatMessage("Алиса", "привет")
        assert bob.wait_for(ChatMessage) == ChatMessage("Алиса", "/not a command")


def test_the_end_of_a_with_block_leaves_politely_and_an_exception_just_closes(server):
    with connect(server.server_address, "Алиса") as alice:
        with connect(server.server_address, "bob"):
            pass
        assert alice.wait_for(Left) == Left("bob", LeaveReason.QUIT)
        with pytest.raises(KeyError), connect(server.server_address, "carol"):
            raise KeyError("something went wrong in the program")
        assert alice.wait_for(Left) == Left("carol", LeaveReason.CONNECTION_LOST)
    wait_until(lambda: server.stats().users_now == 0)
    assert server.stats().leaves == {"quit": 2, "connection lost": 1}


@pytest.mark.parametrize("name, code", [("Алиса", NAME_TAKEN), ("АЛИСА", NAME_TAKEN), ("no spaces", NAME_INVALID)])
def test_connect_raises_a_clear_error_when_the_name_is_refused(server, name, code):
    with connect(server.server_address, "Алиса"):
        with pytest.raises(NameRefused) as refused:
            connect(server.server_address, name)
        assert refused.value.code == code
        assert code in str(refused.value)


def test_register_may_be_retried_on_the_same_connection(server):
    with connect(server.server_address, "bob"), ChatClient() as client:
        client.open(server.server_address)
        with pytest.raises(NameRefused):
            client.register("BOB")
        assert client.register("bob2") == "bob2"


def test_helpers_for_commands(server):
    with connect(server.server_address, "Алиса") as alice, connect(server.server_address, "bob") as bob:
        assert alice.who() == ["Алиса", "bob"] or alice.who() == ["bob", "Алиса"]
        bob.msg("Алиса", "секрет")
        assert alice.wait_for(PrivateMessage) == PrivateMessage("bob", "секрет")
        bob.nick("Боб")
        assert bob.wait_for(Renamed) == Renamed("bob", "Боб")
        assert bob.name == "Боб"
        bob.me("уходит")
        bob.quit("пока")
        assert not bob.connected
        assert alice.who() == ["Алиса"]


def test_who_leaves_other_events_unread(server):
    with connect(server.server_address, "a") as a, connect(server.server_address, "b") as b:
        a.wait_for(Joined)
        b.say("one")
        assert b.who() == ["a", "b"]
        assert b.drain() == []
        assert a.next_event() == ChatMessage("b", "one")


def test_callback_sees_every_event_from_the_receive_thread(server):
    seen = []
    arrived = threading.Event()

    def on_event(event):
        seen.append((threading.current_thread().name, event))
        if isinstance(event, ChatMessage):
            arrived.set()

    with ChatClient(on_event=on_event).connect(server.server_address, "a"), connect(server.server_address, "b") as b:
        b.say("hi")
        assert arrived.wait(5)
    assert ("chat-client-a", ChatMessage("b", "hi")) in seen


def test_server_stop_ends_the_stream_with_a_notice(start_server):
    server = start_server()
    client = connect(server.server_address, "a")
    server.stop()
    assert client.wait_for(ServerClosing) == ServerClosing()
    assert client.next_event() == Disconnected("the server closed the connection")
    with pytest.raises(ConnectionError):
        client.next_event(timeout_s=0.1)
    assert not client.connected
    client.close()


def test_next_event_times_out(server):
    with connect(server.server_address, "a") as client:
        with pytest.raises(TimeoutError):
            client.next_event(timeout_s=0.05)


def test_send_refuses_line_breaks(server):
    with connect(server.server_address, "a") as client:
        with pytest.raises(ValueError):
            client.say("two\nlines")


def test_transcript_and_lines_keep_everything(server):
    with connect(server.server_address, "a") as a, connect(server.server_address, "b") as b:
        b.say("x")
        a.wait_for(ChatMessage)
        assert a.lines()[-2:] == ["*** b joined", "<b> x"]
        assert a.lines()[0].startswith("= hello: ")


def test_close_twice_is_harmless(server):
    client = connect(server.server_address, "a")
    client.close()
    client.close()


def test_events_iterates_in_order_until_the_chat_goes_quiet(server):
    with connect(server.server_address, "Алиса") as alice, connect(server.server_address, "bob") as bob:
        alice.wait_for(Joined)
        for text in ("раз", "два", "три"):
            bob.say(text)
        wait_until(lambda: ChatMessage("bob", "три") in list(alice.transcript))  # all three in, none taken yet
        assert [event.text for event in alice.events(idle_s=0.5) if isinstance(event, ChatMessage)] == ["раз", "два", "три"]


def test_help_lists_every_command(server):
    from chat.protocol import COMMAND_HELP, Reply

    with connect(server.server_address, "Алиса") as alice:
        alice.help()
        replies = [alice.wait_for(lambda e: isinstance(e, Reply) and e.topic == "help") for _ in COMMAND_HELP]
        assert [reply.text.split(" - ")[0] for reply in replies] == [usage for usage, _ in COMMAND_HELP]


@contextlib.contextmanager
def scripted_server(script):
    """A fake server for one connection on loopback: ``script(connection)`` runs in a thread of its own."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(5)

        def serve():
            connection, _ = listener.accept()
            with connection:
                connection.settimeout(5)
                script(connection)

        thread = threading.Thread(target=serve, name="test-fake-server")
        thread.start()
        try:
            yield listener.getsockname()
        finally:
            thread.join(5)
    assert not thread.is_alive()


def test_a_welcome_that_names_nobody_is_refused_as_a_protocol_error():
    def script(connection):
        connection.recv(100)
        connection.sendall(b"= welcome: , 1 online; /help lists the commands\n")
        connection.recv(100)  # until the client gives up and closes

    with scripted_server(script) as address:
        client = ChatClient(timeout_s=5)
        try:
            client.open(address)
            with pytest.raises(ConnectionError, match="names nobody"):
                client.register("bob")
            assert client.name is None
        finally:
            client.close()


def test_say_waits_while_flood_control_holds_it_back_and_a_timeout_gives_up_without_breaking_anything(start_server):
    from chat.tcp.client import LineNotSent

    server = start_server(rate_lines_per_s=5, rate_burst_lines=1)
    reader = connect(server.server_address, "читатель")
    talker = ChatClient(timeout_s=0.2)
    talker.open(server.server_address)
    talker.register("болтун")
    try:
        line = "ж" * 2000
        with pytest.raises(LineNotSent):  # until the buffers are full, each line leaves at once; then one waits
            for _ in range(20_000):  # 80 MB: far more than the kernel's buffers on both sides hold
                talker.say(line, timeout_s=0.3)
        assert talker.connected  # nothing was half-sent or closed: the stream is intact
        assert "болтун" in server.users()
        assert reader.wait_for(ChatMessage) == ChatMessage("болтун", line)  # and what left arrives, whole
    finally:
        talker.close()
        reader.close()


def test_the_transcript_and_the_unread_events_stay_bounded_however_long_the_lines():
    from chat.clientbase import DEFAULT_KEEP_BYTES, text_bytes

    line = ("<Алиса> " + "ж" * 500_000 + "\n").encode()  # a server sending half-megabyte lines, 40 of them

    def script(connection):
        connection.recv(100)
        connection.sendall(b"= welcome: bob, 2 online; /help lists the commands\n")
        for _ in range(40):
            connection.sendall(line)
        connection.sendall("<Алиса> последняя\n".encode())

    with scripted_server(script) as address:
        client = ChatClient(timeout_s=5)
        try:
            client.connect(address, "bob")
            wait_until(lambda: not client.connected)
            transcript = client.transcript
            assert transcript.bytes <= DEFAULT_KEEP_BYTES < 40 * 500_000 and transcript.forgotten > 0
            assert sum(map(text_bytes, client.drain())) <= DEFAULT_KEEP_BYTES  # nobody read them: bounded too
            assert ChatMessage("Алиса", "последняя") in list(client.transcript)  # the newest are the ones kept
        finally:
            client.close()


def test_an_event_log_keeps_the_newest_within_its_count_and_its_bytes():
    from chat.clientbase import EventLog

    log = EventLog(max_events=3, max_bytes=100)
    for i in range(5):
        log.append(ChatMessage("bob", f"{i}"))
    assert [event.text for event in log] == ["2", "3", "4"] and log.forgotten == 2
    log.append(ChatMessage("bob", "ж" * 500))  # alone over the bytes: kept, as the newest always is
    assert list(log) == [ChatMessage("bob", "ж" * 500)] and log.bytes == len("bob") + 500 + 1
    assert log.popleft().text == "ж" * 500 and log.bytes == 0 and not log


def test_an_event_log_can_be_read_while_the_receive_thread_appends():
    from chat.clientbase import EventLog

    log, stop, failures = EventLog(max_events=1000), threading.Event(), []

    def append() -> None:
        for i in itertools.count():
            if stop.is_set():
                return
            log.append(ChatMessage("bob", str(i)))

    writer = threading.Thread(target=append, name="test-appender")
    writer.start()
    try:
        for _ in range(5000):
            try:
                list(log)
            except RuntimeError as exc:  # "deque mutated during iteration"
                failures.append(exc)
    finally:
        stop.set()
        writer.join(5)
    assert failures == []
