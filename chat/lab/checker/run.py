"""Running every check against one server, each contained: an error or a hang in one is that check's FAIL."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable

from chat.lab.checker import checks
from chat.lab.checker.common import TITLES, Context
from chat.lab.checker.dialect import Dialect
from chat.lab.checker.load import churn, light_load
from chat.lab.checker.peers import CheckFailed
from chat.lab.checker.process import long_line_memory, sigint, threads_left
from chat.lab.checker.scorecard import CheckResult, Scorecard, Verdict
from chat.lab.checker.target import LaunchedServer

log = logging.getLogger(__name__)

Progress = Callable[[str], None]  # told the title of each check as it starts


def _contained(check_id: str, run: Callable[[], CheckResult | list[CheckResult]],
               ids: tuple[str, ...] | None = None) -> list[CheckResult]:
    """Run one check; what goes wrong inside it becomes its FAIL, with what happened as the evidence."""
    started = time.monotonic()
    try:
        outcome = run()
        results = outcome if isinstance(outcome, list) else [outcome]
    except CheckFailed as exc:
        results = [CheckResult(check, TITLES[check], Verdict.FAIL, str(exc), exc.hint) for check in ids or (check_id,)]
    except (OSError, TimeoutError) as exc:
        results = [CheckResult(check, TITLES[check], Verdict.FAIL, f"the connection failed: {exc!r}",
                               "keep serving: one user's trouble must not stop the server")
                   for check in ids or (check_id,)]
    elapsed = time.monotonic() - started
    for result in results:
        result.seconds = round(elapsed / len(results), 2)
    return results


BETWEEN_CHECKS_S = 0.15  # the users of one check have left before the next check's come, as people would
GATE = ("register", "broadcast")  # if no message gets through these, the rest of the conversation is not tried


def _conversation(ctx: Context, progress: Progress | None, only: frozenset[str] | None = None) -> list[CheckResult]:
    steps = [(checks.check_id(check), (checks.check_id(check),), lambda check=check: check(ctx))
             for check in checks.CONVERSATION]
    steps += [("light-load", ("light-load", "latency"), lambda: light_load(ctx)),
              ("churn", ("churn",), lambda: churn(ctx))]
    if only is not None:
        steps = [step for step in steps if set(step[1]) & only]
    results: list[CheckResult] = []
    for check_id, ids, run in steps:
        if _nothing_got_through(results):
            results += [CheckResult(check, TITLES[check], Verdict.FAIL,
                                    "not tried: no message got through the server (see the checks above)",
                                    "first make a message reach the other users") for check in ids]
            continue
        if progress is not None:
            progress(TITLES[check_id])
        results += _contained(check_id, run, ids)
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
                for check in checks.PROCESS_CHECKS if chosen is None or check in chosen]
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
            results += _contained(check_id, run)
        shown = " ".join("python" if part == sys.executable else part for part in process.command)
    return Scorecard(shown, ctx.dialect.describe(), results, time.monotonic() - started)
