"""``python -m chat check``: grade any line-based chat server from the outside, the way a teacher would.

It connects simulated users, tries everything the textbook design gets wrong
(:mod:`chat.lab.checker.run`), and gives a scorecard: each check PASS,
WARN or FAIL with the evidence it saw and a one-line hint of the fix.  Given
the server's command instead of its address, it starts the server itself and
also checks memory, threads and Ctrl+C through its process.

>>> from chat.lab.checker import check_server, Dialect           # doctest: +SKIP
>>> card = check_server(("127.0.0.1", 8000), Dialect(name_format="{name}"))
>>> print(card.table())

- :mod:`~chat.lab.checker.dialect` - how to speak to a server (name, message, prompt);
- :mod:`~chat.lab.checker.peers` - the simulated users and the thread that reads them;
- :mod:`~chat.lab.checker.conversation`, :mod:`~chat.lab.checker.load`, :mod:`~chat.lab.checker.process` -
  the checks (and :mod:`~chat.lab.checker.common`, what they share); :mod:`~chat.lab.checker.run` - their order;
- :mod:`~chat.lab.checker.target` - a server started from its command;
- :mod:`~chat.lab.checker.scorecard` - verdicts, the table, the JSON.
"""

from chat.lab.checker.dialect import Dialect
from chat.lab.checker.run import check_command, check_server
from chat.lab.checker.scorecard import CheckResult, Scorecard, Verdict

__all__ = ["CheckResult", "Dialect", "Scorecard", "Verdict", "check_command", "check_server"]
