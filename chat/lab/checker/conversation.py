"""The checks of the conversation: users register, messages reach the others whole, misbehaving users cost nobody else.

Each opens a fresh :class:`~chat.lab.checker.peers.Crowd` (so one check's
leftovers never count in another's) and bounds every wait.
"""

from __future__ import annotations

import time

from chat.lab.checker.common import DELIVERY_S, GREETING, HINTS, Context, around, result, show
from chat.lab.checker.peers import CheckFailed, Crowd, Peer
from chat.lab.checker.scorecard import CheckResult, Verdict


def _delivery(crowd: Crowd, sender: Peer, mark: str, receivers: list[Peer]) -> tuple[list[str], list[str]]:
    """Who did not get ``sender``'s message, and the lines that had it without the sender's name."""
    missing = [peer.name for peer in receivers if mark not in peer.seen]
    nameless = [line for peer in receivers for line in peer.lines_with(mark) if sender.name not in line]
    return missing, nameless


def register(ctx: Context) -> CheckResult:
    with ctx.crowd() as crowd:
        peers = crowd.join(["ann", "bob", "вера"])
        last = peers[-1]
        answers = [line for line in last.since_name().split("\n") if line.strip()]
        said = next((line for line in answers if last.name in line), answers[0] if answers else "")
    evidence = "3 users connected and gave their names"
    return result("register", Verdict.PASS, evidence + (f"; {last.name} was told {show(said, 50)}" if said else
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
                problems.append(f"{sender.name}'s message arrived without the sender's name: {show(nameless[0])}")
            if marks[sender] in sender.seen:
                echoed.append(sender.name)
    delivered = sum(marks[sender] in peer.seen for sender in peers for peer in peers if peer is not sender)
    if problems:
        return result("broadcast", Verdict.FAIL, "; ".join(problems),
                       "send each message to every other user, with the sender's name on the line", delivered=delivered)
    if echoed:
        return result("broadcast", Verdict.WARN,
                       f"every message reached every other user with its sender's name, but also came back to its "
                       f"sender ({', '.join(echoed)})", "skip the sender when broadcasting (it already has its own text)")
    return result("broadcast", Verdict.PASS, "each of 3 users' messages reached the other two, with the sender's name, "
                                               "and not the sender itself")


def two_in_one(ctx: Context) -> CheckResult:
    with ctx.crowd() as crowd:
        ann, bob, vera = crowd.join(["ann", "bob", "вера"])
        (first, text1), (second, text2) = ann.message("раз"), ann.message("два")
        ann.send(ctx.dialect.message(ann.name, text1) + ctx.dialect.message(ann.name, text2))
        crowd.wait_for_tokens({bob: {first, second}, vera: {first, second}}, DELIVERY_S)
        crowd.quiet(0.1)
        for peer in (bob, vera):
            lines1, lines2 = peer.lines_with(first), peer.lines_with(second)
            if not lines1 or not lines2:
                return result("two-in-one", Verdict.FAIL, f"{peer.name} did not get both messages "
                               f"({len(lines1) + len(lines2)} of 2 arrived)", HINTS["framing"])
            together = [line for line in lines1 if second in line]
            if together:
                return result("two-in-one", Verdict.FAIL, f"two messages sent in one send arrived as one line: "
                               f"{show(together[0])}", HINTS["framing"])
            nameless = [line for line in lines1 + lines2 if ann.name not in line]
            if nameless:
                return result("two-in-one", Verdict.FAIL, f"the second message lost its sender's name: "
                               f"{show(nameless[0])}", HINTS["framing"])
    return result("two-in-one", Verdict.PASS, "two messages in one send arrived as two lines, each with the sender's name")


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
        return result("long-message", Verdict.FAIL, f"a {size_bytes}-byte message never arrived", HINTS["framing"])
    whole = [line for line in lines if text in line and ann.name in line]
    if whole:
        return result("long-message", Verdict.PASS, f"a {size_bytes}-byte message arrived as one line")
    line = lines[0]
    return result("long-message", Verdict.FAIL,
                   f"a {size_bytes}-byte message did not arrive whole: the line with its start has "
                   f"{len(line.encode())} bytes, and the text is cut or has something inserted", HINTS["framing"])


def cyrillic_bytes(ctx: Context) -> CheckResult:
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
        return result("cyrillic-bytes", Verdict.FAIL,
                       "a Cyrillic message sent one byte at a time did not arrive intact"
                       + (f": {show(seen[0])}" if seen else " (nothing of it arrived)")
                       + ("; its sender was disconnected" if ann.closed else ""), HINTS["utf8"])
    if not got_follow_up:
        return result("cyrillic-bytes", Verdict.FAIL, "the Cyrillic message arrived intact, but its sender "
                       + ("was disconnected" if ann.closed else "could not send another message after it"), HINTS["utf8"])
    return result("cyrillic-bytes", Verdict.PASS, "a Cyrillic message sent one byte at a time arrived intact, "
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
        join_line = around(ann.text, dan.name)
        leave_line = around(ann.text[before[ann]:], dan.name)
    if joined and left:
        return result("join-leave", Verdict.PASS, f"the others saw {dan.name} join ({show(join_line, 45)}) and leave "
                                                    f"({show(leave_line, 45)})")
    missing = [what for what, seen in (("join", joined), ("leave", left)) if not seen]
    return result("join-leave", Verdict.FAIL, f"the others saw no line with {dan.name}'s name for its {' and '.join(missing)}",
                   "tell everybody when a user joins and when it leaves (on EOF, not only on an error)")


def still_serving(crowd: Crowd, talker: Peer, listeners: list[Peer], newcomer_index: int) -> list[str]:
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
        problems = still_serving(crowd, ann, [bob], 3)
        passed_on = any(half in line for line in bob.lines())
    if problems:
        return result("reset-mid-line", Verdict.FAIL, "after a user vanished with a reset in the middle of a line: "
                       + "; ".join(problems), "treat a reset like an EOF: drop that user alone, keep serving the rest")
    return result("reset-mid-line", Verdict.PASS, "a user vanished with a reset in the middle of a line; the others "
                   "kept chatting and a new user joined" + ("; its half line was passed on as a message" if passed_on else ""))


def invalid_utf8(ctx: Context) -> CheckResult:
    with ctx.crowd() as crowd:
        ann, bob, mallory = crowd.join(["ann", "bob", "mallory"])
        mallory.send(b"\xff\xfe\xc3( " + "плохие байты".encode()[1:] + b"\n")
        time.sleep(0.2)
        problems = still_serving(crowd, ann, [bob], 3)
        dropped = mallory.closed
    if problems:
        return result("invalid-utf8", Verdict.FAIL, "after one user sent invalid UTF-8: " + "; ".join(problems),
                       "decode with errors='replace' (or drop that user alone); never let one user's bytes stop the server")
    return result("invalid-utf8", Verdict.PASS, "one user sent invalid UTF-8; the others kept chatting and a new user "
                   "joined" + ("; the sender was disconnected" if dropped else ""))
