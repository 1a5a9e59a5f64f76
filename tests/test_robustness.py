"""The bad-input battery: every kind of misbehaving client against a live server.

After each offence two witnesses, Алиса and bob, who were connected all
along, must still exchange messages with nothing lost or out of order; the
server must have handled no unexpected exception; and where an error line
applies, the offender gets it.  Limits are small so the suite stays fast.
"""

from __future__ import annotations

import os
import socket
import time

import pytest

from chat import protocol
from chat.lab.harness import ProcessSampler
from chat.protocol import ChatMessage, Error, Joined, LeaveReason, Left
from tests.helpers import RawClient, wait_until

LIMITS = dict(max_line_bytes=1024, registration_timeout_s=1.0, max_clients=12, sendq_bytes=256 * 1024,
              rate_lines_per_s=0)
WITNESS_MESSAGES = 50
MEMORY_GROWTH_LIMIT_BYTES = 32 << 20


@pytest.fixture
def arena(start_server, raw_clients):
    server = start_server(**LIMITS)
    alice = raw_clients(server.server_address, "Алиса")
    bob = raw_clients(server.server_address, "bob")
    alice.read_until(lambda e: e == Joined("bob"))
    return server, alice, bob


def witnesses_are_fine(server, alice, bob) -> None:
    """Both witnesses get every message of the other, once, in order; the server saw no bug."""
    tag = time.monotonic_ns()
    for i in range(WITNESS_MESSAGES):
        alice.send_line(f"a{tag}-{i} привет")
        bob.send_line(f"b{tag}-{i} hello")
    for reader, sender, prefix, text in ((bob, "Алиса", "a", "привет"), (alice, "bob", "b", "hello")):
        got = [e.text for e in _chat_from(reader, sender, WITNESS_MESSAGES)]
        assert got == [f"{prefix}{tag}-{i} {text}" for i in range(WITNESS_MESSAGES)]
    assert server.stats().errors == 0
    assert {"Алиса", "bob"} <= set(server.users())


def _chat_from(reader: RawClient, sender: str, count: int) -> list[ChatMessage]:
    messages = []
    while len(messages) < count:
        event = reader.read_event()
        if isinstance(event, ChatMessage) and event.sender == sender:
            messages.append(event)
    return messages


def greeted(address, **options) -> RawClient:
    client = RawClient(address, **options)
    assert client.read_event().topic == "hello"
    return client


def first_error(client: RawClient) -> Error:
    return next(e for e in client.read_until(lambda e: isinstance(e, Error)) if isinstance(e, Error))


# -- encoding and content ----------------------------------------------------------------------


def test_invalid_utf8_in_text_arrives_as_replacement_characters(arena, raw_clients):
    server, alice, bob = arena
    mallory = raw_clients(server.server_address, "mallory")
    mallory.send_bytes(b"bad \xff\xfe\xc3 bytes\n")
    assert _chat_from(alice, "mallory", 1)[0].text == "bad \ufffd\ufffd\ufffd bytes"
    witnesses_are_fine(server, alice, bob)


def test_invalid_utf8_in_a_name_is_refused(arena):
    server, alice, bob = arena
    mallory = greeted(server.server_address)
    mallory.send_bytes(b"m\xffallory\n")
    assert first_error(mallory).code == protocol.NAME_INVALID
    mallory.close()
    witnesses_are_fine(server, alice, bob)


@pytest.mark.parametrize("payload, shown", [
    (b"nul\x00byte", "nul\u2400byte"),
    (b"lone\rcr", "lone\u240dcr"),
    (b"\x1b[2J\x1b[Hwiped", "wiped"),
    (b"\x1b]0;pwned title\x07osc", "osc"),
    (b"\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\", "link"),
    ("bidi \u202eevil".encode(), "bidi \ufffdevil"),
])
def test_control_characters_in_text_are_made_harmless(arena, raw_clients, payload, shown):
    server, alice, bob = arena
    mallory = raw_clients(server.server_address, "mallory")
    mallory.send_bytes(payload + b"\n")
    line = alice.read_until(lambda e: isinstance(e, ChatMessage) and e.sender == "mallory")
    assert line[-1].text == shown
    witnesses_are_fine(server, alice, bob)


@pytest.mark.parametrize("name, code", [
    (b"", protocol.NAME_INVALID),  # empty
    (b"   \t ", protocol.NAME_INVALID),  # whitespace only
    (b"x" * 10_000, protocol.LINE_TOO_LONG),  # longer than a line may be
    ("ж".encode() * 40, protocol.NAME_INVALID),  # short line, too many characters
    (b"nul\x00name", protocol.NAME_INVALID),
    (b"cr\rname", protocol.NAME_INVALID),
    ("rtl\u202eeman".encode(), protocol.NAME_INVALID),  # bidi override
    ("\u3164".encode(), protocol.NAME_INVALID),  # a blank "letter"
    ("zero\u200bwidth".encode(), protocol.NAME_INVALID),
    (b"\x1b[31mred", protocol.NAME_INVALID),
    ("аӏісе".encode(), protocol.NAME_TAKEN),  # all Cyrillic, and looks like alice, who is online
    ("аlice".encode(), protocol.NAME_INVALID),  # one Cyrillic а among Latin letters
    ("bօb".encode(), protocol.NAME_INVALID),  # an Armenian օ
    (b"ALICE", protocol.NAME_TAKEN),
    (b"AIice", protocol.NAME_TAKEN),  # capital i
    (b"Bob", protocol.NAME_TAKEN),
])
def test_bad_names_get_a_clear_error_and_may_retry(arena, raw_clients, name, code):
    server, alice, bob = arena
    raw_clients(server.server_address, "alice")
    mallory = greeted(server.server_address)
    mallory.send_bytes(name + b"\n")
    assert first_error(mallory).code == code
    mallory.send_line("mallory")  # the same connection may try again
    assert mallory.read_event().topic == "welcome"
    mallory.close()
    witnesses_are_fine(server, alice, bob)


def test_crlf_inside_a_name_makes_two_lines(arena):
    server, alice, bob = arena
    mallory = greeted(server.server_address)
    mallory.send_bytes(b"mal\r\nlory\n")  # "mal" is the name, "lory" the first message
    assert mallory.read_event().topic == "welcome"
    assert _chat_from(alice, "mal", 1)[0].text == "lory"
    mallory.close()
    witnesses_are_fine(server, alice, bob)


# -- size and timing ---------------------------------------------------------------------------


def test_100_mb_without_a_newline_costs_no_memory(arena, raw_clients, record_property):
    server, alice, bob = arena
    mallory = raw_clients(server.server_address, "mallory")
    chunk = b"z" * (1 << 20)
    with ProcessSampler(os.getpid(), interval_s=0.01) as sampler:
        for _ in range(100):
            mallory.send_bytes(chunk)
        mallory.send_bytes(b"\nafter the flood\n")
        assert first_error(mallory).code == protocol.LINE_TOO_LONG
        assert _chat_from(alice, "mallory", 1)[0].text == "after the flood"  # the connection stayed open
    growth = sampler.peak_rss_bytes - sampler.first_rss_bytes
    record_property("rss_growth_bytes", growth)  # for the report (python -m chat report)
    assert growth < MEMORY_GROWTH_LIMIT_BYTES
    (session,) = [s for s in server.sessions() if s.name == "mallory"]
    assert session.decoder.pending_bytes <= LIMITS["max_line_bytes"] + 1
    witnesses_are_fine(server, alice, bob)


def test_slowloris_cannot_hold_registration_open(arena):
    server, alice, bob = arena
    slow = greeted(server.server_address)
    started = time.monotonic()
    lines = []
    for char in b"slowloris":  # a byte at a time, never a full line
        try:
            slow.send_bytes(bytes([char]))
        except OSError:
            break
        try:
            lines.append(slow.read_line(timeout_s=0.25))
            break
        except TimeoutError:
            continue
    assert protocol.parse_event(lines[0]).code == protocol.TIMEOUT
    assert time.monotonic() - started < LIMITS["registration_timeout_s"] + 2
    witnesses_are_fine(server, alice, bob)


def test_a_slow_sender_mid_line_holds_up_nobody(arena, raw_clients):
    server, alice, bob = arena
    slow = raw_clients(server.server_address, "slow")
    for char in "медленно":
        slow.send_bytes(char.encode())
        witnesses_are_fine(server, alice, bob)
    slow.send_bytes(b"\n")
    assert _chat_from(alice, "slow", 1)[0].text == "медленно"


def test_connect_and_never_send_times_out(arena):
    server, alice, bob = arena
    silent = RawClient(server.server_address)
    lines = silent.read_to_eof(timeout_s=LIMITS["registration_timeout_s"] + 3)
    assert protocol.parse_event(lines[-1]).code == protocol.TIMEOUT
    witnesses_are_fine(server, alice, bob)
    assert server.stats().registration_timeouts == 1


# -- broken connections -------------------------------------------------------------------------


def test_reset_in_the_middle_of_a_line(arena, raw_clients):
    server, alice, bob = arena
    mallory = raw_clients(server.server_address, "mallory")
    mallory.send_bytes("половина строки".encode())
    mallory.abort()
    assert alice.read_until(lambda e: isinstance(e, Left))[-1] == Left("mallory", LeaveReason.CONNECTION_LOST)
    witnesses_are_fine(server, alice, bob)  # and the half line was never relayed (witnesses saw only their own)


def test_half_close_delivers_what_was_sent_then_leaves(arena, raw_clients):
    server, alice, bob = arena
    mallory = raw_clients(server.server_address, "mallory")
    mallory.send_bytes("последнее слово\n".encode())
    mallory.sock.shutdown(socket.SHUT_WR)
    events = alice.read_until(lambda e: isinstance(e, Left))
    assert events[-2:] == [ChatMessage("mallory", "последнее слово"), Left("mallory", LeaveReason.CONNECTION_LOST)]
    witnesses_are_fine(server, alice, bob)


def test_clients_vanishing_during_a_broadcast(arena, raw_clients):
    server, alice, bob = arena
    vanishing = [raw_clients(server.server_address, f"v{i}") for i in range(6)]
    for i in range(200):
        alice.send_line(f"flood {i} " + "ш" * 200)
        if i % 30 == 0 and vanishing:
            vanishing.pop().abort()
    assert [e.text.split()[1] for e in _chat_from(bob, "Алиса", 200)] == [str(i) for i in range(200)]
    wait_until(lambda: len(server.users()) == 2 + len(vanishing))
    witnesses_are_fine(server, alice, bob)


# -- floods ----------------------------------------------------------------------------------------


def test_connections_beyond_the_maximum_are_refused_with_an_error(arena):
    server, alice, bob = arena
    extra = [RawClient(server.server_address) for _ in range(LIMITS["max_clients"] + 3)]
    try:
        first_lines = [protocol.parse_event(client.read_line()) for client in extra]
        refused = [event for event in first_lines if isinstance(event, Error)]
        assert len(refused) == 5  # 12 allowed: the witnesses and 10 more
        assert all(event.code == protocol.SERVER_FULL for event in refused)
        witnesses_are_fine(server, alice, bob)
    finally:
        for client in extra:
            client.close()


def test_a_flood_above_the_rate_limit_is_slowed_not_dropped_and_others_are_not_slowed(start_server, raw_clients):
    server = start_server(**{**LIMITS, "rate_lines_per_s": 100.0, "rate_burst_lines": 10})
    alice = raw_clients(server.server_address, "Алиса")
    bob = raw_clients(server.server_address, "bob")
    flooder = raw_clients(server.server_address, "flooder")
    flooder.send_bytes(b"".join(f"{i}\n".encode() for i in range(150)))  # 1.5 s worth at the limit
    started = time.monotonic()
    alice.send_line("meanwhile")
    assert _chat_from(bob, "Алиса", 1)[0].text == "meanwhile"
    assert time.monotonic() - started < 0.5  # the others' lines are not behind the flood
    texts = [e.text for e in _chat_from(alice, "flooder", 150)]
    assert texts == [str(i) for i in range(150)]
    assert time.monotonic() - started >= (150 - 10) / 100 * 0.9
    witnesses_are_fine(server, alice, bob)


def test_a_stalled_client_costs_at_most_its_queue(arena, raw_clients, record_property):
    server, alice, bob = arena
    raw_clients(server.server_address, "stalled", rcvbuf_bytes=4096)
    text = "щ" * 500
    seen = []
    for i in range(20_000):
        alice.send_line(f"{i} {text}")
        if i % 50 == 0:
            seen += bob.read_until(lambda e: isinstance(e, ChatMessage) and e.text.startswith(f"{i} "))
            if Left("stalled", LeaveReason.TOO_SLOW) in seen:
                break
    assert Left("stalled", LeaveReason.TOO_SLOW) in seen
    record_property("sendq_peak_bytes", server.stats().sendq_peak_bytes)
    record_property("sendq_bound_bytes", LIMITS["sendq_bytes"])
    assert server.stats().sendq_peak_bytes <= LIMITS["sendq_bytes"]
    witnesses_are_fine(server, alice, bob)


# -- regressions found in review ------------------------------------------------------------------------


def test_an_unregistered_client_that_never_reads_cannot_block_the_others(arena):
    """Its error replies fill its socket; that may stall its own writer, never the shared flusher."""
    server, alice, bob = arena
    junk = RawClient(server.server_address, rcvbuf_bytes=4096)
    try:
        for _ in range(40):
            junk.send_bytes(b"bad name!\n" * 2000)  # 80,000 refused names, an error line each
            witnesses_are_fine(server, alice, bob)
    except OSError:
        pass  # dropped as too slow: exactly right
    finally:
        junk.close()
    assert {"Алиса", "bob"} <= set(server.users())


def test_the_registration_deadline_holds_while_a_read_is_worked_through(start_server, raw_clients):
    server = start_server(registration_timeout_s=0.5, rate_lines_per_s=10.0, rate_burst_lines=5)
    slow = raw_clients(server.server_address)
    started = time.monotonic()
    slow.send_bytes(b"\n" * 65536)  # 65,536 blank names, at 10 lines a second
    lines = slow.read_to_eof(timeout_s=5)
    assert protocol.parse_event(lines[-1]).code == protocol.TIMEOUT
    assert time.monotonic() - started < 2.0


def test_a_dropped_flooder_stops_being_relayed_at_once(start_server, raw_clients):
    server = start_server(rate_lines_per_s=50.0, rate_burst_lines=5)
    alice = raw_clients(server.server_address, "alice")
    flooder = raw_clients(server.server_address, "flooder")
    alice.read_until(lambda e: e == Joined("flooder"))
    flooder.send_bytes(b"".join(f"{i}\n".encode() for i in range(2000)))  # 40 s worth at the limit
    alice.read_until(lambda e: isinstance(e, ChatMessage) and e.text == "10")
    (session,) = [s for s in server.sessions() if s.name == "flooder"]
    session.drop(LeaveReason.TOO_SLOW)
    events = alice.read_until(lambda e: isinstance(e, Left), timeout_s=2)
    assert events[-1] == Left("flooder", LeaveReason.TOO_SLOW)
    wait_until(lambda: server.users() == ["alice"], timeout_s=2)
