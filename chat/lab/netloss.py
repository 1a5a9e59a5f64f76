"""Real packet loss on loopback, for one port: iptables' ``statistic`` match (Linux, as root).

TCP can't be made to lose data above the kernel: a proxy sees a byte stream,
never a packet.  To show what TCP does with a lossy network, this drops a
random share of the packets to and from one port, in both directions, on the
loopback interface only.  Nothing else on the machine is touched, and the
rules are removed when the ``with`` block ends.

Where iptables is missing or we are not root, :func:`available` says why and
the experiments that need it report "not measured" instead of guessing.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess

log = logging.getLogger(__name__)

PROBE_PORT = 9  # the discard port: nothing of ours listens there
RULE_TAG = "chat-lab"  # every rule we add carries this comment, so leftovers can be found


class PacketLoss:
    """``with PacketLoss(port, 0.01): ...`` drops about 1% of the packets to and from ``port``."""

    def __init__(self, port: int, probability: float, transport: str = "tcp") -> None:
        if not 0.0 < probability < 1.0:
            raise ValueError("the loss is a probability between 0 and 1")
        self.port = port
        self.probability = probability
        self.transport = transport
        self._added: list[list[str]] = []

    def _rules(self) -> list[list[str]]:
        return [
            ["INPUT", "-i", "lo", "-p", self.transport, direction, str(self.port),
             "-m", "statistic", "--mode", "random", "--probability", f"{self.probability:.6f}",
             "-m", "comment", "--comment", RULE_TAG, "-j", "DROP"]
            for direction in ("--dport", "--sport")
        ]

    def __enter__(self) -> PacketLoss:
        try:
            for rule in self._rules():
                _iptables("-A", rule)
                self._added.append(rule)
        except BaseException:
            self.__exit__(None, None, None)  # take back what was added before the failure
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        while self._added:
            rule = self._added.pop()
            try:
                _iptables("-D", rule, check=False)
            except (OSError, subprocess.SubprocessError) as exc:
                log.warning("could not remove the loss rule %s: %s (sweep() removes it)", rule, exc)


def sweep() -> int:
    """Remove every rule of ours left behind (by a run that was killed); returns how many."""
    listed = subprocess.run(["iptables", "-w", "-S", "INPUT"], capture_output=True, text=True, timeout=30)
    leftovers = [line.split()[1:] for line in listed.stdout.splitlines() if f"--comment {RULE_TAG}" in line]
    for rule in leftovers:
        _iptables("-D", rule, check=False)
    return len(leftovers)


def _iptables(action: str, rule: list[str], check: bool = True) -> None:
    subprocess.run(["iptables", "-w", action, *rule], check=check, capture_output=True, timeout=30)


def available() -> tuple[bool, str]:
    """Can this machine drop loopback packets?  ``(True, "")`` or ``(False, why not)``."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False, "dropping packets needs root"
    if shutil.which("iptables") is None:
        return False, "iptables is not installed"
    try:
        sweep()
        with PacketLoss(PROBE_PORT, 0.5):
            pass
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"iptables can't drop packets here ({exc})"
    return True, ""
