"""The UDP variant: joins, relays, expiry, limits, sequence counting, injected faults, the CLI."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time

import pytest

from chat import protocol
from chat.clientbase import Disconnected, NameRefused
from chat.lab import netloss
from chat.protocol import Action, ChatMessage, Error, Joined, LeaveReason, Left, PrivateMessage, Renamed, Reply, SequenceTracker
from chat.reporting.terminal import python_command
from chat.udp import Faults, UDPChatServer, connect
from tests.helpers import wait_until

TIMEOUT_S = 5.0


@pytest.fixture
def start_udp():
    servers = []

    def start(**options) -> UDPChatServer:
        options.setdefault("rate_lines_per_s", 0)  # flood control has a test of its own; the others send freely
        servers.append(UDPChatServer(**options).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()
        assert server.stats().errors == 0


@pytest.fixture
def udp(start_udp):
    return start_udp()


@pytest.fixture
def clients():
    opened = []

    def open_client(address, name, **options):
        opened.append(connect(address, name, **options))
        return opened[-1]

    yield open_client
    for client in opened:
        client.close()


class RawDatagrams:
    """A bare UDP socket, as `nc -u` would be."""

    def __init__(self, address) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(TIMEOUT_S)
        self.sock.connect(address)

    def send(self, line: str, seq: int | None = None) -> None:
        self.sock.send(protocol.encode_datagram(line, seq))

    def event(self):
        return protocol.parse_event(protocol.decode_datagram(self.sock.recv(65536))[1])

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw():
    opened = []

    def open_raw(address) -> RawDatagrams:
        opened.append(RawDatagrams(address))
        return opened[-1]

    yield open_raw
    for sock in opened:
        sock.close()


def test_join_relay_and_leave(udp, clients):
    alice = clients(udp.server_address, "Алиса")
    bob = clients(udp.server_address, "bob")
    assert alice.wait_for(Joined) == Joined("bob")
    bob.say("привет по UDP")
    bob.me("машет")
    assert alice.wait_for(ChatMessage) == ChatMessage("bob", "привет по UDP")
    assert alice.wait_for(Action) == Action("bob", "машет")
    bob.quit("пока")
    assert alice.wait_for(Left) == Left("bob", LeaveReason.QUIT, "пока")
    assert udp.users() == ["Алиса"]


def test_who_msg_and_nick(udp, clients):
    alice = clients(udp.server_address, "Алиса")
    bob = clients(udp.server_address, "bob")
    assert bob.who() == ["bob", "Алиса"]
    bob.msg("АЛИСА", "только тебе")
    assert alice.wait_for(PrivateMessage) == PrivateMessage("bob", "только тебе")
    bob.nick("Боб")
    assert alice.wait_for(Renamed) == Renamed("bob", "Боб")
    assert bob.wait_for(Renamed) and bob.name == "Боб"


def test_members_that_go_silent_expire(start_udp, clients):
    server = start_udp(member_timeout_s=0.4)
    alive = clients(server.server_address, "alive", heartbeat_s=0.1)
    silent = clients(server.server_address, "silent", heartbeat_s=60)  # never pings in time
    assert alive.wait_for(lambda e: isinstance(e, Left), TIMEOUT_S) == Left("silent", LeaveReason.TIMED_OUT)
    assert server.users() == ["alive"]  # the heartbeats kept the other one in
    told = silent.wait_for(Error)  # the silent member is told that it was dropped, and why
    assert told.code == protocol.TIMEOUT and "0.4 s" in told.text and "/join" in told.text
    silent.say("anyone?")
    error = silent.wait_for(Error)
    assert error.code == protocol.NOT_JOINED


def test_name_rules_are_the_same_as_over_tcp(udp, clients):
    clients(udp.server_address, "alice")
    for name, code in (("ALICE", protocol.NAME_TAKEN), ("аӏісе", protocol.NAME_TAKEN), ("two words", protocol.NAME_INVALID),
                       ("x" * 40, protocol.NAME_INVALID), ("", protocol.NAME_INVALID)):
        with pytest.raises(NameRefused) as refused:
            connect(udp.server_address, name, timeout_s=2)
        assert refused.value.code == code


def test_unknown_sender_gets_an_error(udp, raw):
    stranger = raw(udp.server_address)
    stranger.send("hello?")
    assert stranger.event() == Error(protocol.NOT_JOINED, "send /join NAME first")


def test_oversized_datagram_gets_an_error_and_is_not_relayed(start_udp, clients, raw):
    server = start_udp(max_payload_bytes=200)
    alice = clients(server.server_address, "alice")
    bob = raw(server.server_address)
    bob.send("/join bob")
    assert bob.event().topic == "welcome"
    bob.send("ж" * 150)  # 300 bytes
    error = bob.event()
    assert error.code == protocol.TOO_LONG and "200" in error.text
    bob.send("x" * 197)  # fits, but with "<bob> " in front it would not
    assert bob.event().code == protocol.TOO_LONG
    bob.send("short")
    assert alice.wait_for(ChatMessage) == ChatMessage("bob", "short")


def test_sequence_gaps_duplicates_and_reordering_are_counted(udp, clients, raw):
    alice = clients(udp.server_address, "alice")
    bob = raw(udp.server_address)
    bob.send("/join bob")
    assert bob.event().topic == "welcome"
    for seq in (0, 1, 3, 3, 2, 5, 6):  # 4 never comes, 3 twice, 2 late
        bob.send(f"message {seq}", seq)
    wait_until(lambda: alice.sequence_stats().get("bob", {}).get("received") == 6)
    assert alice.sequence_stats()["bob"] == {"received": 6, "missing": 1, "duplicated": 1, "out_of_order": 1}


def test_sequence_tracker_alone():
    tracker = SequenceTracker()
    for seq in (10, 12, 11, 11, 15):
        tracker.record(seq)
    assert (tracker.received, tracker.duplicated, tracker.out_of_order, tracker.missing()) == (4, 1, 1, 2)


def received_after_loss(start_udp, clients, seed: int, drop: float = 0.3, count: int = 200) -> list[int]:
    server = start_udp(faults=Faults(drop=drop, seed=seed))
    receiver = clients(server.server_address, f"r{seed}")
    sender = clients(server.server_address, f"s{seed}")
    for i in range(count):
        sender.say(str(i))
    sender.who()  # answered after every message before it was relayed
    wait_until(lambda: server.stats().deliveries + server.stats().dropped == count)
    got = []
    for event in receiver.events(idle_s=0.3):
        if isinstance(event, ChatMessage):
            got.append(int(event.text))
    assert len(got) == server.stats().deliveries
    return got


def test_injected_loss_is_reproducible_for_a_seed(start_udp, clients):
    first = received_after_loss(start_udp, clients, seed=42)
    again = received_after_loss(start_udp, clients, seed=42)
    other = received_after_loss(start_udp, clients, seed=7)
    assert first == again
    assert first != other
    assert 100 < len(first) < 180  # about 30 % of 200 dropped


def test_jitter_reorders_and_delay_delays(start_udp, clients):
    server = start_udp(faults=Faults(delay_s=0.05, jitter_s=0.05, seed=1))
    receiver = clients(server.server_address, "receiver")
    sender = clients(server.server_address, "sender")
    for i in range(60):
        sender.say(str(i))
    wait_until(lambda: receiver.sequence_stats().get("sender", {}).get("received") == 60)
    assert receiver.sequence_stats()["sender"]["out_of_order"] > 0
    assert server.stats().delayed == 60


def test_server_stop_tells_the_members(start_udp, clients):
    server = start_udp()
    alice = clients(server.server_address, "alice")
    server.stop()
    assert alice.wait_for(protocol.ServerClosing) == protocol.ServerClosing()
    assert alice.next_event() == Disconnected("the server is shutting down")


def test_a_client_notices_the_server_is_gone():
    server = subprocess.Popen(python_command("udp-server", "--port", "0"), stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline().split(":", 1)[1].split(";", 1)[0])
        alice = connect(("127.0.0.1", port), "alice", heartbeat_s=0.1)
        server.kill()  # gone without a word
        server.communicate(timeout=TIMEOUT_S)
        event = alice.wait_for(Disconnected, TIMEOUT_S)
        assert event.reason.startswith(("no answer", "the server can't be reached"))
        alice.close()
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()


# -- the command line ----------------------------------------------------------------------------------


def test_udp_cli_server_and_client(tmp_path):
    server = subprocess.Popen(python_command("udp-server", "--port", "0"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        banner = server.stdout.readline()
        assert banner.startswith("UDP chat server on 127.0.0.1:"), banner
        port = int(banner.split(":", 1)[1].split(";", 1)[0])
        with connect(("127.0.0.1", port), "Алиса") as alice:
            result = subprocess.run(python_command("udp-client", "bob", "--port", str(port)),
                                    input="привет из консоли\n", capture_output=True, text=True, timeout=30)
            assert result.returncode == 0, result.stderr
            assert alice.wait_for(ChatMessage) == ChatMessage("bob", "привет из консоли")
            assert alice.wait_for(Left) == Left("bob", LeaveReason.QUIT)
        server.send_signal(signal.SIGINT)
        out, _ = server.communicate(timeout=30)
        assert server.returncode == 0 and "server stopped" in out
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()


def test_udp_client_with_no_server_exits_nonzero():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    result = subprocess.run(python_command("udp-client", "bob", "--port", str(port)), input="",
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "no answer" in result.stderr or "can't reach" in result.stderr


def test_udp_server_help_lists_every_option():
    result = subprocess.run(python_command("udp-server", "--help"), capture_output=True, text=True, timeout=30)
    for flag in ("--member-timeout", "--max-payload", "--max-members", "--drop", "--delay-ms", "--jitter-ms", "--seed"):
        assert flag in result.stdout
    assert Reply  # imported for the grammar; used above through the clients


def test_the_server_keeps_receiving_when_expiry_checks_are_constantly_due(start_udp, clients):
    """Regression: a wait computed as 0 made the socket non-blocking, and the server loop ended."""
    server = start_udp(check_interval_s=0.0005)  # a check is nearly always due when a datagram is done
    receiver = clients(server.server_address, "receiver")
    sender = clients(server.server_address, "sender")
    for round_ in range(20):
        for i in range(20):
            sender.say(f"{round_}.{i}")
        sender.who()  # a round trip: the server is still there
    wait_until(lambda: receiver.sequence_stats().get("sender", {}).get("received", 0) == 400)
    assert server._thread.is_alive()


def test_a_resent_join_is_welcomed_again(udp, raw):
    """The welcome may be lost; the client resends /join and must not be refused for it."""
    bob = raw(udp.server_address)
    bob.send("/join bob")
    assert bob.event().topic == "welcome"
    bob.send("/join BOB")
    assert bob.event() == protocol.welcome("bob", 1)
    bob.send("/join someone_else")
    assert bob.event().code == protocol.USAGE


def test_the_who_reply_fits_in_one_datagram(start_udp, raw):
    server = start_udp(max_payload_bytes=200)
    members = [raw(server.server_address) for _ in range(30)]
    for i, member in enumerate(members):
        member.send(f"/join участник_{i}")
        assert member.event().topic == "welcome"
    members[0].sock.settimeout(TIMEOUT_S)
    members[0].send("/who")
    while True:
        data = members[0].sock.recv(65536)
        event = protocol.parse_event(protocol.decode_datagram(data)[1])
        if isinstance(event, Reply) and event.topic == "who":
            break
    assert len(data) <= 200
    assert event.text.startswith("30 online: ") and event.text.endswith("more")


def _loss_rules() -> list[str]:
    listed = subprocess.run(["iptables", "-w", "-S", "INPUT"], capture_output=True, text=True, timeout=30)
    return [line for line in listed.stdout.splitlines() if "chat-lab" in line]


@pytest.mark.skipif(not netloss.available()[0], reason=netloss.available()[1] or "iptables available")
def test_packet_loss_rules_are_added_for_one_port_and_always_removed():
    with netloss.PacketLoss(45678, 0.25):
        rules = _loss_rules()
        assert len(rules) == 2 and all("45678" in rule for rule in rules)
    assert _loss_rules() == []
    with pytest.raises(ZeroDivisionError):
        with netloss.PacketLoss(45679, 0.25):
            1 / 0  # noqa: B018 - an error inside the block
    assert _loss_rules() == []
    leftover = netloss.PacketLoss(45680, 0.25).__enter__()  # as if the run had been killed
    assert len(_loss_rules()) == 2 and leftover
    assert netloss.sweep() == 2 and _loss_rules() == []


def test_simulated_users_who_only_listen_keep_their_membership_with_heartbeats(start_udp, monkeypatch):
    from chat.lab.loadgen import LoadConfig, run_load
    from chat.lab.udpgroup import UDPUserGroup

    monkeypatch.setattr(UDPUserGroup, "heartbeat_s", 0.2)
    server = start_udp(member_timeout_s=1.0)
    config = LoadConfig(users=3, senders=1, messages=30, rate_per_s=10, transport="udp", drain_idle_s=0.5)
    result = run_load(server.server_address, config, processes=0)  # 3 s: three member timeouts
    assert (result.delivered, result.lost) == (result.expected, 0) == (60, 0)
    assert server.stats().leaves.get("timed out", 0) == 0


def test_every_datagram_from_the_server_is_one_line_ending_in_a_line_break(udp, clients, raw):
    alice = clients(udp.server_address, "Алиса")
    bob = raw(udp.server_address)  # as `nc -u` is: it prints what arrives, as it is
    bob.sock.send(b"/join bob\n")  # what nc -u sends: the typed line and its line break
    welcome = bob.sock.recv(65536)
    alice.say("привет, bob")
    while ChatMessage("Алиса", "привет, bob") != protocol.parse_event(protocol.decode_datagram(line := bob.sock.recv(65536))[1]):
        pass
    for data in (welcome, line):
        assert data.endswith(b"\n") and data.count(b"\n") == 1
    assert line == "#0 <Алиса> привет, bob\n".encode()


def test_the_answers_to_the_clients_own_heartbeats_are_not_shown_as_events(udp, clients):
    alice = clients(udp.server_address, "Алиса", heartbeat_s=0.05)
    start = udp.stats().datagrams_out
    wait_until(lambda: udp.stats().datagrams_out >= start + 5)  # pings answered with "= pong: ok"
    assert not [event for event in alice.drain() if isinstance(event, Reply) and event.topic == "pong"]
    assert alice.connected and alice.who() == ["Алиса"]  # the pongs still kept it alive


def test_the_size_limit_holds_for_what_the_server_sends_too(start_udp, raw):
    server = start_udp(max_payload_bytes=200)
    alice, bob = raw(server.server_address), raw(server.server_address)
    for member, name in ((alice, "alice"), (bob, "bob")):
        member.send(f"/join {name}")
        assert member.event().topic == "welcome"
    assert alice.event() == Joined("bob")
    # 82 bytes in, but each control character is shown as a 3-byte symbol: 216 bytes on the way out
    bob.send("/msg alice " + "\x01" * 70)
    refused = bob.event()
    assert refused.code == protocol.LINE_TOO_LONG and "sent on" in refused.text
    bob.send("/quit " + "\x01" * 64)  # its leave line would pass the limit: the reason is cut to fit
    data = alice.sock.recv(65536)
    left = protocol.parse_event(protocol.decode_datagram(data)[1])
    assert len(data) <= 200 and isinstance(left, Left) and left.name == "bob" and left.detail.endswith("…")


def test_one_member_flooding_the_server_is_held_to_its_rate_and_the_others_are_served(start_udp, clients, raw):
    server = start_udp(rate_lines_per_s=10, rate_burst_lines=20)
    alice = clients(server.server_address, "alice")
    bob = clients(server.server_address, "bob")
    mallory = raw(server.server_address)
    mallory.send("/join mallory")
    assert mallory.event().topic == "welcome"
    started = time.monotonic()
    got = []
    for i in range(20):  # 2000 four-byte /who datagrams in all, alice's lines among them
        # A hundred at a time fit the server's socket buffer (about 200 KiB): whatever the kernel
        # itself would drop when the server falls behind (any UDP server) stays out of the test.
        for _ in range(100):
            mallory.sock.send(b"/who")
        alice.say(f"сообщение {i}")
        got.append(bob.wait_for(ChatMessage))  # served in the middle of the flood
    assert got == [ChatMessage("alice", f"сообщение {i}") for i in range(20)]
    mallory.sock.settimeout(0.3)
    answered = 0
    with contextlib.suppress(TimeoutError):
        while True:  # until nothing more comes
            event = protocol.parse_event(protocol.decode_datagram(mallory.sock.recv(65536))[1])
            answered += isinstance(event, Reply) and event.topic == "who"  # alice's lines come too
    elapsed = time.monotonic() - started
    stats = server.stats()
    assert stats.flood_dropped > 0 and stats.errors == 0
    assert answered <= 20 + 10 * elapsed + 1  # its burst, then its rate; the rest dropped (or lost by the kernel)


def test_who_with_many_members_is_cut_to_one_datagram_in_one_pass(start_udp):
    server = start_udp(max_payload_bytes=1200)
    names = [f"участник_{i}" for i in range(500)]
    server.users = lambda: names  # the reply is built from the sorted names; 500 members without 500 sockets
    reply = server.who()
    payload = protocol.encode_datagram(protocol.format_event(reply))
    shown = reply.text.split(": ", 1)[1].split(" and ")[0].split(", ")
    assert len(payload) <= 1200 and reply.text.startswith("500 online: ") and reply.text.endswith(f"and {500 - len(shown)} more")
    assert shown == names[:len(shown)] and len(payload) > 1200 - len("участник_123, ".encode())  # as many as fit


def test_escape_sequences_from_a_member_never_reach_an_nc_user(start_udp, raw):
    server = start_udp()
    alice, bob = raw(server.server_address), raw(server.server_address)
    for member, name in ((alice, "alice"), (bob, "bob")):
        member.send(f"/join {name}")
        assert member.event().topic == "welcome"
    assert alice.event() == Joined("bob")
    bob.sock.send("\x1b]0;pwned\x07\x1b[2Jпривет\x9b\u202e\x08\n".encode())
    bob.sock.send("/me \x1b[31mмашет\n".encode())
    for _ in range(2):
        data = alice.sock.recv(65536).decode()
        assert not set(data) & {"\x1b", "\x07", "\x08", "\x9b", "\u202e"}, repr(data)


def _forge(source: tuple, destination: tuple, payload: bytes) -> None:
    """A datagram with somebody else's source port, as an attacker on the same host sends it (a raw socket)."""
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP) as forger:
        header = struct.pack("!HHHH", source[1], destination[1], 8 + len(payload), 0)  # no checksum: allowed over IPv4
        forger.sendto(header + payload, (destination[0], 0))


def test_a_datagram_forged_with_a_members_address_but_not_its_token_is_ignored_and_counted(udp, clients, raw):
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP).close()
    except PermissionError:
        pytest.skip("forging a source address needs a raw socket (root or CAP_NET_RAW)")
    alice = clients(udp.server_address, "Алиса")  # the client library: a token in every datagram
    bob = clients(udp.server_address, "bob")
    carol = raw(udp.server_address)  # nc -u: no token, known by address alone
    carol.send("/join carol")
    assert carol.event().topic == "welcome"
    carol_address = carol.sock.getsockname()[:2]

    _forge(carol_address, udp.server_address, "не я это писала\n".encode())  # the forging works...
    assert bob.wait_for(ChatMessage) == ChatMessage("carol", "не я это писала")  # ...and fools an address-only member
    for forged in ("я не Алиса", "/nick Мэллори", "/quit"):  # as Алиса: none of it is hers
        _forge(alice.local_address, udp.server_address, f"{forged}\n".encode())
    _forge(alice.local_address, udp.server_address, ("~" + "0" * 32 + " угаданный токен\n").encode())
    wait_until(lambda: udp.stats().forged == 4)
    alice.say("это я")
    assert bob.wait_for(ChatMessage) == ChatMessage("Алиса", "это я")  # the next thing bob sees is really hers
    assert "Алиса" in udp.users() and "Мэллори" not in udp.users()


def test_a_name_alike_in_small_letters_or_in_capitals_is_taken_over_udp_too(udp, clients):
    vova = clients(udp.server_address, "vova")
    clients(udp.server_address, "Bob")
    for twin in ("νονα", "Вов"):
        with pytest.raises(NameRefused):
            clients(udp.server_address, twin)
    vova.nick("Владимир")
    wait_until(lambda: "Владимир" in udp.users())
    assert clients(udp.server_address, "νονα").name == "νονα"  # free once vova's name is gone
