"""The checks: each tries one thing the textbook chat server gets wrong, and says what it saw.

Every check takes a :class:`Context` and returns a
:class:`~chat.lab.checker.scorecard.CheckResult`.  It opens a fresh
:class:`~chat.lab.checker.peers.Crowd` of users, so one check's leftovers
never count in another's, and every wait in it has a deadline.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from chat.lab.checker.dialect import Dialect
from chat.lab.checker.peers import TOKEN, CheckFailed, Crowd, Peer
from chat.lab.checker.scorecard import CheckResult, Verdict
from chat.lab.checker.target import LaunchedServer

DELIVERY_S = 3.0  # how long a message may take to reach everybody before it counts as lost
NAGLE_P99_MS = 25.0  # a p99 above this at a light load is Nagle's algorithm at work (delayed ACKs: ~40 ms)
HELD_UP_WARN_S = 1.0  # others waiting longer than this for a message, with a stalled user, is worth a warning
STALLED_WAIT_S = 4.0  # how long the others may wait for the last messages, with a user who reads nothing
GREETING = "привет всем"


@dataclass
class Context:
    """What every check needs: where the server is, how to speak to it, and its process if the checker started it."""

    address: tuple
    dialect: Dialect
    process: LaunchedServer | None = None
    timeout_s: float = 5.0
    crowds: int = 0

    def crowd(self) -> Crowd:
        """A new crowd, whose names no earlier crowd used (a server may not have forgotten those yet)."""
        self.crowds += 1
        return Crowd(self.address, self.dialect, self.timeout_s, suffix=str(self.crowds))


def _show(text: str, limit: int = 70) -> str:
    """A received line as evidence: its repr, cut to ``limit`` characters."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 5] + "...'"


def _around(text: str, name: str) -> str:
    """The line of ``text`` that first names ``name``, from a little before the name (lines may be long)."""
    at = text.find(name)
    if at < 0:
        return ""
    start = max(text.rfind("\n", 0, at) + 1, at - 12)
    end = text.find("\n", at)
    return text[start : end if end >= 0 else len(text)]


def _result(check: str, verdict: Verdict, evidence: str, hint: str = "", **data) -> CheckResult:
    return CheckResult(check, TITLES[check], verdict, evidence, hint if verdict is not Verdict.PASS else "", data=data)


def _delivery(crowd: Crowd, sender: Peer, mark: str, receivers: list[Peer]) -> tuple[list[str], list[str]]:
    """Who did not get ``sender``'s message, and the lines that had it without the sender's name."""
    missing = [peer.name for peer in receivers if mark not in peer.seen]
    nameless = [line for peer in receivers for line in peer.lines_with(mark) if sender.name not in line]
    return missing, nameless


# -- the conversation ------------------------------------------------------------------------------


def register(ctx: Context) -> CheckResult:
    with ctx.crowd() as crowd:
        peers = crowd.join(["ann", "bob", "вера"])
        last = peers[-1]
        answers = [line for line in last.since_name().split("\n") if line.strip()]
        said = next((line for line in answers if last.name in line), answers[0] if answers else "")
    evidence = "3 users connected and gave their names"
    return _result("register", Verdict.PASS, evidence + (f"; {last.name} was told {_show(said, 50)}" if said else
                                                          "; the server said nothing to the newcomer"))


def broadcast(ctx: Context) -> CheckResult:
    with ctx.crowd() as crowd:
        peers = crowd.join(["ann", "bob", "вера"])
        marks = {}
        for peer in peers:
            mark, text = peer.message(GREETING)
            marks[peer] = mark
            peer.say(text)
        crowd.wait_for_tokens({peer: {marks[other] for other in peers if other is not peer} for peer in peers}, DELIVERY_S)
        crowd.quiet(0.2)  # an echo comes after the others' copies
        problems, echoed = [], []
        for sender in peers:
            others = [peer for peer in peers if peer is not sender]
            missing, nameless = _delivery(crowd, sender, marks[sender], others)
            if missing:
                problems.append(f"{sender.name}'s message never reached {', '.join(missing)}")
            if nameless:
                problems.append(f"{sender.name}'s message arrived without the sender's name: {_show(nameless[0])}")
            if marks[sender] in sender.seen:
                echoed.append(sender.name)
    delivered = sum(marks[sender] in peer.seen for sender in peers for peer in peers if peer is not sender)
    if problems:
        return _result("broadcast", Verdict.FAIL, "; ".join(problems),
                       "send each message to every other user, with the sender's name on the line", delivered=delivered)
    if echoed:
        return _result("broadcast", Verdict.WARN,
                       f"every message reached every other user with its sender's name, but also came back to its "
                       f"sender ({', '.join(echoed)})", "skip the sender when broadcasting (it already has its own text)")
    return _result("broadcast", Verdict.PASS, "each of 3 users' messages reached the other two, with the sender's name, "
                                               "and not the sender itself")


def two_in_one_send(ctx: Context) -> CheckResult:
    with ctx.crowd() as crowd:
        ann, bob, vera = crowd.join(["ann", "bob", "вера"])
        (first, text1), (second, text2) = ann.message("раз"), ann.message("два")
        ann.send(ctx.dialect.message(ann.name, text1) + ctx.dialect.message(ann.name, text2))
        crowd.wait_for_tokens({bob: {first, second}, vera: {first, second}}, DELIVERY_S)
        crowd.quiet(0.1)
        for peer in (bob, vera):
            lines1, lines2 = peer.lines_with(first), peer.lines_with(second)
            if not lines1 or not lines2:
                return _result("two-in-one", Verdict.FAIL, f"{peer.name} did not get both messages "
                               f"({len(lines1) + len(lines2)} of 2 arrived)", HINTS["framing"])
            together = [line for line in lines1 if second in line]
            if together:
                return _result("two-in-one", Verdict.FAIL, f"two messages sent in one send arrived as one line: "
                               f"{_show(together[0])}", HINTS["framing"])
            nameless = [line for line in lines1 + lines2 if ann.name not in line]
            if nameless:
                return _result("two-in-one", Verdict.FAIL, f"the second message lost its sender's name: "
                               f"{_show(nameless[0])}", HINTS["framing"])
    return _result("two-in-one", Verdict.PASS, "two messages in one send arrived as two lines, each with the sender's name")


def long_message(ctx: Context, size_bytes: int = 2000) -> CheckResult:
    with ctx.crowd() as crowd:
        ann, bob = crowd.join(["ann", "bob"])
        mark, head = ann.message()
        text = head + " " + "x" * (size_bytes - len(head) - 6) + " конец"
        ann.say(text)
        crowd.wait_for_tokens({bob: {mark}}, DELIVERY_S)
        crowd.wait(lambda: "конец" in bob.text[bob.text.find(mark):] if mark in bob.text else False, 1.0)
        crowd.quiet(0.1)
        lines = bob.lines_with(mark)
    if not lines:
        return _result("long-message", Verdict.FAIL, f"a {size_bytes}-byte message never arrived", HINTS["framing"])
    whole = [line for line in lines if text in line and ann.name in line]
    if whole:
        return _result("long-message", Verdict.PASS, f"a {size_bytes}-byte message arrived as one line")
    line = lines[0]
    return _result("long-message", Verdict.FAIL,
                   f"a {size_bytes}-byte message did not arrive whole: the line with its start has "
                   f"{len(line.encode())} bytes, and the text is cut or has something inserted", HINTS["framing"])


def cyrillic_bytewise(ctx: Context) -> CheckResult:
    with ctx.crowd() as crowd:
        ann, bob = crowd.join(["ann", "bob"])
        mark, text = ann.message("съешь же ещё этих мягких французских булок")
        for byte in ctx.dialect.message(ann.name, text):
            if not ann.send(bytes([byte])) or ann.closed:
                break
            time.sleep(0.002)  # each byte its own segment (TCP_NODELAY): recv() gets half a letter
        crowd.wait_for_tokens({bob: {mark}}, DELIVERY_S)
        crowd.wait(lambda: bob.lines_with(text) != [] or ann.closed, 1.0)
        after, follow = ann.message("ещё одно")
        still_there = not ann.closed and ann.say(follow)
        if still_there:
            crowd.wait_for_tokens({bob: {after}}, DELIVERY_S)
        intact = [line for line in bob.lines_with(text) if ann.name in line]
        got_follow_up = after in bob.seen
        seen = bob.lines_with(mark)
    if not intact:
        return _result("cyrillic-bytes", Verdict.FAIL,
                       "a Cyrillic message sent one byte at a time did not arrive intact"
                       + (f": {_show(seen[0])}" if seen else " (nothing of it arrived)")
                       + ("; its sender was disconnected" if ann.closed else ""), HINTS["utf8"])
    if not got_follow_up:
        return _result("cyrillic-bytes", Verdict.FAIL, "the Cyrillic message arrived intact, but its sender "
                       + ("was disconnected" if ann.closed else "could not send another message after it"), HINTS["utf8"])
    return _result("cyrillic-bytes", Verdict.PASS, "a Cyrillic message sent one byte at a time arrived intact, "
                                                    "and its sender stayed connected")


def join_leave(ctx: Context) -> CheckResult:
    with ctx.crowd() as crowd:
        ann, bob = crowd.join(["ann", "bob"])
        before = {peer: len(peer.text) for peer in (ann, bob)}
        (dan,) = crowd.join(["dan"], first_index=2)
        joined = crowd.wait(lambda: all(dan.name in peer.text[before[peer]:] for peer in (ann, bob)), 2.0)
        crowd.quiet(0.1)
        before = {peer: len(peer.text) for peer in (ann, bob)}
        crowd.leave(dan)
        left = crowd.wait(lambda: all(dan.name in peer.text[before[peer]:] for peer in (ann, bob)), 2.0)
        join_line = _around(ann.text, dan.name)
        leave_line = _around(ann.text[before[ann]:], dan.name)
    if joined and left:
        return _result("join-leave", Verdict.PASS, f"the others saw {dan.name} join ({_show(join_line, 45)}) and leave "
                                                    f"({_show(leave_line, 45)})")
    missing = [what for what, seen in (("join", joined), ("leave", left)) if not seen]
    return _result("join-leave", Verdict.FAIL, f"the others saw no line with {dan.name}'s name for its {' and '.join(missing)}",
                   "tell everybody when a user joins and when it leaves (on EOF, not only on an error)")


def _still_serving(crowd: Crowd, talker: Peer, listeners: list[Peer], newcomer_index: int) -> list[str]:
    """After a misbehaving user: does a message still reach everybody, and can a newcomer join and hear one?"""
    problems = []
    mark, text = talker.message("всё ещё здесь?")
    talker.say(text)
    crowd.wait_for_tokens({peer: {mark} for peer in listeners}, DELIVERY_S)
    lost = [peer.name for peer in listeners if mark not in peer.seen]
    if lost:
        problems.append(f"{talker.name}'s next message never reached {', '.join(lost)}")
    try:
        (newcomer,) = crowd.join(["eve"], first_index=newcomer_index)
    except CheckFailed as exc:
        return [*problems, f"a new user could not join afterwards ({exc})"]
    mark, text = talker.message("добро пожаловать")
    talker.say(text)
    if not crowd.wait_for_tokens({newcomer: {mark}}, DELIVERY_S):
        problems.append("a new user joined afterwards but did not get the next message")
    return problems


def reset_mid_line(ctx: Context) -> CheckResult:
    with ctx.crowd() as crowd:
        ann, bob, mallory = crowd.join(["ann", "bob", "mallory"])
        half, text = mallory.message("половина строки")
        mallory.send(ctx.dialect.message(mallory.name, text).rstrip(b"\n")[: max(1, len(text) // 2 + 8)])
        time.sleep(0.1)
        crowd.vanish(mallory)
        time.sleep(0.2)
        problems = _still_serving(crowd, ann, [bob], 3)
        passed_on = any(half in line for line in bob.lines())
    if problems:
        return _result("reset-mid-line", Verdict.FAIL, "after a user vanished with a reset in the middle of a line: "
                       + "; ".join(problems), "treat a reset like an EOF: drop that user alone, keep serving the rest")
    return _result("reset-mid-line", Verdict.PASS, "a user vanished with a reset in the middle of a line; the others "
                   "kept chatting and a new user joined" + ("; its half line was passed on as a message" if passed_on else ""))


def invalid_utf8(ctx: Context) -> CheckResult:
    with ctx.crowd() as crowd:
        ann, bob, mallory = crowd.join(["ann", "bob", "mallory"])
        mallory.send(b"\xff\xfe\xc3( " + "плохие байты".encode()[1:] + b"\n")
        time.sleep(0.2)
        problems = _still_serving(crowd, ann, [bob], 3)
        dropped = mallory.closed
    if problems:
        return _result("invalid-utf8", Verdict.FAIL, "after one user sent invalid UTF-8: " + "; ".join(problems),
                       "decode with errors='replace' (or drop that user alone); never let one user's bytes stop the server")
    return _result("invalid-utf8", Verdict.PASS, "one user sent invalid UTF-8; the others kept chatting and a new user "
                   "joined" + ("; the sender was disconnected" if dropped else ""))


# -- under load -------------------------------------------------------------------------------------


def _send_on_schedule(peers: list[Peer], messages: int, rate_per_s: float, words: str,
                      burst: int = 0, stop: threading.Event | None = None) -> dict[str, float]:
    """Each peer sends ``messages`` messages, the first ``burst`` at once, the rest evenly at ``rate_per_s`` in all.

    Returns each message's send time by token.  A peer the server stops taking
    messages from (a send times out) sends no more.
    """
    sent_at: dict[str, float] = {}
    interval = len(peers) / rate_per_s
    start = time.monotonic()
    for seq in range(messages):
        for slot, peer in enumerate(peers):
            if peer.send_failed or (stop is not None and stop.is_set()):
                continue
            if seq >= burst:
                due = start + (seq - burst) * interval + slot * interval / len(peers)
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            mark, text = peer.message(words, seq)
            sent_at[mark] = time.monotonic()
            peer.say(text)
    return sent_at


def _counts(peers: list[Peer], sent_at: dict[str, float]) -> dict:
    """Delivered, lost, duplicated and out-of-order messages, over every (receiver, sender) pair, and latencies."""
    expected = delivered = duplicated = out_of_order = 0
    latencies_ms = []
    senders_with_problems = set()
    by_index = {peer.index: peer for peer in peers}
    for receiver in peers:
        if receiver.stalled:
            continue
        last_seq: dict[int, int] = {}
        counted: set[str] = set()
        for match in TOKEN.finditer(receiver.text):
            mark, sender = match[0], int(match[1])
            if mark not in sent_at or sender == receiver.index:
                continue
            if mark in counted:
                duplicated += 1
                senders_with_problems.add(sender)
                continue
            counted.add(mark)
            seq = int(match[2])
            if seq < last_seq.get(sender, -1):
                out_of_order += 1
                senders_with_problems.add(sender)
            last_seq[sender] = max(seq, last_seq.get(sender, -1))
            latencies_ms.append((receiver.seen[mark] - sent_at[mark]) * 1e3)
        mine = {mark for mark in sent_at if int(TOKEN.match(mark)[1]) != receiver.index}
        expected += len(mine)
        delivered += len(counted)
        senders_with_problems |= {int(TOKEN.match(mark)[1]) for mark in mine - counted}
    quantiles = statistics.quantiles(latencies_ms, n=100, method="inclusive") if len(latencies_ms) >= 2 else None
    return {"expected": expected, "delivered": delivered, "lost": expected - delivered, "duplicated": duplicated,
            "out_of_order": out_of_order, "senders_with_problems": sorted(by_index[i].name for i in senders_with_problems
                                                                          if i in by_index),
            "p50_ms": round(quantiles[49], 2) if quantiles else None, "p99_ms": round(quantiles[98], 2) if quantiles else None,
            "max_ms": round(max(latencies_ms), 2) if latencies_ms else None}


def stalled_reader(ctx: Context, talkers: int = 30, messages: int = 42, message_bytes: int = 3500,
                   burst: int = 6) -> CheckResult:
    """Others talk past a user who reads nothing: over 4 MB for it, more than the kernel buffers for one socket.

    Each talker sends ``burst`` messages at once, then 8 a second (under the
    usual flood limits, ours included), lines below 4 KB (under the usual line limits).
    """
    with ctx.crowd() as crowd:
        peers = crowd.join([f"t{i:02d}x" for i in range(talkers)])
        (stalled,) = crowd.join(["stalled"], first_index=talkers, stalled=True)
        for peer in peers:
            peer.sock.settimeout(1.0)  # a server that stops reading this talker makes it stop, not hang the check
        words = "ы" + "x" * (message_bytes - 18)  # mostly ASCII: cheap for the checker to read at this volume
        started = time.monotonic()
        sent_at = _send_on_schedule(peers, messages, rate_per_s=8.0 * talkers, words=words, burst=burst)
        crowd.wait_for_tokens({peer: {m for m in sent_at if int(m[2:4]) != peer.index} for peer in peers}, STALLED_WAIT_S)
        counts = _counts(peers, sent_at)
        sent_mb = len(sent_at) * len(words.encode()) / 2**20
        seconds = time.monotonic() - started
        stalled_dropped = _closed_by_server(stalled)
    held = (counts["max_ms"] or 0) / 1e3
    blocked = sum(peer.send_failed for peer in peers)
    evidence = (f"{talkers} users sent {len(sent_at)} messages ({sent_mb:.1f} MB) while one user read nothing"
                + (f" (the server stopped reading {blocked} of them: their sends waited more than 1 s)" if blocked else "")
                + f"; the others got {counts['delivered']} of {counts['expected']} copies"
                + (f" ({counts['lost']} had not come {STALLED_WAIT_S:g} s after the last was sent)" if counts["lost"] else "")
                + (f", the slowest after {held:.2f} s" if counts["delivered"] else "")
                + ("; the stalled user was disconnected" if stalled_dropped else "; the stalled user was kept"))
    data = {**counts, "seconds": round(seconds, 1), "sent_mb": round(sent_mb, 2), "senders_blocked": blocked}
    if counts["lost"] or blocked:
        return _result("stalled-reader", Verdict.FAIL, evidence, HINTS["stalled"], **data)
    if held > HELD_UP_WARN_S:
        return _result("stalled-reader", Verdict.WARN, evidence, HINTS["stalled"], **data)
    return _result("stalled-reader", Verdict.PASS, evidence, **data)


def _closed_by_server(peer: Peer) -> bool:
    """For a peer nobody read: has the server closed it?  Reads what is waiting, to the end (at most 2 s)."""
    deadline = time.monotonic() + 2.0
    peer.sock.settimeout(0.3)
    try:
        while time.monotonic() < deadline:
            if not peer.sock.recv(1 << 20):
                return True
    except TimeoutError:
        return False
    except OSError:
        return True
    return False


def light_load(ctx: Context, users: int = 20, rate_per_s: float = 160.0, seconds: float = 2.5) -> list[CheckResult]:
    """Two verdicts from one run: what was delivered, and how fast (the second flags Nagle's algorithm)."""
    messages = max(1, round(rate_per_s * seconds / users))
    with ctx.crowd() as crowd:
        peers = crowd.join([f"u{i:02d}" for i in range(users)])
        sent_at = _send_on_schedule(peers, messages, rate_per_s, "лёгкая нагрузка")
        crowd.wait_for_tokens({peer: {m for m in sent_at if int(m[2:4]) != peer.index} for peer in peers}, DELIVERY_S)
        crowd.quiet(0.2)
        counts = _counts(peers, sent_at)
    load = f"{users} users, {rate_per_s:g} messages/s for {seconds:g} s"
    if counts["lost"] or counts["duplicated"] or counts["out_of_order"]:
        delivery = _result("light-load", Verdict.FAIL,
                           f"{load}: {counts['lost']} copies lost, {counts['duplicated']} duplicated, "
                           f"{counts['out_of_order']} out of order (senders affected: "
                           f"{', '.join(counts['senders_with_problems'][:5])})", HINTS["load"], **counts)
    else:
        delivery = _result("light-load", Verdict.PASS, f"{load}: all {counts['expected']} copies delivered once, in order",
                           **counts)
    p50, p99 = counts["p50_ms"], counts["p99_ms"]
    if p99 is None:
        latency = _result("latency", Verdict.FAIL, f"{load}: nothing arrived to measure", HINTS["load"], **counts)
    elif p99 > NAGLE_P99_MS:
        latency = _result("latency", Verdict.FAIL, f"{load}: p50 {p50:.1f} ms, p99 {p99:.1f} ms: tens of milliseconds at "
                          "this load is Nagle's algorithm holding small writes back", HINTS["nagle"], **counts)
    else:
        latency = _result("latency", Verdict.PASS, f"{load}: p50 {p50:.2f} ms, p99 {p99:.2f} ms", **counts)
    return [delivery, latency]


def churn(ctx: Context, churners: int = 30, talkers: int = 3, seconds: float = 2.5) -> CheckResult:
    with ctx.crowd() as crowd:
        peers = crowd.join([f"talker{i}x" for i in range(talkers)])
        stop = threading.Event()
        problems: list[str] = []

        def come_and_go() -> None:
            for wave in range(3):
                if stop.is_set():
                    return
                try:
                    group = crowd.join([f"c{wave}{i:02d}x" for i in range(churners // 3)], first_index=10 + wave * 10)
                except CheckFailed as exc:
                    problems.append(f"a user could not join during the churn ({exc})")
                    return
                for peer in group:
                    crowd.leave(peer)

        churning = threading.Thread(target=come_and_go, name="check-churn", daemon=True)
        churning.start()
        rate = 8.0 * talkers
        sent_at = _send_on_schedule(peers, max(1, round(rate * seconds / talkers)), rate, "пока другие приходят")
        churning.join(ctx.timeout_s * 3)
        stop.set()
        crowd.wait_for_tokens({peer: {m for m in sent_at if int(m[2:4]) != peer.index} for peer in peers}, DELIVERY_S)
        counts = _counts(peers, sent_at)
        if churning.is_alive():
            problems.append("the users coming and going could not finish")
        problems += _still_serving(crowd, peers[0], peers[1:], 40)
    if counts["lost"] or counts["duplicated"]:
        problems.insert(0, f"the talkers lost {counts['lost']} of {counts['expected']} copies"
                        + (f" and got {counts['duplicated']} twice" if counts["duplicated"] else ""))
    evidence = f"{churners} users joined and left in 3 waves while {talkers} talked"
    if problems:
        return _result("churn", Verdict.FAIL, f"{evidence}: " + "; ".join(problems), HINTS["lock"], **counts)
    return _result("churn", Verdict.PASS, f"{evidence}: the talkers lost nothing, and the server kept serving", **counts)


# -- through the server's process ---------------------------------------------------------------------


def long_line_memory(ctx: Context, line_bytes: int = 32 << 20, limit_s: float = 8.0) -> CheckResult:
    process = ctx.process
    with ctx.crowd() as crowd:
        (flooder,) = crowd.join(["flooder"])  # alone: whatever the server keeps of it, it can't pass it on
        flooder.sock.settimeout(1.0)
        before = process.rss_bytes()
        peak = before
        chunk = b"z" * 65536
        sent = 0
        deadline = time.monotonic() + limit_s
        while sent < line_bytes and time.monotonic() < deadline and not flooder.closed:
            if not flooder.send(chunk):
                break
            sent += len(chunk)
            if sent % (1 << 20) == 0:
                peak = max(peak, process.rss_bytes())
        time.sleep(0.3)
        peak = max(peak, process.rss_bytes())
    grew_mb = (peak - before) / 2**20
    how = ("the server closed that connection" if flooder.closed else
           "the server stopped reading it" if flooder.send_failed else "the server took it all")
    evidence = f"one user sent {sent / 2**20:.0f} MiB without a newline ({how}); the server's memory grew {grew_mb:.1f} MiB"
    data = {"sent_bytes": sent, "rss_before_bytes": before, "rss_peak_bytes": peak}
    if grew_mb > sent / 2**20 / 2 and grew_mb > 8:
        return _result("long-line-memory", Verdict.FAIL, evidence,
                       "bound a line: past a limit, report it once and discard the rest up to the newline", **data)
    return _result("long-line-memory", Verdict.PASS, evidence, **data)


def threads_left(ctx: Context, baseline: int) -> CheckResult:
    process = ctx.process
    deadline = time.monotonic() + 3.0
    now = process.threads()
    while now > baseline and time.monotonic() < deadline:
        time.sleep(0.1)
        now = process.threads()
    evidence = f"{now} thread{'s' * (now != 1)} once every user had left, {baseline} before the first one came"
    if now > baseline:
        return _result("threads-left", Verdict.FAIL, evidence,
                       "end a client's thread when its connection ends (recv() returning b'' is the end)",
                       threads=now, baseline=baseline)
    return _result("threads-left", Verdict.PASS, evidence, threads=now, baseline=baseline)


def _after(seconds: float) -> str:
    return "at once after" if seconds < 0.1 else f"{seconds:.1f} s after"


def sigint(ctx: Context, grace_s: float = 5.0) -> CheckResult:
    """Ctrl+C with two users connected (or none, if the server can no longer take them): does it exit, and tell them?"""
    process = ctx.process
    with ctx.crowd() as crowd:
        try:
            users = crowd.join(["ann", "bob"])
            no_users = ""
        except CheckFailed as exc:
            users, no_users = [], f" (with nobody connected: {exc})"
        before = {peer: peer.received_bytes for peer in users}
        process.interrupt()
        exited = process.wait(grace_s)
        crowd.wait(lambda: all(peer.closed for peer in users), 1.0 if exited else 0.5)
        told = bool(users) and all(peer.received_bytes > before[peer] for peer in users)
        closed = all(peer.closed for peer in users)
        said = " ".join(users[0].text[before[users[0]]:].split())[:50] if users else ""
    if not exited:
        return _result("sigint", Verdict.FAIL, f"still running {grace_s:g} s after Ctrl+C (SIGINT){no_users}",
                       "catch KeyboardInterrupt, tell the users, close their sockets; make client threads daemons or join them")
    if told:
        return _result("sigint", Verdict.PASS, f"exited {_after(process.exit_seconds)} Ctrl+C; the users were told "
                       f"({_show(said, 40)}) and disconnected", exit_code=process.returncode)
    if closed:
        crashed = f" with exit code {process.returncode} (it printed {process.last_output(2)})" if process.returncode else ""
        return _result("sigint", Verdict.WARN, f"exited {_after(process.exit_seconds)} Ctrl+C{no_users}{crashed}"
                       + (" and closed the users' connections without a word" if users else ""),
                       "send a last line (\"server shutting down\") before closing", exit_code=process.returncode)
    return _result("sigint", Verdict.FAIL, "exited after Ctrl+C but left the users' connections open",
                   "close every client socket on the way out", exit_code=process.returncode)


# -- the list --------------------------------------------------------------------------------------------


TITLES = {
    "register": "users register",
    "broadcast": "message reaches the others",
    "two-in-one": "two messages in one send",
    "long-message": "2,000-byte message",
    "cyrillic-bytes": "Cyrillic, one byte at a time",
    "join-leave": "join and leave seen",
    "reset-mid-line": "reset in mid-line",
    "invalid-utf8": "invalid UTF-8",
    "stalled-reader": "one user stops reading",
    "light-load": "light load: delivery",
    "latency": "light load: latency",
    "churn": "users come and go",
    "long-line-memory": "endless line: memory",
    "threads-left": "threads after all left",
    "sigint": "Ctrl+C",
}

HINTS = {
    "framing": "TCP is a byte stream: keep a buffer per client, split it at \"\\n\", relay whole lines only",
    "utf8": "decode whole lines, not single recv() results (or use an incremental decoder); "
            "half a letter is not an error",
    "stalled": "don't send to every client from the sender's thread with a blocking send(): give each client a "
               "bounded queue and its own writer, and drop a client whose queue is full",
    "load": "guard the shared list of clients with a lock and send whole lines with sendall()",
    "nagle": "set TCP_NODELAY on every client socket: "
             "sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)",
    "lock": "change the shared list of clients only under a lock, and iterate over a copy",
}

CONVERSATION: list[Callable[[Context], CheckResult]] = [
    register, broadcast, two_in_one_send, long_message, cyrillic_bytewise, join_leave, reset_mid_line, invalid_utf8,
    stalled_reader,
]
PROCESS_CHECKS = ("long-line-memory", "threads-left", "sigint")
IDS = {"two_in_one_send": "two-in-one", "cyrillic_bytewise": "cyrillic-bytes"}


def check_id(check: Callable) -> str:
    """The id a check function reports under (its name with dashes, or a shorter one)."""
    return IDS.get(check.__name__, check.__name__.replace("_", "-"))
