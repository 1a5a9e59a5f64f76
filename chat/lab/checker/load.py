"""The checks under load: a user who stops reading, a light load (delivery and latency), users coming and going."""

from __future__ import annotations

import statistics
import threading
import time

from chat.lab.checker.common import DELIVERY_S, HELD_UP_WARN_S, HINTS, NAGLE_P99_MS, STALLED_WAIT_S, Context, result
from chat.lab.checker.conversation import still_serving
from chat.lab.checker.peers import TOKEN, CheckFailed, Peer
from chat.lab.checker.scorecard import CheckResult, Verdict

BLOCKED_SENDERS = 3  # senders the server stopped reading, after which a load stops: the server is stuck
SEND_TIMEOUT_S = 0.5  # a send that waits this long means the server stopped reading that sender


def send_on_schedule(peers: list[Peer], messages: int, rate_per_s: float, words: str,
                      burst: int = 0, stop: threading.Event | None = None) -> dict[str, float]:
    """Each peer sends ``messages`` messages, the first ``burst`` at once, the rest evenly at ``rate_per_s`` in all.

    Returns each message's send time by token.  A peer the server stops taking
    messages from (a send times out) sends no more, and once ``BLOCKED_SENDERS``
    peers are in that state, nobody sends any more: the server is stuck, and
    waiting out every sender's timeout would only make the check slow.
    """
    sent_at: dict[str, float] = {}
    interval = len(peers) / rate_per_s
    start = time.monotonic()
    for seq in range(messages):
        if sum(peer.send_failed for peer in peers) >= BLOCKED_SENDERS:
            break
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


def count_deliveries(peers: list[Peer], sent_at: dict[str, float]) -> dict:
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
            peer.sock.settimeout(SEND_TIMEOUT_S)  # a server that stops reading this talker makes it stop, not hang
        words = "ы" + "x" * (message_bytes - 18)  # mostly ASCII: cheap for the checker to read at this volume
        started = time.monotonic()
        sent_at = send_on_schedule(peers, messages, rate_per_s=8.0 * talkers, words=words, burst=burst)
        crowd.wait_for_tokens({peer: {m for m in sent_at if int(m[2:4]) != peer.index} for peer in peers}, STALLED_WAIT_S,
                              idle_s=1.5)
        counts = count_deliveries(peers, sent_at)
        sent_mb = len(sent_at) * len(words.encode()) / 2**20
        seconds = time.monotonic() - started
        stalled_dropped = _closed_by_server(stalled)
    held = (counts["max_ms"] or 0) / 1e3
    blocked = sum(peer.send_failed for peer in peers)
    evidence = (f"{talkers} users sent {len(sent_at)} messages ({sent_mb:.1f} MB) while one user read nothing"
                + (f" (the server stopped reading {blocked} of them: their sends waited more than {SEND_TIMEOUT_S:g} s)" if blocked else "")
                + f"; the others got {counts['delivered']} of {counts['expected']} copies"
                + (f" ({counts['lost']} had not come when nothing more arrived)" if counts["lost"] else "")
                + (f", the slowest after {held:.2f} s" if counts["delivered"] else "")
                + ("; the stalled user was disconnected" if stalled_dropped else "; the stalled user was kept"))
    data = {**counts, "seconds": round(seconds, 1), "sent_mb": round(sent_mb, 2), "senders_blocked": blocked}
    if counts["lost"] or blocked:
        return result("stalled-reader", Verdict.FAIL, evidence, HINTS["stalled"], **data)
    if held > HELD_UP_WARN_S:
        return result("stalled-reader", Verdict.WARN, evidence, HINTS["stalled"], **data)
    return result("stalled-reader", Verdict.PASS, evidence, **data)


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
        sent_at = send_on_schedule(peers, messages, rate_per_s, "лёгкая нагрузка")
        crowd.wait_for_tokens({peer: {m for m in sent_at if int(m[2:4]) != peer.index} for peer in peers}, DELIVERY_S)
        crowd.quiet(0.2)
        counts = count_deliveries(peers, sent_at)
    load = f"{users} users, {rate_per_s:g} messages/s for {seconds:g} s"
    if counts["lost"] or counts["duplicated"] or counts["out_of_order"]:
        delivery = result("light-load", Verdict.FAIL,
                           f"{load}: {counts['lost']} copies lost, {counts['duplicated']} duplicated, "
                           f"{counts['out_of_order']} out of order (senders affected: "
                           f"{', '.join(counts['senders_with_problems'][:5])})", HINTS["load"], **counts)
    else:
        delivery = result("light-load", Verdict.PASS, f"{load}: all {counts['expected']} copies delivered once, in order",
                           **counts)
    p50, p99 = counts["p50_ms"], counts["p99_ms"]
    if p99 is None:
        latency = result("latency", Verdict.FAIL, f"{load}: nothing arrived to measure", HINTS["load"], **counts)
    elif p99 > NAGLE_P99_MS:
        latency = result("latency", Verdict.FAIL, f"{load}: p50 {p50:.1f} ms, p99 {p99:.1f} ms: tens of milliseconds at "
                          "this load is Nagle's algorithm holding small writes back", HINTS["nagle"], **counts)
    else:
        latency = result("latency", Verdict.PASS, f"{load}: p50 {p50:.2f} ms, p99 {p99:.2f} ms", **counts)
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
        sent_at = send_on_schedule(peers, max(1, round(rate * seconds / talkers)), rate, "пока другие приходят")
        churning.join(ctx.timeout_s * 3)
        stop.set()
        crowd.wait_for_tokens({peer: {m for m in sent_at if int(m[2:4]) != peer.index} for peer in peers}, DELIVERY_S)
        counts = count_deliveries(peers, sent_at)
        if churning.is_alive():
            problems.append("the users coming and going could not finish")
        problems += still_serving(crowd, peers[0], peers[1:], 40)
    if counts["lost"] or counts["duplicated"]:
        problems.insert(0, f"the talkers lost {counts['lost']} of {counts['expected']} copies"
                        + (f" and got {counts['duplicated']} twice" if counts["duplicated"] else ""))
    evidence = f"{churners} users joined and left in 3 waves while {talkers} talked"
    if problems:
        return result("churn", Verdict.FAIL, f"{evidence}: " + "; ".join(problems), HINTS["lock"], **counts)
    return result("churn", Verdict.PASS, f"{evidence}: the talkers lost nothing, and the server kept serving", **counts)
