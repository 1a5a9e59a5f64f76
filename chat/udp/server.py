"""The chat over UDP: one socket, a table of members, one datagram per message.

The assignment accepts UDP for 80% of the marks; we build it to show what TCP
gives for free.  Datagrams carry the same lines as TCP (see
:mod:`chat.protocol`), at most ``max_payload_bytes`` each.

- A client joins with ``/join NAME`` and leaves with ``/quit``.  It sends
  ``/ping`` every few seconds; a member the server hasn't heard from for
  ``member_timeout_s`` is dropped as ``timed out``.
- A client numbers its chat messages (``#SEQ``); the server passes the
  number on, so receivers count what was lost, duplicated or reordered.
- Nothing is retransmitted: a lost datagram is a lost message.
- A member that joined with a token (``~TOKEN`` before its first line, as
  :class:`~chat.udp.UDPChatClient` does) must send it in every datagram;
  from its address, a datagram without it is ignored and counted as forged.
  A member that joined without one (``nc -u``) is known by its address alone.
- For experiments the server can drop, delay and jitter the messages it
  relays, from a seeded random generator, so a run can be repeated exactly.
"""

from __future__ import annotations

import hmac
import logging
import random
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from chat import protocol
from chat.protocol import (
    Action,
    ChatMessage,
    CommandDispatch,
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
from chat.tcp.limits import TokenBucket
from chat.udp.faults import Delayer, Faults

log = logging.getLogger(__name__)

DEFAULT_UDP_PORT = 8001
MEMBER_TIMEOUT_S = 30.0  # a member silent for this long is dropped
RECV_BYTES = 65536  # the largest datagram, so an oversized one is seen whole, not cut
MAX_CHECK_INTERVAL_S = 1.0  # how often, at most, the server looks for silent members


@dataclass
class Member:
    name: str
    address: tuple
    last_seen: float
    bucket: TokenBucket | None = None  # flood control: what passes its rate is dropped (UDP can't push back)
    token: str | None = None  # chosen by the client at /join; then every datagram must carry it

    def sent_by(self, token: str | None) -> bool:
        """Whether a datagram from this member's address, carrying ``token``, is the member's."""
        return self.token is None or (token is not None and hmac.compare_digest(token, self.token))


@dataclass(frozen=True)
class UDPServerStats:
    datagrams_in: int = 0
    datagrams_out: int = 0
    deliveries: int = 0  # relayed messages sent to one member (after injected drops)
    dropped: int = 0  # relayed messages the fault injection dropped
    delayed: int = 0
    flood_dropped: int = 0  # datagrams from members over their rate, dropped and counted (not errors)
    forged: int = 0  # datagrams from a member's address without the member's token: ignored
    members_now: int = 0
    members_peak: int = 0
    send_failures: int = 0  # datagrams the system would not take (a full buffer): lost, as UDP allows
    refused: dict[str, int] = field(default_factory=dict)  # error lines sent, by code
    leaves: dict[str, int] = field(default_factory=dict)  # by reason
    errors: int = 0  # unexpected exceptions handled (a bug if not 0)


class UDPChatServer(CommandDispatch):
    """The UDP chat server.  Life cycle as :class:`chat.tcp.server.ChatServer`.

    Methods for the caller: ``start()``, ``serve_forever()``, ``stop()``/``close()``,
    ``server_address``, ``users()``, ``stats()``; a context manager.
    Methods that may be overridden: ``handle_error(address, exc)``.

    What each command means is :class:`~chat.protocol.CommandDispatch`'s, as
    for the TCP server; the hooks here send datagrams.
    """

    help_lines = (*protocol.COMMAND_HELP, ("/ping", "a heartbeat: tells the server you are here"))

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, member_timeout_s: float = MEMBER_TIMEOUT_S,
                 max_payload_bytes: int = protocol.MAX_DATAGRAM_BYTES, max_members: int = 500,
                 faults: Faults | None = None, on_event: Callable | None = None,
                 check_interval_s: float | None = None, rate_lines_per_s: float = 10.0, rate_burst_lines: int = 20) -> None:
        if rate_lines_per_s < 0 or (rate_lines_per_s and rate_burst_lines < 1):
            raise ValueError("rate_lines_per_s must be >= 0 (0: off), and the burst at least 1")
        self.rate_lines_per_s, self.rate_burst_lines = rate_lines_per_s, rate_burst_lines
        self.member_timeout_s = member_timeout_s
        # how often to look for silent members: by default a quarter of the timeout, at most a second
        self.check_interval_s = check_interval_s or min(MAX_CHECK_INTERVAL_S, member_timeout_s / 4)
        self.max_payload_bytes = max_payload_bytes
        self.max_members = max_members
        self.faults = faults or Faults()
        self.on_event = on_event
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((host, port))
        self.server_address: tuple = self._sock.getsockname()[:2]
        self._lock = threading.Lock()  # guards the tables for readers in other threads
        self._members: dict[str, Member] = {}  # by name_key
        self._claims: dict[str, str] = {}  # every key of every member's name (protocol.name_keys) -> its name_key
        self._by_address: dict[tuple, str] = {}
        self._rng = random.Random(self.faults.seed)
        self._counts: Counter[str] = Counter()
        self._refused: Counter[str] = Counter()
        self._leaves: Counter[str] = Counter()
        self._members_peak = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._delayer = Delayer(self._sock) if self.faults.has_delay else None

    def __repr__(self) -> str:
        return f"<UDPChatServer {self.server_address[0]}:{self.server_address[1]} members={len(self._members)}>"

    # -- life cycle -------------------------------------------------------------------------------

    def start(self) -> UDPChatServer:
        self._thread = threading.Thread(target=self.serve_forever, name="udp-server", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        log.info("UDP chat server on %s:%s", *self.server_address)
        if self._delayer is not None:
            self._delayer.start()
        # Non-blocking, and waits with a selector: a socket timeout would also make sendto() wait.
        self._sock.setblocking(False)
        next_check = time.monotonic() + self.check_interval_s
        with selectors.DefaultSelector() as selector:
            selector.register(self._sock, selectors.EVENT_READ)
            while not self._stopping.is_set():
                selector.select(max(0.0, next_check - time.monotonic()))
                if not self._receive_waiting():
                    break
                now = time.monotonic()
                if now >= next_check:
                    self._expire(now)
                    next_check = now + self.check_interval_s

    def _receive_waiting(self) -> bool:
        """Handle every datagram waiting; False once the socket is gone (stopped)."""
        while not self._stopping.is_set():
            try:
                data, address = self._sock.recvfrom(RECV_BYTES)
            except BlockingIOError:
                return True
            except OSError as exc:
                if self._sock.fileno() < 0:
                    return False
                log.warning("receiving failed: %s", exc)  # the socket is still ours: carry on
                return True
            try:
                self._handle(data, address, time.monotonic())
            except Exception as exc:  # one bad datagram never stops the server
                self.handle_error(address, exc)
        return False

    def stop(self, timeout_s: float = 5.0) -> None:
        """Tell the members, stop the threads, close the socket."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        with self._lock:
            addresses = [member.address for member in self._members.values()]
        for address in addresses:
            self._send(protocol.encode_datagram(protocol.format_event(ServerClosing())), address)
        with socket.socket(self._sock.family, socket.SOCK_DGRAM) as waker:
            waker.sendto(b"", self.server_address)  # wakes recvfrom at once
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)
        if self._delayer is not None:
            self._delayer.stop(timeout_s)
        self._sock.close()

    close = stop

    def __enter__(self) -> UDPChatServer:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- one datagram ------------------------------------------------------------------------------

    def _handle(self, data: bytes, address: tuple, now: float) -> None:
        self._counts["datagrams_in"] += 1
        if len(data) > self.max_payload_bytes:
            limit = protocol.bytes_in_letters(self.max_payload_bytes)
            self._refuse(address, Error(protocol.TOO_LONG, f"a datagram may have {limit}; that one had {len(data)} bytes"))
            return
        datagram = protocol.decode_client_datagram(data)
        command = protocol.parse_datagram_command(datagram.line)
        key = self._by_address.get(address)
        if key is None:
            self._handle_stranger(command, address, now, datagram.token)
            return
        member = self._members[key]
        if not member.sent_by(datagram.token):  # not even counted against its rate: a forger can't starve it
            self._counts["forged"] += 1
            log.debug("ignored a datagram from %s's address without its token", member.name)
            return
        seq = datagram.seq
        member.last_seen = now
        if member.bucket is not None and not member.bucket.try_take(now):
            self._counts["flood_dropped"] += 1  # over its rate: dropped, as UDP can't make the sender wait
            return
        self.execute(member, command, seq)

    def _handle_stranger(self, command, address: tuple, now: float, token: str | None) -> None:
        match command:
            case protocol.Join(raw):
                self._join(raw, address, now, token)
            case protocol.Quit():
                pass
            case _:
                self._refuse(address, Error(protocol.NOT_JOINED, "send /join NAME first"))

    # -- commands (the hooks of CommandDispatch) ----------------------------------------------------

    def say(self, member: Member, text: str, seq: int | None) -> None:
        self._relay(member, ChatMessage(member.name, text), seq)

    def act(self, member: Member, text: str, seq: int | None) -> None:
        self._relay(member, Action(member.name, text), seq)

    def reply(self, member: Member, event) -> None:
        self._reply(member.address, event)

    def quit(self, member: Member, reason: str) -> None:
        self._reply(member.address, Reply("bye", "see you"))
        self._leave(member, LeaveReason.QUIT, reason)

    def execute_other(self, member: Member, command, seq: int | None) -> None:
        match command:
            case protocol.Ping():
                self._reply(member.address, Reply("pong", "ok"))
            case protocol.Join(raw) if self._same_name(raw, member):
                # The welcome was lost and the join resent: welcome again.
                self._reply(member.address, protocol.welcome(member.name, len(self._members)))
            case protocol.Join():
                self._refuse(member.address, Error(protocol.USAGE, f"you are {member.name} already; /nick changes it"))
            case _:
                super().execute_other(member, command, seq)

    # -- members ---------------------------------------------------------------------------------------

    def users(self) -> list[str]:
        with self._lock:
            return sorted((member.name for member in self._members.values()), key=str.casefold)

    @staticmethod
    def _same_name(raw: str, member: Member) -> bool:
        claimed = protocol.claimed_name(raw)
        return not isinstance(claimed, Error) and claimed[1] == protocol.name_key(member.name)

    def _new_bucket(self, now: float) -> TokenBucket | None:
        return TokenBucket(self.rate_lines_per_s, self.rate_burst_lines, now) if self.rate_lines_per_s else None

    def who(self) -> Reply:
        """Who is online, cut short if needed so that the reply fits in one datagram (one pass over the names)."""
        names = self.users()
        overhead = len(protocol.encode_datagram(protocol.format_event(Reply("who", f"{len(names)} online: "))))
        room_for_more = len(f" and {len(names)} more".encode(protocol.ENCODING))
        used, shown = overhead, 0
        for name in names:
            cost = len(name.encode(protocol.ENCODING)) + (2 if shown else 0)  # ", " between names
            rest_fits = shown + 1 == len(names) and used + cost <= self.max_payload_bytes
            if not rest_fits and used + cost + room_for_more > self.max_payload_bytes:
                break
            used, shown = used + cost, shown + 1
        more = f" and {len(names) - shown} more" if shown < len(names) else ""
        return Reply("who", f"{len(names)} online: {', '.join(names[:shown])}{more}")

    def _join(self, raw: str, address: tuple, now: float, token: str | None = None) -> None:
        claimed = protocol.claimed_name(raw)
        if isinstance(claimed, Error):
            self._refuse(address, claimed)
            return
        name, key = claimed
        claims = protocol.name_keys(name)
        if any(claim in self._claims for claim in claims):  # the first is the name_key
            self._refuse(address, protocol.name_refused(name))
            return
        if len(self._members) >= self.max_members:
            self._refuse(address, Error(protocol.SERVER_FULL, f"{self.max_members} members are here; try again later"))
            return
        with self._lock:
            self._members[key] = Member(name, address, now, self._new_bucket(now), token)
            self._claims.update(dict.fromkeys(claims, key))
            self._by_address[address] = key
            self._members_peak = max(self._members_peak, len(self._members))
        self._reply(address, protocol.welcome(name, len(self._members)))
        self._announce(Joined(name), exclude=key)
        log.info("%s joined from %s:%s", name, *address[:2])

    def rename(self, member: Member, raw: str) -> None:
        claimed = protocol.claimed_name(raw)
        if isinstance(claimed, Error):
            self._refuse(member.address, claimed)
            return
        new, new_key = claimed
        old_key = protocol.name_key(member.name)
        claims = protocol.name_keys(new)
        if {self._claims.get(claim) for claim in claims} - {None, old_key}:
            self._refuse(member.address, protocol.name_refused(new))
            return
        if new == member.name:
            return
        old = member.name
        with self._lock:
            del self._members[old_key]
            for claim in protocol.name_keys(old):
                self._claims.pop(claim, None)
            member.name = new
            self._members[new_key] = member
            self._claims.update(dict.fromkeys(claims, new_key))
            self._by_address[member.address] = new_key
        self._announce(Renamed(old, new))

    def _leave(self, member: Member, reason: LeaveReason, detail: str = "") -> None:
        key = protocol.name_key(member.name)
        with self._lock:
            self._members.pop(key, None)
            for claim in protocol.name_keys(member.name):
                if self._claims.get(claim) == key:
                    del self._claims[claim]
            self._by_address.pop(member.address, None)
            self._leaves[reason.value] += 1
        self._announce(Left(member.name, reason, detail))
        log.info("%s left (%s)", member.name, reason.value)

    def _expire(self, now: float) -> None:
        silent = [member for member in list(self._members.values()) if now - member.last_seen > self.member_timeout_s]
        for member in silent:  # told first, in a datagram of its own: UDP has no connection to close
            self._reply(member.address, Error(protocol.TIMEOUT, f"nothing heard from you for {self.member_timeout_s:g} s, "
                                                                "so you left the chat; /join NAME to come back"))
            self._leave(member, LeaveReason.TIMED_OUT)

    # -- sending -------------------------------------------------------------------------------------------

    def _relay(self, sender: Member, event, seq: int | None) -> None:
        """A member's message to every other member, through the fault injection."""
        payload = protocol.encode_datagram(protocol.format_event(event), seq)
        if len(payload) > self.max_payload_bytes:
            limit = protocol.bytes_in_letters(self.max_payload_bytes)
            self._refuse(sender.address, Error(protocol.TOO_LONG, f"relayed, that message would pass {limit}"))
            return
        for member in list(self._members.values()):
            if member is not sender:
                self._send_faulty(payload, member.address)

    def send_private(self, sender: Member, recipient: str, text: str) -> None:
        target = self._members.get(protocol.name_key(recipient))
        if target is None:
            self._refuse(sender.address, protocol.no_such_user(recipient))
            return
        delivered = protocol.encode_datagram(protocol.format_event(PrivateMessage(sender.name, text)))
        echoed = protocol.encode_datagram(protocol.format_event(PrivateSent(target.name, text)))
        if max(len(delivered), len(echoed)) > self.max_payload_bytes:  # the limit holds for what we send too
            limit = protocol.bytes_in_letters(self.max_payload_bytes)
            self._refuse(sender.address, Error(protocol.TOO_LONG, f"sent on, that message would pass {limit}"))
            return
        self._send_faulty(delivered, target.address)
        self._send(echoed, sender.address)

    def _send_faulty(self, payload: bytes, address: tuple) -> None:
        if self.faults.drop and self._rng.random() < self.faults.drop:
            self._counts["dropped"] += 1
            return
        self._counts["deliveries"] += 1
        if self._delayer is None:
            self._send(payload, address)
            return
        self._counts["delayed"] += 1
        delay = self.faults.delay_s + self._rng.uniform(0.0, self.faults.jitter_s)
        self._delayer.send_later(payload, address, delay)

    def _fitted(self, event) -> bytes:
        """``event`` as a datagram within the size limit: a leave's reason, or a reply's text, cut to fit (with …)."""
        payload = protocol.encode_datagram(protocol.format_event(event))
        field_name = "detail" if isinstance(event, Left) else "text" if isinstance(event, (Reply, Error)) else None
        while len(payload) > self.max_payload_bytes and field_name and getattr(event, field_name).removesuffix("…"):
            value = getattr(event, field_name).removesuffix("…")
            excess = len(payload) - self.max_payload_bytes + len("…".encode())
            kept = value.encode(protocol.ENCODING)[:max(0, len(value.encode(protocol.ENCODING)) - excess)]
            event = replace(event, **{field_name: kept.decode(protocol.ENCODING, "ignore") + "…"})
            payload = protocol.encode_datagram(protocol.format_event(event))
        return payload

    def _announce(self, event, exclude: str | None = None) -> None:
        payload = self._fitted(event)
        for key, member in list(self._members.items()):
            if key != exclude:
                self._send(payload, member.address)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                log.exception("the on_event hook failed on %r", event)

    def _reply(self, address: tuple, event) -> None:
        self._send(self._fitted(event), address)

    def _refuse(self, address: tuple, error: Error) -> None:
        self._refused[error.code] += 1
        self._reply(address, error)

    def _send(self, payload: bytes, address: tuple) -> None:
        try:
            self._sock.sendto(payload, address)
            self._counts["datagrams_out"] += 1
        except OSError as exc:  # a full buffer (the socket is non-blocking): UDP promises nothing
            self._counts["send_failures"] += 1
            log.debug("sending to %s failed: %s", address, exc)

    # -- observability -----------------------------------------------------------------------------------------

    def stats(self) -> UDPServerStats:
        with self._lock:
            members_now = len(self._members)
        return UDPServerStats(
            datagrams_in=self._counts["datagrams_in"], datagrams_out=self._counts["datagrams_out"],
            deliveries=self._counts["deliveries"], dropped=self._counts["dropped"], delayed=self._counts["delayed"],
            flood_dropped=self._counts["flood_dropped"], forged=self._counts["forged"],
            members_now=members_now, members_peak=self._members_peak, send_failures=self._counts["send_failures"],
            refused=dict(self._refused),
            leaves=dict(self._leaves), errors=self._counts["errors"],
        )

    def handle_error(self, address: tuple, exc: BaseException) -> None:
        """An unexpected exception while handling a datagram from ``address``: log it, carry on."""
        self._counts["errors"] += 1
        log.error("error handling a datagram from %s", address, exc_info=exc)
