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
heartbeat (the server answers ``= pong:``), and ``/quit`` to leave.  A client
may put a token of its choosing first, ``~TOKEN #SEQ LINE`` (32 hex digits),
in its ``/join`` and every datagram after it: from its address, the server then
ignores any datagram without that token.

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


The modules below this package, each pure:

    framing     lines out of a byte stream and into bytes; text made safe to show
    events      what the server sends: one dataclass per kind of line, both ways
    dispatch    what a server does with each command, the same over TCP and UDP
    commands    what a client sends: a typed line parsed into a command
    names       which names are allowed, and which count as the same
    datagrams   one line per UDP datagram, its sequence number, and counting them
"""

from chat.protocol.commands import (
    COMMAND_HELP,
    BadCommand,
    Command,
    Empty,
    Help,
    Me,
    Msg,
    Nick,
    Quit,
    Say,
    Who,
    format_command,
    parse_command,
)
from chat.protocol.datagrams import (
    MAX_DATAGRAM_BYTES,
    TOKEN_HEX_DIGITS,
    ClientDatagram,
    Join,
    Ping,
    SequenceTracker,
    decode_client_datagram,
    decode_datagram,
    encode_datagram,
    parse_datagram_command,
)
from chat.protocol.dispatch import CommandDispatch
from chat.protocol.events import (
    LINE_TOO_LONG,
    NAME_INVALID,
    NAME_TAKEN,
    NO_SUCH_USER,
    NOT_JOINED,
    SERVER_BUSY,
    SERVER_FULL,
    TIMEOUT,
    TOO_LONG,
    UNKNOWN_COMMAND,
    USAGE,
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
    ServerEvent,
    Unparsed,
    claimed_name,
    encode_event,
    format_event,
    name_refused,
    no_such_user,
    parse_event,
    server_busy,
    welcome,
    welcome_name,
    who_names,
)
from chat.protocol.framing import (
    ENCODING,
    MAX_LINE_BYTES,
    LineDecoder,
    LineTooLong,
    bytes_in_letters,
    encode_line,
    sanitize_text,
)
from chat.protocol.names import (
    MAX_NAME_CHARS,
    NAME_PUNCTUATION,
    NAME_RULES,
    InvalidName,
    name_key,
    name_keys,
    names_clash,
    normalize_name,
)

__all__ = [
    "CommandDispatch",
    "COMMAND_HELP",
    "BadCommand",
    "Command",
    "Empty",
    "Help",
    "Me",
    "Msg",
    "Nick",
    "Quit",
    "Say",
    "Who",
    "format_command",
    "parse_command",
    "MAX_DATAGRAM_BYTES",
    "TOKEN_HEX_DIGITS",
    "ClientDatagram",
    "Join",
    "Ping",
    "SequenceTracker",
    "decode_client_datagram",
    "decode_datagram",
    "encode_datagram",
    "parse_datagram_command",
    "LINE_TOO_LONG",
    "NAME_INVALID",
    "NAME_TAKEN",
    "NO_SUCH_USER",
    "NOT_JOINED",
    "SERVER_BUSY",
    "SERVER_FULL",
    "TIMEOUT",
    "TOO_LONG",
    "UNKNOWN_COMMAND",
    "USAGE",
    "Action",
    "ChatMessage",
    "Error",
    "Joined",
    "LeaveReason",
    "Left",
    "PrivateMessage",
    "PrivateSent",
    "Renamed",
    "Reply",
    "ServerClosing",
    "ServerEvent",
    "Unparsed",
    "claimed_name",
    "encode_event",
    "format_event",
    "name_refused",
    "no_such_user",
    "parse_event",
    "welcome",
    "server_busy",
    "welcome_name",
    "who_names",
    "ENCODING",
    "MAX_LINE_BYTES",
    "LineDecoder",
    "LineTooLong",
    "bytes_in_letters",
    "encode_line",
    "sanitize_text",
    "MAX_NAME_CHARS",
    "NAME_PUNCTUATION",
    "NAME_RULES",
    "InvalidName",
    "name_key",
    "name_keys",
    "names_clash",
    "normalize_name",
]
