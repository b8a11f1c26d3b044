"""Turn pipeline events into progress lines on stderr, and print the end-of-run summary.

Progress lines (stage, claims done out of total, retries) appear only on a terminal, so a piped
or logged stderr holds just warnings and the summary; `quiet` silences everything.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from .brief.entries import STATUS_LABELS, checks_summary, status_label
from .pricing import format_cost
from .terminal import clean

# What an attempt that did not succeed means, for the retry lines.
_ATTEMPT_PROBLEMS = {
    "invalid": "output failed validation",
    "truncated": "reply cut off at max_tokens",
    "empty": "no choices in the reply",
    "refused": "the model declined",
    "malformed": "not a usable chat completion",
    "timeout": "timed out",
    "connection_error": "connection dropped",
}


class Progress:
    """An event sink for the engine (`progress(event, **data)`) that also counts retries."""

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.live = (self.stream.isatty() if live is None else live) and not quiet
        self.attempts: dict[tuple[str, str], int] = {}

    @property
    def retries(self) -> int:
        """Attempts beyond the first for each unit: re-asks and transport retries."""
        return sum(count - 1 for count in self.attempts.values())

    def say(self, text: str) -> None:
        if not self.quiet:  # model names, messages and paths may carry escape sequences: never raw
            print(clean(text, one_line=True), file=self.stream, flush=True)

    def __call__(self, event: str, **data: Any) -> None:
        if event == "attempt":
            key = (data["stage"], data["unit"])
            self.attempts[key] = self.attempts.get(key, 0) + 1
        if event == "warning":
            self.say(f"warning: {data['message']}")
            return
        if not self.live:
            return
        line = self._line(event, data)
        if line:
            self.say(line)

    def _line(self, event: str, data: dict[str, Any]) -> str | None:
        if event == "run_dir":
            return f"run: {data['path']}"
        if event == "stage":
            total = f" ({data['total']} claims)" if "total" in data else ""
            return f"stage: {data['stage']}{total}"
        if event == "claim":
            return f"claims: {data['done']}/{data['total']} done ({data['claim']} {data['status']})"
        if event == "reused":
            return f"resume: reusing {data['unit']}"
        if event == "attempt" and data["outcome"] != "ok":
            outcome = data["outcome"]
            problem = _ATTEMPT_PROBLEMS.get(outcome) or (
                f"HTTP {outcome[5:]}" if outcome.startswith("http_") else outcome
            )
            return f"retry: {data['stage']} {data['unit']} attempt {data['attempt']}: {problem}"
        return None

    def summary(self, brief: dict[str, Any], path: str | None, elapsed: float) -> None:
        """Status, counts, tokens, cost, time and where the brief is."""
        claims = brief["claims"]
        run = brief["run"]
        usage = run["usage"]
        counts = {label: sum(1 for claim in claims if status_label(claim) == label) for label in STATUS_LABELS}
        verify = checks_summary(run.get("checks"))  # specifics the article does not state
        breakdown = ", ".join(f"{count} {label}" for label, count in counts.items() if count)
        self.say(
            f"{brief['status']}: {len(claims)} claims"
            + (f" ({breakdown})" if breakdown else "")
            + f", synthesis {status_label(brief['synthesis'])}"
            + (f", {verify} before use" if verify else "")
        )
        retries = f"{self.retries} retr{'y' if self.retries == 1 else 'ies'}"
        self.say(
            f"{usage['calls']} calls ({usage['cache_hits']} cached, {retries}), "
            f"{usage['prompt_tokens']:,} prompt + {usage['completion_tokens']:,} completion tokens "
            f"({usage['cached_tokens']:,} cached), cost {format_cost(run['cost_usd'], run['model'])}, "
            f"{elapsed:.1f}s"
        )
        if path:
            self.say(f"brief: {path} (brief.html, brief.md, brief.json)")
