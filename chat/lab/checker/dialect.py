"""How the checker speaks to a server it did not write: how a user gives its name, how it sends a message.

Servers handed in for the lab differ in small ways: a prompt before the name,
a name sent without a newline, the sender's name written by the client.  The
checker copes with them by a :class:`Dialect` (options of ``python -m chat
check``), never by code per submission.  How it *recognises* a received
message needs no option: every message it sends carries a unique token, and a
received line counts as that message if it holds the token and the sender's
name anywhere (``[bob] hi``, ``bob: hi`` and ``<bob> hi`` all count).
"""

from __future__ import annotations

from dataclasses import dataclass

ESCAPES = {"\\n": "\n", "\\r": "\r", "\\t": "\t", "\\\\": "\\"}


def unescape(template: str) -> str:
    r"""``{name}\n`` typed in a shell becomes the template with a real newline."""
    out, index = [], 0
    while index < len(template):
        pair = template[index : index + 2]
        if pair in ESCAPES:
            out.append(ESCAPES[pair])
            index += 2
        else:
            out.append(template[index])
            index += 1
    return "".join(out)


@dataclass(frozen=True)
class Dialect:
    """How to speak to one server.  The defaults speak to ours, and to any server that takes the name as its first line.

    ``name_format``: what a user sends to give its name (``{name}``);
    ``message_format``: what it sends for one chat message (``{name}``, ``{text}``);
    ``prompt``: wait for the server's first bytes (a prompt such as
    ``nickname``) before sending the name; ``settle_s``: after sending the
    name, how long to wait for an answer before taking the user as
    registered (a server may say nothing to the newcomer).
    """

    name_format: str = "{name}\n"
    message_format: str = "{text}\n"
    prompt: bool = False
    settle_s: float = 0.3
    encoding: str = "utf-8"

    def __post_init__(self) -> None:
        if "{name}" not in self.name_format:
            raise ValueError("the name format must contain {name}")
        if "{text}" not in self.message_format:
            raise ValueError("the message format must contain {text}")
        self.message(name="x", text="y")  # a template with another {field} fails here, not in a check

    def name(self, name: str) -> bytes:
        return self.name_format.format(name=name).encode(self.encoding)

    def message(self, name: str, text: str) -> bytes:
        return self.message_format.format(name=name, text=text).encode(self.encoding)

    @property
    def line_based(self) -> bool:
        """Whether each message ends in a newline, as a line protocol needs."""
        return self.message_format.endswith("\n")

    def describe(self) -> str:
        return (f"name {self.name_format!r}{' after the prompt' if self.prompt else ''}, "
                f"message {self.message_format!r}")
