"""The textbook server fails exactly the way its docstring says (and ours doesn't)."""

from __future__ import annotations

import pytest

from chat.lab.naive import NaiveServer
from chat.protocol import ChatMessage, Joined, Unparsed


@pytest.fixture
def naive():
    server = NaiveServer().start()
    yield server
    server.stop()


def register(raw_clients, address, name):
    """Connect and register ``name`` on the textbook server.

    Its threads announce a newcomer to the client list as it is when they get
    there (no lock), so under load an earlier user's late "*** X joined" may
    reach this client before its own welcome.
    """
    client = raw_clients(address)
    client.send_line(name)
    line = client.read_line()
    while line.startswith("*** ") and line.endswith(" joined"):
        line = client.read_line()
    assert line == f"= welcome: {name}"
    return client


def test_two_messages_in_one_recv_are_relayed_as_one(naive, raw_clients):
    alice = register(raw_clients, naive.server_address, "alice")
    bob = register(raw_clients, naive.server_address, "bob")
    assert alice.read_event() == Joined("bob")
    bob.send_bytes(b"first\nsecond\n")  # one send, one segment, one recv(1024)
    assert alice.read_event() == ChatMessage("bob", "first")
    assert alice.read_event() == Unparsed("second")  # no name: nobody knows who said it


def test_a_long_message_is_cut_in_two(naive, raw_clients):
    alice = register(raw_clients, naive.server_address, "alice")
    bob = register(raw_clients, naive.server_address, "bob")
    alice.read_event()
    bob.send_line("x" * 1500)
    line = alice.read_line()
    assert line == "<bob> " + "x" * 1024 + "<bob> " + "x" * 476  # the second piece got its own prefix


def test_a_cyrillic_letter_split_by_recv_disconnects_the_sender(naive, raw_clients):
    alice = register(raw_clients, naive.server_address, "alice")
    bob = register(raw_clients, naive.server_address, "bob")
    alice.read_event()
    bob.send_bytes(b"a" * 1023 + "ж\n".encode())  # the 1024th byte is half of "ж"
    assert alice.read_line() == "*** bob left (connection lost)"  # UnicodeDecodeError, caught by `except:`
    try:
        late = bob.read_line()
    except (AssertionError, ConnectionResetError):  # closed (with a reset: "ж\n" was unread)
        return
    # Under load a late "*** alice joined" may come first: alice's thread announces her to the list as
    # it is when it gets there, which may already hold bob (the textbook's unlocked list again).
    assert late == "*** alice joined"
    with pytest.raises((AssertionError, ConnectionResetError)):
        bob.read_line()


def test_our_server_keeps_the_same_bytes_intact(start_server, raw_clients):
    server = start_server()
    alice = raw_clients(server.server_address, "alice")
    bob = raw_clients(server.server_address, "bob")
    alice.read_event()
    bob.send_bytes(b"first\nsecond\n" + b"a" * 1023 + "ж\n".encode())
    assert [alice.read_event() for _ in range(3)] == [
        ChatMessage("bob", "first"), ChatMessage("bob", "second"), ChatMessage("bob", "a" * 1023 + "ж")]


def test_one_stalled_client_freezes_everybody(naive, raw_clients):
    raw_clients(naive.server_address, rcvbuf_bytes=4096).send_line("stalled")  # first in the list, never reads
    reader = register(raw_clients, naive.server_address, "reader")
    sender = register(raw_clients, naive.server_address, "sender")
    reader.read_until(lambda e: e == Joined("sender"))
    text = "y" * 1000
    received = 0
    for i in range(5000):  # at most 5 MB; the freeze comes much sooner
        sender.send_line(f"{i} {text}")
        try:
            while received <= i:
                event = reader.read_event(timeout_s=1.0)
                received += isinstance(event, ChatMessage)
        except TimeoutError:
            break  # the sender's thread is stuck in send() to the stalled client
    else:
        pytest.fail("the textbook server never froze")
    assert received < 5000
    sender.send_line("still frozen?")
    with pytest.raises(TimeoutError):
        reader.read_event(timeout_s=1.0)


def test_naive_stop_leaves_no_thread(raw_clients):
    server = NaiveServer().start()
    alice = register(raw_clients, server.server_address, "alice")
    server.stop()  # the autouse fixture checks that every thread ended
    with pytest.raises((AssertionError, ConnectionResetError)):
        alice.read_line()
