"""chat lab: a multi-user chat on ``socket`` and ``threading``, done right and measured.

The pieces, from the bottom up:

- :mod:`chat.protocol` - the line protocol, pure (bytes in, events out);
- :mod:`chat.server` - :class:`ChatServer`, one reader and one writer thread per client;
- :mod:`chat.client` - :class:`ChatClient` for programs and notebooks;
- ``python -m chat --help`` - the server, the console client, the demo and the benchmarks.
"""

from chat.client import ChatClient, Disconnected, NameRefused, connect
from chat.limits import Limits
from chat.protocol import (
    Action, ChatMessage, Error, Joined, LeaveReason, Left, PrivateMessage, PrivateSent,
    Renamed, Reply, ServerClosing,
)
from chat.server import ChatServer, ServerStats

__all__ = [
    "Action", "ChatClient", "ChatMessage", "ChatServer", "Disconnected", "Error", "Joined",
    "LeaveReason", "Left", "Limits", "NameRefused", "PrivateMessage", "PrivateSent", "Renamed",
    "Reply", "ServerClosing", "ServerStats", "connect",
]
