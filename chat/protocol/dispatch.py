"""What a chat server does with a member's command, the same over TCP and UDP.

:class:`CommandDispatch` reads a parsed command (:mod:`chat.protocol.commands`)
and calls the hook that carries it out; a server supplies the hooks, each in
its own transport's way (a TCP session's queue, a UDP datagram).  So the two
servers can't come to mean different things by the same command, and this
part of them is tested once.  Like the rest of :mod:`chat.protocol` it does no
I/O: the hooks do.
"""

from __future__ import annotations

from chat.protocol.commands import COMMAND_HELP, BadCommand, Empty, Help, Me, Msg, Nick, Quit, Say, Who
from chat.protocol.events import Reply, ServerEvent
from chat.protocol.framing import sanitize_text


class CommandDispatch:
    """The meaning of every command; a server subclasses it and provides the hooks.

    ``execute(member, command, seq=None)`` is the one entry point; ``member``
    is whatever the server keeps per user, ``seq`` the sequence number of a
    UDP datagram (None over TCP).  Text that others will read is made safe
    (:func:`~chat.protocol.framing.sanitize_text`) before any hook sees it.

    Hooks a server provides:

    - ``say(member, text, seq)``, ``act(member, text, seq)``: a chat message, an action, to the others;
    - ``send_private(member, recipient, text)``: a private message to one user;
    - ``rename(member, raw)``: ``/nick``;
    - ``reply(member, event)``: one line back to the member;
    - ``quit(member, reason)``: the member leaves;
    - ``users()``: the names online, sorted;
    - ``execute_other(member, command, seq)``: whatever only this transport knows
      (a line too long over TCP, ``/join`` and ``/ping`` over UDP).

    And what it may override: ``help_lines`` (the ``/help`` text), ``who()``
    (the ``/who`` reply).
    """

    help_lines: tuple[tuple[str, str], ...] = COMMAND_HELP

    def execute(self, member, command, seq: int | None = None) -> None:
        """Carry out one command from ``member``."""
        match command:
            case Say(text):
                self.say(member, sanitize_text(text), seq)
            case Me(text):
                self.act(member, sanitize_text(text), seq)
            case Msg(recipient, text):
                self.send_private(member, recipient, sanitize_text(text))
            case Nick(raw):
                self.rename(member, raw)
            case Who():
                self.reply(member, self.who())
            case Help():
                for usage, meaning in self.help_lines:
                    self.reply(member, Reply("help", f"{usage} - {meaning}"))
            case Quit(reason):
                self.quit(member, sanitize_text(reason))
            case BadCommand(error):
                self.reply(member, error)
            case Empty():
                pass
            case _:
                self.execute_other(member, command, seq)

    def who(self) -> Reply:
        """The ``/who`` reply: how many are online, and their names."""
        names = self.users()
        return Reply("who", f"{len(names)} online: {', '.join(names)}")

    # -- the hooks -----------------------------------------------------------------------------

    def say(self, member, text: str, seq: int | None) -> None:
        raise NotImplementedError

    def act(self, member, text: str, seq: int | None) -> None:
        raise NotImplementedError

    def send_private(self, member, recipient: str, text: str) -> None:
        raise NotImplementedError

    def rename(self, member, raw: str) -> None:
        raise NotImplementedError

    def reply(self, member, event: ServerEvent) -> None:
        raise NotImplementedError

    def quit(self, member, reason: str) -> None:
        raise NotImplementedError

    def users(self) -> list[str]:
        raise NotImplementedError

    def execute_other(self, member, command, seq: int | None) -> None:
        raise TypeError(f"not a command: {command!r}")
