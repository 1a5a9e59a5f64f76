"""The checks through the server's process (``python -m chat check -- COMMAND``): memory, threads, Ctrl+C."""

from __future__ import annotations

import time

from chat.lab.checker.common import Context, result, show
from chat.lab.checker.peers import CheckFailed
from chat.lab.checker.scorecard import CheckResult, Verdict


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
        return result("long-line-memory", Verdict.FAIL, evidence,
                       "bound a line: past a limit, report it once and discard the rest up to the newline", **data)
    return result("long-line-memory", Verdict.PASS, evidence, **data)


def threads_left(ctx: Context, baseline: int) -> CheckResult:
    process = ctx.process
    deadline = time.monotonic() + 3.0
    now = process.threads()
    while now > baseline and time.monotonic() < deadline:
        time.sleep(0.1)
        now = process.threads()
    evidence = f"{now} thread{'s' * (now != 1)} once every user had left, {baseline} before the first one came"
    if now > baseline:
        return result("threads-left", Verdict.FAIL, evidence,
                       "end a client's thread when its connection ends (recv() returning b'' is the end)",
                       threads=now, baseline=baseline)
    return result("threads-left", Verdict.PASS, evidence, threads=now, baseline=baseline)


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
        return result("sigint", Verdict.FAIL, f"still running {grace_s:g} s after Ctrl+C (SIGINT){no_users}",
                       "catch KeyboardInterrupt, tell the users, close their sockets; make client threads daemons or join them")
    if told:
        return result("sigint", Verdict.PASS, f"exited {_after(process.exit_seconds)} Ctrl+C; the users were told "
                       f"({show(said, 40)}) and disconnected", exit_code=process.returncode)
    if closed:
        crashed = f" with exit code {process.returncode} (it printed {process.last_output(2)})" if process.returncode else ""
        return result("sigint", Verdict.WARN, f"exited {_after(process.exit_seconds)} Ctrl+C{no_users}{crashed}"
                       + (" and closed the users' connections without a word" if users else ""),
                       "send a last line (\"server shutting down\") before closing", exit_code=process.returncode)
    return result("sigint", Verdict.FAIL, "exited after Ctrl+C but left the users' connections open",
                   "close every client socket on the way out", exit_code=process.returncode)
