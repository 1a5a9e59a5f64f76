"""The checker's verdicts, and the scorecard made of them: a table for a person, JSON for a program."""

from __future__ import annotations

import enum
import json
import textwrap
from dataclasses import asdict, dataclass, field


class Verdict(enum.Enum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"  # not run: it needs the server's process (``-- COMMAND``)


@dataclass
class CheckResult:
    """One check's verdict, what it saw, and (unless it passed) a one-line hint of the fix."""

    id: str
    title: str
    verdict: Verdict
    evidence: str
    hint: str = ""
    seconds: float = 0.0
    data: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict.value}


@dataclass
class Scorecard:
    """Every check of one server."""

    target: str
    dialect: str
    results: list[CheckResult]
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return any(result.verdict is Verdict.FAIL for result in self.results)

    def counts(self) -> dict[str, int]:
        return {verdict.value: sum(1 for r in self.results if r.verdict is verdict) for verdict in Verdict}

    def verdicts(self) -> dict[str, str]:
        """``{check id: verdict}``, the shortest summary (what the tests compare)."""
        return {result.id: result.verdict.value for result in self.results}

    def to_dict(self) -> dict:
        return {"target": self.target, "dialect": self.dialect, "seconds": round(self.seconds, 1),
                "counts": self.counts(), "failed": self.failed, "checks": [result.to_dict() for result in self.results],
                "table": self.table()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n"

    def table(self, width: int = 100) -> str:
        """The scorecard as plain text, wrapped to ``width`` columns, ready to hand back to a student."""
        title_width = max(len(result.title) for result in self.results) if self.results else 10
        evidence_width = max(30, width - title_width - 10)
        lines = [f"chat check: {self.target}", f"  spoken to with {self.dialect}", ""]
        for result in self.results:
            wrapped = textwrap.wrap(result.evidence, evidence_width) or [""]
            lines.append(f"  {result.title:<{title_width}}  {result.verdict.value:<4}  {wrapped[0]}")
            lines += [f"  {'':<{title_width}}        {more}" for more in wrapped[1:]]
        hints = [result for result in self.results if result.hint and result.verdict in (Verdict.FAIL, Verdict.WARN)]
        if hints:
            lines += ["", "  How to fix:"]
            for result in hints:
                wrapped = textwrap.wrap(f"{result.title}: {result.hint}", width - 6)
                lines += [f"  - {wrapped[0]}", *(f"    {more}" for more in wrapped[1:])]
        counts = self.counts()
        summary = ", ".join(f"{counts[v.value]} {word}" for v, word in
                            ((Verdict.PASS, "passed"), (Verdict.WARN, "warned"), (Verdict.FAIL, "failed"),
                             (Verdict.SKIP, "skipped")) if counts[v.value])
        lines += ["", f"  {len(self.results)} check{'s' * (len(self.results) != 1)} in {self.seconds:.0f} s: {summary}"]
        return "\n".join(lines)
