"""The chat over UDP: one datagram per line, the server's members by address, clients that ping.

- :mod:`chat.udp.server` - :class:`UDPChatServer`, one thread receiving every
  datagram, with :class:`Faults` to simulate a lossy network;
- :mod:`chat.udp.client` - :class:`UDPChatClient`, which receives in a thread
  of its own (the assignment's requirement for UDP).

The line protocol is the TCP one (:mod:`chat.protocol`), each line in a
datagram of its own, optionally numbered (:mod:`chat.protocol.datagrams`).
"""

from chat.udp.client import UDPChatClient, connect
from chat.udp.faults import Faults
from chat.udp.server import DEFAULT_UDP_PORT, MEMBER_TIMEOUT_S, UDPChatServer, UDPServerStats

__all__ = ["DEFAULT_UDP_PORT", "MEMBER_TIMEOUT_S", "Faults", "UDPChatClient", "UDPChatServer", "UDPServerStats", "connect"]
