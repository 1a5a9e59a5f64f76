"""A group of simulated users driven by one selector loop (in a thread or a worker process).

Receiving is kept as cheap as possible while the clock runs: each ``recv``
is stored with its arrival time and nothing else.  Lines are parsed after the
run, with the protocol's own decoder, so the receiving side is not what limits
the measurement.  A line's arrival time is the time of the read that completed
it.

Each message's text carries its sender's sequence number and the time it was
*scheduled* to be sent.  At a target rate the schedule is fixed in advance
(open loop): a late generator or a stalled server shows up as latency, it
does not quietly lower the offered load (no coordinated omission).
"""

from __future__ import annotations

import heapq
import selectors
import socket
from array import array

from chat import protocol
from chat.lab.config import GroupPlan, GroupResult, PairCount, message_text, now_ns, parse_message_text
from chat.protocol import SequenceTracker

RECV_BYTES = 256 * 1024
SELECT_MAX_FD = 1000  # select() handles descriptors below FD_SETSIZE (1024) only
PRECISE_USERS = 100  # up to this many users a group waits with select(), beyond with epoll
STALLED_RCVBUF_BYTES = 4096  # a user that never reads also advertises a tiny window


def _precise_selector(users: list) -> selectors.BaseSelector:
    """select() for a few sockets: it sleeps to the microsecond; epoll for many: it is cheaper.

    epoll rounds a timeout up to whole milliseconds, so a generator on epoll may
    send up to 1 ms late; but select() scans every socket on every call, which
    costs more than that once there are hundreds of them.
    """
    highest_fd = max((user.sock.fileno() for user in users), default=0)
    if len(users) <= PRECISE_USERS and highest_fd < SELECT_MAX_FD:
        return selectors.SelectSelector()
    return selectors.DefaultSelector()


def welcomed(name: str, events: list) -> bool:
    """True if ``events`` hold the welcome; ConnectionError if they hold a refusal."""
    for event in events:
        if isinstance(event, protocol.Error):
            raise ConnectionError(f"{name} was refused: {protocol.format_event(event)}")
        if isinstance(event, protocol.Reply) and event.topic == "welcome":
            return True
    return False


class SimulatedUser:
    """One simulated user: its socket, what it received (with arrival times), and what it has to send."""

    __slots__ = ("name", "sock", "slot", "stalled", "chunks", "ends_line", "out",
                 "next_seq", "closed", "sent")

    def __init__(self, name: str, sock: socket.socket, slot: int | None, stalled: bool) -> None:
        self.name, self.sock, self.slot, self.stalled = name, sock, slot, stalled
        self.chunks: list[tuple[int, bytes]] = []  # (arrival ns, bytes) as received
        self.ends_line = True
        self.out = bytearray()
        self.next_seq = 0
        self.closed = False
        self.sent = 0


class UserGroup:
    """Connects, registers and drives a list of simulated users.

    Methods for the caller: ``connect()``, then ``run(start_ns)``, then ``collect()``.

    Methods a transport overrides (:class:`~chat.lab.udpgroup.UDPUserGroup` does,
    for UDP), the way a :mod:`socketserver` handler overrides ``handle``:

    - ``register(name, slot, stalled)``: connect one user and wait for its welcome;
    - ``append_line(user, line)``: add one line to what the user will send;
    - ``send_some(user, selector)``: write what the socket takes; True if anything went;
    - ``receive(user, selector)``: read what arrived; True if anything did;
    - ``send_due(selector, now)``: queue what is due and write it (a transport adds its heartbeats here).

    And what such an override may call: ``store(user, arrived_ns, data)`` keeps
    received bytes for the analysis, ``done_sending(user)`` says a user has
    nothing more to write.
    """

    def __init__(self, plan: GroupPlan) -> None:
        self.plan = plan
        self.users: list[SimulatedUser] = []
        self._lag_us = array("d")
        self._timed_out = False
        self._received_lines = 0  # chat lines received by the whole group: when to stop
        self._received_any_lines = 0  # lines of any kind: what the window of bursts waits for
        self._sending: set[SimulatedUser] = set()  # users with bytes waiting to go out
        self._schedule: list = []
        self._unsent = 0
        self._buffer = bytearray(RECV_BYTES)  # reused by every read: no allocation per recv
        self._view = memoryview(self._buffer)

    # -- connecting ------------------------------------------------------------------

    def connect(self) -> None:
        """Connect and register every user; raises if the server refuses one."""
        for name, slot, stalled in zip(self.plan.names, self.plan.sender_slots, self.plan.stalled):
            self.users.append(self.register(name, slot, stalled))

    def register(self, name: str, slot: int | None, stalled: bool) -> SimulatedUser:
        sock = socket.socket(socket.AF_INET6 if ":" in self.plan.address[0] else socket.AF_INET)
        if stalled:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RCVBUF_BYTES)
        sock.settimeout(self.plan.load.connect_timeout_s)
        sock.connect(self.plan.address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(protocol.encode_line(name))
        user = SimulatedUser(name, sock, slot, stalled)
        decoder = protocol.LineDecoder(1 << 20)
        while True:
            data = sock.recv(RECV_BYTES)
            if not data:
                raise ConnectionError(f"{name}: the server closed the connection before welcoming")
            self.store(user, now_ns(), data)  # kept like everything else: the analysis skips replies
            if welcomed(name, [protocol.parse_event(line) for line in decoder.feed(data) if type(line) is str]):
                sock.setblocking(False)
                return user

    # -- running -----------------------------------------------------------------------

    def run(self, start_ns: int) -> None:
        """Send on schedule and record everything received until done; bounded in time."""
        load = self.plan.load
        senders = [user for user in self.users if user.slot is not None]
        self._expected = expected = self._expected_total()
        schedule = self._schedule = self._make_schedule(senders, start_ns)
        self._unsent = load.messages * len(senders)
        deadline_ns = start_ns + int(load.max_duration_s * 1e9)
        idle_ns = int(load.drain_idle_s * 1e9)
        with _precise_selector(self.users) as selector:
            for user in self.users:
                if not user.stalled:
                    selector.register(user.sock, selectors.EVENT_READ, user)
            while now_ns() < start_ns:  # join lines of the last users still arrive
                self._receive_ready(selector, (start_ns - now_ns()) / 1e9)
            last_progress = now_ns()
            while True:
                now = now_ns()
                if load.rate_per_s is None:
                    self._unsent -= self._queue_burst(senders, now)
                if self.send_due(selector, now):
                    last_progress = now  # before the idle check: a stall of our own is not the server's
                all_sent = self._unsent == 0 and not self._sending
                if all_sent and load.stop_when_complete and self._received_lines >= expected:
                    break
                waiting_for_window = load.rate_per_s is None  # bursts: the next one waits for receipts
                if (all_sent or self._sending or waiting_for_window) and now - last_progress > idle_ns:
                    break  # nothing moves any more: whatever is missing is lost
                if now > deadline_ns:
                    self._timed_out = True
                    break
                timeout = 0.05 if not schedule else max(0.0, min(0.05, (schedule[0][0] - now) / 1e9))
                if self._receive_ready(selector, timeout):
                    last_progress = now_ns()

    def _expected_total(self) -> int:
        """Chat lines this group's readers should get: every other sender's messages."""
        plan = self.plan
        return sum(
            plan.load.messages * (plan.senders_total - (user.slot is not None))
            for user in self.users
            if not user.stalled
        )

    def send_due(self, selector: selectors.BaseSelector, now: int) -> bool:
        """Queue the messages whose time has come and write what the sockets take."""
        if self._schedule and self._schedule[0][0] <= now:
            self._unsent -= self._queue_due(self._schedule, now)
        return self._flush(selector)

    def _make_schedule(self, senders: list[SimulatedUser], start_ns: int) -> list[tuple[int, int, SimulatedUser]]:
        """Open loop: a heap of (time the next message is due, slot, user).

        Sender ``slot`` sends message k at ``start + (slot / S + k) * interval``, so
        the S senders together send evenly spaced messages at the target rate.
        """
        if self.plan.load.rate_per_s is None:
            return []
        self._interval_ns = self.plan.senders_total / self.plan.load.rate_per_s * 1e9
        self._start_ns = start_ns
        schedule = [(self._due_ns(user), user.slot, user) for user in senders if self.plan.load.messages]
        heapq.heapify(schedule)
        return schedule

    def _due_ns(self, user: SimulatedUser) -> int:
        slot_offset = user.slot / self.plan.senders_total
        return int(self._start_ns + (slot_offset + user.next_seq) * self._interval_ns)

    def _queue_due(self, schedule: list, now: int) -> int:
        """Queue every message whose time has come, stamped with that time; returns how many."""
        queued = 0
        while schedule and schedule[0][0] <= now:
            due, slot, user = heapq.heappop(schedule)
            if user.closed:  # the server closed this sender: what it had left is never sent
                queued += self.plan.load.messages - user.next_seq
                continue
            self._queue(user, due)
            self._lag_us.append((now - due) / 1e3)  # how late it was queued (written at once, unless the socket is full)
            queued += 1
            if user.next_seq < self.plan.load.messages:
                heapq.heappush(schedule, (self._due_ns(user), slot, user))
        return queued

    def _queue_burst(self, senders: list[SimulatedUser], now: int) -> int:
        """Closed loop: each sender's burst k goes out once the group has received burst k - window.

        "Received" counts lines of any kind, so a server that merges messages
        into one another (the textbook one) still moves the window along.
        """
        load = self.plan.load
        if not senders or senders[0].next_seq >= load.messages:
            return 0
        bursts_sent = senders[0].next_seq // load.burst
        done_per_sender = max(0, min(load.messages, (bursts_sent - load.window_bursts + 1) * load.burst))
        needed = done_per_sender * self._expected // load.messages
        if self._received_any_lines < needed:
            return 0
        queued = 0
        for user in senders:
            count = min(load.burst, load.messages - user.next_seq)
            if user.closed:  # the server closed this sender: its bursts are never sent
                user.next_seq += count
            else:
                for _ in range(count):
                    self._queue(user, now)
            queued += count
        return queued

    def _queue(self, user: SimulatedUser, scheduled_ns: int) -> None:
        text = message_text(user.next_seq, scheduled_ns, self.plan.load.message_bytes, self.plan.load.alphabet)
        self.append_line(user, protocol.format_command(protocol.Say(text)))
        user.next_seq += 1
        self._sending.add(user)

    def append_line(self, user: SimulatedUser, line: str) -> None:
        """Add one line to what ``user`` will write (over TCP: to its byte stream)."""
        user.out += protocol.encode_line(line)

    def done_sending(self, user: SimulatedUser) -> None:
        """``user`` has nothing left to write (until its next message is queued)."""
        self._sending.discard(user)

    def _flush(self, selector: selectors.BaseSelector) -> bool:
        progress = False
        for user in list(self._sending):
            progress |= self.send_some(user, selector)
        return progress

    def send_some(self, user: SimulatedUser, selector: selectors.BaseSelector) -> bool:
        if user.closed:
            self._sending.discard(user)
            return False
        try:
            sent = user.sock.send(user.out)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._close(user, selector)
            return False
        if sent:
            user.sent += user.out.count(b"\n", 0, sent)
            del user.out[:sent]
        if not user.out:
            self._sending.discard(user)
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if user.out else 0)
        if not user.stalled and selector.get_key(user.sock).events != events:
            selector.modify(user.sock, events, user)
        return sent > 0

    def _receive_ready(self, selector: selectors.BaseSelector, timeout_s: float) -> bool:
        progress = False
        for key, events in selector.select(timeout_s):
            user: SimulatedUser = key.data
            if events & selectors.EVENT_WRITE:
                progress |= self.send_some(user, selector)
            if events & selectors.EVENT_READ and not user.closed:
                progress |= self.receive(user, selector)
            if self._schedule and self._schedule[0][0] <= now_ns():  # don't send late while reading
                progress |= self.send_due(selector, now_ns())
        return progress

    def receive(self, user: SimulatedUser, selector: selectors.BaseSelector) -> bool:
        try:
            size = user.sock.recv_into(self._buffer)
        except BlockingIOError:
            return False
        except OSError:
            size = 0
        if not size:
            self._close(user, selector)
            return False
        self.store(user, now_ns(), self._view[:size].tobytes())
        return True

    def store(self, user: SimulatedUser, arrived_ns: int, data: bytes) -> None:
        user.chunks.append((arrived_ns, data))
        # This load's chat lines start with "<" and its name prefix: counting them needs no parsing.
        for start in self.plan.line_starts:
            self._received_lines += data.count(b"\n" + start) + (user.ends_line and data.startswith(start))
        self._received_any_lines += data.count(b"\n")
        user.ends_line = data[-1:] == b"\n"

    def _close(self, user: SimulatedUser, selector: selectors.BaseSelector) -> None:
        if user.closed:
            return
        user.closed = True
        self._sending.discard(user)
        if not user.stalled:
            selector.unregister(user.sock)

    def close(self) -> None:
        for user in self.users:
            user.sock.close()

    # -- after the run -----------------------------------------------------------------------

    def collect(self) -> GroupResult:
        """Parse what each user received and count it against what was sent."""
        result = GroupResult(send_lag_us=self._lag_us, timed_out=self._timed_out)
        for user in self.users:
            if user.slot is not None:
                result.sent[user.name] = user.sent
            if user.stalled:
                continue
            result.receivers += 1
            if user.closed:
                result.receivers_closed.append(user.name)
            self._analyze(user, result)
        return result

    def _analyze(self, user: SimulatedUser, result: GroupResult) -> None:
        decoder = protocol.LineDecoder(1 << 20)
        load = self.plan.load
        size, alphabet, messages = load.message_bytes, load.alphabet, load.messages
        per_sender: dict[str, SequenceTracker] = {}
        latencies = result.latencies_us
        sent_at = result.sent_at_ns if load.keep_send_times else None
        known = self.plan.sender_names
        for arrived_ns, data in user.chunks:
            delivered_here = False
            for line in decoder.feed(data):
                event = protocol.parse_event(line) if type(line) is str else protocol.Unparsed("")
                if type(event) is not protocol.ChatMessage:
                    result.garbled += type(event) is protocol.Unparsed
                    continue
                if event.sender not in known:
                    result.foreign += 1
                    continue
                parsed = parse_message_text(event.text, size, alphabet)
                if parsed is None or parsed[0] >= messages:
                    result.garbled += 1
                    continue
                track = per_sender.get(event.sender)
                if track is None:
                    track = per_sender[event.sender] = SequenceTracker()
                if track.record(parsed[0]):
                    latencies.append((arrived_ns - parsed[1]) / 1e3)
                    if sent_at is not None:
                        sent_at.append(parsed[1])
                    delivered_here = True
            if delivered_here:
                result.last_delivery_ns = max(result.last_delivery_ns, arrived_ns)
                if not result.first_delivery_ns or arrived_ns < result.first_delivery_ns:
                    result.first_delivery_ns = arrived_ns
        for sender, track in per_sender.items():
            result.pairs[(user.name, sender)] = PairCount(track.received, track.duplicated, track.out_of_order)
