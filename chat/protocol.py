"""The chat's line protocol, sans I/O: bytes in, events out; events in, bytes out.

Nothing here touches a socket, a thread or a clock, so the same code serves the
TCP server, the console client, the UDP variant and the load generator, and it
is tested without a network.

Framing
    UTF-8 text lines ending in LF; a CR before the LF is dropped, so ``nc`` and
    telnet are usable clients.  TCP is a byte stream: ``recv()`` may return
    ``"hel"`` and then ``"lo\\n"``, or two lines at once, or half of a Cyrillic
    letter.  :class:`LineDecoder` puts lines back together from any chunking.
    A line longer than ``max_line_bytes`` yields one :class:`LineTooLong` and
    the rest of it is discarded: the decoder never holds more than the limit.
    Invalid UTF-8 becomes U+FFFD.  Bytes after the last LF when a peer closes
    are not a line and are dropped.

Client to server
    The first line is the client's name.  After that::

        TEXT                a chat message to everybody else
        //TEXT              a chat message that starts with "/"
        /help               the list of commands
        /who                who is online
        /msg NAME TEXT      a private message
        /nick NAME          change your name
        /me TEXT            an action ("* Алиса waves")
        /quit [TEXT]        leave, with an optional reason

Over UDP (:mod:`chat.udp`) one datagram carries one line, optionally after a
sequence number, ``#SEQ LINE``: a client numbers its chat messages and
actions, and the server passes the number on with the relayed line, so a
receiver can count what was lost, duplicated or reordered.  A UDP client
starts with ``/join NAME`` instead of a bare name, sends ``/ping`` as a
heartbeat (the server answers ``= pong:``), and ``/quit`` to leave.

Server to client: one grammar for every line::

    kind            line                          example
    chat message    <NAME> TEXT                   <Алиса> привет всем
    action          * NAME TEXT                   * Алиса машет рукой
    private         *NAME* TEXT                   *bob* только тебе
    private echo    -> *NAME* TEXT                -> *bob* только тебе
    join            *** NAME joined               *** Алиса joined
    leave           *** NAME left (REASON)        *** bob left (quit: пока)
    nick change     *** OLD is now known as NEW   *** bob is now known as Боб
    shutdown        *** server shutting down      *** server shutting down
    reply           = TOPIC: TEXT                 = who: Алиса, bob
    error           ! CODE: TEXT                  ! name-taken: "bob" is taken

    REASON is one of: quit, quit: TEXT, connection lost, too slow, timed out,
    server shutting down.

Why nobody can forge a line: the first characters of a line decide its kind
and only the server writes them.  A NAME holds only letters, digits, ``_``,
``-`` and ``.``, so it never contains ``>``, ``*``, ``:`` or a space, and TEXT
comes last on the line with every control character (CR, ESC, bidi overrides,
...) made visible or removed.  User input can therefore neither start a line
nor change the part of it that says who is speaking.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

ENCODING = "utf-8"
MAX_LINE_BYTES = 4096  # longest line a client may send, without its LF

# ---------------------------------------------------------------------------
# Framing
# ---------------------------------------------------------------------------

_LF = b"\n"
_CR = 13


@dataclass(frozen=True, slots=True)
class LineTooLong:
    """Yielded once for a line over the limit; the rest of that line is discarded."""

    limit_bytes: int


class LineDecoder:
    """Reassembles UTF-8 lines from a byte stream cut into arbitrary chunks.

    >>> decoder = LineDecoder()
    >>> decoder.feed("при".encode()[:3])   # half of a Cyrillic letter
    []
    >>> decoder.feed("при".encode()[3:] + "вет\\r\\nbye\\n".encode())
    ['привет', 'bye']
    """

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be at least 1")
        self.max_line_bytes = max_line_bytes
        self._partial = bytearray()
        self._discarding = False

    @property
    def pending_bytes(self) -> int:
        """Bytes of an unfinished line held right now (never above the limit + 1)."""
        return len(self._partial)

    def feed(self, data: bytes) -> list[str | LineTooLong]:
        """Take the next chunk of the stream; return the lines it completes."""
        if self._discarding:
            end = data.find(_LF)
            if end < 0:
                return []
            self._discarding = False
            data = data[end + 1 :]
        last = data.rfind(_LF)
        if last < 0:
            self._partial += data
            return self._check_partial([])
        if self._partial:
            complete = bytes(self._partial) + data[:last]
        else:
            complete = data[:last]
        self._partial = bytearray(data[last + 1 :])
        lines = [self._decode(raw) for raw in complete.split(_LF)]
        return self._check_partial(lines)

    def _decode(self, raw: bytes) -> str | LineTooLong:
        if raw[-1:] == b"\r":
            raw = raw[:-1]
        if len(raw) > self.max_line_bytes:
            return LineTooLong(self.max_line_bytes)
        return raw.decode(ENCODING, "replace")

    def _check_partial(self, lines: list[str | LineTooLong]) -> list[str | LineTooLong]:
        size = len(self._partial)
        # One byte of grace for the CR of a CRLF that has not arrived in full.
        if size > self.max_line_bytes + 1 or (
            size == self.max_line_bytes + 1 and self._partial[-1] != _CR
        ):
            lines.append(LineTooLong(self.max_line_bytes))
            self._partial = bytearray()
            self._discarding = True
        return lines


def encode_line(text: str) -> bytes:
    """One line of text as it goes on the wire."""
    return (text + "\n").encode(ENCODING)


# ---------------------------------------------------------------------------
# Text hygiene: nobody repaints anybody else's terminal
# ---------------------------------------------------------------------------

# Terminal escape sequences are removed whole: CSI (colours, cursor moves),
# OSC (window title, hyperlinks) and DCS/PM/APC strings, in 7-bit and 8-bit form.
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b[\]P^_X]|[\x90\x98\x9d-\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
)
# Characters that control a terminal or reorder text: C0 except TAB, DEL, C1,
# bidi embeddings/overrides/isolates and marks, and line/paragraph separators.
_UNSAFE_CHAR = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f\x80-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]"
)
_CONTROL_PICTURES = {code: chr(0x2400 + code) for code in range(0x20) if code != 9}
_CONTROL_PICTURES[0x7F] = "\u2421"  # ␡


def _visible(match: re.Match[str]) -> str:
    return _CONTROL_PICTURES.get(ord(match.group()), "\ufffd")


def sanitize_text(text: str) -> str:
    """Make user text safe to show on a terminal.

    Escape sequences are removed; any other control character is shown as its
    Unicode control picture (``\\r`` becomes ``␍``, ESC ``␛``), and C1 or bidi
    controls as U+FFFD.  Tabs and every printable character are kept.

    >>> sanitize_text("\\x1b[2J\\x1b]0;pwned\\x07hi\\rthere")
    'hi␍there'
    """
    if _UNSAFE_CHAR.search(text) is None:
        return text
    return _UNSAFE_CHAR.sub(_visible, _ESCAPE_SEQUENCE.sub("", text))


# Names live in chat/names.py; they are part of the protocol, so they are here too.
from chat.names import (  # noqa: E402
    MAX_NAME_CHARS, NAME_PUNCTUATION, NAME_RULES, InvalidName, name_key, normalize_name,
)

# ---------------------------------------------------------------------------
# Server-to-client events
# ---------------------------------------------------------------------------


class LeaveReason(enum.Enum):
    """Why a user left; the value is how the reason reads on the wire."""

    QUIT = "quit"
    CONNECTION_LOST = "connection lost"
    TOO_SLOW = "too slow"
    TIMED_OUT = "timed out"
    SHUTDOWN = "server shutting down"


@dataclass(frozen=True, slots=True)
class ChatMessage:
    sender: str
    text: str


@dataclass(frozen=True, slots=True)
class Action:
    sender: str
    text: str


@dataclass(frozen=True, slots=True)
class PrivateMessage:
    sender: str
    text: str


@dataclass(frozen=True, slots=True)
class PrivateSent:
    recipient: str
    text: str


@dataclass(frozen=True, slots=True)
class Joined:
    name: str


@dataclass(frozen=True, slots=True)
class Left:
    name: str
    reason: LeaveReason
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Renamed:
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class ServerClosing:
    pass


@dataclass(frozen=True, slots=True)
class Reply:
    topic: str
    text: str


@dataclass(frozen=True, slots=True)
class Error:
    code: str
    text: str


@dataclass(frozen=True, slots=True)
class Unparsed:
    """A line that fits no kind of the grammar (from a server that isn't ours)."""

    line: str


ServerEvent = (
    ChatMessage | Action | PrivateMessage | PrivateSent | Joined | Left | Renamed
    | ServerClosing | Reply | Error | Unparsed
)

# Error codes the server uses.
NAME_INVALID = "name-invalid"
NAME_TAKEN = "name-taken"
LINE_TOO_LONG = "line-too-long"
UNKNOWN_COMMAND = "unknown-command"
USAGE = "usage"
NO_SUCH_USER = "no-such-user"
SERVER_FULL = "server-full"
TIMEOUT = "timeout"
TOO_LONG = "too-long"  # UDP: a datagram over the payload limit
NOT_JOINED = "not-joined"  # UDP: a datagram from an address that has not joined


def welcome(name: str, online: int) -> Reply:
    """The reply to a name that was accepted."""
    return Reply("welcome", f"{name}, {online} online; /help lists the commands")


def welcome_name(reply: Reply) -> str:
    """The name a welcome reply accepted (as the server normalised it).

    >>> welcome_name(welcome("Алиса", 3))
    'Алиса'
    """
    return reply.text.partition(",")[0]


def name_refused(problem: InvalidName | str) -> Error:
    """The error for a name that breaks the rules (an InvalidName) or is taken (the name, a str)."""
    if isinstance(problem, InvalidName):
        return Error(NAME_INVALID, f"{problem}; names are {NAME_RULES}")
    return Error(NAME_TAKEN, f'"{problem}" is taken (or looks like a name that is); try another')


def format_event(event: ServerEvent) -> str:
    """The line for an event, without its LF."""
    match event:
        case ChatMessage(sender, text):
            return f"<{sender}> {text}"
        case Action(sender, text):
            return f"* {sender} {text}"
        case PrivateMessage(sender, text):
            return f"*{sender}* {text}"
        case PrivateSent(recipient, text):
            return f"-> *{recipient}* {text}"
        case Joined(name):
            return f"*** {name} joined"
        case Left(name, reason, detail):
            why = f"{reason.value}: {detail}" if detail else reason.value
            return f"*** {name} left ({why})"
        case Renamed(old, new):
            return f"*** {old} is now known as {new}"
        case ServerClosing():
            return "*** server shutting down"
        case Reply(topic, text):
            return f"= {topic}: {text}"
        case Error(code, text):
            return f"! {code}: {text}"
        case Unparsed(line):
            return line
    raise TypeError(f"not a server event: {event!r}")


def encode_event(event: ServerEvent) -> bytes:
    """The bytes for an event, LF included."""
    return encode_line(format_event(event))


_NAME = r"[^\s<>*:()]+"
_EVENT_LINE = re.compile(
    rf"\*\*\* (?:(?P<joined>{_NAME}) joined"
    rf"|(?P<left>{_NAME}) left \((?P<reason>[^:)]+)(?:: (?P<detail>.*))?\)"
    rf"|(?P<old>{_NAME}) is now known as (?P<new>{_NAME})"
    rf"|(?P<closing>server shutting down))\Z",
    re.DOTALL,
)
_REASONS = {reason.value: reason for reason in LeaveReason}
_CODE = re.compile(r"([a-z][a-z-]*): (.*)\Z", re.DOTALL)


def parse_event(line: str) -> ServerEvent:
    """Parse one server line (without its LF) into an event.

    >>> parse_event("<Алиса> привет")
    ChatMessage(sender='Алиса', text='привет')
    """
    head = line[:1]
    if head == "<":
        return _parse_chat(line)
    if head == "*":
        return _parse_star(line)
    if line.startswith("-> *"):
        return _split_private(line[4:], PrivateSent, line)
    if line.startswith("= "):
        return _parse_coded(line, Reply)
    if line.startswith("! "):
        return _parse_coded(line, Error)
    return Unparsed(line)


def _parse_chat(line: str) -> ServerEvent:
    end = line.find("> ")
    if end < 2:
        return Unparsed(line)
    return ChatMessage(line[1:end], line[end + 2 :])


def _parse_star(line: str) -> ServerEvent:
    if line.startswith("*** "):
        return _parse_server_event(line)
    if line.startswith("* "):
        sender, _, text = line[2:].partition(" ")
        return Action(sender, text) if sender else Unparsed(line)
    return _split_private(line[1:], PrivateMessage, line)


def _split_private(rest: str, kind: type, line: str) -> ServerEvent:
    name, sep, text = rest.partition("* ")
    if not sep or not name:
        return Unparsed(line)
    return kind(name, text)


def _parse_server_event(line: str) -> ServerEvent:
    match = _EVENT_LINE.match(line)
    if match is None:
        return Unparsed(line)
    if match["joined"]:
        return Joined(match["joined"])
    if match["left"]:
        reason = _REASONS.get(match["reason"])
        if reason is None:
            return Unparsed(line)
        return Left(match["left"], reason, match["detail"] or "")
    if match["old"]:
        return Renamed(match["old"], match["new"])
    return ServerClosing()


def _parse_coded(line: str, kind: type) -> ServerEvent:
    match = _CODE.match(line, 2)
    if match is None:
        return Unparsed(line)
    return kind(match[1], match[2])


# ---------------------------------------------------------------------------
# Client-to-server commands
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Say:
    text: str


@dataclass(frozen=True, slots=True)
class Me:
    text: str


@dataclass(frozen=True, slots=True)
class Msg:
    recipient: str
    text: str


@dataclass(frozen=True, slots=True)
class Nick:
    name: str


@dataclass(frozen=True, slots=True)
class Who:
    pass


@dataclass(frozen=True, slots=True)
class Help:
    pass


@dataclass(frozen=True, slots=True)
class Quit:
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Empty:
    """A blank line: nothing to do."""


@dataclass(frozen=True, slots=True)
class BadCommand:
    """An unknown command, or a known one used wrongly; ``error`` says which."""

    error: Error


Command = Say | Me | Msg | Nick | Who | Help | Quit | Empty | BadCommand

COMMAND_HELP = (
    ("TEXT", "send TEXT to everybody"),
    ("//TEXT", "send a message that starts with /"),
    ("/who", "list who is online"),
    ("/msg NAME TEXT", "send TEXT to NAME only"),
    ("/nick NAME", "change your name"),
    ("/me TEXT", "describe an action"),
    ("/quit [REASON]", "leave the chat"),
    ("/help", "this list"),
)
_USAGE = {name.split()[0]: name for name, _ in COMMAND_HELP if name.startswith("/")}


def parse_command(line: str) -> Command:
    """Parse one line a registered client sent.

    >>> parse_command("/msg bob привет, Боб")
    Msg(recipient='bob', text='привет, Боб')
    """
    if not line.startswith("/"):
        return Say(line) if line.strip() else Empty()
    if line.startswith("//"):
        return Say(line[1:])
    word, _, rest = line.partition(" ")
    rest = rest.strip(" ")
    verb = word.lower()
    if verb == "/msg":
        recipient, _, text = rest.partition(" ")
        if recipient and text.strip():
            return Msg(recipient, text)
    elif verb in ("/me", "/nick"):
        if rest:
            return Me(rest) if verb == "/me" else Nick(rest)
    elif verb in ("/who", "/help"):
        return Who() if verb == "/who" else Help()
    elif verb == "/quit":
        return Quit(rest)
    else:
        shown = sanitize_text(word[:40])
        return BadCommand(Error(UNKNOWN_COMMAND, f"{shown} is not a command; /help lists them"))
    return BadCommand(Error(USAGE, _USAGE[verb]))


def format_command(command: Command) -> str:
    """The line a client sends for a command (the inverse of parse_command)."""
    match command:
        case Say(text):
            return "/" + text if text.startswith("/") else text
        case Me(text):
            return f"/me {text}"
        case Msg(recipient, text):
            return f"/msg {recipient} {text}"
        case Nick(name):
            return f"/nick {name}"
        case Who():
            return "/who"
        case Help():
            return "/help"
        case Quit(reason):
            return f"/quit {reason}".rstrip()
        case Empty():
            return ""
    raise TypeError(f"not a command a client can send: {command!r}")


# ---------------------------------------------------------------------------
# Datagrams (UDP): one line each, perhaps numbered
# ---------------------------------------------------------------------------

MAX_DATAGRAM_BYTES = 1200  # below a typical path MTU (1280 for IPv6), so nothing is fragmented
_SEQUENCE = re.compile(r"#(\d{1,18}) ")


@dataclass(frozen=True, slots=True)
class Join:
    name: str


@dataclass(frozen=True, slots=True)
class Ping:
    pass


def encode_datagram(line: str, seq: int | None = None) -> bytes:
    """One line as a datagram, numbered if ``seq`` is given.

    >>> encode_datagram("<bob> hi", 7)
    b'#7 <bob> hi'
    """
    return (line if seq is None else f"#{seq} {line}").encode(ENCODING)


def decode_datagram(data: bytes) -> tuple[int | None, str]:
    """``(seq or None, line)`` from a datagram; a trailing line break (``nc -u``) is dropped.

    >>> decode_datagram("#7 привет\\n".encode())
    (7, 'привет')
    """
    text = data.decode(ENCODING, "replace")
    if text.endswith("\n"):
        text = text[:-2] if text.endswith("\r\n") else text[:-1]
    match = _SEQUENCE.match(text)
    if match is None:
        return None, text
    return int(match[1]), text[match.end():]


def parse_datagram_command(line: str) -> Command | Join | Ping:
    """Like :func:`parse_command`, plus the UDP-only ``/join NAME`` and ``/ping``."""
    word, _, rest = line.partition(" ")
    verb = word.lower()
    if verb == "/join":
        return Join(rest)  # an empty or bad name is refused like any other
    if verb == "/ping":
        return Ping()
    return parse_command(line)
