"""The checks, in the order they run: each tries one thing the textbook chat server gets wrong.

The conversation (:mod:`~chat.lab.checker.conversation`), the checks under
load (:mod:`~chat.lab.checker.load`), and those that need the server's
process (:mod:`~chat.lab.checker.process`).  Each takes a
:class:`~chat.lab.checker.common.Context` and returns a
:class:`~chat.lab.checker.scorecard.CheckResult` (the light load returns two).
"""

from __future__ import annotations

from collections.abc import Callable

from chat.lab.checker.common import Context
from chat.lab.checker.conversation import (
    broadcast,
    cyrillic_bytewise,
    invalid_utf8,
    join_leave,
    long_message,
    register,
    reset_mid_line,
    two_in_one_send,
)
from chat.lab.checker.load import stalled_reader
from chat.lab.checker.scorecard import CheckResult

CONVERSATION: list[Callable[[Context], CheckResult]] = [
    register, broadcast, two_in_one_send, long_message, cyrillic_bytewise, join_leave, reset_mid_line, invalid_utf8,
    stalled_reader,
]

PROCESS_CHECKS = ("long-line-memory", "threads-left", "sigint")

IDS = {"two_in_one_send": "two-in-one", "cyrillic_bytewise": "cyrillic-bytes"}


def check_id(check: Callable) -> str:
    """The id a check function reports under (its name with dashes, or a shorter one)."""
    return IDS.get(check.__name__, check.__name__.replace("_", "-"))

