"""Server-to-client events: the one grammar of every line the server sends, both ways.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from chat.protocol.framing import encode_line, sanitize_text
from chat.protocol.names import MAX_NAME_CHARS, NAME_RULES, InvalidName, name_key, normalize_name


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
SERVER_BUSY = "server-busy"  # out of threads or descriptors: try again later
TIMEOUT = "timeout"
TOO_LONG = LINE_TOO_LONG  # UDP: a datagram over the payload limit (a datagram is a line: one code for both)
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


def who_names(reply: Reply) -> list[str]:
    """The names a ``/who`` reply lists (a UDP reply cut to one datagram lists only the first ones).

    >>> who_names(Reply("who", "3 online: bob, Алиса, Вера"))
    ['bob', 'Алиса', 'Вера']
    >>> who_names(Reply("who", "500 online: a, b and 498 more"))
    ['a', 'b']
    """
    listed = reply.text.partition(": ")[2]
    head, cut, _ = listed.rpartition(" and ")
    if cut and _.endswith(" more"):
        listed = head
    return listed.split(", ") if listed else []


def server_busy(why: str) -> Error:
    """The line for a connection the server has no thread or descriptor to serve."""
    return Error(SERVER_BUSY, f"the server is {why}; try again later")


def name_refused(problem: InvalidName | str) -> Error:
    """The error for a name that breaks the rules (an InvalidName) or is taken (the name, a str)."""
    if isinstance(problem, InvalidName):
        return Error(NAME_INVALID, f"{problem}; names are {NAME_RULES}")
    return Error(NAME_TAKEN, f'"{problem}" is taken (or looks like a name that is); try another')


def claimed_name(raw: str) -> tuple[str, str] | Error:
    """``(name, key)`` for a name a user asks for, or the error that refuses it for breaking the rules.

    Whether the name is free is for the server to say: it alone knows who is here.

    >>> claimed_name("  Bob ")
    ('Bob', 'bob')
    """
    try:
        name = normalize_name(raw)
    except InvalidName as exc:
        return name_refused(exc)
    return name, name_key(name)


def no_such_user(recipient: str) -> Error:
    """The error for a private message to a name nobody here has."""
    shown = sanitize_text(recipient[:MAX_NAME_CHARS])
    return Error(NO_SUCH_USER, f'nobody here is called "{shown}"')


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
