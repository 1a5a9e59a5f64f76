"""Client-to-server commands: what a line a user typed means, and how a program writes one.
"""

from __future__ import annotations

from dataclasses import dataclass

from chat.protocol.events import UNKNOWN_COMMAND, USAGE, Error
from chat.protocol.framing import sanitize_text


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
