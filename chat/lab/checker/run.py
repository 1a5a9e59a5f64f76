"""Running every check against one server, in order, each contained: an error or a hang in one is that check's FAIL.

The checks: the conversation (:mod:`~chat.lab.checker.conversation`), under
load (:mod:`~chat.lab.checker.load`), and through the server's process
(:mod:`~chat.lab.checker.process`).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable

from chat.lab.checker.common import TITLES, Context
from chat.lab.checker.conversation import (
    broadcast,
    cyrillic_bytes,
    invalid_utf8,
    join_leave,
    long_message,
    register,
    reset_mid_line,
    two_in_one,
)
from chat.lab.checker.dialect import Dialect
from chat.lab.checker.load import churn, light_load, stalled_reader
from chat.lab.checker.peers import CheckFailed
from chat.lab.checker.process import long_line_memory, sigint, threads_left
from chat.lab.checker.scorecard import CheckResult, Scorecard, Verdict
from chat.lab.checker.target import LaunchedServer

log = logging.getLogger(__name__)

Progress = Callable[[str], None]  # told the title of each check as it starts
Check = Callable[[Context], CheckResult | list[CheckResult]]

# Every conversation check, in the order it runs, with the ids it reports under (the light load gives two verdicts).
CONVERSATION: list[tuple[tuple[str, ...], Check]] = [
    (("register",), register), (("broadcast",), broadcast), (("two-in-one",), two_in_one),
    (("long-message",), long_message), (("cyrillic-bytes",), cyrillic_bytes), (("join-leave",), join_leave),
    (("reset-mid-line",), reset_mid_line), (("invalid-utf8",), invalid_utf8), (("stalled-reader",), stalled_reader),
    (("light-load", "latency"), light_load), (("churn",), churn),
]
PROCESS_CHECKS = ("long-line-memory", "threads-left", "sigint")  # need the server's process (-- COMMAND)


def _contained(ids: tuple[str, ...], run: Callable[[], CheckResult | list[CheckResult]]) -> list[CheckResult]:
    """Run one check; what goes wrong inside it becomes its FAIL (each of ``ids``), with what happened as the evidence."""
    started = time.monotonic()
    try:
        outcome = run()
        results = outcome if isinstance(outcome, list) else [outcome]
    except CheckFailed as exc:
        results = [CheckResult(check, TITLES[check], Verdict.FAIL, str(exc), exc.hint) for check in ids]
    except (OSError, TimeoutError) as exc:
        results = [CheckResult(check, TITLES[check], Verdict.FAIL, f"the connection failed: {exc!r}",
                               "keep serving: one user's trouble must not stop the server") for check in ids]
    elapsed = time.monotonic() - started
    for result in results:
        result.seconds = round(elapsed / len(results), 2)
    return results


BETWEEN_CHECKS_S = 0.15  # the users of one check have left before the next check's come, as people would
GATE = ("register", "broadcast")  # if no message gets through these, the rest of the conversation is not tried


def _conversation(ctx: Context, progress: Progress | None, only: frozenset[str] | None = None) -> list[CheckResult]:
    results: list[CheckResult] = []
    for ids, check in CONVERSATION:
        if only is not None and not set(ids) & only:
            continue
        if _nothing_got_through(results):
            results += [CheckResult(check_id, TITLES[check_id], Verdict.FAIL,
                                    "not tried: no message got through the server (see the checks above)",
                                    "first make a message reach the other users") for check_id in ids]
            continue
        if progress is not None:
            progress(TITLES[ids[0]])
        results += _contained(ids, lambda check=check: check(ctx))
        time.sleep(BETWEEN_CHECKS_S)
    return results


def _nothing_got_through(results: list[CheckResult]) -> bool:
    gate = [result for result in results if result.id in GATE]
    return any(result.verdict is Verdict.FAIL and not result.data.get("delivered") for result in gate)


def check_server(address: tuple, dialect: Dialect | None = None, progress: Progress | None = None,
                 timeout_s: float = 5.0, only: Iterable[str] | None = None) -> Scorecard:
    """Check a server that is already running; the checks that need its process are skipped.

    ``only`` names the checks to run (their ids, as in the scorecard's JSON): a
    notebook grading one step runs the checks that step is about.
    """
    started = time.monotonic()
    ctx = Context(tuple(address), dialect or Dialect(), None, timeout_s)
    chosen = None if only is None else frozenset(only)
    if chosen is not None and not chosen <= TITLES.keys():
        raise ValueError(f"no such check: {', '.join(sorted(chosen - TITLES.keys()))}")
    results = _conversation(ctx, progress, chosen)
    results += [CheckResult(check, TITLES[check], Verdict.SKIP,
                            "needs the server's process: run it as python -m chat check -- COMMAND")
                for check in PROCESS_CHECKS if chosen is None or check in chosen]
    return Scorecard(f"{address[0]}:{address[1]}", ctx.dialect.describe(), results, time.monotonic() - started)


def check_command(command: list[str], dialect: Dialect | None = None, port: int | None = None,
                  host: str = "127.0.0.1", progress: Progress | None = None, timeout_s: float = 5.0) -> Scorecard:
    """Start the server from ``command``, check it, and stop it (whatever happens)."""
    started = time.monotonic()
    with LaunchedServer(command, host, port) as process:
        ctx = Context(process.address, dialect or Dialect(), process, timeout_s)
        baseline = process.threads()
        results = _conversation(ctx, progress)
        for check_id, run in (("long-line-memory", lambda: long_line_memory(ctx)),
                              ("threads-left", lambda: threads_left(ctx, baseline)),
                              ("sigint", lambda: sigint(ctx))):
            if progress is not None:
                progress(TITLES[check_id])
            if process.returncode is not None:
                results.append(CheckResult(check_id, TITLES[check_id], Verdict.FAIL,
                                           f"the server had exited (code {process.returncode}): {process.last_output()}",
                                           "keep serving: one user's trouble must not stop the server"))
                continue
            results += _contained((check_id,), run)
        shown = " ".join("python" if part == sys.executable else part for part in process.command)
    return Scorecard(shown, ctx.dialect.describe(), results, time.monotonic() - started)
