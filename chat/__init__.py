"""chat lab: a multi-user chat on ``socket`` and ``threading``, done right and measured.

The pieces, from the bottom up:

- :mod:`chat.protocol` - the line protocol, pure (bytes in, events out);
- :mod:`chat.tcp` - :class:`ChatServer`, one reader and one writer thread per
  client, and :class:`ChatClient` for programs and notebooks;
- :mod:`chat.udp` - the same chat over UDP;
- :mod:`chat.clientbase`, :mod:`chat.console` - what clients share, and the console client;
- :mod:`chat.lab` - what measures the chat: simulated users, benchmarks, the textbook server;
- :mod:`chat.reporting` - the lab report, made from the lab's results;
- ``python -m chat --help`` - the server, the console client, the demo and the benchmarks.
"""

from chat.clientbase import Disconnected, NameRefused
from chat.protocol import (
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
)
from chat.tcp import ChatClient, ChatServer, Limits, ServerStats, connect

__all__ = [
    "Action", "ChatClient", "ChatMessage", "ChatServer", "Disconnected", "Error", "Joined",
    "LeaveReason", "Left", "Limits", "NameRefused", "PrivateMessage", "PrivateSent", "Renamed",
    "Reply", "ServerClosing", "ServerStats", "connect",
]
