"""Simulated users over UDP: the same group as :mod:`chat.usergroup`, one datagram per message.

Each user joins with ``/join NAME`` (resent if no answer comes), numbers its
messages, and stores every datagram it receives as one line with its arrival
time, so the TCP group's analysis counts UDP runs exactly the same way.
"""

from __future__ import annotations

import collections
import selectors
import socket

from chat import protocol
from chat.usergroup import RECV_BYTES, UserGroup, _User, message_text, now_ns

JOIN_ATTEMPTS = 3


class UDPUserGroup(UserGroup):
    """A :class:`~chat.usergroup.UserGroup` whose users speak UDP."""

    def _register(self, name: str, slot: int | None, stalled: bool) -> _User:
        sock = socket.socket(socket.AF_INET6 if ":" in self.plan.address[0] else socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect(self.plan.address)
        sock.settimeout(self.plan.connect_timeout_s / JOIN_ATTEMPTS)
        join = protocol.encode_datagram(f"/join {name}")
        for _ in range(JOIN_ATTEMPTS):
            sock.send(join)
            try:
                while not (reply := sock.recv(RECV_BYTES)).startswith((b"= welcome: ", b"! ")):
                    continue  # another user's join, arriving first
            except TimeoutError:
                continue
            if reply.startswith(b"! "):
                raise ConnectionError(f"{name} was refused: {reply!r}")
            break
        else:
            raise ConnectionError(f"{name}: no answer to /join")
        sock.setblocking(False)
        user = _User(name, sock, slot, stalled)
        user.out = collections.deque()  # datagrams, not a byte stream
        return user

    def _queue(self, user: _User, scheduled_ns: int) -> None:
        text = message_text(user.next_seq, scheduled_ns, self.plan.message_bytes, self.plan.alphabet)
        user.out.append(protocol.encode_datagram(protocol.format_command(protocol.Say(text)), user.next_seq))
        user.next_seq += 1
        self._sending.add(user)

    def _send_some(self, user: _User, selector: selectors.BaseSelector) -> bool:
        sent = 0
        while user.out:
            try:
                user.sock.send(user.out[0])
            except BlockingIOError:
                break
            except OSError:
                pass  # refused or unreachable: this datagram is lost, as UDP allows
            user.out.popleft()
            user.sent += 1
            sent += 1
        if not user.out:
            self._sending.discard(user)
        return sent > 0

    def _receive(self, user: _User, selector: selectors.BaseSelector) -> bool:
        received = False
        while True:
            try:
                data = user.sock.recv(RECV_BYTES)
            except (BlockingIOError, ConnectionRefusedError):
                return received
            _, line = protocol.decode_datagram(data)
            self._store(user, now_ns(), protocol.encode_line(line))
            received = True
