"""The chat over TCP: the server and the client the assignment asks for.

- :mod:`chat.tcp.server` - :class:`ChatServer`: accepts users, remembers them,
  and passes every line on to the others;
- :mod:`chat.tcp.session` - one connected user: a reader thread and a writer thread;
- :mod:`chat.tcp.outbox` - each user's bounded queue of bytes to send, and the
  flusher that sends the queues of users whose writer is idle;
- :mod:`chat.tcp.limits` - every bound the server keeps (line length, queue, rate);
- :mod:`chat.tcp.client` - :class:`ChatClient`, for programs, tests and notebooks.
"""

from chat.tcp.client import ChatClient, connect
from chat.tcp.limits import Limits
from chat.tcp.registry import ServerStats
from chat.tcp.server import ChatServer

__all__ = ["ChatClient", "ChatServer", "Limits", "ServerStats", "connect"]
