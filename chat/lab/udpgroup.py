"""Simulated users over UDP: the same group as :mod:`chat.lab.usergroup`, one datagram per message.

Each user joins with ``/join NAME`` (resent if no answer comes), numbers its
messages, and stores every datagram it receives as one line with its arrival
time, so the TCP group's analysis counts UDP runs exactly the same way.
"""

from __future__ import annotations

import collections
import selectors
import socket

from chat import protocol
from chat.lab.config import now_ns
from chat.lab.usergroup import RECV_BYTES, SimulatedUser, UserGroup, welcomed
from chat.udp.client import HEARTBEAT_S, JOIN_ATTEMPTS

PONG_PREFIX = protocol.format_event(protocol.Reply("pong", ""))[:-1]  # "= pong:"


class UDPUserGroup(UserGroup):
    """A :class:`~chat.lab.usergroup.UserGroup` whose users speak UDP.

    Every user pings the server each ``heartbeat_s``, as a real client does,
    so that users who only listen are not expired as silent members.
    """

    heartbeat_s = HEARTBEAT_S
    _next_ping_ns = 0

    def send_due(self, selector: selectors.BaseSelector, now: int) -> bool:
        if now >= self._next_ping_ns:
            self._ping_everybody()
            self._next_ping_ns = now + int(self.heartbeat_s * 1e9)
        return super().send_due(selector, now)

    def _ping_everybody(self) -> None:
        ping = protocol.encode_datagram("/ping")  # unnumbered: not a message, never counted as one
        for user in self.users:
            try:
                user.sock.send(ping)
            except OSError:
                pass  # a lost heartbeat is made up by the next one

    def register(self, name: str, slot: int | None, stalled: bool) -> SimulatedUser:
        sock = socket.socket(socket.AF_INET6 if ":" in self.plan.address[0] else socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect(self.plan.address)
        sock.settimeout(self.plan.load.connect_timeout_s / JOIN_ATTEMPTS)
        user = SimulatedUser(name, sock, slot, stalled)
        user.out = collections.deque()  # datagrams, not a byte stream
        for _ in range(JOIN_ATTEMPTS):
            sock.send(protocol.encode_datagram(f"/join {name}"))
            try:
                while not self._receive_one(user, sock.recv(RECV_BYTES)):
                    continue  # another user's join, arriving first
            except TimeoutError:
                continue
            sock.setblocking(False)
            return user
        raise ConnectionError(f"{name}: no answer to /join")

    def _receive_one(self, user: SimulatedUser, data: bytes) -> bool:
        """Store one datagram as a line; True if it was our welcome (ConnectionError if a refusal).

        The answers to heartbeats are left out: they are not the load's traffic, and counted
        they would look like progress to a run that waits for its messages.
        """
        _, line = protocol.decode_datagram(data)
        if line.startswith(PONG_PREFIX):
            return False
        self.store(user, now_ns(), protocol.encode_line(line))
        return welcomed(user.name, [protocol.parse_event(line)])

    def append_line(self, user: SimulatedUser, line: str) -> None:
        """Over UDP, a line is a datagram of its own, numbered."""
        user.out.append(protocol.encode_datagram(line, user.next_seq))

    def send_some(self, user: SimulatedUser, selector: selectors.BaseSelector) -> bool:
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
            self.done_sending(user)
        return sent > 0

    def receive(self, user: SimulatedUser, selector: selectors.BaseSelector) -> bool:
        received = False
        while True:
            try:
                data = user.sock.recv(RECV_BYTES)
            except (BlockingIOError, ConnectionRefusedError):
                return received
            if not data.startswith(PONG_PREFIX.encode()):  # a heartbeat's answer is no progress
                self._receive_one(user, data)
                received = True
