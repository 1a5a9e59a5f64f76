"""The six step servers of the build-it-yourself notebook, each graded by ``python -m chat check``.

The scorecard grows step by step: what each step adds is what makes a check
pass, and the checker tells the steps apart (all but step 4, whose lock
closes a race the churn check can hit only by chance; its test says so).
"""

from __future__ import annotations

import ast
import inspect
import sys

import pytest

from chat.lab import steps
from chat.lab.checker import check_command, check_server

pytestmark = pytest.mark.slow

CONVERSATION = ["register", "broadcast", "two-in-one", "long-message", "cyrillic-bytes", "join-leave", "reset-mid-line",
                "invalid-utf8", "stalled-reader", "light-load", "latency", "churn"]
TEXTBOOK_FAILS = {"two-in-one", "long-message", "cyrillic-bytes", "stalled-reader", "latency"}
FAILS = {
    1: {"broadcast"},  # one client at a time: no message reaches anybody else
    2: TEXTBOOK_FAILS,
    3: {"stalled-reader", "latency"},  # framing fixed: whole lines, decoded once complete
    4: {"stalled-reader", "latency"},  # the lock: the same scorecard (see the module docstring)
    5: {"stalled-reader"},  # TCP_NODELAY: the latency check passes
    6: set(),  # a queue and a writer per client: every check passes
}


def failing(card) -> set[str]:
    return {result.id for result in card.results if result.verdict.value == "FAIL"}


# Steps 2 and 6 get every check; the others the checks around what they change (the rest as the step before).
GRADED_ON = {1: ["register", "broadcast"], 2: None, 3: CONVERSATION[:8], 4: CONVERSATION[:8] + ["churn"],
             5: ["light-load", "latency", "stalled-reader"], 6: None}


@pytest.mark.parametrize("number", range(1, 7))
@pytest.mark.timeout(180)
def test_each_step_passes_what_it_adds(number):
    with steps.running(number) as server:
        card = check_server(server.address, only=GRADED_ON[number])
    graded = {result.id for result in card.results if result.verdict.value != "SKIP"}
    assert graded == set(GRADED_ON[number] or CONVERSATION)
    assert failing(card) == FAILS[number] & graded, card.table()
    assert {result.id for result in card.results if result.verdict.value == "WARN"} == set(), card.table()
    if number == 1:  # one client at a time: the others wait in accept()'s queue
        assert "never reached" in {result.id: result for result in card.results}["broadcast"].evidence


def test_the_last_step_passes_every_check_through_its_process_too():
    card = check_command([sys.executable, "-m", "chat.lab.steps.step6_queues", "{port}"])
    assert card.counts()["PASS"] == 15, card.table()


def test_step_4_differs_from_step_3_by_its_lock_alone():
    """The one step the checker can't tell apart is still the change it claims to be."""
    three, four = (inspect.getsource(steps.step(n).ChatServer) for n in (3, 4))
    assert "self.lock" not in three and four.count("with self.lock:") == 3


@pytest.mark.parametrize("number", range(1, 7))
def test_each_step_is_small_and_needs_only_the_standard_library(number):
    source = inspect.getsource(steps.step(number))
    assert len(source.splitlines()) < 170
    imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(ast.parse(source))
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= set(sys.stdlib_module_names)
