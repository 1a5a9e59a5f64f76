"""The TCP server with real sockets on 127.0.0.1:0; every socket has a timeout."""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time

import pytest

from chat import protocol
from chat.protocol import (
    Action,
    ChatMessage,
    Error,
    Joined,
    LeaveReason,
    Left,
    PrivateMessage,
    PrivateSent,
    Renamed,
    Reply,
    ServerClosing,
)
from chat.tcp.server import ChatServer
from tests.helpers import wait_until


def is_message_from(sender):
    return lambda event: isinstance(event, ChatMessage) and event.sender == sender


def test_binds_in_constructor_and_reports_real_port():
    server = ChatServer("127.0.0.1", 0)
    try:
        host, port = server.server_address
        assert host == "127.0.0.1" and port > 0
        with socket.create_connection(server.server_address, timeout=2):
            pass  # the listener accepts into its backlog before start()
    finally:
        server.stop()


def test_greets_then_welcomes_a_cyrillic_name(server, raw_clients):
    client = raw_clients(server.server_address)
    hello = client.read_event()
    assert isinstance(hello, Reply) and hello.topic == "hello"
    client.send_line("Алиса")
    welcome = client.read_event()
    assert welcome == Reply("welcome", "Алиса, 1 online; /help lists the commands")
    assert server.users() == ["Алиса"]


def test_broadcast_reaches_every_other_user_in_per_sender_order(server, raw_clients):
    names = ["Алиса", "bob", "carol"]
    clients = {name: raw_clients(server.server_address, name) for name in names}
    for name in names:  # everyone has seen everyone join
        for other in names[names.index(name) + 1 :]:
            clients[name].read_until(lambda event, other=other: event == Joined(other))
    count = 200
    for i in range(count):
        for name in names:
            clients[name].send_line(f"{name} {i}")
    for receiver in names:
        got = {name: [] for name in names}
        expected_total = count * (len(names) - 1)
        while sum(map(len, got.values())) < expected_total:
            event = clients[receiver].read_event()
            assert isinstance(event, ChatMessage)
            got[event.sender].append(event.text)
        assert got[receiver] == []  # nobody hears their own messages
        for sender in names:
            if sender != receiver:
                assert got[sender] == [f"{sender} {i}" for i in range(count)]


def test_message_text_is_sanitized_before_relay(server, raw_clients):
    alice = raw_clients(server.server_address, "alice")
    mallory = raw_clients(server.server_address, "mallory")
    alice.read_until(lambda event: event == Joined("mallory"))
    mallory.send_bytes(b"\x1b[2J\rhi\x1b]0;owned\x07 \xe2\x80\xae!\n")
    line = alice.read_line()
    assert line == "<mallory> \u240dhi \ufffd!"


def test_join_leave_and_nick_events_with_reasons(server, raw_clients):
    alice = raw_clients(server.server_address, "Алиса")
    bob = raw_clients(server.server_address, "bob")
    assert alice.read_event() == Joined("bob")
    bob.send_line("/nick Боб")
    assert alice.read_event() == Renamed("bob", "Боб")
    assert bob.read_event() == Renamed("bob", "Боб")  # the renamed user is told too
    bob.send_line("/quit пора спать")
    assert alice.read_event() == Left("Боб", LeaveReason.QUIT, "пора спать")
    assert bob.read_until(lambda event: isinstance(event, Reply))[-1] == Reply("bye", "see you")
    assert bob.read_to_eof() == []
    carol = raw_clients(server.server_address, "carol")
    assert alice.read_event() == Joined("carol")
    carol.close()
    assert alice.read_event() == Left("carol", LeaveReason.CONNECTION_LOST)
    dave = raw_clients(server.server_address, "dave")
    assert alice.read_event() == Joined("dave")
    dave.abort()  # a reset instead of a clean close
    assert alice.read_event() == Left("dave", LeaveReason.CONNECTION_LOST)
    wait_until(lambda: server.users() == ["Алиса"])
    assert server.stats().leaves == {"quit": 1, "connection lost": 2}


def test_duplicate_name_is_refused_case_insensitively_and_may_retry(server, raw_clients):
    raw_clients(server.server_address, "Алиса")
    second = raw_clients(server.server_address)
    second.read_event()  # hello
    for taken in ("алиса", "АЛИСА", "Алиса"):
        second.send_line(taken)
        error = second.read_event()
        assert isinstance(error, Error) and error.code == protocol.NAME_TAKEN
    second.send_line("bad name!")
    assert second.read_event().code == protocol.NAME_INVALID
    second.send_line("Алиса2")
    assert second.read_event().topic == "welcome"
    assert server.users() == ["Алиса", "Алиса2"]


def test_a_name_alike_in_small_letters_or_in_capitals_is_taken_when_joining_or_renaming(server, raw_clients):
    vova = raw_clients(server.server_address, "vova")  # Greek νονα looks like it in small letters
    raw_clients(server.server_address, "Bob")  # Cyrillic Вов looks like it in capitals
    other = raw_clients(server.server_address)
    other.read_event()  # hello
    for twin in ("νονα", "Вов"):
        other.send_line(twin)
        assert other.read_event().code == protocol.NAME_TAKEN, twin
    other.send_line("Вера")
    assert other.read_event().topic == "welcome"
    other.send_line("/nick νονα")
    assert other.read_until(lambda e: isinstance(e, Error))[-1].code == protocol.NAME_TAKEN
    vova.send_line("/nick Владимир")  # once vova is gone, its twin is free, and its old keys too
    assert other.read_until(lambda e: isinstance(e, Renamed))[-1] == Renamed("vova", "Владимир")
    other.send_line("/nick νονα")
    assert other.read_until(lambda e: isinstance(e, Renamed))[-1] == Renamed("Вера", "νονα")


def test_nick_to_a_taken_name_is_refused(server, raw_clients):
    raw_clients(server.server_address, "alice")
    bob = raw_clients(server.server_address, "bob")
    bob.send_line("/nick ALICE")
    assert bob.read_event().code == protocol.NAME_TAKEN
    bob.send_line("/nick Bob")  # a new case of your own name is fine
    assert bob.read_event() == Renamed("bob", "Bob")
    bob.send_line("/nick Bob")  # your own name, as it is: nothing changes, and you are told so
    assert bob.read_event() == Reply("nick", "you are already Bob")


def test_private_message_and_who(server, raw_clients):
    alice = raw_clients(server.server_address, "Алиса")
    bob = raw_clients(server.server_address, "bob")
    carol = raw_clients(server.server_address, "carol")
    bob.send_line("/msg алиса только тебе")
    assert bob.read_until(lambda e: isinstance(e, PrivateSent))[-1] == PrivateSent("Алиса", "только тебе")
    assert alice.read_until(lambda e: isinstance(e, PrivateMessage))[-1] == PrivateMessage("bob", "только тебе")
    carol.send_line("/who")
    assert carol.read_event() == Reply("who", "3 online: bob, carol, Алиса")  # sorted by casefold
    carol.send_line("/msg nobody hi")
    error = carol.read_event()
    assert error.code == protocol.NO_SUCH_USER and "nobody" in error.text
    carol.send_line("public")
    assert bob.read_until(lambda e: isinstance(e, ChatMessage)) [-1] == ChatMessage("carol", "public")
    # carol's "public" is the first chat message bob sees: the private one never reached him
    assert alice.read_until(lambda e: isinstance(e, ChatMessage))[-1] == ChatMessage("carol", "public")


def test_me_help_unknown_command_and_usage(server, raw_clients):
    alice = raw_clients(server.server_address, "alice")
    bob = raw_clients(server.server_address, "bob")
    bob.send_line("/me машет рукой")
    assert alice.read_until(lambda e: isinstance(e, Action))[-1] == Action("bob", "машет рукой")
    bob.send_line("/help")
    helps = [bob.read_event() for _ in protocol.COMMAND_HELP]
    assert all(isinstance(e, Reply) and e.topic == "help" for e in helps)
    assert any("/msg NAME TEXT" in e.text for e in helps)
    bob.send_line("/dance")
    assert bob.read_event().code == protocol.UNKNOWN_COMMAND
    bob.send_line("/msg alice")
    assert bob.read_event() == Error(protocol.USAGE, "/msg NAME TEXT")


def test_long_line_gets_an_error_and_the_connection_stays_open(start_server, raw_clients):
    server = start_server(max_line_bytes=100)
    alice = raw_clients(server.server_address, "alice")
    bob = raw_clients(server.server_address, "bob")
    bob.send_line("x" * 5000)
    error = bob.read_event()
    assert error.code == protocol.LINE_TOO_LONG and "100 bytes (about 100 Latin or 50 Cyrillic letters)" in error.text
    bob.send_line("still here")
    assert alice.read_until(lambda e: isinstance(e, ChatMessage))[-1] == ChatMessage("bob", "still here")


def test_name_sent_with_messages_in_one_packet(server, raw_clients):
    alice = raw_clients(server.server_address, "alice")
    bob = raw_clients(server.server_address)
    bob.send_bytes("bob\nпервое\nвторое\n".encode())
    events = alice.read_until(lambda e: e == ChatMessage("bob", "второе"))
    assert events == [Joined("bob"), ChatMessage("bob", "первое"), ChatMessage("bob", "второе")]


def test_accepted_sockets_have_nodelay(start_server, raw_clients):
    for nodelay in (True, False):
        server = start_server(nodelay=nodelay)
        raw_clients(server.server_address, "x")
        (session,) = server.sessions()
        assert bool(session.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)) is nodelay


def test_stalled_client_does_not_delay_others_and_is_dropped(start_server, raw_clients):
    server = start_server(sendq_bytes=64 * 1024)
    raw_clients(server.server_address, "stalled", rcvbuf_bytes=4096)  # and it never reads
    reader = raw_clients(server.server_address, "reader")
    sender = raw_clients(server.server_address, "sender")
    reader.read_until(lambda e: e == Joined("sender"))
    text = "ж" * 1000  # 2 KB a line: the kernel's buffers, then the stalled client's queue, fill up
    seen = []
    for i in range(10_000):  # at most 20 MB; the drop comes long before
        sender.send_line(f"{i} {text}")
        # Each line reaches the reader before the next is sent: nothing waits for the stalled client.
        seen += reader.read_until(lambda e: isinstance(e, ChatMessage))
        if Left("stalled", LeaveReason.TOO_SLOW) in seen:
            break
    assert Left("stalled", LeaveReason.TOO_SLOW) in seen
    messages = [e for e in seen if isinstance(e, ChatMessage)]
    assert messages == [ChatMessage("sender", f"{n} {text}") for n in range(len(messages))]
    assert server.stats().leaves == {"too slow": 1}
    assert server.users() == ["reader", "sender"]


def test_a_bounded_kernel_send_buffer_gets_a_stalled_client_dropped_sooner(start_server, raw_clients):
    sendq, sndbuf = 64 * 1024, 32 * 1024
    server = start_server(sendq_bytes=sendq, socket_sndbuf_bytes=sndbuf)
    raw_clients(server.server_address, "stalled", rcvbuf_bytes=4096)  # and it never reads
    (stalled_session,) = server.sessions()
    assert stalled_session.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) <= 2 * sndbuf  # Linux doubles it
    reader = raw_clients(server.server_address, "reader")
    sender = raw_clients(server.server_address, "sender")
    reader.read_until(lambda e: e == Joined("sender"))
    line = f"{'ж' * 1000}"
    relayed_bytes = 0
    seen = []
    while Left("stalled", LeaveReason.TOO_SLOW) not in seen:
        assert relayed_bytes < 4 << 20, "never dropped"
        sender.send_line(line)
        relayed_bytes += len(protocol.encode_event(ChatMessage("sender", line)))
        seen = reader.read_until(lambda e: isinstance(e, ChatMessage))
    # Held for it at the most: its queue, the kernel's send buffer, its own receive window, one line.
    assert relayed_bytes <= sendq + 2 * sndbuf + 64 * 1024


def test_max_clients_refuses_one_more_with_an_error(start_server, raw_clients):
    server = start_server(max_clients=2)
    raw_clients(server.server_address, "a")
    raw_clients(server.server_address, "b")
    third = raw_clients(server.server_address)
    lines = third.read_to_eof()
    assert len(lines) == 1 and protocol.parse_event(lines[0]).code == protocol.SERVER_FULL
    assert server.stats().refused_full == 1
    assert server.users() == ["a", "b"]


def test_registration_timeout_closes_a_silent_connection(start_server, raw_clients):
    server = start_server(registration_timeout_s=0.3)
    silent = raw_clients(server.server_address)
    lines = silent.read_to_eof()
    assert protocol.parse_event(lines[0]).topic == "hello"
    assert protocol.parse_event(lines[-1]).code == protocol.TIMEOUT
    wait_until(lambda: server.stats().registration_timeouts == 1)


def test_flood_control_delays_lines_without_dropping_them(start_server, raw_clients):
    rate, burst, count = 50.0, 5, 30
    server = start_server(rate_lines_per_s=rate, rate_burst_lines=burst)
    alice = raw_clients(server.server_address, "alice")
    flooder = raw_clients(server.server_address)
    flooder.send_line("flooder")  # the name takes a token too
    flooder.read_until(lambda e: isinstance(e, Reply) and e.topic == "welcome")
    alice.read_until(lambda e: e == Joined("flooder"))
    started = time.monotonic()
    flooder.send_bytes(b"".join(f"{i}\n".encode() for i in range(count)))
    texts = [alice.read_event().text for _ in range(count)]
    elapsed = time.monotonic() - started
    assert texts == [str(i) for i in range(count)]  # every line, in order
    minimum = (count + 1 - burst) / rate  # lines beyond the burst wait for tokens
    assert elapsed >= minimum * 0.9


def test_shutdown_notifies_clients_and_leaves_no_thread(raw_clients, caplog):
    caplog.set_level(logging.WARNING, logger="chat")
    threads_before = set(threading.enumerate())
    events = []
    server = ChatServer(on_event=events.append).start()
    alice = raw_clients(server.server_address, "alice")
    bob = raw_clients(server.server_address, "bob")
    alice.read_until(lambda e: e == Joined("bob"))
    silent = raw_clients(server.server_address)  # connected, never registered
    server.stop()
    assert protocol.parse_event(alice.read_to_eof()[-1]) == ServerClosing()
    assert protocol.parse_event(bob.read_to_eof()[-1]) == ServerClosing()
    assert protocol.parse_event(silent.read_to_eof()[-1]) == ServerClosing()
    assert set(threading.enumerate()) == threads_before
    assert Left("alice", LeaveReason.SHUTDOWN) in events
    assert events[:2] == [Joined("alice"), Joined("bob")]
    assert caplog.records == []  # clients still connected at the stop are dropped in time, not warned about
    server.stop()  # a second stop is harmless


def test_stop_is_bounded_even_with_a_client_that_never_reads(start_server, raw_clients):
    server = start_server()
    raw_clients(server.server_address, "stalled", rcvbuf_bytes=4096)
    talker = raw_clients(server.server_address, "talker")
    for _ in range(50):
        talker.send_line("y" * 3000)
    started = time.monotonic()
    server.stop(timeout_s=3.0)
    assert time.monotonic() - started < 3.5
    assert server.stats().connections_now == 0


def test_counters(server, raw_clients):
    alice = raw_clients(server.server_address, "alice")
    bob = raw_clients(server.server_address, "bob")
    carol = raw_clients(server.server_address, "carol")
    alice.send_line("one")
    alice.send_line("two")
    for client in (bob, carol):
        client.read_until(lambda e: e == ChatMessage("alice", "two"))
    stats = server.stats()
    assert (stats.connections_total, stats.connections_now, stats.users_now, stats.users_peak) == (3, 3, 3, 3)
    assert stats.deliveries == 4  # two lines, two recipients each
    assert stats.lines_in == 5  # three names and two messages
    assert stats.bytes_in == len(b"alice\nbob\ncarol\none\ntwo\n")
    bob.close()
    wait_until(lambda: server.stats().users_now == 2)
    assert server.stats().users_peak == 3


def test_event_hook_sees_joins_renames_and_leaves(start_server, raw_clients):
    events = []
    server = start_server(on_event=events.append)
    alice = raw_clients(server.server_address, "alice")
    alice.send_line("/nick Алиса")
    alice.read_until(lambda e: isinstance(e, Renamed))
    alice.send_line("/quit")
    alice.read_to_eof()
    wait_until(lambda: len(events) == 3)
    assert events == [Joined("alice"), Renamed("alice", "Алиса"), Left("Алиса", LeaveReason.QUIT)]


def test_a_failing_event_hook_does_not_hurt_the_chat(start_server, raw_clients):
    def broken_hook(event):
        raise RuntimeError("hook bug")

    server = start_server(on_event=broken_hook)
    alice = raw_clients(server.server_address, "alice")
    bob = raw_clients(server.server_address, "bob")
    bob.send_line("still works")
    assert alice.read_until(lambda e: isinstance(e, ChatMessage))[-1] == ChatMessage("bob", "still works")


def test_an_unexpected_error_disconnects_only_that_client(start_server, raw_clients, monkeypatch):
    server = start_server()
    errors = []
    monkeypatch.setattr(server, "handle_error", lambda session, exc: errors.append(exc))
    alice = raw_clients(server.server_address, "alice")
    bob = raw_clients(server.server_address, "bob")
    original = server.execute

    def execute(session, command, seq=None):
        if session.name == "bob" and isinstance(command, protocol.Who):
            raise RuntimeError("a bug in /who")
        original(session, command, seq)

    monkeypatch.setattr(server, "execute", execute)
    bob.send_line("/who")
    assert alice.read_until(lambda e: isinstance(e, Left))[-1] == Left("bob", LeaveReason.CONNECTION_LOST)
    assert [str(exc) for exc in errors] == ["a bug in /who"]
    carol = raw_clients(server.server_address, "carol")
    carol.send_line("hello")
    assert alice.read_until(lambda e: isinstance(e, ChatMessage))[-1] == ChatMessage("carol", "hello")


def test_context_manager_starts_and_stops():
    before = set(threading.enumerate())
    with ChatServer() as server:
        assert any(thread.name == "chat-accept" for thread in threading.enumerate())
        with socket.create_connection(server.server_address, timeout=2) as sock:
            sock.settimeout(2)
            assert sock.recv(100).startswith(b"= hello: ")
    assert set(threading.enumerate()) == before


@pytest.mark.parametrize("bad", [{"max_clients": -1}, {"max_line_bytes": 10}, {"rate_lines_per_s": 5, "rate_burst_lines": 0}])
def test_bad_limits_are_refused(bad):
    with pytest.raises(ValueError):
        ChatServer(**bad)


def test_a_connection_whose_threads_cannot_start_hears_the_server_is_busy_and_the_next_is_served(
        start_server, raw_clients, monkeypatch, caplog):
    server = start_server()
    errors = []
    monkeypatch.setattr(server, "handle_error", lambda session, exc: errors.append(exc))
    from chat.tcp import session as session_module

    original = session_module.Session.start
    calls = []

    def start_without_threads(self):  # the first three connections find the system out of threads
        calls.append(self)
        if len(calls) <= 3:
            self.writer = _UnstartableThread(name=self.writer.name)
        original(self)

    monkeypatch.setattr(session_module.Session, "start", start_without_threads)
    for _ in range(3):
        refused = raw_clients(server.server_address)
        event = refused.read_event()
        assert isinstance(event, protocol.Error) and event.code == protocol.SERVER_BUSY, event
        assert "out of threads" in event.text and "try again later" in event.text
    alice = raw_clients(server.server_address, "alice")  # the next connection is served
    stats = server.stats()
    assert errors == [] and stats.errors == 0 and stats.refused_busy == 3  # counted apart: not a bug
    assert stats.connections_now == 1 and server.users() == ["alice"] and alice.register
    busy_warnings = [record for record in caplog.records if "turned a connection away" in record.getMessage()]
    assert len(busy_warnings) == 1  # three within a second: logged once


def test_a_newcomer_hears_its_welcome_before_any_chat_line(server, raw_clients, monkeypatch):
    alice = raw_clients(server.server_address, "Алиса")
    welcoming = threading.Event()
    real_welcome = protocol.welcome

    def slow_welcome(name, online):  # widens the moment between joining and being welcomed
        if name == "bob":
            welcoming.set()
            time.sleep(0.3)
        return real_welcome(name, online)

    monkeypatch.setattr(protocol, "welcome", slow_welcome)
    bob = raw_clients(server.server_address)
    assert bob.read_event().topic == "hello"
    bob.send_line("bob")
    assert welcoming.wait(5)
    alice.send_line("ты здесь?")  # sent while bob is being welcomed
    assert bob.read_event() == real_welcome("bob", 2)
    assert bob.read_event() == ChatMessage("Алиса", "ты здесь?")


class _UnstartableThread(threading.Thread):
    def start(self):
        raise RuntimeError("can't start new thread")


def test_a_connection_whose_reader_cannot_start_leaves_no_writer_behind(start_server, raw_clients, monkeypatch):
    server = start_server()
    errors = []
    monkeypatch.setattr(server, "handle_error", lambda session, exc: errors.append(exc))
    from chat.tcp import session as session_module

    original = session_module.Session.start
    failed = []

    def start_with_a_failing_reader(self):
        if not failed:  # the first connection's writer starts, its reader does not
            failed.append(self)
            self.reader = _UnstartableThread(name=self.reader.name)
        original(self)

    monkeypatch.setattr(session_module.Session, "start", start_with_a_failing_reader)
    refused = raw_clients(server.server_address)
    assert refused.read_event().code == protocol.SERVER_BUSY
    wait_until(lambda: not failed[0].writer.is_alive())  # stopped with the connection, not left waiting forever
    alice = raw_clients(server.server_address, "alice")
    assert errors == [] and server.stats().refused_busy == 1
    assert alice.register and server.users() == ["alice"]


def test_stop_waits_for_serve_forever_run_in_the_callers_own_thread(raw_clients):
    server = ChatServer()
    serving = threading.Thread(target=server.serve_forever, name="test-serve-forever")
    serving.start()
    raw_clients(server.server_address, "alice")
    server.stop()
    serving.join(2)
    assert not serving.is_alive()
    assert server.stats().connections_now == 0


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in Linux's /proc/self/fd")
def test_a_connection_waiting_to_register_holds_one_descriptor(start_server):
    server = start_server()
    waiting = [socket.create_connection(server.server_address, timeout=5) for _ in range(10)]
    try:
        wait_until(lambda: len(server.sessions()) == 10)
        before = len(os.listdir("/proc/self/fd"))  # the server's own descriptors are all open by now
        waiting += [socket.create_connection(server.server_address, timeout=5) for _ in range(10)]
        wait_until(lambda: len(server.sessions()) == 20)
        # 10 more client sockets and 10 more server sockets, and no selector's descriptor for a reader waiting for a name
        wait_until(lambda: len(os.listdir("/proc/self/fd")) - before == 20)
    finally:
        for sock in waiting:
            sock.close()


def _register_raw(address, name: str, rcvbuf_bytes: int | None = None) -> socket.socket:
    sock = socket.socket()
    sock.settimeout(5)
    if rcvbuf_bytes:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf_bytes)  # before connecting: a small window too
    sock.connect(address)
    sock.sendall(f"{name}\n".encode())
    seen = b""
    while b"= welcome: " not in seen:
        seen += sock.recv(4096)
    return sock


def test_clients_that_read_everything_are_never_dropped_as_too_slow_when_the_server_falls_behind(start_server):
    """100 users who never read, four who broadcast 4,000-byte lines at 2,000 a second each, five who read.

    The server's writes fall behind (32 MB a second to each of 108 others); before, the readers' queues filled
    while their sockets took everything, and they were dropped as "too slow" in every run.  Now the
    senders are pushed back instead, and only those who stop reading are dropped.
    """
    for attempt in range(2):
        server = start_server(rate_lines_per_s=0)
        idle = [_register_raw(server.server_address, f"спит{i}", rcvbuf_bytes=4096) for i in range(100)]
        readers = [_register_raw(server.server_address, f"читатель{i}") for i in range(5)]
        talkers = [_register_raw(server.server_address, f"болтун{i}") for i in range(4)]
        stop, ended, received = threading.Event(), [], [0] * 5

        def read(index: int, sock: socket.socket) -> None:
            sock.settimeout(0.2)
            while not stop.is_set():
                try:
                    data = sock.recv(1 << 20)
                except TimeoutError:
                    continue
                if not data:
                    ended.append(index)
                    return
                received[index] += len(data)

        def talk(sock: socket.socket) -> None:  # a talker reads nothing: it is dropped as too slow, rightly
            line, started = b"x" * 4000 + b"\n", time.monotonic()
            for sent in itertools.count():
                if stop.wait(max(0.0, started + sent / 2000 - time.monotonic())):
                    return
                try:
                    sock.sendall(line)
                except OSError:  # dropped, or pushed back for the whole timeout: it stops talking
                    return

        threads = [threading.Thread(target=read, args=(i, sock), name=f"test-reader-{i}") for i, sock in enumerate(readers)]
        threads += [threading.Thread(target=talk, args=(sock,), name=f"test-talker-{i}") for i, sock in enumerate(talkers)]
        for thread in threads:
            thread.start()
        try:  # until every reader has had megabytes of the chat, or one of them was dropped
            wait_until(lambda: ended or min(received) > 8 << 20, timeout_s=20)
        finally:
            stop.set()
        for thread in threads:
            thread.join(5)
        leaves = server.stats().leaves
        for sock in idle + readers + talkers:
            sock.close()
        server.stop()
        assert ended == [], f"run {attempt + 1}: clients that read everything were dropped: {sorted(ended)}; leaves {leaves}"
        assert leaves.get("too slow", 0) >= 90  # those who never read are dropped as before
        assert min(received) > 8 << 20  # and the readers got the chat: megabytes of it
