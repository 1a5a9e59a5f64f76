"""Property-based tests (hypothesis): the decoder, text hygiene, names, and a live server's invariants.

CI runs the "ci" profile (derandomized: the same examples every run); set
HYPOTHESIS_PROFILE=dev to explore more, with fresh random examples
(see tests/conftest.py).
"""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from chat import protocol
from chat.protocol import ChatMessage, LineDecoder, LineTooLong, PrivateMessage, Reply, framing
from chat.tcp.server import ChatServer
from tests.helpers import RawClient, wait_until

# -- the decoder -------------------------------------------------------------------------------

LINE_PARTS = st.one_of(
    st.binary(max_size=30),  # anything, invalid UTF-8 included
    st.text(max_size=15).map(str.encode),  # valid UTF-8, Cyrillic and all
    st.sampled_from([b"\r", b"\r\r", b"\xd0", b"\xff", "ж".encode()]),
    st.binary(min_size=40, max_size=120),  # longer than the small limit below
)


@st.composite
def chunked_streams(draw):
    stream = b"".join(draw(st.lists(LINE_PARTS, max_size=25)))
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
    return stream, chunks


@given(chunked_streams(), st.integers(min_value=1, max_value=48))
def test_any_chunking_decodes_to_the_same_lines(stream_and_chunks, limit):
    stream, chunks = stream_and_chunks
    whole = LineDecoder(limit).feed(stream)
    decoder = LineDecoder(limit)
    pieces = []
    for chunk in chunks:
        pieces += decoder.feed(chunk)
        assert decoder.pending_bytes <= limit + 1  # never holds more than a line
    assert pieces == whole
    assert all(isinstance(line, LineTooLong) or len(line.encode()) <= limit * 3 for line in whole)


@given(st.text())
def test_sanitized_text_has_no_control_characters_and_is_stable(text):
    clean = protocol.sanitize_text(text)
    assert not framing._UNSAFE_CHAR.search(clean)
    assert protocol.sanitize_text(clean) == clean


@given(st.text(max_size=40))
def test_a_name_is_either_refused_or_safe(raw):
    try:
        name = protocol.normalize_name(raw)
    except protocol.InvalidName:
        return
    assert 1 <= len(name) <= protocol.MAX_NAME_CHARS
    assert not any(char in name for char in " <>*:()\r\n\x1b")
    assert protocol.name_key(name.upper()) == protocol.name_key(name.lower()) or name.upper().lower() != name.lower()


@given(st.text(alphabet=st.characters(categories=["L", "Nd"]), min_size=1, max_size=32), st.text())
def test_no_text_makes_a_line_of_another_kind(name, text):
    try:
        name = protocol.normalize_name(name)
    except protocol.InvalidName:
        return
    line = protocol.format_event(ChatMessage(name, protocol.sanitize_text(text)))
    assert protocol.parse_event(line) == ChatMessage(name, protocol.sanitize_text(text))
    assert len(LineDecoder(1 << 20).feed(protocol.encode_line(line))) == 1  # exactly one line


# -- a live server, driven at random --------------------------------------------------------------

FRESH_NAMES = ["Алиса", "bob", "carol", "Дмитрий", "Ёлка", "x.y", "u_1", "Zoë", "日本", "Ελένη"]
BAD_NAMES = ["", "   ", "two words", "smile🙂", "rtl\u202e", "x" * 40, "<admin>", "*star*"]
TAIL = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=60)
READ_TIMEOUT_S = 5.0


class User:
    """One connection, as the model sees it."""

    def __init__(self, handle: int, client: RawClient) -> None:
        self.handle = handle
        self.client = client
        self.name: str | None = None
        self.reading = True
        self.expected: list[tuple[str, str]] = []  # (sender's name, text) of chat messages
        self.received: list[tuple[str, str]] = []
        self.expected_private: list[tuple[str, str]] = []
        self.received_private: list[tuple[str, str]] = []
        self.others: list = []  # every other event, in order

    def pump(self, until) -> None:
        """Read and file events until ``until()`` holds; TimeoutError if the server goes quiet."""
        while not until():
            event = self.client.read_event(READ_TIMEOUT_S)
            if isinstance(event, ChatMessage):
                self.received.append((event.sender, event.text))
            elif isinstance(event, PrivateMessage):
                self.received_private.append((event.sender, event.text))
            else:
                self.others.append(event)

    def next_event(self, match):
        """The first not yet taken event (not a chat or private message) that matches."""
        self.pump(lambda: any(match(event) for event in self.others))
        found = next(event for event in self.others if match(event))
        self.others.remove(found)
        return found


def is_reply(topic):
    return lambda event: isinstance(event, Reply) and event.topic == topic


def is_error(event) -> bool:
    return isinstance(event, protocol.Error)


class LiveChat(RuleBasedStateMachine):
    """Random sessions against a real ChatServer; the invariants are checked after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.server = ChatServer(rate_lines_per_s=0, registration_timeout_s=60).start()
        self.users: dict[int, User] = {}
        self.handles = 0
        self.sent = 0

    # -- helpers --

    def registered(self) -> list[User]:
        return [user for user in self.users.values() if user.name is not None]

    def readers(self) -> list[User]:
        return [user for user in self.registered() if user.reading]

    def taken(self, name: str) -> bool:
        return any(protocol.names_clash(user.name, name) for user in self.registered())

    def outcome(self, raw: str, me: User | None = None) -> str:
        try:
            name = protocol.normalize_name(raw)
        except protocol.InvalidName:
            return protocol.NAME_INVALID
        others = [u for u in self.registered() if u is not me]
        if any(protocol.names_clash(u.name, name) for u in others):
            return protocol.NAME_TAKEN
        return "ok"

    # -- rules --

    @initialize()
    def two_connections_to_start_with(self):
        """Without them most rules can't run yet, and hypothesis would spend its examples finding one that can."""
        self.connect()
        self.connect()

    @precondition(lambda self: len(self.users) < 7)
    @rule()
    def connect(self):
        client = RawClient(self.server.server_address)
        assert client.read_event().topic == "hello"
        self.handles += 1
        self.users[self.handles] = User(self.handles, client)

    @precondition(lambda self: any(u.name is None for u in self.users.values()))
    @rule(data=st.data(), choice=st.sampled_from(["fresh", "taken", "bad"]))
    def register(self, data, choice):
        user = data.draw(st.sampled_from([u for u in self.users.values() if u.name is None]))
        if choice == "taken" and self.registered():
            raw = data.draw(st.sampled_from([u.name for u in self.registered()]))
            raw = data.draw(st.sampled_from([raw, raw.upper(), raw.lower()]))
        elif choice == "bad":
            raw = data.draw(st.sampled_from(BAD_NAMES))
        else:
            raw = data.draw(st.sampled_from(FRESH_NAMES))
        expected = self.outcome(raw)
        user.client.send_line(raw)
        reply = user.next_event(lambda e: is_error(e) or is_reply("welcome")(e))
        if expected == "ok":
            assert isinstance(reply, Reply), (raw, reply)
            user.name = protocol.normalize_name(raw)
        else:
            assert is_error(reply) and reply.code == expected, (raw, reply)

    def handled(self, sender: User) -> None:
        """Wait until the server has handled everything ``sender`` sent.

        A connection's lines are handled in order, so the answer to a /who
        comes after the lines before it were relayed.  Without this, a message
        sent while alone could be relayed after the next user joined, and
        rightly reach that user.
        """
        sender.client.send_line("/who")
        sender.next_event(is_reply("who"))

    @precondition(lambda self: self.readers())
    @rule(data=st.data(), tail=TAIL)
    def send(self, data, tail):
        sender = data.draw(st.sampled_from(self.readers()))
        self.sent += 1
        text = f"m{sender.handle}.{self.sent} {tail}"
        sender.client.send_line(text)
        for user in self.registered():
            if user is not sender:
                user.expected.append((sender.name, protocol.sanitize_text(text)))
        self.handled(sender)

    @precondition(lambda self: self.readers())
    @rule(data=st.data(), tail=TAIL, to_nobody=st.booleans())
    def private(self, data, tail, to_nobody):
        sender = data.draw(st.sampled_from(self.readers()))
        target = None if to_nobody else data.draw(st.sampled_from(self.registered()))
        text = f"p{sender.handle} {tail}".rstrip() or "p"
        recipient = "nobody_here" if target is None else target.name.upper()
        sender.client.send_line(f"/msg {recipient} {text}")
        if target is None:
            assert sender.next_event(is_error).code == protocol.NO_SUCH_USER
            return
        target.expected_private.append((sender.name, protocol.sanitize_text(text)))
        assert sender.next_event(lambda e: isinstance(e, protocol.PrivateSent)).recipient == target.name

    @precondition(lambda self: self.readers())
    @rule(data=st.data(), choice=st.sampled_from(["fresh", "taken", "bad"]))
    def nick(self, data, choice):
        user = data.draw(st.sampled_from(self.readers()))
        if choice == "taken":
            raw = data.draw(st.sampled_from([u.name for u in self.registered()])).swapcase()
        elif choice == "bad":
            raw = data.draw(st.sampled_from(BAD_NAMES[2:]))
        else:
            raw = data.draw(st.sampled_from(FRESH_NAMES)) + "2"
        expected = self.outcome(raw, me=user)
        user.client.send_line(f"/nick {raw}")
        if expected != "ok":
            assert user.next_event(is_error).code == expected
            return
        new = protocol.normalize_name(raw)
        if new != user.name:  # the renamed user hears about it like everybody else
            renamed = protocol.Renamed(user.name, new)
            assert user.next_event(lambda e: e == renamed) == renamed
        user.name = new

    @precondition(lambda self: self.readers())
    @rule(data=st.data())
    def who(self, data):
        user = data.draw(st.sampled_from(self.readers()))
        user.client.send_line("/who")
        reply = user.next_event(is_reply("who"))
        names = reply.text.partition(": ")[2].split(", ")
        assert names == sorted((u.name for u in self.registered()), key=str.casefold)

    @precondition(lambda self: len(self.users) > 1)  # one always stays, so other rules can run
    @rule(data=st.data(), how=st.sampled_from(["quit", "close", "reset"]))
    def disconnect(self, data, how):
        user = data.draw(st.sampled_from(list(self.users.values())))
        if how == "quit":
            user.client.send_line("/quit bye")
            user.client.close()
        elif how == "close":
            user.client.close()
        else:
            user.client.abort()
        del self.users[user.handle]

    @precondition(lambda self: len(self.readers()) > 1)
    @rule(data=st.data())
    def stop_reading(self, data):
        data.draw(st.sampled_from(self.readers())).reading = False

    # -- invariants, after every step --

    @invariant()
    def every_reader_got_every_message_once_in_order(self):
        for user in self.readers():
            user.pump(lambda: len(user.received) >= len(user.expected)
                      and len(user.received_private) >= len(user.expected_private))
            assert user.received == user.expected
            assert user.received_private == user.expected_private

    @invariant()
    def registry_matches_the_users_connected(self):
        wanted = sorted((u.name for u in self.registered()), key=str.casefold)
        wait_until(lambda: self.server.users() == wanted, timeout_s=READ_TIMEOUT_S)

    @invariant()
    def no_server_thread_failed(self):
        assert self.server.stats().errors == 0

    def teardown(self):
        for user in self.users.values():
            user.client.close()
        self.server.stop()


LiveChat.TestCase.settings = settings(
    max_examples=max(25, settings.default.max_examples // 8),  # 25 in CI, 375 with the dev profile
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestLiveChat = LiveChat.TestCase
